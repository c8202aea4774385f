// @ts-check
/* The page's starting point and the way back to it: the live state (segments with
 * something open, the seq it is exact at, today's counters), every segment's attributes
 * (config.map.table), the road chiefs and the category names. */
import { RETRY_MS, mapCfg, segmentKey } from "./config.js";
import { commitFrame, dirtySegments } from "./commit.js";
import { districtRow, startFrom } from "./feed.js";
import { downSince, renderHeader, setConn } from "./header.js";
import { setCategoryNames } from "./i18n.js";
import { scheduleReports } from "./overlays.js";
import { showSegment } from "./panel.js";
import { reports, rw, segments, state, stats, totals } from "./state.js";
import { clearTicker, renderTicker } from "./ticker.js";
import { dayKey, fetchJSON, toLogin } from "./util.js";

/** @typedef {import("./config.js").StateDoc} StateDoc */
/** @typedef {import("./config.js").DayStats} DayStats */
/** @typedef {{open?: number, overdue?: number, score?: number | null}} StateLike */
/** @typedef {(id: string) => StateLike | undefined} StateOf */

/**
 * GET until it answers (a server restarting, a network hiccup); path as fetchJSON's.
 * @param {string} path
 * @param {boolean} [url]
 * @returns {Promise<any>}
 */
export function fetchRetrying(path, url) {
  return fetchJSON(path, url).catch(function (err) {
    console.warn("roadwatch: " + path + " failed, retrying", err);
    if (downSince === null) setConn("down");
    return new Promise(function (resolve) {
      setTimeout(resolve, RETRY_MS);
    }).then(function () {
      return fetchRetrying(path, url);
    });
  });
}

/**
 * The answer to a request the page made before this script loaded (window.roadwatchEarly,
 * set by the page's head), or a new request if that one failed.
 * @param {"table" | "districts"} name
 * @param {string} path
 * @param {boolean} [url]
 * @returns {Promise<any>}
 */
export function early(name, path, url) {
  const req = window.roadwatchEarly && window.roadwatchEarly[name];
  if (!req) return fetchRetrying(path, url);
  return req.then(function (res) {
    if (res.ok) return res.body;
    if (res.status === 401) toLogin();
    throw new Error(path + ": HTTP " + res.status);
  }).catch(function () {
    return fetchRetrying(path, url);
  });
}

/**
 * config.map.state's answer as get(id) -> {open, overdue, score}, undefined = calm.
 * @param {StateDoc} doc
 * @returns {StateOf}
 */
function stateOf(doc) {
  const st = (doc && doc.states) || {};
  return function (id) {
    const v = st[id];
    return v ? { open: v[0], overdue: v[1], score: v[2] } : undefined;
  };
}

/**
 * The first live state into feature state: only the segments with something open
 * (the others are calm, as the style draws a segment without state).
 * @param {StateDoc} doc
 */
export function takeFeatureStates(doc) {
  const st = doc.states || {};
  Object.keys(st).forEach(function (id) {
    const v = st[id];
    state.map.setFeatureState(segmentKey(id), { open: v[0] | 0, overdue: v[1] | 0, score: v[2] != null ? Number(v[2]) : 100 });
  });
}

/**
 * ... and into the page's own books (every segment starts calm): counters, panel.
 * @param {StateDoc} doc
 */
export function takeState(doc) {
  startFrom(Number(doc.seq) || 0);
  // Start the counters from the server's for the city's day, not from zero.
  takeStats(doc.stats);
  const get = stateOf(doc);
  totals.open = 0;
  totals.overdue = 0;
  Object.keys(doc.states || {}).forEach(function (id) {
    const s = segments.get(id), st = /** @type {StateLike} */ (get(id));
    if (!s) return; // not a segment this page has
    s.open = /** @type {number} */ (st.open) | 0;
    s.overdue = /** @type {number} */ (st.overdue) | 0;
    s.score = st.score != null ? Number(st.score) : 100;
    totals.open += s.open;
    totals.overdue += s.overdue;
  });
  renderHeader();
}

export function loadCategories() {
  return fetchJSON("/api/categories").then(function (names) {
    setCategoryNames(names || {});
    renderHeader();
    renderTicker();
  }).catch(function (err) {
    console.warn("roadwatch: category names not loaded", err);
  });
}

/**
 * The snapshot's counters of the city's day (same transaction as its seq, so the events
 * after that seq count on top without counting anything twice).
 * @param {DayStats | null | undefined} st
 */
function takeStats(st) {
  stats.reports_today = 0;
  stats.rectified_today = 0;
  stats.categories = {};
  stats.districts = {};
  if (!st || st.day !== dayKey(new Date())) return;
  stats.reports_today = Number(st.reports_today) || 0;
  stats.rectified_today = Number(st.rectified_today) || 0;
  stats.categories = st.categories || {};
  stats.districts = st.districts || {};
}

/** Back to live after a replay: every segment to its live state, then resync. */
export function reloadLive() {
  return fetchJSON(mapCfg.state, true).then(function (/** @type {StateDoc} */ doc) {
    startFrom(Number(doc.seq) || 0);
    takeStats(doc.stats);
    resetSegments(stateOf(doc));
    reports.clear();
    clearTicker();
    renderTicker();
    scheduleReports(0);
  });
}

/**
 * Set every segment's state (get(id) -> {open, overdue, score} or undefined = calm).
 * @param {StateOf} get
 */
export function resetSegments(get) {
  totals.open = 0;
  totals.overdue = 0;
  Object.keys(stats.districts).forEach(function (d) {
    stats.districts[d].open = 0;
    stats.districts[d].overdue = 0;
  });
  segments.forEach(function (s, id) {
    const st = get(id) || {};
    const open = /** @type {number} */ (st.open) | 0, overdue = /** @type {number} */ (st.overdue) | 0;
    const score = st.score != null ? Number(st.score) : 100;
    if (s.open !== open || s.overdue !== overdue || s.score !== score) {
      dirtySegments.set(id, { open: open, overdue: overdue, score: score });
    }
    s.open = open;
    s.overdue = overdue;
    s.score = score;
    totals.open += open;
    totals.overdue += overdue;
    if (s.props.district) {
      const row = districtRow(s.props.district);
      row.open += open;
      row.overdue += overdue;
    }
  });
  commitFrame();
}

/**
 * Every segment's attributes, from the server's columns (mapdata.py).
 * @param {any} doc {id: [], name: [], length_m: [], road/from/to/district/subdistrict: [index into strings]}
 */
export function takeTable(doc) {
  /** @type {string[]} */
  const words = doc.strings || [];
  /**
   * @param {number[] | undefined} col
   * @param {number} i
   */
  const word = function (col, i) {
    const k = col ? col[i] : null;
    return k != null ? words[k] : "";
  };
  segments.clear();
  for (let i = 0; i < doc.id.length; i++) {
    segments.set(String(doc.id[i]), {
      props: {
        id: doc.id[i],
        name: doc.name[i],
        road: word(doc.road, i),
        from: word(doc.from, i),
        to: word(doc.to, i),
        district: word(doc.district, i),
        subdistrict: word(doc.subdistrict, i),
        length_m: doc.length_m[i],
        chief: null,
      },
      open: 0,
      overdue: 0,
      score: 100,
    });
  }
  rw.segmentCount = segments.size;
  renderHeader();
}

/** The road chiefs, after the first full render: only the panel shows them. */
export function loadChiefs() {
  if (!mapCfg.chiefs) return;
  fetchJSON(mapCfg.chiefs, true).then(function (/** @type {Record<string, [string, string]>} */ chiefs) {
    Object.keys(chiefs || {}).forEach(function (id) {
      const s = segments.get(id);
      if (s) s.props.chief = { id: chiefs[id][0], name: chiefs[id][1] };
    });
    if (state.shownId) showSegment(state.shownId);
  }).catch(function (err) {
    console.warn("roadwatch: road chiefs not loaded", err);
  });
}
