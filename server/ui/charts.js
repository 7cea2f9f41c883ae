// Plasma dashboard: small SVG line charts with axes, ticks, units, a legend, bands
// (shaded ranges), vertical markers and horizontal reference lines. No dependencies.
//
// Charts.line(container, spec) draws into `container` and returns the <figure>.
// spec = {
//   title, xLabel, yLabel, log (log10 y axis),
//   series: [{ name, x: [...], y: [...], color, dash, band: { low: [...], high: [...] } }],
//   markers: [{ x, label, color }],   // vertical lines (e.g. predicted failures)
//   hlines: [{ y, label, color }],    // horizontal lines (e.g. thresholds)
// }
// Every drawn point is counted: the figure's `data-points` attribute holds the number of
// (x, y) points of all series, and each series' <path> its own, so a test can compare
// them with the data the endpoint returned.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
  const W = 640, H = 300, M = { l: 62, r: 14, t: 12, b: 44 };

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (parent) parent.appendChild(e);
    return e;
  }

  // "Nice" tick values covering [lo, hi].
  function ticks(lo, hi, count) {
    if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
    const raw = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function fmt(v) {
    const a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
    return +v.toPrecision(4) + "";
  }

  function finite(v) { return typeof v === "number" && Number.isFinite(v); }

  function line(container, spec) {
    const fig = document.createElement("figure");
    fig.className = "chart";
    if (spec.id) fig.id = spec.id;
    if (spec.title) {
      const cap = document.createElement("figcaption");
      cap.textContent = spec.title;
      fig.appendChild(cap);
    }
    const series = (spec.series || []).map((s, i) => ({ color: PALETTE[i % PALETTE.length], ...s }));
    const log = !!spec.log;
    const ty = (v) => (log ? Math.log10(v) : v);
    const ok = (v) => finite(v) && (!log || v > 0);

    // Data ranges (bands and reference lines included).
    let xs = [], ys = [];
    for (const s of series) {
      s.x.forEach((x, i) => { if (finite(x) && ok(s.y[i])) { xs.push(x); ys.push(ty(s.y[i])); } });
      if (s.band) {
        s.band.low.forEach((v, i) => { if (ok(v)) ys.push(ty(v)); if (ok(s.band.high[i])) ys.push(ty(s.band.high[i])); });
      }
    }
    for (const m of spec.markers || []) if (finite(m.x)) xs.push(m.x);
    for (const h of spec.hlines || []) if (ok(h.y)) ys.push(ty(h.y));
    let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
    let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
    if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }
    if (y1 === y0) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
    const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
    const sx = (x) => M.l + ((x - x0) / (x1 - x0)) * (W - M.l - M.r);
    const sy = (y) => H - M.b - ((ty(y) - y0) / (y1 - y0)) * (H - M.t - M.b);

    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": spec.title || "chart", preserveAspectRatio: "xMidYMid meet" });
    fig.appendChild(svg);
    const grid = el("g", { class: "grid" }, svg);
    const axis = el("g", { class: "axis" }, svg);
    // y axis: ticks in data units (powers of ten on a log axis).
    const yt = log ? ticks(Math.floor(y0), Math.ceil(y1), Math.max(1, Math.min(6, Math.ceil(y1) - Math.floor(y0))))
      .filter((t) => Number.isInteger(t) && t >= y0 - 1e-9 && t <= y1 + 1e-9) : ticks(y0, y1, 5);
    for (const t of yt) {
      const v = log ? Math.pow(10, t) : t;
      const y = sy(v);
      if (y < M.t - 1 || y > H - M.b + 1) continue;
      el("line", { x1: M.l, x2: W - M.r, y1: y, y2: y }, grid);
      el("text", { x: M.l - 6, y: y + 4, "text-anchor": "end" }, axis).textContent = fmt(v);
    }
    for (const t of ticks(x0, x1, 6)) {
      const x = sx(t);
      if (x < M.l - 1 || x > W - M.r + 1) continue;
      el("line", { x1: x, x2: x, y1: M.t, y2: H - M.b }, grid);
      el("text", { x, y: H - M.b + 16, "text-anchor": "middle" }, axis).textContent = fmt(t);
    }
    el("line", { class: "frame", x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }, axis);
    el("line", { class: "frame", x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }, axis);
    el("text", { class: "label", x: (M.l + W - M.r) / 2, y: H - 6, "text-anchor": "middle" }, axis).textContent = spec.xLabel || "";
    el("text", { class: "label", x: 14, y: (M.t + H - M.b) / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${(M.t + H - M.b) / 2})` }, axis)
      .textContent = (spec.yLabel || "") + (log ? " (log scale)" : "");

    let total = 0;
    const plot = el("g", { class: "plot" }, svg);
    for (const s of series) {
      if (s.band) {
        const up = [], down = [];
        s.x.forEach((x, i) => {
          if (finite(x) && ok(s.band.low[i]) && ok(s.band.high[i])) {
            up.push(`${sx(x).toFixed(1)},${sy(s.band.high[i]).toFixed(1)}`);
            down.unshift(`${sx(x).toFixed(1)},${sy(s.band.low[i]).toFixed(1)}`);
          }
        });
        if (up.length) el("polygon", { class: "band", points: up.concat(down).join(" "), fill: s.color }, plot);
      }
      let d = "", n = 0, pen = "M";
      s.x.forEach((x, i) => {
        if (finite(x) && ok(s.y[i])) {
          d += `${pen}${sx(x).toFixed(1)},${sy(s.y[i]).toFixed(1)}`;
          pen = "L"; n += 1;
        } else pen = "M";
      });
      const path = el("path", { d: d || "M0,0", stroke: s.color, class: "series" + (s.dash ? " dash" : ""), "data-series": s.name, "data-points": n }, plot);
      if (n === 1 || s.dots) {
        s.x.forEach((x, i) => { if (finite(x) && ok(s.y[i])) el("circle", { cx: sx(x), cy: sy(s.y[i]), r: 3, fill: s.color }, plot); });
      }
      path.appendChild(el("title")).textContent = s.name;
      total += n;
    }
    for (const h of spec.hlines || []) {
      if (!ok(h.y)) continue;
      const y = sy(h.y);
      el("line", { class: "hline", x1: M.l, x2: W - M.r, y1: y, y2: y, stroke: h.color || "#6b7280" }, plot);
      el("text", { class: "note", x: W - M.r - 4, y: y - 4, "text-anchor": "end" }, plot).textContent = h.label || "";
    }
    (spec.markers || []).forEach((m, i) => {
      if (!finite(m.x)) return;
      const x = sx(m.x);
      el("line", { class: "marker", x1: x, x2: x, y1: M.t, y2: H - M.b, stroke: m.color || "#dc2626" }, plot);
      el("text", { class: "note", x: x + 3, y: M.t + 12 + (i % 4) * 12 }, plot).textContent = m.label || "";
    });
    fig.dataset.points = String(total);

    const legend = document.createElement("ul");
    legend.className = "legend";
    for (const s of series) {
      const li = document.createElement("li");
      const key = document.createElement("span");
      key.className = "key" + (s.dash ? " dash" : "") + (s.band ? " banded" : "");
      key.style.borderColor = s.color;
      if (s.band) key.style.backgroundColor = s.color + "33";
      li.append(key, document.createTextNode(s.name));
      legend.appendChild(li);
    }
    for (const m of spec.markers || []) {
      if (!m.legend) continue;
      const li = document.createElement("li");
      const key = document.createElement("span");
      key.className = "key marker";
      key.style.borderColor = m.color || "#dc2626";
      li.append(key, document.createTextNode(m.legend));
      legend.appendChild(li);
    }
    fig.appendChild(legend);
    container.appendChild(fig);
    return fig;
  }

  return { line, PALETTE };
})();
