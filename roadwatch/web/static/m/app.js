/* 路长通: the road chief's phone app.
 *
 * Every report, rectification and patrol is first written to the IndexedDB outbox under
 * its UUID; a pump sends what is due (photos to /m/api/photos by SHA-256, then the message
 * over MQTT/WebSockets at QoS 1 while the broker is connected, otherwise at once over
 * HTTPS: POST /m/api/reports | rectifications | patrols, the same pipeline) and only the
 * platform's ack (on roadwatch/v1/acks/{me}, or the HTTP answer) settles an item: accepted,
 * or rejected with the platform's reason. A PUBACK only means "sent". Resending is always
 * safe: the platform dedupes by the UUID.
 *
 * Credentials: sign-in sends the password once and gets a device credential back (a random
 * token the server can revoke). Only that token is stored (IndexedDB) and sent (as a Bearer
 * header). The password stays in this page's memory for the broker login (MQTT needs a
 * password) and is gone on reload: the app then works over HTTPS alone until the chief signs
 * in again. See docs/security.md, "The phone app".
 */
"use strict";
(function () {
  const store = window.rwStore;
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids) if (kid) e.append(kid);
    return e;
  };

  const MQTT_SRC = document.currentScript.dataset.mqtt;
  const POLL_MS = 60000; // without the broker's notices, the case list is fetched this often
  const MAX_PATROL_POINTS = 2000; // roadwatch/cases/patrols.py MAX_POINTS
  const MAX_SIDE = 1600; // px, longest side of an uploaded photo
  const JPEG_QUALITY = 0.82;
  const MAX_INPUT_BYTES = 60 * 1024 * 1024; // refuse to decode anything larger
  const POOR_ACCURACY_M = 50;
  const STALE_FIX_MS = 60 * 1000;
  const FAR_OUTSIDE_DEG = 0.5; // ~50 km beyond the city's box
  const STATE_WORDS = { queued: "待发送", sent: "已发送，等待回执", accepted: "已受理", rejected: "被退回" };
  const KIND_WORDS = { report: "问题上报", rectification: "整改反馈", patrol: "巡查" };
  const fmt = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai", month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
  const when = (iso) => (iso ? fmt.format(new Date(iso)) : "");

  // The password, for the broker login of this page only: never stored, never on `app`.
  let brokerPassword = null;

  const app = {
    auth: null, // {reporter_id, device_id, token, chief, config}: stored; never the password
    me: null, // /m/api/me
    fix: null, // {lat, lon, accuracy, at}
    mq: null,
    photos: [], // [{id, url}] attached to the report being written
    rectPhotos: [],
    rectCase: null,
    patrol: null, // {id, points: [], timer}
    pumping: false,
  };
  window.rwApp = app; // for the browser tests' eyes only

  // ------------------------------------------------------------------ utilities
  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function toast(text) {
    const t = $("#toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  function show(view) {
    for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${view}`;
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("on", b.dataset.view === view);
    if (view === "report") watchPosition();
  }

  function errorsText(errors) {
    return (errors || []).map((e) => e.message || e.code).join("；") || "平台未说明原因";
  }

  async function api(path, opts) {
    const headers = { ...((opts && opts.headers) || {}) };
    if (app.auth && app.auth.token) headers.Authorization = `Bearer ${app.auth.token}`;
    const res = await fetch(path, { credentials: "same-origin", ...opts, headers });
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    if (res.status === 401 && app.auth && path !== "/m/api/session") signedOut(body);
    return { res, body };
  }

  function retryAfterMs(res) {
    // Seconds or an HTTP date (RFC 9110); unreadable: a minute.
    const raw = res.headers.get("Retry-After");
    const secs = Number(raw);
    if (raw && Number.isFinite(secs)) return Math.max(1000, secs * 1000);
    const at = raw ? Date.parse(raw) : NaN;
    return Number.isFinite(at) ? Math.max(1000, at - Date.now()) : 60000;
  }

  // An answer that says "not now" (HTTP 429 or 503): wait as long as the server asks.
  function waitError(res) {
    const ms = retryAfterMs(res);
    app.holdUntil = Math.max(app.holdUntil || 0, Date.now() + ms);
    const text = res.status === 429 ? "发送太频繁，服务器要求稍候" : "服务器暂时繁忙";
    return Object.assign(new Error(`${text}，${Math.ceil(ms / 1000)} 秒后自动重试`), { waitMs: ms });
  }

  // ------------------------------------------------------------------ sign-in
  async function signIn(id, password) {
    const { res, body } = await api("/m/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ reporter_id: id, password }),
    });
    if (!res.ok) throw Object.assign(new Error(errorsText(body && body.errors)), { status: res.status });
    app.auth = { reporter_id: body.chief.id, device_id: body.device.id, token: body.device.token,
      chief: body.chief, config: body.config };
    brokerPassword = password; // memory only, for this page's broker login
    await store.setMeta("auth", app.auth);
  }

  function signedOut(body) {
    // The device credential was revoked (sign-out elsewhere, a new password, an admin) or the
    // account disabled: ask again. The outbox stays and is sent after the next sign-in.
    if (!app.auth) return;
    app.auth = null;
    brokerPassword = null;
    disconnect();
    store.setMeta("auth", null);
    $("#tabs").hidden = true;
    show("signin");
    setNet(navigator.onLine ? "online" : "offline", navigator.onLine ? "请登录" : "离线");
    $("#signin-error").textContent = errorsText(body && body.errors);
  }

  function ready() {
    window.__rwReadyAt = performance.now(); // the shell is usable: what the budget test times
    window.__rwReady = true;
  }

  async function start() {
    app.auth = await store.meta("auth");
    app.me = await store.meta("me");
    if (app.auth && !app.auth.token) {
      // Stored by an older version of this app, with the password: trade it for a device
      // credential once, then forget it. Offline, or refused: sign in by hand.
      const old = app.auth;
      app.auth = null;
      await store.setMeta("auth", null);
      if (old.password && navigator.onLine) {
        try { await signIn(old.reporter_id, old.password); } catch (_) { app.auth = null; }
      }
    }
    if (!app.auth) {
      show("signin");
      ready();
      return;
    }
    enterApp();
    ready();
    refresh();
  }

  function enterApp() {
    $("#tabs").hidden = false;
    $("#who").textContent = app.auth.chief.name || app.auth.reporter_id;
    show("report");
    renderAll();
    connect();
    pump();
    store.meta("patrol").then((p) => { if (p && !app.patrol) startPatrol(p); }); // survived a reload
  }

  async function refresh() {
    if (!navigator.onLine || !app.auth) return;
    try {
      const { res, body } = await api("/m/api/session");
      if (res.status === 401) { signedOut(body); return; }
      if (res.ok && app.auth) {
        app.auth.config = body.config;
        await store.setMeta("auth", app.auth);
      }
      const me = await api("/m/api/me");
      if (me.res.ok && app.auth) {
        const before = new Set(((app.me && app.me.cases) || []).map((c) => c.id));
        const fresh = me.body.cases.filter((c) => !before.has(c.id));
        // Without the broker's notices, a new case in the list is the notice.
        if (app.me && fresh.length && !(app.mq && app.mq.connected)) {
          toast(`新案件：${fresh.map((c) => `${c.category_name} · ${c.segment_name || ""}`).join("；")}`);
        }
        app.me = me.body;
        await store.setMeta("me", app.me);
        renderAll();
      }
    } catch (_) { /* offline or server down: keep what we have */ }
  }

  // ------------------------------------------------------------------ MQTT
  function wsUrl() {
    const raw = (app.auth && app.auth.config.mqtt_ws_url) || "";
    return raw.replace("{host}", location.hostname);
  }

  function setNet(state, text) {
    const n = $("#net");
    n.dataset.state = state;
    n.textContent = text;
  }

  async function deviceId() {
    let id = await store.meta("device");
    if (!id) { id = uuid().slice(0, 8); await store.setMeta("device", id); }
    return id;
  }

  // MQTT.js is most of the JavaScript: load it after the shell is usable, not before.
  let mqttLoading = null;
  function loadMqtt() {
    if (window.mqtt) return Promise.resolve();
    if (!mqttLoading) {
      mqttLoading = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = MQTT_SRC;
        s.onload = resolve;
        s.onerror = () => { mqttLoading = null; reject(new Error("MQTT.js did not load")); };
        document.head.append(s);
      });
    }
    return mqttLoading;
  }

  function httpMode() {
    setNet(navigator.onLine ? "online" : "offline", navigator.onLine ? "在线 (HTTP)" : "离线");
  }

  async function connect() {
    if (app.mq || !app.auth) return;
    const url = wsUrl();
    // No broker, or no password in this page (after a reload): everything goes over HTTPS.
    if (!url || !brokerPassword) { httpMode(); return; }
    await loadMqtt().catch(() => null);
    if (app.mq || !app.auth || !brokerPassword) return; // connected or signed out meanwhile
    if (!window.mqtt) { httpMode(); return; }
    if (!navigator.onLine) { setNet("offline", "离线"); return; }
    const me = app.auth.reporter_id;
    const root = app.auth.config.topic_root;
    setNet("connecting", "连接中");
    const mq = window.mqtt.connect(url, {
      clientId: `m-${me}-${await deviceId()}`,
      username: me,
      password: brokerPassword,
      protocolVersion: 4,
      clean: false, // a persistent session: acks and notices wait for us while offline
      reconnectPeriod: 3000,
      connectTimeout: 8000,
      keepalive: 30,
      queueQoSZero: false,
    });
    app.mq = mq;
    mq.on("connect", () => {
      setNet("online", "在线");
      mq.subscribe([`${root}/acks/${me}`, `${root}/notices/${me}`], { qos: 1 }, () => pump());
    });
    mq.on("close", () => {
      // Meanwhile the outbox goes over HTTPS; the broker is retried in the background.
      if (app.mq === mq) setNet(navigator.onLine ? "online" : "offline", navigator.onLine ? "在线 (HTTP)" : "离线");
      pump();
    });
    mq.on("error", (err) => {
      if (/auth|Not authorized|Bad user/i.test(String(err && err.message))) {
        // The password was changed: stop trying it; HTTPS goes on with the device credential.
        brokerPassword = null;
        disconnect();
        httpMode();
      }
    });
    mq.on("message", (topic, payload) => {
      let body;
      try { body = JSON.parse(new TextDecoder().decode(payload)); } catch (_) { return; }
      if (topic.includes("/acks/")) onAck(body);
      else onNotice(body);
    });
  }

  function disconnect() {
    if (app.mq) { app.mq.end(true); app.mq = null; }
  }

  function publish(topic, body) {
    return new Promise((resolve, reject) => {
      if (!app.mq || !app.mq.connected) { reject(new Error("尚未连上服务器")); return; }
      // No PUBACK in time (the link dropped): the pump moves on and retries later.
      const timer = setTimeout(() => reject(new Error("服务器未确认收到")), 10000);
      app.mq.publish(topic, JSON.stringify(body), { qos: 1 }, (err) => {
        clearTimeout(timer);
        if (err) reject(err); else resolve();
      });
    });
  }

  function onNotice(body) {
    toast(`新通知：${body.message || body.kind || "有新的案件"}`);
    refresh();
  }

  async function onAck(ack) {
    const item = ack && ack.id ? await store.get("outbox", ack.id) : null;
    if (!item || item.state === "accepted" || item.state === "rejected") return;
    // A patrol's start/track messages share its id; only the end's ack settles it.
    if (item.kind === "patrol" && ack.status !== "rejected" && !("covered_segments" in ack)) return;
    settle(item, ack);
  }

  async function settle(item, ack) {
    item.ack = ack;
    item.updated_at = Date.now();
    if (ack.status === "rejected") {
      item.state = "rejected";
      item.reason = errorsText(ack.errors);
    } else {
      item.state = "accepted";
      item.reason = ack.status === "needs_review" ? "已收到，路段待人工核定" : null;
    }
    await store.put("outbox", item);
    renderOutbox();
    if (item.kind === "patrol" && item.state === "accepted") showCoverage(ack.covered_segments || []);
    if (item.kind === "rectification") refresh();
  }

  // ------------------------------------------------------------------ outbox pump
  const backoff = (tries) => Math.min(60000, 1000 * 2 ** Math.min(tries, 6)) * (0.8 + Math.random() * 0.4);
  const ackWait = (tries) => Math.min(120000, 15000 * 2 ** Math.min(tries, 3));

  async function enqueue(kind, payload, photoIds) {
    // A rectification also carries the report_id of its case: key each kind by its own id.
    const id = { report: payload.report_id, rectification: payload.rectification_id,
      patrol: payload.patrol_id }[kind];
    await store.put("outbox", {
      id, kind, payload, photo_ids: photoIds || [], state: "queued", reason: null,
      tries: 0, next_at: 0, created_at: Date.now(), updated_at: Date.now(), last_error: null,
    });
    renderOutbox();
    pump();
  }

  async function uploadPhoto(photoId) {
    const p = await store.get("photos", photoId);
    if (!p) throw Object.assign(new Error("照片在手机上找不到了"), { permanent: true });
    if (p.uploaded) return p.sha256;
    const form = new FormData();
    form.append("photo", p.blob, `${photoId}.jpg`);
    const { res, body } = await api("/m/api/photos", { method: "POST", body: form });
    if (res.status === 401) throw new Error("请重新登录后发送");
    if (res.status === 429 || res.status === 503) throw waitError(res);
    if (res.status >= 400 && res.status < 500) {
      throw Object.assign(new Error(`照片被拒收：${errorsText(body && body.errors)}`), { permanent: true });
    }
    if (!res.ok || !body || !body.sha256) throw new Error(`照片上传失败 (HTTP ${res.status})`);
    // The report names the photo by SHA-256: a mismatch means it was damaged on the way.
    if (p.sha256 && body.sha256 !== p.sha256) throw new Error("照片上传时损坏，将重新上传");
    p.uploaded = true;
    p.sha256 = body.sha256;
    await store.put("photos", p);
    return p.sha256;
  }

  async function attempt(item) {
    const me = app.auth.reporter_id;
    const root = app.auth.config.topic_root;
    const shas = [];
    for (const pid of item.photo_ids) shas.push(await uploadPhoto(pid));
    const body = item.kind === "patrol" ? item.payload : { ...item.payload, photos: shas };
    const word = { report: "reports", rectification: "rectifications", patrol: "patrols" }[item.kind];
    // Over the broker while it is connected; otherwise at once over HTTPS (no broker set up,
    // its WebSocket unreachable, or no password in this page): the same pipeline, and the
    // UUID makes a message sent both ways count once.
    if (app.mq && app.mq.connected) {
      await publish(`${root}/${word}/${me}`, body);
      const fresh = await store.get("outbox", item.id);
      if (fresh && fresh.state !== "accepted" && fresh.state !== "rejected") {
        fresh.state = "sent";
        fresh.sent_at = Date.now();
        fresh.next_at = Date.now() + ackWait(fresh.tries);
        fresh.tries += 1;
        fresh.last_error = null;
        await store.put("outbox", fresh);
      }
      return;
    }
    const { res, body: ack } = await api(`/m/api/${word}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (res.status === 401) throw new Error("请重新登录后发送");
    if (res.status === 429 || res.status === 503) throw waitError(res);
    if (ack && ack.status) { await settle(item, ack); return; }
    if (res.status >= 400 && res.status < 500 && ack && ack.errors) {
      await settle(item, { id: item.id, status: "rejected", errors: ack.errors });
      return;
    }
    throw new Error(`服务器暂时不可用 (HTTP ${res.status})`);
  }

  async function pump() {
    if (app.pumping || !app.auth) return;
    app.pumping = true;
    try {
      const items = (await store.all("outbox")).sort((a, b) => a.created_at - b.created_at);
      for (const item of items) {
        if (item.state !== "queued" && item.state !== "sent") continue;
        // Sent to a broker that has gone since: no ack will come that way, resend over HTTPS.
        const orphan = item.state === "sent" && !(app.mq && app.mq.connected);
        if (item.next_at > Date.now() && !orphan) continue;
        if (!navigator.onLine || !app.auth) break;
        if (app.holdUntil > Date.now()) break; // the server asked us to wait (Retry-After)
        try {
          await attempt(item);
        } catch (err) {
          const fresh = (await store.get("outbox", item.id)) || item;
          if (err.permanent) {
            // Refused for good (e.g. the photo): say so; the item stays until the chief acts.
            fresh.state = "rejected";
            fresh.reason = err.message;
          } else if (err.waitMs) {
            fresh.state = "queued";
            fresh.next_at = Date.now() + err.waitMs;
            fresh.last_error = err.message;
          } else {
            fresh.state = "queued";
            fresh.tries += 1;
            fresh.next_at = Date.now() + backoff(fresh.tries);
            fresh.last_error = err.message || String(err);
          }
          fresh.updated_at = Date.now();
          await store.put("outbox", fresh);
        }
      }
    } finally {
      app.pumping = false;
      renderOutbox();
    }
  }

  // ------------------------------------------------------------------ photos
  async function downscale(file) {
    if (!file.type.startsWith("image/")) throw new Error(`“${file.name}”不是图片`);
    if (file.size > MAX_INPUT_BYTES) throw new Error(`“${file.name}”太大（${(file.size / 1048576).toFixed(0)} MB），无法处理`);
    let bitmap;
    try { bitmap = await createImageBitmap(file); } catch (_) {
      throw new Error(`“${file.name}”无法读取，不是有效的图片`);
    }
    const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    const blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", JPEG_QUALITY));
    const limit = app.auth.config.max_photo_bytes;
    if (!blob) throw new Error(`“${file.name}”无法压缩`);
    if (blob.size > limit) throw new Error(`照片压缩后仍有 ${(blob.size / 1048576).toFixed(1)} MB，超过 ${(limit / 1048576).toFixed(0)} MB 上限`);
    let sha256 = null;
    if (crypto.subtle) {
      const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
      sha256 = [...new Uint8Array(digest)].map((x) => x.toString(16).padStart(2, "0")).join("");
    }
    return { blob, sha256, width: canvas.width, height: canvas.height };
  }

  async function addPhotos(files, list, thumbs, errBox) {
    errBox.textContent = "";
    for (const file of files) {
      try {
        const shot = await downscale(file);
        const id = uuid();
        await store.put("photos", { id, blob: shot.blob, sha256: shot.sha256, uploaded: false,
          width: shot.width, height: shot.height, created_at: Date.now() });
        list.push({ id, url: URL.createObjectURL(shot.blob) });
      } catch (err) {
        errBox.append(el("li", { text: err.message }));
      }
    }
    renderThumbs(list, thumbs);
  }

  function renderThumbs(list, box) {
    box.replaceChildren(...list.map((p, i) => el("figure", {},
      el("img", { src: p.url, alt: "照片" }),
      el("button", { type: "button", text: "×", "aria-label": "删除照片",
        onclick: () => { list.splice(i, 1); store.del("photos", p.id); renderThumbs(list, box); } }))));
  }

  // ------------------------------------------------------------------ position
  function watchPosition() {
    if (app.watch !== undefined || !navigator.geolocation) return;
    app.watch = navigator.geolocation.watchPosition(
      (pos) => {
        app.fix = { lat: pos.coords.latitude, lon: pos.coords.longitude,
          accuracy: pos.coords.accuracy, at: pos.timestamp || Date.now() };
        renderFix();
      },
      (err) => {
        $("#gps").textContent = err.code === 1 ? "未允许定位：请在设置中允许本应用使用位置" : "暂时无法定位，请到开阔处";
        $("#gps").dataset.quality = "none";
      },
      { enableHighAccuracy: true, maximumAge: 10000, timeout: 20000 },
    );
    app.fixTimer = setInterval(renderFix, 5000); // the fix ages even when none arrives
  }

  function outsideCity(lat, lon) {
    const b = app.auth && app.auth.config.city_bounds;
    if (!b) return false;
    const [w, s, e, n] = b;
    const m = FAR_OUTSIDE_DEG;
    return lon < w - m || lon > e + m || lat < s - m || lat > n + m;
  }

  function fixQuality() {
    const f = app.fix;
    if (!f) return "none";
    if (outsideCity(f.lat, f.lon)) return "outside";
    if (Date.now() - f.at > STALE_FIX_MS) return "stale";
    if (f.accuracy > POOR_ACCURACY_M) return "poor";
    return "good";
  }

  function renderFix() {
    const f = app.fix;
    const box = $("#gps");
    const q = fixQuality();
    box.dataset.quality = q;
    if (!f) return;
    const age = Math.round((Date.now() - f.at) / 1000);
    const base = `精度 ±${Math.round(f.accuracy)} 米 · ${age < 5 ? "刚刚" : `${age} 秒前`}`;
    box.textContent = {
      good: `已定位：${base}`,
      poor: `定位较差（${base}）：请在下面选择路段`,
      stale: `定位已过时（${base}）：请在下面选择路段`,
      outside: `位置远在城区之外（${f.lat.toFixed(4)}, ${f.lon.toFixed(4)}），请检查定位`,
    }[q];
    if ((q === "poor" || q === "stale") && navigator.onLine) loadNear(f);
    else if (q === "good") { $("#near").hidden = true; }
  }

  async function loadNear(f) {
    const key = `${f.lat.toFixed(4)},${f.lon.toFixed(4)}`;
    if (app.nearKey === key) return;
    app.nearKey = key;
    const radius = Math.min(1000, Math.max(150, f.accuracy * 1.5));
    try {
      const { res, body } = await api(`/m/api/segments/near?lat=${f.lat}&lon=${f.lon}&radius=${radius}`);
      if (!res.ok) return;
      const list = $("#near-list");
      list.replaceChildren(...body.items.map((s) => el("label", {},
        el("input", { type: "radio", name: "segment_hint", value: s.id }),
        el("span", { text: `${s.name}（约 ${Math.round(s.distance_m)} 米）` }))));
      $("#near").hidden = body.items.length === 0;
    } catch (_) { app.nearKey = null; }
  }

  // ------------------------------------------------------------------ report form
  function chooseCategory(code) {
    $("#category").value = code;
    for (const b of document.querySelectorAll("[data-cat]")) b.classList.toggle("on", b.dataset.cat === code);
    const cat = categoryByCode(code);
    $("#cat-chosen").textContent = cat ? `已选：${cat.name}` : "";
  }

  function categoryByCode(code) {
    for (const g of (app.me && app.me.categories.groups) || []) {
      for (const c of g.items) if (c.code === code) return c;
    }
    return null;
  }

  function renderCategories() {
    if (!app.me) return;
    const catButton = (c) => el("button", { type: "button", "data-cat": c.code, text: c.name,
      onclick: () => chooseCategory(c.code) });
    $("#cat-favourites").replaceChildren(...app.me.categories.favourites
      .map(categoryByCode).filter(Boolean).map(catButton));
    // A refresh must not fold up the group the chief has open.
    const wasOpen = new Set([...document.querySelectorAll("#cat-groups details[open]")].map((d) => d.dataset.group));
    const fresh = wasOpen.size === 0 && !document.querySelector("#cat-groups details");
    $("#cat-groups").replaceChildren(...app.me.categories.groups.map((g, i) => {
      const open = wasOpen.has(g.key) || (fresh && i === 0 && !app.me.categories.favourites.length);
      const d = el("details", { class: "group", "data-group": g.key, open },
        el("summary", { text: `${g.label}（${g.items.length}）` }));
      d.append(el("div", { class: "cat-grid" }, ...g.items.map(catButton)));
      return d;
    }));
    chooseCategory($("#category").value);
  }

  function checkReport() {
    const errors = [];
    const cat = $("#category").value.trim();
    if (!cat) errors.push("请选择问题类别");
    const q = fixQuality();
    const hint = document.querySelector("input[name=segment_hint]:checked");
    if (q === "none") errors.push("还没有定位：请稍候，或到开阔处");
    if (q === "outside") errors.push("位置远在城区之外，不能上报：请检查手机定位");
    if ((q === "poor" || q === "stale") && !hint && navigator.onLine && !$("#near").hidden) {
      errors.push("定位不准：请在“位置”下选择所在路段");
    }
    const note = $("#note").value;
    const maxNote = app.auth.config.max_note_chars;
    if (note.length > maxNote) errors.push(`备注太长：最多 ${maxNote} 字（现在 ${note.length} 字）`);
    return { errors, cat, hint: hint ? hint.value : null, note };
  }

  async function sendReport(ev) {
    ev.preventDefault();
    const { errors, cat, hint, note } = checkReport();
    const box = $("#report-errors");
    box.replaceChildren(...errors.map((t) => el("li", { text: t })));
    $("#report-done").textContent = "";
    if (errors.length) return;
    const f = app.fix;
    const sev = Number(document.querySelector("#severity button.on").dataset.v);
    const payload = {
      v: 1, report_id: uuid(), reporter_id: app.auth.reporter_id,
      observed_at: new Date().toISOString(), lat: f.lat, lon: f.lon, crs: "WGS84",
      accuracy_m: Math.round(f.accuracy * 10) / 10, category: cat, severity: sev,
      ...(note.trim() ? { note: note.trim() } : {}),
      ...(hint ? { segment_hint: hint } : {}),
      photos: [],
    };
    await enqueue("report", payload, app.photos.map((p) => p.id));
    app.photos = [];
    renderThumbs(app.photos, $("#photo-thumbs"));
    $("#note").value = "";
    chooseCategory("");
    $("#report-done").textContent = navigator.onLine ? "已保存，正在发送…" : "已保存在手机上，联网后自动发送";
  }

  // ------------------------------------------------------------------ my work
  function renderMap(covered) {
    const svg = $("#map");
    const feats = (app.me && app.me.segments.features) || [];
    const lines = feats.map((f) => f.geometry.coordinates);
    const pts = lines.flat();
    if (!pts.length) { svg.replaceChildren(); return; }
    const lons = pts.map((p) => p[0]);
    const lats = pts.map((p) => p[1]);
    const [w, e, s, n] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
    const k = Math.cos(((s + n) / 2) * Math.PI / 180);
    const width = Math.max((e - w) * k, 1e-4);
    const height = Math.max(n - s, 1e-4);
    const pad = Math.max(width, height) * 0.08;
    svg.setAttribute("viewBox", `${-pad} ${-pad} ${width + 2 * pad} ${height + 2 * pad}`);
    const xy = (p) => `${((p[0] - w) * k).toFixed(6)},${(n - p[1]).toFixed(6)}`;
    const strokeW = (Math.max(width, height) / 60).toFixed(6);
    const done = new Set(covered || app.covered || []);
    svg.replaceChildren(...feats.map((f) => {
      const pl = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      pl.setAttribute("points", f.geometry.coordinates.map(xy).join(" "));
      pl.setAttribute("stroke-width", strokeW);
      pl.dataset.segment = f.id;
      if (done.has(f.id)) pl.classList.add("covered");
      return pl;
    }));
    $("#seg-list").replaceChildren(...feats.map((f) => el("li", { text: f.properties.name || f.id })));
  }

  function renderCases() {
    const cases = (app.me && app.me.cases) || [];
    const list = $("#case-list");
    if (!cases.length) { list.replaceChildren(el("li", { text: "没有待办案件" })); return; }
    list.replaceChildren(...cases.map((c) => el("li", { "data-case": c.id },
      el("b", { text: c.category_name }), " ",
      el("span", { text: c.segment_name || c.segment_id || "" }),
      el("div", { class: c.overdue ? "overdue" : "", text: c.due_at ? `期限 ${when(c.due_at)}${c.overdue ? "（已超期）" : ""}` : "无期限" }),
      c.note ? el("div", { class: "hint", text: c.note }) : null,
      c.status === "rectified" ? el("div", { class: "ok", text: "已整改，待核查" })
        : el("button", { type: "button", text: "整改反馈", onclick: () => openRectify(c) }))));
  }

  function openRectify(c) {
    app.rectCase = c;
    app.rectPhotos = [];
    renderThumbs(app.rectPhotos, $("#rect-thumbs"));
    $("#rect-case").textContent = `${c.category_name} · ${c.segment_name || ""} · 上报于 ${when(c.observed_at)}`;
    $("#rect-errors").replaceChildren();
    $("#rect-note").value = "";
    show("rectify");
  }

  async function sendRectify() {
    const c = app.rectCase;
    const errors = [];
    if (c.photo_required && app.rectPhotos.length === 0) errors.push("请拍一张整改后的照片");
    $("#rect-errors").replaceChildren(...errors.map((t) => el("li", { text: t })));
    if (errors.length) return;
    const f = app.fix;
    const payload = {
      v: 1, rectification_id: uuid(), report_id: c.id, reporter_id: app.auth.reporter_id,
      done_at: new Date().toISOString(), crs: "WGS84",
      ...(f ? { lat: f.lat, lon: f.lon } : {}),
      ...($("#rect-note").value.trim() ? { note: $("#rect-note").value.trim() } : {}),
      photos: [],
    };
    await enqueue("rectification", payload, app.rectPhotos.map((p) => p.id));
    app.rectPhotos = [];
    toast("整改反馈已保存，正在发送");
    show("work");
  }

  // ------------------------------------------------------------------ patrol
  function patrolPoint() {
    // Sample the watched fix; a fix already recorded (GPS stalled) adds no fake point.
    const f = app.fix;
    const p = app.patrol;
    if (!p || !f || f.at === p.lastAt) return;
    p.lastAt = f.at;
    const pt = { t: new Date(f.at).toISOString(), lat: f.lat, lon: f.lon,
      accuracy_m: Math.round(f.accuracy * 10) / 10 };
    p.points.push(pt);
    p.unsent.push(pt);
    store.setMeta("patrol", { id: p.id, points: p.points });
    $("#patrol-points").textContent = String(p.points.length);
    if (p.points.length >= MAX_PATROL_POINTS) {
      // The platform takes at most this many points in one message: end here, lose nothing.
      toast(`巡查已满 ${MAX_PATROL_POINTS} 个轨迹点，已自动结束；可再开始一次`);
      stopPatrol();
      return;
    }
    // Live track while connected (best effort); the end message carries every point.
    if (p.unsent.length >= 10 && app.mq && app.mq.connected) {
      const points = p.unsent.splice(0);
      publish(`${app.auth.config.topic_root}/patrols/${app.auth.reporter_id}`, {
        v: 1, patrol_id: p.id, reporter_id: app.auth.reporter_id,
        state: "track", crs: "WGS84", points,
      }).catch(() => null);
    }
  }

  function startPatrol(resume) {
    app.patrol = { id: resume ? resume.id : uuid(), points: resume ? resume.points : [], unsent: [] };
    store.setMeta("patrol", { id: app.patrol.id, points: app.patrol.points });
    const every = Math.max(200, app.auth.config.patrol_interval_s * 1000);
    watchPosition();
    patrolPoint();
    app.patrol.timer = setInterval(patrolPoint, every);
    $("#patrol-toggle").textContent = "结束巡查";
    $("#patrol-points").textContent = String(app.patrol.points.length);
    $("#patrol-result").textContent = "巡查中…";
  }

  async function stopPatrol() {
    const p = app.patrol;
    clearInterval(p.timer);
    app.patrol = null;
    await store.setMeta("patrol", null);
    $("#patrol-toggle").textContent = "开始巡查";
    await enqueue("patrol", {
      v: 1, patrol_id: p.id, reporter_id: app.auth.reporter_id, state: "end", crs: "WGS84",
      points: p.points,
    });
    $("#patrol-result").textContent = `巡查结束，${p.points.length} 个轨迹点，等待平台核算…`;
  }

  function showCoverage(ids) {
    app.covered = ids;
    const names = {};
    for (const f of (app.me && app.me.segments.features) || []) names[f.id] = f.properties.name;
    const box = $("#patrol-result");
    box.dataset.covered = ids.join(",");
    box.textContent = ids.length ? `已巡查路段：${ids.map((i) => names[i] || i).join("、")}` : "这次巡查没有走完任何路段";
    renderMap(ids);
  }

  // ------------------------------------------------------------------ outbox view
  async function renderOutbox() {
    const items = (await store.all("outbox")).sort((a, b) => b.created_at - a.created_at);
    const open = items.filter((i) => i.state === "queued" || i.state === "sent").length;
    $("#outbox-count").textContent = open ? String(open) : "";
    $("#outbox-list").replaceChildren(...items.map((i) => {
      const cat = i.kind === "report" ? categoryByCode(i.payload.category) : null;
      const title = `${KIND_WORDS[i.kind]}${cat ? `：${cat.name}` : i.kind === "report" ? `：${i.payload.category}` : ""}`;
      const ackNote = i.state === "accepted" && i.ack && i.ack.segment_name ? `路段：${i.ack.segment_name}` : null;
      return el("li", { "data-id": i.id, "data-state": i.state, "data-kind": i.kind },
        el("span", { class: "state", "data-state": i.state, text: STATE_WORDS[i.state] }), " ",
        el("b", { text: title }),
        el("div", { class: "hint", text: `${fmt.format(new Date(i.created_at))}${i.photo_ids.length ? ` · ${i.photo_ids.length} 张照片` : ""}` }),
        ackNote ? el("div", { text: ackNote }) : null,
        i.reason ? el("p", { class: "reason", text: `原因：${i.reason}` }) : null,
        i.last_error && (i.state === "queued" || i.state === "sent")
          ? el("div", { class: "hint", text: `暂未送达（${i.last_error}），会自动重试` }) : null);
    }));
  }

  async function clearDone() {
    // Only what the platform acknowledged may go: nothing unsent is ever deleted.
    for (const i of await store.all("outbox")) {
      if (i.state !== "accepted" && i.state !== "rejected") continue;
      for (const pid of i.photo_ids) await store.del("photos", pid);
      await store.del("outbox", i.id);
    }
    renderOutbox();
  }

  function renderAll() {
    renderCategories();
    renderMap();
    renderCases();
    renderOutbox();
  }

  // ------------------------------------------------------------------ wiring
  function wire() {
    $("#signin-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("#signin-error").textContent = "";
      if (!navigator.onLine) { $("#signin-error").textContent = "首次登录需要联网"; return; }
      try {
        await signIn($("#signin-id").value.trim(), $("#signin-pw").value);
        $("#signin-pw").value = "";
        enterApp();
        refresh();
      } catch (err) {
        $("#signin-error").textContent = err.message || "登录失败";
      }
    });
    $("#report-form").addEventListener("submit", sendReport);
    $("#photo-input").addEventListener("change", async (ev) => {
      await addPhotos([...ev.target.files], app.photos, $("#photo-thumbs"), $("#report-errors"));
      ev.target.value = "";
    });
    $("#rect-photo").addEventListener("change", async (ev) => {
      await addPhotos([...ev.target.files], app.rectPhotos, $("#rect-thumbs"), $("#rect-errors"));
      ev.target.value = "";
    });
    $("#rect-send").addEventListener("click", sendRectify);
    $("#rect-cancel").addEventListener("click", () => show("work"));
    for (const b of document.querySelectorAll("#severity button")) {
      b.addEventListener("click", () => {
        for (const o of document.querySelectorAll("#severity button")) o.classList.toggle("on", o === b);
      });
    }
    for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.view));
    $("#patrol-toggle").addEventListener("click", () => (app.patrol ? stopPatrol() : startPatrol()));
    $("#outbox-clear").addEventListener("click", clearDone);
    $("#sign-out").addEventListener("click", async () => {
      const open = (await store.all("outbox")).filter((i) => i.state === "queued" || i.state === "sent");
      if (open.length) { toast(`还有 ${open.length} 条未送达，联网发送后再退出`); return; }
      // Revokes this phone's device credential on the server, then forgets it here.
      await api("/m/api/session", { method: "DELETE" }).catch(() => null);
      disconnect();
      app.auth = null;
      brokerPassword = null;
      await store.setMeta("auth", null);
      location.reload();
    });
    window.addEventListener("online", () => { connect(); refresh(); pump(); });
    window.addEventListener("offline", () => { disconnect(); setNet("offline", "离线"); });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && app.auth) { refresh(); pump(); }
    });
    setInterval(pump, 2000);
    // Without the broker nobody pushes notices: fetch the case list now and then.
    setInterval(() => { if (app.auth && !(app.mq && app.mq.connected)) refresh(); }, POLL_MS);
  }

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/m/sw.js", { scope: "/m/" }).catch(() => null);
  }
  wire();
  start();
})();
