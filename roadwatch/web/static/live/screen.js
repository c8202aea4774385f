// @ts-check
/* The big screen (/screen, ?screen=1): a card with the counters of the district shown,
 * and a rotation through the city and its districts, one every ROTATE_MS. */
import { ROTATE_MS, screenMode } from "./config.js";
import { districtName, t } from "./i18n.js";
import { state, rw, stats, totals } from "./state.js";
import { cityBounds, districtViews, mapPadding } from "./style.js";
import { $, numFmt } from "./util.js";

/** which of districtViews is shown; -1: the whole city */
export let rotation = -1;

export function renderDistrictCard() {
  const card = $("rw-district-card");
  if (!screenMode) {
    card.hidden = true;
    return;
  }
  const code = rotation >= 0 && districtViews[rotation] ? districtViews[rotation].code : null;
  /** @type {Partial<import("./config.js").DistrictRow>} */
  const row = code ? stats.districts[code] || {} : { reports_today: stats.reports_today, open: totals.open, overdue: totals.overdue };
  /** @param {string} name */
  const cell = (name) => /** @type {HTMLElement} */ (card.querySelector('[data-field="' + name + '"]'));
  cell("name").textContent = code ? districtName(code) : t("city");
  cell("reports").textContent = numFmt.format(row.reports_today || 0);
  cell("open").textContent = numFmt.format(row.open || 0);
  cell("overdue").textContent = numFmt.format(row.overdue || 0);
  card.hidden = false;
}

function rotate() {
  const map = state.map;
  if (!state.drawn || state.pinnedId != null || state.mode !== "live") return;
  const n = districtViews.length;
  if (n < 2) return; // a district user: their district only, nothing to rotate
  rotation = rotation + 1 >= n ? -1 : rotation + 1;
  const b = rotation >= 0 ? districtViews[rotation].bounds : cityBounds;
  if (state.overlays) map.setFilter("districts-focus", ["==", ["get", "code"], rotation >= 0 ? districtViews[rotation].code : ""]);
  if (b) map.fitBounds(b, { padding: mapPadding(), duration: 1500 });
  renderDistrictCard();
}

/** On the big screen, the rotation; rw.rotate for the tests. */
export function installScreen() {
  if (screenMode) setInterval(rotate, ROTATE_MS);
  rw.rotate = rotate;
}
