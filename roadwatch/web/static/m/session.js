// @ts-check
/* Sign-in and the device credential.
 *
 * Sign-in sends the password once and gets a device credential back (a random token the
 * server can revoke). Only that token is stored (IndexedDB) and sent (as a Bearer header,
 * by `api`). The password stays in this module's memory for the broker login (MQTT needs a
 * password) and is gone on reload: the app then works over HTTPS alone until the chief
 * signs in again. See docs/security.md, "The phone app".
 */
import { connect, disconnect } from "./broker.js";
import { pump } from "./outbox.js";
import { startPatrol } from "./patrol.js";
import { app } from "./state.js";
import { store } from "./store.js";
import { $, errorsText, setNet, toast } from "./util.js";
import { renderAll, show } from "./views.js";

// The password, for the broker login of this page only: never stored, never on `app`.
/** @type {string | null} */
let brokerPassword = null;

/** The password for the broker's login, while this page has it. */
export const brokerLogin = () => brokerPassword;

/** The broker refused the password (changed since): stop trying it. */
export function forgetPassword() {
  brokerPassword = null;
}

/**
 * A request to the platform with the device credential; a 401 (other than to the sign-in
 * itself) signs the app out.
 * @param {string} path
 * @param {RequestInit & {headers?: Record<string, string>}} [opts]
 * @returns {Promise<{res: Response, body: any}>} body: the JSON answer, or null
 */
export async function api(path, opts) {
  /** @type {Record<string, string>} */
  const headers = { ...((opts && opts.headers) || {}) };
  if (app.auth && app.auth.token) headers.Authorization = `Bearer ${app.auth.token}`;
  const res = await fetch(path, { credentials: "same-origin", ...opts, headers });
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (res.status === 401 && app.auth && path !== "/m/api/session") signedOut(body);
  return { res, body };
}

/**
 * Trade the password for a device credential; keep the password in memory only.
 * @param {string} id
 * @param {string} password
 */
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

/**
 * The device credential was revoked (sign-out elsewhere, a new password, an admin) or the
 * account disabled: ask again. The outbox stays and is sent after the next sign-in.
 * @param {any} body the 401's answer
 */
export function signedOut(body) {
  if (!app.auth) return;
  app.auth = null;
  brokerPassword = null;
  disconnect();
  store.setMeta("auth", null);
  showSignIn();
  $("#signin-error").textContent = errorsText(body && body.errors);
}

/** The sign-in screen: no tabs, and the pill says what is true before signing in. */
function showSignIn() {
  $("#tabs").hidden = true;
  show("signin");
  setNet(navigator.onLine ? "online" : "offline", navigator.onLine ? "未登录" : "离线");
}

function ready() {
  window.__rwReadyAt = performance.now(); // the shell is usable: what the budget test times
  window.__rwReady = true;
}

/** Open the app: the stored sign-in, or the sign-in form. */
export async function start() {
  [app.auth, app.me] = await Promise.all([store.meta("auth"), store.meta("me")]); // one wait, not two
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
    showSignIn();
    ready();
    return;
  }
  enterApp();
  ready();
  refresh();
}

function enterApp() {
  const auth = /** @type {import("./state.js").Auth} */ (app.auth);
  $("#tabs").hidden = false;
  $("#who").textContent = auth.chief.name || auth.reporter_id;
  show("report");
  renderAll();
  connect();
  pump();
  store.meta("patrol").then((p) => { if (p && !app.patrol) startPatrol(p); }); // survived a reload
}

/** The sign-in's config and the chief's data, fresh from the platform (when online). */
export async function refresh() {
  if (!navigator.onLine || !app.auth) return;
  try {
    const { res, body } = await api("/m/api/session");
    if (res.status === 401) { signedOut(body); return; }
    if (res.ok && app.auth) {
      const moved = app.auth.config.mqtt_ws_url !== body.config.mqtt_ws_url;
      app.auth.config = body.config;
      await store.setMeta("auth", app.auth);
      // The broker moved (or is gone): stop knocking at the old address and go on over
      // HTTPS. The new one is used from the next page load (this page's CSP names the old).
      if (moved) { brokerPassword = null; disconnect(); setNet("online", "在线 (HTTP)"); }
    }
    const me = await api("/m/api/me");
    if (me.res.ok && app.auth) {
      /** @type {import("./state.js").Me} */
      const got = me.body;
      const before = new Set(((app.me && app.me.cases) || []).map((c) => c.id));
      // The chief's own report needs no notice (they know): only others' new cases.
      const fresh = got.cases.filter((c) => !before.has(c.id) && !c.own_report);
      // Without the broker's notices, a new case in the list is the notice.
      if (app.me && fresh.length && !(app.mq && app.mq.connected)) {
        toast(`新案件：${fresh.map((c) => `${c.category_name} · ${c.segment_name || ""}`).join("；")}`);
      }
      app.me = got;
      await store.setMeta("me", app.me);
      renderAll();
    }
  } catch (_) { /* offline or server down: keep what we have */ }
}

/**
 * The sign-in form's submit.
 * @param {SubmitEvent} ev
 */
export async function onSignIn(ev) {
  ev.preventDefault();
  const error = $("#signin-error");
  error.textContent = "";
  if (!navigator.onLine) { error.textContent = "首次登录需要联网"; return; }
  const pw = /** @type {HTMLInputElement} */ ($("#signin-pw"));
  try {
    await signIn(/** @type {HTMLInputElement} */ ($("#signin-id")).value.trim(), pw.value);
    pw.value = "";
    enterApp();
    refresh();
  } catch (err) {
    error.textContent = (err instanceof Error && err.message) || "登录失败";
  }
}

/** The sign-out button: only with nothing unsent; revokes this phone's device credential. */
export async function signOut() {
  const open = (await store.all("outbox")).filter((i) => i.state === "held" || i.state === "queued" || i.state === "sent");
  if (open.length) { toast(`还有 ${open.length} 条未送达，联网发送后再退出`); return; }
  // Revokes this phone's device credential on the server, then forgets it here.
  await api("/m/api/session", { method: "DELETE" }).catch(() => null);
  disconnect();
  app.auth = null;
  brokerPassword = null;
  await store.setMeta("auth", null);
  location.reload();
}
