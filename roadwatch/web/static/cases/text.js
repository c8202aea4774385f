// @ts-check
/* The case pages' words (cases.html, case.html) in Chinese and English, the language switch
 * they share with the live map (localStorage "roadwatch.lang"), and a JSON POST. */
import { TEXT, catName, lang, setCategoryNames, setLang, t } from "../live/i18n.js";
import { config, root } from "../live/config.js";
import { $, toLogin } from "../live/util.js";

/** @type {{zh: Record<string, string>, en: Record<string, string>}} */
const CASE_TEXT = {
  zh: {
    centre: "指挥中心", cases: "案件", total: "共", cases_unit: "件", all: "全部", status: "状态",
    category: "类别", severity: "等级", source: "来源", segment: "路段编号", assignee: "责任人编号",
    at: "时间", period_from: "起", until: "止", search: "搜索", sort: "排序", sort_new: "最新", sort_old: "最早",
    sort_due: "时限最近", sort_sev: "等级最高", sort_updated: "最近更新", apply: "查询", reset: "清除",
    observed: "发现时间", segment_name: "路段", assignee_name: "责任人", note: "描述",
    due_col: "处置时限", prev: "上一页", next: "下一页", page: "第 {a}–{b} 条", no_cases: "没有符合条件的案件",
    source_person: "路长/个人", source_unit: "驻区单位", source_merchant: "门前三包商户",
    source_evaluator: "第三方测评", source_covert: "暗访", timeline: "处置过程",
    photos_before: "上报照片", photos_after: "整改照片", map: "位置", people_then: "发现时的责任人",
    people_now: "现在的责任人", deadline: "处置时限", hours_left: "剩余 {h} 工作小时",
    hours_over: "已超期 {h} 工作小时", clock_stopped: "计时已停止", actions: "操作",
    act_reassign: "改派", act_verify: "核查", act_comment: "备注", act_extend: "延期",
    act_suspend: "暂停计时", act_close_invalid: "作废", act_close_duplicate: "按重复结案",
    act_merge: "合并到", act_split: "拆分", act_reopen: "重新打开", act_report: "上报",
    reason: "原因", text: "内容", hours: "延长工作小时", until_time: "暂停至", assignee_id: "改派给（人员编号）",
    new_segment: "改到路段（可选）", result: "结果", pass: "通过", fail: "不通过", of: "主案件编号",
    into: "合并到案件编号", submit: "提交", done: "已完成", failed: "失败", by: "操作人",
    enlarge: "点击放大", close: "关闭", related: "关联案件", no_photos: "无照片",
    alert_overdue: "案件超期", alert_escalated: "案件已督办", alert_failed: "核查未通过",
    alerts_enable: "开启桌面提醒", not_found: "没有该案件", none: "无", unassigned: "未指定",
    offline: "未能连接服务器，操作没有提交，请稍后重试",
  },
  en: {
    centre: "Command centre", cases: "Cases", total: "Total", cases_unit: "cases", all: "All",
    status: "Status", category: "Category", severity: "Severity", source: "Source",
    segment: "Segment ID", assignee: "Assignee ID", at: "Time", period_from: "From", until: "Until",
    search: "Search", sort: "Sort", sort_new: "Newest", sort_old: "Oldest", sort_due: "Due soonest",
    sort_sev: "Most severe", sort_updated: "Recently updated", apply: "Apply", reset: "Clear",
    observed: "Seen", segment_name: "Segment", assignee_name: "Assignee", note: "Note",
    due_col: "Deadline", prev: "Previous", next: "Next", page: "{a}–{b}", no_cases: "No cases match",
    source_person: "Road chief / person", source_unit: "Partner unit",
    source_merchant: "Frontage merchant", source_evaluator: "Evaluator", source_covert: "Covert check",
    timeline: "Timeline", photos_before: "Reported photos", photos_after: "Rectification photos",
    map: "Location", people_then: "Responsible when seen", people_now: "Responsible now",
    deadline: "Deadline", hours_left: "{h} working hours left", hours_over: "overdue by {h} working hours",
    clock_stopped: "clock stopped", actions: "Actions", act_reassign: "Reassign",
    act_verify: "Verify", act_comment: "Comment", act_extend: "Extend", act_suspend: "Suspend",
    act_close_invalid: "Close as invalid", act_close_duplicate: "Close as duplicate",
    act_merge: "Merge into", act_split: "Split", act_reopen: "Reopen", act_report: "Reported",
    reason: "Reason", text: "Text", hours: "Working hours to add", until_time: "Suspend until",
    assignee_id: "Reassign to (person ID)", new_segment: "Move to segment (optional)",
    result: "Result", pass: "Pass", fail: "Fail", of: "Case it duplicates", into: "Case to merge into",
    submit: "Submit", done: "Done", failed: "Failed", by: "By", enlarge: "Click to enlarge",
    close: "Close", related: "Related cases", no_photos: "No photos",
    alert_overdue: "Case overdue", alert_escalated: "Case escalated",
    alert_failed: "Verification failed", alerts_enable: "Enable desktop alerts",
    not_found: "No such case", none: "none", unassigned: "unassigned",
    offline: "Could not reach the server: nothing was submitted, try again",
  },
};
Object.assign(TEXT.zh, CASE_TEXT.zh);
Object.assign(TEXT.en, CASE_TEXT.en);

/** @type {{categories?: Record<string, {name: string, name_en: string}>}} */
const pageCfg = /** @type {any} */ (config);
setCategoryNames(pageCfg.categories || {});
export { catName, lang, t };

/**
 * Words with {placeholders}.
 * @param {string} key
 * @param {Record<string, string | number>} values
 */
export function tf(key, values) {
  return t(key).replace(/\{(\w+)\}/g, function (_m, k) { return String(values[k]); });
}

/** Put the page's data-i18n words in the current language; `redraw` runs after. */
export function applyWords() {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  document.querySelectorAll("[data-i18n]").forEach(function (node) {
    node.textContent = t(node.getAttribute("data-i18n") || "");
  });
  const btn = document.getElementById("cw-lang");
  if (btn) btn.textContent = lang === "en" ? "中文" : "EN";
}

/** The language button: switch, remember, redraw. @param {() => void} redraw */
export function installLang(redraw) {
  applyWords();
  $("cw-lang").addEventListener("click", function () {
    setLang(lang === "en" ? "zh" : "en");
    try {
      localStorage.setItem("roadwatch.lang", lang);
    } catch (e) { /* private mode: this page only */ }
    applyWords();
    redraw();
  });
}

/**
 * POST JSON; resolves with {ok, status, body}. A 401 goes to the login page; a request that
 * never reached the server (network down, server stopped) resolves with status 0 and an
 * error body in plain words, so no caller is left waiting on "…".
 * @param {string} path
 * @param {Record<string, unknown>} body
 * @returns {Promise<{ok: boolean, status: number, body: any}>}
 */
export function postJSON(path, body) {
  return fetch(root + path, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  }).then(function (r) {
    if (r.status === 401) toLogin();
    return r.json().catch(function () { return {}; }).then(function (b) {
      return { ok: r.ok, status: r.status, body: b };
    });
  }, function () {
    return { ok: false, status: 0, body: { errors: [{ field: "network", code: "offline", message: t("offline") }] } };
  });
}

/** The plain-words message of an API error body. @param {any} body */
export function errorText(body) {
  const e = body && body.errors && body.errors[0];
  return e ? e.message : t("failed");
}
