// The dashboard: live alerts (SSE), verdicts, search, charts, the rules' figures. Talks only to
// this API.
// Every call sends the token from the URL's fragment (#token=..., never sent to a server by
// the browser): the analyst's read-only token shows everything, the writer's also records verdicts.
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const auth = token ? { Authorization: `Bearer ${token}` } : {};
const $ = (id) => document.getElementById(id);
const fmtTime = (iso) => iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) : "–";

async function api(path, init = {}) {
  const response = await fetch(path, { ...init, headers: { ...auth, ...init.headers } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function reasonsHtml(reasons) {
  return (reasons || []).map((r) => {
    const name = typeof r === "string" ? r : r.feature;
    return `<span title="${typeof r === "string" ? "" : "contribution " + r.contribution.toFixed(3)}">${name}</span>`;
  }).join("");
}

function alertItem(alert, fresh) {
  const li = document.createElement("li");
  li.dataset.id = alert.transaction_id;
  if (fresh) li.classList.add("new");
  const status = alert.status || "open";
  li.innerHTML = `
    <a href="#" class="txn-link">${alert.transaction_id}</a>
    <span class="score">${Number(alert.score).toFixed(3)}</span>
    <span class="reasons">${reasonsHtml(alert.reason_codes)}</span>
    <span class="actions">
      <span class="status status-${status}">${status}</span>
      <button data-verdict="confirmed">Confirm fraud</button>
      <button data-verdict="rejected">Reject</button>
    </span>`;
  li.querySelector(".txn-link").onclick = (e) => { e.preventDefault(); showTransaction(alert.transaction_id); };
  for (const button of li.querySelectorAll("button")) {
    button.disabled = !token;
    button.onclick = () => sendVerdict(alert.transaction_id, button.dataset.verdict, li);
  }
  return li;
}

async function sendVerdict(id, verdict, li) {
  try {
    const result = await api(`/alerts/${encodeURIComponent(id)}/verdict`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ verdict, analyst: "dashboard" }),
    });
    const status = li.querySelector(".status");
    status.textContent = result.status;
    status.className = `status status-${result.status}`;
  } catch (err) { alert(`Verdict not recorded: ${err.message}`); }
}

async function loadAlerts() {
  const page = await api("/alerts?limit=30");
  $("alerts").replaceChildren(...page.items.map((a) => alertItem(a, false)));
}

function showAlert(alert) {
  $("alerts").querySelector(`li[data-id="${CSS.escape(alert.transaction_id)}"]`)?.remove();
  $("alerts").prepend(alertItem(alert, true));
}

function onServerEvent(block) {
  // One Server-Sent Event: "event:" and "data:" lines; lines starting with ":" are comments.
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (event === "alert" && data.length) showAlert(JSON.parse(data.join("\n")));
}

async function liveAlerts() {
  // EventSource cannot send a header, so the stream is read with fetch; reconnects on its own.
  const badge = $("live-badge");
  for (;;) {
    try {
      const response = await fetch("/alerts/stream", { headers: auth });
      if (!response.ok) throw new Error(`alert stream: ${response.status}`);
      badge.textContent = "live: connected"; badge.className = "badge on";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          onServerEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (err) { console.error(err); }
    badge.textContent = "live: reconnecting"; badge.className = "badge off";
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
}

async function showTransaction(id) {
  const box = $("txn");
  try {
    const t = await api(`/transactions/${encodeURIComponent(id)}`);
    const raw = t.raw || {};
    box.innerHTML = `<div class="kv">
      <b>id</b><span id="txn-id">${t.transaction_id}</span>
      <b>amount</b><span>${raw.amount ?? "–"} ${raw.currency ?? ""}</span>
      <b>card / merchant</b><span>${raw.card_id ?? "–"} / ${raw.merchant_id ?? "–"}</span>
      <b>event time</b><span>${fmtTime(raw.event_time)}</span>
      <b>score</b><span class="score">${t.score === null ? "not scored" : t.score.toFixed(4)}</span>
      <b>decision</b><span id="txn-decision">${t.decision ?? "–"}</span>
      <b>reasons</b><span class="reasons">${reasonsHtml(t.reason_codes)}</span>
      <b>model</b><span>v${t.model_version ?? "–"} (features v${t.feature_set_version ?? "–"})</span>
      <b>alert</b><span>${t.alert_status ?? "–"}</span>
      <b>label</b><span>${t.label ? (t.label.is_fraud ? "fraud" : "genuine") + " (" + t.label.source + ")" : "–"}</span>
    </div>`;
  } catch (err) { box.textContent = err.message; }
}

async function loadCharts() {
  const dist = await api("/stats/score-distribution?hours=24&bins=20");
  stackedBars($("histogram"), dist.bins.map((b) => b.lower.toFixed(2)),
    [{ values: dist.bins.map((b) => b.passed), color: "#3fb950" },
     { values: dist.bins.map((b) => b.alerted), color: "#f85149" }],
    { marker: dist.threshold });
  const rate = await api("/stats/alert-rate?hours=6&bucket=minute");
  const labels = rate.points.map((p) => fmtTime(p.start).slice(11, 16));
  lines($("rate"), labels, [{ name: "alert rate %", color: "#f85149",
    values: rate.points.map((p) => 100 * p.alert_rate) }], (v) => v.toFixed(1) + "%");
  lines($("throughput"), labels, [
    { name: "scored / min", color: "#58a6ff", values: rate.points.map((p) => p.scored) },
    { name: "p95 latency ms", color: "#d29922", values: rate.points.map((p) => p.latency_p95_ms) },
  ], (v) => Math.round(v));
}

const PALETTE = ["#58a6ff", "#f85149", "#3fb950", "#d29922", "#bc8cff", "#39c5cf", "#ff7b72", "#e3b341"];
const pct = (v) => v === null ? "–" : (100 * v).toFixed(1) + "%";

function ruleTotalRow(name, figures, cls) {
  const tr = document.createElement("tr");
  if (cls) tr.className = cls;
  for (const text of [name, figures.hits, pct(figures.hit_rate), figures.labelled, figures.frauds,
                      pct(figures.precision)]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

async function loadRuleStats() {
  // Hit rate and precision per rule, per hour of scoring (GET /rules/stats).
  const s = await api("/rules/stats?hours=24&bucket=hour");
  const fired = s.rules.length > 0;
  const live = s.total.rules_versions.join(", ");
  $("rule-stats-state").textContent =
    s.active_version === null && !fired ? "No rule set active: the model decides alone."
    : !fired ? `No rule fired in the window (rule set ${s.active_version} active).`
    : `Rule set ${s.active_version ?? "–"} active; live in the window: ${live || "–"}.`;
  $("rule-stats-charts").hidden = !fired;
  if (!fired) return;
  // Every hour of the window on the axis; an hour without scored rows has no point.
  const HOUR = 3600e3;
  const hours = [];
  for (let t = Math.floor(Date.parse(s.since) / HOUR) * HOUR; t <= Date.parse(s.until); t += HOUR)
    hours.push(t);
  const byStart = new Map(s.buckets.map((b) => [Date.parse(b.start), b]));
  const labels = hours.map((t) => fmtTime(new Date(t).toISOString()).slice(11, 16));
  const series = (key) => s.rules.map((rule, i) => ({
    name: rule, color: PALETTE[i % PALETTE.length],
    values: hours.map((t) => {
      const value = byStart.get(t)?.per_rule[i][key];
      return value === undefined || value === null ? null : 100 * value;
    }),
  }));
  lines($("rule-hit-rate"), labels, series("hit_rate"), (v) => v.toFixed(1) + "%");
  lines($("rule-precision"), labels, series("precision"), (v) => v.toFixed(0) + "%");
  $("rule-totals").tBodies[0].replaceChildren(
    ...s.total.per_rule.map((r) => ruleTotalRow(r.rule, r, "")),
    ruleTotalRow("decision (review or decline)", s.total.decision, "decision"));
}

async function loadModel() {
  const m = await api("/model");
  const c = m.champion;
  $("model-badge").textContent = c ? `champion v${c.version}` : "no champion";
  $("model").innerHTML = c ? `<div class="kv">
      <b>champion</b><span>v${c.version} · threshold ${Number(c.threshold).toFixed(3)}</span>
      <b>challenger</b><span>${m.challenger ? "v" + m.challenger.version : "–"}</span>
      <b>serving here</b><span>${m.serving ? "v" + m.serving : "no model loaded"}</span></div>`
    : "No champion yet: train and promote a model.";
  const wanted = ["test_xgboost_auc_roc", "test_xgboost_average_precision", "validation_average_precision",
                  "test_xgboost_card_precision_at_100", "test_xgboost_f2"];
  const metrics = c ? wanted.filter((k) => k in c.metrics).map((k) => [k.replace("test_xgboost_", ""), c.metrics[k]]) : [];
  hbars($("metrics"), metrics);
  $("promotions").replaceChildren(...m.promotions.map((p) => {
    const li = document.createElement("li");
    li.textContent = `${fmtTime(p.promoted_at)} v${p.previous_version ?? "–"} → v${p.version}: ${p.reason}`;
    return li;
  }));
}

$("search").onsubmit = (e) => { e.preventDefault(); const id = $("search-id").value.trim(); if (id) showTransaction(id); };
$("token-hint").hidden = Boolean(token);
if (token) {  // without one every call would be refused (401): the hint says what to open
  liveAlerts();
  loadAlerts().catch(console.error);
  loadModel().catch(console.error);
  loadCharts().catch(console.error);
  loadRuleStats().catch(console.error);
  setInterval(() => {
    loadCharts().catch(console.error);
    loadModel().catch(console.error);
    loadRuleStats().catch(console.error);
  }, 15000);
}
