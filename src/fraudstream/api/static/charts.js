// Small SVG charts: bars (stacked), lines, horizontal bars. No dependencies.
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
function el(tag, attrs, text) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function frame(svg) {
  svg.replaceChildren();
  const [, , w, h] = svg.getAttribute("viewBox").split(" ").map(Number);
  return { w, h, left: 36, right: 8, top: 8, bottom: 20 };
}
function axisY(svg, f, max, fmt) {
  for (const t of [0, 0.5, 1]) {
    const y = f.h - f.bottom - t * (f.h - f.top - f.bottom);
    svg.append(el("line", { x1: f.left, x2: f.w - f.right, y1: y, y2: y, stroke: "#243040" }));
    svg.append(el("text", { x: 2, y: y + 3 }, fmt(max * t)));
  }
}
// series: [{values:[...], color}], stacked
function stackedBars(svg, labels, series, opts = {}) {
  const f = frame(svg);
  const totals = labels.map((_, i) => series.reduce((s, x) => s + x.values[i], 0));
  const max = Math.max(1, ...totals);
  axisY(svg, f, max, (v) => Math.round(v));
  const bw = (f.w - f.left - f.right) / labels.length;
  labels.forEach((label, i) => {
    let base = f.h - f.bottom;
    for (const s of series) {
      const hh = (s.values[i] / max) * (f.h - f.top - f.bottom);
      base -= hh;
      svg.append(el("rect", { x: f.left + i * bw + 1, y: base, width: Math.max(1, bw - 2),
                              height: hh, fill: s.color }));
    }
    if (i % Math.ceil(labels.length / 5) === 0)
      svg.append(el("text", { x: f.left + i * bw, y: f.h - 6 }, label));
  });
  if (opts.marker !== undefined && opts.marker !== null) {
    const x = f.left + opts.marker * (f.w - f.left - f.right);
    svg.append(el("line", { x1: x, x2: x, y1: f.top, y2: f.h - f.bottom, stroke: "#f0b6bd",
                            "stroke-dasharray": "4 3" }));
    svg.append(el("text", { x: x + 3, y: f.top + 8 }, "threshold"));
  }
}
function lines(svg, labels, series, fmt) {
  const f = frame(svg);
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values.filter((v) => v !== null)));
  axisY(svg, f, max, fmt);
  const step = (f.w - f.left - f.right) / Math.max(1, labels.length - 1);
  // A point per value when there are few (a single bucket has no line to draw); null: none.
  const dots = labels.length <= 48;
  for (const s of series) {
    const xy = s.values.map((v, i) => v === null ? null :
      [f.left + i * step, f.h - f.bottom - (v / max) * (f.h - f.top - f.bottom)]);
    const pts = xy.filter(Boolean);
    svg.append(el("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none",
                                stroke: s.color, "stroke-width": 2 }));
    if (dots) for (const [x, y] of pts) svg.append(el("circle", { cx: x, cy: y, r: 3, fill: s.color }));
  }
  labels.forEach((label, i) => {
    if (i % Math.ceil(labels.length / 5) === 0)
      svg.append(el("text", { x: f.left + i * step - 10, y: f.h - 6 }, label));
  });
  // The legend, left to right, wrapping; its colour as a style (the stylesheet dims svg text).
  let lx = f.left + 6, ly = f.top + 10;
  for (const s of series) {
    const width = 6.5 * s.name.length + 14;
    if (lx > f.left + 6 && lx + width > f.w - f.right) { lx = f.left + 6; ly += 12; }
    svg.append(el("text", { x: lx, y: ly, style: `fill:${s.color}` }, s.name));
    lx += width;
  }
  if (!labels.length) svg.append(el("text", { x: f.w / 2 - 30, y: f.h / 2 }, "no data yet"));
}
function hbars(svg, entries) {
  svg.replaceChildren();
  entries.forEach(([name, value], i) => {
    const y = 6 + i * 22;
    svg.append(el("text", { x: 0, y: y + 12 }, name));
    svg.append(el("rect", { x: 170, y, width: Math.max(1, value * 220), height: 14,
                            fill: "#58a6ff" }));
    svg.append(el("text", { x: 175 + value * 220, y: y + 12 }, value.toFixed(3)));
  });
}
