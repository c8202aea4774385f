// @ts-check
/* Replay: the event log of the last hour or 4 hours, today, or a day or week (GET
 * /api/events, paged; never past now) played at a chosen
 * speed from the state at its start (GET /api/replay/state); "back to live" reloads the
 * live state and resyncs. */
import { root } from "./config.js";
import { commitFrame } from "./commit.js";
import { handlers } from "./feed.js";
import { applyLanguage, setConn } from "./header.js";
import { t } from "./i18n.js";
import { reloadLive, resetSegments } from "./snapshot.js";
import { reports, rw, state, stats } from "./state.js";
import { clearTicker, renderTicker } from "./ticker.js";
import { $, dayKey, dayTime, fetchJSON, field, numFmt, zoneMidnight } from "./util.js";

/** @typedef {{at: number, kind: string, payload: import("./feed.js").LiveEvent}} LoggedEvent */

/**
 * @typedef {object} Player
 * @property {LoggedEvent[]} events
 * @property {number} start ms
 * @property {number} end ms
 * @property {number} t the replay's time (ms)
 * @property {number} next index of the next event to apply
 * @property {boolean} playing
 * @property {Record<string, import("./state.js").SegmentState>} baseState segment id -> state at the start
 * @property {number} last performance.now() of the last tick
 */

/** @type {Player} */
export const player = (rw._player = { events: [], start: 0, end: 0, t: 0, next: 0, playing: false, baseState: {}, last: 0 });

const HOUR_MS = 3600000;
const DAY_MS = 86400000;

/**
 * The period to replay: the last hour, the last 4 hours, today, or a chosen day or week
 * (from its midnight); never past the present (the replay stops at now).
 * @returns {[Date, Date]}
 */
function replayRange() {
  const now = Date.now();
  const span = field("rw-replay-span").value;
  if (span === "hour" || span === "hours4") {
    return [new Date(now - (span === "hour" ? 1 : 4) * HOUR_MS), new Date(now)];
  }
  const day = span === "today"
    ? dayKey(new Date(now))
    : field("rw-replay-day").value || dayKey(new Date(now - DAY_MS));
  const start = zoneMidnight(day);
  const days = span === "week" ? 7 : 1;
  return [start, new Date(Math.min(now, start.getTime() + days * DAY_MS))];
}

/** The chosen day only matters for a day or a week. */
function syncDayField() {
  const span = field("rw-replay-span").value;
  field("rw-replay-day").disabled = span !== "day" && span !== "week";
}

/**
 * @param {Date} since
 * @param {Date} until
 * @returns {Promise<LoggedEvent[]>}
 */
function fetchAllEvents(since, until) {
  /** @type {LoggedEvent[]} */
  const out = [];
  const url = "/api/events?limit=5000&since=" + encodeURIComponent(since.toISOString()) +
    "&until=" + encodeURIComponent(until.toISOString());
  /**
   * @param {string} path
   * @returns {Promise<LoggedEvent[]>}
   */
  const page = function (path) {
    return fetchJSON(path).then(function (doc) {
      (doc.items || []).forEach(function (/** @type {any} */ item) {
        out.push({ at: Date.parse(item.at), kind: item.kind, payload: item.payload });
      });
      $("rw-replay-count").textContent = numFmt.format(out.length) + " " + t("events");
      if (doc.next && out.length < 500000) {
        // `next` is absolute; keep it on this origin and root
        const u = new URL(doc.next, location.href);
        return page(u.pathname.slice(root.length) + u.search);
      }
      return out;
    });
  };
  return page(url);
}

function enterReplay() {
  if (state.mode !== "replay") {
    state.mode = "replay";
    rw.replay.active = true;
    /** @type {Element} */ ($("rw-count-reports").previousElementSibling).setAttribute("data-i18n", "reports_replay");
    applyLanguage();
    if (state.socket) state.socket.disconnect();
    setConn("replay");
    document.body.classList.add("rw-replaying");
  }
  $("rw-replay").hidden = false;
  if (!field("rw-replay-day").value) field("rw-replay-day").value = dayKey(new Date(Date.now() - DAY_MS));
  /** @type {HTMLInputElement} */ (field("rw-replay-day")).max = dayKey(new Date());
  syncDayField();
}

function loadReplay() {
  const range = replayRange();
  pause();
  $("rw-replay-count").textContent = t("loading");
  return Promise.all([
    fetchJSON("/api/replay/state?at=" + encodeURIComponent(range[0].toISOString())),
    fetchAllEvents(range[0], range[1]),
  ]).then(function (res) {
    /** @type {Record<string, any>} */
    const base = {};
    (res[0].states || []).forEach(function (/** @type {any} */ s) { base[String(s.segment_id)] = s; });
    player.baseState = base;
    player.events = res[1];
    player.start = range[0].getTime();
    player.end = range[1].getTime();
    rw.replay.loaded = player.events.length;
    seek(player.start);
    return player.events.length;
  });
}

/**
 * Back to the state at the start, then apply every event up to time `to`.
 * @param {number} to ms
 */
function seek(to) {
  if (to < player.t || player.next === 0 || to === player.start) {
    player.next = 0;
    rw.replay.applied = 0;
    rw.replay.reportOrder = [];
    reports.clear();
    state.reportsDirty = true; // off the map too
    clearTicker();
    stats.reports_today = 0;
    stats.rectified_today = 0;
    stats.categories = {};
    Object.keys(stats.districts).forEach(function (d) { stats.districts[d].reports_today = 0; });
    resetSegments(function (id) { return player.baseState[id]; });
  }
  player.t = to;
  advanceTo(to);
}

/** @param {number} to ms */
function advanceTo(to) {
  const ev = player.events;
  while (player.next < ev.length && ev[player.next].at <= to) {
    const e = ev[player.next++];
    const h = handlers[e.kind];
    if (h) h(e.payload, Date.now());
    if (e.kind === "report") rw.replay.reportOrder.push(String(e.payload.id));
    rw.replay.applied = player.next;
  }
  commitFrame();
  renderTicker();
  const frac = player.end > player.start ? (to - player.start) / (player.end - player.start) : 0;
  field("rw-replay-slider").value = String(Math.round(Math.min(1, Math.max(0, frac)) * 1000));
  $("rw-replay-time").textContent = dayTime(new Date(to));
}

/** @param {number} now */
function tick(now) {
  if (!player.playing) return;
  const dt = Math.min(250, now - player.last);
  player.last = now;
  const speed = Number(field("rw-replay-speed").value) || 900;
  const to = Math.min(player.end, player.t + dt * speed);
  player.t = to;
  advanceTo(to);
  if (to >= player.end) pause();
  else requestAnimationFrame(tick);
}

function play() {
  if (!player.events && !player.end) return;
  if (player.t >= player.end) seek(player.start);
  player.playing = true;
  player.last = performance.now();
  $("rw-replay-play").textContent = t("pause");
  requestAnimationFrame(tick);
}

function pause() {
  player.playing = false;
  $("rw-replay-play").textContent = t("play");
}

function backToLive() {
  pause();
  player.events = [];
  player.end = 0;
  rw.replay.active = false;
  /** @type {Element} */ ($("rw-count-reports").previousElementSibling).setAttribute("data-i18n", "reports_today");
  applyLanguage();
  $("rw-replay").hidden = true;
  document.body.classList.remove("rw-replaying");
  return reloadLive().then(function () {
    state.mode = "live";
    setConn("connecting");
    state.socket.connect(); // its connect handler resyncs from the snapshot's seq
  });
}

/** The replay bar's controls, and the test hooks replayDay, play, pause, backToLive. */
export function installReplay() {
  $("rw-replay-open").addEventListener("click", enterReplay);
  $("rw-replay-load").addEventListener("click", function () {
    loadReplay().then(play);
  });
  $("rw-replay-play").addEventListener("click", function () {
    if (player.playing) pause();
    else if (!player.end) loadReplay().then(play);
    else play();
  });
  field("rw-replay-slider").addEventListener("input", function (e) {
    if (!player.end) return;
    const frac = Number(/** @type {HTMLInputElement} */ (e.target).value) / 1000;
    seek(player.start + frac * (player.end - player.start));
  });
  $("rw-replay-live").addEventListener("click", backToLive);
  field("rw-replay-span").addEventListener("change", syncDayField);
  rw.replayDay = function (day, span, speed) {
    enterReplay();
    field("rw-replay-day").value = day;
    field("rw-replay-span").value = span || "day";
    syncDayField();
    if (speed) field("rw-replay-speed").value = String(speed);
    return loadReplay();
  };
  rw.play = play;
  rw.pause = pause;
  rw.backToLive = backToLive;
}
