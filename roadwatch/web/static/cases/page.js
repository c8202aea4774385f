// @ts-check
/* One case (/cases/<id>): its facts, deadline in working hours, the people responsible then
 * and now, photos before and after (click to enlarge), its point and segment on a small map,
 * the timeline of every change, and the staff actions the server allows for its state. Every
 * action is a POST as the logged-in user; the page reloads the case when a live event of it
 * arrives (another officer's action, the clock). */
import { config, root } from "../live/config.js";
import { catName, errorText, installLang, postJSON, t, tf } from "./text.js";
import { districtName } from "../live/i18n.js";
import { $, dayTime, el, fetchJSON } from "../live/util.js";
import { startAlerts } from "../live/alerts.js";
import { drawExtensions } from "./extensions.js";

/** @type {{case_id: string, basemap?: {source: {tiles: string[]}, layers: maplibregl.LayerSpecification[]} | null}} */
const cfg = /** @type {any} */ (config);
const caseId = cfg.case_id;
/** @type {any} */
let data = null;
/** @type {maplibregl.Map | null} */
let map = null;
/** @type {string | null} */
let openAction = null;

/** Each action's fields: [name, input type, required]. */
/** @type {Record<string, [string, string, boolean][]>} */
const FIELDS = {
  reassign: [["assignee_id", "text", true], ["new_segment", "text", false], ["reason", "text", false]],
  verify: [["result", "result", true], ["reason", "text", false]],
  comment: [["text", "textarea", true]],
  extend: [["hours", "number", true], ["reason", "text", true]],
  suspend: [["until_time", "datetime-local", true], ["reason", "text", true]],
  close_invalid: [["reason", "text", true]],
  close_duplicate: [["of", "text", true], ["reason", "text", true]],
  merge: [["into", "text", true], ["reason", "text", false]],
  split: [["reason", "text", true]],
  reopen: [["reason", "text", true]],
};
/** form field -> the API's body field */
const BODY_NAME = { new_segment: "segment_id", until_time: "until" };

/** @param {string | null | undefined} iso */
function when(iso) {
  return iso ? dayTime(new Date(iso)) : "–";
}

/**
 * @param {string} label
 * @param {string} value
 */
function fact(label, value) {
  const dl = $("cw-facts");
  dl.appendChild(el("dt", null, label));
  dl.appendChild(el("dd", null, value));
}

function drawFacts() {
  const d = data;
  $("cw-facts").textContent = "";
  $("cw-case-title").textContent = d.id.slice(0, 8);
  $("cw-status").textContent = t("status_" + (d.overdue ? "overdue" : d.case_status || d.status));
  $("cw-status").className = "cw-status-badge" + (d.overdue ? " cw-overdue" : "");
  fact(t("category"), d.category + " " + catName(d.category));
  fact(t("severity"), t("sev" + d.severity));
  fact(t("observed"), when(d.observed_at));
  fact(t("segment_name"), (d.segment_name || "–") + (d.segment_id ? " (" + d.segment_id + ")" : ""));
  fact(t("district"), districtName(d.district));
  fact(t("assignee_name"), d.assignee_name ? d.assignee_name + " (" + d.assignee_id + ")" : t("unassigned"));
  fact(t("note"), d.note || "–");
  const dl = d.deadline;
  const box = $("cw-deadline");
  box.textContent = "";
  if (dl) {
    box.appendChild(el("div", null, t("deadline") + " " + when(dl.due_at)));
    const h = dl.working_hours_left;
    const line = dl.running && h != null
      ? (h < 0 ? tf("hours_over", { h: Math.abs(h).toFixed(1) }) : tf("hours_left", { h: h.toFixed(1) }))
      : t("clock_stopped");
    box.appendChild(el("div", dl.overdue ? "cw-overdue" : "cw-left", line));
  }
}

/** @param {HTMLElement} list @param {any[]} people */
function drawPeople(list, people) {
  list.textContent = "";
  if (!people.length) list.appendChild(el("li", null, t("none")));
  people.forEach(function (p) {
    const role = p.level_name || p.role;
    list.appendChild(el("li", null, p.person.name + " · " + role + " (" + p.person.id + ")"));
  });
}

/** @param {HTMLElement} row @param {string[]} shas */
function drawPhotos(row, shas) {
  row.textContent = "";
  if (!shas.length) row.appendChild(el("span", "cw-muted", t("no_photos")));
  shas.forEach(function (sha) {
    const img = /** @type {HTMLImageElement} */ (el("img", "cw-photo"));
    img.src = root + "/api/photos/" + sha;
    img.alt = sha.slice(0, 12);
    img.title = t("enlarge");
    img.tabIndex = 0;
    img.setAttribute("role", "button");
    const open = function () {
      /** @type {HTMLImageElement} */ ($("cw-lightbox-img")).src = img.src;
      /** @type {HTMLDialogElement} */ ($("cw-lightbox")).showModal();
    };
    img.addEventListener("click", open);
    img.addEventListener("keydown", function (ev) { if (ev.key === "Enter") open(); });
    row.appendChild(img);
  });
}

function drawTimeline() {
  const body = $("cw-timeline");
  body.textContent = "";
  data.timeline.forEach(function (/** @type {any} */ x) {
    const tr = el("tr");
    tr.appendChild(el("td", null, when(x.at)));
    const what = x.action ? t("act_" + x.action) : "";
    tr.appendChild(el("td", null, (what ? what + " · " : "") + t("status_" + x.to)));
    tr.appendChild(el("td", null, (x.by_name ? x.by_name + " " : "") + (x.by || "")));
    tr.appendChild(el("td", null, x.note || ""));
    body.appendChild(tr);
  });
}

function drawRelated() {
  const list = $("cw-related");
  list.textContent = "";
  if (!data.related.length) list.appendChild(el("li", null, t("none")));
  data.related.forEach(function (/** @type {any} */ r) {
    const li = el("li");
    const a = /** @type {HTMLAnchorElement} */ (el("a", null, r.id.slice(0, 8) + " · " + t("status_" + r.case_status)));
    a.href = root + "/cases/" + r.id;
    li.appendChild(a);
    list.appendChild(li);
  });
}

function drawActions() {
  const box = $("cw-action-buttons");
  box.textContent = "";
  const writer = config.user && config.user.role !== "viewer";
  if (!writer) return;
  data.actions.forEach(function (/** @type {string} */ name) {
    const b = /** @type {HTMLButtonElement} */ (el("button", null, t("act_" + name)));
    b.type = "button";
    b.id = "cw-act-" + name;
    b.addEventListener("click", function () { showForm(name); });
    box.appendChild(b);
  });
}

/** @param {string} name */
function showForm(name) {
  openAction = name;
  const form = /** @type {HTMLFormElement} */ ($("cw-action-form"));
  form.textContent = "";
  form.appendChild(el("h3", null, t("act_" + name)));
  FIELDS[name].forEach(function (f) {
    const [key, type, required] = f;
    const label = el("label");
    label.appendChild(el("span", null, t(key)));
    /** @type {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} */
    let input;
    if (type === "result") {
      const sel = document.createElement("select");
      sel.add(new Option(t("pass"), "pass"));
      sel.add(new Option(t("fail"), "fail"));
      input = sel;
    } else if (type === "textarea") {
      input = document.createElement("textarea");
    } else {
      const inp = document.createElement("input");
      inp.type = type;
      if (type === "number") { inp.min = "1"; inp.step = "1"; }
      input = inp;
    }
    input.name = key;
    input.id = "cw-f-" + key;
    input.required = required;
    label.appendChild(input);
    form.appendChild(label);
  });
  const submit = /** @type {HTMLButtonElement} */ (el("button", null, t("submit")));
  submit.type = "submit";
  submit.id = "cw-submit";
  form.appendChild(submit);
  form.hidden = false;
  const first = form.querySelector("input, select, textarea");
  if (first) /** @type {HTMLElement} */ (first).focus();
}

/** The form's values as the API's body. */
function formBody() {
  const form = /** @type {HTMLFormElement} */ ($("cw-action-form"));
  /** @type {Record<string, unknown>} */
  const body = {};
  new FormData(form).forEach(function (value, key) {
    const v = String(value).trim();
    if (!v) return;
    const name = /** @type {Record<string, string>} */ (BODY_NAME)[key] || key;
    if (key === "hours") body[name] = Number(v);
    else if (key === "until_time") body[name] = new Date(v).toISOString();
    else body[name] = v;
  });
  return body;
}

$("cw-action-form").addEventListener("submit", function (ev) {
  ev.preventDefault();
  if (!openAction) return;
  const action = openAction;
  const result = $("cw-action-result");
  const submit = /** @type {HTMLButtonElement | null} */ (document.getElementById("cw-submit"));
  if (submit && submit.disabled) return; // a second click while the first is on its way
  if (submit) submit.disabled = true;
  result.textContent = "…";
  result.className = "";
  const body = formBody();
  // the case as this page shows it: the server refuses the action if it changed meanwhile
  body.expect_last_change = data ? data.last_change : null;
  postJSON("/api/cases/" + encodeURIComponent(caseId) + "/" + action, body).then(function (r) {
    if (submit) submit.disabled = false;
    if (r.ok) {
      result.textContent = t("act_" + action) + " · " + t("done");
      $("cw-action-form").hidden = true;
      openAction = null;
      load();
    } else {
      result.textContent = errorText(r.body);
      result.className = "cw-error";
      if (r.body && r.body.errors && r.body.errors[0] && r.body.errors[0].code === "stale") load();
    }
  });
});

function drawMap() {
  if (typeof maplibregl === "undefined" || data.lat == null || map) return;
  /** @type {Record<string, any>} */
  const sources = {
    point: { type: "geojson", data: { type: "Point", coordinates: [data.lon, data.lat] } },
  };
  /** @type {maplibregl.LayerSpecification[]} */
  let layers = [{ id: "bg", type: "background", paint: { "background-color": "#eef0f2" } }];
  if (cfg.basemap) {
    sources.basemap = Object.assign({}, cfg.basemap.source, {
      tiles: cfg.basemap.source.tiles.map(function (u) { return location.origin + u; }),
    });
    layers = layers.concat(cfg.basemap.layers);
  }
  if (data.segment && data.segment.geometry) {
    sources.segment = { type: "geojson", data: data.segment.geometry };
    layers.push({ id: "segment", type: "line", source: "segment", paint: { "line-color": "#d9480f", "line-width": 5 } });
  }
  layers.push({ id: "point", type: "circle", source: "point", paint: { "circle-radius": 7, "circle-color": "#1c7ed6", "circle-stroke-color": "#fff", "circle-stroke-width": 2 } });
  map = new maplibregl.Map({
    container: "cw-map",
    style: { version: 8, sources: sources, layers: layers },
    center: [data.lon, data.lat],
    zoom: 16,
    attributionControl: false,
  });
  map.on("load", function () { document.body.setAttribute("data-map", "ready"); });
}

function drawAll() {
  if (!data) return;
  drawFacts();
  drawPeople($("cw-people-then"), data.responsible_then);
  drawPeople($("cw-people-now"), data.responsible_now);
  drawPhotos($("cw-photos-before"), data.photos_before);
  drawPhotos($("cw-photos-after"), data.photos_after.map(function (/** @type {any} */ p) { return p.sha256; }));
  drawRelated();
  drawTimeline();
  drawActions();
  drawExtensions(data, load);
  drawMap();
  document.body.setAttribute("data-loaded", String(data.timeline.length));
}

function load() {
  return fetchJSON("/api/cases/" + encodeURIComponent(caseId))
    .then(function (d) {
      data = d;
      drawAll();
    })
    .catch(function (err) {
      $("cw-error").textContent = t("not_found") + " (" + String(err.message || err) + ")";
      $("cw-error").hidden = false;
    });
}

installLang(drawAll);
load();
document.body.setAttribute("data-ready", "1");
// Live: this case's changes (another officer's, the clock's) redraw it; alerts for the rest.
if (typeof io === "function") {
  const p = config.socketio_path || "socket.io";
  const socket = io(config.namespace || "/live", { path: root + "/" + p, transports: ["websocket", "polling"] });
  socket.on("case", function (/** @type {Record<string, any>} */ ev) {
    if (ev.id === caseId) load();
  });
  startAlerts(socket);
}
