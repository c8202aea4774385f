// @ts-check
/* The report form (category, photos, position, severity, note) and the rectification form
 * of a case (after photo, note). Photos are downscaled on the phone (keeping the camera's
 * position, direction and time: exif.js), hashed (SHA-256) and kept in IndexedDB until
 * their message is acknowledged.
 */
import { cameraLook, readCameraTags, withCameraTags } from "./exif.js";
import { learnNames } from "./lang.js";
import { enqueue, release } from "./outbox.js";
import { api } from "./session.js";
import { fixQuality } from "./position.js";
import { askSpot, chooseSpot, headingOf } from "./spot.js";
import { app } from "./state.js";
import { store } from "./store.js";
import { $, el, field, toast, uuid, when } from "./util.js";
import { show } from "./views.js";

/** @typedef {import("./state.js").Category} Category */
/** @typedef {import("./state.js").Thumb} Thumb */

const MAX_SIDE = 1600; // px, longest side of an uploaded photo
const JPEG_QUALITY = 0.82;
const MAX_INPUT_BYTES = 60 * 1024 * 1024; // refuse to decode anything larger

/** @returns {import("./state.js").Auth} */
const auth = () => /** @type {import("./state.js").Auth} */ (app.auth);

// ------------------------------------------------------------------ photos
/**
 * A picture made small enough to send (JPEG, at most MAX_SIDE px), with its SHA-256.
 * @param {File} file
 */
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
  /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d")).drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  /** @type {Blob | null} */
  const small = await new Promise((r) => canvas.toBlob(r, "image/jpeg", JPEG_QUALITY));
  const limit = auth().config.max_photo_bytes;
  if (!small) throw new Error(`“${file.name}”无法压缩`);
  // The canvas dropped the EXIF: put back what places the photo (exif.js says which tags).
  const tags = await readCameraTags(file);
  const blob = await withCameraTags(small, tags);
  if (blob.size > limit) throw new Error(`照片压缩后仍有 ${(blob.size / 1048576).toFixed(1)} MB，超过 ${(limit / 1048576).toFixed(0)} MB 上限`);
  let sha256 = null;
  if (crypto.subtle) {
    const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
    sha256 = [...new Uint8Array(digest)].map((x) => x.toString(16).padStart(2, "0")).join("");
  }
  return { blob, sha256, width: canvas.width, height: canvas.height, look: cameraLook(tags) };
}

/**
 * Keep the chosen pictures on the phone and show them; say why one could not be used.
 * @param {File[]} files
 * @param {Thumb[]} list the form's photos
 * @param {HTMLElement} thumbs
 * @param {HTMLElement} errBox
 */
async function addPhotos(files, list, thumbs, errBox) {
  errBox.textContent = "";
  for (const file of files) {
    try {
      const shot = await downscale(file);
      const id = uuid();
      await store.put("photos", { id, blob: shot.blob, sha256: shot.sha256, uploaded: false,
        width: shot.width, height: shot.height, created_at: Date.now() });
      list.push({ id, url: URL.createObjectURL(shot.blob), look: shot.look });
    } catch (err) {
      errBox.append(el("li", { text: /** @type {Error} */ (err).message }));
    }
  }
  renderThumbs(list, thumbs);
}

/**
 * @param {Thumb[]} list
 * @param {HTMLElement} box
 */
function renderThumbs(list, box) {
  box.replaceChildren(...list.map((p, i) => el("figure", {},
    el("img", { src: p.url, alt: "照片" }),
    el("button", { type: "button", text: "×", "aria-label": "删除照片",
      onclick: () => { list.splice(i, 1); store.del("photos", p.id); renderThumbs(list, box); } }))));
}

/**
 * A file input's change: its pictures join the form's photos.
 * @param {string} input
 * @param {() => Thumb[]} list
 * @param {string} thumbs
 * @param {string} errors
 */
function photoInput(input, list, thumbs, errors) {
  $(input).addEventListener("change", async (ev) => {
    const target = /** @type {HTMLInputElement} */ (ev.target);
    await addPhotos([...(target.files || [])], list(), $(thumbs), $(errors));
    target.value = "";
  });
}

// ------------------------------------------------------------------ report form
/** @param {string} code */
function chooseCategory(code) {
  field("#category").value = code;
  for (const b of document.querySelectorAll("[data-cat]")) {
    if (b instanceof HTMLElement) b.classList.toggle("on", b.dataset.cat === code);
  }
  const cat = categoryByCode(code);
  $("#cat-chosen").textContent = cat ? `已选：${cat.name}` : "";
}

/**
 * @param {string} code
 * @returns {Category | null}
 */
export function categoryByCode(code) {
  for (const g of (app.me && app.me.categories.groups) || []) {
    for (const c of g.items) if (c.code === code) return c;
  }
  return null;
}

/** The category chips: the chief's favourites, then every group (folded). */
export function renderCategories() {
  const me = app.me;
  if (!me) return;
  learnNames(me); // the English names, before the chips are drawn
  /** @param {Category} c */
  const catButton = (c) => el("button", { type: "button", "data-cat": c.code, text: c.name,
    onclick: () => chooseCategory(c.code) });
  $("#cat-favourites").replaceChildren(...me.categories.favourites
    .map(categoryByCode).filter((c) => c !== null).map(catButton));
  // A refresh must not fold up the group the chief has open.
  const wasOpen = new Set([...document.querySelectorAll("#cat-groups details[open]")]
    .map((d) => /** @type {HTMLElement} */ (d).dataset.group));
  const fresh = wasOpen.size === 0 && !document.querySelector("#cat-groups details");
  $("#cat-groups").replaceChildren(...me.categories.groups.map((g, i) => {
    const open = wasOpen.has(g.key) || (fresh && i === 0 && !me.categories.favourites.length);
    const d = el("details", { class: "group", "data-group": g.key, open },
      el("summary", { text: `${g.label}（${g.items.length}）` }));
    d.append(el("div", { class: "cat-grid" }, ...g.items.map(catButton)));
    return d;
  }));
  chooseCategory(field("#category").value);
}

function checkReport() {
  const errors = [];
  const cat = field("#category").value.trim();
  if (!cat) errors.push("请选择问题类别");
  const q = fixQuality();
  const hint = /** @type {HTMLInputElement | null} */ (document.querySelector("input[name=segment_hint]:checked"));
  if (q === "none") errors.push("还没有定位：请稍候，或到开阔处");
  if (q === "outside") errors.push("位置远在城区之外，不能上报：请检查手机定位");
  if ((q === "poor" || q === "stale") && !hint && navigator.onLine && !$("#near").hidden) {
    errors.push("定位不准：请在“位置”下选择所在路段");
  }
  const note = field("#note").value;
  const maxNote = auth().config.max_note_chars;
  if (note.length > maxNote) errors.push(`备注太长：最多 ${maxNote} 字（现在 ${note.length} 字）`);
  return { errors, cat, hint: hint ? hint.value : null, note };
}

/** @param {SubmitEvent} ev */
async function sendReport(ev) {
  ev.preventDefault();
  const { errors, cat, hint: picked, note } = checkReport();
  const box = $("#report-errors");
  box.replaceChildren(...errors.map((t) => el("li", { text: t })));
  $("#report-done").textContent = "";
  delete $("#report-done").dataset.receipt;
  if (errors.length) return;
  const f = /** @type {import("./state.js").Fix} */ (app.fix);
  // Who reports, read before asking the platform: a 401 to that question (the device
  // credential revoked or expired meanwhile) signs the app out, and the report must still
  // be kept in the outbox, to go after the next sign-in.
  const reporter = auth().reporter_id;
  const sev = Number(/** @type {HTMLElement} */ (document.querySelector("#severity button.on")).dataset.v);
  const look = app.photos.map((p) => p.look).find((l) => l) || null;
  // The heading the platform was asked with goes with the report: without it a report
  // the platform called certain (no question) was placed without it, often to review.
  const heading = headingOf(f);
  const payload = {
    v: 1, report_id: uuid(), reporter_id: reporter,
    observed_at: new Date().toISOString(), lat: f.lat, lon: f.lon, crs: "WGS84",
    accuracy_m: Math.round(f.accuracy * 10) / 10, category: cat, severity: sev,
    ...(heading !== null ? { heading_deg: heading } : {}),
    ...(note.trim() ? { note: note.trim() } : {}),
    ...(picked ? { segment_hint: picked } : {}),
    photos: [],
  };
  app.lastReport = payload.report_id;
  const ask = !picked && navigator.onLine;
  // Kept on the phone before the chief is asked anything: a reload or a closed app while
  // the question shows still sends it (without a pick) rather than losing it and its photos.
  await enqueue("report", payload, app.photos.map((p) => p.id), ask);
  const hint = picked || (ask ? await askChief(f, cat, look) : null);
  if (ask) await release(payload.report_id, hint ? { segment_hint: hint } : {});
  app.photos = [];
  renderThumbs(app.photos, $("#photo-thumbs"));
  field("#note").value = "";
  chooseCategory("");
  // The receipt may have come already (an HTTPS answer takes ~0.1 s): do not overwrite it.
  if (!$("#report-done").dataset.receipt) {
    const done = $("#report-done");
    done.replaceChildren(
      el("span", { text: navigator.onLine ? "已保存，正在发送…" : "已保存在手机上，联网后自动发送" }));
    if (!navigator.onLine && !hint) { // the platform could not be asked which segment (askChief)
      done.append(el("div", { class: "hint", text: "离线时不能询问所在路段：平台不确定时由工作人员核实" }));
    }
  }
}

/**
 * Issue 21: the platform not certain of the segment here, the chief picks one of its
 * candidates (spot.js); certain, offline or slow: no question, the report goes as it is.
 * @param {import("./state.js").Fix} f
 * @param {string} cat
 * @param {import("./state.js").Look | null} look where the first photo's camera faced
 * @returns {Promise<string | null>} the segment_hint
 */
async function askChief(f, cat, look) {
  const send = /** @type {HTMLButtonElement} */ ($("#report-send"));
  send.disabled = true; // one report per tap, also while the chief is choosing
  try {
    const offer = await askSpot(f, cat, look);
    if (!offer || offer.certain !== false || offer.candidates.length < 2) return null;
    return await chooseSpot(offer, f);
  } finally {
    send.disabled = false;
  }
}

/**
 * @param {string} text
 * @param {string} kind "accepted", "merged", "review" or "rejected"
 */
function receipt(text, kind) {
  const box = $("#report-done");
  box.textContent = text;
  box.dataset.receipt = kind;
  box.classList.toggle("error", kind === "rejected");
}

/**
 * The platform's answer to the report just sent, on the form where the chief is looking:
 * 已受理·<segment>, or 已并入已有案件·<case> once the dispatcher has linked it (it decides
 * just after the ack: asked for a few times).
 * @param {import("./state.js").OutboxItem} item
 */
export async function showReceipt(item) {
  if (item.id !== app.lastReport) return;
  const ack = item.ack || /** @type {import("./state.js").Ack} */ ({});
  if (item.state === "rejected") { receipt(`被退回：${item.reason || ""}`, "rejected"); return; }
  if (ack.status === "needs_review") { receipt("已受理·路段待人工核定", "review"); return; }
  receipt(`已受理·${ack.segment_name || ack.segment_id || ""}`, "accepted");
  if (ack.case_status && ack.case_status !== "new" && ack.case_status !== "duplicate") return;
  for (let i = 0; i < 5 && item.id === app.lastReport; i++) {
    const { res, body } = await api(`/m/api/reports/${item.id}`).catch(() => ({ res: null, body: null }));
    if (res && res.ok && body) {
      const m = body.merged_into;
      if (m) { receipt(`已并入已有案件·${m.category_name}·${m.segment_name || ""}`, "merged"); return; }
      if (body.case_status !== "new") return;
    }
    await new Promise((r) => setTimeout(r, 400 * (i + 1)));
  }
}

// ------------------------------------------------------------------ rectification form
/**
 * The rectification form of a case.
 * @param {import("./state.js").Case} c
 */
export function openRectify(c) {
  app.rectCase = c;
  app.rectPhotos = [];
  renderThumbs(app.rectPhotos, $("#rect-thumbs"));
  $("#rect-case").textContent = `${c.category_name} · ${c.segment_name || ""} · 上报于 ${when(c.observed_at)}`;
  $("#rect-errors").replaceChildren();
  field("#rect-note").value = "";
  show("rectify");
}

async function sendRectify() {
  const c = /** @type {import("./state.js").Case} */ (app.rectCase);
  const errors = [];
  if (c.photo_required && app.rectPhotos.length === 0) errors.push("请拍一张整改后的照片");
  $("#rect-errors").replaceChildren(...errors.map((t) => el("li", { text: t })));
  if (errors.length) return;
  const f = app.fix;
  const note = field("#rect-note");
  const payload = {
    v: 1, rectification_id: uuid(), report_id: c.id, reporter_id: auth().reporter_id,
    done_at: new Date().toISOString(), crs: "WGS84",
    ...(f ? { lat: f.lat, lon: f.lon } : {}),
    ...(note.value.trim() ? { note: note.value.trim() } : {}),
    photos: [],
  };
  await enqueue("rectification", payload, app.rectPhotos.map((p) => p.id));
  app.rectPhotos = [];
  toast("整改反馈已保存，正在发送");
  show("work");
}

/** Wire both forms. */
export function installForms() {
  $("#report-form").addEventListener("submit", sendReport);
  photoInput("#photo-input", () => app.photos, "#photo-thumbs", "#report-errors");
  photoInput("#rect-photo", () => app.rectPhotos, "#rect-thumbs", "#rect-errors");
  $("#rect-send").addEventListener("click", sendRectify);
  $("#rect-cancel").addEventListener("click", () => show("work"));
  for (const b of document.querySelectorAll("#severity button")) {
    b.addEventListener("click", () => {
      for (const o of document.querySelectorAll("#severity button")) o.classList.toggle("on", o === b);
    });
  }
}
