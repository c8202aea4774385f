// @ts-check
/* The language switch (issue 20): Chinese by default, English only when the chief picks it
 * (remembered on the phone, localStorage). The app is written in Chinese; in English every
 * text the chief sees -- the page, what the modules write into it, the platform's errors
 * ("中文 (English)") and notices (`message_en`) -- is put into English where it lands
 * (a MutationObserver over the page), so no module needs to know the language. Category
 * names come in English from the platform (`name_en`); segment and people's names stay.
 */

const LANG_KEY = "rw-lang";

/** @returns {"zh" | "en"} */
export function uiLang() {
  try { return localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh"; } catch (_) { return "zh"; }
}

/** Exact texts (trimmed). */
/** @type {Record<string, string>} */
const WORDS = {
  // extension.js (申请延期) and route.js (观摩路线)
  "申请延期": "Ask for more time", "延期原因": "Reason for more time", "延长工作小时": "Working hours more",
  "提交申请": "Send the request", "正在提交…": "Sending…",
  "延期申请已提交，等待指挥中心审批": "Request sent; the command centre decides",
  "网络不通，请稍后再试": "No connection; try again later",
  "观摩路线": "Site-visit routes", "没有发给你的观摩路线": "No site-visit route sent to you",
  "打不开这条路线": "This route cannot be opened", "离线：联网后再打开": "Offline: open it when online",
  "路长通": "Road Chief", "路长通 · 路长制": "Road Chief", "离线": "Offline", "在线": "Online",
  "在线 (HTTP)": "Online (HTTP)", "连接中": "Connecting", "未登录": "Not signed in",
  "路长登录": "Road chief sign-in", "账号或手机号": "ID or phone number", "密码": "Password",
  "登录": "Sign in", "登录失败": "Sign-in failed", "首次登录需要联网": "The first sign-in needs a connection",
  "问题类别": "Category", "照片": "Photos", "拍照 / 选图": "Take / choose a photo", "位置": "Position",
  "正在定位…": "Locating…", "请选择所在路段：": "Choose your segment:", "严重程度": "Severity",
  "一般": "Minor", "较重": "Serious", "紧急": "Urgent", "备注": "Note", "上报": "Report",
  "我的工作": "My work", "发送记录": "Sent", "我的路段": "My segments", "巡查": "Patrol",
  "开始巡查": "Start patrol", "结束巡查": "End patrol", "巡查中…": "Patrolling…", "轨迹点": "Track points",
  "待办案件": "Open cases", "本周巡查计划": "This week's patrol plan", "整改反馈": "Report the fix",
  "拍整改后照片": "Photo after the fix", "提交整改": "Send the fix", "返回": "Back",
  "每条先存在手机里，收到平台回执才算完成；断网时会自动重发。":
    "Everything is kept on the phone until the platform confirms it; it is resent by itself after a connection loss.",
  "清除已完成": "Clear finished", "我的上报（平台记录）": "My reports (platform record)",
  "离线：联网后显示平台记录": "Offline: the platform's record shows once online",
  "暂时读不到平台记录，稍后再试": "The platform's record cannot be read just now; try again later", "退出登录": "Sign out",
  "平台不能确定您在哪条路段，请点选：": "The platform is not sure which segment you are on. Tap one:",
  "不确定，直接上报": "Not sure: send as it is", "没有待办案件": "No open cases", "无期限": "No deadline",
  "本人上报": "Reported by you", "已整改，待核查": "Fixed, awaiting check",
  "整改反馈已保存，等待发送": "Fix saved, waiting to be sent", "整改反馈已保存，正在发送": "Fix saved, sending",
  "已保存，正在发送…": "Saved, sending…", "已保存在手机上，联网后自动发送": "Saved on the phone; sent when online",
  "离线时不能询问所在路段：平台不确定时由工作人员核实":
    "Offline, the segment could not be asked: where the platform is not sure, staff check it",
  "已发送，等待回执": "Sent, awaiting receipt", "已受理": "Accepted", "待发送": "Waiting to send", "被退回": "Rejected",
  "已受理·路段待人工核定": "Accepted · segment to be checked by staff",
  "已收到，路段待人工核定": "Received · segment to be checked by staff",
  "请选择问题类别": "Choose a category", "还没有定位：请稍候，或到开阔处": "No position yet: wait, or move into the open",
  "位置远在城区之外，不能上报：请检查手机定位": "The position is far outside the city: check the phone's location",
  "定位不准：请在“位置”下选择所在路段": "Poor position: choose your segment under Position",
  "请拍一张整改后的照片": "Take a photo after the fix", "未允许定位：请在设置中允许本应用使用位置":
    "Location not allowed: allow it for this app in the settings", "暂时无法定位，请到开阔处": "No position for now: move into the open",
  "发送太频繁，服务器要求稍候": "Too many sends: the server asks to wait", "尚未连上服务器": "Not connected to the server yet",
  "服务器暂时繁忙": "The server is busy", "服务器未确认收到": "The server did not confirm", "平台未说明原因": "No reason given",
  "照片上传时损坏，将重新上传": "The photo was damaged in upload; uploading again", "照片在手机上找不到了": "The photo is no longer on the phone",
  "请重新登录后发送": "Sign in again to send", "这次巡查没有走完任何路段": "This patrol covered no segment completely",
  "新案件": "New case", "整改未通过，案件重新打开": "Fix not accepted: case reopened", "案件已超期": "Case overdue",
  "案件已升级": "Case escalated", "有新的通知": "New notice", "已超期": "Overdue", "本周没有安排": "Nothing planned this week",
  "还没有上报": "No reports yet", "（今日已巡查）": " (patrolled today)", "（尚无记录：按本区最忙时段轮巡）":
    " (no record yet: following the district's busiest hours)", "问题上报": "Problem report",
  "秩序": "Order", "卫生": "Sanitation", "立面": "Facades", "设施": "Facilities",
  "可不填：地点、店名、情况…": "Optional: place, shop name, what you see…", "整改情况": "What was done",
  "我的路段地图": "Map of my segments", "附近路段地图": "Map of the nearby segments", "删除照片": "Remove photo",
  "问题照片": "Problem photo", "周一": "Mon", "周二": "Tue", "周三": "Wed", "周四": "Thu",
  "周五": "Fri", "周六": "Sat", "周日": "Sun",
  // the platform's outcomes of a report (roadwatch/web/mobile.py OUTCOME_WORDS)
  "已受理，等待派单": "Accepted, awaiting dispatch", "已派单，处理中": "Dispatched, in hand",
  "已并入已有案件": "Merged into an existing case", "整改未通过，重新处理": "Fix not accepted, in hand again",
  "已办结": "Closed", "路段待人工核定": "Segment to be checked by staff",
};

/** The platform's errors read "中文 (English)": the English part. Never applied to the page's
 * own English (translate() again on what it wrote, for the parts still in Chinese): a
 * candidate segment's "路名（甲至乙） (about 14 m)" then lost its name, "about 14 m".
 * @type {[RegExp, string]} */
const PLATFORM_ERROR = [/^[^()]*[\u4e00-\u9fff][^()]* \(([^()]*[A-Za-z][^()]*)\)$/, "$1"];

/** Texts with parts: [pattern, English with $1…]. */
/** @type {[RegExp, string][]} */
const PATTERNS = [
  [/^(\d+) 处 · (.+)$/, "$1 stops · $2"],
  [/^步行 ([\d.]+) 公里，约 (\d+) 分钟（含每处停留 (\d+) 分钟）$/, "Walk $1 km, about $2 min ($3 min at each stop)"],
  [/^\s*距上一处 (\d+) 米$/, " $1 m from the previous stop"],
  [/^已选：(.+)$/, "Chosen: $1"],
  [/^已受理·(.+)$/, "Accepted · $1"],
  [/^已并入已有案件·(.+)$/, "Merged into an existing case · $1"],
  [/^被退回：(.*)$/, "Rejected: $1"],
  [/^原因：(.*)$/, "Reason: $1"],
  [/^路段：(.*)$/, "Segment: $1"],
  [/^(.*)（约 (\d+) 米）$/, "$1 (about $2 m)"],
  [/^已定位：精度 ±(\d+) 米 · (.+)$/, "Located: ±$1 m · $2"],
  [/^定位较差（精度 ±(\d+) 米 · (.+)）：请在下面选择路段$/, "Poor fix (±$1 m · $2): choose your segment below"],
  [/^定位已过时（精度 ±(\d+) 米 · (.+)）：请在下面选择路段$/, "Old fix (±$1 m · $2): choose your segment below"],
  [/^位置远在城区之外（(.+)），请检查定位$/, "Far outside the city ($1): check the location"],
  [/^刚刚$/, "just now"], [/^(\d+) 秒前$/, "$1 s ago"],
  [/^剩 (\d+) 小时(.*)$/, "$1 h left$2"], [/^剩 (\d+) 分钟(.*)$/, "$1 min left$2"],
  [/^已超期 (\d+) 小时(.*)$/, "Overdue by $1 h$2"], [/^已超期 (\d+) 分钟(.*)$/, "Overdue by $1 min$2"],
  [/^(.*) · 期限 (.+)$/, "$1 · due $2"],
  [/^上报人：(.*) · (.*)$/, "Reported by $1 · $2"], [/^本人上报 · (.*)$/, "Reported by you · $1"],
  [/^(.*) · 上报于 (.*)$/, "$1 · reported $2"],
  [/^(.+)（(\d+)）$/, "$1 ($2)"],
  [/^备注太长：最多 (\d+) 字（现在 (\d+) 字）$/, "Note too long: at most $1 characters (now $2)"],
  [/^“(.+)”不是图片$/, "“$1” is not a picture"], [/^“(.+)”无法读取，不是有效的图片$/, "“$1” cannot be read: not a valid picture"],
  [/^“(.+)”太大（(.+)），无法处理$/, "“$1” is too large ($2)"], [/^“(.+)”无法压缩$/, "“$1” cannot be compressed"],
  [/^照片压缩后仍有 (.+) MB，超过 (.+) MB 上限$/, "The photo is still $1 MB, over the $2 MB limit"],
  [/^照片被拒收：(.*)$/, "Photo refused: $1"], [/^照片上传失败 \(HTTP (\d+)\)$/, "Photo upload failed (HTTP $1)"],
  [/^服务器暂时不可用 \(HTTP (\d+)\)$/, "Server unavailable (HTTP $1)"],
  [/^暂未送达（(.*)），会自动重试$/, "Not delivered yet ($1); retried by itself"],
  [/^(.*)，(\d+) 秒后自动重试$/, "$1; retried in $2 s"],
  [/^还有 (\d+) 条未送达，联网发送后再退出$/, "$1 items not delivered yet: send them before signing out"],
  [/^ · (\d+) 张照片$/, " · $1 photo(s)"],
  [/^巡查结束，(\d+) 个轨迹点，等待平台核算…$/, "Patrol ended, $1 track points; the platform is checking…"],
  [/^巡查已满 (\d+) 个轨迹点，已自动结束；可再开始一次$/, "Patrol full at $1 track points and ended; start another"],
  [/^已巡查路段：(.*)$/, "Patrolled segments: $1"], [/^新案件：(.*)$/, "New case: $1"],
  [/^预计发现 (.+) 件$/, "Expected findings: $1"],
  [/^共 (\d+) 次，约 (.+) 小时，预计发现 (.+) 件(.*)$/, "$1 visits, about $2 h, expected findings $3$4"],
  [/^(周.) (.+)$/, "$1 $2"],
  [/^发送记录 ?(.*)$/, "Sent $1"],
  [/^轨迹点 ?(.*)$/, "Track points $1"],
  [/^账号或手机号 ?$/, "ID or phone number"], [/^密码 ?$/, "Password"],
  [/^([^：]+)：(.+)$/, "$1: $2"], // "label：value" (an outbox item's kind and category)
  PLATFORM_ERROR,
];

/** Category and group names the platform gave in both languages (from /m/api/me). */
/** @type {Map<string, string>} */
const NAMES = new Map();

/**
 * Learn the English category names from the chief's data.
 * @param {any} me
 */
export function learnNames(me) {
  for (const g of (me && me.categories && me.categories.groups) || []) {
    for (const c of g.items || []) if (c.name_en) NAMES.set(c.name, c.name_en);
  }
}

const HAN = /[\u4e00-\u9fff]/;

/**
 * The English of one text (unchanged when nothing fits).
 * @param {string} text
 * @param {boolean} [again] the text is the page's own English, translated again
 * @returns {string}
 */
export function english(text, again = false) {
  const t = text.trim();
  if (!HAN.test(t)) return text;
  const lead = text.slice(0, text.indexOf(t[0]));
  const tail = text.slice(lead.length + t.length);
  let out = WORDS[t] || NAMES.get(t);
  if (out === undefined) {
    for (const rule of PATTERNS) {
      const [re, en] = rule;
      if (again && rule === PLATFORM_ERROR) continue;
      if (re.test(t)) { out = t.replace(re, en); break; }
    }
  }
  if (out === undefined) {
    // names joined with "·" or "，" (a receipt: category · segment): each part on its own
    const parts = t.split(/(·|，)/);
    if (parts.length > 1) out = parts.map((p) => (p === "，" ? ", " : p === "·" ? p : english(p, again))).join("");
  }
  if (out === undefined) return text;
  // the parts a pattern kept may be words too (a category in "已选：…")
  for (const [zh, en] of Object.entries(WORDS)) if (zh.length > 3 && out.includes(zh)) out = out.replace(zh, en);
  out = out.replace(/[\u4e00-\u9fff]+/g, (w) => WORDS[w] || NAMES.get(w) || w);
  return lead + out + tail;
}

const ATTRS = ["placeholder", "aria-label", "alt", "title"];

/** What translate() itself last wrote into a text node (the observer sees that change too).
 * @type {WeakMap<Node, string>} */
const written = new WeakMap();

/** @param {Node} node */
function translate(node) {
  if (node.nodeType === Node.TEXT_NODE) {
    const v = node.nodeValue || "";
    const en = english(v, written.get(node) === v);
    if (en !== v) { written.set(node, en); node.nodeValue = en; }
    return;
  }
  if (!(node instanceof Element) || node.tagName === "SCRIPT" || node.tagName === "STYLE") return;
  for (const a of ATTRS) {
    const v = node.getAttribute(a);
    if (v && HAN.test(v)) node.setAttribute(a, english(v));
  }
  if (node instanceof HTMLInputElement && node.type === "radio") return;
  for (const kid of node.childNodes) translate(kid);
}

/** The switch in the header, and in English the page kept in English from now on. */
export function installLang() {
  const lang = uiLang();
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  const button = /** @type {HTMLElement} */ (document.querySelector("#lang"));
  button.textContent = lang === "en" ? "中文" : "EN";
  button.setAttribute("aria-label", lang === "en" ? "切换到中文" : "Switch to English");
  button.addEventListener("click", () => {
    try { localStorage.setItem(LANG_KEY, lang === "en" ? "zh" : "en"); } catch (_) { /* private mode */ }
    location.reload(); // the page is written in Chinese: a fresh one, then translated
  });
  if (lang !== "en") return;
  document.title = english(document.title);
  translate(document.body);
  new MutationObserver((changes) => {
    for (const c of changes) {
      if (c.type === "characterData") translate(c.target);
      else if (c.type === "attributes") translate(/** @type {Node} */ (c.target));
      else for (const n of c.addedNodes) translate(n);
    }
  }).observe(document.body, { subtree: true, childList: true, characterData: true,
    attributes: true, attributeFilter: ATTRS });
  // the button itself says 中文 on purpose
  button.textContent = "中文";
}
