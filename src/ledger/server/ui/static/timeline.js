// The timeline: operations as bars from create to end (running ones open to the right), coloured by
// state, drawn on a canvas; wheel or +/- zooms, drag or arrows pan; the cursor's time drives the
// "as of" list below it; a click (or Enter on the chosen bar) opens the operation.
import { api, badge, errorText, esc, fmtSpan, fmtTime, go, nameLink, opLink, setAsOfFlag, STATES } from "./app.js";

const COLORS = { RUNNING: "#2f6fdb", SUCCEEDED: "#2e9d5b", FAILED: "#d64545", CANCELLED: "#b08415" };
const AXIS = 30;

export async function timelinePage(main, params) {
  setAsOfFlag("");
  main.innerHTML = `
    <div class="tl-tools" role="toolbar" aria-label="Timeline controls">
      <button type="button" id="zoom-in" aria-label="Zoom in">+ Zoom in</button>
      <button type="button" id="zoom-out" aria-label="Zoom out">− Zoom out</button>
      <button type="button" id="pan-left" aria-label="Earlier">◀ Earlier</button>
      <button type="button" id="pan-right" aria-label="Later">Later ▶</button>
      <button type="button" id="fit">Whole fleet</button>
      <span class="range" id="range"></span>
    </div>
    <div class="tl-legend">${STATES.map((s) => `<span><span class="dot ${s}"></span>${s.toLowerCase()}</span>`).join("")}
      <span id="tl-count"></span><span>Keys: ← → pan · + − zoom · [ ] cursor · ↑ ↓ choose a bar · Enter open</span></div>
    <div class="tl-wrap" id="tl-wrap"><canvas id="tl" tabindex="0" role="img" aria-label="Timeline of operations; use the keys listed above"></canvas></div>
    <div class="tl-below">
      <aside class="panel" id="tl-facets" aria-live="polite"></aside>
      <section class="results" aria-label="Operations at the cursor">
        <div class="pager"><strong id="cursor-title">At the cursor</strong>
          <label><input type="checkbox" id="running-only" checked> running only</label><span class="spacer"></span>
          <button type="button" id="open-fleet">Open the fleet as of the cursor</button></div>
        <table><thead><tr><th>Name</th><th>State at the cursor</th><th>Created</th><th class="num">Age at the cursor</th></tr></thead>
        <tbody id="cursor-rows"></tbody></table></section>
    </div>`;
  const t = new Timeline(document.getElementById("tl"), params);
  await t.start();
}

class Timeline {
  constructor(canvas, params) {
    this.canvas = canvas;
    this.data = null;
    this.from = Number(params.get("from")) || null;
    this.to = Number(params.get("to")) || null;
    this.cursor = Number(params.get("cursor")) || null;
    this.chosen = -1;
    this.fetchTimer = null;
    this.listTimer = null;
  }

  async start() {
    const first = await api("timeline", this.from && this.to ? { from: this.from, to: this.to } : {});
    if (!first.ok) { document.getElementById("range").textContent = errorText(first.error); return; }
    this.extent = first.json.extent;
    this.from = first.json.from;
    this.to = first.json.to;
    if (!this.cursor || this.cursor < this.from || this.cursor > this.to) this.cursor = Math.round((this.from + this.to) / 2);
    this.take(first.json);
    performance.mark("ledger:timeline");  // the first bars drawn (bench/ui.py reads it)
    this.bind();
    const resized = new ResizeObserver(() => {
      if (this.canvas.isConnected) this.draw();
      else resized.disconnect();  // the page was left
    });
    resized.observe(this.canvas.parentElement);
    this.cursorChanged();
  }

  take(data) {
    this.data = data;
    // Lanes: each bar goes to the first lane free at its start (bars come sorted by create time).
    // Operations that ended are packed first and the ones still running below them, so that a
    // few long-stuck operations do not push what happened in the window out of sight.
    const lane = new Int32Array(data.name.length);
    const pack = (running) => {
      const ends = [];
      for (let i = 0; i < data.name.length; i++) {
        if ((data.end[i] === null) !== running) continue;
        let l = ends.findIndex((e) => e < data.create[i]);
        if (l < 0) { l = ends.length; ends.push(Infinity); }
        ends[l] = data.end[i] ?? Infinity;
        lane[i] = l;
      }
      return ends.length;
    };
    this.finishedLanes = pack(false);
    const runningLanes = pack(true);
    for (let i = 0; i < data.name.length; i++) if (data.end[i] === null) lane[i] += this.finishedLanes;
    const ends = { length: this.finishedLanes + runningLanes };
    this.lane = lane;
    this.lanes = Math.max(1, ends.length);
    this.chosen = -1;
    document.getElementById("tl-count").textContent = data.total > data.shown
      ? `${data.shown.toLocaleString("en")} of ${data.total.toLocaleString("en")} operations shown (zoom in for all)`
      : `${data.total.toLocaleString("en")} operations in view`;
    this.draw();
  }

  geometry() {
    const width = this.canvas.parentElement.clientWidth;
    const laneHeight = Math.max(3, Math.min(16, Math.floor(460 / this.lanes)));
    return { width, laneHeight, height: AXIS + this.lanes * laneHeight + 8 };
  }

  x(ms, width) { return ((ms - this.from) / (this.to - this.from)) * width; }
  timeAt(px, width) { return this.from + (px / width) * (this.to - this.from); }

  draw() {
    if (!this.data || !this.canvas.isConnected) return;  // the page may have been left meanwhile
    const { width, laneHeight, height } = this.geometry();
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    this.canvas.style.height = `${height}px`;
    const g = this.canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.fillStyle = "#fff";
    g.fillRect(0, 0, width, height);
    this.drawAxis(g, width, height);
    const d = this.data;
    const bar = Math.max(2, laneHeight - (laneHeight > 5 ? 2 : 1));
    for (let i = 0; i < d.name.length; i++) {
      const x0 = Math.max(0, this.x(d.create[i], width));
      const running = d.end[i] === null;
      const x1 = running ? width : Math.min(width, this.x(d.end[i], width));
      g.fillStyle = COLORS[d.states[d.state[i]]];
      g.globalAlpha = running ? 0.75 : 1;
      g.fillRect(x0, AXIS + this.lane[i] * laneHeight, Math.max(1.5, x1 - x0), bar);
    }
    g.globalAlpha = 1;
    if (this.finishedLanes && this.lanes > this.finishedLanes) {
      const y = AXIS + this.finishedLanes * laneHeight + 0.5;
      g.strokeStyle = "#98a2b3";
      g.setLineDash([4, 4]);
      g.beginPath(); g.moveTo(0, y); g.lineTo(width, y); g.stroke();
      g.setLineDash([]);
      g.fillStyle = "#475467";
      g.font = "11px system-ui, sans-serif";
      g.fillText("still running ↓", 6, y + 12);
    }
    if (this.chosen >= 0) {
      const i = this.chosen;
      const x0 = Math.max(0, this.x(d.create[i], width));
      const x1 = d.end[i] === null ? width : Math.min(width, this.x(d.end[i], width));
      g.strokeStyle = "#111";
      g.lineWidth = 2;
      g.strokeRect(x0 - 1, AXIS + this.lane[i] * laneHeight - 1, Math.max(3, x1 - x0) + 2, bar + 2);
    }
    const cx = this.x(this.cursor, width);
    g.strokeStyle = "#111";
    g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(cx, 0); g.lineTo(cx, height); g.stroke();
    g.fillStyle = "#111";
    g.font = "600 11px system-ui, sans-serif";
    const label = fmtTime(Math.round(this.cursor));
    const w = g.measureText(label).width + 10;
    const lx = Math.min(Math.max(0, cx - w / 2), width - w);
    g.fillRect(lx, 0, w, 17);
    g.fillStyle = "#fff";
    g.fillText(label, lx + 5, 12);
    document.getElementById("range").textContent = `${fmtTime(Math.round(this.from))} → ${fmtTime(Math.round(this.to))} (${fmtSpan(this.to - this.from)})`;
  }

  drawAxis(g, width, height) {
    const span = this.to - this.from;
    const steps = [1e3, 5e3, 15e3, 6e4, 3e5, 9e5, 36e5, 3 * 36e5, 6 * 36e5, 12 * 36e5, 864e5, 7 * 864e5, 30 * 864e5];
    const step = steps.find((s) => (s / span) * width >= 110) || steps[steps.length - 1];
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#667085";
    g.strokeStyle = "#eef0f4";
    for (let t = Math.ceil(this.from / step) * step; t <= this.to; t += step) {
      const x = Math.round(this.x(t, width)) + 0.5;
      g.beginPath(); g.moveTo(x, 18); g.lineTo(x, height); g.stroke();
      const text = step >= 864e5 ? new Date(t).toISOString().slice(0, 10) : new Date(t).toISOString().slice(step >= 6e4 ? 11 : 11, step >= 6e4 ? 16 : 19);
      g.fillText(text, x + 3, 27);
    }
  }

  hit(px, py) {
    const { width, laneHeight } = this.geometry();
    const lane = Math.floor((py - AXIS) / laneHeight);
    if (lane < 0 || lane >= this.lanes) return -1;
    const t = this.timeAt(px, width);
    const slack = (3 / width) * (this.to - this.from);
    const d = this.data;
    for (let i = 0; i < d.name.length; i++) {
      if (this.lane[i] !== lane) continue;
      const end = d.end[i] ?? Infinity;
      if (d.create[i] - slack <= t && t <= end + slack) return i;
    }
    return -1;
  }

  setWindow(from, to) {
    const min = 1000;
    if (to - from < min) { const mid = (from + to) / 2; from = mid - min / 2; to = mid + min / 2; }
    this.from = from;
    this.to = to;
    this.draw();
    clearTimeout(this.fetchTimer);
    this.fetchTimer = setTimeout(() => this.refetch(), 180);
  }

  async refetch() {
    if (!this.canvas.isConnected) return;
    const from = Math.round(this.from), to = Math.round(this.to);
    const answer = await api("timeline", { from, to });
    if (!this.canvas.isConnected) return;
    if (answer.ok && answer.json.from === Math.round(this.from) && answer.json.to === Math.round(this.to)) this.take(answer.json);
    history.replaceState(null, "", `#/timeline?from=${from}&to=${to}&cursor=${Math.round(this.cursor)}`);
  }

  zoom(factor, at) {
    const pivot = at ?? this.cursor;
    this.setWindow(pivot - (pivot - this.from) * factor, pivot + (this.to - pivot) * factor);
  }

  pan(fraction) {
    const shift = (this.to - this.from) * fraction;
    this.setWindow(this.from + shift, this.to + shift);
  }

  moveCursor(ms) {
    this.cursor = Math.min(this.to, Math.max(this.from, ms));
    this.draw();
    this.cursorChanged();
  }

  choose(step) {
    const d = this.data;
    const crossing = [];
    for (let i = 0; i < d.name.length; i++) {
      if (d.create[i] <= this.cursor && (d.end[i] === null || d.end[i] >= this.cursor)) crossing.push(i);
    }
    if (!crossing.length) return;
    crossing.sort((a, b) => this.lane[a] - this.lane[b]);
    const at = crossing.indexOf(this.chosen);
    this.chosen = crossing[at < 0 ? 0 : Math.min(crossing.length - 1, Math.max(0, at + step))];
    this.draw();
    this.describe(this.chosen);
  }

  describe(i) {
    const d = this.data;
    const state = d.states[d.state[i]];
    const end = d.end[i];
    this.canvas.setAttribute("aria-label", `${d.name[i]}, ${state}, created ${fmtTime(d.create[i])}${end ? `, ended ${fmtTime(end)}` : ", running"}. Enter opens it.`);
  }

  bind() {
    const c = this.canvas;
    const tip = document.getElementById("tooltip");
    let drag = null;
    c.addEventListener("wheel", (event) => {
      event.preventDefault();
      const { width } = this.geometry();
      this.zoom(event.deltaY > 0 ? 1.25 : 0.8, this.timeAt(event.offsetX, width));
    }, { passive: false });
    c.addEventListener("mousedown", (event) => { drag = { x: event.offsetX, from: this.from, to: this.to, moved: false }; });
    window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });
    c.addEventListener("mousemove", (event) => {
      const { width } = this.geometry();
      if (drag && event.buttons === 1) {
        const dx = event.offsetX - drag.x;
        if (Math.abs(dx) > 3) drag.moved = true;
        if (drag.moved) {
          const shift = (-dx / width) * (drag.to - drag.from);
          this.setWindow(drag.from + shift, drag.to + shift);
        }
        tip.hidden = true;
        return;
      }
      const i = this.hit(event.offsetX, event.offsetY);
      if (i < 0) { tip.hidden = true; c.style.cursor = "crosshair"; return; }
      c.style.cursor = "pointer";
      const d = this.data;
      const end = d.end[i];
      tip.innerHTML = `<div class="mono">${esc(d.name[i])}</div>${esc(d.states[d.state[i]])} · ${esc(d.verbs[d.verb[i]] || "no verb")}<br>
        ${fmtTime(d.create[i])} → ${end === null ? "running" : fmtTime(end)} (${fmtSpan((end ?? Date.now()) - d.create[i])})`;
      tip.hidden = false;
      tip.style.left = `${Math.min(event.clientX + 14, window.innerWidth - 400)}px`;
      tip.style.top = `${event.clientY + 14}px`;
    });
    c.addEventListener("mouseleave", () => { tip.hidden = true; });
    c.addEventListener("click", (event) => {
      if (drag && drag.moved) return;
      const i = this.hit(event.offsetX, event.offsetY);
      if (i >= 0) { tip.hidden = true; location.hash = opLink(this.data.name[i]); return; }
      const { width } = this.geometry();
      this.moveCursor(this.timeAt(event.offsetX, width));
    });
    c.addEventListener("keydown", (event) => this.key(event));
    this.bindButtons();
  }

  bindButtons() {
    document.getElementById("zoom-in").onclick = () => this.zoom(0.5);
    document.getElementById("zoom-out").onclick = () => this.zoom(2);
    document.getElementById("pan-left").onclick = () => this.pan(-0.25);
    document.getElementById("pan-right").onclick = () => this.pan(0.25);
    document.getElementById("fit").onclick = () => { if (this.extent) this.setWindow(this.extent[0], this.extent[1] + 1000); };
    document.getElementById("running-only").onchange = () => this.cursorChanged();
    document.getElementById("open-fleet").onclick = () => go("/fleet", { asOf: new Date(Math.round(this.cursor)).toISOString() });
  }

  key(event) {
    const keys = {
      ArrowLeft: () => this.pan(-0.1), ArrowRight: () => this.pan(0.1),
      "+": () => this.zoom(0.5), "=": () => this.zoom(0.5), "-": () => this.zoom(2),
      "[": () => this.moveCursor(this.cursor - (this.to - this.from) / 50),
      "]": () => this.moveCursor(this.cursor + (this.to - this.from) / 50),
      ArrowDown: () => this.choose(1), ArrowUp: () => this.choose(-1),
      Enter: () => { if (this.chosen >= 0) location.hash = opLink(this.data.name[this.chosen]); },
    };
    const action = keys[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  }

  cursorChanged() {
    clearTimeout(this.listTimer);
    this.listTimer = setTimeout(() => this.loadCursorList(), 150);
  }

  async loadCursorList() {
    if (!this.canvas.isConnected) return;
    const asOf = new Date(Math.round(this.cursor)).toISOString();
    const running = document.getElementById("running-only").checked;
    document.getElementById("cursor-title").textContent = `${running ? "Running" : "Present"} at ${fmtTime(asOf)}`;
    const [list, facets] = await Promise.all([
      api("list", { asOf, pageSize: 20, filter: running ? 'state = "RUNNING"' : "", view: "rows" }),
      api("facets", { asOf }),
    ]);
    const body = document.getElementById("cursor-rows");
    if (!body || !this.canvas.isConnected) return;
    if (!list.ok) { body.innerHTML = `<tr><td colspan="4" class="error">${esc(errorText(list.error))}</td></tr>`; return; }
    const rows = list.json.rows;
    body.innerHTML = rows.length ? rows.map((row) => `<tr><td class="name">${nameLink(row.name)}</td><td>${badge(stateAt(row, this.cursor))}</td>
        <td class="time">${fmtTime(row.createTime)}</td><td class="num">${fmtSpan(this.cursor - Date.parse(row.createTime))}</td></tr>`).join("")
      + (list.json.nextPageToken ? `<tr><td colspan="4" class="muted">The first 20; open the fleet as of the cursor for all.</td></tr>` : "")
      : `<tr><td colspan="4" class="empty">None.</td></tr>`;
    const box = document.getElementById("tl-facets");
    if (facets.ok) {
      const f = facets.json;
      box.innerHTML = `<h2>At the cursor</h2><ul class="counts">${STATES.map((s) => `<li><span class="dot ${s}"></span>${s.toLowerCase()} <strong>${f.state[s].toLocaleString("en")}</strong></li>`).join("")}</ul>
        <p class="muted">${f.total.toLocaleString("en")} operations existed then.</p>`;
    }
  }
}

// A row as of the cursor: the list was read as of that time, so its state is the one then, but the
// flat row's end time is today's; an end after the cursor means it was still running.
function stateAt(row, cursor) {
  return row.endTime && Date.parse(row.endTime) > cursor ? "RUNNING" : row.state;
}
