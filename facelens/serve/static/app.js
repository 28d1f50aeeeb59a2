// facelens live page: figures and sources from /v1/stats every second, events by Server-Sent Events,
// one MJPEG view per source. No libraries, nothing from elsewhere.
"use strict";

const $ = (selector) => document.querySelector(selector);
const cards = new Map();
let k = 1;
let eventsOpen = false;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function shown(value) {
  return value === null || value === undefined ? `<${k}` : String(value);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function bars(container, counts, order) {
  const box = container.querySelector(".bars");
  const keys = order || Object.keys(counts);
  const total = keys.reduce((sum, key) => sum + (counts[key] || 0), 0);
  box.replaceChildren(...keys.map((key) => {
    const n = counts[key];
    const fill = el("div", { class: "fill" });
    fill.style.width = n ? `${(100 * n) / Math.max(total, 1)}%` : "0";
    return el("div", { class: `bar ${key}` }, el("span", {}, key), el("div", { class: "track" }, fill), el("span", { class: "n" }, n === null ? "hidden" : String(n)));
  }));
}

function figures(people) {
  k = people.k;
  $("#in-view").textContent = shown(people.people_in_view);
  $("#entered").textContent = shown(people.entered_last_hour);
  $("#dwell").textContent = people.dwell_median_seconds === null ? "–" : duration(people.dwell_median_seconds);
  bars($("#gender"), people.gender);
  bars($("#age"), people.age_buckets);
  bars($("#mood"), people.emotion);
  const note = $("#k-note");
  note.hidden = k <= 1;
  note.textContent = `k-anonymity: figures about fewer than ${k} people are hidden.`;
}

function card(source) {
  const state = el("span", { class: "state" });
  const remove = el("button", { class: "remove", type: "button", title: "Stop and remove this source" }, "remove");
  remove.addEventListener("click", async () => {
    remove.disabled = true;
    await fetch(`/v1/sources/${source.id}`, { method: "DELETE" });
    refresh();
  });
  const view = source.video
    ? el("img", { class: "view", alt: `live view of ${source.name}`, src: source.video })
    : el("div", { class: "view off" }, "numbers only (--no-images)");
  const counters = el("div", { class: "counters" });
  const error = el("p", { class: "error", hidden: "" });
  const node = el("article", { class: "source", "data-id": String(source.id) },
    el("div", { class: "head" }, el("h3", {}, source.name), state, remove), view, counters, error);
  $("#sources").append(node);
  const entry = { node, state, counters, error };
  cards.set(source.id, entry);
  return entry;
}

function sources(list) {
  const seen = new Set();
  for (const source of list) {
    seen.add(source.id);
    const entry = cards.get(source.id) || card(source);
    entry.node.dataset.state = source.state;
    entry.state.className = `state ${source.state}`;
    entry.state.textContent = source.state;
    const parts = [["fps", source.fps.toFixed(1)], ["frames", source.frames], ["faces", source.faces], ["dropped", source.dropped], ["in view", shown(source.people_in_view)]];
    if (source.errors) parts.push(["failed", source.errors]);
    if (source.gaps) parts.push(["gaps", source.gaps]);
    entry.counters.replaceChildren(...parts.map(([name, value]) => el("span", { "data-counter": name }, `${name} `, el("b", {}, String(value)))));
    entry.error.hidden = !source.error;
    entry.error.textContent = source.error || "";
  }
  for (const [id, entry] of cards) {
    if (!seen.has(id)) { entry.node.remove(); cards.delete(id); }
  }
}

function addEvent(event, live) {
  const list = $("#events");
  const time = new Date(event.wall_time * 1000);
  const item = el("li", { class: event.kind, "data-id": String(event.id) },
    el("span", { class: "kind" }, event.kind === "enter" ? "in" : "out"),
    el("span", { class: "where" }, `#${event.track_id} · ${event.source}`),
    el("time", { datetime: time.toISOString() }, time.toLocaleTimeString()));
  list.prepend(item);
  while (list.children.length > 50) list.lastChild.remove();
}

function openEvents() {
  if (eventsOpen) return;
  eventsOpen = true;
  const stream = new EventSource("/v1/events/stream?backlog=20");
  for (const kind of ["enter", "exit"]) {
    stream.addEventListener(kind, (message) => addEvent(JSON.parse(message.data), true));
  }
}

async function refresh() {
  try {
    const response = await fetch("/v1/stats", { cache: "no-store" });
    if (!response.ok) throw new Error((await response.json()).error || response.statusText);
    const stats = await response.json();
    figures(stats.people);
    sources(stats.sources);
    $("#report-link").hidden = !stats.database;
    if (k > 1) {
      $("#events-note").hidden = false;
      $("#events-note").textContent = `Single events are not shown under k-anonymity (k = ${k}).`;
    } else {
      openEvents();
    }
    $("#status").textContent = `updated ${new Date().toLocaleTimeString()} · up ${duration(stats.uptime_seconds)}` + (stats.database && stats.database.error ? ` · database: ${stats.database.error}` : "");
  } catch (error) {
    $("#status").textContent = `cannot reach the server: ${error.message}`;
  }
}

$("#add-source").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const input = $("#new-source");
  const response = await fetch("/v1/sources", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ source: input.value }) });
  $("#add-error").textContent = response.ok ? "" : (await response.json()).error;
  if (response.ok) input.value = "";
  refresh();
});

refresh();
setInterval(refresh, 1000);
