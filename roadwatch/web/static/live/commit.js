// @ts-check
/* Map commits. The page's books take events once per animation frame (feed.js); the
 * map gets them in commits, every MAP_COMMIT_MS to MAP_COMMIT_MAX_MS: one setFeatureState
 * per changed segment and one reports setData, however many events came, so that both
 * share one redraw. drawnSeq is the last seq on screen. */
import {
  BUSY_WINDOW_MS, MAP_COMMIT_MAX_MS, MAP_COMMIT_MS, PENDING_STATES_MS, REPORT_FLUSH_MS, segmentKey,
} from "./config.js";
import { renderHeader } from "./header.js";
import { flushReports, lastFlush, scheduleReports } from "./overlays.js";
import { showSegment } from "./panel.js";
import { player } from "./replay.js";
import { rw, state } from "./state.js";

/** @typedef {import("./state.js").SegmentState} SegmentState */

/** @type {Map<string, SegmentState>} id -> state to set in the next commit */
export let dirtySegments = new Map();

/** @type {ReturnType<typeof setTimeout> | null} */
let commitTimer = null;
let lastCommit = 0;
// The gap between map commits adapts to what drawing costs here, so that the page
// spends at most about half its time drawing and always has time to take in events:
// every commit is several full frames (the feature states one, the reports' setData
// three or four: the source's data, then its tiles in batches), and a frame takes
// 70-250 ms in software WebGL (a wall PC without a GPU), more on a busy machine.
export let commitEvery = MAP_COMMIT_MS;
rw.commitEvery = commitEvery;
let busyMs = 0; // main-thread long tasks (the frames, mostly) since busySince
let busySince = performance.now();
try {
  new PerformanceObserver(function (list) {
    list.getEntries().forEach(function (e) {
      busyMs += e.duration;
    });
  }).observe({ type: "longtask" });
} catch (e) {
  busyMs = -1; // no long-task timing here: stay at MAP_COMMIT_MS
}

function adaptCommits() {
  const now = performance.now(), span = now - busySince;
  if (busyMs < 0 || span < BUSY_WINDOW_MS) return;
  const share = busyMs / span;
  if (share > 0.5) commitEvery = Math.min(MAP_COMMIT_MAX_MS, commitEvery * 1.3);
  else if (share < 0.3) commitEvery = Math.max(MAP_COMMIT_MS, commitEvery * 0.85);
  rw.commitEvery = Math.round(commitEvery);
  rw.busyShare = Math.round(share * 100) / 100;
  busyMs = 0;
  busySince = now;
}

export function scheduleCommit() {
  if (commitTimer !== null) return;
  const wait = Math.max(0, lastCommit + commitEvery - Date.now());
  if (wait === 0) {
    commitFrame();
    return;
  }
  commitTimer = setTimeout(function () {
    commitTimer = null;
    commitFrame();
  }, wait);
}

/**
 * One commit hands everything since the last one to the map: the segments' feature
 * states and (one setData) the reports, so that they share one redraw.
 * The reports' setData goes first: the map redraws once when the worker has taken the
 * data (before the source's tiles are redone), and the feature states go into that
 * frame instead of one of their own (see onReportsData).
 */
export function commitFrame() {
  lastCommit = Date.now();
  committedSeq = rw.lastSeq;
  let changed = dirtySegments.size > 0;
  const states = dirtySegments;
  dirtySegments = new Map();
  if (state.shownId != null && states.has(state.shownId)) showSegment(state.shownId);
  // (a replay that plays commits every animation frame: its reports go at most every
  // REPORT_FLUSH_MS; a seek while paused shows them at once)
  const flushNow = state.reportsDirty && state.overlays &&
    (state.mode === "live" || !player.playing || Date.now() - lastFlush >= REPORT_FLUSH_MS);
  if (flushNow) {
    flushReports();
    changed = true;
    pendingStates.push(states);
    if (pendingTimer === null) pendingTimer = setTimeout(setPendingStates, PENDING_STATES_MS);
  } else {
    if (state.reportsDirty && state.overlays) scheduleReports();
    setStates(states);
  }
  if (changed) state.awaitingDraw = true;
  else if (!state.awaitingDraw) rw.drawnSeq = committedSeq; // nothing to draw
  renderHeader();
  adaptCommits();
}

/** @param {Map<string, SegmentState>} states */
function setStates(states) {
  states.forEach(function (s, id) {
    state.map.setFeatureState(segmentKey(id), s);
  });
}
/** @type {Map<string, SegmentState>[]} feature states waiting for the reports' data to be taken */
let pendingStates = [];
/** @type {ReturnType<typeof setTimeout> | null} */
let pendingTimer = null;
function setPendingStates() {
  clearTimeout(/** @type {any} */ (pendingTimer));
  pendingTimer = null;
  const batches = pendingStates;
  pendingStates = [];
  batches.forEach(setStates);
}

/** @param {maplibregl.MapSourceDataEvent} e */
export function onReportsData(e) {
  if (e.sourceId !== "reports") return;
  state.countsDirty = true;
  if (e.sourceDataType === "content" && pendingStates.length) setPendingStates();
}

// drawnSeq: the last seq whose changes are on screen: a frame drawn after the commit,
// with the reports' data through the map's worker.
let committedSeq = 0;
export function onMapRender() {
  rw.framesDrawn += 1;
  if (!state.awaitingDraw || pendingStates.length) return;
  if (state.overlays && !state.map.isSourceLoaded("reports")) return;
  state.awaitingDraw = false;
  rw.drawnSeq = committedSeq;
}
