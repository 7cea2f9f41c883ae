// Plasma dashboard. Every figure on the page comes from the server's JSON endpoints (the
// OpenAPI document at /openapi.json) read with the viewer's token; live job progress
// comes from the WebSocket /ws/{agent}. The page keeps no data of its own.
"use strict";

(() => {
  const TOKEN_KEY = "plasma-token";
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    me: null,
    sockets: new Map(), // agent → WebSocket
    timers: [],
    view: 0, // bumped on every navigation: late answers of an old view are dropped
  };
  const main = () => document.getElementById("main");

  // --- DOM helpers -------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = String(dv);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const section = (title, ...body) => h("section", { class: "card" }, h("h2", { text: title }), ...body);
  const note = (text) => h("p", { class: "note", text });
  const short = (id) => (id ? id.slice(0, 12) : "—");
  const num = (v, digits = 4) => (typeof v === "number" && Number.isFinite(v) ? +v.toPrecision(digits) + "" : "—");
  const time = (secs) => (secs ? new Date(secs * 1000).toLocaleString() : "—");
  const duration = (a, b) => (a && b ? `${(b - a).toFixed(1)} s` : "—");

  function table(headers, rows, attrs) {
    return h("div", { class: "table-wrap" },
      h("table", attrs || {},
        h("thead", {}, h("tr", {}, headers.map((t) => h("th", { text: t })))),
        h("tbody", {}, rows)));
  }
  function kv(pairs) {
    return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)]));
  }
  function badge(status) {
    return h("span", { class: `badge ${status}`, text: status });
  }
  function bar(progress) {
    const p = Math.max(0, Math.min(1, progress || 0));
    const outer = h("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(p * 100) });
    const inner = h("div", { class: "fill" });
    inner.style.width = `${(p * 100).toFixed(1)}%`;
    outer.append(inner, h("span", { text: `${Math.round(p * 100)}%` }));
    return outer;
  }
  const link = (href, text) => h("a", { href, text });
  const jobLink = (job) => (job.kind === "compilation" ? link("#/packets", short(job.id)) : link(`#/run/${job.id}`, short(job.id)));

  // --- API ---------------------------------------------------------------------------
  class AuthError extends Error {}
  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const res = await fetch(path, { ...options, headers });
    if (res.status === 401) {
      showLogin(state.token ? "That token is not accepted. Enter another." : "This server needs a token.");
      throw new AuthError("unauthorized");
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const msg = body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`;
      throw new Error(msg);
    }
    return body;
  }
  const isAdmin = () => state.me && state.me.role === "admin";

  function failed(container, err) {
    if (err instanceof AuthError) return;
    container.append(h("p", { class: "error", role: "alert", text: String(err.message || err) }));
  }

  // --- login -------------------------------------------------------------------------
  function showLogin(message) {
    closeLive();
    document.getElementById("who").textContent = "";
    const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, "aria-label": "token" });
    const form = h("form", { class: "login", onsubmit: (e) => {
      e.preventDefault();
      state.token = input.value.trim();
      sessionStorage.setItem(TOKEN_KEY, state.token);
      boot();
    } },
    h("h2", { text: "Sign in" }),
    h("p", { text: message }),
    h("p", { class: "note", text: "The token is the one in the server's [[auth.tokens]] (an agent token shows the read views; an admin token can also cancel jobs). It is kept in this tab only." }),
    h("label", { for: "token", text: "Token" }), input,
    h("button", { type: "submit", text: "Open the dashboard" }));
    main().replaceChildren(form);
    input.focus();
  }

  // --- live jobs over the WebSocket --------------------------------------------------
  const listeners = new Set();
  function closeLive() {
    for (const ws of state.sockets.values()) ws.close();
    state.sockets.clear();
    listeners.clear();
    state.timers.forEach(clearInterval);
    state.timers = [];
  }
  function watchAgent(agent) {
    if (state.sockets.has(agent)) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const q = state.token ? `?token=${encodeURIComponent(state.token)}` : "";
    const ws = new WebSocket(`${scheme}//${location.host}/ws/${encodeURIComponent(agent)}${q}`);
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      if (msg.type === "job_event") listeners.forEach((f) => f(msg));
    };
    ws.onclose = () => { if (state.sockets.get(agent) === ws) state.sockets.delete(agent); };
    state.sockets.set(agent, ws);
  }
  function every(ms, f) { state.timers.push(setInterval(f, ms)); }

  // --- views -------------------------------------------------------------------------
  async function overview(root, view) {
    const [tasks, agents, jobs] = await Promise.all([api("/tasks"), api("/agents"), api("/jobs?limit=100")]);
    if (view !== state.view) return;
    const active = jobs.filter((j) => j.status === "queued" || j.status === "running");
    root.append(
      section("Tasks",
        tasks.length ? table(["task", "transitions", "uploads", "agents (transitions)", "base training", "updated"],
          tasks.map((t) => h("tr", {},
            h("td", { text: t.name }), h("td", { class: "n", text: t.transitions }), h("td", { class: "n", text: t.chunks }),
            h("td", { text: Object.entries(t.agent_transitions || {}).map(([a, n]) => `${a} (${n})`).join(", ") || "—" }),
            h("td", {}, t.base_training ? link(`#/run/${t.base_training}`, short(t.base_training)) : "—"),
            h("td", { text: time(t.updated_at) })))) : note("No task has experience yet.")),
      section("Queue and running jobs",
        active.length ? jobsTable(active) : note("No job is queued or running."),
        h("p", {}, link("#/jobs", `All jobs (${jobs.length} most recent) →`))),
      section("Agents",
        agents.length ? table(["agent", "transitions per task", "newest packet", "runs base", "adapter", "since", "change"],
          agents.map((a) => {
            const d = a.deployment;
            return h("tr", { data: { agent: a.agent_id } },
              h("td", { text: a.agent_id }),
              h("td", { text: Object.entries(a.tasks).map(([t, n]) => `${t}: ${n}`).join(", ") || "—" }),
              h("td", { class: "mono", text: short(a.latest_packet) }),
              h("td", { class: "mono", text: d ? short(d.base) : "not reported" }),
              h("td", { class: "mono", text: d && d.adapter ? short(d.adapter) : "—" }),
              h("td", { text: d ? time(d.since) : "—" }),
              h("td", { text: d ? d.change : "—" }));
          })) : note("No agent has uploaded or reported yet.")));
    const exp = section("Experience over time");
    root.append(exp);
    if (!isAdmin()) {
      exp.append(note("Uploads per agent over time are listed for admin tokens only (GET /experience shows the uploading tokens' fingerprints)."));
      return;
    }
    const grid = h("div", { class: "charts" });
    exp.append(grid);
    for (const t of tasks.filter((t) => t.transitions > 0)) {
      const listing = await api(`/experience?task=${encodeURIComponent(t.name)}`);
      if (view !== state.view) return;
      const first = Math.min(...listing.chunks.map((c) => c.uploaded_at));
      const byAgent = new Map();
      for (const c of listing.chunks) {
        const s = byAgent.get(c.agent_id) || { name: c.agent_id, x: [], y: [], total: 0, dots: true };
        s.total += c.transitions;
        s.x.push(c.uploaded_at - first);
        s.y.push(s.total);
        byAgent.set(c.agent_id, s);
      }
      Charts.line(grid, {
        id: `chart-experience-${t.name}`,
        title: `${t.name}: transitions stored per agent`,
        xLabel: "time since the first upload (s)",
        yLabel: "transitions (cumulative)",
        series: [...byAgent.values()],
      }).dataset.task = t.name;
    }
  }

  function jobsTable(jobs) {
    const admin = isAdmin();
    return table(["job", "kind", "agent", "task", "status", "phase", "progress", "created", "took", ""],
      jobs.map((j) => jobRow(j, admin)), { class: "jobs" });
  }
  function jobRow(j, admin) {
    const live = j.status === "queued" || j.status === "running";
    const cancel = admin && live ? h("button", { class: "small", text: "Cancel", onclick: async (e) => {
      e.target.disabled = true;
      try { await api(`/jobs/${j.id}/cancel`, { method: "POST" }); } catch (err) { e.target.after(h("span", { class: "error", text: err.message })); }
    } }) : "";
    return h("tr", { data: { job: j.id, status: j.status, progress: j.progress, phase: j.phase || "" } },
      h("td", { class: "mono" }, jobLink(j)), h("td", { text: j.kind }), h("td", { text: j.agent_id }), h("td", { text: j.task }),
      h("td", { class: "status" }, badge(j.status)), h("td", { class: "phase", text: j.phase || "—" }),
      h("td", { class: "progress" }, bar(j.progress)), h("td", { text: time(j.created_at) }),
      h("td", { text: duration(j.started_at, j.finished_at) }), h("td", {}, cancel));
  }
  function applyEvent(row, ev) {
    row.dataset.status = ev.status;
    row.dataset.progress = ev.progress;
    row.dataset.phase = ev.phase || "";
    row.querySelector(".status").replaceChildren(badge(ev.status));
    row.querySelector(".phase").textContent = ev.phase || "—";
    row.querySelector(".progress").replaceChildren(bar(ev.progress));
  }

  async function jobsView(root, view) {
    const list = h("div");
    const log = h("ol", { class: "events", reversed: true });
    root.append(section("Jobs", note("Progress arrives over the WebSocket as it happens; the list is re-read every 4 s for new jobs."), list),
      section("Events, live", log));
    const seen = new Set();
    async function refresh() {
      const jobs = await api("/jobs?limit=50");
      if (view !== state.view) return;
      list.replaceChildren(jobs.length ? jobsTable(jobs) : note("No jobs yet."));
      for (const j of jobs) if (j.status === "queued" || j.status === "running") watchAgent(j.agent_id);
      jobs.forEach((j) => seen.add(j.id));
    }
    listeners.add((ev) => {
      const row = list.querySelector(`tr[data-job="${CSS.escape(ev.job_id)}"]`);
      if (row) applyEvent(row, ev);
      else if (!seen.has(ev.job_id)) refresh().catch(() => {});
      log.prepend(h("li", { data: { job: ev.job_id, seq: ev.seq } },
        h("span", { class: "mono", text: short(ev.job_id) }), ` #${ev.seq} ${ev.event}`,
        ev.phase ? ` · ${ev.phase}` : "", ` · ${Math.round(ev.progress * 100)}%`, ev.message ? ` · ${ev.message}` : ""));
      while (log.children.length > 40) log.lastChild.remove();
    });
    // Every known agent's events, so a job started after the page opened is seen from its
    // first event.
    for (const a of await api("/agents")) watchAgent(a.agent_id);
    await refresh();
    every(4000, () => refresh().catch((e) => failed(list, e)));
  }

  async function packetsView(root, view) {
    const packets = await api("/packets");
    if (view !== state.view) return;
    root.append(section("Packets",
      packets.length ? table(["packet", "kind", "task", "compiled for", "base", "size", "quantization", "audit", "training run", "signed by", "created", "running on"],
        packets.map((p) => h("tr", { data: { packet: p.packet_id } },
          h("td", { class: "mono", title: p.packet_id, text: short(p.packet_id) }), h("td", { text: p.kind }), h("td", { text: p.task }),
          h("td", { text: p.agent_id }), h("td", { class: "mono", text: short(p.base_packet_id) }),
          h("td", { class: "n", text: `${p.size} B` }), h("td", { text: `${p.quantization}, zstd ${p.compression_level}` }),
          h("td", {}, badge(p.audit === "Approved" ? "approved" : "forced"), " ", p.audit_summary,
            p.trained_on_deleted_data ? h("span", { class: "error", text: " (trained on deleted data)" }) : ""),
          h("td", { class: "mono" }, link(`#/run/${p.training_id}`, short(p.training_id))),
          h("td", { class: "mono", title: p.signed_by, text: short(p.signed_by) }),
          h("td", { text: time(p.created_at) }),
          h("td", { text: p.running_on.join(", ") || "—" })))) : note("No packet has been compiled yet.")));
  }

  // A training run or a simulation: its figures, its audit, its phantom paths.
  async function runView(root, view, id) {
    const job = await api(`/jobs/${encodeURIComponent(id)}`);
    if (view !== state.view) return;
    const head = section(`${job.kind} ${short(job.id)}`, kv([
      ["status", badge(job.status)], ["task", job.task], ["agent", job.agent_id],
      ["phase", job.phase || "—"], ["progress", bar(job.progress)],
      ["created", time(job.created_at)], ["took", duration(job.started_at, job.finished_at)],
      ["error", job.error ? `${job.error.code}: ${job.error.message}` : "—"],
    ]));
    head.dataset.job = job.id;
    head.dataset.status = job.status;
    root.append(head);
    if (job.status === "queued" || job.status === "running") {
      watchAgent(job.agent_id);
      listeners.add((ev) => {
        if (ev.job_id !== job.id) return;
        if (ev.status !== "queued" && ev.status !== "running") route();
        else {
          head.dataset.status = ev.status;
          const dd = head.querySelectorAll("dd");
          dd[0].replaceChildren(badge(ev.status));
          dd[3].textContent = ev.phase || "—";
          dd[4].replaceChildren(bar(ev.progress));
        }
      });
      root.append(note("The run's figures appear when it completes."));
      return;
    }
    const r = job.result;
    if (!r || job.kind === "compilation") return;
    fitSection(root, r.world_model);
    if (r.distill) distillSection(root, r);
    if (job.kind === "simulation") {
      root.append(section("Returns in imagination", kv([
        ["paths × steps", `${r.paths} × ${r.horizon} (planner: ${r.planner})`],
        ["mean return", num(r.mean_return)], ["still alive at the end", num(r.success_probability)],
        ["mean member disagreement", num(r.mean_uncertainty)]])));
    }
    if (r.audit) auditSection(root, r.audit);
    if (r.phantom) phantomSection(root, r.phantom, r.audit);
  }

  function fitSection(root, fit) {
    const s = section("World model fit");
    root.append(s);
    s.append(kv([
      ["transitions", fit.transitions], ["fitted by this job", fit.fitted ? "yes" : `no: loaded checkpoint ${fit.checkpoint || ""}`],
      ["fine-tuned from", fit.prior || "—"], ["epochs", fit.epochs ?? "—"], ["seconds", num(fit.seconds)],
      ["held-out MSE per member", (fit.holdout_mse || []).map((v) => num(v, 3)).join(", ") || "—"],
      ["left out by the screen", fit.screen ? `${fit.screen.dropped} of ${fit.screen.kept + fit.screen.dropped}` : "—"],
    ]));
    const hist = fit.history || [];
    if (!hist.length) { s.append(note("No per-epoch history: this job loaded the model fitted by an earlier job with the same data and settings.")); return; }
    const x = hist.map((e) => e.epoch);
    const members = Math.max(0, ...hist.map((e) => e.holdout_mse.length));
    const grid = h("div", { class: "charts" });
    s.append(grid);
    const series = [];
    for (let m = 0; m < members; m++) series.push({ name: `member ${m}`, x, y: hist.map((e) => e.holdout_mse[m]) });
    Charts.line(grid, { id: "chart-fit", title: "Held-out error per ensemble member", xLabel: "epoch", yLabel: "MSE (normalized units)", log: true, series });
    // The training loss is a Gaussian negative log-likelihood: it may go below zero, so it
    // gets a linear axis of its own.
    Charts.line(grid, { id: "chart-fit-train", title: "Training loss (all members)", xLabel: "epoch", yLabel: "negative log-likelihood",
      series: [{ name: "mean training loss of the epoch", x, y: hist.map((e) => e.train_loss) }] });
  }

  function distillSection(root, r) {
    const rounds = r.distill.rounds || [];
    const s = section("Distillation");
    root.append(s);
    s.append(kv([
      ["rounds", r.rounds],
      ["passes, scored by long imagined paths", r.distill.passes && r.distill.passes.length
        ? `${r.distill.passes.map((v) => num(v)).join(", ")}; kept pass ${r.distill.chosen_pass + 1}` : "one pass"],
      ["labels (last round)", r.labels ?? "—"], ["paths left out by the auditor", r.rejected_paths],
      ["trainable parameters", r.trainable_params], ["seconds", num(r.distill.seconds)],
      ["imagined return of the final policy", r.imagined_return && r.imagined_return.count
        ? `${num(r.imagined_return.mean)} ± ${num(r.imagined_return.std, 3)} (min ${num(r.imagined_return.min)}, max ${num(r.imagined_return.max)}, ${r.imagined_return.count} paths)` : "—"],
      ["still alive at the end", num(r.imagined_survival)],
      ["terminal value", r.terminal_value ? `mean value ${num(r.terminal_value.mean_value)}, last loss ${num(r.terminal_value.last_loss)}, ${num(r.terminal_value.seconds, 3)} s` : "none (continuous actions)"],
    ]));
    const grid = h("div", { class: "charts" });
    s.append(grid);
    const x = rounds.map((p) => p.iteration);
    Charts.line(grid, { id: "chart-rounds-return", title: "The student's imagined return, before each round's fit", xLabel: "round", yLabel: "return (reward units)",
      series: [{ name: "mean imagined return", x, y: rounds.map((p) => p.imagined_return ?? NaN), dots: true }] });
    const fitSeries = [{ name: "training loss", x, y: rounds.map((p) => p.loss), dots: true }];
    if (rounds.some((p) => p.accuracy != null)) fitSeries.push({ name: "label accuracy (share)", x, y: rounds.map((p) => p.accuracy ?? NaN), dots: true, dash: true });
    if (rounds.some((p) => p.mean_abs_error != null)) fitSeries.push({ name: "mean abs. error (box widths)", x, y: rounds.map((p) => p.mean_abs_error ?? NaN), dots: true, dash: true });
    Charts.line(grid, { id: "chart-rounds-fit", title: "The student's fit after each round", xLabel: "round", yLabel: "loss / share", series: fitSeries });
    s.append(table(["round", "labels", "paths", "rejected", "imagined return", "loss", "accuracy", "labelling (s)"],
      rounds.map((p) => h("tr", {}, [p.iteration, p.labels, p.paths, p.rejected_paths, num(p.imagined_return), num(p.loss), num(p.accuracy ?? p.mean_abs_error), num(p.label_seconds, 3)]
        .map((v) => h("td", { class: "n", text: v }))))));
  }

  const DETECTOR = {
    exploitation: "model exploitation", disagreement: "member disagreement", reward_high: "reward spike (above)",
    reward_low: "reward spike (below)", distribution_shift: "distribution shift", rejected_share: "rejected share",
  };
  function auditSection(root, audit) {
    const s = section("The auditor's verdict",
      h("p", {}, badge(audit.approved ? "approved" : "rejected"), ` ${audit.paths} paths audited, ${Math.round(audit.rejected_share * 100)}% rejected`),
      audit.reasons.length ? h("ul", {}, audit.reasons.map((t) => h("li", { text: t }))) : "");
    root.append(s);
    if (audit.detectors && audit.detectors.length) {
      s.append(table(["detector", "worst figure", "threshold", "fires when", "paths flagged", "figure"],
        audit.detectors.map((d) => {
          const over = d.below ? d.measured < d.threshold : d.measured > d.threshold;
          return h("tr", { class: over ? "over" : "", data: { detector: d.detector } },
            h("td", { text: DETECTOR[d.detector] || d.detector }), h("td", { class: "n", text: num(d.measured) }),
            h("td", { class: "n", text: num(d.threshold) }), h("td", { text: d.below ? "below" : "above" }),
            h("td", { class: "n", text: d.flagged }), h("td", { text: d.meaning }));
        }), { class: "detectors" }));
    }
    s.append(h("details", {}, h("summary", { text: "All figures" }),
      table(["figure", "value"], Object.entries(audit.figures).map(([k, v]) => h("tr", {}, h("td", { class: "mono", text: k }), h("td", { class: "n", text: num(v, 6) }))))));
    if (audit.agents_advice) s.append(note(audit.agents_advice));
    const w = section("What could go wrong");
    root.append(w);
    const modes = (audit.failures && audit.failures.modes) || [];
    w.append(modes.length
      ? h("ul", { class: "modes" }, modes.map((m) => h("li", { data: { kind: m.kind } }, h("strong", { text: FAILURE[m.kind] || m.kind }), `: ${m.description}`)))
      : note(`No failure predicted on the ${audit.paths} audited paths.`));
  }

  const FAILURE = { termination: "termination", exploitation: "exploitation", reward_spike: "reward spike", distribution_shift: "leaves the data", non_finite: "non-finite" };
  const FAILURE_COLOR = { termination: "#dc2626", exploitation: "#7c3aed", reward_spike: "#d97706", distribution_shift: "#0891b2", non_finite: "#111827" };

  function phantomSection(root, ph, audit) {
    const s = section("Phantom paths",
      note(`${ph.paths.length} real start states, each imagined by all ${ph.members} ensemble members for ${ph.horizon} steps, steered by the ${ph.steering === "policy" ? "trained policy" : "planner"}. ` +
        "The band spans the members; the dashed line is what really happened from the same start, and the second band is the model replaying the actions really taken. Step t is the state after the t-th action; values are in the task's observation units."));
    root.append(s);
    if (!ph.paths.length) return;
    // Failures predicted per path, listed.
    s.append(table(["start", "agent", "members approved", "predicted failures (member: kind at step)"],
      ph.paths.map((p, i) => h("tr", { data: { path: i } },
        h("td", { text: `#${i + 1} (transition ${p.start_index})` }), h("td", { text: p.agent_id || "—" }),
        h("td", { class: "n", text: `${p.approved_members} / ${ph.members}` }),
        h("td", { text: p.failures.map((f) => `${f.member}: ${FAILURE[f.kind]} at ${f.step + 1}`).join("; ") || "none" }))), { class: "failures" }));
    const picker = h("div", { class: "picker", role: "tablist" });
    const plots = h("div", { class: "charts" });
    s.append(picker, plots);
    const show = (i) => {
      picker.querySelectorAll("button").forEach((b, k) => b.setAttribute("aria-selected", String(k === i)));
      plots.replaceChildren();
      plots.dataset.path = i;
      drawPath(plots, ph, ph.paths[i]);
    };
    ph.paths.forEach((p, i) => picker.append(h("button", { class: "small", role: "tab", text: `start #${i + 1}${p.failures.length ? " ⚠" : ""}`, onclick: () => show(i) })));
    show(0);
  }

  function drawPath(plots, ph, p) {
    const steps = (n) => Array.from({ length: n }, (_, t) => t + 1);
    const im = p.imagined;
    const markers = [];
    const seen = new Set();
    for (const f of p.failures) {
      const key = `${f.kind}@${f.step}`;
      if (seen.has(key)) continue;
      seen.add(key);
      markers.push({ x: f.step + 1, label: FAILURE[f.kind], color: FAILURE_COLOR[f.kind] });
    }
    // Where the imagined episode's odds of going on fall below one half (the members'
    // mean): beyond it the band shows what the model imagines after an ending.
    const end = im.alive.findIndex((a) => a < 0.5);
    if (end >= 0) markers.push({ x: end + 1, label: "P(alive) < ½", color: "#6b7280" });
    const kinds = [...new Set(p.failures.map((f) => f.kind))];
    const legendMarkers = kinds.map((k) => ({ x: NaN, legend: `predicted ${FAILURE[k]}`, color: FAILURE_COLOR[k] }));
    for (let d = 0; d < ph.obs_dim; d++) {
      const series = [{ name: "imagined (member mean, band: min–max)", x: steps(im.mean.length), y: im.mean.map((v) => v[d]), band: { low: im.low.map((v) => v[d]), high: im.high.map((v) => v[d]) } }];
      if (p.real) {
        series.push({ name: "real", x: steps(p.real.obs.length), y: p.real.obs.map((v) => v[d]), dash: true, color: "#111827" });
        const rp = p.real.replayed;
        series.push({ name: "model on the real actions", x: steps(rp.mean.length), y: rp.mean.map((v) => v[d]), band: { low: rp.low.map((v) => v[d]), high: rp.high.map((v) => v[d]) }, color: "#059669" });
      }
      Charts.line(plots, { id: `chart-phantom-obs-${d}`, title: `Observation ${d}`, xLabel: "step", yLabel: `obs[${d}] (task units)`, series, markers: markers.concat(legendMarkers) });
    }
    const rewards = [{ name: "imagined reward (member mean)", x: steps(im.reward.length), y: im.reward }];
    if (p.real) rewards.push({ name: "real reward", x: steps(p.real.reward.length), y: p.real.reward, dash: true, color: "#111827" });
    Charts.line(plots, { id: "chart-phantom-reward", title: "Reward per step", xLabel: "step", yLabel: "reward (task units)", series: rewards,
      markers, hlines: [{ y: ph.reward_range[0], label: "lowest real reward" }, { y: ph.reward_range[1], label: "highest real reward" }] });
    const unc = [{ name: "imagined", x: steps(im.uncertainty.length), y: im.uncertainty }];
    if (p.real) unc.push({ name: "on the real actions", x: steps(p.real.replayed.uncertainty.length), y: p.real.replayed.uncertainty, color: "#059669" });
    Charts.line(plots, { id: "chart-phantom-uncertainty", title: "Member disagreement", xLabel: "step", yLabel: "u (normalized units)", series: unc, markers,
      hlines: [{ y: ph.disagreement_threshold, label: "τ_u: beyond real held-out data", color: "#dc2626" }] });
    Charts.line(plots, { id: "chart-phantom-alive", title: "Probability the imagined episode goes on", xLabel: "step", yLabel: "probability",
      series: [{ name: "alive and in the data's region (member mean)", x: steps(im.alive.length), y: im.alive }], markers,
      hlines: [{ y: 0.5, label: "even odds" }] });
  }

  // --- routing -----------------------------------------------------------------------
  const VIEWS = { overview, jobs: jobsView, packets: packetsView, run: runView };
  async function route() {
    closeLive();
    const view = ++state.view;
    const [, name = "overview", arg] = (location.hash || "#/overview").split("/");
    document.querySelectorAll("nav a").forEach((a) => a.setAttribute("aria-current", String(a.dataset.view === name)));
    const root = h("div", { class: "view", data: { view: name } });
    main().replaceChildren(root);
    try {
      await (VIEWS[name] || overview)(root, view, decodeURIComponent(arg || ""));
      if (view === state.view) root.dataset.ready = "true";
    } catch (e) {
      failed(root, e);
    }
  }

  async function boot() {
    let me;
    try {
      me = await api("/whoami");
    } catch (e) {
      if (!(e instanceof AuthError)) failed(main(), e);
      return;
    }
    if (!me.role) {
      showLogin(state.token ? "That token is not accepted. Enter another." : "This server needs a token.");
      return;
    }
    state.me = me;
    const who = document.getElementById("who");
    who.replaceChildren(`${state.me.role}${state.me.agents ? ` of ${state.me.agents.join(", ")}` : ""}${state.me.open ? " (open server)" : ""}`);
    if (state.token) who.append(" ", h("button", { class: "small", text: "Sign out", onclick: () => {
      sessionStorage.removeItem(TOKEN_KEY); state.token = ""; state.me = null; showLogin("Signed out.");
    } }));
    document.body.dataset.role = state.me.role;
    route();
  }

  window.addEventListener("hashchange", () => { if (state.me) route(); });
  boot();
})();
