// @ts-check
/* The header: the day's counters, the top problems, the connection badge and the
 * "server down" banner, the clock, the language switch and the city's day roll-over. */
import { DOWN_AFTER_MS, config, screenMode } from "./config.js";
import { catName, lang, rememberLang, setLang, t } from "./i18n.js";
import { showSegment } from "./panel.js";
import { player } from "./replay.js";
import { renderDistrictCard } from "./screen.js";
import { rw, state, stats, totals } from "./state.js";
import { renderTicker } from "./ticker.js";
import { $, dayKey, el, fetchJSON, hhmm, numFmt } from "./util.js";

let headerQueued = false;
export function renderHeader() {
  if (headerQueued) return;
  headerQueued = true;
  requestAnimationFrame(function () {
    headerQueued = false;
    $("rw-count-segments").textContent = numFmt.format(rw.segmentCount);
    $("rw-count-reports").textContent = numFmt.format(stats.reports_today);
    $("rw-count-open").textContent = numFmt.format(totals.open);
    $("rw-count-overdue").textContent = numFmt.format(totals.overdue);
    $("rw-count-rectified").textContent = numFmt.format(stats.rectified_today);
    renderTop();
    renderDistrictCard();
  });
}

function renderTop() {
  const list = $("rw-top-list");
  const top = Object.keys(stats.categories)
    .map(function (k) { return /** @type {[string, number]} */ ([k, stats.categories[k]]); })
    .sort(function (a, b) { return b[1] - a[1] || (a[0] < b[0] ? -1 : 1); })
    .slice(0, 5);
  list.textContent = "";
  const max = top.length ? top[0][1] : 1;
  top.forEach(function (entry) {
    const li = el("li");
    li.appendChild(el("span", "rw-top-name", catName(entry[0])));
    const bar = el("span", "rw-top-bar");
    bar.style.width = Math.max(4, Math.round((100 * entry[1]) / max)) + "%";
    li.appendChild(bar);
    li.appendChild(el("span", "rw-top-count", numFmt.format(entry[1])));
    list.appendChild(li);
  });
  $("rw-top").hidden = top.length === 0 && !screenMode;
}

/** @typedef {"live" | "down" | "connecting" | "replay"} ConnState */

/** @type {ConnState} */
let connState = "connecting";
/** @type {number | null} since when the feed is down (ms), null: it is not */
export let downSince = null;

/** @param {ConnState} s */
export function setConn(s) {
  connState = s;
  const e = $("rw-conn");
  e.setAttribute("data-state", s);
  /** @type {HTMLElement} */ (e.querySelector(".rw-conn-text")).textContent =
    t({ live: "live", down: "down", connecting: "connecting", replay: "replay_state" }[s]);
  if (s === "down") {
    if (downSince === null) downSince = Date.now();
  } else {
    downSince = null;
    $("rw-down").hidden = true;
  }
}

export function applyLanguage() {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  document.querySelectorAll("[data-i18n]").forEach(function (n) {
    n.textContent = t(/** @type {string} */ (n.getAttribute("data-i18n")));
  });
  document.querySelectorAll("[data-i18n-placeholder]").forEach(function (n) {
    /** @type {HTMLInputElement} */ (n).placeholder = t(/** @type {string} */ (n.getAttribute("data-i18n-placeholder")));
  });
  document.title = t("title");
  $("rw-lang").textContent = lang === "en" ? "中文" : "EN";
  $("rw-replay-play").textContent = t(player.playing ? "pause" : "play");
  setConn(connState);
  renderHeader();
  renderTicker();
  if (state.shownId) showSegment(state.shownId);
}

/** A new day in the city: the day's counters start again (live only). */
export function rollDay() {
  const k = dayKey(new Date());
  if (k !== state.today && state.mode === "live") {
    state.today = k;
    stats.reports_today = 0;
    stats.rectified_today = 0;
    stats.categories = {};
    Object.keys(stats.districts).forEach(function (d) { stats.districts[d].reports_today = 0; });
    renderHeader();
  }
}

/** The clock, the "server down" banner, the language button, the day roll-over. */
export function installHeader() {
  // The "server down" state: after a short grace (a reconnect usually takes < 1 s).
  setInterval(function () {
    const now = new Date();
    $("rw-clock").textContent = dayKey(now) + " " + hhmm(now);
    if (downSince !== null && state.mode === "live" && Date.now() - downSince > DOWN_AFTER_MS) {
      $("rw-down").hidden = false;
      $("rw-down-since").textContent =
        t("since") + " " + Math.round((Date.now() - downSince) / 1000) + " s";
    }
  }, 500);
  $("rw-lang").addEventListener("click", function () {
    setLang(lang === "en" ? "zh" : "en");
    rememberLang();
    applyLanguage();
  });
  setInterval(rollDay, 60000);
  if (!screenMode && config.user) {
    refreshReviewCount();
    setInterval(refreshReviewCount, REVIEW_COUNT_MS);
  }
}

const REVIEW_COUNT_MS = 30000;

let reviewTimer = 0;

/** A report went into review or out of it (a live event): count again, once a second at most. */
export function reviewCountSoon() {
  if (reviewTimer || !config.user || screenMode) return;
  reviewTimer = window.setTimeout(function () {
    reviewTimer = 0;
    refreshReviewCount();
  }, 1000);
}

/** The review queue's pending count in the header (GET /api/review/count, the user's scope). */
export function refreshReviewCount() {
  return fetchJSON("/api/review/count").then(function (doc) {
    $("rw-count-review").textContent = numFmt.format(Number(doc.pending) || 0);
  }).catch(function (err) {
    console.warn("roadwatch: review count not loaded", err);
  });
}
