// @ts-check
/* The page's configuration (JSON in #rw-config, written by roadwatch/web/pages.py) and
 * the command centre's tunables.
 *
 * Config: socketio_path, namespace, map {tiles, table, state, chiefs, maxzoom, bounds,
 * district_views, segments, basemap}; optional timezone (default Asia/Shanghai), screen
 * (big-screen mode), user, district_names, attribution, socketio_auth, state (the first
 * live state, in the page itself).
 */

export const REPORT_CAP = 2000; // most recent reports kept on the map
export const REPORT_FLUSH_MS = 500; // a report's "fresh" ring is taken off at most this often
// At least this long between two batches of map changes (feature states, reports). A
// map change costs re-renders, which in software WebGL (a wall PC without a GPU) take
// long: measured, every-frame commits at 1,000 events/s kept the page seconds behind.
export const MAP_COMMIT_MS = 400;
export const MAP_COMMIT_MAX_MS = 1500;
export const BUSY_WINDOW_MS = 2000; // the commit gap is adapted over this long
export const PENDING_STATES_MS = 300; // feature states wait this long at most for the reports' data
export const FRAME_FALLBACK_MS = 250; // apply events even if no animation frame comes (hidden tab)
export const FRESH_MS = 6000; // a new report is highlighted this long
export const RESYNC_ACK_TIMEOUT_MS = 15000;
export const RETRY_MS = 3000; // snapshot fetch retry
export const DOWN_AFTER_MS = 2500; // disconnected this long: show the "server down" state
export const ROTATE_MS = 20000; // big screen: time per district view
export const TICKER_MAX = 30;
export const HIT_PX = 6; // a segment within this many pixels of the pointer is "under" it
export const COUNT_CAP = 300; // cluster counts drawn at most (HTML over the map)
export const ROUND_FROM_ZOOM = 13; // segments get round ends and joins from this zoom on

/**
 * The live state of the segments with something open, exact as of `seq`
 * (config.map.state's answer, or config.state).
 * @typedef {object} StateDoc
 * @property {number} seq
 * @property {Record<string, [number, number, number | null]>} [states] id -> [open, overdue, score]
 * @property {DayStats | null} [stats]
 */

/**
 * The counters of the city's day in a live state.
 * @typedef {object} DayStats
 * @property {string} day "YYYY-MM-DD"
 * @property {number} reports_today
 * @property {number} rectified_today
 * @property {Record<string, number>} categories
 * @property {Record<string, DistrictRow>} districts
 */

/**
 * @typedef {object} DistrictRow
 * @property {number} reports_today
 * @property {number} open
 * @property {number} overdue
 */

/**
 * @typedef {object} MapConfig
 * @property {string} tiles vector tiles URL template ("{z}/{x}/{y}")
 * @property {string} table every segment's attributes as columns
 * @property {string} state the live state (StateDoc)
 * @property {string} [chiefs] {segment id: [person id, name]}
 * @property {number} [maxzoom]
 * @property {number[]} [bounds] [west, south, east, north]
 * @property {{code: string, bounds: number[]}[]} [district_views]
 * @property {number} [segments]
 * @property {{source: {tiles: string[]}, layers: maplibregl.LayerSpecification[]} | null} [basemap]
 */

/**
 * @typedef {object} PageConfig
 * @property {string} [socketio_path]
 * @property {string} [namespace]
 * @property {MapConfig} [map]
 * @property {string} [timezone]
 * @property {boolean} [screen]
 * @property {{name: string, role: string, district: string | null} | null} [user]
 * @property {Record<string, string>} [district_names]
 * @property {string} [attribution]
 * @property {Record<string, unknown>} [socketio_auth]
 * @property {StateDoc} [state]
 */

/** @type {PageConfig} */
export const config = JSON.parse(
  /** @type {HTMLElement} */ (document.getElementById("rw-config")).textContent || "{}",
);
export const root = document.body.getAttribute("data-root") || "";
export const timezone = config.timezone || "Asia/Shanghai";
export const attribution = config.attribution || "roadwatch 示例路网 (generated)";
export const screenMode = !!config.screen;
/** How much larger the big screen draws the map's labels and lines than at 1920 px wide
 * (as live.css scales its type). */
export const screenScale = screenMode ? Math.min(2.5, Math.max(1, window.innerWidth / 1920)) : 1;
/** district code -> name (completed by the district outlines' names) */
export const districtNames = config.district_names || {};
export const mapCfg = config.map || /** @type {MapConfig} */ ({});

export const SEGMENT_LAYER = "segments"; // the layer inside the vector tiles (roadwatch/maps/mvt.py)
/** @param {string} id */
export function segmentKey(id) {
  return { source: "segments", sourceLayer: SEGMENT_LAYER, id: id };
}
