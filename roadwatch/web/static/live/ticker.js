// @ts-check
/* The ticker at the foot of the page: the newest reports, newest first, each a link to
 * its case. */
import { root, TICKER_MAX } from "./config.js";
import { catName, districtName } from "./i18n.js";
import { segments } from "./state.js";
import { $, el, hhmm } from "./util.js";

/** @typedef {{id: string, time: Date, district: string | undefined, road: string, category: string | undefined, sev: number}} TickerItem */

/** @type {TickerItem[]} newest first */
let ticker = [];
let tickerQueued = false;

/** @param {import("./feed.js").LiveEvent} ev a report */
export function addTicker(ev) {
  const when = ev.observed_at ? new Date(ev.observed_at) : new Date();
  const seg = segments.get(String(ev.segment_id));
  ticker.unshift({
    id: String(ev.id),
    time: isNaN(/** @type {any} */ (when)) ? new Date() : when,
    district: ev.district,
    road: seg ? seg.props.name || seg.props.road : "",
    category: ev.category,
    sev: /** @type {number} */ (ev.severity) | 0,
  });
  if (ticker.length > TICKER_MAX) ticker.length = TICKER_MAX;
  if (!tickerQueued) {
    tickerQueued = true;
    setTimeout(function () { tickerQueued = false; renderTicker(); }, 500);
  }
}

export function clearTicker() {
  ticker = [];
}

export function renderTicker() {
  const track = $("rw-ticker-track");
  track.textContent = "";
  ticker.forEach(function (item) {
    const span = /** @type {HTMLAnchorElement} */ (el("a", "rw-tick rw-tick-sev" + item.sev));
    span.href = root + "/cases/" + encodeURIComponent(item.id); // the case page
    span.appendChild(el("b", null, hhmm(item.time).slice(0, 5)));
    span.appendChild(document.createTextNode(
      " " + [districtName(item.district), item.road, catName(item.category)].filter(Boolean).join(" · "),
    ));
    track.appendChild(span);
  });
}
