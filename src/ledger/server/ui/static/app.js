// The explorer's shell: the token, calls to /ui/api/, the router, and the fleet and audit pages.
// Plain ES modules, no build step; every byte the pages show comes from this server.
import { operationPage } from "./views.js";
import { timelinePage } from "./timeline.js";

const TOKEN_KEY = "ledger.token";
export const STATES = ["RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
const main = document.getElementById("main");

// -- talking to the server ---------------------------------------------------------------------

let signingIn = null;

function askToken(problem) {
  if (signingIn) return signingIn;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  document.getElementById("token-error").textContent = problem || "";
  signingIn = new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      dialog.close();
      signingIn = null;
      resolve();
    };
  });
  dialog.showModal();
  input.focus();
  return signingIn;
}

// One call to /ui/api/NAME: {ok, status, text, json, error}. A 401 asks for a token and tries again.
export async function api(name, params = {}, options = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const url = `/ui/api/${name}${query.toString() ? "?" + query : ""}`;
  for (let attempt = 0; ; attempt++) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const response = await fetch(url, { method: options.method || "GET", body: options.body, headers });
    const text = await response.text();
    let json = null;
    try { json = JSON.parse(text); } catch { json = null; }
    if (response.status === 401 && attempt < 3) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      await askToken(token ? "That token was not accepted." : "");
      continue;
    }
    const error = response.ok ? null : (json && json.error ? json.error : { message: text, status: String(response.status) });
    return { ok: response.ok, status: response.status, text, json, error };
  }
}

// Offers exactly the bytes the server sent as a file.
export function download(text, filename) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// -- small helpers -----------------------------------------------------------------------------

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function fmtTime(value) {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toISOString().replace("T", " ").replace(/\.000Z$/, "Z");
}

export function fmtSpan(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  const s = Math.abs(ms) / 1000;
  if (s < 1) return `${Math.round(Math.abs(ms))} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d) return `${d}d ${h % 24}h`;
  if (h) return `${h}h ${m % 60}m`;
  return `${m}m ${Math.round(s % 60)}s`;
}

export function stateOf(op) {
  if (!op.done) return "RUNNING";
  if (op.error) return op.error.code === 1 ? "CANCELLED" : "FAILED";
  return "SUCCEEDED";
}

export function badge(state) {
  return `<span class="badge ${esc(state)}">${esc(state)}</span>`;
}

export function opLink(name) {
  return `#/op/${encodeURIComponent(name)}`;
}

// A link to the operation, its collection muted and its id in bold.
export function nameLink(name) {
  const at = name.lastIndexOf("/operations/");
  const parent = at >= 0 ? name.slice(0, at + "/operations/".length) : "";
  const id = name.slice(parent.length);
  return `<a href="${opLink(name)}"><span class="parent">${esc(parent)}</span><span class="id">${esc(id)}</span></a>`;
}

// RFC 3339 for the "as of" box. A full RFC 3339 time stays as typed (nanoseconds included: a
// JavaScript Date would cut them to milliseconds); "2026-01-02 10:32" is read as UTC.
export function normalizeTime(text) {
  const value = text.trim();
  if (!value) return "";
  if (/^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)$/.test(value)) return value;
  const short = /^(\d{4}-\d\d-\d\d)(?:[ Tt](\d\d:\d\d)(:\d\d(?:\.\d{1,9})?)?)?$/.exec(value);
  if (short) return `${short[1]}T${short[2] || "00:00"}${short[3] || ":00"}Z`;
  throw new Error(`"${value}" is not a time such as 2026-01-02T10:32:00Z or 2026-01-02 10:32 (UTC)`);
}

export function errorText(error) {
  return `${error.status || ""}: ${error.message || ""}`.replace(/^: /, "");
}

function hashParams() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  return { path: path || "/fleet", params: new URLSearchParams(query || "") };
}

export function go(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const next = `#${path}${query.toString() ? "?" + query : ""}`;
  if (location.hash === next) route();
  else location.hash = next;
}

export function setAsOfFlag(asOf) {
  const flag = document.getElementById("asof-flag");
  flag.hidden = !asOf;
  flag.textContent = asOf ? `as of ${fmtTime(asOf)}` : "";
}

// -- the fleet page ----------------------------------------------------------------------------

function facetList(title, counts, total, clause) {
  const entries = Object.entries(counts);
  if (!entries.length) return "";
  const items = entries.map(([value, count]) => {
    const width = total ? Math.max(1, Math.round((100 * count) / total)) : 0;
    const dot = STATES.includes(value) && title === "State" ? `<span class="dot ${esc(value)}"></span>` : "";
    return `<li><button type="button" data-clause="${esc(clause(value))}" data-field="${esc(title)}" data-value="${esc(value)}">
      <span class="label">${dot}${esc(value || "(none)")}</span><span class="count">${count.toLocaleString("en")}</span></button>
      <div class="bar"><span data-w="${width}"></span></div></li>`;
  });
  return `<h2>${esc(title)}</h2><ul>${items.join("")}</ul>`;
}

function showFilterError(box, filter, error) {
  const match = /at position (\d+)/.exec(error.message || "");
  let marked = "";
  if (match) {
    const at = Number(match[1]) - 1;
    const token = /^[^\s()]*/.exec(filter.slice(at))[0] || filter.slice(at, at + 1);
    const end = at + Math.max(1, token.length);
    marked = `<pre>${esc(filter.slice(0, at))}<mark>${esc(filter.slice(at, end) || " ")}</mark>${esc(filter.slice(end))}</pre>
      <pre aria-hidden="true">${" ".repeat(at)}^ position ${at + 1}</pre>`;
  }
  box.innerHTML = `<strong>${esc(error.status || "Error")}</strong>: ${esc(error.message)}${marked}`;
}

function fleetHtml({ filter, asOf, parent, size }, tokens) {
  return `
    <form class="toolbar" id="fleet-form" role="search" aria-label="Filter the fleet">
      <label class="grow">Filter (AIP-160) — press / to focus
        <input id="filter" name="filter" value="${esc(filter)}" spellcheck="false" autocomplete="off"
          placeholder='state = "FAILED" AND createTime > "2026-01-02T10:00:00Z"'></label>
      <label>As of (UTC)<input id="asof" name="asOf" value="${esc(asOf)}" placeholder="now" size="22"></label>
      <label>Page size<select id="size">${[25, 50, 100, 200].map((n) => `<option ${String(n) === size ? "selected" : ""}>${n}</option>`).join("")}</select></label>
      <button class="primary" type="submit">Apply</button>
      <button type="button" id="now">Now</button>
      <div class="chips">${parent ? `<span class="chip">collection ${esc(parent)} <button type="button" id="clear-parent" aria-label="Show every collection">×</button></span>` : ""}</div>
      <div class="filter-error" id="filter-error" role="alert"></div>
    </form>
    <div class="fleet">
      <aside class="facets panel" id="facets" aria-label="Facets"><p class="muted">Counting…</p></aside>
      <section class="results" aria-label="Operations">
        <table><thead><tr><th>Name</th><th>State</th><th>Verb</th><th>Created</th><th>Ended</th><th class="num">Duration</th></tr></thead>
        <tbody id="rows"><tr><td colspan="6" class="empty">Loading…</td></tr></tbody></table>
        <nav class="pager" aria-label="Pages">
          <button type="button" id="first" ${tokens.length ? "" : "disabled"}>« First</button>
          <button type="button" id="prev" ${tokens.length ? "" : "disabled"}>‹ Previous</button>
          <span id="page-info" class="muted">Page ${tokens.length + 1}</span>
          <button type="button" id="next" disabled>Next ›</button>
          <span class="spacer"></span>
          <button type="button" id="download-page" disabled>Download this page (ledger list)</button>
        </nav>
      </section>
    </div>`;
}

async function fleetPage(params) {
  const filter = params.get("filter") || "";
  const asOf = params.get("asOf") || "";
  const parent = params.get("parent") || "";
  const size = params.get("size") || "50";
  const tokens = (params.get("pages") || "").split(",").filter(Boolean);
  setAsOfFlag(asOf);
  main.innerHTML = fleetHtml({ filter, asOf, parent, size }, tokens);
  const state = { filter, asOf, parent, size, pages: tokens.join(",") };
  const form = document.getElementById("fleet-form");
  const apply = (changes) => go("/fleet", { ...state, pages: "", ...changes });
  form.onsubmit = (event) => {
    event.preventDefault();
    let when = "";
    try { when = normalizeTime(document.getElementById("asof").value); } catch (e) {
      document.getElementById("filter-error").textContent = e.message;
      return;
    }
    performance.mark("ledger:submit");  // bench/ui.py times a filter from here to the rows drawn
    apply({ filter: document.getElementById("filter").value.trim(), asOf: when, size: document.getElementById("size").value });
  };
  document.getElementById("now").onclick = () => apply({ asOf: "" });
  document.getElementById("size").onchange = () => form.requestSubmit();
  const clearParent = document.getElementById("clear-parent");
  if (clearParent) clearParent.onclick = () => apply({ parent: "" });
  document.getElementById("first").onclick = () => go("/fleet", { ...state, pages: "" });
  document.getElementById("prev").onclick = () => go("/fleet", { ...state, pages: tokens.slice(0, -1).join(",") });
  loadFacets(state, apply);
  await loadRows(state, tokens);
}

async function loadFacets(state, apply) {
  const box = document.getElementById("facets");
  const answer = await api("facets", { asOf: state.asOf });
  if (!box.isConnected) return;
  if (!answer.ok) { box.innerHTML = `<p class="error">${esc(errorText(answer.error))}</p>`; return; }
  const f = answer.json;
  const when = state.asOf ? `as of ${fmtTime(state.asOf)}` : "now";
  box.innerHTML = `<p class="muted">The whole fleet ${esc(when)}: ${f.total.toLocaleString("en")} operations in ${f.parents.toLocaleString("en")} collections. Choose one to narrow the list.</p>
    ${facetList("State", f.state, f.total, (v) => `state = "${v}"`)}
    ${facetList("Verb", f.verb, f.total, (v) => `verb = "${v}"`)}
    ${facetList("Collection", f.parent, f.total, () => "")}`;
  box.querySelectorAll("[data-w]").forEach((bar) => { bar.style.width = `${bar.dataset.w}%`; });
  box.querySelectorAll("button[data-field]").forEach((button) => {
    button.onclick = () => {
      if (button.dataset.field === "Collection") { apply({ parent: button.dataset.value }); return; }
      const clause = button.dataset.clause;
      const current = state.filter.trim();
      apply({ filter: current ? `${current} AND ${clause}` : clause });
    };
  });
}

async function loadRows(state, tokens) {
  const body = document.getElementById("rows");
  const answer = await api("list", {
    parent: state.parent, filter: state.filter, asOf: state.asOf, pageSize: state.size, pageToken: tokens[tokens.length - 1], view: "rows",
  });
  if (!body.isConnected) return;
  if (!answer.ok && answer.status === 403 && !state.parent) {
    body.innerHTML = `<tr><td colspan="6" class="empty">You may not list every collection at once: choose one under Collection.</td></tr>`;
    return;
  }
  if (!answer.ok) {
    showFilterError(document.getElementById("filter-error"), state.filter, answer.error);
    body.innerHTML = `<tr><td colspan="6" class="empty">No results: the request was refused.</td></tr>`;
    return;
  }
  const operations = answer.json.rows;
  body.innerHTML = operations.length ? operations.map((row) => rowHtml(row, state.asOf)).join("") : `<tr><td colspan="6" class="empty">No operation matches.</td></tr>`;
  performance.mark("ledger:rows");
  const next = answer.json.nextPageToken;
  const nextButton = document.getElementById("next");
  nextButton.disabled = !next;
  nextButton.onclick = () => go("/fleet", { ...state, pages: [...tokens, next].join(",") });
  const first = tokens.length * Number(state.size) + 1;
  document.getElementById("page-info").textContent = operations.length
    ? `Page ${tokens.length + 1} · operations ${first.toLocaleString("en")}–${(first + operations.length - 1).toLocaleString("en")}` : `Page ${tokens.length + 1}`;
  const save = document.getElementById("download-page");
  save.disabled = false;
  save.onclick = async () => {  // the page as `ledger list` prints it: the Operation JSON, byte for byte
    const exact = await api("list", {
      parent: state.parent, filter: state.filter, asOf: state.asOf, pageSize: state.size, pageToken: tokens[tokens.length - 1],
    });
    if (exact.ok) download(exact.text, "operations-page.json");
  };
}

// A row of the list; `asOf` (or now) ends the span of one that was running then.
function rowHtml(row, asOf) {
  const span = (row.endTime ? Date.parse(row.endTime) : asOf ? Date.parse(asOf) : Date.now()) - Date.parse(row.createTime);
  return `<tr><td class="name">${nameLink(row.name)}</td><td>${badge(row.state)}</td>
    <td>${esc(row.verb || "")}</td><td class="time">${fmtTime(row.createTime)}</td><td class="time">${fmtTime(row.endTime)}</td>
    <td class="num">${fmtSpan(span)}${row.endTime ? "" : " …"}</td></tr>`;
}

// -- the audit page ----------------------------------------------------------------------------

function auditPage() {
  setAsOfFlag("");
  main.innerHTML = `<h1>Audit</h1>
    <div class="audit-grid">
      <section class="panel wide" aria-labelledby="audit-title"><h2 id="audit-title">Check every history</h2>
        <p class="muted">Re-derives every operation from its events: lifecycle rules, hash chains, views against a fresh fold, view lag. Changes nothing.</p>
        <div class="row-actions"><button class="primary" id="run-audit" type="button">Run audit</button>
        <button id="download-audit" type="button" disabled>Download report (ledger audit)</button></div>
        <div id="audit-result" aria-live="polite"></div></section>
      <section class="panel" aria-labelledby="digest-title"><h2 id="digest-title">Digest</h2>
        <p class="muted">A digest of the whole log up to its last position. Keep it somewhere the ledger's writers cannot reach.</p>
        <div class="row-actions"><button id="take-digest" type="button">Take digest</button>
        <button id="download-digest" type="button" disabled>Download (ledger digest)</button></div>
        <pre class="json" id="digest-text" hidden></pre></section>
      <section class="panel" aria-labelledby="verify-title"><h2 id="verify-title">Verify a digest</h2>
        <label for="verify-input" class="muted">Paste a saved digest, or choose its file.</label>
        <textarea id="verify-input" spellcheck="false" placeholder='{"position": 1234, "digest": "sha256:…"}'></textarea>
        <div class="row-actions"><input type="file" id="verify-file" accept=".json,application/json" aria-label="Digest file">
        <button class="primary" id="verify" type="button">Verify</button></div>
        <div id="verify-result" aria-live="polite"></div></section>
    </div>`;
  document.getElementById("run-audit").onclick = runAudit;
  document.getElementById("take-digest").onclick = async () => {
    const answer = await api("digest");
    const box = document.getElementById("digest-text");
    box.hidden = false;
    box.textContent = answer.ok ? answer.text : errorText(answer.error);
    const save = document.getElementById("download-digest");
    save.disabled = !answer.ok;
    save.onclick = () => download(answer.text, `ledger-digest-${answer.json.position}.json`);
    if (answer.ok) document.getElementById("verify-input").value = answer.text.trim();
  };
  document.getElementById("verify-file").onchange = async (event) => {
    const file = event.target.files[0];
    if (file) document.getElementById("verify-input").value = (await file.text()).trim();
  };
  document.getElementById("verify").onclick = async () => {
    const answer = await api("verify", {}, { method: "POST", body: document.getElementById("verify-input").value });
    const box = document.getElementById("verify-result");
    if (!answer.ok) { box.innerHTML = `<p class="error">${esc(errorText(answer.error))}</p>`; return; }
    const r = answer.json;
    box.innerHTML = r.ok
      ? `<p class="ok big">✓ Unchanged</p><p>The log up to position ${r.position.toLocaleString("en")} is exactly as it was when the digest was taken.</p>`
      : `<p class="error big">✗ Changed</p><p>${esc(r.detail || "")}</p>`;
  };
}

async function runAudit() {
  const button = document.getElementById("run-audit");
  const box = document.getElementById("audit-result");
  button.disabled = true;
  box.innerHTML = `<p class="muted">Auditing…</p>`;
  const started = performance.now();
  const answer = await api("audit", {}, { method: "POST" });
  button.disabled = false;
  if (!answer.ok) { box.innerHTML = `<p class="error">${esc(errorText(answer.error))}</p>`; return; }
  const r = answer.json;
  const errors = r.findings.filter((f) => f.severity === "error").length;
  const rows = r.findings.map((f) => `<tr><td>${esc(f.severity)}</td><td>${esc(f.kind)}</td>
    <td class="name">${f.name ? `<a href="${opLink(f.name)}">${esc(f.name)}</a>` : "—"}</td><td class="num">${esc(f.position ?? "")}</td><td>${esc(f.detail)}</td></tr>`);
  box.innerHTML = `<p class="${r.ok ? "ok" : "error"} big">${r.ok ? "✓ No error found" : `✗ ${errors} error(s)`}</p>
    <p class="muted">${r.checked.operations.toLocaleString("en")} operations and ${r.checked.events.toLocaleString("en")} events checked in ${fmtSpan(performance.now() - started)}; ${r.findings.length} finding(s).</p>
    ${r.findings.length ? `<table><thead><tr><th>Severity</th><th>Kind</th><th>Operation</th><th class="num">Position</th><th>Detail</th></tr></thead><tbody>${rows.join("")}</tbody></table>` : ""}`;
  const save = document.getElementById("download-audit");
  save.disabled = false;
  save.onclick = () => download(answer.text, "ledger-audit.json");
}

// -- the router and keys -----------------------------------------------------------------------

async function route() {
  const { path, params } = hashParams();
  const page = path.startsWith("/op/") ? "op" : path.replace(/^\//, "");
  document.querySelectorAll("[data-page]").forEach((link) => {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  });
  if (path.startsWith("/op/")) await operationPage(main, decodeURIComponent(path.slice(4)), params);
  else if (path === "/timeline") await timelinePage(main, params);
  else if (path === "/audit") auditPage();
  else await fleetPage(params);
}

function moveRowFocus(step) {
  const links = [...document.querySelectorAll("#rows td.name a")];
  if (!links.length) return;
  const at = links.indexOf(document.activeElement);
  const next = links[Math.min(links.length - 1, Math.max(0, at < 0 ? 0 : at + step))];
  document.querySelectorAll("#rows tr.focused").forEach((row) => row.classList.remove("focused"));
  next.closest("tr").classList.add("focused");
  next.focus();
}

document.addEventListener("keydown", (event) => {
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName || "");
  if (typing && event.key === "Escape") { document.activeElement.blur(); return; }
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "/" && document.getElementById("filter")) {
    event.preventDefault();
    document.getElementById("filter").focus();
  } else if (event.key === "j" || event.key === "k") {
    moveRowFocus(event.key === "j" ? 1 : -1);
  }
});

async function start() {
  const who = await api("whoami");
  if (who.ok) document.getElementById("who").textContent = `signed in as ${who.json.principal}`;
  window.addEventListener("hashchange", route);
  await route();
}

start();
