/* roadwatch command centre: live map, big-screen mode and replay (路长制 指挥中心).
 *
 * Data flow
 *   1. The map is created with its whole style at once, fitted to the network's
 *      bounds (config.map.bounds: the first frame is the final view): the
 *      segments come as vector tiles built by the server (config.map.tiles; the
 *      worker only decodes them), the district outlines as GeoJSON, reports as
 *      an (empty) clustered GeoJSON source.
 *   2. At the same time: GET config.map.state (the live state of the segments
 *      with something open, the "seq" it is exact at, today's counters) and
 *      config.map.table (every segment's attributes as columns). The states go
 *      into feature state before the first full frame is counted: "drawn" is
 *      the first idle map (every tile of the view loaded and drawn) after that.
 *   3. Connect Socket.IO (namespace config.namespace, path config.socketio_path;
 *      the session cookie is the login). On EVERY connect emit
 *      `resync {since: lastSeq}`; the server replays what was missed (same event
 *      names, seq order) and then acks.
 *   4. Events are queued and applied once per animation frame, exactly once
 *      each: an event whose seq is <= lastSeq is ignored. The map gets them in
 *      commits (every 400-1500 ms, see commitEvery): segment state through
 *      setFeatureState (once per segment, never a redraw), the reports as one
 *      setData, so both share one redraw. drawnSeq is the last seq on screen.
 *      After the first full render: district names, the road chiefs
 *      (config.map.chiefs) and category names.
 *   5. Replay: the event log of a day or week (GET /api/events, paged) played
 *      at a chosen speed from the state at its start (GET /api/replay/state);
 *      "back to live" reloads the live state and resyncs.
 *
 * Config (JSON in #rw-config): socketio_path, namespace, map {tiles, table,
 * state, chiefs, maxzoom, bounds, district_views, segments}; optional timezone
 * (default Asia/Shanghai), screen (big-screen mode), user, district_names,
 * attribution, socketio_auth.
 *
 * Test hooks on window.roadwatch: ready, segmentCount, lastSeq, reportsSeen,
 * connected, drawnSeq (the last seq drawn on the map), featureState(segmentId), hasReport(id), reportsOnMap, timings,
 * lastAppliedAt, lagOf(reportId), replay {active, loaded, applied, reportOrder}; _map is the
 * maplibregl.Map (internal, for tests and the console).
 */
(function () {
  "use strict";

  var REPORT_CAP = 2000; // most recent reports kept on the map
  var REPORT_FLUSH_MS = 500; // a report's "fresh" ring is taken off at most this often
  // At least this long between two batches of map changes (feature states, reports). A
  // map change costs re-renders, which in software WebGL (a wall PC without a GPU) take
  // long: measured, every-frame commits at 1,000 events/s kept the page seconds behind.
  var MAP_COMMIT_MS = 400;
  var MAP_COMMIT_MAX_MS = 1500;
  var BUSY_WINDOW_MS = 2000; // the commit gap is adapted over this long
  var PENDING_STATES_MS = 300; // feature states wait this long at most for the reports' data
  var FRAME_FALLBACK_MS = 250; // apply events even if no animation frame comes (hidden tab)
  var FRESH_MS = 6000; // a new report is highlighted this long
  var RESYNC_ACK_TIMEOUT_MS = 15000;
  var RETRY_MS = 3000; // snapshot fetch retry
  var DOWN_AFTER_MS = 2500; // disconnected this long: show the "server down" state
  var ROTATE_MS = 20000; // big screen: time per district view
  var TICKER_MAX = 30;
  var HIT_PX = 6; // a segment within this many pixels of the pointer is "under" it
  var COUNT_CAP = 300; // cluster counts drawn at most (HTML over the map)
  var ROUND_FROM_ZOOM = 13; // segments get round ends and joins from this zoom on

  var config = JSON.parse(document.getElementById("rw-config").textContent || "{}");
  var root = document.body.getAttribute("data-root") || "";
  var timezone = config.timezone || "Asia/Shanghai";
  var attribution = config.attribution || "roadwatch 示例路网 (generated)";
  var screenMode = !!config.screen;
  var districtNames = config.district_names || {};
  var mapCfg = config.map || {};
  var SEGMENT_LAYER = "segments"; // the layer inside the vector tiles (roadwatch/mvt.py)
  function segmentKey(id) {
    return { source: "segments", sourceLayer: SEGMENT_LAYER, id: id };
  }

  // ----------------------------------------------------------------- i18n
  // The page's words, Chinese (default) and English: live-i18n.js.
  var TEXT = window.roadwatchText || { zh: {}, en: {} };
  var lang = (function () {
    var q = new URLSearchParams(location.search).get("lang");
    if (q === "en" || q === "zh") return q;
    try {
      return localStorage.getItem("roadwatch.lang") === "en" ? "en" : "zh";
    } catch (e) {
      return "zh";
    }
  })();
  function t(key) {
    return (TEXT[lang] && TEXT[lang][key]) || TEXT.zh[key] || key;
  }
  var categoryNames = {}; // code -> {name, name_en}
  function catName(code) {
    var c = categoryNames[code];
    return c ? (lang === "en" ? c.name_en : c.name) : String(code || "");
  }
  function districtName(code) {
    return districtNames[code] || code || "";
  }

  // ---------------------------------------------------------------- state
  var segments = new Map(); // id -> {props, open, overdue, score}
  var totals = { open: 0, overdue: 0 };
  var reports = new Map(); // report id -> GeoJSON feature, insertion order = age
  var stats = { reports_today: 0, rectified_today: 0, categories: {}, districts: {} };
  var today = dayKey(new Date());
  var map = null;
  var socket = null;
  var drawn = false;
  var overlays = false; // the district outlines and the reports' layers are on the map
  var resynced = false;
  var hoveredId = null;
  var pinnedId = null;
  var shownId = null;
  var mode = "live"; // live | replay

  var rw = (window.roadwatch = {
    ready: false,
    segmentCount: 0,
    lastSeq: 0,
    reportsSeen: 0,
    connected: false,
    reportsOnMap: 0,
    drawnSeq: 0, // the last seq whose changes have been handed to the map
    received: 0, // live events received (applied or not)
    framesDrawn: 0, // map frames rendered
    lastAppliedAt: 0,
    timings: {}, // ms since navigation start: states (in the map), table, drawn, resynced, ready
    replay: { active: false, loaded: 0, applied: 0, reportOrder: [] },
    featureState: function (segmentId) {
      if (!map || !map.getSource("segments")) return null;
      return map.getFeatureState(segmentKey(String(segmentId)));
    },
    hasReport: function (id) {
      return reports.has(String(id));
    },
  });

  // -------------------------------------------------------------- helpers
  var $ = function (id) {
    return document.getElementById(id);
  };
  var numFmt = new Intl.NumberFormat("zh-CN");
  var dayFmt = null;
  var timeFmt = null;
  var dateTimeFmt = null;

  // "YYYY-MM-DD" of a date in the configured time zone.
  function dayKey(date) {
    try {
      dayFmt = dayFmt || new Intl.DateTimeFormat("en-CA", { timeZone: timezone });
      return dayFmt.format(date);
    } catch (e) {
      return date.toISOString().slice(0, 10);
    }
  }
  function hhmm(date) {
    timeFmt = timeFmt || new Intl.DateTimeFormat("zh-CN", {
      timeZone: timezone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
    });
    return timeFmt.format(date);
  }
  function dayTime(date) {
    dateTimeFmt = dateTimeFmt || new Intl.DateTimeFormat("zh-CN", {
      timeZone: timezone, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hour12: false,
    });
    return dateTimeFmt.format(date);
  }
  // Midnight of a "YYYY-MM-DD" day in the configured zone, as a Date.
  function zoneMidnight(day) {
    var guess = new Date(day + "T00:00:00Z");
    // The zone's offset at that moment (Asia/Shanghai has no DST; this works for any zone).
    var parts = new Intl.DateTimeFormat("en-US", {
      timeZone: timezone, hour12: false, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(guess);
    var v = {};
    parts.forEach(function (p) { v[p.type] = p.value; });
    var asUtc = Date.UTC(+v.year, +v.month - 1, +v.day, +v.hour % 24, +v.minute, +v.second);
    return new Date(guess.getTime() - (asUtc - guess.getTime()));
  }

  function mark(name) {
    rw.timings[name] = Math.round(performance.now());
    if (performance.mark) performance.mark("roadwatch:" + name); // for traces
  }

  function cssVar(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  var palette = {
    districtFill: cssVar("--district-fill", "#3a6ea5"),
    districtLine: cssVar("--district-line", "#4b6a8f"),
    mapBg: cssVar("--map-bg", "#0d1624"),
    segCalm: cssVar("--seg-calm", "#4f6f93"),
    segOne: cssVar("--seg-one", "#ffb020"),
    segTwo: cssVar("--seg-two", "#ff7a1a"),
    segMany: cssVar("--seg-many", "#ff3b30"),
    segOverdue: cssVar("--seg-overdue", "#ff2bd6"),
    segHover: cssVar("--seg-hover", "#ffffff"),
    sev1: cssVar("--sev-1", "#ffd84d"),
    sev2: cssVar("--sev-2", "#ff8c1a"),
    sev3: cssVar("--sev-3", "#ff2d2d"),
    fresh: cssVar("--fresh", "#ffffff"),
    cluster: cssVar("--cluster", "#ff8c1a"),
    label: cssVar("--road-label", "#b9c9db"),
  };

  function toLogin() {
    location.href = root + "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  // path: under the app's root ("/api/…"), or a URL as the config gives it (url = true)
  function fetchJSON(path, url) {
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

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  // ----------------------------------------------------------- header UI
  var headerQueued = false;
  function renderHeader() {
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
    var list = $("rw-top-list");
    var top = Object.keys(stats.categories)
      .map(function (k) { return [k, stats.categories[k]]; })
      .sort(function (a, b) { return b[1] - a[1] || (a[0] < b[0] ? -1 : 1); })
      .slice(0, 5);
    list.textContent = "";
    var max = top.length ? top[0][1] : 1;
    top.forEach(function (entry) {
      var li = el("li");
      li.appendChild(el("span", "rw-top-name", catName(entry[0])));
      var bar = el("span", "rw-top-bar");
      bar.style.width = Math.max(4, Math.round((100 * entry[1]) / max)) + "%";
      li.appendChild(bar);
      li.appendChild(el("span", "rw-top-count", numFmt.format(entry[1])));
      list.appendChild(li);
    });
    $("rw-top").hidden = top.length === 0 && !screenMode;
  }

  var connState = "connecting";
  var downSince = null;
  function setConn(state) {
    connState = state;
    var e = $("rw-conn");
    e.setAttribute("data-state", state);
    e.querySelector(".rw-conn-text").textContent =
      t({ live: "live", down: "down", connecting: "connecting", replay: "replay_state" }[state]);
    if (state === "down") {
      if (downSince === null) downSince = Date.now();
    } else {
      downSince = null;
      $("rw-down").hidden = true;
    }
  }
  // The "server down" state: after a short grace (a reconnect usually takes < 1 s).
  setInterval(function () {
    var now = new Date();
    $("rw-clock").textContent = dayKey(now) + " " + hhmm(now);
    if (downSince !== null && mode === "live" && Date.now() - downSince > DOWN_AFTER_MS) {
      $("rw-down").hidden = false;
      $("rw-down-since").textContent =
        t("since") + " " + Math.round((Date.now() - downSince) / 1000) + " s";
    }
  }, 500);

  function applyLanguage() {
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    document.querySelectorAll("[data-i18n]").forEach(function (n) {
      n.textContent = t(n.getAttribute("data-i18n"));
    });
    document.title = t("title");
    $("rw-lang").textContent = lang === "en" ? "中文" : "EN";
    $("rw-replay-play").textContent = t(player.playing ? "pause" : "play");
    setConn(connState);
    renderHeader();
    renderTicker();
    if (shownId) showSegment(shownId);
  }
  $("rw-lang").addEventListener("click", function () {
    lang = lang === "en" ? "zh" : "en";
    try {
      localStorage.setItem("roadwatch.lang", lang);
    } catch (e) { /* private mode: not remembered */ }
    applyLanguage();
  });

  function rollDay() {
    var k = dayKey(new Date());
    if (k !== today && mode === "live") {
      today = k;
      stats.reports_today = 0;
      stats.rectified_today = 0;
      stats.categories = {};
      Object.keys(stats.districts).forEach(function (d) { stats.districts[d].reports_today = 0; });
      renderHeader();
    }
  }
  setInterval(rollDay, 60000);

  // --------------------------------------------------------------- ticker
  var ticker = []; // newest first: {time, text, sev}
  var tickerQueued = false;
  function addTicker(ev) {
    var when = ev.observed_at ? new Date(ev.observed_at) : new Date();
    var seg = segments.get(String(ev.segment_id));
    ticker.unshift({
      time: isNaN(when) ? new Date() : when,
      district: ev.district,
      road: seg ? seg.props.name || seg.props.road : "",
      category: ev.category,
      sev: ev.severity | 0,
    });
    if (ticker.length > TICKER_MAX) ticker.length = TICKER_MAX;
    if (!tickerQueued) {
      tickerQueued = true;
      setTimeout(function () { tickerQueued = false; renderTicker(); }, 500);
    }
  }
  function renderTicker() {
    var track = $("rw-ticker-track");
    track.textContent = "";
    ticker.forEach(function (item) {
      var span = el("span", "rw-tick rw-tick-sev" + item.sev);
      span.appendChild(el("b", null, hhmm(item.time).slice(0, 5)));
      span.appendChild(document.createTextNode(
        " " + [districtName(item.district), item.road, catName(item.category)].filter(Boolean).join(" · ")
      ));
      track.appendChild(span);
    });
  }

  // ------------------------------------------------------- segment panel
  function fmtPerson(h) {
    var role = h.role === "road_chief" ? t("level" + h.level) : t(h.role);
    var who = h.person ? h.person.name || h.person.id : "?";
    return role + "：" + who;
  }

  function showSegment(id) {
    var s = id != null ? segments.get(id) : null;
    var panel = $("rw-segment");
    if (shownId !== id) $("rw-segment-detail").textContent = "";
    shownId = s ? id : null;
    if (!s) {
      panel.hidden = true;
      return;
    }
    var p = s.props;
    var set = function (field, text, cls) {
      var e = panel.querySelector('[data-field="' + field + '"]');
      e.textContent = text;
      e.className = cls || "";
    };
    set("name", p.name || p.road || id);
    set("id", id);
    set("span", p.from || p.to ? (p.from || "?") + " 至 " + (p.to || "?") : "—");
    set("district", [districtName(p.district), p.subdistrict].filter(Boolean).join(" · ") || "—");
    set("chief", p.chief && p.chief.name ? p.chief.name + (p.chief.id ? "（" + p.chief.id + "）" : "") : t("unassigned"));
    set("open", String(s.open), s.open > 0 ? "rw-hot" : "");
    set("overdue", String(s.overdue), s.overdue > 0 ? "rw-overdue" : "");
    set("score", s.score != null ? String(s.score) : "100");
    set("length", p.length_m != null ? numFmt.format(Math.round(p.length_m)) + " " + t("metres") : "—");
    panel.hidden = false;
  }

  // Chief and team, open cases with deadlines, photos, recent reports.
  function loadSegmentDetail(id) {
    var box = $("rw-segment-detail");
    box.textContent = t("loading");
    fetchJSON("/api/segments/" + encodeURIComponent(id)).then(function (doc) {
      if (shownId !== id) return;
      var p = doc.properties || {};
      box.textContent = "";
      box.appendChild(el("h3", null, t("team")));
      var team = el("ul", "rw-team");
      (p.responsible_now || []).forEach(function (h) { team.appendChild(el("li", null, fmtPerson(h))); });
      if (!team.children.length) team.appendChild(el("li", "rw-dim", t("none")));
      box.appendChild(team);

      box.appendChild(el("h3", null, t("open_cases") + " (" + (p.open_cases || []).length + ")"));
      var cases = el("ul", "rw-cases");
      (p.open_cases || []).slice(0, 8).forEach(function (c) {
        var li = el("li", c.overdue ? "rw-case rw-case-overdue" : "rw-case");
        li.appendChild(el("span", "rw-case-cat", (lang === "en" ? c.category_name_en : c.category_name) || c.category));
        var due = c.due_at ? t("due") + " " + dayTime(new Date(c.due_at)) : t("status_" + c.status);
        li.appendChild(el("span", "rw-case-due", due));
        (c.photos || []).slice(0, 3).forEach(function (src) {
          var img = el("img", "rw-photo");
          img.loading = "lazy";
          img.alt = "";
          img.src = src;
          img.addEventListener("error", function () { img.remove(); }); // not uploaded yet
          li.appendChild(img);
        });
        cases.appendChild(li);
      });
      if (!cases.children.length) cases.appendChild(el("li", "rw-dim", t("none")));
      box.appendChild(cases);

      box.appendChild(el("h3", null, t("recent")));
      var recent = el("ul", "rw-recent");
      (p.recent || []).slice(0, 6).forEach(function (c) {
        recent.appendChild(el("li", null,
          dayTime(new Date(c.observed_at)) + "  " + (lang === "en" ? c.category_name_en : c.category_name) +
          " · " + t("status_" + c.status)));
      });
      if (!recent.children.length) recent.appendChild(el("li", "rw-dim", t("none")));
      box.appendChild(recent);
    }).catch(function (err) {
      if (shownId === id) box.textContent = String(err.message || err);
    });
  }

  function setHover(id) {
    if (id === hoveredId) return;
    if (hoveredId != null) map.setFeatureState(segmentKey(hoveredId), { hover: false });
    hoveredId = id;
    if (id != null) map.setFeatureState(segmentKey(id), { hover: true });
    map.getCanvas().style.cursor = id != null ? "pointer" : "";
    if (pinnedId == null) showSegment(id);
  }

  $("rw-segment-close").addEventListener("click", function () {
    pinnedId = null;
    showSegment(hoveredId);
  });

  // ------------------------------------------------------------- the map
  function segmentLayers() {
    var open = ["coalesce", ["feature-state", "open"], ["get", "open"], 0];
    var overdue = ["coalesce", ["feature-state", "overdue"], ["get", "overdue"], 0];
    var score = ["coalesce", ["feature-state", "score"], ["get", "score"], 100];
    var hover = ["boolean", ["feature-state", "hover"], false];
    var weight = ["case", hover, 2.6, [">", overdue, 0], 2.4, [">", open, 0], 1.9, 1];
    return [
      {
        id: "segments",
        type: "line",
        source: "segments",
        "source-layer": SEGMENT_LAYER,
        // Round ends and joins only where a line is wide enough to show them: at the
        // city's zoom (1-2 px lines) they would cost a third of every frame for nothing.
        layout: {
          "line-cap": ["step", ["zoom"], "butt", ROUND_FROM_ZOOM, "round"],
          "line-join": ["step", ["zoom"], "miter", ROUND_FROM_ZOOM, "round"],
        },
        paint: {
          // Colour by the live score (deductions of the open cases), overdue on top.
          "line-color": [
            "case",
            hover, palette.segHover,
            [">", overdue, 0], palette.segOverdue,
            ["<=", open, 0], palette.segCalm,
            [">=", score, 90], palette.segOne,
            [">=", score, 75], palette.segTwo,
            palette.segMany,
          ],
          "line-opacity": ["case", ["any", hover, [">", open, 0], [">", overdue, 0]], 1, 0.7],
          "line-width": ["interpolate", ["exponential", 1.5], ["zoom"],
            10, ["*", weight, screenMode ? 1.6 : 1.2],
            13, ["*", weight, 2.4],
            17, ["*", weight, 8]],
        },
      },
      {
        // Road names along the lines. No glyph server: MapLibre draws the
        // glyphs locally with the system's CJK font (localIdeographFontFamily).
        id: "road-labels",
        type: "symbol",
        source: "segments",
        "source-layer": SEGMENT_LAYER,
        minzoom: 12,
        layout: {
          "symbol-placement": "line",
          "text-field": ["get", "road"],
          "text-size": ["interpolate", ["linear"], ["zoom"], 12, 11, 16, 15],
          "symbol-spacing": 400,
          "text-max-angle": 30,
          "text-padding": 4,
        },
        paint: {
          "text-color": palette.label,
          "text-halo-color": palette.mapBg,
          "text-halo-width": 1.6,
        },
      },
    ];
  }

  function reportLayers() {
    var sev = ["to-number", ["get", "severity"], 1];
    var color = ["match", sev, 3, palette.sev3, 2, palette.sev2, palette.sev1];
    var single = ["!", ["has", "point_count"]];
    return [
      {
        id: "report-clusters",
        type: "circle",
        source: "reports",
        filter: ["has", "point_count"],
        paint: {
          "circle-color": palette.cluster,
          "circle-opacity": 0.78,
          "circle-radius": ["step", ["get", "point_count"], 10, 10, 14, 50, 19, 200, 25],
          "circle-stroke-color": "#ffe1bd",
          "circle-stroke-width": 1.2,
        },
      },
      {
        id: "reports-fresh",
        type: "circle",
        source: "reports",
        filter: ["all", single, ["==", ["get", "fresh"], true]],
        paint: {
          "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, 9, 16, 18],
          "circle-color": color,
          "circle-opacity": 0.25,
          "circle-stroke-color": palette.fresh,
          "circle-stroke-width": 1.5,
        },
      },
      {
        id: "reports",
        type: "circle",
        source: "reports",
        filter: single,
        paint: {
          "circle-radius": ["interpolate", ["linear"], ["zoom"],
            10, ["+", 2.5, sev],
            16, ["+", 5, ["*", 2, sev]]],
          "circle-color": color,
          "circle-opacity": 0.92,
          "circle-stroke-color": ["case", ["==", ["get", "status"], "needs_review"], "#ffffff", palette.mapBg],
          "circle-stroke-width": ["case", ["==", ["get", "status"], "needs_review"], 1.5, 0.5],
        },
      },
    ];
  }

  // Area centroid of the outer ring of the largest polygon: good enough to
  // place a district name.
  function labelPoint(geometry) {
    var polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
    var best = null;
    polys.forEach(function (poly) {
      var ring = poly[0];
      var a = 0, cx = 0, cy = 0;
      for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        var f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
        a += f;
        cx += (ring[j][0] + ring[i][0]) * f;
        cy += (ring[j][1] + ring[i][1]) * f;
      }
      if (a !== 0 && (!best || Math.abs(a) > best.area)) {
        best = { area: Math.abs(a), point: [cx / (3 * a), cy / (3 * a)] };
      }
    });
    return best && best.point;
  }

  function toLngLatBounds(b) {
    return b && b.length === 4 ? [[b[0], b[1]], [b[2], b[3]]] : null;
  }
  // [{code, bounds}] for the big screen's rotation: the server's, from the segments.
  var districtViews = (mapCfg.district_views || []).map(function (v) {
    return { code: v.code, bounds: toLngLatBounds(v.bounds) };
  });
  var cityBounds = toLngLatBounds(mapCfg.bounds);

  function districtLayers() {
    return [
      {
        id: "districts-fill",
        type: "fill",
        source: "districts",
        paint: { "fill-color": palette.districtFill, "fill-opacity": 0.06 },
      },
      {
        id: "districts-line",
        type: "line",
        source: "districts",
        paint: { "line-color": palette.districtLine, "line-width": screenMode ? 1.8 : 1.2, "line-dasharray": [3, 2] },
      },
      {
        // The district the big screen is showing, outlined brightly.
        id: "districts-focus",
        type: "line",
        source: "districts",
        filter: ["==", ["get", "code"], ""],
        paint: { "line-color": cssVar("--accent", "#4cc3ff"), "line-width": 3, "line-opacity": 0.9 },
      },
    ];
  }

  // District names as HTML markers: large and crisp at any zoom.
  function addDistrictNames(fc) {
    (fc.features || []).forEach(function (f) {
      var p = f.geometry && labelPoint(f.geometry);
      var props = f.properties || {};
      if (props.code && props.name) districtNames[props.code] = props.name;
      if (!p || !props.name) return;
      var e = el("div", "rw-district-label", props.name);
      new maplibregl.Marker({ element: e }).setLngLat(p).addTo(map);
    });
  }

  function mapPadding() {
    var c = map ? map.getContainer() : $("rw-map");
    var side = Math.min(screenMode ? 420 : 340, c.clientWidth * 0.3);
    return { top: 40, bottom: screenMode ? 40 : 30, left: 40, right: side };
  }

  // A URL for the map's worker (which has no base URL of its own); "{z}" stays as is.
  function absoluteURL(path) {
    return /^[a-z]+:/i.test(path) ? path : location.origin + (path.charAt(0) === "/" ? "" : "/") + path;
  }

  // The whole style at once: one style load, no source or layer added later.
  function mapStyle() {
    var layers = [{ id: "background", type: "background", paint: { "background-color": palette.mapBg } }];
    var sources = {
      segments: {
        type: "vector",
        tiles: [absoluteURL(mapCfg.tiles)],
        minzoom: 0,
        maxzoom: mapCfg.maxzoom || 14,
        bounds: mapCfg.bounds || undefined,
        promoteId: "id",
        attribution: attribution,
      },
    };
    // The city's own offline basemap (ROADWATCH_BASEMAP, served by this server), under
    // everything else; none by default.
    var basemap = mapCfg.basemap;
    if (basemap) {
      sources.basemap = Object.assign({}, basemap.source, {
        tiles: basemap.source.tiles.map(absoluteURL),
      });
      layers = layers.concat(basemap.layers);
    }
    return {
      version: 8,
      // No paint transitions: with the default (300 ms) the map redraws continuously for
      // 300 ms after the style and after every layer that is added, a full frame each time.
      transition: { duration: 0, delay: 0 },
      sources: sources,
      layers: layers.concat(segmentLayers()),
    };
  }

  // Right after the first full render: the district outlines (under the segments) and
  // the reports (clustered, over them). Each source that loads costs the map another
  // full frame; before the first full render that would only delay it.
  function addOverlays(districts) {
    map.addSource("districts", { type: "geojson", data: districts });
    districtLayers().forEach(function (l) {
      map.addLayer(l, "segments");
    });
    map.addSource("reports", {
      type: "geojson",
      data: { type: "FeatureCollection", features: [] },
      cluster: true,
      clusterRadius: 42,
      clusterMaxZoom: 14,
    });
    reportLayers().forEach(function (l) {
      map.addLayer(l);
    });
    overlays = true;
    if (rotation >= 0 && districtViews[rotation]) {
      map.setFilter("districts-focus", ["==", ["get", "code"], districtViews[rotation].code]);
    }
    if (reports.size || reportsDirty) {
      flushReports();
      awaitingDraw = true;
    }
  }

  // Every segment's attributes, from the server's columns (mapdata.py).
  function takeTable(doc) {
    var words = doc.strings || [];
    var word = function (col, i) {
      var k = col ? col[i] : null;
      return k != null ? words[k] : "";
    };
    segments.clear();
    for (var i = 0; i < doc.id.length; i++) {
      segments.set(String(doc.id[i]), {
        props: {
          id: doc.id[i],
          name: doc.name[i],
          road: word(doc.road, i),
          from: word(doc.from, i),
          to: word(doc.to, i),
          district: word(doc.district, i),
          subdistrict: word(doc.subdistrict, i),
          length_m: doc.length_m[i],
          chief: null,
        },
        open: 0,
        overdue: 0,
        score: 100,
      });
    }
    rw.segmentCount = segments.size;
    renderHeader();
  }

  // The road chiefs, after the first full render: only the panel shows them.
  function loadChiefs() {
    if (!mapCfg.chiefs) return;
    fetchJSON(mapCfg.chiefs, true).then(function (chiefs) {
      Object.keys(chiefs || {}).forEach(function (id) {
        var s = segments.get(id);
        if (s) s.props.chief = { id: chiefs[id][0], name: chiefs[id][1] };
      });
      if (shownId) showSegment(shownId);
    }).catch(function (err) {
      console.warn("roadwatch: road chiefs not loaded", err);
    });
  }

  // Hits within HIT_PX of the pointer (a thin line is hard to hit exactly); no
  // second, wider layer for that: it would double the work of drawing the network.
  function segmentPointer() {
    var hitAt = function (point) {
      var box = [[point.x - HIT_PX, point.y - HIT_PX], [point.x + HIT_PX, point.y + HIT_PX]];
      return map.queryRenderedFeatures(box, { layers: ["segments"] });
    };
    map.on("mousemove", function (e) {
      if (!drawn) return;
      var hits = hitAt(e.point);
      setHover(hits.length ? String(hits[0].id) : null);
    });
    map.getCanvas().addEventListener("mouseleave", function () {
      if (drawn) setHover(null);
    });
    map.on("click", function (e) {
      if (!drawn) return;
      var hits = hitAt(e.point);
      pinnedId = hits.length ? String(hits[0].id) : null;
      showSegment(pinnedId != null ? pinnedId : hoveredId);
      if (pinnedId != null) loadSegmentDetail(pinnedId);
    });
    map.on("click", "report-clusters", function (e) {
      var f = e.features && e.features[0];
      if (!f) return;
      map.getSource("reports").getClusterExpansionZoom(f.properties.cluster_id).then(function (z) {
        map.easeTo({ center: f.geometry.coordinates, zoom: z });
      });
    });
  }

  // ------------------------------------------------------- cluster counts
  // A cluster's count is HTML over the map, not a symbol layer: in software WebGL a symbol
  // layer on the reports cost two more full frames (its placement) every time the reports
  // change, twice what the rest of a reports update costs. At most COUNT_CAP of them.
  var countBox = null;
  var countEls = [];
  var countItems = []; // [{at: [lon, lat], text}]
  var countsDirty = false;

  function takeClusterCounts() {
    var seen = {};
    countItems = [];
    var feats = map.queryRenderedFeatures({ layers: ["report-clusters"] });
    for (var i = 0; i < feats.length && countItems.length < COUNT_CAP; i++) {
      var p = feats[i].properties;
      if (seen[p.cluster_id]) continue; // in two tiles' edges
      seen[p.cluster_id] = true;
      countItems.push({ at: feats[i].geometry.coordinates, text: String(p.point_count_abbreviated) });
    }
    placeClusterCounts();
  }

  function placeClusterCounts() {
    if (!countBox) {
      countBox = el("div", "rw-cluster-counts");
      map.getCanvasContainer().appendChild(countBox);
    }
    for (var i = 0; i < countItems.length; i++) {
      var e = countEls[i];
      if (!e) {
        e = countEls[i] = el("div", "rw-cluster-count");
        countBox.appendChild(e);
      }
      var xy = map.project(countItems[i].at);
      if (e.textContent !== countItems[i].text) e.textContent = countItems[i].text;
      e.style.transform = "translate(" + Math.round(xy.x) + "px," + Math.round(xy.y) + "px)";
      e.hidden = false;
    }
    for (var j = countItems.length; j < countEls.length; j++) countEls[j].hidden = true;
  }

  // After a frame: new clusters once the reports' tiles are all in; else follow the map.
  function onCountsRender() {
    if (!overlays) return;
    if (countsDirty && map.isSourceLoaded("reports")) {
      countsDirty = false;
      takeClusterCounts();
    } else if (countItems.length) {
      placeClusterCounts();
    }
  }

  // ------------------------------------------------------------- reports
  var flushTimer = null;
  var lastFlush = 0;

  function scheduleReports(delay) {
    if (flushTimer !== null) return;
    var every = Math.max(REPORT_FLUSH_MS, commitEvery);
    var wait = delay != null ? delay : Math.max(0, lastFlush + every - Date.now());
    flushTimer = setTimeout(flushReports, wait);
  }

  function flushReports() {
    if (flushTimer !== null) clearTimeout(flushTimer);
    flushTimer = null;
    if (!overlays) return; // addOverlays flushes them
    reportsDirty = false;
    lastFlush = Date.now();
    var features = [];
    var nextExpiry = Infinity;
    reports.forEach(function (f) {
      var age = lastFlush - f.properties.arrived;
      f.properties.fresh = age < FRESH_MS;
      if (f.properties.fresh) nextExpiry = Math.min(nextExpiry, FRESH_MS - age);
      features.push(f);
    });
    map.getSource("reports").setData({ type: "FeatureCollection", features: features });
    rw.reportsOnMap = features.length;
    if (nextExpiry !== Infinity) scheduleReports(Math.max(REPORT_FLUSH_MS, commitEvery, nextExpiry + 20));
  }

  // --------------------------------------------------------------- events
  // Returns true if the event is new (and advances lastSeq), false if it is a
  // replay of something already applied.
  function accept(name, payload) {
    var seq = payload ? Number(payload.seq) : NaN;
    if (!Number.isFinite(seq)) {
      console.warn("roadwatch: " + name + " event without seq ignored", payload);
      return false;
    }
    if (seq <= rw.lastSeq) return false;
    rw.lastSeq = seq;
    return true;
  }

  var dirtySegments = new Map(); // id -> state to set in the next commit
  var lags = new Map(); // report id -> ms from the platform's receipt to this page applying it
  rw.lagOf = function (id) {
    return lags.has(String(id)) ? lags.get(String(id)) : null;
  };

  function districtRow(code) {
    return (stats.districts[code] = stats.districts[code] || { reports_today: 0, open: 0, overdue: 0 });
  }

  function applySegment(ev) {
    var id = String(ev.segment_id);
    var s = segments.get(id);
    var open = ev.open | 0, overdue = ev.overdue | 0;
    var score = ev.score != null ? Number(ev.score) : 100;
    if (!s) return; // not a segment this user sees
    totals.open += open - s.open;
    totals.overdue += overdue - s.overdue;
    if (s.props.district) {
      var row = districtRow(s.props.district);
      row.open += open - s.open;
      row.overdue += overdue - s.overdue;
    }
    s.open = open;
    s.overdue = overdue;
    s.score = score;
    dirtySegments.set(id, { open: open, overdue: overdue, score: score });
  }

  function applyReport(ev, arrived) {
    rw.reportsSeen += 1;
    if (mode === "live") rollDay();
    var received = ev.received_at ? new Date(ev.received_at) : new Date();
    var day = dayKey(isNaN(received) ? new Date() : received);
    if (mode === "replay" || day === today) {
      stats.reports_today += 1;
      if (ev.category) stats.categories[ev.category] = (stats.categories[ev.category] || 0) + 1;
      if (ev.district) districtRow(ev.district).reports_today += 1;
    }
    addTicker(ev);
    if (mode === "live" && !isNaN(received)) {
      // received_at is when the platform took the message in: this is its age on screen
      // (the map draws it in this same frame).
      lags.set(String(ev.id), Date.now() - received.getTime());
      if (lags.size > 200) lags.delete(lags.keys().next().value);
    }

    var lat = Number(ev.lat), lon = Number(ev.lon);
    if (!Number.isFinite(lat) || !Number.isFinite(lon)) return;
    var key = String(ev.id);
    reports.delete(key); // a re-sent report moves to the front
    reports.set(key, {
      type: "Feature",
      geometry: { type: "Point", coordinates: [lon, lat] },
      properties: {
        id: key,
        segment_id: ev.segment_id,
        category: ev.category,
        severity: ev.severity,
        status: ev.status,
        arrived: arrived || Date.now(),
        fresh: true,
      },
    });
    if (reports.size > REPORT_CAP) {
      var drop = reports.size - REPORT_CAP;
      var it = reports.keys();
      for (var i = 0; i < drop; i++) reports.delete(it.next().value);
    }
    reportsDirty = true;
  }

  function applyCase(ev) {
    if (ev.status === "rectified") stats.rectified_today += 1;
  }

  function noop() {}

  var handlers = { report: applyReport, segment: applySegment, case: applyCase, ranking: noop };

  // ----------------------------------------------- coalescing per frame
  // Events are queued as they arrive and applied together once per animation
  // frame (the page's books and the header); the map gets them in commits (see
  // commitFrame): one setFeatureState per changed segment and one reports setData,
  // however many events came.
  var queue = [];
  var frameQueued = false;
  var reportsDirty = false;

  function scheduleFrame() {
    if (frameQueued) return;
    frameQueued = true;
    var done = false;
    var run = function () {
      if (done) return;
      done = true;
      frameQueued = false;
      applyQueued();
    };
    requestAnimationFrame(run);
    setTimeout(run, FRAME_FALLBACK_MS); // background tabs get no frames
  }

  function applyQueued() {
    if (!tableIn) return; // kept in order until the segments' attributes are in
    var batch = queue;
    queue = [];
    for (var i = 0; i < batch.length; i++) {
      var name = batch[i][0], payload = batch[i][1];
      if (accept(name, payload)) handlers[name](payload);
    }
    if (batch.length) rw.lastAppliedAt = Date.now();
    renderHeader(); // the counters are cheap DOM: at once, not with the map
    scheduleCommit();
  }

  var commitTimer = null;
  var lastCommit = 0;
  // The gap between map commits adapts to what a frame costs here: about three frames'
  // worth, so the page never spends more than a third of its time redrawing and always
  // has time left to take in events (a busy wall PC falls behind otherwise).
  // The gap between map commits adapts to what drawing costs here, so that the page
  // spends at most about half its time drawing and always has time to take in events:
  // every commit is several full frames (the feature states one, the reports' setData
  // three or four: the source's data, then its tiles in batches), and a frame takes
  // 70-250 ms in software WebGL (a wall PC without a GPU), more on a busy machine.
  var commitEvery = MAP_COMMIT_MS;
  rw.commitEvery = commitEvery;
  var busyMs = 0; // main-thread long tasks (the frames, mostly) since busySince
  var busySince = performance.now();
  try {
    new PerformanceObserver(function (list) {
      list.getEntries().forEach(function (e) {
        busyMs += e.duration;
      });
    }).observe({ type: "longtask" });
  } catch (e) {
    busyMs = -1; // no long-task timing here: stay at MAP_COMMIT_MS
  }
  function adaptCommits() {
    var now = performance.now(), span = now - busySince;
    if (busyMs < 0 || span < BUSY_WINDOW_MS) return;
    var share = busyMs / span;
    if (share > 0.5) commitEvery = Math.min(MAP_COMMIT_MAX_MS, commitEvery * 1.3);
    else if (share < 0.3) commitEvery = Math.max(MAP_COMMIT_MS, commitEvery * 0.85);
    rw.commitEvery = Math.round(commitEvery);
    rw.busyShare = Math.round(share * 100) / 100;
    busyMs = 0;
    busySince = now;
  }
  function scheduleCommit() {
    if (commitTimer !== null) return;
    var wait = Math.max(0, lastCommit + commitEvery - Date.now());
    if (wait === 0) {
      commitFrame();
      return;
    }
    commitTimer = setTimeout(function () {
      commitTimer = null;
      commitFrame();
    }, wait);
  }

  // One commit hands everything since the last one to the map: the segments' feature
  // states and (one setData) the reports, so that they share one redraw.
  // The reports' setData goes first: the map redraws once when the worker has taken the
  // data (before the source's tiles are redone), and the feature states go into that
  // frame instead of one of their own (see onReportsData).
  function commitFrame() {
    lastCommit = Date.now();
    committedSeq = rw.lastSeq;
    var changed = dirtySegments.size > 0;
    var states = dirtySegments;
    dirtySegments = new Map();
    if (shownId != null && states.has(shownId)) showSegment(shownId);
    // (a replay that plays commits every animation frame: its reports go at most every
    // REPORT_FLUSH_MS; a seek while paused shows them at once)
    var flushNow = reportsDirty && overlays &&
      (mode === "live" || !player.playing || Date.now() - lastFlush >= REPORT_FLUSH_MS);
    if (flushNow) {
      flushReports();
      changed = true;
      pendingStates.push(states);
      if (pendingTimer === null) pendingTimer = setTimeout(setPendingStates, PENDING_STATES_MS);
    } else {
      if (reportsDirty && overlays) scheduleReports();
      setStates(states);
    }
    if (changed) awaitingDraw = true;
    else if (!awaitingDraw) rw.drawnSeq = committedSeq; // nothing to draw
    renderHeader();
    adaptCommits();
  }

  function setStates(states) {
    states.forEach(function (state, id) {
      map.setFeatureState(segmentKey(id), state);
    });
  }
  var pendingStates = []; // feature states waiting for the reports' data to be taken
  var pendingTimer = null;
  function setPendingStates() {
    clearTimeout(pendingTimer);
    pendingTimer = null;
    var batches = pendingStates;
    pendingStates = [];
    batches.forEach(setStates);
  }
  function onReportsData(e) {
    if (e.sourceId !== "reports") return;
    countsDirty = true;
    if (e.sourceDataType === "content" && pendingStates.length) setPendingStates();
  }

  // drawnSeq: the last seq whose changes are on screen: a frame drawn after the commit,
  // with the reports' data through the map's worker.
  var committedSeq = 0;
  var awaitingDraw = false;
  function onMapRender() {
    rw.framesDrawn += 1;
    if (!awaitingDraw || pendingStates.length) return;
    if (overlays && !map.isSourceLoaded("reports")) return;
    awaitingDraw = false;
    rw.drawnSeq = committedSeq;
  }

  // The server may answer a resync with {ok: false, seq} when this page is too
  // far behind to replay: start again from a fresh snapshot (at most once a minute).
  function onResyncAnswer(answer) {
    if (!answer || answer.ok !== false) return;
    console.warn("roadwatch: resync refused", answer);
    var last = Number(sessionStorage.getItem("roadwatch.reloadAt")) || 0;
    if (Number(answer.seq) > rw.lastSeq && Date.now() - last > 60000) {
      sessionStorage.setItem("roadwatch.reloadAt", String(Date.now()));
      location.reload();
    }
  }

  // "socket.io" (relative, as Flask-SocketIO spells it) or "/socket.io"
  function socketPath() {
    var p = config.socketio_path || "socket.io";
    return p.charAt(0) === "/" ? p : root + "/" + p;
  }

  // Until the current connection's resync is answered, events are held back:
  // live events may overtake the replay of older ones, and applying a newer seq
  // first would make the replayed ones look old. The held events are applied
  // in seq order once the answer arrives (replay and live events alike).
  var syncing = true;
  var held = [];
  var connGen = 0; // which connection a resync answer belongs to
  var snapshotIn = false; // the live state's seq is known: resyncs may go
  var tableIn = false; // the segments' attributes are in: events may be applied

  function onEvent(name, payload) {
    rw.received += 1;
    if (mode !== "live") return; // replay: the live stream is paused (resynced on return)
    if (!payload || typeof payload !== "object") return;
    if (syncing) {
      held.push([name, payload]);
    } else {
      queue.push([name, payload]);
      scheduleFrame();
    }
  }

  function releaseHeld() {
    syncing = false;
    var batch = held;
    held = [];
    batch.sort(function (a, b) {
      return (Number(a[1].seq) || 0) - (Number(b[1].seq) || 0);
    });
    for (var i = 0; i < batch.length; i++) queue.push(batch[i]);
    scheduleFrame();
  }

  function resync() {
    var gen = connGen;
    socket.timeout(RESYNC_ACK_TIMEOUT_MS).emit("resync", { since: rw.lastSeq }, function (err, answer) {
      if (gen !== connGen) return; // that connection is gone; the next one resyncs
      if (err) console.warn("roadwatch: resync not acknowledged", err);
      else onResyncAnswer(answer);
      releaseHeld();
      if (!resynced) {
        resynced = true;
        mark("resynced");
        checkReady();
      }
    });
  }

  // Connect at once (the handshake overlaps the snapshot download); the first
  // resync waits for the snapshot, whose seq it starts from.
  function connect() {
    // WebSocket first (fewer round trips than starting with long-polling), long-polling
    // if a proxy on the way refuses WebSockets.
    var opts = { path: socketPath(), transports: ["websocket", "polling"], tryAllTransports: true };
    if (config.socketio_auth) opts.auth = config.socketio_auth;
    socket = rw._socket = io(config.namespace || "/live", opts);

    Object.keys(handlers).forEach(function (name) {
      socket.on(name, function (payload) {
        onEvent(name, payload);
      });
    });

    socket.on("connect", function () {
      connGen += 1;
      syncing = true;
      rw.connected = true;
      setConn("live");
      $("rw-conn").title = "";
      if (snapshotIn) resync();
    });
    socket.on("disconnect", function (reason) {
      connGen += 1;
      syncing = true;
      held = [];
      rw.connected = false;
      if (mode === "live") setConn("down");
      if (reason === "io server disconnect" && mode === "live") socket.connect(); // kicked: try again
    });
    socket.on("connect_error", function (err) {
      rw.connected = false;
      var msg = String((err && err.message) || err);
      if (mode === "live") setConn("down");
      $("rw-conn").title = msg;
      // Refused by the server: our login has ended (expired, logged out elsewhere).
      if (msg === "login required") {
        fetchJSON("/api/me").catch(function () { /* fetchJSON sends us to the login */ });
      }
      if (!socket.active && mode === "live") setTimeout(function () { socket.connect(); }, RETRY_MS);
    });
  }

  function checkReady() {
    if (!rw.ready && drawn && resynced && tableIn) {
      rw.ready = true;
      mark("ready");
    }
  }

  // ------------------------------------------------- snapshot (and back to live)
  // GET until it answers (a server restarting, a network hiccup); path as fetchJSON's.
  function fetchRetrying(path, url) {
    return fetchJSON(path, url).catch(function (err) {
      console.warn("roadwatch: " + path + " failed, retrying", err);
      if (downSince === null) setConn("down");
      return new Promise(function (resolve) {
        setTimeout(resolve, RETRY_MS);
      }).then(function () {
        return fetchRetrying(path, url);
      });
    });
  }

  // The answer to a request the page made before this script loaded (index.html), or a
  // new request if that one failed.
  function early(name, path, url) {
    var req = window.roadwatchEarly && window.roadwatchEarly[name];
    if (!req) return fetchRetrying(path, url);
    return req.then(function (res) {
      if (res.ok) return res.body;
      if (res.status === 401) toLogin();
      throw new Error(path + ": HTTP " + res.status);
    }).catch(function () {
      return fetchRetrying(path, url);
    });
  }

  // config.map.state's answer as get(id) -> {open, overdue, score}, undefined = calm.
  function stateOf(doc) {
    var st = (doc && doc.states) || {};
    return function (id) {
      var v = st[id];
      return v ? { open: v[0], overdue: v[1], score: v[2] } : undefined;
    };
  }

  // The first live state into feature state: only the segments with something open
  // (the others are calm, as the style draws a segment without state).
  function takeFeatureStates(doc) {
    var st = doc.states || {};
    Object.keys(st).forEach(function (id) {
      var v = st[id];
      map.setFeatureState(segmentKey(id), { open: v[0] | 0, overdue: v[1] | 0, score: v[2] != null ? Number(v[2]) : 100 });
    });
  }

  // ... and into the page's own books (every segment starts calm): counters, panel.
  function takeState(doc) {
    rw.lastSeq = Number(doc.seq) || 0;
    // Start the counters from the server's for the city's day, not from zero.
    takeStats(doc.stats);
    var get = stateOf(doc);
    totals.open = 0;
    totals.overdue = 0;
    Object.keys(doc.states || {}).forEach(function (id) {
      var s = segments.get(id), st = get(id);
      if (!s) return; // not a segment this page has
      s.open = st.open | 0;
      s.overdue = st.overdue | 0;
      s.score = st.score != null ? Number(st.score) : 100;
      totals.open += s.open;
      totals.overdue += s.overdue;
    });
    renderHeader();
  }

  function loadCategories() {
    return fetchJSON("/api/categories").then(function (names) {
      categoryNames = names || {};
      renderHeader();
      renderTicker();
    }).catch(function (err) {
      console.warn("roadwatch: category names not loaded", err);
    });
  }

  // The snapshot's counters of the city's day (same transaction as its seq, so
  // the events after that seq count on top without counting anything twice).
  function takeStats(st) {
    stats.reports_today = 0;
    stats.rectified_today = 0;
    stats.categories = {};
    stats.districts = {};
    if (!st || st.day !== dayKey(new Date())) return;
    stats.reports_today = Number(st.reports_today) || 0;
    stats.rectified_today = Number(st.rectified_today) || 0;
    stats.categories = st.categories || {};
    stats.districts = st.districts || {};
  }

  // Back to live after a replay: every segment to its live state, then resync.
  function reloadLive() {
    return fetchJSON(mapCfg.state, true).then(function (doc) {
      rw.lastSeq = Number(doc.seq) || 0;
      takeStats(doc.stats);
      resetSegments(stateOf(doc));
      reports.clear();
      ticker = [];
      renderTicker();
      scheduleReports(0);
    });
  }

  // Set every segment's state (get(id) -> {open, overdue, score} or undefined = calm).
  function resetSegments(get) {
    totals.open = 0;
    totals.overdue = 0;
    Object.keys(stats.districts).forEach(function (d) {
      stats.districts[d].open = 0;
      stats.districts[d].overdue = 0;
    });
    segments.forEach(function (s, id) {
      var st = get(id) || {};
      var open = st.open | 0, overdue = st.overdue | 0;
      var score = st.score != null ? Number(st.score) : 100;
      if (s.open !== open || s.overdue !== overdue || s.score !== score) {
        dirtySegments.set(id, { open: open, overdue: overdue, score: score });
      }
      s.open = open;
      s.overdue = overdue;
      s.score = score;
      totals.open += open;
      totals.overdue += overdue;
      if (s.props.district) {
        var row = districtRow(s.props.district);
        row.open += open;
        row.overdue += overdue;
      }
    });
    commitFrame();
  }

  // --------------------------------------------------------------- replay
  var player = (rw._player = { events: [], start: 0, end: 0, t: 0, next: 0, playing: false, baseState: {}, last: 0 });

  function replayRange() {
    var day = $("rw-replay-day").value || dayKey(new Date(Date.now() - 86400000));
    var start = zoneMidnight(day);
    var days = $("rw-replay-span").value === "week" ? 7 : 1;
    return [start, new Date(start.getTime() + days * 86400000)];
  }

  function fetchAllEvents(since, until) {
    var out = [];
    var url = "/api/events?limit=5000&since=" + encodeURIComponent(since.toISOString()) +
      "&until=" + encodeURIComponent(until.toISOString());
    var page = function (path) {
      return fetchJSON(path).then(function (doc) {
        (doc.items || []).forEach(function (item) {
          out.push({ at: Date.parse(item.at), kind: item.kind, payload: item.payload });
        });
        $("rw-replay-count").textContent = numFmt.format(out.length) + " " + t("events");
        if (doc.next && out.length < 500000) {
          // `next` is absolute; keep it on this origin and root
          var u = new URL(doc.next, location.href);
          return page(u.pathname.slice(root.length) + u.search);
        }
        return out;
      });
    };
    return page(url);
  }

  function enterReplay() {
    if (mode !== "replay") {
      mode = "replay";
      rw.replay.active = true;
      $("rw-count-reports").previousElementSibling.setAttribute("data-i18n", "reports_replay");
      applyLanguage();
      if (socket) socket.disconnect();
      setConn("replay");
      document.body.classList.add("rw-replaying");
    }
    $("rw-replay").hidden = false;
    if (!$("rw-replay-day").value) $("rw-replay-day").value = dayKey(new Date(Date.now() - 86400000));
  }

  function loadReplay() {
    var range = replayRange();
    pause();
    $("rw-replay-count").textContent = t("loading");
    return Promise.all([
      fetchJSON("/api/replay/state?at=" + encodeURIComponent(range[0].toISOString())),
      fetchAllEvents(range[0], range[1]),
    ]).then(function (res) {
      var base = {};
      (res[0].states || []).forEach(function (s) { base[String(s.segment_id)] = s; });
      player.baseState = base;
      player.events = res[1];
      player.start = range[0].getTime();
      player.end = range[1].getTime();
      rw.replay.loaded = player.events.length;
      seek(player.start);
      return player.events.length;
    });
  }

  // Back to the state at the start, then apply every event up to time `to`.
  function seek(to) {
    if (to < player.t || player.next === 0 || to === player.start) {
      player.next = 0;
      rw.replay.applied = 0;
      rw.replay.reportOrder = [];
      reports.clear();
      reportsDirty = true; // off the map too
      ticker = [];
      stats.reports_today = 0;
      stats.rectified_today = 0;
      stats.categories = {};
      Object.keys(stats.districts).forEach(function (d) { stats.districts[d].reports_today = 0; });
      resetSegments(function (id) { return player.baseState[id]; });
    }
    player.t = to;
    advanceTo(to);
  }

  function advanceTo(to) {
    var ev = player.events;
    while (player.next < ev.length && ev[player.next].at <= to) {
      var e = ev[player.next++];
      var h = handlers[e.kind];
      if (h) h(e.payload, Date.now());
      if (e.kind === "report") rw.replay.reportOrder.push(String(e.payload.id));
      rw.replay.applied = player.next;
    }
    commitFrame();
    renderTicker();
    var frac = player.end > player.start ? (to - player.start) / (player.end - player.start) : 0;
    $("rw-replay-slider").value = String(Math.round(Math.min(1, Math.max(0, frac)) * 1000));
    $("rw-replay-time").textContent = dayTime(new Date(to));
  }

  function tick(now) {
    if (!player.playing) return;
    var dt = Math.min(250, now - player.last);
    player.last = now;
    var speed = Number($("rw-replay-speed").value) || 900;
    var to = Math.min(player.end, player.t + dt * speed);
    player.t = to;
    advanceTo(to);
    if (to >= player.end) pause();
    else requestAnimationFrame(tick);
  }

  function play() {
    if (!player.events && !player.end) return;
    if (player.t >= player.end) seek(player.start);
    player.playing = true;
    player.last = performance.now();
    $("rw-replay-play").textContent = t("pause");
    requestAnimationFrame(tick);
  }

  function pause() {
    player.playing = false;
    $("rw-replay-play").textContent = t("play");
  }

  function backToLive() {
    pause();
    player.events = [];
    player.end = 0;
    rw.replay.active = false;
    $("rw-count-reports").previousElementSibling.setAttribute("data-i18n", "reports_today");
    applyLanguage();
    $("rw-replay").hidden = true;
    document.body.classList.remove("rw-replaying");
    return reloadLive().then(function () {
      mode = "live";
      setConn("connecting");
      socket.connect(); // its connect handler resyncs from the snapshot's seq
    });
  }

  $("rw-replay-open").addEventListener("click", enterReplay);
  $("rw-replay-load").addEventListener("click", function () {
    loadReplay().then(play);
  });
  $("rw-replay-play").addEventListener("click", function () {
    if (player.playing) pause();
    else if (!player.end) loadReplay().then(play);
    else play();
  });
  $("rw-replay-slider").addEventListener("input", function (e) {
    if (!player.end) return;
    var frac = Number(e.target.value) / 1000;
    seek(player.start + frac * (player.end - player.start));
  });
  $("rw-replay-live").addEventListener("click", backToLive);
  rw.replayDay = function (day, span, speed) {
    enterReplay();
    $("rw-replay-day").value = day;
    $("rw-replay-span").value = span || "day";
    if (speed) $("rw-replay-speed").value = String(speed);
    return loadReplay();
  };
  rw.play = play;
  rw.pause = pause;
  rw.backToLive = backToLive;

  // --------------------------------------------------- big-screen rotation
  var rotation = -1; // -1: the whole city
  function renderDistrictCard() {
    var card = $("rw-district-card");
    if (!screenMode) {
      card.hidden = true;
      return;
    }
    var code = rotation >= 0 && districtViews[rotation] ? districtViews[rotation].code : null;
    var row = code ? stats.districts[code] || {} : { reports_today: stats.reports_today, open: totals.open, overdue: totals.overdue };
    card.querySelector('[data-field="name"]').textContent = code ? districtName(code) : t("city");
    card.querySelector('[data-field="reports"]').textContent = numFmt.format(row.reports_today || 0);
    card.querySelector('[data-field="open"]').textContent = numFmt.format(row.open || 0);
    card.querySelector('[data-field="overdue"]').textContent = numFmt.format(row.overdue || 0);
    card.hidden = false;
  }
  function rotate() {
    if (!drawn || pinnedId != null || mode !== "live") return;
    var n = districtViews.length;
    if (n < 2) return; // a district user: their district only, nothing to rotate
    rotation = rotation + 1 >= n ? -1 : rotation + 1;
    var b = rotation >= 0 ? districtViews[rotation].bounds : cityBounds;
    if (overlays) map.setFilter("districts-focus", ["==", ["get", "code"], rotation >= 0 ? districtViews[rotation].code : ""]);
    if (b) map.fitBounds(b, { padding: mapPadding(), duration: 1500 });
    renderDistrictCard();
  }
  if (screenMode) setInterval(rotate, ROTATE_MS);
  rw.rotate = rotate;

  // ---------------------------------------------------------------- start
  // The first live state is in the page itself (config.state; asked for if not); the
  // segments' attributes and the district outlines were asked for by index.html before
  // this script loaded; the map's worker fetches the tiles itself.
  var stateReq = config.state ? Promise.resolve(config.state) : fetchRetrying(mapCfg.state, true);
  var tableReq = early("table", mapCfg.table, true);
  var districtsReq = early("districts", "/api/districts");
  maplibregl.prewarm(); // the map's worker boots while the map sets up
  // The live feed's handshake too (its first resync waits for the state's seq).
  connect();

  map = rw._map = new maplibregl.Map({
    container: "rw-map",
    style: mapStyle(),
    // No glyphs URL (no font server): text is drawn with local fonts.
    validateStyle: false,
    fadeDuration: 0, // no symbol fade-in: every fade is several more full redraws
    localIdeographFontFamily: "'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', sans-serif",
    // The network's own extent: the first frame is already the final view.
    bounds: cityBounds || undefined,
    fitBoundsOptions: { padding: mapPadding() },
    center: cityBounds ? undefined : [113.66, 34.76],
    zoom: cityBounds ? undefined : 10.5,
    attributionControl: false,
    dragRotate: false,
    pitchWithRotate: false,
    touchPitch: false,
    renderWorldCopies: false,
  });
  map.touchZoomRotate.disableRotation();
  if (!screenMode) map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  map.addControl(new maplibregl.AttributionControl({ compact: false }), "bottom-right");
  segmentPointer();
  map.on("render", onMapRender);
  map.on("render", onCountsRender);
  map.on("data", onReportsData);
  map.on("moveend", function () {
    countsDirty = true; // the clusters of another zoom
  });

  applyLanguage();

  var styleLoaded = new Promise(function (resolve) {
    map.once("style.load", resolve);
  });
  districtsReq.then(addDistrictNames);

  // The live state goes into feature state as soon as the style can take it (the map
  // needs no more than the segment ids for that); "drawn" is the first idle map (every
  // tile of the view loaded and drawn) after that.
  Promise.all([stateReq, styleLoaded]).then(function (res) {
    takeFeatureStates(res[0]);
    mark("states");
    map.once("idle", function () {
      drawn = true;
      mark("drawn");
      checkReady();
      districtsReq.then(addOverlays);
      loadChiefs();
    });
    map.triggerRepaint(); // an idle comes even if nothing changed
  });
  // The live feed resyncs from the state's seq; what it replays waits (in seq order) for
  // the segments' attributes, as do the counters and the panel.
  stateReq.then(function (doc) {
    rw.lastSeq = Number(doc.seq) || 0;
    snapshotIn = true;
    if (socket.connected) resync();
  });
  Promise.all([stateReq, tableReq]).then(function (res) {
    mark("table");
    takeTable(res[1]);
    takeState(res[0]);
    tableIn = true;
    scheduleFrame();
    checkReady();
    loadCategories();
  });
})();
