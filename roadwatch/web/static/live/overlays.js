// @ts-check
/* What goes on the map after its first full render: the district outlines and names,
 * the reports (a clustered GeoJSON source, handed its data at most every
 * REPORT_FLUSH_MS) and the clusters' counts. */
import { COUNT_CAP, FRESH_MS, REPORT_FLUSH_MS, districtNames } from "./config.js";
import { commitEvery } from "./commit.js";
import { rotation } from "./screen.js";
import { reports, rw, state } from "./state.js";
import { districtLayers, districtViews, labelPoint, reportLayers } from "./style.js";
import { el } from "./util.js";

/**
 * @typedef {object} DistrictFeature
 * @property {{type: string, coordinates: any} | null} geometry
 * @property {{code?: string, name?: string} | null} properties
 */
/** @typedef {{type: "FeatureCollection", features: DistrictFeature[]}} DistrictCollection */

/**
 * District names as HTML markers: large and crisp at any zoom.
 * @param {DistrictCollection} fc
 */
export function addDistrictNames(fc) {
  (fc.features || []).forEach(function (f) {
    const p = f.geometry && labelPoint(f.geometry);
    const props = f.properties || {};
    if (props.code && props.name) districtNames[props.code] = props.name;
    if (!p || !props.name) return;
    const e = el("div", "rw-district-label", props.name);
    new maplibregl.Marker({ element: e }).setLngLat(p).addTo(state.map);
  });
}

/**
 * Right after the first full render: the district outlines (under the segments) and
 * the reports (clustered, over them). Each source that loads costs the map another
 * full frame; before the first full render that would only delay it.
 * @param {DistrictCollection} districts
 */
export function addOverlays(districts) {
  const map = state.map;
  map.addSource("districts", { type: "geojson", data: /** @type {any} */ (districts) });
  districtLayers().forEach(function (l) {
    map.addLayer(l, "segments");
  });
  map.addSource("reports", {
    type: "geojson",
    data: { type: "FeatureCollection", features: [] },
    cluster: true,
    clusterRadius: 42,
    clusterMaxZoom: 14,
  });
  reportLayers().forEach(function (l) {
    map.addLayer(l);
  });
  state.overlays = true;
  if (rotation >= 0 && districtViews[rotation]) {
    map.setFilter("districts-focus", ["==", ["get", "code"], districtViews[rotation].code]);
  }
  if (reports.size || state.reportsDirty) {
    flushReports();
    state.awaitingDraw = true;
  }
}

// ------------------------------------------------------- cluster counts
// A cluster's count is HTML over the map, not a symbol layer: in software WebGL a symbol
// layer on the reports cost two more full frames (its placement) every time the reports
// change, twice what the rest of a reports update costs. At most COUNT_CAP of them.
/** @type {HTMLElement | null} */
let countBox = null;
/** @type {HTMLElement[]} */
const countEls = [];
/** @type {{at: [number, number], text: string}[]} */
let countItems = [];

function takeClusterCounts() {
  /** @type {Record<string, boolean>} */
  const seen = {};
  countItems = [];
  const feats = state.map.queryRenderedFeatures({ layers: ["report-clusters"] });
  for (let i = 0; i < feats.length && countItems.length < COUNT_CAP; i++) {
    const p = feats[i].properties;
    if (seen[p.cluster_id]) continue; // in two tiles' edges
    seen[p.cluster_id] = true;
    countItems.push({ at: /** @type {any} */ (feats[i].geometry).coordinates, text: String(p.point_count_abbreviated) });
  }
  placeClusterCounts();
}

function placeClusterCounts() {
  const map = state.map;
  if (!countBox) {
    countBox = el("div", "rw-cluster-counts");
    map.getCanvasContainer().appendChild(countBox);
  }
  for (let i = 0; i < countItems.length; i++) {
    let e = countEls[i];
    if (!e) {
      e = countEls[i] = el("div", "rw-cluster-count");
      countBox.appendChild(e);
    }
    const xy = map.project(countItems[i].at);
    if (e.textContent !== countItems[i].text) e.textContent = countItems[i].text;
    e.style.transform = "translate(" + Math.round(xy.x) + "px," + Math.round(xy.y) + "px)";
    e.hidden = false;
  }
  for (let j = countItems.length; j < countEls.length; j++) countEls[j].hidden = true;
}

/** After a frame: new clusters once the reports' tiles are all in; else follow the map. */
export function onCountsRender() {
  if (!state.overlays) return;
  if (state.countsDirty && state.map.isSourceLoaded("reports")) {
    state.countsDirty = false;
    takeClusterCounts();
  } else if (countItems.length) {
    placeClusterCounts();
  }
}

// ------------------------------------------------------------- reports
/** @type {ReturnType<typeof setTimeout> | null} */
let flushTimer = null;
/** when the map last got the reports (ms) */
export let lastFlush = 0;

/** @param {number} [delay] ms; default: REPORT_FLUSH_MS (or the commit gap) after the last */
export function scheduleReports(delay) {
  if (flushTimer !== null) return;
  const every = Math.max(REPORT_FLUSH_MS, commitEvery);
  const wait = delay != null ? delay : Math.max(0, lastFlush + every - Date.now());
  flushTimer = setTimeout(flushReports, wait);
}

export function flushReports() {
  if (flushTimer !== null) clearTimeout(flushTimer);
  flushTimer = null;
  if (!state.overlays) return; // addOverlays flushes them
  state.reportsDirty = false;
  lastFlush = Date.now();
  /** @type {import("./state.js").ReportFeature[]} */
  const features = [];
  let nextExpiry = Infinity;
  reports.forEach(function (f) {
    const age = lastFlush - f.properties.arrived;
    f.properties.fresh = age < FRESH_MS;
    if (f.properties.fresh) nextExpiry = Math.min(nextExpiry, FRESH_MS - age);
    features.push(f);
  });
  /** @type {maplibregl.GeoJSONSource} */ (state.map.getSource("reports")).setData({ type: "FeatureCollection", features: features });
  rw.reportsOnMap = features.length;
  if (nextExpiry !== Infinity) scheduleReports(Math.max(REPORT_FLUSH_MS, commitEvery, nextExpiry + 20));
}
