// @ts-check
/* "My work" (我的工作): the chief's segments (a small SVG map and a list), the open cases
 * assigned to the chief, and the platform's notices (a toast, then a fresh case list).
 */
import { openRectify } from "./forms.js";
import { refresh } from "./session.js";
import { app } from "./state.js";
import { $, el, toast, when } from "./util.js";

/**
 * The chief's segments, drawn to fit; those a patrol covered are marked.
 * @param {string[]} [covered]
 */
export function renderMap(covered) {
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
  /** @param {number[]} p */
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
      action);
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
 * @param {{message?: string, kind?: string, notice_id?: string}} body
 */
export function onNotice(body) {
  if (body.notice_id) {
    if (seenNotices.has(body.notice_id)) return;
    seenNotices.add(body.notice_id);
  }
  toast(body.message || NOTICE_WORDS[body.kind || ""] || "有新的通知");
  refresh();
}
