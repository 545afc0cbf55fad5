// The status page: polls /api/status and /api/deadletters and renders them.
// Plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const POLL_MS = 1500;
const HISTORY_MS = 10 * 60 * 1000;
const history = []; // {t, backlog}
let peakBacklog = 0;
let actions = false;
let pendingGroup = null; // key of the group whose replay awaits confirmation
let lastDeadLetters = null;

// The replay token (the worker's --ui-token-file): from the URL's fragment
// (#token=…, which browsers never send to a server; `worker demo` prints
// such a URL) or typed in; kept for this tab only.
const TOKEN_KEY = "codearts-recover-ui-token";
(function takeTokenFromFragment() {
  const m = /^#token=([^&]+)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  window.history.replaceState(null, "", location.pathname + location.search); // "history" below is the backlog's
})();
const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
const fmt1 = (n) => (n >= 100 ? fmt(n) : (Math.round(n * 10) / 10).toLocaleString("en-US"));

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "style") Object.assign(e.style, v); // CSSOM: allowed by the page's CSP, unlike style attributes
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
}

function ago(iso) {
  if (!iso) return "–";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 1) return "just now";
  return duration(s) + " ago";
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

// ---- status ----

function renderStatus(s) {
  actions = s.actions;
  const mode = $("mode");
  mode.textContent = s.actions ? "actions enabled" : "read-only";
  mode.className = "pill" + (s.actions ? " actions" : "");
  const ready = $("ready");
  if (s.starting) {
    ready.textContent = "starting";
    ready.dataset.state = "warn";
  } else {
    ready.textContent = s.ready ? "ready" : "not ready";
    ready.dataset.state = s.ready ? "ok" : "bad";
  }
  ready.title = s.not_ready || "";
  $("updated").textContent = "updated " + new Date(s.time).toLocaleTimeString();
  const problems = [];
  if (s.starting) problems.push("Starting: connecting to NATS and binding the consumer. " + (s.not_ready || ""));
  if (s.error) problems.push("Reading the streams failed (figures are from the last good read): " + s.error);
  const banner = $("banner");
  banner.hidden = problems.length === 0;
  banner.textContent = problems.join(" · ");
  if (!s.status) return;

  const st = s.status;
  $("streams").textContent = st.stream.name + " · " + st.stream.subjects.join(", ") + (st.consumer ? " · consumer " + st.consumer.name : "");
  const backlog = s.backlog;
  peakBacklog = Math.max(peakBacklog, backlog);
  $("k-backlog").textContent = fmt(backlog);
  $("k-progress").style.width = (peakBacklog ? (100 * (peakBacklog - backlog)) / peakBacklog : 100) + "%";
  $("k-backlog-note").textContent = st.consumer
    ? fmt(st.consumer.pending) + " pending · " + fmt(st.consumer.in_flight) + " in flight"
    : "no consumer yet";

  const d = s.drain;
  if (d) {
    $("k-drain").textContent = d.window_seconds >= 1 || backlog === 0 ? fmt1(Math.max(d.rate_per_second, 0)) : "–";
    let eta;
    if (backlog === 0) eta = "drained";
    else if (d.eta_seconds !== null && d.eta_seconds !== undefined) eta = "ETA " + duration(d.eta_seconds);
    else if (d.rate_per_second < 0) eta = "backlog growing";
    else eta = "ETA –";
    $("k-eta").textContent = eta + (d.window_seconds >= 1 ? " · over " + Math.round(d.window_seconds) + "s" : "");
  }

  const p = s.process;
  const dead = Object.values(p.dead_lettered || {}).reduce((a, b) => a + b, 0);
  $("k-recovered").textContent = fmt(p.recovered);
  $("k-finished-rate").textContent = "by this worker · " + fmt1(p.finished_per_second) + "/s finished";
  $("k-dead").textContent = fmt(dead);
  $("k-dead-note").textContent = "by this worker · " + fmt(st.dlq.messages) + " in the DLQ";
  $("k-rate").textContent = fmt1(p.api_calls_per_second);
  const limit = p.rate_limit;
  $("k-rate-bar").style.width = limit > 0 ? Math.min(100, (100 * p.api_calls_per_second) / limit) + "%" : "0%";
  $("k-limit").textContent = limit > 0
    ? "limit " + fmt1(limit) + "/s" + (p.rate_limit_max > 0 && limit < p.rate_limit_max - 0.5 ? " (lowered from " + fmt1(p.rate_limit_max) + ")" : "")
    : "no rate limit";
  $("k-inflight").textContent = fmt(p.in_flight);
  $("k-concurrency").textContent = p.concurrency ? "concurrency " + fmt(p.concurrency) : "";

  history.push({ t: Date.parse(s.time), backlog });
  while (history.length && history[0].t < Date.parse(s.time) - HISTORY_MS) history.shift();
  renderChart();
  renderBars($("calls"), p.api_calls || {}, statusClass);
  const calls = Object.values(p.api_calls || {}).reduce((a, b) => a + b, 0);
  $("calls-total").textContent = fmt(calls) + " calls by this worker";
  renderBars($("retries"), p.retries || {}, () => "serr");
  renderState(s);
  renderFigures(st);
  renderReplay(s.replay);
  renderCampaigns(s);
}

// ---- campaigns ----

function renderCampaigns(s) {
  const active = (s.campaigns || []).filter((c) => c.active);
  $("campaigns-card").hidden = active.length === 0 && !s.campaigns_error;
  $("campaigns-hint").textContent = s.campaigns_error
    ? "reading the campaigns failed: " + s.campaigns_error
    : "running or finished within the hour";
  $("campaigns").replaceChildren(...active.map(campaignRow));
}

function campaignRow(c) {
  const done = c.enqueued - c.in_flight;
  const dead = c.dead_lettered;
  const reasons = (c.dead_lettered_by || []).map((r) => r.reason + (r.error_code ? " " + r.error_code : "") + " ×" + r.count).join("\n");
  let eta;
  if (c.in_flight === 0) eta = "done";
  else if (c.eta_seconds !== null && c.eta_seconds !== undefined) eta = duration(c.eta_seconds);
  else eta = "–";
  return el("tr", { "data-campaign": c.campaign },
    el("td", {}, el("code", { text: c.campaign }), el("div", { class: "sub-note", text: "started " + ago(c.started_at) + (c.approximate ? " · approximate" : "") })),
    el("td", { class: "progress" }, el("div", { class: "bar" }, el("span", { style: { width: (c.enqueued ? (100 * done) / c.enqueued : 100) + "%" } })),
      el("div", { class: "sub-note", text: (c.enqueued ? Math.floor((100 * done) / c.enqueued) : 100) + "% finished" + (c.repeated ? " · " + fmt(c.repeated) + " repeated" : "") })),
    el("td", { class: "num", "data-k": "enqueued", text: fmt(c.enqueued) }),
    el("td", { class: "num good", "data-k": "recovered", text: fmt(c.recovered), title: fmt(c.verified) + " verified" }),
    el("td", { class: "num", "data-k": "already_enabled", text: fmt(c.already_enabled) }),
    el("td", { class: "num" + (dead ? " bad" : ""), "data-k": "dead_lettered", text: fmt(dead), title: reasons }),
    el("td", { class: "num", "data-k": "in_flight", text: fmt(c.in_flight) }),
    el("td", { class: "num", "data-k": "rate", text: fmt1(c.rate_per_second) + "/s" }),
    el("td", { "data-k": "eta", text: eta }),
    el("td", { class: "act" },
      el("a", { href: c.report, download: c.campaign + "-report.json", "data-k": "report-json", text: "JSON" }), " · ",
      el("a", { href: c.report + "?format=csv", download: c.campaign + "-report.csv", "data-k": "report-csv", text: "CSV" })));
}

function statusClass(k) {
  if (k === "429") return "s429";
  if (k === "error") return "serr";
  return "s" + k[0];
}

function renderBars(box, m, cls) {
  const entries = Object.entries(m).filter(([, v]) => v > 0).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const top = Math.max(1, ...entries.map(([, v]) => v));
  box.replaceChildren(
    ...(entries.length
      ? entries.map(([k, v]) =>
          el("div", { class: "brow", "data-bar": k },
            el("span", { class: "k", text: k }),
            el("span", { class: "track" }, el("span", { class: "fill " + cls(k), style: { width: (100 * v) / top + "%" } })),
            el("span", { class: "n", text: fmt(v) })))
      : [el("div", { class: "hint", text: "none yet" })])
  );
}

function stateRow(name, tagText, tagClass, why) {
  return el("div", { class: "st" },
    el("div", {}, el("div", { text: name }), why ? el("div", { class: "why", text: why }) : null),
    el("span", { class: "tag " + tagClass, text: tagText }));
}

function renderState(s) {
  const p = s.process;
  const rows = [];
  const regions = Object.keys(p.breakers || {}).sort();
  if (regions.length === 0) rows.push(stateRow("Circuit breaker", "closed", "ok", "no call yet"));
  for (const r of regions) {
    const b = p.breakers[r];
    rows.push(stateRow("Circuit breaker " + r, b.replace("_", "-"), b === "closed" ? "ok" : b === "open" ? "bad" : "warn",
      b === "open" ? "the API fails for most calls: no new requests are taken" : b === "half_open" ? "probing the API" : ""));
  }
  rows.push(p.paused
    ? stateRow("Consumption", "paused", "bad", p.pause_reason || "credentials rejected")
    : stateRow("Consumption", p.draining ? "draining" : "running", p.draining ? "warn" : "ok", p.draining ? "shutting down" : ""));
  const until = p.throttled_until ? Date.parse(p.throttled_until) : 0;
  rows.push(until > Date.now()
    ? stateRow("Throttle pause", "paused " + duration((until - Date.now()) / 1000), "warn", "Retry-After from the API")
    : stateRow("Throttle pause", "none", "ok", ""));
  rows.push(s.ready ? stateRow("Readiness", "ready", "ok", "") : stateRow("Readiness", "not ready", "bad", s.not_ready || ""));
  $("state").replaceChildren(...rows);
}

// renderFigures shows every figure of `worker status --json`; data-k is
// the figure's JSON path.
function renderFigures(st) {
  const rows = [];
  const head = (title, key, name) =>
    rows.push(el("tr", { class: "h" }, el("td", { text: title + " " }, el("span", { "data-k": key, text: name })), el("td")));
  const row = (label, key, v, sub) =>
    rows.push(el("tr", {}, el("td", { text: label, class: sub ? "sub" : null }), el("td", { class: "n", "data-k": key, text: fmt(v) })));
  head("request stream", "stream.name", st.stream.name);
  row("messages", "stream.messages", st.stream.messages);
  row("bytes", "stream.bytes", st.stream.bytes);
  row("first seq", "stream.first_seq", st.stream.first_seq);
  row("last seq", "stream.last_seq", st.stream.last_seq);
  if (st.consumer) {
    const c = st.consumer;
    head("consumer", "consumer.name", c.name);
    row("pending", "consumer.pending", c.pending);
    row("in flight", "consumer.in_flight", c.in_flight);
    row("redelivered", "consumer.redelivered", c.redelivered);
    row("waiting pulls", "consumer.waiting_pulls", c.waiting_pulls);
    if (c.paused) rows.push(el("tr", {}, el("td", { text: "paused" }), el("td", { class: "n", "data-k": "consumer.paused", text: "true" })));
  }
  head("dead letters", "dlq.name", st.dlq.name);
  row("messages", "dlq.messages", st.dlq.messages);
  row("bytes", "dlq.bytes", st.dlq.bytes);
  for (const r of Object.keys(st.dlq.by_reason || {}).sort()) row(r, "dlq.by_reason." + r, st.dlq.by_reason[r], true);
  if (st.results) {
    head("results", "results.name", st.results.name);
    row("messages", "results.messages", st.results.messages);
    row("bytes", "results.bytes", st.results.bytes);
  }
  $("figures").replaceChildren(...rows);
}

// ---- chart ----

function renderChart() {
  const svg = $("chart");
  const W = 600, H = 180;
  const ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  };
  const kids = [];
  for (const f of [0.25, 0.5, 0.75]) kids.push(node("line", { class: "grid", x1: 0, x2: W, y1: H * f, y2: H * f }));
  if (history.length >= 2) {
    const t0 = history[0].t, t1 = history[history.length - 1].t;
    const top = Math.max(1, ...history.map((h) => h.backlog)) * 1.1;
    const pts = history.map((h) => [((h.t - t0) / Math.max(1, t1 - t0)) * W, H - (h.backlog / top) * H]);
    const d = pts.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
    kids.push(node("path", { class: "area", d: d + " L" + W + " " + H + " L0 " + H + " Z" }));
    kids.push(node("path", { class: "line", d }));
    $("chart-from").textContent = duration((t1 - t0) / 1000) + " ago";
    $("chart-max").textContent = "peak " + fmt(Math.max(...history.map((h) => h.backlog)));
  }
  svg.replaceChildren(...kids);
}

// ---- dead letters ----

const groupKey = (g) => g.reason + "\u0000" + g.error_code;

function renderDeadLetters(dl) {
  lastDeadLetters = dl;
  actions = dl.actions;
  $("token-form").hidden = !actions || token() !== "";
  $("dl-hint").textContent = fmt(dl.total) + " dead letters, grouped by reason and error code" + (dl.stale ? " (refreshing)" : "");
  const body = $("groups");
  if (!dl.groups.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "empty", text: "No dead letters." })));
    return;
  }
  body.replaceChildren(...dl.groups.map((g) => groupRow(g, dl)));
}

function groupRow(g, dl) {
  const statuses = Object.entries(g.statuses || {}).map(([k, v]) => (k === "0" ? "–" : k) + (Object.keys(g.statuses).length > 1 ? " ×" + v : "")).join(", ");
  const jobs = (g.samples || []).map((s) => s.job_id || "#" + s.dlq_seq).join("\n");
  const tr = el("tr", { "data-group": g.reason + "/" + g.error_code, "data-count": g.count },
    el("td", {}, el("span", { class: "reason " + g.reason, text: g.reason })),
    el("td", {}, el("code", { text: g.error_code || "–" })),
    el("td", { text: statuses }),
    el("td", { class: "num", text: fmt(g.count) }),
    el("td", { text: ago(g.last_failed_at), title: g.last_failed_at || "" }),
    el("td", { class: "msg", text: g.error_msg || "" }),
    el("td", { class: "jobs", text: jobs }),
    el("td", { class: "act" }, actions && token() && g.reason !== "unreadable" ? replayControl(g, dl) : null));
  return tr;
}

function replayControl(g, dl) {
  const key = groupKey(g);
  if (pendingGroup === key) {
    return el("span", {},
      el("button", { class: "confirm", "data-action": "confirm-replay", onclick: () => replay(g, dl),
        text: "Replay " + (g.count > dl.replay_max ? "the oldest " + fmt(dl.replay_max) + " of " + fmt(g.count) : fmt(g.count)) + "?" }),
      " ",
      el("button", { class: "cancel", text: "Cancel", onclick: () => { pendingGroup = null; renderDeadLetters(lastDeadLetters); } }));
  }
  return el("button", { "data-action": "replay", text: "Replay", title: "Publish these dead letters' requests again and remove them",
    onclick: () => { pendingGroup = key; renderDeadLetters(lastDeadLetters); } });
}

async function replay(g, dl) {
  pendingGroup = null;
  const box = $("replay");
  box.hidden = false;
  box.className = "replay";
  box.textContent = "Starting the replay of " + g.reason + " " + (g.error_code || "") + "…";
  try {
    const r = await fetch("api/replay", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Recover-Action": "replay", Authorization: "Bearer " + token() },
      body: JSON.stringify({ reason: g.reason, error_code: g.error_code, up_to_seq: dl.last_seq }),
    });
    const body = await r.json().catch(() => ({}));
    if (r.status === 401) sessionStorage.removeItem(TOKEN_KEY); // ask for it again
    if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
    renderReplay(body.replay);
  } catch (e) {
    box.className = "replay failed";
    box.textContent = "Replay refused: " + e.message;
  }
  poll();
}

function describeFilter(f) {
  const parts = [];
  if (f.reasons) parts.push(f.reasons.join(", "));
  if (f.error_codes) parts.push(f.error_codes.map((c) => c || "no error code").join(", "));
  if (f.statuses) parts.push("status " + f.statuses.join(", "));
  return parts.join(" · ");
}

function renderReplay(r) {
  const box = $("replay");
  if (!r) return;
  box.hidden = false;
  box.dataset.running = r.running ? "true" : "false";
  const what = describeFilter(r.filter);
  if (r.running) {
    box.className = "replay";
    box.textContent = "Replaying " + what + ": " + fmt(r.done) + (r.selected >= 0 ? " of " + fmt(r.selected) : "") + "…";
    return;
  }
  const s = r.summary || {};
  box.className = "replay" + (r.error || s.failed ? " failed" : "");
  box.textContent = "Replayed " + fmt((s.replayed || 0) + (s.already_replayed || 0)) + " of " + fmt(s.matched || 0) + " dead letters (" + what + ")" +
    (s.failed ? ", " + fmt(s.failed) + " failed" : "") + (s.gone ? ", " + fmt(s.gone) + " gone" : "") +
    (r.error ? ": " + r.error : "") + " · " + ago(r.finished_at);
  box.dataset.replayed = String((s.replayed || 0) + (s.already_replayed || 0));
}

function saveToken() {
  const v = $("token").value.trim();
  $("token").value = "";
  if (!v) return;
  sessionStorage.setItem(TOKEN_KEY, v);
  if (lastDeadLetters) renderDeadLetters(lastDeadLetters);
}
$("token-save").addEventListener("click", saveToken);
$("token").addEventListener("keydown", (e) => { if (e.key === "Enter") saveToken(); });

// ---- poll ----

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    const s = await getJSON("api/status");
    renderStatus(s);
    if (!s.starting) renderDeadLetters(await getJSON("api/deadletters"));
    document.body.dataset.loaded = "true";
  } catch (e) {
    const banner = $("banner");
    banner.hidden = false;
    banner.textContent = "Cannot reach the worker: " + e.message;
    $("ready").textContent = "unreachable";
    $("ready").dataset.state = "bad";
  } finally {
    polling = false;
  }
}

poll();
setInterval(poll, POLL_MS);
