// @ts-check
/* This week's patrol plan (本周巡查计划, issue 22) on the work tab: which segment in which
 * two-hour window, from the platform's forecast (GET /m/api/plan). Its own module: the work
 * tab only calls renderPlan(). */
import { api } from "./session.js";
import { $, el } from "./util.js";

/** Fetch the signed-in chief's plan and list its visits; quiet when offline. */
export async function renderPlan() {
  const list = $("#plan-list");
  if (!list) return;
  let body = null;
  try {
    const answer = await api("/m/api/plan");
    if (!answer.res.ok) return;
    body = answer.body;
  } catch (_) {
    return; // offline: the last plan drawn stays
  }
  const visits = (body && body.visits) || [];
  const basis = body && body.basis === "default" ? "（尚无记录：按本区最忙时段轮巡）" : "";
  $("#plan-basis").textContent = visits.length
    ? `共 ${visits.length} 次，约 ${body.hours} 小时，预计发现 ${body.expected_findings} 件${basis}`
    : "本周没有安排";
  list.replaceChildren(...visits.map((/** @type {any} */ v) => el("li", { "data-window": String(v.window) },
    el("b", { text: v.when }), " ",
    el("span", { text: v.name || v.segment }),
    el("div", { class: "hint", text: `预计发现 ${v.expected} 件` }))));
}
