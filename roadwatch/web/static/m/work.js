// @ts-check
/* "My work" (我的工作): the chief's segments (a small SVG map and a list), the open cases
 * assigned to the chief, and the platform's notices (a toast, then a fresh case list).
 */
import { extensionButton } from "./extension.js";
import { openRectify } from "./forms.js";
import { uiLang } from "./lang.js";
import { refresh } from "./session.js";
import { app } from "./state.js";
import { $, el, toast, when } from "./util.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const TILE = 256;
const MAX_TILES = 24; // tiles drawn at most (a phone on 3G)

/**
 * Web Mercator "world pixels" at zoom z (the basemap's tiles are 256 of them).
 * @param {number} lon
 * @param {number} lat
 * @param {number} z
 */
export function project(lon, lat, z) {
  const size = TILE * 2 ** z;
  const s = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return [((lon + 180) / 360) * size, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * size];
}

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 */
export function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

/**
 * The map of the chief's road (drawn only while 我的工作 is open): the city's basemap when
 * there is one, the chief's segments (those walked today green, kept across reloads by the
 * platform), the open cases as pins, the running patrol's track and "you are here".
 * @param {string[]} [covered] segments the last patrol covered
 */
export function renderMap(covered) {
  if (covered) app.covered = covered;
  const svg = $("#map");
  if ($("#view-work").hidden) return; // not on the first screen: drawn when opened
  const feats = (app.me && app.me.segments.features) || [];
  const pts = feats.map((f) => f.geometry.coordinates).flat();
  if (!pts.length) { svg.replaceChildren(); return; }
  const lons = pts.map((p) => p[0]);
  const lats = pts.map((p) => p[1]);
  const [w, e, s, n] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
  const base = app.me && app.me.map ? app.me.map.basemap : null;
  // The zoom at which the road is about 360 px wide, within the basemap's zooms.
  const span = Math.max(e - w, (n - s) / Math.cos(((s + n) / 2) * Math.PI / 180), 1e-4);
  let z = Math.floor(Math.log2((360 / TILE) * (360 / span)));
  if (base) z = Math.max(base.minzoom, Math.min(base.maxzoom, z));
  const [x0, y1] = project(w, s, z);
  const [x1, y0] = project(e, n, z);
  const pad = Math.max(x1 - x0, y1 - y0, 40) * 0.1;
  const box = [x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad];
  svg.setAttribute("viewBox", box.map((v) => v.toFixed(1)).join(" "));
  const kids = [];
  if (base) {
    const [tx0, ty0, tx1, ty1] = [Math.floor(box[0] / TILE), Math.floor(box[1] / TILE),
      Math.floor((box[0] + box[2]) / TILE), Math.floor((box[1] + box[3]) / TILE)];
    if ((tx1 - tx0 + 1) * (ty1 - ty0 + 1) <= MAX_TILES) {
      for (let tx = tx0; tx <= tx1; tx++) {
        for (let ty = ty0; ty <= ty1; ty++) {
          const href = base.url.replace("{z}", String(z)).replace("{x}", String(tx)).replace("{y}", String(ty));
          kids.push(svgEl("image", { href, x: tx * TILE, y: ty * TILE, width: TILE, height: TILE, class: "tile" }));
        }
      }
    }
  }
  const stroke = (Math.max(box[2], box[3]) / 70).toFixed(2);
  const done = new Set([...(app.covered || []), ...((app.me && app.me.map && app.me.map.covered_today) || [])]);
  for (const f of feats) {
    const pl = svgEl("polyline", { points: f.geometry.coordinates.map((p) => project(p[0], p[1], z).map((v) => v.toFixed(1)).join(",")).join(" "),
      "stroke-width": stroke, "data-segment": f.id });
    if (done.has(f.id)) pl.classList.add("covered");
    kids.push(pl);
  }
  const track = (app.patrol && app.patrol.points) || [];
  if (track.length > 1) {
    kids.push(svgEl("polyline", { class: "track", "stroke-width": (Number(stroke) / 2).toFixed(2),
      points: track.map((p) => project(p.lon, p.lat, z).map((v) => v.toFixed(1)).join(",")).join(" ") }));
  }
  const r = (Number(stroke) * 1.6).toFixed(2);
  for (const c of (app.me && app.me.cases) || []) {
    if (c.lat === null || c.lat === undefined || c.lon === null || c.lon === undefined) continue;
    const [cx, cy] = project(c.lon, c.lat, z);
    kids.push(svgEl("circle", { class: `pin${c.severity === 3 ? " urgent" : ""}`, cx: cx.toFixed(1), cy: cy.toFixed(1), r, "data-case": c.id }));
  }
  if (app.fix) {
    const [fx, fy] = project(app.fix.lon, app.fix.lat, z);
    kids.push(svgEl("circle", { class: "me", cx: fx.toFixed(1), cy: fy.toFixed(1), r }));
  }
  svg.replaceChildren(...kids);
  $("#seg-list").replaceChildren(...feats.map((f) => el("li", { text: `${f.properties.name || f.id}${done.has(f.id) ? "（今日已巡查）" : ""}` })));
  $("#map-attribution").textContent = base && base.attribution ? base.attribution : "";
}

const SEVERITY_WORDS = ["", "一般", "较重", "紧急"];

/**
 * 剩 3 小时 / 已超期 2 小时 (working hours, the city's calendar).
 * @param {number} h
 */
function countdown(h) {
  const a = Math.abs(h);
  const span = a >= 1 ? `${Math.round(a)} 小时` : `${Math.max(1, Math.round(a * 60))} 分钟`;
  return h >= 0 ? `剩 ${span}` : `已超期 ${span}`;
}

/** The open cases (urgent first): countdown, severity, photo, reporter, and 整改反馈. */
export function renderCases() {
  const cases = (app.me && app.me.cases) || [];
  const list = $("#case-list");
  if (!cases.length) { list.replaceChildren(el("li", { text: "没有待办案件" })); return; }
  const pending = app.pendingRect || new Set();
  list.replaceChildren(...cases.map((c) => {
    const late = c.overdue || (c.work_left_h !== null && c.work_left_h !== undefined && c.work_left_h < 0);
    const left = c.work_left_h === null || c.work_left_h === undefined ? null : countdown(c.work_left_h);
    let action;
    if (c.status === "rectified") action = el("div", { class: "ok", text: "已整改，待核查" });
    else if (pending.has(c.id)) action = el("div", { class: "ok", text: "整改反馈已保存，等待发送" });
    else action = el("button", { type: "button", text: "整改反馈", onclick: () => openRectify(c) });
    return el("li", { "data-case": c.id, class: c.severity === 3 ? "urgent" : null },
      c.photo ? el("img", { class: "case-photo", src: c.photo, alt: "问题照片", loading: "lazy" }) : null,
      el("span", { class: "sev", "data-sev": String(c.severity || 1), text: SEVERITY_WORDS[c.severity || 1] }), " ",
      el("b", { text: c.category_name }), " ",
      el("span", { text: c.segment_name || c.segment_id || "" }),
      el("div", { class: `countdown${late ? " overdue" : ""}`,
        text: c.due_at ? `${left || (late ? "已超期" : "")} · 期限 ${when(c.due_at)}` : "无期限" }),
      el("div", { class: "hint", text: `${c.own_report ? "本人上报" : `上报人：${c.reporter || ""}`} · ${when(c.observed_at)}` }),
      c.note ? el("div", { class: "hint", text: c.note }) : null,
      action,
      extensionButton(c));
  }));
}

/** @type {Record<string, string>} */
const NOTICE_WORDS = { dispatch: "新案件", reopened: "整改未通过，案件重新打开",
  overdue: "案件已超期", escalation: "案件已升级" };
/** notice_ids already shown (a notice outbox may send one again after a reconnect) */
const seenNotices = new Set();

/**
 * A notice from the platform (on roadwatch/v1/notices/{me}): show its words (Chinese,
 * docs/protocol.md 2.6), fetch the cases. One already seen (same notice_id) is dropped.
 * @param {{message?: string, message_en?: string, kind?: string, notice_id?: string}} body
 */
export function onNotice(body) {
  if (body.notice_id) {
    if (seenNotices.has(body.notice_id)) return;
    seenNotices.add(body.notice_id);
  }
  toast((uiLang() === "en" && body.message_en) || body.message || NOTICE_WORDS[body.kind || ""] || "有新的通知");
  refresh();
}
