// @ts-check
/* Small helpers: DOM, ids, dates, the toast and the platform's error texts. */
import { uiLang } from "./lang.js";

/**
 * An element of the page (index.html has them all).
 * @param {string} sel
 * @returns {HTMLElement}
 */
export function $(sel) {
  return /** @type {HTMLElement} */ (document.querySelector(sel));
}

/**
 * A text field of the page.
 * @param {string} sel
 * @returns {HTMLInputElement | HTMLTextAreaElement}
 */
export function field(sel) {
  return /** @type {HTMLInputElement | HTMLTextAreaElement} */ (document.querySelector(sel));
}

/** @typedef {Node | string | null | undefined | false} Kid */

/**
 * A new element: attributes ("text" sets its text, "on…" adds a listener), then children.
 * @param {string} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...Kid} kids
 * @returns {HTMLElement}
 */
export function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) if (kid) e.append(kid);
  return e;
}

/** A random UUID (version 4), also where crypto.randomUUID is missing (plain HTTP). */
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export const fmt = new Intl.DateTimeFormat(uiLang() === "en" ? "en-GB" : "zh-CN", {
  timeZone: "Asia/Shanghai", month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit",
});

/** @param {string | null | undefined} iso */
export const when = (iso) => (iso ? fmt.format(new Date(iso)) : "");

/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;

/**
 * A message at the bottom of the screen for four seconds.
 * @param {string} text
 */
export function toast(text) {
  const t = $("#toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

/**
 * The platform's reasons, in its words.
 * @param {import("./state.js").ApiError[] | null | undefined} errors
 */
export function errorsText(errors) {
  // The platform writes "中文 (English)": in Chinese, the Chinese only (lang.js keeps the English)
  const words = (errors || []).map((e) => e.message || e.code || "");
  const shown = uiLang() === "en" ? words : words.map((w) => w.replace(/^([^()]*[\u4e00-\u9fff][^()]*) \([^()]*\)$/, "$1"));
  return shown.join("；") || "平台未说明原因";
}

/**
 * The connection pill in the header.
 * @param {string} state "online", "offline" or "connecting"
 * @param {string} text
 */
export function setNet(state, text) {
  const n = $("#net");
  n.dataset.state = state;
  n.textContent = text;
}
