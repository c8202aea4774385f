// @ts-check
/* From the live map to the workbench: the counters open the case list, a report marker
 * its case; every open case is on the map from the start (GET /api/open-cases, clustered
 * with the live ones); the search box finds a road by name, a segment by id, or opens a
 * case by its id. */
import { REPORT_CAP } from "./config.js";
import { t } from "./i18n.js";
import { loadSegmentDetail, showSegment } from "./panel.js";
import { scheduleFrame } from "./feed.js";
import { reports, rw, segments, state } from "./state.js";
import { $, caseListUrl, caseUrl, dayKey, el, fetchJSON, zoneMidnight } from "./util.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_RESULTS = 8;

/** "Reports today" lists today's cases (since the city's midnight). */
function todayLink() {
  const a = /** @type {HTMLAnchorElement | null} */ (document.getElementById("rw-link-reports"));
  if (a) a.href = caseListUrl({ since: zoneMidnight(dayKey(new Date())).toISOString() });
}

/** Every open case's marker, under the live ones (which come after, newest last). */
export function loadOpenCases() {
  if (!document.getElementById("rw-export-open")) return Promise.resolve(); // no staff login
  return fetchJSON("/api/open-cases").then(function (doc) {
    /** @type {any[]} */
    const rows = (doc.items || []).slice(0, REPORT_CAP).reverse(); // oldest first
    /** @type {Map<string, any>} */
    const live = new Map(reports);
    reports.clear();
    rows.forEach(function (r) {
      reports.set(String(r[0]), {
        type: "Feature",
        geometry: { type: "Point", coordinates: [Number(r[1]), Number(r[2])] },
        properties: {
          id: String(r[0]), segment_id: r[7], category: r[3], severity: r[4], status: r[5],
          arrived: 0, fresh: false,
        },
      });
    });
    live.forEach(function (f, k) {
      reports.delete(k);
      reports.set(k, f);
    });
    rw.openCasesLoaded = rows.length;
    state.reportsDirty = true;
    scheduleFrame();
  }).catch(function (err) {
    console.warn("roadwatch: open cases not loaded", err);
  });
}

/** @param {string} id */
function pinSegment(id) {
  state.pinnedId = id;
  showSegment(id);
  loadSegmentDetail(id);
  fetchJSON("/api/segments/" + encodeURIComponent(id)).then(function (doc) {
    const coords = doc.geometry && doc.geometry.coordinates;
    if (!coords || !coords.length) return;
    const flat = doc.geometry.type === "MultiLineString" ? coords.flat() : coords;
    const b = new maplibregl.LngLatBounds();
    flat.forEach(function (/** @type {[number, number]} */ xy) { b.extend(xy); });
    state.map.fitBounds(b, { padding: 120, maxZoom: 17, duration: 0 });
  });
}

/**
 * Up to MAX_RESULTS answers: a case by its id, segments by id, then by road name.
 * @param {string} q
 * @returns {{label: string, go: () => void}[]}
 */
export function search(q) {
  const text = q.trim();
  if (!text) return [];
  if (UUID.test(text)) {
    return [{ label: t("open_cases") + " " + text, go: function () { location.href = caseUrl(text); } }];
  }
  const lower = text.toLowerCase();
  /** @type {{label: string, go: () => void, rank: number}[]} */
  const out = [];
  segments.forEach(function (s, id) {
    if (out.length >= 200) return;
    const p = s.props;
    const key = String(id).toLowerCase();
    const rank = key === lower ? 0 : key.startsWith(lower) ? 1 :
      (p.name || "").includes(text) || (p.road || "").includes(text) ? 2 : -1;
    if (rank < 0) return;
    out.push({ label: (p.name || p.road || id) + " · " + id, go: function () { pinSegment(id); }, rank: rank });
  });
  out.sort(function (a, b) { return a.rank - b.rank || (a.label < b.label ? -1 : 1); });
  return out.slice(0, MAX_RESULTS);
}

function installSearch() {
  const form = /** @type {HTMLFormElement} */ ($("rw-search"));
  const input = /** @type {HTMLInputElement} */ ($("rw-search-q"));
  const list = $("rw-search-results");
  /** @type {{label: string, go: () => void}[]} */
  let found = [];
  const render = function () {
    found = search(input.value);
    list.textContent = "";
    found.forEach(function (r) {
      const li = el("li");
      const b = /** @type {HTMLButtonElement} */ (el("button", null, r.label));
      b.type = "button";
      b.addEventListener("click", r.go);
      li.appendChild(b);
      list.appendChild(li);
    });
    if (input.value.trim() && !found.length) list.appendChild(el("li", "rw-dim", t("no_match")));
  };
  input.addEventListener("input", render);
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    render();
    if (found.length) found[0].go();
  });
}

/** The links, the markers' clicks and the search box. */
export function installNavigation() {
  todayLink();
  setInterval(todayLink, 60000);
  installSearch();
  state.map.on("click", "reports", function (e) {
    const f = e.features && e.features[0];
    if (f && f.properties && f.properties.id) location.href = caseUrl(String(f.properties.id));
  });
  state.map.on("mouseenter", "reports", function () { state.map.getCanvas().style.cursor = "pointer"; });
}
