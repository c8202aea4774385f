// @ts-check
/* What the page knows: the segments and their live state, the reports on the map, the
 * day's counters, the map and the feed, and the test hooks on window.roadwatch.
 *
 * Test hooks on window.roadwatch: ready, segmentCount, lastSeq, reportsSeen, connected,
 * queueResyncs,
 * drawnSeq (the last seq drawn on the map), featureState(segmentId), hasReport(id),
 * reportsOnMap, timings, lastAppliedAt, lagOf(reportId), replay {active, loaded,
 * applied, reportOrder}; _map is the maplibregl.Map (internal, for tests and the
 * console).
 */
import { segmentKey } from "./config.js";
import { dayKey } from "./util.js";

/**
 * @typedef {object} SegmentProps
 * @property {string | number} id
 * @property {string} name
 * @property {string} road
 * @property {string} from
 * @property {string} to
 * @property {string} district
 * @property {string} subdistrict
 * @property {number | null} length_m
 * @property {{id: string, name: string} | null} chief
 */

/**
 * @typedef {object} Segment
 * @property {SegmentProps} props
 * @property {number} open
 * @property {number} overdue
 * @property {number} score
 * @property {number} [seq] the seq of the live event its state is from
 */

/** @typedef {{open: number, overdue: number, score: number}} SegmentState */

/**
 * @typedef {object} ReportProps
 * @property {string} id
 * @property {string | number | undefined} segment_id
 * @property {string | undefined} category
 * @property {number | undefined} severity
 * @property {string | undefined} status
 * @property {number} arrived ms (Date.now()) when it came
 * @property {boolean} fresh
 */

/** @typedef {{type: "Feature", geometry: {type: "Point", coordinates: number[]}, properties: ReportProps}} ReportFeature */

/**
 * @typedef {object} Roadwatch
 * @property {boolean} ready
 * @property {number} segmentCount
 * @property {number} lastSeq
 * @property {number} reportsSeen
 * @property {number} [openCasesLoaded] open cases put on the map at load (navigate.js)
 * @property {boolean} connected
 * @property {number} reportsOnMap
 * @property {number} drawnSeq the last seq whose changes have been handed to the map
 * @property {number} received live events received (applied or not)
 * @property {number} queueResyncs resyncs asked by the server (its Redis queue came back)
 * @property {number} framesDrawn map frames rendered
 * @property {number} lastAppliedAt
 * @property {Record<string, number>} timings ms since navigation start: states (in the map), table, drawn, resynced, ready
 * @property {{active: boolean, loaded: number, applied: number, reportOrder: string[]}} replay
 * @property {(segmentId: string | number) => Record<string, any> | null} featureState
 * @property {(id: string | number) => boolean} hasReport
 * @property {number} [commitEvery]
 * @property {number} [busyShare]
 * @property {(id: string | number) => number | null} [lagOf]
 * @property {maplibregl.Map} [_map]
 * @property {LiveSocket} [_socket]
 * @property {object} [_player]
 * @property {(day: string, span?: string, speed?: number) => Promise<number>} [replayDay]
 * @property {() => void} [play]
 * @property {() => void} [pause]
 * @property {() => Promise<void>} [backToLive]
 * @property {() => void} [rotate]
 */

/** @type {Map<string, Segment>} id -> attributes and live state */
export const segments = new Map();
export const totals = { open: 0, overdue: 0 };
/** @type {Map<string, ReportFeature>} report id -> GeoJSON feature, insertion order = age */
export const reports = new Map();
/** @type {{reports_today: number, rectified_today: number, categories: Record<string, number>, districts: Record<string, import("./config.js").DistrictRow>}} */
export const stats = { reports_today: 0, rectified_today: 0, categories: {}, districts: {} };

/**
 * The page's moving parts, shared by the modules.
 * @typedef {object} PageState
 * @property {string} today the city's day ("YYYY-MM-DD") the counters are of
 * @property {maplibregl.Map} map set by main.js before anything uses it
 * @property {LiveSocket} socket set by feed.connect
 * @property {boolean} drawn the first full render is done
 * @property {boolean} overlays the district outlines and the reports' layers are on the map
 * @property {boolean} resynced the first resync is answered
 * @property {boolean} snapshotIn the live state's seq is known: resyncs may go
 * @property {boolean} tableIn the segments' attributes are in: events may be applied
 * @property {string | null} hoveredId
 * @property {string | null} pinnedId
 * @property {string | null} shownId the segment in the panel
 * @property {"live" | "replay"} mode
 * @property {boolean} reportsDirty the reports changed since the map last got them
 * @property {boolean} awaitingDraw a commit waits for a frame to be drawn
 * @property {boolean} countsDirty the cluster counts are to be taken again
 */

/** @type {PageState} */
export const state = {
  today: dayKey(new Date()),
  map: /** @type {any} */ (null),
  socket: /** @type {any} */ (null),
  drawn: false,
  overlays: false,
  resynced: false,
  snapshotIn: false,
  tableIn: false,
  hoveredId: null,
  pinnedId: null,
  shownId: null,
  mode: "live",
  reportsDirty: false,
  awaitingDraw: false,
  countsDirty: false,
};

/** @type {Roadwatch} */
export const rw = (window.roadwatch = {
  ready: false,
  segmentCount: 0,
  lastSeq: 0,
  reportsSeen: 0,
  connected: false,
  reportsOnMap: 0,
  drawnSeq: 0,
  received: 0,
  queueResyncs: 0,
  framesDrawn: 0,
  lastAppliedAt: 0,
  timings: {},
  replay: { active: false, loaded: 0, applied: 0, reportOrder: [] },
  featureState: function (segmentId) {
    const map = state.map;
    if (!map || !map.getSource("segments")) return null;
    return map.getFeatureState(segmentKey(String(segmentId)));
  },
  hasReport: function (id) {
    return reports.has(String(id));
  },
});

/**
 * A moment of the page's start, in rw.timings and as a performance mark (for traces).
 * @param {string} name
 */
export function mark(name) {
  rw.timings[name] = Math.round(performance.now());
  if (performance.mark) performance.mark("roadwatch:" + name);
}
