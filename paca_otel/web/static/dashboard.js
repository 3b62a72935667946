/* paca-otel dashboard: sign-in, uPlot charts fed from /api/v1 (history) and SSE (live). */
"use strict";
(function () {
  const API = "api/v1/";
  const MAX_POINTS = 3000;
  const $ = (sel) => document.querySelector(sel);
  const state = { range: 300, csrf: null, role: null, charts: {}, alerts: [], source: null,
    names: [], custom: null, lastSample: 0, timers: [] };
  const RANK = { viewer: 0, operator: 1, admin: 2 };
  const COLORS = ["#3559c7", "#c62828", "#1f8f4e", "#c77c00", "#7b3fc4", "#00838f", "#ad1457", "#5d4037"];

  // ---------------------------------------------------------------- units
  function fmt(v, unit) {
    if (v === null || v === undefined || Number.isNaN(v)) return "—";
    switch (unit) {
      case "%": return v.toFixed(1) + " %";
      case "ratio": return (v * 100).toFixed(v < 0.1 ? 2 : 1) + " %";
      case "/s": return (v < 10 ? v.toFixed(2) : v.toFixed(0)) + " req/s";
      case "s": return v < 1 ? (v * 1000).toFixed(v < 0.01 ? 2 : 1) + " ms" : v.toFixed(2) + " s";
      case "ms": return v.toFixed(1) + " ms";
      case "By": case "bytes": return bytes(v);
      case "requests": return v.toFixed(0);
      default: return (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-2) ? v.toExponential(2) : +v.toPrecision(4)) + (unit ? " " + unit : "");
    }
  }
  function bytes(v) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return v.toFixed(i ? 1 : 0) + " " + units[i];
  }
  function ago(seconds) {
    if (seconds < 60) return Math.max(0, Math.round(seconds)) + " s";
    if (seconds < 3600) return Math.round(seconds / 60) + " m";
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  }
  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }
  // The monitoring API's own routes (this page's prefix) are left out of the per-route charts.
  const OWN_PREFIX = location.pathname.replace(/\/+$/, "") + "/";
  function ownRoute(route) { return typeof route === "string" && (route + "/").startsWith(OWN_PREFIX); }
  function duration(seconds) {
    if (!seconds) return "0 s";
    if (seconds % 3600 === 0) return seconds / 3600 + " h";
    if (seconds % 60 === 0) return seconds / 60 + " m";
    return seconds + " s";
  }
  function labelText(labels) {
    return Object.entries(labels || {}).map(([k, v]) => k + "=" + v).join(", ");
  }

  // ---------------------------------------------------------------- HTTP
  async function api(path, options) {
    const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    if (opts.body !== undefined) {
      opts.headers["content-type"] = "application/json";
      opts.body = JSON.stringify(opts.body);
    }
    if (opts.method && opts.method !== "GET" && state.csrf) opts.headers["x-csrf-token"] = state.csrf;
    const response = await fetch(API + path, opts);
    if (response.status === 401) { requireSignIn(); throw new Error("signed out"); }
    const body = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const detail = body && body.detail;
      const msg = Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : String(detail || response.status);
      throw new Error(msg);
    }
    return body;
  }

  // ---------------------------------------------------------------- sign-in
  function requireSignIn() {
    document.body.dataset.auth = "required";
    document.body.dataset.state = "signed-out";
    $("#signin").hidden = false;
    $("#signout").hidden = true;
    $("#who").textContent = "";
    $("#status").textContent = "signed out";
    $("#status").className = "pill";
    stop();
  }
  async function signIn(event) {
    event.preventDefault();
    const token = $("#token").value.trim();
    $("#signin-error").textContent = "";
    try {
      const response = await fetch(API + "session", { method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json" }, body: JSON.stringify({ token: token }) });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) { $("#signin-error").textContent = "Sign-in refused: " + (body.detail || response.status); return; }
      $("#token").value = "";
      signedIn(body);
    } catch (err) {
      $("#signin-error").textContent = "Sign-in failed: " + err.message;
    }
  }
  async function signOut() {
    try { await api("session", { method: "DELETE" }); } catch (err) { /* signed out either way */ }
    state.csrf = null;
    requireSignIn();
  }
  function signedIn(info) {
    state.csrf = info.csrf_token;
    state.role = info.role;
    document.body.dataset.auth = "ok";
    document.body.dataset.role = info.role || "";
    $("#signin").hidden = true;
    $("#signout").hidden = false;
    $("#who").textContent = info.name + " (" + info.role + ")";
    $("#rule-form").hidden = !can("admin");
    start();
  }
  function can(role) { return (RANK[state.role] ?? -1) >= RANK[role]; }

  // ---------------------------------------------------------------- charts
  const CHARTS = {
    cpu: { unit: "%", metrics: ["cpu_usage"] },
    memory: { unit: "%", metrics: ["memory_usage"] },
    disk: { unit: "%", metrics: ["disk_usage"] },
    requests: { unit: "/s", metrics: ["request_rate"], overall: true },
    errors: { unit: "ratio", metrics: ["error_rate"], overall: true },
    p50: { unit: "s", metrics: ["latency_p50"], byRoute: true },
    p95: { unit: "s", metrics: ["latency_p95"], byRoute: true },
    p99: { unit: "s", metrics: ["latency_p99"], byRoute: true },
  };
  function chartFor(key, unit) {
    let chart = state.charts[key];
    if (!chart) {
      chart = state.charts[key] = { key: key, unit: unit, series: new Map(), plot: null, keys: "" };
    }
    return chart;
  }
  function seriesKey(metric, labels, byRoute) {
    if (byRoute) return labels.route ? (labels.method ? labels.method + " " : "") + labels.route : "all routes";
    const rest = labelText(labels);
    return rest ? metric + " {" + rest + "}" : metric;
  }
  function addPoint(chart, name, ts, value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return;
    let s = chart.series.get(name);
    if (!s) { s = new Map(); chart.series.set(name, s); }
    s.set(Math.round(ts), value);
    if (s.size > MAX_POINTS) s.delete(s.keys().next().value);
  }
  function render(chart) {
    const container = document.querySelector('[data-chart="' + chart.key + '"] .plot');
    const horizon = Date.now() / 1000 - state.range;
    const names = [...chart.series.keys()].sort();
    const times = new Set();
    let drawn = 0;
    for (const name of names) {
      const s = chart.series.get(name);
      for (const ts of [...s.keys()]) { if (ts < horizon) s.delete(ts); else times.add(ts); }
    }
    const xs = [...times].sort((a, b) => a - b);
    const data = [xs];
    for (const name of names) {
      const s = chart.series.get(name);
      data.push(xs.map((t) => { const v = s.get(t); if (v !== undefined) drawn++; return v === undefined ? null : v; }));
    }
    container.parentElement.dataset.points = String(drawn);
    if (!xs.length) return;
    const keys = names.join("|");
    if (chart.plot && chart.keys === keys) { chart.plot.setData(data); return; }
    if (chart.plot) chart.plot.destroy();
    container.textContent = "";
    chart.keys = keys;
    const unit = chart.unit;
    chart.plot = new uPlot({
      width: Math.max(300, container.clientWidth || 400), height: 200,
      scales: { x: { time: true, range: (u, min, max) => (min === max ? [min - 60, max + 5] : [min, max]) }, y: { range: (u, min, max) => unit === "%" ? [0, 100] : [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
      axes: [{}, { size: 84, values: (u, splits) => splits.map((v) => fmt(v, unit)) }],
      series: [{}].concat(names.map((name, i) => ({ label: name, stroke: COLORS[i % COLORS.length], width: 1.5,
        spanGaps: true, value: (u, v) => fmt(v, unit), points: { show: xs.length < 3 } }))),
      legend: { show: names.length <= 8, live: true },
    }, data, container);
  }
  function renderAll() { for (const chart of Object.values(state.charts)) render(chart); }

  async function loadHistory() {
    const step = Math.max(1, Math.round(state.range / 400));
    const jobs = [];
    for (const [key, spec] of Object.entries(CHARTS)) {
      const chart = chartFor(key, spec.unit);
      chart.series.clear();
      for (const metric of spec.metrics) {
        let q = "metrics/" + encodeURIComponent(metric) + "/series?window=" + state.range + "&step=" + step;
        if (spec.overall) q += "&match=" + encodeURIComponent('route=""');
        jobs.push(api(q).then((reply) => {
          for (const s of reply.series) {
            if (spec.byRoute && ownRoute(s.labels.route)) continue;
            const name = seriesKey(metric, s.labels, spec.byRoute);
            for (const [ts, v] of s.points) addPoint(chart, name, ts, v);
          }
        }));
      }
    }
    jobs.push(loadCustom(step));
    await Promise.allSettled(jobs);
    renderAll();
  }
  async function loadNames() {
    const reply = await api("metrics/names");
    const picker = $("#picker");
    const keep = picker.value || state.custom;
    picker.textContent = "";
    const aliasNames = new Set(Object.values(CHARTS).flatMap((c) => c.metrics));
    const names = reply.names.filter((n) => !aliasNames.has(n));
    for (const n of names) picker.appendChild(new Option(n, n));
    const preferred = names.find((n) => n === keep) || names.find((n) => !n.startsWith("paca_otel")) || names[0];
    if (preferred) picker.value = preferred;
    state.custom = picker.value || null;
  }
  async function loadCustom(step) {
    const name = state.custom;
    const chart = chartFor("custom", "");
    chart.series.clear();
    if (!name) return;
    const reply = await api("metrics/" + encodeURIComponent(name) + "/series?window=" + state.range + "&step=" + (step || 1));
    chart.unit = reply.unit || "";
    for (const s of reply.series.slice(0, 8)) {
      for (const [ts, v] of s.points) addPoint(chart, seriesKey(name, s.labels, false), ts, v);
    }
  }

  // ---------------------------------------------------------------- live
  function onSample(event) {
    const sample = JSON.parse(event.data);
    const ts = sample.timestamp;
    state.lastSample = ts;
    document.body.dataset.state = "live";
    document.body.dataset.lastSample = String(ts);
    for (const [key, spec] of Object.entries(CHARTS)) {
      const chart = chartFor(key, spec.unit);
      const metric = spec.metrics[0];
      if (spec.byRoute) {
        const field = metric;
        for (const r of sample.routes) {
          if (!ownRoute(r.route)) addPoint(chart, seriesKey(metric, { route: r.route, method: r.method }, true), ts, r[field]);
        }
        addPoint(chart, "all routes", ts, sample.aliases[metric]);
      } else {
        addPoint(chart, seriesKey(metric, {}, false), ts, sample.aliases[metric]);
      }
    }
    const units = { cpu_usage: "%", memory_usage: "%", disk_usage: "%", request_rate: "/s", error_rate: "ratio", latency_p95: "s" };
    for (const [alias, unit] of Object.entries(units)) $("#" + alias).textContent = fmt(sample.aliases[alias], unit);
    renderAlerts(sample.alerts);
    $("#updated").textContent = new Date(ts * 1000).toLocaleTimeString();
    $("#status").textContent = "live";
    $("#status").className = "pill ok";
    renderAll();
    // how long after the server took the sample the page showed it (same clock on one host)
    document.body.dataset.lagMs = String(Math.round(Date.now() - ts * 1000));
  }
  function openStream() {
    if (state.source) state.source.close();
    const source = new EventSource(API + "events");
    source.addEventListener("sample", onSample);
    source.addEventListener("unconfigured", () => { $("#status").textContent = "not configured"; });
    source.onerror = () => { $("#status").textContent = "reconnecting…"; $("#status").className = "pill bad"; };
    state.source = source;
  }

  // ---------------------------------------------------------------- tables
  function renderAlerts(alerts) {
    state.alerts = alerts;
    $("#alert_count").textContent = String(alerts.filter((a) => a.state === "firing").length) + " / " + alerts.length;
    const body = $("#alerts tbody");
    body.textContent = "";
    if (!alerts.length) { const tr = body.insertRow(); const td = text("td", "No active alerts."); td.colSpan = 7; tr.appendChild(td); return; }
    const now = Date.now() / 1000;
    for (const a of alerts) {
      const tr = body.insertRow();
      tr.dataset.rule = a.rule;
      tr.appendChild(text("td", a.rule));
      tr.appendChild(text("td", a.state + (a.silenced_by ? " (silenced)" : ""), "state-" + a.state));
      tr.appendChild(text("td", a.severity));
      tr.appendChild(text("td", ago(now - a.active_since)));
      tr.appendChild(text("td", a.value === null ? "—" : +a.value.toPrecision(4)));
      tr.appendChild(text("td", labelText(a.labels)));
      const td = document.createElement("td");
      if (can("operator") && !a.silenced_by) {
        const b = text("button", "Silence 1 h");
        b.addEventListener("click", () => silence(a.rule));
        td.appendChild(b);
      }
      tr.appendChild(td);
    }
  }
  async function silence(rule) {
    try {
      await api("silences", { method: "POST", body: { matchers: [{ name: "alertname", op: "=", value: rule }], duration: 3600, comment: "from the dashboard" } });
      await loadSilences();
    } catch (err) { $("#status").textContent = "silence failed: " + err.message; }
  }
  async function loadRules() {
    const rules = await api("rules");
    const body = $("#rules tbody");
    body.textContent = "";
    if (!rules.length) { const tr = body.insertRow(); const td = text("td", "No rules."); td.colSpan = 6; tr.appendChild(td); }
    for (const r of rules) {
      const tr = body.insertRow();
      tr.dataset.rule = r.name;
      tr.appendChild(text("td", r.name));
      const cond = document.createElement("td"); cond.appendChild(text("code", r.condition)); tr.appendChild(cond);
      tr.appendChild(text("td", duration(r.for)));
      tr.appendChild(text("td", r.severity));
      tr.appendChild(text("td", (r.channels || []).join(", ") || "log"));
      const td = document.createElement("td");
      if (can("admin")) {
        const edit = text("button", "Edit");
        edit.addEventListener("click", () => editRule(r));
        const del = text("button", "Delete", "danger");
        del.addEventListener("click", () => deleteRule(r.name));
        td.append(edit, del);
      }
      tr.appendChild(td);
    }
  }
  function editRule(rule) {
    const form = $("#rule-form");
    form.hidden = false;
    form.dataset.editing = rule.name;
    form.elements.name.value = rule.name;
    form.elements.name.readOnly = true;
    form.elements.condition.value = rule.condition;
    form.elements.for.value = rule.for ? rule.for + "s" : "";
    form.elements.severity.value = rule.severity;
    $("#rule-form-title").textContent = "Edit " + rule.name;
  }
  function resetRuleForm() {
    const form = $("#rule-form");
    form.reset();
    delete form.dataset.editing;
    form.elements.name.readOnly = false;
    $("#rule-form-title").textContent = "Add a rule";
    $("#rule-error").textContent = "";
  }
  async function saveRule(event) {
    event.preventDefault();
    const form = $("#rule-form");
    const body = { name: form.elements.name.value.trim(), condition: form.elements.condition.value.trim(), severity: form.elements.severity.value };
    if (form.elements.for.value.trim()) body["for"] = form.elements.for.value.trim();
    const editing = form.dataset.editing;
    try {
      if (editing) await api("rules/" + encodeURIComponent(editing), { method: "PUT", body: body });
      else await api("rules", { method: "POST", body: body });
      resetRuleForm();
      await loadRules();
    } catch (err) { $("#rule-error").textContent = err.message; }
  }
  async function deleteRule(name) {
    try { await api("rules/" + encodeURIComponent(name), { method: "DELETE" }); await loadRules(); }
    catch (err) { $("#rule-error").textContent = err.message; }
  }
  async function loadSilences() {
    const silences = (await api("silences")).filter((s) => s.active);
    const body = $("#silences tbody");
    body.textContent = "";
    if (!silences.length) { const tr = body.insertRow(); const td = text("td", "No active silences."); td.colSpan = 5; tr.appendChild(td); }
    for (const s of silences) {
      const tr = body.insertRow();
      tr.appendChild(text("td", s.matchers.map((m) => m.name + m.op + '"' + m.value + '"').join(", ")));
      tr.appendChild(text("td", new Date(s.ends_at * 1000).toLocaleString()));
      tr.appendChild(text("td", s.comment));
      tr.appendChild(text("td", s.created_by || "—"));
      const td = document.createElement("td");
      if (can("operator")) {
        const b = text("button", "Expire");
        b.addEventListener("click", async () => { try { await api("silences/" + s.id, { method: "DELETE" }); await loadSilences(); } catch (err) { /* shown on next load */ } });
        td.appendChild(b);
      }
      tr.appendChild(td);
    }
  }
  async function loadReport() {
    const reply = await api("reports");
    const box = $("#report");
    box.textContent = "";
    const report = reply.items[0];
    if (!report) { box.appendChild(text("p", "No analysis report yet: it appears here once metric history is on (history_enabled).", "empty")); return; }
    box.appendChild(text("h3", report.title + " — " + new Date(report.start * 1000).toLocaleString() + " to " + new Date(report.end * 1000).toLocaleTimeString()));
    for (const line of report.summary || []) box.appendChild(text("p", line));
    const list = document.createElement("ul");
    for (const f of report.findings || []) list.appendChild(text("li", f.level + " · " + f.area + ": " + f.title));
    for (const s of report.suggestions || []) list.appendChild(text("li", "suggestion: " + (s.title || "")));
    box.appendChild(list);
  }

  // ---------------------------------------------------------------- lifecycle
  function stop() {
    if (state.source) { state.source.close(); state.source = null; }
    for (const t of state.timers) clearInterval(t);
    state.timers = [];
  }
  async function start() {
    stop();
    document.body.dataset.state = "loading";
    $("#status").textContent = "loading…";
    openStream();
    const quiet = (p) => p.catch(() => undefined);
    await quiet(loadNames());
    await Promise.all([quiet(loadHistory()), quiet(loadRules()), quiet(loadSilences()), quiet(loadReport())]);
    if (document.body.dataset.state === "loading") document.body.dataset.state = "loaded";
    state.timers.push(setInterval(() => { quiet(loadRules()); quiet(loadSilences()); }, 10000));
    // the picked metric has no live feed: its stored series is re-read every 5 s
    state.timers.push(setInterval(() => { loadCustom(Math.max(1, Math.round(state.range / 400))).then(() => render(chartFor("custom", ""))).catch(() => undefined); }, 5000));
    state.timers.push(setInterval(() => { quiet(loadReport()); quiet(loadNames()); }, 60000));
    state.timers.push(setInterval(() => { if (state.range > 300) quiet(loadHistory()); }, 30000));
  }
  function setRange(seconds) {
    state.range = seconds;
    for (const b of document.querySelectorAll("#ranges button")) b.classList.toggle("active", Number(b.dataset.range) === seconds);
    loadHistory().catch(() => undefined);
  }
  async function boot() {
    $("#signin-form").addEventListener("submit", signIn);
    $("#signout").addEventListener("click", signOut);
    $("#rule-form").addEventListener("submit", saveRule);
    $("#rule-cancel").addEventListener("click", resetRuleForm);
    $("#picker").addEventListener("change", () => { state.custom = $("#picker").value; loadCustom(Math.max(1, Math.round(state.range / 400))).then(renderAll).catch(() => undefined); });
    for (const b of document.querySelectorAll("#ranges button")) b.addEventListener("click", () => setRange(Number(b.dataset.range)));
    window.addEventListener("resize", () => { for (const c of Object.values(state.charts)) if (c.plot) { c.plot.destroy(); c.plot = null; } renderAll(); });
    try {
      const response = await fetch(API + "session", { credentials: "same-origin" });
      const info = await response.json();
      if (info.signed_in) signedIn(info); else requireSignIn();
    } catch (err) {
      $("#status").textContent = "API unreachable";
      $("#status").className = "pill bad";
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot); else boot();
})();
