// @ts-check
/* Staff accounts (administrators): add, change role or district, disable or enable, reset
 * a password; every change is done and audited by the API (/api/users) under the
 * logged-in administrator. */
import { config, districtNames } from "../live/config.js";
import { t } from "../live/i18n.js";
import { $, dayTime, el, fetchJSON } from "../live/util.js";
import { installDesk, onLanguage, say, sendJSON } from "./common.js";

/** @typedef {{username: string, role: string, district: string | null, active: boolean,
 *   last_login_at: string | null}} Account */

const ROLES = ["viewer", "district_staff", "admin"];
/** @type {Account[]} */
let accounts = [];
const page = { ready: false, changes: 0 };
/** @type {any} */ (window).roadwatch = { users: page };

/**
 * The role and district choices of a form (the add form, or a row's).
 * @param {HTMLSelectElement} role
 * @param {HTMLSelectElement} district
 * @param {string} [roleValue]
 * @param {string | null} [districtValue]
 */
function fillChoices(role, district, roleValue, districtValue) {
  role.textContent = "";
  ROLES.forEach(function (r) {
    const o = /** @type {HTMLOptionElement} */ (el("option", null, t("role_" + r)));
    o.value = r;
    role.appendChild(o);
  });
  role.value = roleValue || "district_staff";
  district.textContent = "";
  const none = /** @type {HTMLOptionElement} */ (el("option", null, t("whole_city")));
  none.value = "";
  district.appendChild(none);
  Object.keys(districtNames).sort().forEach(function (code) {
    const o = /** @type {HTMLOptionElement} */ (el("option", null, districtNames[code] + " (" + code + ")"));
    o.value = code;
    district.appendChild(o);
  });
  district.value = districtValue || "";
}

/**
 * A labelled control of a row (every field has its name, for keyboards and readers).
 * @param {string} key
 * @param {HTMLElement} control
 */
function labelled(key, control) {
  const l = el("label");
  l.appendChild(el("span", null, t(key)));
  l.appendChild(control);
  return l;
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} body
 */
function change(method, path, body) {
  return sendJSON(method, path, body).then(function () {
    page.changes += 1;
    say(t("saved"));
    return load().then(function () { return true; });
  }).catch(function (err) {
    say(String(err.message || err), true);
    return false;
  });
}

function render() {
  const body = $("rw-users");
  body.textContent = "";
  accounts.forEach(function (a) {
    const tr = el("tr");
    tr.setAttribute("data-user", a.username);
    tr.appendChild(el("td", null, a.username));
    tr.appendChild(el("td", null, t("role_" + a.role)));
    tr.appendChild(el("td", null, a.district ? (districtNames[a.district] || a.district) : t("whole_city")));
    tr.appendChild(el("td", null, t(a.active ? "active" : "disabled")));
    tr.appendChild(el("td", null, a.last_login_at ? dayTime(new Date(a.last_login_at)) : "–"));
    const tools = el("td");
    const box = el("div", "rw-row-tools");
    const role = /** @type {HTMLSelectElement} */ (el("select"));
    role.name = "role";
    const district = /** @type {HTMLSelectElement} */ (el("select"));
    district.name = "district";
    fillChoices(role, district, a.role, a.district);
    const save = /** @type {HTMLButtonElement} */ (el("button", "rw-save", t("save")));
    save.type = "button";
    save.addEventListener("click", function () {
      change("PATCH", "/api/users/" + encodeURIComponent(a.username), { role: role.value, district: district.value || null });
    });
    const toggle = /** @type {HTMLButtonElement} */ (el("button", "rw-toggle", t(a.active ? "disable" : "enable")));
    toggle.type = "button";
    toggle.disabled = config.user != null && a.username === config.user.name; // not oneself
    toggle.addEventListener("click", function () {
      change("PATCH", "/api/users/" + encodeURIComponent(a.username), { active: !a.active });
    });
    const pw = /** @type {HTMLInputElement} */ (el("input"));
    pw.type = "password";
    pw.name = "new-password";
    pw.autocomplete = "new-password";
    const reset = /** @type {HTMLButtonElement} */ (el("button", "rw-reset", t("reset_password")));
    reset.type = "button";
    reset.addEventListener("click", function () {
      change("POST", "/api/users/" + encodeURIComponent(a.username) + "/password", { password: pw.value });
    });
    box.appendChild(labelled("role", role));
    box.appendChild(labelled("district", district));
    box.appendChild(save);
    box.appendChild(toggle);
    box.appendChild(labelled("new_password", pw));
    box.appendChild(reset);
    tools.appendChild(box);
    tr.appendChild(tools);
    body.appendChild(tr);
  });
}

function load() {
  return fetchJSON("/api/users").then(function (doc) {
    accounts = doc.items || [];
    render();
    page.ready = true;
  });
}

const form = /** @type {HTMLFormElement} */ ($("rw-user-add"));
const formRole = /** @type {HTMLSelectElement} */ (form.querySelector("select[name=role]"));
const formDistrict = /** @type {HTMLSelectElement} */ (form.querySelector("select[name=district]"));
form.addEventListener("submit", function (e) {
  e.preventDefault();
  const data = new FormData(form);
  change("POST", "/api/users", {
    username: data.get("username"),
    password: data.get("password"),
    role: data.get("role"),
    district: data.get("district") || null,
  }).then(function (ok) {
    if (ok) form.reset();
  });
});
onLanguage(function () {
  fillChoices(formRole, formDistrict, formRole.value, formDistrict.value);
  render();
});
installDesk();
load();
