// @ts-check
/* The map's style: colours (from live.css), the segments', reports' and districts'
 * layers, the first view and its padding. The whole style goes to the map at once: one
 * style load, no source or layer added before the first full render. */
import { ROUND_FROM_ZOOM, SEGMENT_LAYER, attribution, mapCfg, screenMode, screenScale } from "./config.js";
import { state } from "./state.js";
import { $, cssVar } from "./util.js";

export const palette = {
  districtFill: cssVar("--district-fill", "#3a6ea5"),
  districtLine: cssVar("--district-line", "#4b6a8f"),
  mapBg: cssVar("--map-bg", "#0d1624"),
  segCalm: cssVar("--seg-calm", "#4f6f93"),
  segOne: cssVar("--seg-one", "#ffb020"),
  segTwo: cssVar("--seg-two", "#ff7a1a"),
  segMany: cssVar("--seg-many", "#ff3b30"),
  segOverdue: cssVar("--seg-overdue", "#ff2bd6"),
  segHover: cssVar("--seg-hover", "#ffffff"),
  sev1: cssVar("--sev-1", "#ffd84d"),
  sev2: cssVar("--sev-2", "#ff8c1a"),
  sev3: cssVar("--sev-3", "#ff2d2d"),
  fresh: cssVar("--fresh", "#ffffff"),
  cluster: cssVar("--cluster", "#ff8c1a"),
  label: cssVar("--road-label", "#b9c9db"),
};

/** @returns {maplibregl.LayerSpecification[]} */
function segmentLayers() {
  /** @type {any} */
  const open = ["coalesce", ["feature-state", "open"], ["get", "open"], 0];
  /** @type {any} */
  const overdue = ["coalesce", ["feature-state", "overdue"], ["get", "overdue"], 0];
  /** @type {any} */
  const score = ["coalesce", ["feature-state", "score"], ["get", "score"], 100];
  /** @type {any} */
  const hover = ["boolean", ["feature-state", "hover"], false];
  /** @type {any} */
  const weight = ["case", hover, 2.6, [">", overdue, 0], 2.4, [">", open, 0], 1.9, 1];
  return [
    {
      id: "segments",
      type: "line",
      source: "segments",
      "source-layer": SEGMENT_LAYER,
      // Round ends and joins only where a line is wide enough to show them: at the
      // city's zoom (1-2 px lines) they would cost a third of every frame for nothing.
      layout: {
        "line-cap": ["step", ["zoom"], "butt", ROUND_FROM_ZOOM, "round"],
        "line-join": ["step", ["zoom"], "miter", ROUND_FROM_ZOOM, "round"],
      },
      paint: {
        // Colour by the live score (deductions of the open cases), overdue on top.
        "line-color": [
          "case",
          hover, palette.segHover,
          [">", overdue, 0], palette.segOverdue,
          ["<=", open, 0], palette.segCalm,
          [">=", score, 90], palette.segOne,
          [">=", score, 75], palette.segTwo,
          palette.segMany,
        ],
        "line-opacity": ["case", ["any", hover, [">", open, 0], [">", overdue, 0]], 1, 0.7],
        "line-width": ["interpolate", ["exponential", 1.5], ["zoom"],
          10, ["*", weight, screenMode ? 1.6 * screenScale : 1.2],
          13, ["*", weight, 2.4],
          17, ["*", weight, 8]],
      },
    },
    {
      // Road names along the lines. No glyph server: MapLibre draws the
      // glyphs locally with the system's CJK font (localIdeographFontFamily).
      id: "road-labels",
      type: "symbol",
      source: "segments",
      "source-layer": SEGMENT_LAYER,
      minzoom: 12,
      layout: {
        "symbol-placement": "line",
        "text-field": ["get", "road"],
        "text-size": ["interpolate", ["linear"], ["zoom"], 12, 11 * screenScale, 16, 15 * screenScale],
        "symbol-spacing": 400,
        "text-max-angle": 30,
        "text-padding": 4,
      },
      paint: {
        "text-color": palette.label,
        "text-halo-color": palette.mapBg,
        "text-halo-width": 1.6,
      },
    },
  ];
}

/** @returns {maplibregl.LayerSpecification[]} */
export function reportLayers() {
  /** @type {any} */
  const sev = ["to-number", ["get", "severity"], 1];
  /** @type {any} */
  const color = ["match", sev, 3, palette.sev3, 2, palette.sev2, palette.sev1];
  /** @type {any} */
  const single = ["!", ["has", "point_count"]];
  return [
    {
      id: "report-clusters",
      type: "circle",
      source: "reports",
      filter: ["has", "point_count"],
      paint: {
        "circle-color": palette.cluster,
        "circle-opacity": 0.78,
        "circle-radius": ["step", ["get", "point_count"], 10, 10, 14, 50, 19, 200, 25],
        "circle-stroke-color": "#ffe1bd",
        "circle-stroke-width": 1.2,
      },
    },
    {
      id: "reports-fresh",
      type: "circle",
      source: "reports",
      filter: ["all", single, ["==", ["get", "fresh"], true]],
      paint: {
        "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, 9, 16, 18],
        "circle-color": color,
        "circle-opacity": 0.25,
        "circle-stroke-color": palette.fresh,
        "circle-stroke-width": 1.5,
      },
    },
    {
      id: "reports",
      type: "circle",
      source: "reports",
      filter: single,
      paint: {
        "circle-radius": ["interpolate", ["linear"], ["zoom"],
          10, ["+", 2.5, sev],
          16, ["+", 5, ["*", 2, sev]]],
        "circle-color": color,
        "circle-opacity": 0.92,
        "circle-stroke-color": ["case", ["==", ["get", "status"], "needs_review"], "#ffffff", palette.mapBg],
        "circle-stroke-width": ["case", ["==", ["get", "status"], "needs_review"], 1.5, 0.5],
      },
    },
  ];
}

/** @returns {maplibregl.LayerSpecification[]} */
export function districtLayers() {
  return [
    {
      id: "districts-fill",
      type: "fill",
      source: "districts",
      paint: { "fill-color": palette.districtFill, "fill-opacity": 0.06 },
    },
    {
      id: "districts-line",
      type: "line",
      source: "districts",
      paint: { "line-color": palette.districtLine, "line-width": screenMode ? 1.8 : 1.2, "line-dasharray": [3, 2] },
    },
    {
      // The district the big screen is showing, outlined brightly.
      id: "districts-focus",
      type: "line",
      source: "districts",
      filter: ["==", ["get", "code"], ""],
      paint: { "line-color": cssVar("--accent", "#4cc3ff"), "line-width": 3, "line-opacity": 0.9 },
    },
  ];
}

/**
 * Area centroid of the outer ring of the largest polygon: good enough to place a
 * district name.
 * @param {{type: string, coordinates: any}} geometry
 * @returns {[number, number] | null}
 */
export function labelPoint(geometry) {
  /** @type {number[][][][]} */
  const polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
  /** @type {{area: number, point: [number, number]} | null} */
  let best = null;
  polys.forEach(function (poly) {
    const ring = poly[0];
    let a = 0, cx = 0, cy = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
      a += f;
      cx += (ring[j][0] + ring[i][0]) * f;
      cy += (ring[j][1] + ring[i][1]) * f;
    }
    if (a !== 0 && (!best || Math.abs(a) > best.area)) {
      best = { area: Math.abs(a), point: [cx / (3 * a), cy / (3 * a)] };
    }
  });
  return best && /** @type {{area: number, point: [number, number]}} */ (best).point;
}

/**
 * @param {number[] | undefined | null} b [west, south, east, north]
 * @returns {[[number, number], [number, number]] | null}
 */
function toLngLatBounds(b) {
  return b && b.length === 4 ? [[b[0], b[1]], [b[2], b[3]]] : null;
}
/** [{code, bounds}] for the big screen's rotation: the server's, from the segments. */
export const districtViews = (mapCfg.district_views || []).map(function (v) {
  return { code: v.code, bounds: toLngLatBounds(v.bounds) };
});
export const cityBounds = toLngLatBounds(mapCfg.bounds);

/** @returns {maplibregl.PaddingOptions} */
export function mapPadding() {
  const c = state.map ? state.map.getContainer() : $("rw-map");
  const side = Math.min(screenMode ? 420 * screenScale : 340, c.clientWidth * 0.3);
  return { top: 40, bottom: screenMode ? 40 : 30, left: 40, right: side };
}

/**
 * A URL for the map's worker (which has no base URL of its own); "{z}" stays as is.
 * @param {string} path
 */
function absoluteURL(path) {
  return /^[a-z]+:/i.test(path) ? path : location.origin + (path.charAt(0) === "/" ? "" : "/") + path;
}

/**
 * The whole style at once: one style load, no source or layer added later.
 * @returns {maplibregl.StyleSpecification}
 */
export function mapStyle() {
  /** @type {maplibregl.LayerSpecification[]} */
  let layers = [{ id: "background", type: "background", paint: { "background-color": palette.mapBg } }];
  /** @type {Record<string, any>} */
  const sources = {
    segments: {
      type: "vector",
      tiles: [absoluteURL(mapCfg.tiles)],
      minzoom: 0,
      maxzoom: mapCfg.maxzoom || 14,
      bounds: mapCfg.bounds || undefined,
      promoteId: "id",
      attribution: attribution,
    },
  };
  // The city's own offline basemap (ROADWATCH_BASEMAP, served by this server), under
  // everything else; none by default.
  const basemap = mapCfg.basemap;
  if (basemap) {
    sources.basemap = Object.assign({}, basemap.source, {
      tiles: basemap.source.tiles.map(absoluteURL),
    });
    layers = layers.concat(basemap.layers);
  }
  return {
    version: 8,
    // No paint transitions: with the default (300 ms) the map redraws continuously for
    // 300 ms after the style and after every layer that is added, a full frame each time.
    transition: { duration: 0, delay: 0 },
    sources: sources,
    layers: layers.concat(segmentLayers()),
  };
}
