// @ts-check
/* What every workbench page shares: its words (added to the live map's, live/i18n.js, so
 * one language choice holds on every page), the language switch, JSON writes with the
 * API's message shown, and the status line. */
import { lang, rememberLang, setLang, t, TEXT } from "../live/i18n.js";
import { root } from "../live/config.js";
import { $, toLogin } from "../live/util.js";

Object.assign(TEXT.zh, {
  review_title: "待核实上报", users_title: "账号管理", back_to_map: "地图",
  users_nav: "账号", rankings_nav: "排名", pending: "待核实", note: "备注", invalid: "无效",
  review_keys: "按 1–9 归到对应候选路段，X 标为无效，↑/↓ 切换上报。",
  review_empty: "没有待核实的上报。", settled: "已处理", candidates: "候选路段",
  similar_with: "连同同一上报人 50 米内的另外 {n} 条待核实上报一起处理",
  reason_ambiguous: "两条路段难以区分", reason_too_far: "离道路太远", reason_outside_city: "不在城区内",
  add_user: "新增账号", username: "用户名", password: "密码", role: "角色", state: "状态",
  last_login: "最近登录", actions: "操作", add: "新增", save: "保存", disable: "停用", enable: "启用",
  reset_password: "重置密码", active: "启用", disabled: "已停用", role_viewer: "只读",
  role_district_staff: "辖区人员", role_admin: "管理员", whole_city: "全市", saved: "已保存",
  new_password: "新密码（至少 8 位）",
  chiefs_title: "路长账号", chiefs_nav: "路长账号", chief_id: "编号", name: "姓名", account: "账号",
  devices: "在用设备", provision: "开通账号", reset_device: "重置密码并注销设备", revoke: "注销设备",
  no_account: "未开通", has_account: "已开通", new_chief_password: "新密码（只显示这一次）",
  chiefs_hint: "开通或重置后请把密码当面交给本人；手机 MQTT 密码文件用 roadwatch chiefs provision --passwd 生成并重载代理。",
});
Object.assign(TEXT.en, {
  review_title: "Reports to review", users_title: "Staff accounts", back_to_map: "Map",
  users_nav: "Accounts", rankings_nav: "Rankings", pending: "Pending",
  note: "Note", invalid: "Invalid",
  review_keys: "Press 1–9 to settle onto that candidate, X to mark invalid, ↑/↓ to move.",
  review_empty: "Nothing waits for review.", settled: "settled", candidates: "Candidates",
  similar_with: "Settle the same reporter's {n} other pending reports within 50 m with it",
  reason_ambiguous: "two segments too close to tell", reason_too_far: "too far from a road",
  reason_outside_city: "outside the city", add_user: "Add an account", username: "Username",
  password: "Password", role: "Role", state: "State", last_login: "Last login",
  actions: "Actions", add: "Add", save: "Save", disable: "Disable", enable: "Enable",
  reset_password: "Reset password", active: "active", disabled: "disabled",
  role_viewer: "viewer", role_district_staff: "district staff", role_admin: "administrator",
  whole_city: "whole city", saved: "saved", new_password: "New password (8 or more)",
  chiefs_title: "Road chiefs' accounts", chiefs_nav: "Chiefs", chief_id: "ID", name: "Name",
  account: "Account", devices: "Devices", provision: "Create account",
  reset_device: "New password, sign devices out", revoke: "Sign devices out",
  no_account: "none", has_account: "yes", new_chief_password: "New password (shown once only)",
  chiefs_hint: "Hand a new password to the person; for the broker, write its password file with roadwatch chiefs provision --passwd and reload it.",
});

/** @type {(() => void)[]} what each page redraws when the language changes */
const redraws = [];

/** @param {() => void} fn */
export function onLanguage(fn) {
  redraws.push(fn);
}

export function applyDeskLanguage() {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  document.querySelectorAll("[data-i18n]").forEach(function (n) {
    n.textContent = t(/** @type {string} */ (n.getAttribute("data-i18n")));
  });
  const title = document.querySelector(".rw-title");
  if (title) document.title = title.textContent + " · " + t("title");
  $("rw-lang").textContent = lang === "en" ? "中文" : "EN";
  redraws.forEach(function (fn) { fn(); });
}

/** The language switch (remembered as on the live map) and the first drawing. */
export function installDesk() {
  $("rw-lang").addEventListener("click", function () {
    setLang(lang === "en" ? "zh" : "en");
    rememberLang();
    applyDeskLanguage();
  });
  applyDeskLanguage();
}

/**
 * The status line: a plain message, or a refusal (role="alert" styling).
 * @param {string} text
 * @param {boolean} [bad]
 */
export function say(text, bad) {
  const m = $("rw-desk-msg");
  m.textContent = text;
  m.classList.toggle("rw-bad", !!bad);
}

/**
 * Send JSON; resolve with the answer, or reject with the API's own message.
 * @param {string} method
 * @param {string} path under the app's root
 * @param {unknown} body
 * @returns {Promise<any>}
 */
export function sendJSON(method, path, body) {
  return fetch(root + path, {
    method: method,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    credentials: "same-origin",
    body: JSON.stringify(body),
  }).then(function (r) {
    if (r.status === 401) {
      toLogin();
      throw new Error("login required");
    }
    return r.json().catch(function () { return {}; }).then(function (doc) {
      if (!r.ok) {
        const errs = (doc && doc.errors) || [];
        throw new Error(errs.map(function (/** @type {any} */ e) { return e.message; }).join("; ") || "HTTP " + r.status);
      }
      return doc;
    });
  });
}
