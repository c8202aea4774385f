// @ts-check
/* Staff alerts (issue 19, scope 6): a case of the user's scope that becomes overdue, is
 * escalated (督办) or fails its verification raises an alert in the page and, once the user
 * has agreed (a click: the browser asks), a desktop notification. The server sends a
 * district user only their district's events, so the scope is the live feed's own.
 * Used by the live map (with its socket) and the case pages (with one of their own). */
import { config, root } from "./config.js";
import { lang } from "./i18n.js";

const WORDS = {
  zh: { overdue: "案件超期", escalated: "案件已督办", failed: "核查未通过", enable: "开启桌面提醒",
    close: "关闭", alerts: "提醒", extension: "延期申请" },
  en: { overdue: "Case overdue", escalated: "Case escalated", failed: "Verification failed",
    enable: "Enable desktop alerts", close: "Close", alerts: "Alerts", extension: "Extension asked" },
};
const KEEP_MS = 60000; // an in-page alert stays this long unless closed
const MAX_SHOWN = 5;

/** @param {keyof typeof WORDS.zh} key */
function w(key) {
  return WORDS[lang === "en" ? "en" : "zh"][key];
}

/**
 * What kind of alert a live `case` event is, or null.
 * @param {Record<string, any>} p
 * @returns {"overdue" | "escalated" | "failed" | "extension" | null}
 */
export function alertKind(p) {
  if (p.action === "request_extension") return "extension"; // a chief asks for more time
  if (p.status === "overdue") return "overdue";
  if (p.status === "escalated") return "escalated";
  // reopened by a failed verification (a chief's, an evaluator's or staff's), not a staff reopening
  if (p.status === "reopened" && p.action !== "reopen") return "failed";
  return null;
}

/** @type {HTMLElement | null} */
let box = null;

function container() {
  if (box) return box;
  box = document.createElement("section");
  box.id = "rw-alerts";
  box.className = "rw-alerts";
  box.setAttribute("aria-label", w("alerts"));
  box.setAttribute("aria-live", "assertive");
  document.body.appendChild(box);
  if ("Notification" in window && Notification.permission === "default") {
    const ask = document.createElement("button");
    ask.type = "button";
    ask.id = "rw-alerts-enable";
    ask.className = "rw-alerts-enable";
    ask.textContent = w("enable");
    ask.addEventListener("click", function () {
      Notification.requestPermission().finally(function () { ask.remove(); });
    });
    box.appendChild(ask);
  }
  return box;
}

/**
 * Show one alert (and a desktop notification when allowed).
 * @param {"overdue" | "escalated" | "failed" | "extension"} kind
 * @param {Record<string, any>} p the event
 */
export function raise(kind, p) {
  const href = root + "/cases/" + encodeURIComponent(String(p.id));
  const title = w(kind);
  const text = String(p.id).slice(0, 8) + (p.segment_id ? " · " + p.segment_id : "");
  const parent = container();
  const item = document.createElement("div");
  item.className = "rw-alert rw-alert-" + kind;
  item.setAttribute("role", "alert");
  item.setAttribute("data-case", String(p.id));
  item.setAttribute("data-kind", kind);
  const link = document.createElement("a");
  link.href = href;
  link.textContent = title + "：" + text;
  const x = document.createElement("button");
  x.type = "button";
  x.textContent = "×";
  x.setAttribute("aria-label", w("close"));
  x.addEventListener("click", function () { item.remove(); });
  item.appendChild(link);
  item.appendChild(x);
  parent.appendChild(item);
  const shown = parent.querySelectorAll(".rw-alert");
  if (shown.length > MAX_SHOWN) shown[0].remove();
  setTimeout(function () { item.remove(); }, KEEP_MS);
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      const n = new Notification(title, { body: text, tag: kind + ":" + p.id });
      n.onclick = function () { location.href = href; };
    } catch (e) { /* some browsers allow notifications from a service worker only */ }
  }
}

/**
 * Listen for alerts on `socket` (the live map's), or on a connection of this page's own.
 * @param {LiveSocket} [socket]
 */
export function startAlerts(socket) {
  if (!socket) {
    if (typeof io !== "function") return;
    const p = config.socketio_path || "socket.io";
    socket = io(config.namespace || "/live", {
      path: p.charAt(0) === "/" ? p : root + "/" + p, transports: ["websocket", "polling"],
    });
  }
  socket.on("connect", function () { document.documentElement.setAttribute("data-alerts", "live"); });
  socket.on("case", function (/** @type {Record<string, any>} */ payload) {
    const kind = alertKind(payload);
    if (kind) raise(kind, payload);
  });
}
