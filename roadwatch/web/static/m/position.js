// @ts-check
/* The phone's position: watched while the report form is open (and during a patrol), its
 * quality judged (none, outside the city, stale, poor, good), and with a poor or stale
 * fix, the segments nearby offered as a pick-list.
 */
import { api } from "./session.js";
import { app } from "./state.js";
import { $, el } from "./util.js";
import { renderMap } from "./work.js";

let mapDrawnAt = 0; // "you are here" is redrawn at most every MAP_EVERY_MS
const MAP_EVERY_MS = 3000;

const POOR_ACCURACY_M = 50;
const STALE_FIX_MS = 60 * 1000;
const FAR_OUTSIDE_DEG = 0.5; // ~50 km beyond the city's box

/** Start watching the position (once). */
export function watchPosition() {
  if (app.watch !== undefined || !navigator.geolocation) return;
  app.watch = navigator.geolocation.watchPosition(
    (pos) => {
      app.fix = { lat: pos.coords.latitude, lon: pos.coords.longitude,
        accuracy: pos.coords.accuracy, at: pos.timestamp || Date.now(),
        // the direction of travel, when the phone knows it (moving): sharpens the platform's choice
        heading: Number.isFinite(pos.coords.heading) && (pos.coords.speed || 0) > 0.5 ? pos.coords.heading : null };
      renderFix();
      if (Date.now() - mapDrawnAt > MAP_EVERY_MS) { mapDrawnAt = Date.now(); renderMap(); }
    },
    (err) => {
      $("#gps").textContent = err.code === 1 ? "未允许定位：请在设置中允许本应用使用位置" : "暂时无法定位，请到开阔处";
      $("#gps").dataset.quality = "none";
    },
    { enableHighAccuracy: true, maximumAge: 10000, timeout: 20000 },
  );
  app.fixTimer = setInterval(renderFix, 5000); // the fix ages even when none arrives
}

/**
 * @param {number} lat
 * @param {number} lon
 */
function outsideCity(lat, lon) {
  const b = app.auth && app.auth.config.city_bounds;
  if (!b) return false;
  const [w, s, e, n] = b;
  const m = FAR_OUTSIDE_DEG;
  return lon < w - m || lon > e + m || lat < s - m || lat > n + m;
}

/** @returns {"none" | "outside" | "stale" | "poor" | "good"} */
export function fixQuality() {
  const f = app.fix;
  if (!f) return "none";
  if (outsideCity(f.lat, f.lon)) return "outside";
  if (Date.now() - f.at > STALE_FIX_MS) return "stale";
  if (f.accuracy > POOR_ACCURACY_M) return "poor";
  return "good";
}

function renderFix() {
  const f = app.fix;
  const box = $("#gps");
  const q = fixQuality();
  box.dataset.quality = q;
  if (!f || q === "none") return;
  const age = Math.round((Date.now() - f.at) / 1000);
  const base = `精度 ±${Math.round(f.accuracy)} 米 · ${age < 5 ? "刚刚" : `${age} 秒前`}`;
  box.textContent = {
    good: `已定位：${base}`,
    poor: `定位较差（${base}）：请在下面选择路段`,
    stale: `定位已过时（${base}）：请在下面选择路段`,
    outside: `位置远在城区之外（${f.lat.toFixed(4)}, ${f.lon.toFixed(4)}），请检查定位`,
  }[q];
  if ((q === "poor" || q === "stale") && navigator.onLine) loadNear(f);
  else if (q === "good") { $("#near").hidden = true; }
}

/**
 * The segments near a poor fix, as radio buttons (segment_hint).
 * @param {import("./state.js").Fix} f
 */
async function loadNear(f) {
  const key = `${f.lat.toFixed(4)},${f.lon.toFixed(4)}`;
  if (app.nearKey === key) return;
  app.nearKey = key;
  const radius = Math.min(1000, Math.max(150, f.accuracy * 1.5));
  try {
    const { res, body } = await api(`/m/api/segments/near?lat=${f.lat}&lon=${f.lon}&radius=${radius}`);
    if (!res.ok) return;
    /** @type {{id: string, name: string, distance_m: number}[]} */
    const items = body.items;
    const list = $("#near-list");
    list.replaceChildren(...items.map((s) => el("label", {},
      el("input", { type: "radio", name: "segment_hint", value: s.id }),
      el("span", { text: `${s.name}（约 ${Math.round(s.distance_m)} 米）` }))));
    $("#near").hidden = items.length === 0;
  } catch (_) { app.nearKey = null; }
}
