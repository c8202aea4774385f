// @ts-check
/* The review queue (GET /api/review): each pending report's point and candidate segments
 * on a small map; 1–9 (or a click) settles it onto that candidate, X marks it invalid
 * (POST /api/review/<id>, decided by the logged-in person and audited by the server).
 * When the same reporter has other pending reports within 50 m (GET /api/review/<id>/similar)
 * a box offers to settle them with it in one decision (POST /api/review/<id>/similar). */
import { catName, setCategoryNames, t } from "../live/i18n.js";
import { $, dayTime, el, fetchJSON, field } from "../live/util.js";
import { installDesk, onLanguage, say, sendJSON } from "./common.js";

/**
 * @typedef {{segment_id: string, name: string, district: string, distance_m: number | null,
 *   geometry: any}} Candidate
 * @typedef {{id: string, category: string, severity: number, lat: number | null,
 *   lon: number | null, observed_at: string, note: string | null, reason: string | null,
 *   candidates: Candidate[]}} Pending
 */

const COLOURS = ["#4cc3ff", "#ffb020", "#2ee66b", "#ff7ad9", "#b388ff", "#ff6b4a", "#e6e65c", "#5ce6d9", "#c0c0c0"];

/** @type {Pending[]} */
let items = [];
/** The shown report's similar pending ones (itself first), once the server has said. */
/** @type {{id: string, ids: string[]} | null} */
let similar = null;
let current = 0;
let busy = false;
/** @type {any} */
let map = null;
/** similarOf: the report whose similar ones the server last answered for (tests wait on it) */
const review = { settled: 0, ready: false, similarOf: "" };
/** @type {any} */ (window).roadwatch = { review: review };

function renderList() {
  const list = $("rw-review-items");
  list.textContent = "";
  $("rw-review-count").textContent = String(items.length);
  items.forEach(function (it, i) {
    const li = el("li", null, catName(it.category) + " · " + t("sev" + it.severity));
    li.setAttribute("data-id", it.id);
    li.setAttribute("aria-selected", String(i === current));
    li.appendChild(el("small", null, dayTime(new Date(it.observed_at)) + (it.reason ? " · " + t("reason_" + it.reason) : "")));
    li.addEventListener("click", function () { select(i); });
    list.appendChild(li);
  });
  if (!items.length) list.appendChild(el("li", null, t("review_empty")));
}

/** @param {number} i */
function select(i) {
  current = Math.max(0, Math.min(items.length - 1, i));
  renderList();
  renderDetail();
}

function renderDetail() {
  const it = items[current];
  const info = $("rw-review-info");
  const choices = $("rw-review-choices");
  info.textContent = "";
  choices.textContent = "";
  $("rw-review-detail").hidden = !it;
  showSimilar(it);
  if (!it) return;
  info.appendChild(el("div", null, catName(it.category) + " (" + it.category + ") · " + t("sev" + it.severity) +
    " · " + dayTime(new Date(it.observed_at))));
  if (it.note) info.appendChild(el("div", "rw-desk-hint", it.note));
  it.candidates.slice(0, 9).forEach(function (c, n) {
    const b = /** @type {HTMLButtonElement} */ (el("button"));
    b.type = "button";
    b.setAttribute("data-segment", c.segment_id);
    b.style.borderColor = COLOURS[n];
    b.appendChild(el("b", null, String(n + 1)));
    b.appendChild(document.createTextNode(c.name + " · " + c.segment_id +
      (c.distance_m != null ? " · " + Math.round(c.distance_m) + " " + t("metres") : "")));
    b.addEventListener("click", function () { settle(c.segment_id); });
    choices.appendChild(b);
  });
  const x = /** @type {HTMLButtonElement} */ (el("button", "rw-invalid"));
  x.type = "button";
  x.id = "rw-review-invalid";
  x.appendChild(el("b", null, "X"));
  x.appendChild(document.createTextNode(t("invalid")));
  x.addEventListener("click", function () { settle(null); });
  choices.appendChild(x);
  drawMap(it);
}

/** The "settle the similar ones too" box, for the report shown. @param {Pending | undefined} it */
function showSimilar(it) {
  const box = $("rw-review-similar-box");
  const known = it && similar && similar.id === it.id ? similar : null;
  const others = known ? known.ids.filter(function (id) { return id !== known.id; }).length : 0;
  box.hidden = others === 0;
  $("rw-review-similar-text").textContent = t("similar_with").replace("{n}", String(others));
  if (!it || known) return;
  const box2 = /** @type {HTMLInputElement} */ ($("rw-review-similar"));
  box2.checked = false;
  fetchJSON("/api/review/" + encodeURIComponent(it.id) + "/similar").then(function (doc) {
    similar = { id: it.id, ids: doc.ids || [it.id] };
    if (items[current] === it) showSimilar(it);
    review.similarOf = it.id;
  }).catch(function () { /* no offer: settle this one alone */ });
}

/** @param {Pending} it */
function drawMap(it) {
  const lines = {
    type: "FeatureCollection",
    features: it.candidates.slice(0, 9).map(function (c, n) {
      return { type: "Feature", geometry: c.geometry, properties: { colour: COLOURS[n] } };
    }),
  };
  const point = {
    type: "FeatureCollection",
    features: it.lon != null && it.lat != null
      ? [{ type: "Feature", geometry: { type: "Point", coordinates: [it.lon, it.lat] }, properties: {} }]
      : [],
  };
  const show = function () {
    map.getSource("cands").setData(lines);
    map.getSource("point").setData(point);
    const b = new maplibregl.LngLatBounds();
    lines.features.forEach(function (f) {
      f.geometry.coordinates.forEach(function (/** @type {[number, number]} */ xy) { b.extend(xy); });
    });
    point.features.forEach(function (f) { b.extend(/** @type {[number, number]} */ (f.geometry.coordinates)); });
    if (!b.isEmpty()) map.fitBounds(b, { padding: 60, maxZoom: 18, duration: 0 });
  };
  if (map.loaded()) show();
  else map.once("load", show);
}

function makeMap() {
  map = new maplibregl.Map({
    container: "rw-review-map",
    style: {
      version: 8,
      sources: {
        cands: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
        point: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
      },
      layers: [
        { id: "bg", type: "background", paint: { "background-color": "#0d1624" } },
        { id: "cands", type: "line", source: "cands", paint: { "line-color": ["get", "colour"], "line-width": 5 } },
        { id: "point", type: "circle", source: "point", paint: { "circle-radius": 7, "circle-color": "#ff2d2d", "circle-stroke-color": "#fff", "circle-stroke-width": 2 } },
      ],
    },
    center: [113.66, 34.76],
    zoom: 14,
    attributionControl: false,
    dragRotate: false,
  });
}

/** @param {string | null} segment null: invalid */
function settle(segment) {
  const it = items[current];
  if (!it || busy) return;
  busy = true;
  const note = field("rw-review-note").value.trim();
  /** @type {Record<string, unknown>} */
  const body = segment ? { segment_id: segment } : { invalid: true };
  if (note) body.note = note;
  const together = !$("rw-review-similar-box").hidden &&
    /** @type {HTMLInputElement} */ ($("rw-review-similar")).checked && similar && similar.id === it.id;
  let path = "/api/review/" + encodeURIComponent(it.id);
  if (together && similar) {
    path += "/similar";
    body.ids = similar.ids; // exactly the ones offered, not any that came since
  }
  sendJSON("POST", path, body).then(function (doc) {
    const done = new Set(doc.settled || [it.id]);
    const before = items.length;
    const at = items.slice(0, current).filter(function (x) { return !done.has(x.id); }).length;
    items = items.filter(function (x) { return !done.has(x.id); });
    review.settled += before - items.length;
    similar = null;
    field("rw-review-note").value = "";
    say(t("settled") + ": " + it.id.slice(0, 8) + (done.size > 1 ? " +" + (done.size - 1) : "") +
      " → " + (doc.segment_id || t("invalid")));
    select(at);
  }).catch(function (err) {
    say(String(err.message || err), true);
  }).finally(function () {
    busy = false;
  });
}

document.addEventListener("keydown", function (e) {
  const target = /** @type {HTMLElement} */ (e.target);
  if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) return;
  const it = items[current];
  if (!it) return;
  if (/^[1-9]$/.test(e.key)) {
    const c = it.candidates[Number(e.key) - 1];
    if (c) settle(c.segment_id);
  } else if (e.key === "x" || e.key === "X") {
    settle(null);
  } else if (e.key === "ArrowDown" || e.key === "j") {
    select(current + 1);
  } else if (e.key === "ArrowUp" || e.key === "k") {
    select(current - 1);
  } else {
    return;
  }
  e.preventDefault();
});

onLanguage(function () {
  renderList();
  renderDetail();
});
makeMap();
installDesk();
Promise.all([fetchJSON("/api/review?limit=500"), fetchJSON("/api/categories").catch(function () { return {}; })])
  .then(function (res) {
    setCategoryNames(res[1] || {});
    items = res[0].items || [];
    select(0);
    review.ready = true;
  });
