// @ts-check
/* MQTT over WebSockets to the broker, while this page has the chief's password: messages
 * go out at QoS 1, and acks and notices come in on roadwatch/v1/acks/{me} and
 * roadwatch/v1/notices/{me} (a persistent session keeps them while the phone is offline).
 * Without the broker everything goes over HTTPS (outbox.js).
 *
 * MQTT.js (vendored, window.mqtt) is most of the JavaScript: it is loaded after the shell
 * is usable, from the URL on the entry's <script data-mqtt>, not before.
 */
import { onAck, pump, retryNow } from "./outbox.js";
import { brokerLogin, forgetPassword } from "./session.js";
import { app } from "./state.js";
import { store } from "./store.js";
import { setNet, uuid } from "./util.js";
import { onNotice } from "./work.js";

const MQTT_SRC = /** @type {string} */ (
  /** @type {HTMLScriptElement} */ (document.querySelector("script[data-mqtt]")).dataset.mqtt);

function wsUrl() {
  const raw = (app.auth && app.auth.config.mqtt_ws_url) || "";
  return raw.replace("{host}", location.hostname);
}

/** This phone's short id, for the broker's client id (kept across reloads). */
async function deviceId() {
  let id = await store.meta("device");
  if (!id) { id = uuid().slice(0, 8); await store.setMeta("device", id); }
  return id;
}

/** @type {Promise<void> | null} */
let mqttLoading = null;
/** @returns {Promise<void>} */
function loadMqtt() {
  if (window.mqtt) return Promise.resolve();
  if (!mqttLoading) {
    mqttLoading = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = MQTT_SRC;
      s.onload = () => resolve();
      s.onerror = () => { mqttLoading = null; reject(new Error("MQTT.js did not load")); };
      document.head.append(s);
    });
  }
  return mqttLoading;
}

/** Everything goes over HTTPS: say so in the header. */
function httpMode() {
  setNet(navigator.onLine ? "online" : "offline", navigator.onLine ? "在线 (HTTP)" : "离线");
}

/** Connect to the broker if there is one and this page has the password. */
export async function connect() {
  if (app.mq || !app.auth) return;
  const url = wsUrl();
  // No broker, or no password in this page (after a reload): everything goes over HTTPS.
  if (!url || !brokerLogin()) { httpMode(); return; }
  await loadMqtt().catch(() => null);
  if (app.mq || !app.auth || !brokerLogin()) return; // connected or signed out meanwhile
  if (!window.mqtt) { httpMode(); return; }
  if (!navigator.onLine) { setNet("offline", "离线"); return; }
  const me = app.auth.reporter_id;
  const root = app.auth.config.topic_root;
  setNet("connecting", "连接中");
  const mq = window.mqtt.connect(url, {
    clientId: `m-${me}-${await deviceId()}`,
    username: me,
    password: brokerLogin() || undefined,
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
    // Reconnected: whatever waits for its backoff goes now, not 30 s later.
    mq.subscribe([`${root}/acks/${me}`, `${root}/notices/${me}`], { qos: 1 }, () => retryNow());
  });
  mq.on("close", () => {
    // Meanwhile the outbox goes over HTTPS; the broker is retried in the background.
    if (app.mq === mq) setNet(navigator.onLine ? "online" : "offline", navigator.onLine ? "在线 (HTTP)" : "离线");
    pump();
  });
  mq.on("error", (err) => {
    if (/auth|Not authorized|Bad user/i.test(String(err && err.message))) {
      // The password was changed: stop trying it; HTTPS goes on with the device credential.
      forgetPassword();
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

export function disconnect() {
  if (app.mq) { app.mq.end(true); app.mq = null; }
}

/**
 * Publish at QoS 1; resolves on the broker's PUBACK ("sent", not yet accepted).
 * @param {string} topic
 * @param {object} body
 * @returns {Promise<void>}
 */
export function publish(topic, body) {
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
