// @ts-check
/* "My work" (我的工作): the chief's segments (a small SVG map and a list), the open cases
 * assigned to the chief, and the platform's notices (a toast, then a fresh case list).
 */
import { extensionButton } from "./extension.js";
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

/** The open cases, each with its deadline and a button to report its rectification. */
export function renderCases() {
  const cases = (app.me && app.me.cases) || [];
  const list = $("#case-list");
  if (!cases.length) { list.replaceChildren(el("li", { text: "没有待办案件" })); return; }
  list.replaceChildren(...cases.map((c) => el("li", { "data-case": c.id },
    el("b", { text: c.category_name }), " ",
    el("span", { text: c.segment_name || c.segment_id || "" }),
    el("div", { class: c.overdue ? "overdue" : "", text: c.due_at ? `期限 ${when(c.due_at)}${c.overdue ? "（已超期）" : ""}` : "无期限" }),
    c.note ? el("div", { class: "hint", text: c.note }) : null,
    c.status === "rectified" ? el("div", { class: "ok", text: "已整改，待核查" })
      : el("button", { type: "button", text: "整改反馈", onclick: () => openRectify(c) }),
    extensionButton(c))));
}

/**
 * A notice from the platform (on roadwatch/v1/notices/{me}): say so, fetch the cases.
 * @param {{message?: string, kind?: string}} body
 */
export function onNotice(body) {
  toast(`新通知：${body.message || body.kind || "有新的案件"}`);
  refresh();
}
