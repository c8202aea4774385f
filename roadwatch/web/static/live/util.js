// @ts-check
/* Small helpers: DOM, dates in the configured time zone, JSON requests. */
import { root, timezone } from "./config.js";

/**
 * An element of the page (index.html has them all).
 * @param {string} id
 * @returns {HTMLElement}
 */
export function $(id) {
  return /** @type {HTMLElement} */ (document.getElementById(id));
}

/**
 * A form field of the page.
 * @param {string} id
 * @returns {HTMLInputElement | HTMLSelectElement}
 */
export function field(id) {
  return /** @type {HTMLInputElement | HTMLSelectElement} */ (document.getElementById(id));
}

export const numFmt = new Intl.NumberFormat("zh-CN");
/** @type {Intl.DateTimeFormat | null} */
let dayFmt = null;
/** @type {Intl.DateTimeFormat | null} */
let timeFmt = null;
/** @type {Intl.DateTimeFormat | null} */
let dateTimeFmt = null;

/**
 * "YYYY-MM-DD" of a date in the configured time zone.
 * @param {Date} date
 */
export function dayKey(date) {
  try {
    dayFmt = dayFmt || new Intl.DateTimeFormat("en-CA", { timeZone: timezone });
    return dayFmt.format(date);
  } catch (e) {
    return date.toISOString().slice(0, 10);
  }
}

/** @param {Date} date */
export function hhmm(date) {
  timeFmt = timeFmt || new Intl.DateTimeFormat("zh-CN", {
    timeZone: timezone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  return timeFmt.format(date);
}

/** @param {Date} date */
export function dayTime(date) {
  dateTimeFmt = dateTimeFmt || new Intl.DateTimeFormat("zh-CN", {
    timeZone: timezone, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    hour12: false,
  });
  return dateTimeFmt.format(date);
}

/**
 * Midnight of a "YYYY-MM-DD" day in the configured zone, as a Date.
 * @param {string} day
 */
export function zoneMidnight(day) {
  const guess = new Date(day + "T00:00:00Z");
  // The zone's offset at that moment (Asia/Shanghai has no DST; this works for any zone).
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: timezone, hour12: false, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(guess);
  /** @type {Record<string, string>} */
  const v = {};
  parts.forEach(function (p) { v[p.type] = p.value; });
  const asUtc = Date.UTC(+v.year, +v.month - 1, +v.day, +v.hour % 24, +v.minute, +v.second);
  return new Date(guess.getTime() - (asUtc - guess.getTime()));
}

/**
 * A CSS custom property of the page (live.css), or the fallback.
 * @param {string} name
 * @param {string} fallback
 */
export function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

export function toLogin() {
  location.href = root + "/login?next=" + encodeURIComponent(location.pathname + location.search);
}

/**
 * GET JSON. path: under the app's root ("/api/…"), or a URL as the config gives it
 * (url = true). A 401 goes to the login page.
 * @param {string} path
 * @param {boolean} [url]
 * @returns {Promise<any>}
 */
export function fetchJSON(path, url) {
  return fetch(url ? path : root + path, { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .then(function (r) {
      if (r.status === 401) {
        toLogin();
        throw new Error("login required");
      }
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return r.json();
    });
}

/**
 * @param {string} tag
 * @param {string | null} [cls]
 * @param {string | null} [text]
 * @returns {HTMLElement}
 */
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

/** The open case statuses, as the case list's `status` filter spells them. */
export const OPEN_STATUSES = "new,dispatched,reopened,rectified";

/**
 * The case page of a report (built by the case list's module, /cases/<id>).
 * @param {string} id
 */
export function caseUrl(id) {
  return root + "/cases/" + encodeURIComponent(id);
}

/**
 * The case list with these filters (the names of its API: district, status, segment, since…).
 * @param {Record<string, string>} filters
 */
export function caseListUrl(filters) {
  return root + "/cases?" + new URLSearchParams(filters).toString();
}
