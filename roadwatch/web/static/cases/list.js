// @ts-check
/* The case list (/cases): the filters are the page's query string, with the same names as
 * GET /api/cases, so other pages link here with a filter (/cases?district=JS&status=overdue). */
import { root } from "../live/config.js";
import { catName, errorText, installLang, t, tf } from "./text.js";
import { districtName } from "../live/i18n.js";
import { $, dayTime, el, field, toLogin } from "../live/util.js";
import { startAlerts } from "../live/alerts.js";

const FILTERS = ["district", "status", "category", "severity", "segment", "assignee", "since",
  "until", "source", "q", "sort"];
const PAGE = 50;
/** @type {any} */
let last = null;

function query() {
  return new URLSearchParams(location.search);
}

/** Fill the form from the URL (what a link or the back button brought). */
function fillForm() {
  const q = query();
  FILTERS.forEach(function (name) {
    const f = field("f-" + name);
    if (!f) return;
    const v = q.get(name) || (name === "sort" ? "-observed_at" : "");
    if (f instanceof HTMLSelectElement && v && !Array.from(f.options).some(function (o) { return o.value === v; })) {
      f.add(new Option(v, v)); // a comma list or a district name from a link: keep it as given
    }
    f.value = v;
  });
}

/** @param {any} c one case of the API's list */
function row(c) {
  const tr = el("tr", c.overdue ? "cw-overdue" : null);
  const link = /** @type {HTMLAnchorElement} */ (el("a", null, dayTime(new Date(c.observed_at))));
  link.href = root + "/cases/" + encodeURIComponent(c.id);
  const first = el("td");
  first.appendChild(link);
  tr.appendChild(first);
  tr.appendChild(el("td", null, c.category + " " + catName(c.category)));
  tr.appendChild(el("td", null, t("sev" + c.severity)));
  tr.appendChild(el("td", "cw-status", t("status_" + (c.overdue ? "overdue" : c.case_status || c.status))));
  tr.appendChild(el("td", null, c.segment_name || c.segment_id || "–"));
  tr.appendChild(el("td", null, districtName(c.district)));
  tr.appendChild(el("td", null, c.assignee_name || c.assignee_id || t("unassigned")));
  tr.appendChild(el("td", null, c.due_at ? dayTime(new Date(c.due_at)) : "–"));
  tr.appendChild(el("td", "cw-note", c.note || ""));
  return tr;
}

function draw() {
  const body = $("cw-rows");
  body.textContent = "";
  if (!last) return;
  $("cw-total").textContent = String(last.total);
  if (!last.items.length) {
    const tr = el("tr");
    const td = el("td", "cw-empty", t("no_cases"));
    td.setAttribute("colspan", "9");
    tr.appendChild(td);
    body.appendChild(tr);
  }
  last.items.forEach(function (/** @type {any} */ c) { body.appendChild(row(c)); });
  const a = last.total ? last.offset + 1 : 0;
  $("cw-page").textContent = tf("page", { a: a, b: last.offset + last.items.length });
  /** @type {HTMLButtonElement} */ ($("cw-prev")).disabled = last.offset <= 0;
  /** @type {HTMLButtonElement} */ ($("cw-next")).disabled = !last.next;
}

function load() {
  const q = query();
  // a form sent before this module ran (or a hand-made link) may carry empty fields
  Array.from(q.keys()).forEach(function (k) { if (!q.get(k)) q.delete(k); });
  if (!q.get("limit")) q.set("limit", String(PAGE));
  $("cw-error").hidden = true;
  document.body.setAttribute("data-loading", "1");
  fetch(root + "/api/cases?" + q.toString(), { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .catch(function () { throw new Error(t("offline")); })
    .then(function (r) {
      if (r.status === 401) toLogin(); // the login ended: sign in again, back to this list
      return r.json().then(function (b) {
        if (!r.ok) throw new Error(errorText(b));
        return b;
      });
    })
    .then(function (b) {
      last = b;
      draw();
    })
    .catch(function (err) {
      $("cw-error").textContent = String(err.message || err);
      $("cw-error").hidden = false;
    })
    .finally(function () { document.body.removeAttribute("data-loading"); });
}

/** @param {number} delta pages forward (negative: back) */
function turn(delta) {
  const q = query();
  const offset = Math.max(0, (Number(q.get("offset")) || 0) + delta * PAGE);
  if (offset) q.set("offset", String(offset)); else q.delete("offset");
  history.pushState(null, "", location.pathname + "?" + q.toString());
  load();
}

/** Submit: the filled fields become the URL (empty ones left out), then load. */
$("cw-filters").addEventListener("submit", function (ev) {
  ev.preventDefault();
  const q = new URLSearchParams();
  FILTERS.forEach(function (name) {
    const f = field("f-" + name);
    if (f && f.value) q.set(name, f.value);
  });
  history.pushState(null, "", location.pathname + (q.toString() ? "?" + q.toString() : ""));
  load();
});
$("cw-prev").addEventListener("click", function () { turn(-1); });
$("cw-next").addEventListener("click", function () { turn(1); });
window.addEventListener("popstate", function () {
  fillForm();
  load();
});
installLang(draw);
fillForm();
load();
startAlerts();
document.body.setAttribute("data-ready", "1");
