// @ts-check
/* Service worker of the phone app: the app shell comes from the cache (instant start,
   works in airplane mode) and is refreshed in the background. API calls are never cached:
   the outbox in IndexedDB, not this worker, is what keeps unsent work.
   A classic worker script (not a module, for every browser that runs the app), type-checked
   by frontend/tsconfig.sw.json. SHELL lists every file the app needs to start: with a new
   or renamed file, add it here and bump CACHE. */
"use strict";
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));
const CACHE = "rw-m-v11";
const SHELL = [
  "/m/",
  "/m/manifest.webmanifest",
  "/static/m/app.css", // inlined into /m/ by the server; kept here as the page names it
  "/m/app.js", // every module of the app, as one script (roadwatch/web/mobile.py)
  "/static/m/icon-192.png",
  "/static/vendor/mqtt-5.16.0/mqtt.min.js",
];
// Served from the cache once there, but not fetched at install: MQTT.js (105 KB gzipped) is
// needed only with the broker, right after a sign-in; on a slow link its download would
// compete with the sign-in itself. It is cached when the app first loads it.
const LATER = ["/static/vendor/mqtt-5.16.0/mqtt.min.js"];

sw.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE)
    .then((c) => c.addAll(SHELL.filter((url) => !LATER.includes(url))))
    .then(() => sw.skipWaiting()));
});

sw.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => sw.clients.claim()),
  );
});

/** @param {URL} url */
function shellKey(url) {
  // Every navigation inside the app gets the one shell page.
  return url.pathname.startsWith("/m/") && !url.pathname.startsWith("/m/api/") &&
    !SHELL.includes(url.pathname) ? "/m/" : url.pathname;
}

sw.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== sw.location.origin) return;
  const key = req.mode === "navigate" ? shellKey(url) : url.pathname;
  if (!SHELL.includes(key)) return; // API, photos: straight to the network
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const cached = await cache.match(key);
      const fresh = fetch(req).then((res) => {
        if (res.ok) cache.put(key, res.clone());
        return res;
      });
      if (cached) {
        fresh.catch(() => null); // offline: the cached copy is all there is
        return cached;
      }
      return fresh;
    }),
  );
});
