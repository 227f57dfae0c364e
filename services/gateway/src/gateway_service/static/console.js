// The ops console: log in as an admin, then poll the gateway's admin console JSON and draw it.
// Every value from the server is set as text (never as HTML).
"use strict";

const POLL_MS = 1500;
const TOKEN_KEY = "console-token";
const DASH = "—";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (name === "class") node.className = value;
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const fmt = (value) => (value === undefined || value === null ? DASH : typeof value === "number" ? String(Math.round(value * 100) / 100) : String(value));
const token = () => sessionStorage.getItem(TOKEN_KEY);

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401 || response.status === 403) { logout("session ended: log in again"); throw new Error("unauthorized"); }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.detail || `${response.status}`);
  }
  return response.status === 204 ? null : response.json();
}

function detail(checks, name) { return checks && checks[name] ? checks[name].detail : undefined; }

function instanceRow(service, inst) {
  const checks = inst.checks || {};
  const metrics = inst.metrics || {};
  const breakers = detail(checks, "breakers") || {};
  const inUse = metrics.bulkhead_in_use || {};
  const capacity = metrics.bulkhead_capacity || {};
  const transitions = metrics.breaker_transitions || {};
  const retries = metrics.retries || {};
  const inFlight = detail(checks, "in_flight") || {};
  const upstreams = Object.keys(breakers).map((up) => el("div", {},
    `${up}: `, el("span", { class: breakers[up], "data-breaker": `${service}/${up}` }, breakers[up]),
    ` · bulkhead ${fmt(inUse[up] ?? inFlight[up])}/${fmt(capacity[up])} · transitions ${fmt(transitions[up])} · retries ${fmt(retries[up])}`));
  const outbox = detail(checks, "outbox");
  const consumers = detail(checks, "consumers") || {};
  const lag = metrics.consumer_lag || {};
  const dlq = metrics.dead_letter_queue_size || {};
  const consumerCells = Object.keys(consumers).map((c) => el("div", {},
    `${c}: `, el("span", { class: consumers[c].healthy ? "up" : "down" }, consumers[c].healthy ? "healthy" : `unhealthy ${consumers[c].error || ""}`),
    ` · lag ${fmt(lag[c])} · DLQ ${fmt(dlq[c])}`));
  const state = inst.up ? inst.status : "down";
  return el("tr", { "data-instance": `${service}:${inst.name}` },
    el("td", {}, inst.name),
    el("td", {}, el("span", { class: inst.balancer }, inst.balancer)),
    el("td", {}, el("span", { class: state, "data-ready": service }, state), inst.up ? null : el("div", { class: "error" }, inst.error)),
    el("td", {}, ...(upstreams.length ? upstreams : [DASH])),
    el("td", {}, outbox ? `backlog ${fmt(outbox.backlog ?? metrics.outbox_backlog)} · oldest ${fmt(metrics.outbox_oldest_unsent_age_seconds)} s` : DASH),
    el("td", {}, ...(consumerCells.length ? consumerCells : [DASH])));
}

function faultList(service) {
  if (service.error) return el("p", { class: "error" }, `fault switches: ${service.error}`);
  const faults = service.faults || [];
  if (!faults.length) return el("p", { class: "hint" }, "fault switches: none on");
  return el("div", {}, "fault switches: ", ...faults.map((f) => el("span", { "data-fault": `${service.name}/${f.name}` },
    `${f.name} (${f.kind || ""} ${f.seam || ""}) `,
    el("button", { onclick: () => api("DELETE", `/api/v1/admin/faults/${service.name}/${f.name}`).then(poll, showError) }, "switch off"), " ")));
}

function drawServices(services) {
  const box = document.getElementById("services");
  box.replaceChildren(...services.map((s) => el("div", { class: "service", "data-service": s.name },
    el("h3", {}, s.name, s.gateway_view ? el("small", {}, ` — gateway's breaker `, el("span", { class: s.gateway_view.breaker, "data-breaker": `gateway/${s.name}` }, s.gateway_view.breaker), `, ${s.gateway_view.in_flight} in flight`) : null),
    el("table", {},
      el("thead", {}, el("tr", {}, ...["instance", "balancer", "ready", "upstreams (breaker · bulkhead · transitions · retries)", "outbox", "consumers"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...s.instances.map((inst) => instanceRow(s.name, inst)))),
    faultList(s))));
}

function drawLetters(board) {
  document.getElementById("dlq-info").textContent = board.error ? `error: ${board.error}` : `read ${fmt(board.age_s)} s ago`;
  const rows = board.letters.map((l) => {
    const errors = (l.error_history || []).map((e) => el("div", { class: "error" }, `${e.at || ""} ${e.error || e.type || JSON.stringify(e)}`));
    const redrive = l.redriven ? null : el("button", { class: "redrive", onclick: (event) => {
      event.target.disabled = true;
      api("POST", "/api/v1/admin/console/dead-letters/redrive", { topic: l.topic, event_id: l.event_id, group: l.consumer }).then(poll, showError);
    } }, "redrive");
    return el("tr", { "data-letter": `${l.topic}/${l.id}`, "data-event-id": l.event_id, "data-group": l.consumer },
      el("td", {}, l.topic), el("td", {}, l.id), el("td", {}, fmt(l.consumer)), el("td", {}, `${fmt(l.event_type)} ${fmt(l.event_id)}`),
      el("td", { class: "errors" }, ...errors), el("td", { class: l.redriven ? "redriven state" : "state" }, l.redriven ? `redriven ${l.redriven.at}` : "pending"),
      el("td", {}, redrive));
  });
  document.querySelector("#dead-letters tbody").replaceChildren(...rows);
}

function drawRecent(requests) {
  document.querySelector("#recent tbody").replaceChildren(...requests.map((r) => el("tr", {},
    el("td", {}, r.at), el("td", {}, r.method), el("td", {}, r.path), el("td", {}, r.status),
    el("td", {}, r.trace_url ? el("a", { href: r.trace_url, target: "_blank", rel: "noopener" }, r.trace_id) : fmt(r.trace_id)))));
}

function showError(error) { document.getElementById("status").textContent = `error: ${error.message}`; }

let polling = false;
async function poll() {
  if (!token() || polling) return;
  polling = true;
  try {
    const state = await api("GET", "/api/v1/admin/console/state");
    drawServices(state.services);
    drawLetters(state.dead_letters);
    drawRecent(state.recent_requests);
    document.getElementById("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) { showError(error); } finally { polling = false; }
}

function show(loggedIn) {
  document.getElementById("login").hidden = loggedIn;
  document.getElementById("console").hidden = !loggedIn;
  document.getElementById("logout").hidden = !loggedIn;
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  show(false);
  document.getElementById("status").textContent = message || "not logged in";
}

async function login(event) {
  event.preventDefault();
  const form = new URLSearchParams({ username: document.getElementById("email").value, password: document.getElementById("password").value });
  const response = await fetch("/api/v1/auth/token", { method: "POST", body: form });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) { document.getElementById("login-error").textContent = body.detail || `login failed (${response.status})`; return; }
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  document.getElementById("login-error").textContent = "";
  show(true);
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login").addEventListener("submit", login);
  document.getElementById("logout").addEventListener("click", () => logout());
  show(Boolean(token()));
  setInterval(poll, POLL_MS);
  poll();
});
