// @ts-check
/* The page's words in Chinese (the default) and English, and the language shown.
 * Keys are used by t(key) and by the data-i18n attributes in index.html. */
import { districtNames } from "./config.js";

/** @type {{zh: Record<string, string>, en: Record<string, string>}} */
export const TEXT = {
  zh: {
    title: "路长制 指挥中心", segments: "路段", reports_today: "今日上报", reports_replay: "回放期间上报", open: "待处理",
    overdue: "超期", rectified_today: "今日整改", replay: "回放", big_screen: "大屏",
    logout: "退出", seg_id: "编号", span: "区段", district: "辖区", chief: "路长",
    score: "得分", length: "长度", top_categories: "今日高发问题", legend_segments: "路段状态",
    calm: "无待处理", score_90: "得分 ≥ 90", score_75: "得分 75–89", score_low: "得分 < 75",
    has_overdue: "有超期", legend_reports: "上报问题", sev1: "一般", sev2: "严重", sev3: "紧急",
    replaying: "回放", replay_day: "日期", one_day: "一天", one_week: "一周", load: "载入",
    play: "播放", pause: "暂停", back_to_live: "回到实时", server_down: "服务器连接中断",
    retrying: "正在自动重连…", live: "实时", connecting: "连接中", down: "断开 · 重连中",
    replay_state: "回放中", city: "全市", team: "责任人", open_cases: "待处理问题",
    recent: "最近上报", due: "时限", none: "无", unassigned: "未指定", metres: "米",
    since: "已中断", loading: "载入中…", events: "条事件", level0: "总路长", level1: "一级路长",
    level2: "二级路长", level3: "路段长", partner_unit: "驻区单位", merchant: "门前三包",
    status_dispatched: "已派遣", status_rectified: "已整改", status_closed: "已结案",
    status_reopened: "已退回", status_new: "新上报", status_needs_review: "待核实",
    status_accepted: "已受理", status_duplicate: "重复", status_invalid: "无效",
    status_overdue: "超期", status_escalated: "已督办", review_nav: "待核实", leaders_nav: "研判",
    export: "导出", export_title: "导出案件", period: "时段", this_week: "本周", today: "今天",
    last_7_days: "最近 7 天", this_month: "本月", custom: "自定义", from_day: "起始日",
    to_day: "截止日（含）", case_status: "状态", format: "格式", download: "下载", close: "关闭",
    all: "全部", replay_span: "时段", last_hour: "最近 1 小时", last_4_hours: "最近 4 小时",
    photo: "照片（点开看原图）", search_label: "搜索", search_hint: "路名、路段编号或案件编号",
    no_match: "没有找到",
  },
  en: {
    title: "Road Chief Command Centre", segments: "Segments", reports_today: "Reports today",
    reports_replay: "Reports in replay",
    open: "Open", overdue: "Overdue", rectified_today: "Fixed today", replay: "Replay",
    big_screen: "Big screen", logout: "Log out", seg_id: "ID", span: "From–to",
    district: "District", chief: "Road chief", score: "Score", length: "Length",
    top_categories: "Top problems today", legend_segments: "Segment state", calm: "Nothing open",
    score_90: "Score ≥ 90", score_75: "Score 75–89", score_low: "Score < 75",
    has_overdue: "Overdue case", legend_reports: "Reports", sev1: "Minor", sev2: "Serious",
    sev3: "Urgent", replaying: "Replay", replay_day: "Day", one_day: "One day",
    one_week: "One week", load: "Load", play: "Play", pause: "Pause",
    back_to_live: "Back to live", server_down: "Server unreachable",
    retrying: "Reconnecting automatically…", live: "Live", connecting: "Connecting",
    down: "Down · reconnecting", replay_state: "Replay", city: "City-wide", team: "Team",
    open_cases: "Open cases", recent: "Recent reports", due: "due", none: "none",
    unassigned: "unassigned", metres: "m", since: "down for", loading: "Loading…",
    events: "events", level0: "Chief road chief", level1: "Level-1 chief",
    level2: "Level-2 chief", level3: "Segment chief", partner_unit: "Partner unit",
    merchant: "Frontage merchant", status_dispatched: "dispatched", status_rectified: "rectified",
    status_closed: "closed", status_reopened: "reopened", status_new: "new",
    status_needs_review: "needs review", status_accepted: "accepted",
    status_duplicate: "duplicate", status_invalid: "invalid", status_overdue: "overdue",
    status_escalated: "escalated", review_nav: "Review", leaders_nav: "Analysis",
    export: "Export", export_title: "Export cases", period: "Period", this_week: "This week",
    today: "Today", last_7_days: "Last 7 days", this_month: "This month", custom: "Chosen days",
    from_day: "From", to_day: "To (inclusive)", case_status: "Status", format: "Format",
    download: "Download", close: "Close", all: "All", replay_span: "Period",
    last_hour: "Last hour", last_4_hours: "Last 4 hours",
    photo: "Photo (opens full size)", search_label: "Search",
    search_hint: "Road name, segment ID or case ID", no_match: "Nothing found",
  },
};

/** @typedef {"zh" | "en"} Lang */

/** The language shown: ?lang=, else the one chosen last time, else Chinese. */
export let lang = /** @type {Lang} */ ((function () {
  const q = new URLSearchParams(location.search).get("lang");
  if (q === "en" || q === "zh") return q;
  try {
    return localStorage.getItem("roadwatch.lang") === "en" ? "en" : "zh";
  } catch (e) {
    return "zh";
  }
})());

/** @param {Lang} value */
export function setLang(value) {
  lang = value;
}

/** Remember the language: here (localStorage) and for the server's pages (a cookie the
 * rankings pages read, roadwatch/web/rankings.py). */
export function rememberLang() {
  try {
    localStorage.setItem("roadwatch.lang", lang);
  } catch (e) { /* private mode: not remembered */ }
  document.cookie = "roadwatch_lang=" + lang + "; path=/; SameSite=Lax; max-age=31536000";
}

/** @param {string} key */
export function t(key) {
  return (TEXT[lang] && TEXT[lang][key]) || TEXT.zh[key] || key;
}

/** @typedef {{name: string, name_en: string}} CategoryName */
/** @type {Record<string, CategoryName>} code -> names */
let categoryNames = {};

/** @param {Record<string, CategoryName>} names */
export function setCategoryNames(names) {
  categoryNames = names;
}

/** @param {string | null | undefined} code */
export function catName(code) {
  const c = code != null ? categoryNames[code] : undefined;
  return c ? (lang === "en" ? c.name_en : c.name) : String(code || "");
}

/** @param {string | null | undefined} code */
export function districtName(code) {
  return (code != null && districtNames[code]) || code || "";
}
