// @ts-check
/* The outbox: every report, rectification and patrol is first written to IndexedDB under
 * its UUID; a pump sends what is due (photos to /m/api/photos by SHA-256, then the message
 * over MQTT/WebSockets at QoS 1 while the broker is connected, otherwise at once over
 * HTTPS: POST /m/api/reports | rectifications | patrols, the same pipeline) and only the
 * platform's ack (on roadwatch/v1/acks/{me}, or the HTTP answer) settles an item: accepted,
 * or rejected with the platform's reason. A PUBACK only means "sent". Resending is always
 * safe: the platform dedupes by the UUID. Failures are retried with backoff; a 429 or 503
 * holds all sending for as long as its Retry-After asks.
 */
import { publish } from "./broker.js";
import { categoryByCode, showReceipt } from "./forms.js";
import { showCoverage } from "./patrol.js";
import { api, refresh } from "./session.js";
import { app } from "./state.js";
import { store } from "./store.js";
import { $, el, errorsText, fmt, when } from "./util.js";
import { renderCases } from "./work.js";

/** @typedef {import("./state.js").OutboxItem} OutboxItem */
/** @typedef {import("./state.js").Ack} Ack */

/**
 * An error with what the pump needs to know: refused for good, or wait this long.
 * @typedef {Error & {permanent?: boolean, waitMs?: number}} SendError
 */

const STATE_WORDS = { held: "待选择路段", queued: "待发送", sent: "已发送，等待回执", accepted: "已受理", rejected: "被退回" };
// This page's own id: a report "held" by another (a page reloaded or closed while its chief
// was being asked which segment) is sent as it is by the next pump.
const PAGE = Math.random().toString(36).slice(2) + Date.now().toString(36);
const KIND_WORDS = { report: "问题上报", rectification: "整改反馈", patrol: "巡查" };

/**
 * How long the server asks us to wait: seconds or an HTTP date (RFC 9110); unreadable: a minute.
 * @param {Response} res
 */
function retryAfterMs(res) {
  const raw = res.headers.get("Retry-After");
  const secs = Number(raw);
  if (raw && Number.isFinite(secs)) return Math.max(1000, secs * 1000);
  const at = raw ? Date.parse(raw) : NaN;
  return Number.isFinite(at) ? Math.max(1000, at - Date.now()) : 60000;
}

/**
 * An answer that says "not now" (HTTP 429 or 503): wait as long as the server asks.
 * @param {Response} res
 * @returns {SendError}
 */
function waitError(res) {
  const ms = retryAfterMs(res);
  app.holdUntil = Math.max(app.holdUntil || 0, Date.now() + ms);
  const text = res.status === 429 ? "发送太频繁，服务器要求稍候" : "服务器暂时繁忙";
  return Object.assign(new Error(`${text}，${Math.ceil(ms / 1000)} 秒后自动重试`), { waitMs: ms });
}

/**
 * An ack from the broker: settles its item (a patrol only by its end's ack).
 * @param {Ack} ack
 */
export async function onAck(ack) {
  /** @type {OutboxItem | null} */
  const item = ack && ack.id ? await store.get("outbox", ack.id) : null;
  if (!item || item.state === "accepted" || item.state === "rejected") return;
  // A patrol's start/track messages share its id; only the end's ack settles it.
  if (item.kind === "patrol" && ack.status !== "rejected" && !("covered_segments" in ack)) return;
  settle(item, ack);
}

/**
 * The platform's answer settles an item: accepted, or rejected with its reason.
 * @param {OutboxItem} item
 * @param {Ack} ack
 */
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
  if (item.kind === "report") showReceipt(item);
  if (item.kind === "patrol" && item.state === "accepted") showCoverage(ack.covered_segments || []);
  if (item.kind === "rectification") refresh();
}

/** @param {number} tries */
const backoff = (tries) => Math.min(60000, 1000 * 2 ** Math.min(tries, 6)) * (0.8 + Math.random() * 0.4);
/** @param {number} tries */
const ackWait = (tries) => Math.min(120000, 15000 * 2 ** Math.min(tries, 3));

/**
 * Keep a message on the phone (before anything is sent), then send what is due.
 * @param {import("./state.js").Kind} kind
 * @param {Record<string, any>} payload
 * @param {string[]} [photoIds]
 */
export async function enqueue(kind, payload, photoIds, held = false) {
  // A rectification also carries the report_id of its case: key each kind by its own id.
  const id = { report: payload.report_id, rectification: payload.rectification_id,
    patrol: payload.patrol_id }[kind];
  await store.put("outbox", {
    id, kind, payload, photo_ids: photoIds || [], state: held ? "held" : "queued", reason: null,
    tries: 0, next_at: 0, created_at: Date.now(), updated_at: Date.now(), last_error: null,
    ...(held ? { held_by: PAGE } : {}),
  });
  renderOutbox();
  if (!held) pump();
}

/**
 * A report kept while its chief was asked which segment: send it now, with what they
 * picked (`patch`: its segment_hint, or nothing).
 * @param {string} id
 * @param {Record<string, any>} patch
 */
export async function release(id, patch) {
  /** @type {OutboxItem | undefined} */
  const item = await store.get("outbox", id);
  if (item && item.state === "held") {
    Object.assign(item.payload, patch);
    item.state = "queued";
    delete item.held_by;
    item.updated_at = Date.now();
    await store.put("outbox", item);
  }
  renderOutbox();
  pump();
}

/**
 * Upload a photo once; its SHA-256 names it in the message.
 * @param {string} photoId
 * @returns {Promise<string>}
 */
async function uploadPhoto(photoId) {
  /** @type {import("./state.js").PhotoRecord | undefined} */
  const p = await store.get("photos", photoId);
  if (!p) throw Object.assign(new Error("照片在手机上找不到了"), { permanent: true });
  if (p.uploaded) return /** @type {string} */ (p.sha256);
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
  return body.sha256;
}

/**
 * Send one item: its photos, then the message (broker or HTTPS).
 * @param {OutboxItem} item
 */
async function attempt(item) {
  const auth = /** @type {import("./state.js").Auth} */ (app.auth);
  const me = auth.reporter_id;
  const root = auth.config.topic_root;
  const shas = [];
  for (const pid of item.photo_ids) shas.push(await uploadPhoto(pid));
  const body = item.kind === "patrol" ? item.payload : { ...item.payload, photos: shas };
  const word = { report: "reports", rectification: "rectifications", patrol: "patrols" }[item.kind];
  // Over the broker while it is connected; otherwise at once over HTTPS (no broker set up,
  // its WebSocket unreachable, or no password in this page): the same pipeline, and the
  // UUID makes a message sent both ways count once.
  if (app.mq && app.mq.connected) {
    await publish(`${root}/${word}/${me}`, body);
    /** @type {OutboxItem | undefined} */
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

/**
 * The way out is back (the broker connected, the phone online, the app in front again):
 * what waits for its backoff is sent now. A server's Retry-After still holds (holdUntil).
 */
export async function retryNow() {
  /** @type {OutboxItem[]} */
  const items = await store.all("outbox");
  for (const item of items) {
    if (item.state === "queued" && item.next_at > Date.now()) {
      item.next_at = 0;
      await store.put("outbox", item);
    }
  }
  await pump();
}

/** Send every item that is due, oldest first (one pump at a time). */
export async function pump() {
  if (app.pumping || !app.auth) return;
  app.pumping = true;
  try {
    /** @type {OutboxItem[]} */
    const items = (await store.all("outbox")).sort((a, b) => a.created_at - b.created_at);
    for (const item of items) {
      if (item.state === "held" && item.held_by !== PAGE) {
        // its page was reloaded or closed while the chief was asked: send it without a pick
        item.state = "queued";
        delete item.held_by;
        await store.put("outbox", item);
      }
      if (item.state !== "queued" && item.state !== "sent") continue;
      // Sent to a broker that has gone since: no ack will come that way, resend over HTTPS.
      const orphan = item.state === "sent" && !(app.mq && app.mq.connected);
      if (item.next_at > Date.now() && !orphan) continue;
      if (!navigator.onLine || !app.auth) break;
      if (/** @type {number} */ (app.holdUntil) > Date.now()) break; // the server asked us to wait (Retry-After)
      try {
        await attempt(item);
      } catch (caught) {
        const err = /** @type {SendError} */ (caught);
        /** @type {OutboxItem} */
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

/** The "sent" view (发送记录) and the count on its tab. */
export async function renderOutbox() {
  /** @type {OutboxItem[]} */
  const items = (await store.all("outbox")).sort((a, b) => b.created_at - a.created_at);
  const open = items.filter((i) => i.state === "held" || i.state === "queued" || i.state === "sent").length;
  // A case whose rectification waits here is not offered 整改反馈 again.
  const pending = new Set(items.filter((i) => i.kind === "rectification" &&
    (i.state === "queued" || i.state === "sent")).map((i) => String(i.payload.report_id)));
  const before = app.pendingRect || new Set();
  app.pendingRect = pending;
  if (pending.size !== before.size || [...pending].some((id) => !before.has(id))) renderCases();
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

/** The chief's reports as the platform has them, with what became of each (kept there, so
 * 清除已完成 on the phone loses nothing). */
export async function renderHistory() {
  const { res, body } = await api("/m/api/reports").catch(() => ({ res: null, body: null }));
  const list = $("#history-list");
  if (!res || !res.ok || !body) {
    // Keep a list read before (it is still what the platform had); an empty one says why.
    if (!list.children.length || list.dataset.note) {
      list.dataset.note = "1";
      list.replaceChildren(el("li", { class: "hint",
        text: res ? "暂时读不到平台记录，稍后再试" : "离线：联网后显示平台记录" }));
    }
    return;
  }
  delete list.dataset.note;
  /** @type {{id: string, category_name: string, segment_name: string | null, observed_at: string,
   *   outcome: string, merged_into: {category_name: string, segment_name: string | null} | null}[]} */
  const items = body.items;
  list.replaceChildren(...(items.length ? items.map((r) => el("li", { "data-id": r.id },
    el("b", { text: r.category_name }), " ", el("span", { text: r.segment_name || "" }),
    el("div", { class: "hint", text: when(r.observed_at) }),
    el("div", { text: r.merged_into
      ? `${r.outcome}·${r.merged_into.category_name}·${r.merged_into.segment_name || ""}` : r.outcome })))
    : [el("li", { text: "还没有上报" })]));
}

/** Remove what the platform has answered: nothing unsent is ever deleted. */
export async function clearDone() {
  /** @type {OutboxItem[]} */
  const items = await store.all("outbox");
  for (const i of items) {
    if (i.state !== "accepted" && i.state !== "rejected") continue;
    for (const pid of i.photo_ids) await store.del("photos", pid);
    await store.del("outbox", i.id);
  }
  renderOutbox();
}
