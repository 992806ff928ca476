// The operation page: its events on a time strip and as a list (with the time between them), the
// Operation JSON at each version, what each event changed, and the hash chain checked by the server.
import { api, badge, download, errorText, esc, fmtSpan, fmtTime, go, setAsOfFlag, stateOf } from "./app.js";

// JSON pretty-printed with colours, built from escaped text only.
export function jsonHtml(value, indent = "") {
  const inner = indent + "  ";
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => inner + jsonHtml(v, inner)).join(",\n")}\n${indent}]`;
  }
  if (value && typeof value === "object") {
    const keys = Object.keys(value);
    if (!keys.length) return "{}";
    const lines = keys.map((k) => `${inner}<span class="k">${esc(JSON.stringify(k))}</span>: ${jsonHtml(value[k], inner)}`);
    return `{\n${lines.join(",\n")}\n${indent}}`;
  }
  if (typeof value === "string") return `<span class="s">${esc(JSON.stringify(value))}</span>`;
  if (typeof value === "number") return `<span class="n">${value}</span>`;
  return `<span class="b">${esc(JSON.stringify(value))}</span>`;
}

// Leaf-by-leaf differences between two JSON values: [{kind: add|del|chg, path, before, after}].
function differences(before, after, path = "") {
  const isObject = (v) => v && typeof v === "object" && !Array.isArray(v);
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    return keys.flatMap((k) => differences(before[k], after[k], path ? `${path}.${k}` : k));
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  if (before === undefined) return [{ kind: "add", path, after }];
  if (after === undefined) return [{ kind: "del", path, before }];
  return [{ kind: "chg", path, before, after }];
}

const OWN_FIELDS = new Set(["type", "name", "occurredAt", "version", "position", "recordedAt", "hash"]);

function eventFields(event) {
  return Object.fromEntries(Object.entries(event).filter(([k]) => !OWN_FIELDS.has(k)));
}

function stripHtml(events) {
  const times = events.map((e) => Date.parse(e.occurredAt));
  const low = Math.min(...times), high = Math.max(...times);
  const spread = high - low || 1;
  return events.map((e, i) => {
    const at = events.length === 1 ? 50 : 2 + (96 * (times[i] - low)) / spread;
    return `<button type="button" class="t-${esc(e.type)}" data-left="${at.toFixed(2)}" data-version="${e.version}"
      aria-label="Version ${e.version}: ${esc(e.type)} at ${esc(e.occurredAt)}" title="v${e.version} ${esc(e.type)} · ${esc(e.occurredAt)}" tabindex="-1"></button>`;
  }).join("");
}

function eventListHtml(events) {
  return events.map((e, i) => {
    const gap = i ? `+${fmtSpan(Date.parse(e.occurredAt) - Date.parse(events[i - 1].occurredAt))}` : "";
    return `<li><button type="button" role="option" data-version="${e.version}" aria-selected="false">
      <span class="v">v${e.version}</span><span class="type">${esc(e.type)}</span><span class="gap">${esc(gap)}</span>
      <span class="when">${esc(e.occurredAt)}</span><span class="hash">${esc(e.hash || "")}</span></button></li>`;
  }).join("");
}

export async function operationPage(main, name, params) {
  setAsOfFlag("");
  main.innerHTML = `<p class="muted">Loading ${esc(name)}…</p>`;
  const past = await api("history", { name });
  if (!past.ok) {
    main.innerHTML = `<h1>${esc(name)}</h1><p class="error">${esc(errorText(past.error))}</p>`;
    return;
  }
  const events = past.json;
  const last = events[events.length - 1];
  const deleted = last.type === "Deleted";
  // A deleted operation is gone from get: its history is all there is to ask for.
  const current = deleted ? { ok: false } : await api("operation", { name });
  const state = deleted ? "DELETED" : current.ok ? stateOf(current.json) : "—";
  main.innerHTML = `
    <div class="op-head"><h1>${esc(name)}</h1>${badge(state)}
      <button type="button" id="save-current" ${current.ok ? "" : "disabled"}>Download JSON (ledger get)</button>
      <button type="button" id="save-history">Download history (ledger history)</button></div>
    <div class="chain" id="chain" aria-live="polite">Checking the hash chain…</div>
    <div class="strip" id="strip" aria-hidden="true">${stripHtml(events)}</div>
    <div class="strip-ends muted" aria-hidden="true"><span>${esc(fmtTime(events[0].occurredAt))}</span><span>${esc(fmtTime(last.occurredAt))}</span></div>
    <div class="op-grid">
      <section class="panel" aria-label="Events"><h2>${events.length} events over ${fmtSpan(Date.parse(last.occurredAt) - Date.parse(events[0].occurredAt))}</h2>
        <p class="muted">↑ ↓ move between versions.</p>
        <ol class="events" role="listbox" id="events" aria-label="Versions" tabindex="-1">${eventListHtml(events)}</ol></section>
      <section class="panel" id="version" aria-live="polite"></section>
    </div>`;
  main.querySelectorAll("#strip [data-left]").forEach((dot) => { dot.style.left = `${dot.dataset.left}%`; });
  document.getElementById("save-history").onclick = () => download(past.text, `${name.replaceAll("/", "_")}.history.json`);
  if (current.ok) document.getElementById("save-current").onclick = () => download(current.text, `${name.replaceAll("/", "_")}.json`);
  const wanted = Number(params.get("v")) || Number(last.version);
  const page = { name, events, select: null };
  page.select = (version, focus) => selectVersion(page, version, focus);
  main.querySelectorAll("[data-version]").forEach((el) => { el.onclick = () => page.select(Number(el.dataset.version), true); });
  document.getElementById("events").addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    event.preventDefault();
    const at = events.findIndex((e) => e.version === page.selected);
    const next = events[Math.min(events.length - 1, Math.max(0, at + (event.key === "ArrowDown" ? 1 : -1)))];
    page.select(next.version, true);
  });
  checkChain(name, events);
  await page.select(events.some((e) => e.version === wanted) ? wanted : last.version, false);
}

async function checkChain(name, events) {
  const answer = await api("check", { name });
  const box = document.getElementById("chain");
  if (!box) return;
  if (!answer.ok) { box.textContent = `The check could not run: ${errorText(answer.error)}`; box.classList.add("bad"); return; }
  const mine = answer.json.findings.filter((f) => f.severity === "error");
  if (!mine.length) {
    box.innerHTML = `✓ Hash chain intact: each of the ${events.length} events carries the hash of the one before it, and the views agree with them.`;
    return;
  }
  box.classList.add("bad");
  box.innerHTML = `✗ ${mine.length} problem(s): <ul>${mine.map((f) => `<li><strong>${esc(f.kind)}</strong>${f.position ? ` at position ${esc(f.position)}` : ""}: ${esc(f.detail)}</li>`).join("")}</ul>`;
}

const versionCache = new Map();

async function versionJson(name, version) {
  const key = `${name}\u0000${version}`;
  if (!versionCache.has(key)) versionCache.set(key, api("operation", { name, version }));
  return versionCache.get(key);
}

async function selectVersion(page, version, focus) {
  page.selected = version;
  document.querySelectorAll("#events button").forEach((b) => {
    const on = Number(b.dataset.version) === version;
    b.setAttribute("aria-selected", String(on));
    b.tabIndex = on ? 0 : -1;
    if (on && focus) b.focus();
  });
  document.querySelectorAll("#strip button").forEach((b) => b.setAttribute("aria-pressed", String(Number(b.dataset.version) === version)));
  history.replaceState(null, "", `#/op/${encodeURIComponent(page.name)}?v=${version}`);
  const index = page.events.findIndex((e) => e.version === version);
  const event = page.events[index];
  const box = document.getElementById("version");
  const [now, before] = await Promise.all([
    event.type === "Deleted" ? null : versionJson(page.name, version),
    index > 0 && page.events[index - 1].type !== "Deleted" ? versionJson(page.name, page.events[index - 1].version) : null,
  ]);
  if (page.selected !== version || !box.isConnected) return;
  const fields = eventFields(event);
  const changes = now && now.ok ? differences(before && before.ok ? before.json : undefined, now.json) : [];
  box.innerHTML = `<h2>Version ${version}: ${esc(event.type)} at ${esc(fmtTime(event.occurredAt))}</h2>
    <p class="muted">Recorded ${esc(fmtTime(event.recordedAt))} at log position ${esc(event.position)}.</p>
    <h3>Event fields${event.type === "Progressed" ? " (the patch)" : ""}</h3>
    ${Object.keys(fields).length ? `<pre class="json">${jsonHtml(fields)}</pre>` : `<p class="muted">None.</p>`}
    ${now ? `<h3>What changed in the Operation</h3>${changeList(changes, index === 0)}
    <h3>Operation JSON at version ${version}</h3>
    <div class="row-actions"><button type="button" id="save-version">Download (ledger get --version ${version})</button>
    <button type="button" id="asof-fleet">Fleet as of this event</button></div>
    ${now.ok ? `<pre class="json">${jsonHtml(now.json)}</pre>` : `<p class="error">${esc(errorText(now.error))}</p>`}`
    : `<p class="muted">After this event the operation is gone from get and list; its history stays for audit.</p>`}`;
  const save = document.getElementById("save-version");
  if (save && now.ok) save.onclick = () => download(now.text, `${page.name.replaceAll("/", "_")}.v${version}.json`);
  const fleet = document.getElementById("asof-fleet");
  if (fleet) fleet.onclick = () => go("/fleet", { asOf: event.occurredAt });
}

function changeList(changes, first) {
  if (first) return `<p class="muted">Created: the first state.</p>`;
  if (!changes.length) return `<p class="muted">Nothing in the rendered JSON.</p>`;
  const show = (v) => esc(JSON.stringify(v));
  return `<ul class="diff">${changes.map((c) => c.kind === "add" ? `<li class="add">+ ${esc(c.path)}: ${show(c.after)}</li>`
    : c.kind === "del" ? `<li class="del">− ${esc(c.path)}: ${show(c.before)}</li>`
    : `<li class="chg">~ ${esc(c.path)}: ${show(c.before)} → ${show(c.after)}</li>`).join("")}</ul>`;
}
