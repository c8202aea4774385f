// What the command centre needs first goes out now, while the map's 1 MB script loads
// (live.js takes these answers, or asks again): {ok, status, body} per request.
// A file of its own, not an inline script: the Content-Security-Policy allows no inline
// script. It runs from <head>, so it reads its data from the JSON block above it.
(function () {
  "use strict";
  var configEl = document.getElementById("rw-config");
  var config = JSON.parse((configEl && configEl.textContent) || "{}");
  var map = config.map || {};
  var root = (document.currentScript && document.currentScript.getAttribute("data-root")) || "";
  function get(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        return r.ok ? r.json().then(function (body) { return { ok: true, body: body }; })
                    : { ok: false, status: r.status };
      });
  }
  window.roadwatchEarly = {
    table: map.table ? get(map.table) : null,
    districts: get(root + "/api/districts"),
  };
})();
