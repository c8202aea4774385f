// @ts-check
/* roadwatch command centre: live map, big-screen mode and replay (路长制 指挥中心).
 * The entry module: wires the others together and starts the page.
 *
 * Data flow
 *   1. The map is created with its whole style at once (style.js), fitted to the
 *      network's bounds (config.map.bounds: the first frame is the final view): the
 *      segments come as vector tiles built by the server (config.map.tiles; the worker
 *      only decodes them), the district outlines as GeoJSON, reports as an (empty)
 *      clustered GeoJSON source (overlays.js).
 *   2. At the same time: the live state of the segments with something open, the "seq"
 *      it is exact at, today's counters (config.state, in the page; else GET
 *      config.map.state) and config.map.table (every segment's attributes as columns),
 *      see snapshot.js. The states go into feature state before the first full frame is
 *      counted: "drawn" is the first idle map (every tile of the view loaded and drawn)
 *      after that.
 *   3. Connect Socket.IO and resync on every connect (feed.js).
 *   4. Events are queued and applied once per animation frame, exactly once each; the
 *      map gets them in commits (commit.js). After the first full render: district
 *      names, the road chiefs (config.map.chiefs) and category names.
 *   5. Replay (replay.js); the big screen's rotation (screen.js); the segment panel
 *      (panel.js); the header and ticker (header.js, ticker.js).
 */
import { config, mapCfg, screenMode } from "./config.js";
import { onMapRender, onReportsData } from "./commit.js";
import { startAlerts } from "./alerts.js";
import { checkReady, connect, resync, scheduleFrame, startFrom } from "./feed.js";
import { installExport } from "./exportdialog.js";
import { applyLanguage, installHeader } from "./header.js";
import { addDistrictNames, addOverlays, onCountsRender } from "./overlays.js";
import { installNavigation, loadOpenCases } from "./navigate.js";
import { installPanel, segmentPointer } from "./panel.js";
import { installRecurrence } from "./recurrence.js";
import { installReplay } from "./replay.js";
import { installScreen } from "./screen.js";
import {
  early, fetchRetrying, loadCategories, loadChiefs, takeFeatureStates, takeState, takeTable,
} from "./snapshot.js";
import { mark, rw, state } from "./state.js";
import { cityBounds, mapPadding, mapStyle } from "./style.js";

installHeader();
installPanel();
installReplay();
installScreen();
installExport();
installRecurrence(); // issue 22: the hot-spot layer, on request

// The first live state is in the page itself (config.state; asked for if not); the
// segments' attributes and the district outlines were asked for by the page's head
// before this script loaded; the map's worker fetches the tiles itself.
/** @type {Promise<import("./config.js").StateDoc>} */
const stateReq = config.state ? Promise.resolve(config.state) : fetchRetrying(mapCfg.state, true);
const tableReq = early("table", mapCfg.table, true);
const districtsReq = early("districts", "/api/districts");
maplibregl.prewarm(); // the map's worker boots while the map sets up
// The live feed's handshake too (its first resync waits for the state's seq).
connect();
startAlerts(rw._socket); // overdue, escalated, failed verification: an alert (alerts.js)

const map = (state.map = rw._map = new maplibregl.Map({
  container: "rw-map",
  style: mapStyle(),
  // No glyphs URL (no font server): text is drawn with local fonts.
  validateStyle: false,
  fadeDuration: 0, // no symbol fade-in: every fade is several more full redraws
  localIdeographFontFamily: "'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', sans-serif",
  // The network's own extent: the first frame is already the final view.
  bounds: cityBounds || undefined,
  fitBoundsOptions: { padding: mapPadding() },
  center: cityBounds ? undefined : [113.66, 34.76],
  zoom: cityBounds ? undefined : 10.5,
  attributionControl: false,
  dragRotate: false,
  pitchWithRotate: false,
  touchPitch: false,
  renderWorldCopies: false,
}));
map.touchZoomRotate.disableRotation();
if (!screenMode) map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
map.addControl(new maplibregl.AttributionControl({ compact: false }), "bottom-right");
segmentPointer();
installNavigation();
map.on("render", onMapRender);
map.on("render", onCountsRender);
map.on("data", onReportsData);
map.on("moveend", function () {
  state.countsDirty = true; // the clusters of another zoom
});

applyLanguage();

const styleLoaded = new Promise(function (resolve) {
  map.once("style.load", resolve);
});
districtsReq.then(addDistrictNames);

// The live state goes into feature state as soon as the style can take it (the map
// needs no more than the segment ids for that); "drawn" is the first idle map (every
// tile of the view loaded and drawn) after that.
Promise.all([stateReq, styleLoaded]).then(function (res) {
  takeFeatureStates(res[0]);
  mark("states");
  map.once("idle", function () {
    state.drawn = true;
    mark("drawn");
    checkReady();
    districtsReq.then(addOverlays);
    loadChiefs();
  });
  map.triggerRepaint(); // an idle comes even if nothing changed
});
// The live feed resyncs from the state's seq; what it replays waits (in seq order) for
// the segments' attributes, as do the counters and the panel.
stateReq.then(function (doc) {
  startFrom(Number(doc.seq) || 0);
  state.snapshotIn = true;
  if (state.socket.connected) resync();
});
Promise.all([stateReq, tableReq]).then(function (res) {
  mark("table");
  takeTable(res[1]);
  takeState(res[0]);
  state.tableIn = true;
  scheduleFrame();
  checkReady();
  loadCategories();
  loadOpenCases();
});
