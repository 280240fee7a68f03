"use strict";
// framesift UI: plain JS, no build step. Every text from the server goes through textContent.

function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const kid of kids) node.append(kid);
  return node;
}

function showError(msg) { document.getElementById("err").textContent = msg || ""; }

async function api(path, opts) {
  const r = await fetch(path, Object.assign({credentials: "same-origin"}, opts || {}));
  if (r.status === 401) { location.href = "/login"; throw new Error("sign in"); }
  const ctype = r.headers.get("content-type") || "";
  const body = ctype.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((body && body.error) || ("HTTP " + r.status));
  return body;
}

function when(ts) { return ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) : ""; }

// ---------------------------------------------------------------- Live
async function livePage() {
  const box = document.getElementById("sources");
  const cards = new Map();
  async function refresh() {
    let doc;
    try { doc = await api("/status"); showError(""); } catch (e) { showError(e.message); return; }
    const ids = Object.keys(doc.sources || {});
    for (const [sid, card] of cards) if (!ids.includes(sid)) { card.remove(); cards.delete(sid); }
    for (const sid of ids) {
      const s = doc.sources[sid];
      let card = cards.get(sid);
      if (!card) {
        card = el("div", {class: "card", "data-source": sid});
        card.append(el("h3", {class: "sid", text: sid}), el("img", {alt: "latest frame of " + sid}),
          el("div", {class: "line"}), el("button", {class: "small", type: "button", text: "remove"}));
        card.querySelector("button").addEventListener("click", async () => {
          try { await api("/sources/" + encodeURIComponent(sid), {method: "DELETE"}); refresh(); }
          catch (e) { showError(e.message); }
        });
        box.append(card); cards.set(sid, card);
      }
      const drops = Object.values(s.drops || {}).reduce((a, b) => a + b, 0);
      const line = card.querySelector(".line");
      line.textContent = "";
      line.append(el("span", {class: "state-" + s.state, text: s.state}),
        el("span", {text: ` · ${s.fps.toFixed(1)} fps · ${s.frames_decoded} frames · ${drops} drops · ${s.reconnects} reconnects`}));
      if (s.frames_staged > 0) card.querySelector("img").src = "/api/sources/" + encodeURIComponent(sid) + "/preview.jpg?t=" + Date.now();
    }
  }
  document.getElementById("add-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const type = document.getElementById("add-type").value;
    const input = document.getElementById("add-input").value.trim();
    const spec = {type: type};
    if (type === "file") { spec.path = input; spec.realtime = true; } else { spec.url = input; }
    const sid = document.getElementById("add-id").value.trim();
    if (sid) spec.id = sid;
    const out = document.getElementById("add-result");
    try {
      const doc = await api("/sources", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(spec)});
      out.textContent = "added " + doc.id; refresh();
    } catch (err) { out.textContent = err.message; }
  });
  refresh();
  setInterval(refresh, 1500);
}

// ---------------------------------------------------------------- Events
function eventsPage() {
  const body = document.getElementById("events");
  const typeSel = document.getElementById("ev-type");
  const srcIn = document.getElementById("ev-source");
  const types = new Set();
  function visible(row) {
    const t = typeSel.value, s = srcIn.value.trim();
    return (!t || row.dataset.type === t) && (!s || row.dataset.source === s);
  }
  function refilter() { for (const row of body.children) row.hidden = !visible(row); }
  typeSel.addEventListener("change", refilter);
  srcIn.addEventListener("input", refilter);
  const es = new EventSource("/api/events");
  es.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (!types.has(ev.type)) { types.add(ev.type); typeSel.append(el("option", {value: ev.type, text: ev.type})); }
    const detail = Object.entries(ev).filter(([k]) => !["type", "source", "wallclock", "schema"].includes(k))
      .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v)).join(" ");
    const row = el("tr", {}, el("td", {text: m.lastEventId}), el("td", {text: ev.type}), el("td", {text: ev.source || ""}),
      el("td", {text: when(ev.wallclock)}), el("td", {text: detail.slice(0, 300)}));
    row.dataset.type = ev.type; row.dataset.source = ev.source || "";
    row.hidden = !visible(row);
    body.prepend(row);
    while (body.children.length > 500) body.lastChild.remove();
  };
  es.onerror = () => showError("event stream interrupted; reconnecting");
  es.onopen = () => showError("");
}

// ---------------------------------------------------------------- Kept frames
function frameCard(f, score) {
  const card = el("div", {class: "thumb", "data-id": f.id},
    el("a", {href: f.image, target: "_blank", rel: "noopener"}, el("img", {src: f.thumb, alt: f.id, loading: "lazy"})),
    el("div", {class: "meta", text: `${f.source} · ${when(f.wallclock)} · ${f.reason}`}));
  if (score !== undefined) card.append(el("div", {class: "score", text: "score " + score.toFixed(4)}));
  const more = el("button", {class: "small", type: "button", text: "more like this"});
  more.addEventListener("click", () => showHits(api("/api/frames/" + encodeURIComponent(f.id) + "/similar"), "like " + f.id));
  card.append(more);
  return card;
}

async function showHits(promise, what) {
  const gallery = document.getElementById("gallery");
  const note = document.getElementById("search-note");
  try {
    const hits = await promise;
    gallery.textContent = "";
    for (const h of hits) gallery.append(frameCard(h.frame, h.score));
    note.textContent = `${hits.length} frames ranked by cosine to ${what}`;
  } catch (e) { note.textContent = e.message; }
}

async function framesPage() {
  const gallery = document.getElementById("gallery");
  const note = document.getElementById("search-note");
  try {
    const info = await api("/api/store");
    for (const s of info.sources) document.getElementById("f-source").append(el("option", {value: s, text: s}));
    for (const r of info.reasons) document.getElementById("f-reason").append(el("option", {value: r, text: r}));
  } catch (e) { showError(e.message); return; }
  async function list() {
    const q = new URLSearchParams();
    const src = document.getElementById("f-source").value, rsn = document.getElementById("f-reason").value;
    const since = document.getElementById("f-since").value, until = document.getElementById("f-until").value;
    if (src) q.set("source", src);
    if (rsn) q.set("reason", rsn);
    if (since) q.set("since", String(Date.parse(since + "Z") / 1000));
    if (until) q.set("until", String(Date.parse(until + "Z") / 1000));
    try {
      const page = await api("/api/frames?" + q.toString());
      gallery.textContent = "";
      for (const f of page.frames) gallery.append(frameCard(f));
      note.textContent = `${page.total} kept frames`;
    } catch (e) { note.textContent = e.message; }
  }
  document.getElementById("f-apply").addEventListener("click", list);
  document.getElementById("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = document.getElementById("q").value.trim();
    if (!q) { list(); return; }
    const src = document.getElementById("f-source").value;
    const params = new URLSearchParams({q: q});
    if (src) params.set("source", src);
    showHits(api("/api/search/text?" + params.toString()), JSON.stringify(q));
  });
  document.getElementById("image-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (!file) return;
    showHits(api("/api/search/image", {method: "POST", headers: {"Content-Type": file.type || "application/octet-stream"}, body: file}),
      "the image " + JSON.stringify(file.name));
  });
  list();
}

// ---------------------------------------------------------------- Dataset map
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

async function mapPage() {
  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d");
  const note = document.getElementById("map-note");
  const hover = document.getElementById("hover");
  let doc;
  try { doc = await api("/api/map"); } catch (e) { note.textContent = e.message; return; }
  const n = doc.ids.length;
  const xs = doc.x, ys = doc.y;
  const minx = Math.min(...xs), maxx = Math.max(...xs), miny = Math.min(...ys), maxy = Math.max(...ys);
  const px = (i) => 10 + (xs[i] - minx) / ((maxx - minx) || 1) * (canvas.width - 20);
  const py = (i) => 10 + (ys[i] - miny) / ((maxy - miny) || 1) * (canvas.height - 20);
  function draw() {
    const by = document.getElementById("color-by").value;
    const key = by === "source" ? doc.source : by === "reason" ? doc.reason : doc.cluster;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < n; i++) {
      ctx.fillStyle = PALETTE[((key[i] % 10) + 10) % 10];
      ctx.beginPath(); ctx.arc(px(i), py(i), doc.outlier[i] ? 5 : 3, 0, 6.283); ctx.fill();
      if (doc.outlier[i]) { ctx.strokeStyle = "#000"; ctx.stroke(); }
      if (doc.dup_group[i] >= 0) { ctx.strokeStyle = "#d00"; ctx.strokeRect(px(i) - 5, py(i) - 5, 10, 10); }
    }
    const outliers = doc.outlier.filter(Boolean).length;
    note.textContent = `${n} frames · ${doc.method} (${doc.how}) · ${outliers} outliers · ${doc.dup_groups} near-duplicate groups`;
  }
  document.getElementById("color-by").addEventListener("change", draw);
  canvas.addEventListener("mousemove", (e) => {
    const r = canvas.getBoundingClientRect();
    const mx = e.clientX - r.left, my = e.clientY - r.top;
    let best = -1, bestD = 64;
    for (let i = 0; i < n; i++) { const d = (px(i) - mx) ** 2 + (py(i) - my) ** 2; if (d < bestD) { bestD = d; best = i; } }
    if (best >= 0) { hover.src = "/api/frames/" + encodeURIComponent(doc.ids[best]) + "/thumb.jpg"; hover.alt = doc.ids[best]; hover.hidden = false; }
    else hover.hidden = true;
  });
  draw();
}

// ---------------------------------------------------------------- Scenes
async function scenesPage() {
  const list = document.getElementById("reports");
  let reports;
  try { reports = await api("/api/scenes"); } catch (e) { showError(e.message); return; }
  if (!reports.length) list.append(el("li", {text: "no reports (framesift serve --scenes DIR)"}));
  for (const r of reports) list.append(el("li", {}, el("a", {href: r.url, target: "_blank", rel: "noopener", text: r.name}),
    el("span", {class: "note", text: " " + r.files.join(", ")})));
}

const PAGES = {live: livePage, events: eventsPage, frames: framesPage, map: mapPage, scenes: scenesPage};
PAGES[document.body.dataset.page]();
