// The dashboard: live alerts (SSE), verdicts, search, charts. Talks only to this API.
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const $ = (id) => document.getElementById(id);
const fmtTime = (iso) => iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) : "–";

async function api(path, init) {
  const response = await fetch(path, init);
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
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
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

function liveAlerts() {
  const source = new EventSource("/alerts/stream");
  source.onopen = () => { $("live-badge").textContent = "live: connected"; $("live-badge").className = "badge on"; };
  source.onerror = () => { $("live-badge").textContent = "live: reconnecting"; $("live-badge").className = "badge off"; };
  source.addEventListener("alert", (event) => {
    const alert = JSON.parse(event.data);
    $("alerts").querySelector(`li[data-id="${CSS.escape(alert.transaction_id)}"]`)?.remove();
    $("alerts").prepend(alertItem(alert, true));
  });
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
liveAlerts();
loadAlerts().catch(console.error);
loadModel().catch(console.error);
loadCharts().catch(console.error);
setInterval(() => { loadCharts().catch(console.error); loadModel().catch(console.error); }, 15000);
