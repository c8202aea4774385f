// @ts-check
/* The export dialog: cases of a period (this week by default), district and status as
 * Excel or CSV (GET /api/cases.xlsx|csv; the server writes each export to the audit log).
 * Filters already in the page's address (?district=&status=&category=…, as the case
 * list spells them) are taken over. */
import { config, districtNames, root } from "./config.js";
import { t } from "./i18n.js";
import { $, dayKey, el, field, zoneMidnight } from "./util.js";

const STATUSES = ["overdue", "new", "dispatched", "reopened", "rectified", "closed", "invalid", "duplicate"];
const CARRIED = ["category", "severity", "segment", "overdue"];
const DAY_MS = 86400000;

/** "YYYY-MM-DD" of the Monday of this week in the city's zone. */
function monday() {
  const today = dayKey(new Date());
  const wd = new Date(today + "T12:00:00Z").getUTCDay(); // 0 = Sunday
  return dayKey(new Date(zoneMidnight(today).getTime() - ((wd + 6) % 7) * DAY_MS + DAY_MS / 2));
}

/** @param {string} preset */
function periodDays(preset) {
  const today = dayKey(new Date());
  if (preset === "today") return [today, today];
  if (preset === "last7") return [dayKey(new Date(Date.now() - 6 * DAY_MS)), today];
  if (preset === "month") return [today.slice(0, 8) + "01", today];
  return [monday(), today];
}

/** The download's URL: the chosen filters, days as [since, until) in the city's zone. */
function exportUrl() {
  const q = new URLSearchParams();
  const since = field("rw-export-since").value;
  const until = field("rw-export-until").value;
  if (since) q.set("since", zoneMidnight(since).toISOString());
  if (until) q.set("until", new Date(zoneMidnight(until).getTime() + DAY_MS).toISOString());
  const district = field("rw-export-district").value;
  if (district) q.set("district", district);
  const status = field("rw-export-status").value;
  if (status) q.set("status", status);
  const page = new URLSearchParams(location.search);
  CARRIED.forEach(function (k) {
    const v = page.get(k);
    if (v) q.set(k, v);
  });
  const fmt = /** @type {HTMLInputElement} */ (document.querySelector("#rw-export-form input[name=format]:checked")).value;
  return root + "/api/cases." + fmt + "?" + q.toString();
}

function refresh() {
  /** @type {HTMLAnchorElement} */ ($("rw-export-go")).href = exportUrl();
}

/** @param {HTMLSelectElement} select @param {[string, string][]} options @param {string} value */
function fill(select, options, value) {
  select.textContent = "";
  options.forEach(function (o) {
    const opt = /** @type {HTMLOptionElement} */ (el("option", null, o[1]));
    opt.value = o[0];
    select.appendChild(opt);
  });
  select.value = value;
}

function open() {
  const page = new URLSearchParams(location.search);
  const own = config.user && config.user.district;
  /** @type {[string, string][]} */
  const districts = own ? [[own, districtNames[own] || own]] : [["", t("city")]];
  if (!own) Object.keys(districtNames).sort().forEach(function (c) { districts.push([c, districtNames[c]]); });
  fill(/** @type {HTMLSelectElement} */ (field("rw-export-district")), districts, own || page.get("district") || "");
  /** @type {[string, string][]} */
  const statuses = [["", t("all")]];
  STATUSES.forEach(function (s) { statuses.push([s, t("status_" + s)]); });
  fill(/** @type {HTMLSelectElement} */ (field("rw-export-status")), statuses, page.get("status") || "");
  const days = page.get("since") ? [page.get("since") || "", page.get("until") || ""] : periodDays("week");
  field("rw-export-period").value = page.get("since") ? "custom" : "week";
  field("rw-export-since").value = days[0].slice(0, 10);
  field("rw-export-until").value = days[1].slice(0, 10);
  refresh();
  /** @type {HTMLDialogElement} */ ($("rw-export")).showModal();
}

/** The header's export button and its dialog (staff pages only). */
export function installExport() {
  const button = document.getElementById("rw-export-open");
  if (!button) return;
  button.addEventListener("click", open);
  field("rw-export-period").addEventListener("change", function () {
    const p = field("rw-export-period").value;
    if (p === "custom") return;
    const days = periodDays(p);
    field("rw-export-since").value = days[0];
    field("rw-export-until").value = days[1];
    refresh();
  });
  $("rw-export-form").addEventListener("change", function (e) {
    const id = /** @type {HTMLElement} */ (e.target).id;
    if (id === "rw-export-since" || id === "rw-export-until") field("rw-export-period").value = "custom";
    refresh();
  });
}
