/* roadwatch command centre: live map (路长制 指挥中心).
 *
 * Data flow
 *   1. GET /api/districts and GET /api/segments (GeoJSON). The segments
 *      snapshot carries a top-level "seq": the last event it includes.
 *   2. Draw districts, segments (GeoJSON source, promoteId "id") and reports.
 *   3. Connect Socket.IO (namespace config.namespace, path config.socketio_path).
 *      On EVERY connect emit `resync {since: lastSeq}`; the server replays what
 *      was missed (same event names, seq order) and then acks.
 *   4. Apply `report` / `segment` events exactly once: an event whose seq is
 *      <= lastSeq is ignored. Segment state changes go through setFeatureState;
 *      reports are coalesced into one setData at most every REPORT_FLUSH_MS.
 *
 * Config (JSON in #rw-config): socketio_path, namespace; optional timezone
 * (default Asia/Shanghai), attribution, socketio_auth (Socket.IO `auth`).
 *
 * Test hooks on window.roadwatch: ready, segmentCount, lastSeq, reportsSeen,
 * connected, featureState(segmentId), timings; _map is the maplibregl.Map
 * (internal, for tests and the console).
 */
(function () {
  "use strict";

  var REPORT_CAP = 2000; // most recent reports kept on the map
  var REPORT_FLUSH_MS = 250; // at most one reports setData per this interval
  var FRESH_MS = 6000; // a new report is highlighted this long
  var RESYNC_ACK_TIMEOUT_MS = 15000;
  var RETRY_MS = 3000; // snapshot fetch retry

  var config = JSON.parse(document.getElementById("rw-config").textContent || "{}");
  var root = document.body.getAttribute("data-root") || "";
  var timezone = config.timezone || "Asia/Shanghai";
  var attribution = config.attribution || "roadwatch 示例路网 (generated)";

  // ---------------------------------------------------------------- state
  var segments = new Map(); // id -> {props, open, overdue, score}
  var totals = { open: 0, overdue: 0 };
  var reports = new Map(); // report id -> GeoJSON feature, insertion order = age
  var reportsToday = 0;
  var today = dayKey(new Date());
  var map = null;
  var socket = null;
  var drawn = false;
  var resynced = false;
  var hoveredId = null;
  var pinnedId = null;
  var shownId = null;

  var rw = (window.roadwatch = {
    ready: false,
    segmentCount: 0,
    lastSeq: 0,
    reportsSeen: 0,
    connected: false,
    timings: {}, // ms since navigation start: snapshot, drawn, resynced, ready
    featureState: function (segmentId) {
      if (!map || !map.getSource("segments")) return null;
      return map.getFeatureState({ source: "segments", id: String(segmentId) });
    },
  });

  // -------------------------------------------------------------- helpers
  var $ = function (id) {
    return document.getElementById(id);
  };
  var numFmt = new Intl.NumberFormat("zh-CN");
  var dayFmt = null;

  // "YYYY-MM-DD" of a date in the configured time zone.
  function dayKey(date) {
    try {
      dayFmt = dayFmt || new Intl.DateTimeFormat("en-CA", { timeZone: timezone });
      return dayFmt.format(date);
    } catch (e) {
      return date.toISOString().slice(0, 10);
    }
  }

  function mark(name) {
    rw.timings[name] = Math.round(performance.now());
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
  };

  function fetchJSON(path) {
    return fetch(root + path, { headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return r.json();
    });
  }

  // Big screens often boot before the server: keep trying.
  function fetchSnapshot() {
    return Promise.all([fetchJSON("/api/districts"), fetchJSON("/api/segments")]).catch(
      function (err) {
        console.warn("roadwatch: snapshot failed, retrying", err);
        return new Promise(function (resolve) {
          setTimeout(resolve, RETRY_MS);
        }).then(fetchSnapshot);
      }
    );
  }

  // ----------------------------------------------------------- header UI
  var headerQueued = false;
  function renderHeader() {
    if (headerQueued) return;
    headerQueued = true;
    requestAnimationFrame(function () {
      headerQueued = false;
      $("rw-count-segments").textContent = numFmt.format(rw.segmentCount);
      $("rw-count-reports").textContent = numFmt.format(reportsToday);
      $("rw-count-open").textContent = numFmt.format(totals.open);
      $("rw-count-overdue").textContent = numFmt.format(totals.overdue);
    });
  }

  function setConn(state, text) {
    var el = $("rw-conn");
    el.setAttribute("data-state", state);
    el.querySelector(".rw-conn-text").textContent = text;
  }

  function rollDay() {
    var k = dayKey(new Date());
    if (k !== today) {
      today = k;
      reportsToday = 0;
      renderHeader();
    }
  }
  setInterval(rollDay, 60000);

  // ------------------------------------------------------- segment panel
  function showSegment(id) {
    var s = id != null ? segments.get(id) : null;
    var panel = $("rw-segment");
    shownId = s ? id : null;
    if (!s) {
      panel.hidden = true;
      return;
    }
    var p = s.props;
    var set = function (field, text, cls) {
      var el = panel.querySelector('[data-field="' + field + '"]');
      el.textContent = text;
      el.className = cls || "";
    };
    set("name", p.name || p.road || id);
    set("id", id);
    set("span", p.from || p.to ? (p.from || "?") + " 至 " + (p.to || "?") : "—");
    set("district", [p.district, p.subdistrict].filter(Boolean).join(" · ") || "—");
    set("chief", p.chief && p.chief.name ? p.chief.name + (p.chief.id ? "（" + p.chief.id + "）" : "") : "未指定");
    set("open", String(s.open), s.open > 0 ? "rw-hot" : "");
    set("overdue", String(s.overdue), s.overdue > 0 ? "rw-overdue" : "");
    set("length", p.length_m != null ? numFmt.format(Math.round(p.length_m)) + " 米" : "—");
    panel.hidden = false;
  }

  function setHover(id) {
    if (id === hoveredId) return;
    if (hoveredId != null) map.setFeatureState({ source: "segments", id: hoveredId }, { hover: false });
    hoveredId = id;
    if (id != null) map.setFeatureState({ source: "segments", id: id }, { hover: true });
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
    var hover = ["boolean", ["feature-state", "hover"], false];
    var weight = ["case", hover, 2.6, [">", overdue, 0], 2.4, [">=", open, 3], 2.4, [">=", open, 1], 1.8, 1];
    return [
      {
        id: "segments",
        type: "line",
        source: "segments",
        layout: { "line-cap": "round", "line-join": "round" },
        paint: {
          "line-color": [
            "case",
            hover, palette.segHover,
            [">", overdue, 0], palette.segOverdue,
            [">=", open, 3], palette.segMany,
            [">=", open, 2], palette.segTwo,
            [">=", open, 1], palette.segOne,
            palette.segCalm,
          ],
          "line-opacity": ["case", ["any", hover, [">", open, 0], [">", overdue, 0]], 1, 0.75],
          "line-width": ["interpolate", ["exponential", 1.5], ["zoom"],
            10, ["*", weight, 1.2],
            13, ["*", weight, 2.2],
            17, ["*", weight, 8]],
        },
      },
      {
        // invisible, wider copy: easier to hover than a 1 px line
        id: "segments-hit",
        type: "line",
        source: "segments",
        paint: { "line-color": "#000", "line-opacity": 0, "line-width": 12 },
      },
    ];
  }

  function reportLayers() {
    var sev = ["to-number", ["get", "severity"], 1];
    var color = ["match", sev, 3, palette.sev3, 2, palette.sev2, palette.sev1];
    return [
      {
        id: "reports-fresh",
        type: "circle",
        source: "reports",
        filter: ["==", ["get", "fresh"], true],
        paint: {
          "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, 8, 16, 18],
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
        paint: {
          "circle-radius": ["interpolate", ["linear"], ["zoom"],
            10, ["+", 2, sev],
            16, ["+", 5, ["*", 2, sev]]],
          "circle-color": color,
          "circle-opacity": 0.9,
          "circle-stroke-color": ["case", ["==", ["get", "status"], "needs_review"], "#ffffff", palette.mapBg],
          "circle-stroke-width": ["case", ["==", ["get", "status"], "needs_review"], 1.5, 0.5],
        },
      },
    ];
  }

  function lineBounds(features) {
    var b = [Infinity, Infinity, -Infinity, -Infinity];
    var visit = function (c) {
      if (typeof c[0] === "number") {
        if (c[0] < b[0]) b[0] = c[0];
        if (c[1] < b[1]) b[1] = c[1];
        if (c[0] > b[2]) b[2] = c[0];
        if (c[1] > b[3]) b[3] = c[1];
      } else {
        for (var i = 0; i < c.length; i++) visit(c[i]);
      }
    };
    features.forEach(function (f) {
      if (f.geometry) visit(f.geometry.coordinates);
    });
    return b[0] <= b[2] ? [[b[0], b[1]], [b[2], b[3]]] : null;
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

  function addDistricts(fc) {
    map.addSource("districts", { type: "geojson", data: fc });
    map.addLayer({
      id: "districts-fill",
      type: "fill",
      source: "districts",
      paint: { "fill-color": palette.districtFill, "fill-opacity": 0.06 },
    });
    map.addLayer({
      id: "districts-line",
      type: "line",
      source: "districts",
      paint: { "line-color": palette.districtLine, "line-width": 1.2, "line-dasharray": [3, 2] },
    });
    // Names as HTML markers: MapLibre text would need glyph PBFs from a server.
    (fc.features || []).forEach(function (f) {
      var p = f.geometry && labelPoint(f.geometry);
      var name = f.properties && f.properties.name;
      if (!p || !name) return;
      var el = document.createElement("div");
      el.className = "rw-district-label";
      el.textContent = name;
      new maplibregl.Marker({ element: el }).setLngLat(p).addTo(map);
    });
  }

  function addSegments(fc) {
    var features = fc.features || [];
    var slim = new Array(features.length);
    var totalOpen = 0, totalOverdue = 0;
    for (var i = 0; i < features.length; i++) {
      var f = features[i];
      var props = f.properties || {};
      var id = String(props.id != null ? props.id : f.id);
      var st = props.state || {};
      var s = { props: props, open: st.open | 0, overdue: st.overdue | 0, score: st.score };
      segments.set(id, s);
      totalOpen += s.open;
      totalOverdue += s.overdue;
      // Only what the style needs goes to the map worker; the rest stays here.
      slim[i] = {
        type: "Feature",
        geometry: f.geometry,
        properties: { id: id, open: s.open, overdue: s.overdue },
      };
    }
    totals.open = totalOpen;
    totals.overdue = totalOverdue;
    map.addSource("segments", {
      type: "geojson",
      data: { type: "FeatureCollection", features: slim },
      promoteId: "id",
      attribution: attribution,
    });
    segmentLayers().forEach(function (l) {
      map.addLayer(l);
    });

    var bounds = lineBounds(features);
    if (bounds) {
      var c = map.getContainer();
      var side = Math.min(340, c.clientWidth * 0.3);
      map.fitBounds(bounds, { padding: { top: 30, bottom: 30, left: 30, right: side }, duration: 0 });
    }
    rw.segmentCount = segments.size;
    renderHeader();

    map.on("mousemove", "segments-hit", function (e) {
      var f = e.features && e.features[0];
      setHover(f ? String(f.id) : null);
    });
    map.on("mouseleave", "segments-hit", function () {
      setHover(null);
    });
    map.on("click", function (e) {
      var hits = map.queryRenderedFeatures(e.point, { layers: ["segments-hit"] });
      pinnedId = hits.length ? String(hits[0].id) : null;
      showSegment(pinnedId != null ? pinnedId : hoveredId);
    });
  }

  function addReports() {
    map.addSource("reports", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    reportLayers().forEach(function (l) {
      map.addLayer(l);
    });
  }

  // ------------------------------------------------------------- reports
  var flushTimer = null;
  var lastFlush = 0;

  function scheduleReports(delay) {
    if (flushTimer !== null) return;
    var wait = delay != null ? delay : Math.max(0, lastFlush + REPORT_FLUSH_MS - Date.now());
    flushTimer = setTimeout(flushReports, wait);
  }

  function flushReports() {
    flushTimer = null;
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
    if (nextExpiry !== Infinity) scheduleReports(Math.max(REPORT_FLUSH_MS, nextExpiry + 20));
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

  function applySegment(ev) {
    var id = String(ev.segment_id);
    var s = segments.get(id);
    var open = ev.open | 0, overdue = ev.overdue | 0;
    if (s) {
      totals.open += open - s.open;
      totals.overdue += overdue - s.overdue;
      s.open = open;
      s.overdue = overdue;
      s.score = ev.score;
    }
    map.setFeatureState({ source: "segments", id: id }, { open: open, overdue: overdue, score: ev.score });
    if (shownId === id) showSegment(id);
    renderHeader();
  }

  function applyReport(ev) {
    rw.reportsSeen += 1;
    rollDay();
    var received = ev.received_at ? new Date(ev.received_at) : new Date();
    if (dayKey(isNaN(received) ? new Date() : received) === today) reportsToday += 1;
    renderHeader();

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
        arrived: Date.now(),
        fresh: true,
      },
    });
    if (reports.size > REPORT_CAP) {
      var drop = reports.size - REPORT_CAP;
      var it = reports.keys();
      for (var i = 0; i < drop; i++) reports.delete(it.next().value);
    }
    scheduleReports();
  }

  function noop() {}

  // Events of the /live stream. `case` and `ranking` are not shown yet (a later
  // issue); they still advance lastSeq so that a resync does not replay them.
  var handlers = { report: applyReport, segment: applySegment, case: noop, ranking: noop };

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
  var snapshotIn = false;

  function onEvent(name, payload) {
    if (syncing) {
      held.push([name, payload]);
    } else if (accept(name, payload)) {
      handlers[name](payload);
    }
  }

  function releaseHeld() {
    syncing = false;
    var batch = held;
    held = [];
    batch.sort(function (a, b) {
      return (Number(a[1] && a[1].seq) || 0) - (Number(b[1] && b[1].seq) || 0);
    });
    batch.forEach(function (e) {
      onEvent(e[0], e[1]);
    });
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
    var opts = { path: socketPath() };
    if (config.socketio_auth) opts.auth = config.socketio_auth;
    socket = io(config.namespace || "/live", opts);

    Object.keys(handlers).forEach(function (name) {
      socket.on(name, function (payload) {
        onEvent(name, payload);
      });
    });

    socket.on("connect", function () {
      connGen += 1;
      syncing = true;
      rw.connected = true;
      setConn("live", "实时");
      $("rw-conn").title = "";
      if (snapshotIn) resync();
    });
    socket.on("disconnect", function (reason) {
      connGen += 1;
      syncing = true;
      rw.connected = false;
      setConn("down", "断开 · 重连中");
      if (reason === "io server disconnect") socket.connect(); // server kicked us: try again
    });
    socket.on("connect_error", function (err) {
      rw.connected = false;
      setConn("down", "断开 · 重连中");
      $("rw-conn").title = String((err && err.message) || err);
      // refused by the server (e.g. auth): socket.io gives up, we do not
      if (!socket.active) setTimeout(function () { socket.connect(); }, RETRY_MS);
    });
  }

  function checkReady() {
    if (!rw.ready && drawn && resynced) {
      rw.ready = true;
      mark("ready");
    }
  }

  // ---------------------------------------------------------------- start
  map = rw._map = new maplibregl.Map({
    container: "rw-map",
    style: {
      version: 8,
      sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": palette.mapBg } }],
    },
    center: [113.66, 34.76],
    zoom: 10.5,
    attributionControl: false,
    dragRotate: false,
    pitchWithRotate: false,
    touchPitch: false,
    renderWorldCopies: false,
  });
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  map.addControl(new maplibregl.AttributionControl({ compact: false }), "bottom-right");

  connect();

  var mapLoaded = new Promise(function (resolve) {
    map.once("load", resolve);
  });

  Promise.all([fetchSnapshot(), mapLoaded]).then(function (res) {
    var districts = res[0][0], segs = res[0][1];
    mark("snapshot");
    rw.lastSeq = Number(segs.seq) || 0;
    // Start "today's reports" from the server's count for the city's day, not from zero.
    if (segs.stats && segs.stats.day === dayKey(new Date())) {
      reportsToday = Number(segs.stats.reports_today) || 0;
    }
    addDistricts(districts);
    addSegments(segs);
    addReports();
    map.once("idle", function () {
      drawn = true;
      mark("drawn");
      checkReady();
    });
    snapshotIn = true;
    if (socket.connected) resync();
  });
})();
