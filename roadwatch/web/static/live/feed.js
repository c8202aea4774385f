// @ts-check
/* The live feed: Socket.IO (namespace config.namespace, path config.socketio_path; the
 * session cookie is the login). On EVERY connect the page emits `resync {since}` (the last
 * seq seen, or just below a recent gap in what it saw);
 * the server replays what was missed (same event names, seq order) and then acks.
 * Events are queued and applied once per animation frame, exactly once each: an event
 * whose seq was seen, or is in the snapshot the page started from, is ignored. The map gets them in commits (commit.js). */
import {
  FRAME_FALLBACK_MS, REPORT_CAP, RESYNC_ACK_TIMEOUT_MS, RETRY_MS, config, root,
} from "./config.js";
import { dirtySegments, scheduleCommit } from "./commit.js";
import { renderHeader, reviewCountSoon, rollDay, setConn } from "./header.js";
import { mark, reports, rw, segments, state, stats, totals } from "./state.js";
import { addTicker } from "./ticker.js";
import { $, dayKey, fetchJSON } from "./util.js";

/**
 * A live event's payload (report, segment, case or ranking); every one has its seq.
 * @typedef {object} LiveEvent
 * @property {number | string} seq
 * @property {string | number} [id]
 * @property {string | number} [segment_id]
 * @property {number | string} [lat]
 * @property {number | string} [lon]
 * @property {string} [category]
 * @property {number} [severity]
 * @property {string} [status]
 * @property {string} [district]
 * @property {string} [observed_at]
 * @property {string} [received_at]
 * @property {number} [open]
 * @property {number} [overdue]
 * @property {number | null} [score]
 */

/** @typedef {(ev: LiveEvent, arrived?: number) => void} Handler */

/**
 * Returns true if the event is new (and advances lastSeq), false if it is a replay of
 * something already applied.
 * @param {string} name
 * @param {LiveEvent} payload
 */
function accept(name, payload) {
  const seq = payload ? Number(payload.seq) : NaN;
  if (!Number.isFinite(seq)) {
    console.warn("roadwatch: " + name + " event without seq ignored", payload);
    return false;
  }
  if (seq <= baseSeq || seen.has(seq)) return false;
  seen.add(seq);
  gaps.delete(seq);
  if (seq > rw.lastSeq) {
    // Seqs skipped here may still come, emitted by another process a moment later.
    for (let q = Math.max(rw.lastSeq + 1, seq - SEEN_WINDOW); q < seq; q++) gaps.add(q);
    rw.lastSeq = seq;
    if (gaps.size > 2 * SEEN_WINDOW) resyncCursor(); // drops those out of the window
  }
  if (seen.size > 2 * SEEN_WINDOW) {
    const floor = rw.lastSeq - SEEN_WINDOW;
    seen.forEach(function (q) { if (q <= floor) seen.delete(q); });
    baseSeq = Math.max(baseSeq, floor);
  }
  return true;
}

// Several processes append to the event log and emit after their own commits (ingest
// workers, the case service, the web role through the Redis queue), so an event may
// arrive after one with a higher seq. It is applied unless its seq was seen already (the
// replay of a resync overlaps the live stream): `seen` holds the last SEEN_WINDOW seqs;
// anything at or below `baseSeq` is in the state the page started from (the snapshot).
const SEEN_WINDOW = 5000;
/** @type {Set<number>} */
const seen = new Set();
let baseSeq = 0;
// Seqs above the snapshot not seen yet although a higher one was. A resync starts below the
// lowest: the event it stands for may be committed by one process but not yet emitted when
// the connection drops or Redis restarts, and a resync from the highest seq seen would skip
// it for ever. Seqs never used (a rolled-back transaction) and events of other districts
// (a district user's page gets only its own) leave gaps that never close; they are
// forgotten once SEEN_WINDOW seqs behind, so a resync re-reads at most that window, and
// what it replays that the page has is ignored.
/** @type {Set<number>} */
const gaps = new Set();

/** Where a resync starts: after everything seen, except gaps within the window. */
function resyncCursor() {
  const floor = Math.max(baseSeq, rw.lastSeq - SEEN_WINDOW);
  let cursor = rw.lastSeq;
  gaps.forEach(function (q) {
    if (q <= floor) gaps.delete(q);
    else if (q - 1 < cursor) cursor = q - 1;
  });
  return cursor;
}

/**
 * The page's state is exact as of event `seq` (a snapshot): live events from there on.
 * @param {number} seq
 */
export function startFrom(seq) {
  rw.lastSeq = seq;
  baseSeq = seq;
  seen.clear();
  gaps.clear();
}

/** @type {Map<string, number>} report id -> ms from the platform's receipt to this page applying it */
const lags = new Map();
rw.lagOf = function (id) {
  return lags.has(String(id)) ? /** @type {number} */ (lags.get(String(id))) : null;
};

/** @param {string} code */
export function districtRow(code) {
  return (stats.districts[code] = stats.districts[code] || { reports_today: 0, open: 0, overdue: 0 });
}

/** @type {Handler} */
function applySegment(ev) {
  const id = String(ev.segment_id);
  const s = segments.get(id);
  const open = /** @type {number} */ (ev.open) | 0, overdue = /** @type {number} */ (ev.overdue) | 0;
  const score = ev.score != null ? Number(ev.score) : 100;
  if (!s) return; // not a segment this user sees
  // Live: a segment's state from an older event that arrived late (another process) is
  // stale. (A replay applies the log in order, older than any live event.)
  if (state.mode === "live") {
    const seq = Number(ev.seq);
    if (s.seq !== undefined && seq < s.seq) return;
    s.seq = seq;
  }
  totals.open += open - s.open;
  totals.overdue += overdue - s.overdue;
  if (s.props.district) {
    const row = districtRow(s.props.district);
    row.open += open - s.open;
    row.overdue += overdue - s.overdue;
  }
  s.open = open;
  s.overdue = overdue;
  s.score = score;
  dirtySegments.set(id, { open: open, overdue: overdue, score: score });
}

/** @type {Handler} */
function applyReport(ev, arrived) {
  rw.reportsSeen += 1;
  if (ev.status === "needs_review" && state.mode === "live") reviewCountSoon();
  if (state.mode === "live") rollDay();
  const received = ev.received_at ? new Date(ev.received_at) : new Date();
  const day = dayKey(isNaN(/** @type {any} */ (received)) ? new Date() : received);
  if (state.mode === "replay" || day === state.today) {
    stats.reports_today += 1;
    if (ev.category) stats.categories[ev.category] = (stats.categories[ev.category] || 0) + 1;
    if (ev.district) districtRow(ev.district).reports_today += 1;
  }
  addTicker(ev);
  if (state.mode === "live" && !isNaN(/** @type {any} */ (received))) {
    // received_at is when the platform took the message in: this is its age on screen
    // (the map draws it in this same frame).
    lags.set(String(ev.id), Date.now() - received.getTime());
    if (lags.size > 200) lags.delete(/** @type {string} */ (lags.keys().next().value));
  }

  const lat = Number(ev.lat), lon = Number(ev.lon);
  if (!Number.isFinite(lat) || !Number.isFinite(lon)) return;
  const key = String(ev.id);
  reports.delete(key); // a re-sent report moves to the front
  reports.set(key, {
    type: "Feature",
    geometry: { type: "Point", coordinates: [lon, lat] },
    properties: {
      id: key,
      segment_id: ev.segment_id,
      category: ev.category,
      severity: ev.severity,
      status: ev.status,
      arrived: arrived || Date.now(),
      fresh: true,
    },
  });
  if (reports.size > REPORT_CAP) {
    const drop = reports.size - REPORT_CAP;
    const it = reports.keys();
    for (let i = 0; i < drop; i++) reports.delete(/** @type {string} */ (it.next().value));
  }
  state.reportsDirty = true;
}

/** @type {Handler} */
function applyCase(ev) {
  if (ev.status === "rectified") stats.rectified_today += 1;
  if ((ev.status === "accepted" || ev.status === "invalid") && state.mode === "live") reviewCountSoon();
}

function noop() {}

/** @type {Record<string, Handler>} */
export const handlers = { report: applyReport, segment: applySegment, case: applyCase, ranking: noop };

// ----------------------------------------------- coalescing per frame
// Events are queued as they arrive and applied together once per animation frame (the
// page's books and the header); the map gets them in commits (see commit.js).
/** @typedef {[string, LiveEvent]} Queued */
/** @type {Queued[]} */
let queue = [];
let frameQueued = false;

export function scheduleFrame() {
  if (frameQueued) return;
  frameQueued = true;
  let done = false;
  const run = function () {
    if (done) return;
    done = true;
    frameQueued = false;
    applyQueued();
  };
  requestAnimationFrame(run);
  setTimeout(run, FRAME_FALLBACK_MS); // background tabs get no frames
}

function applyQueued() {
  if (!state.tableIn) return; // kept in order until the segments' attributes are in
  const batch = queue;
  queue = [];
  for (let i = 0; i < batch.length; i++) {
    const name = batch[i][0], payload = batch[i][1];
    if (accept(name, payload)) handlers[name](payload);
  }
  if (batch.length) rw.lastAppliedAt = Date.now();
  renderHeader(); // the counters are cheap DOM: at once, not with the map
  scheduleCommit();
}

/**
 * The server may answer a resync with {ok: false, seq} when this page is too far
 * behind to replay: start again from a fresh snapshot (at most once a minute).
 * @param {{ok?: boolean, seq?: number} | undefined} answer
 */
function onResyncAnswer(answer) {
  if (!answer || answer.ok !== false) return;
  console.warn("roadwatch: resync refused", answer);
  const last = Number(sessionStorage.getItem("roadwatch.reloadAt")) || 0;
  if (Number(answer.seq) > rw.lastSeq && Date.now() - last > 60000) {
    sessionStorage.setItem("roadwatch.reloadAt", String(Date.now()));
    location.reload();
  }
}

/** "socket.io" (relative, as Flask-SocketIO spells it) or "/socket.io" */
function socketPath() {
  const p = config.socketio_path || "socket.io";
  return p.charAt(0) === "/" ? p : root + "/" + p;
}

// Until the current connection's resync is answered, events are held back:
// live events may overtake the replay of older ones, and applying a newer seq
// first would make the replayed ones look old. The held events are applied
// in seq order once the answer arrives (replay and live events alike).
let syncing = true;
/** @type {Queued[]} */
let held = [];
let connGen = 0; // which connection a resync answer belongs to

/**
 * @param {string} name
 * @param {LiveEvent} payload
 */
function onEvent(name, payload) {
  rw.received += 1;
  if (state.mode !== "live") return; // replay: the live stream is paused (resynced on return)
  if (!payload || typeof payload !== "object") return;
  if (syncing) {
    held.push([name, payload]);
  } else {
    queue.push([name, payload]);
    scheduleFrame();
  }
}

function releaseHeld() {
  syncing = false;
  const batch = held;
  held = [];
  batch.sort(function (a, b) {
    return (Number(a[1].seq) || 0) - (Number(b[1].seq) || 0);
  });
  for (let i = 0; i < batch.length; i++) queue.push(batch[i]);
  scheduleFrame();
}

export function resync() {
  const gen = connGen;
  state.socket.timeout(RESYNC_ACK_TIMEOUT_MS).emit("resync", { since: resyncCursor() }, function (/** @type {Error | null} */ err, /** @type {any} */ answer) {
    if (gen !== connGen) return; // that connection is gone; the next one resyncs
    if (err) console.warn("roadwatch: resync not acknowledged", err);
    else onResyncAnswer(answer);
    releaseHeld();
    if (!state.resynced) {
      state.resynced = true;
      mark("resynced");
      checkReady();
    }
  });
}

/**
 * Connect at once (the handshake overlaps the snapshot download); the first resync
 * waits for the snapshot, whose seq it starts from.
 */
export function connect() {
  // WebSocket first (fewer round trips than starting with long-polling), long-polling
  // if a proxy on the way refuses WebSockets.
  /** @type {Parameters<typeof io>[1]} */
  const opts = { path: socketPath(), transports: ["websocket", "polling"], tryAllTransports: true };
  if (config.socketio_auth) opts.auth = config.socketio_auth;
  const socket = (state.socket = rw._socket = io(config.namespace || "/live", opts));

  Object.keys(handlers).forEach(function (name) {
    socket.on(name, function (/** @type {LiveEvent} */ payload) {
      onEvent(name, payload);
    });
  });

  socket.on("connect", function () {
    connGen += 1;
    syncing = true;
    rw.connected = true;
    setConn("live");
    $("rw-conn").title = "";
    if (state.snapshotIn) resync();
  });
  // The server's Redis queue came back after an outage: what other processes emitted
  // meanwhile never reached us. Resync on this connection, as after a reconnect (live
  // events held back until the replay is in). A resync already under way covers it.
  socket.on("resync_needed", function () {
    if (state.mode !== "live" || syncing || !state.snapshotIn) return;
    rw.queueResyncs += 1;
    syncing = true;
    resync();
  });
  socket.on("disconnect", function (reason) {
    connGen += 1;
    syncing = true;
    held = [];
    rw.connected = false;
    if (state.mode === "live") setConn("down");
    if (reason === "io server disconnect" && state.mode === "live") socket.connect(); // kicked: try again
  });
  socket.on("connect_error", function (err) {
    rw.connected = false;
    const msg = String((err && err.message) || err);
    if (state.mode === "live") setConn("down");
    $("rw-conn").title = msg;
    // Refused by the server: our login has ended (expired, logged out elsewhere).
    if (msg === "login required") {
      fetchJSON("/api/me").catch(function () { /* fetchJSON sends us to the login */ });
    }
    if (!socket.active && state.mode === "live") setTimeout(function () { socket.connect(); }, RETRY_MS);
  });
}

/** Ready: drawn, resynced and the segments' attributes in. */
export function checkReady() {
  if (!rw.ready && state.drawn && state.resynced && state.tableIn) {
    rw.ready = true;
    mark("ready");
  }
}
