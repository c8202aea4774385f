// @ts-check
/* Asking the chief on the spot (issue 21): before a report goes out without a pick, the
 * platform is asked whether it is certain of the segment here (GET /m/api/segments/near
 * with the fix's accuracy, the heading when known, the category, and the direction the
 * camera of the report's first photo faced when its EXIF says: exif.js). Certain: the report goes
 * at once, no extra tap. Not certain: its two or three candidates are drawn on a small map
 * with their names and distances, and the chief's tap goes with the report as
 * segment_hint (trusted by the platform within 150 m of the fix, docs/protocol.md).
 */
import { api } from "./session.js";
import { $, el } from "./util.js";
import { project, svgEl } from "./work.js";

const ASK_TIMEOUT_MS = 2500; // a slow answer must not hold the report: sent without asking
const SPOT_ZOOM = 18; // world pixels of the sketch (only ratios matter)

/**
 * @typedef {object} Candidate
 * @property {string} id
 * @property {string | null} name
 * @property {string | null} district
 * @property {number} distance_m
 * @property {number} share
 * @property {number[][][]} lines [lon, lat] lines
 */
/** @typedef {{certain: boolean | null, candidates: Candidate[]}} Offer */

/**
 * The direction of travel as the platform is told it, both when asked here and in the
 * report itself (heading_deg): the same value, or the report is placed by other bars than
 * the answer that spared the chief the question.
 * @param {import("./state.js").Fix} f
 * @returns {number | null}
 */
export function headingOf(f) {
  return f.heading !== null && f.heading !== undefined ? Math.round(f.heading) % 360 : null;
}

/**
 * The platform's answer for a report about to be sent here, or null (offline, slow, error).
 * @param {import("./state.js").Fix} f
 * @param {string} category
 * @param {import("./state.js").Look | null} [look] the camera direction of the report's photo
 * @returns {Promise<Offer | null>}
 */
export async function askSpot(f, category, look = null) {
  const q = new URLSearchParams({ lat: String(f.lat), lon: String(f.lon), radius: "150",
    accuracy: String(Math.min(10000, Math.round(f.accuracy * 10) / 10)), category });
  const heading = headingOf(f);
  if (heading !== null) q.set("heading", String(heading));
  if (look) {
    q.set("look", String(Math.round(look.deg * 10) / 10 % 360));
    if (look.ref) q.set("look_ref", look.ref);
  }
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), ASK_TIMEOUT_MS);
  try {
    const { res, body } = await api(`/m/api/segments/near?${q}`, { signal: stop.signal });
    return res.ok && body ? body : null;
  } catch (_) {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The candidates on a small map and as big buttons; resolves with the tapped segment's id,
 * or null when the chief does not know (the report then goes without a pick).
 * @param {Offer} offer
 * @param {import("./state.js").Fix} f
 * @returns {Promise<string | null>}
 */
export function chooseSpot(offer, f) {
  drawSpot(offer.candidates, f);
  const box = $("#spot");
  box.hidden = false;
  box.scrollIntoView({ block: "center" });
  return new Promise((resolve) => {
    /** @param {string | null} id */
    const done = (id) => { box.hidden = true; resolve(id); };
    $("#spot-list").replaceChildren(...offer.candidates.map((c, i) => el("button", {
      type: "button", class: `spot-pick c${i}`, "data-segment": c.id,
      onclick: () => done(c.id),
    }, el("b", { text: `${"ABC"[i]}` }), ` ${c.name || c.id}（约 ${Math.round(c.distance_m)} 米）`)));
    /** @type {HTMLElement} */ ($("#spot-skip")).onclick = () => done(null);
    // the question takes the focus (a keyboard or a screen reader is where it is asked)
    /** @type {HTMLElement | null} */ (box.querySelector("#spot-list button"))?.focus();
  });
}

/**
 * The sketch: each candidate in its colour and letter, "you are here" in the middle.
 * @param {Candidate[]} cands
 * @param {import("./state.js").Fix} f
 */
function drawSpot(cands, f) {
  // Relative to the chief (SVG numbers are single precision: world pixels at this zoom
  // are ~5e7, too large to draw a few metres apart).
  const [ox, oy] = project(f.lon, f.lat, SPOT_ZOOM);
  const [mx, my] = [0, 0];
  const lines = cands.map((c) => c.lines.map((l) => l.map((p) => {
    const [x, y] = project(p[0], p[1], SPOT_ZOOM);
    return [x - ox, y - oy];
  })));
  // Centred on the fix, wide enough for the nearest part of every candidate.
  const far = Math.max(40, ...cands.map((c) => c.distance_m * 2.2)); // metres
  const mPerPx = (156543.03 * Math.cos((f.lat * Math.PI) / 180)) / 2 ** SPOT_ZOOM;
  const half = far / mPerPx;
  const box = [mx - half, my - half * 0.6, 2 * half, 1.2 * half];
  const svg = $("#spot-map");
  svg.setAttribute("viewBox", box.map((v) => v.toFixed(1)).join(" "));
  const stroke = (half / 18).toFixed(2);
  const kids = [];
  lines.forEach((ls, i) => {
    for (const l of ls) {
      kids.push(svgEl("polyline", { class: `c${i}`, "stroke-width": stroke,
        points: l.map((p) => p.map((v) => v.toFixed(1)).join(",")).join(" ") }));
    }
    const at = nearestOn(ls, mx, my); // the letter where the line passes closest to the chief
    const size = half / 6; // letters beside the line, apart where lines meet
    const t = svgEl("text", { x: (at[0] + size * 0.4).toFixed(1), y: (at[1] + size * (i - 0.6)).toFixed(1),
      "font-size": size.toFixed(1), class: `c${i}` });
    t.textContent = "ABC"[i];
    kids.push(t);
  });
  kids.push(svgEl("circle", { class: "me", cx: mx.toFixed(1), cy: my.toFixed(1), r: (Number(stroke) * 1.4).toFixed(2) }));
  svg.replaceChildren(...kids);
}

/**
 * The point of the lines nearest to (x, y).
 * @param {number[][][]} lines
 * @param {number} x
 * @param {number} y
 */
function nearestOn(lines, x, y) {
  let best = lines[0][0];
  let bestD = Infinity;
  for (const l of lines) {
    for (let k = 0; k + 1 < l.length; k++) {
      const [ax, ay] = l[k];
      const [dx, dy] = [l[k + 1][0] - ax, l[k + 1][1] - ay];
      const len = dx * dx + dy * dy;
      const u = len ? Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / len)) : 0;
      const p = [ax + u * dx, ay + u * dy];
      const d = (p[0] - x) ** 2 + (p[1] - y) ** 2;
      if (d < bestD) { bestD = d; best = p; }
    }
  }
  return best;
}
