// @ts-check
/* The road chiefs' phone accounts (administrators): who has one, how many devices are
 * signed in; create an account or give a new password (shown once, devices signed out),
 * or sign a lost phone out (POST /api/chiefs/<id>/provision | revoke, audited). */
import { districtNames } from "../live/config.js";
import { t } from "../live/i18n.js";
import { $, el, fetchJSON } from "../live/util.js";
import { installDesk, onLanguage, say, sendJSON } from "./common.js";

/** @type {any[]} */
let chiefs = [];
const page = { ready: false, secret: "" };
/** @type {any} */ (window).roadwatch = { chiefs: page };

/**
 * @param {string} cls
 * @param {string} label
 * @param {() => void} act
 */
function button(cls, label, act) {
  const b = /** @type {HTMLButtonElement} */ (el("button", cls, label));
  b.type = "button";
  b.addEventListener("click", act);
  return b;
}

function render() {
  const body = $("rw-chiefs");
  body.textContent = "";
  chiefs.forEach(function (c) {
    const tr = el("tr");
    tr.setAttribute("data-chief", c.id);
    tr.appendChild(el("td", null, c.id));
    tr.appendChild(el("td", null, c.name));
    tr.appendChild(el("td", null, c.district ? districtNames[c.district] || c.district : "–"));
    tr.appendChild(el("td", null, t(c.account ? "has_account" : "no_account")));
    tr.appendChild(el("td", null, String(c.devices)));
    const tools = el("td");
    tools.appendChild(button("rw-provision", t(c.account ? "reset_device" : "provision"), function () {
      sendJSON("POST", "/api/chiefs/" + encodeURIComponent(c.id) + "/provision", {}).then(function (doc) {
        page.secret = doc.password;
        $("rw-chief-secret").textContent = c.id + " · " + t("new_chief_password") + ": " + doc.password;
        return load();
      }).catch(function (err) { say(String(err.message || err), true); });
    }));
    if (c.devices) {
      tools.appendChild(button("rw-revoke", t("revoke"), function () {
        sendJSON("POST", "/api/chiefs/" + encodeURIComponent(c.id) + "/revoke", {}).then(function () {
          say(t("saved"));
          return load();
        }).catch(function (err) { say(String(err.message || err), true); });
      }));
    }
    tr.appendChild(tools);
    body.appendChild(tr);
  });
}

function load() {
  return fetchJSON("/api/chiefs").then(function (doc) {
    chiefs = doc.items || [];
    render();
    page.ready = true;
  });
}

onLanguage(render);
installDesk();
load();
