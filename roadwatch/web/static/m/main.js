// @ts-check
/* 路长通: the road chief's phone app. The entry module: wires the others together and
 * starts the app.
 *
 *   session.js   sign-in, the device credential (the password only in memory), refresh
 *   outbox.js    the IndexedDB outbox and its pump: photos, then MQTT or HTTPS; acks;
 *                retries with backoff and Retry-After
 *   broker.js    MQTT over WebSockets (MQTT.js loaded after the shell is usable)
 *   forms.js     the report and rectification forms, photos
 *   position.js  the position fix, its quality, nearby segments
 *   work.js      my segments, my cases, notices
 *   patrol.js    patrols
 *   views.js     the views and tabs
 *   store.js     IndexedDB; state.js what the app knows; util.js small helpers
 *
 * Every report, rectification and patrol is first written to the outbox under its UUID
 * and only the platform's ack settles it (outbox.js). See docs/security.md, "The phone app".
 */
import { connect, disconnect } from "./broker.js";
import { installForms } from "./forms.js";
import { installLang } from "./lang.js";
import { clearDone, pump, retryNow } from "./outbox.js";
import { installPatrol } from "./patrol.js";
import { onSignIn, refresh, signOut, start } from "./session.js";
import { app } from "./state.js";
import { $, setNet } from "./util.js";
import { show } from "./views.js";

const POLL_MS = 60000; // without the broker's notices, the case list is fetched this often

function wire() {
  installLang();
  $("#signin-form").addEventListener("submit", onSignIn);
  installForms();
  for (const b of document.querySelectorAll("#tabs button")) {
    b.addEventListener("click", () => show(/** @type {string} */ (/** @type {HTMLElement} */ (b).dataset.view)));
  }
  installPatrol();
  $("#outbox-clear").addEventListener("click", clearDone);
  $("#sign-out").addEventListener("click", signOut);
  window.addEventListener("online", () => {
    if (!app.auth) setNet("online", "未登录"); // the sign-in screen
    connect(); refresh(); retryNow();
  });
  window.addEventListener("offline", () => { disconnect(); setNet("offline", "离线"); });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && app.auth) { refresh(); retryNow(); }
  });
  setInterval(pump, 2000);
  // Without the broker nobody pushes notices: fetch the case list now and then.
  setInterval(() => { if (app.auth && !(app.mq && app.mq.connected)) refresh(); }, POLL_MS);
}

/** The service worker (offline shell): registered once the app is usable and the page has
 * loaded, so that its install (the whole shell again, and MQTT.js) does not compete with
 * the first screen and the sign-in on a slow link. */
function registerWorker() {
  if (!("serviceWorker" in navigator)) return;
  const go = () => setTimeout(() => {
    navigator.serviceWorker.register("/m/sw.js", { scope: "/m/" }).catch(() => null);
  }, 500);
  if (document.readyState === "complete") go();
  else window.addEventListener("load", go, { once: true });
}

wire();
start().then(registerWorker, registerWorker);
