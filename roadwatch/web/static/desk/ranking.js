// @ts-check
/* The rankings pages: the language switch (remembered for every page), and on a week's
 * page its disputes (GET /api/rankings/<week>/disputes): listed with their outcome, an
 * upheld one's finding struck through; staff file one while the week is a draft, and
 * administrators decide (POST …/disputes, POST /api/rankings/disputes/<id>). */
import { config, root } from "../live/config.js";
import { rememberLang, setLang } from "../live/i18n.js";
import { el } from "../live/util.js";
import { sendJSON } from "./common.js";

/** @type {{week?: string, staff?: boolean, admin?: boolean, words: Record<string, string>}} */
const cfg = /** @type {any} */ (config);
const w = cfg.words || {};
const state = { disputes: -1 };
/** @type {any} */ (window).roadwatch = { ranking: state };

const switcher = document.getElementById("rw-lang");
if (switcher) {
  switcher.addEventListener("click", function () {
    setLang(switcher.getAttribute("data-lang") === "en" ? "en" : "zh");
    rememberLang(); // then the link itself opens the page in that language
  });
}

/**
 * @param {string} text
 * @param {Record<string, number>} counts
 */
function fill(text, counts) {
  return text.replace(/\{(\w+)\}/g, function (_m, k) { return String(counts[k] ?? 0); });
}

/** @param {any} d */
function decisionCell(d) {
  const td = el("td", null, d.decision ? w[d.decision] + (d.decision_note ? " · " + d.decision_note : "") : w.pending);
  if (d.decision || !cfg.admin) return td;
  const note = /** @type {HTMLInputElement} */ (el("input"));
  note.setAttribute("aria-label", w.note);
  note.placeholder = w.note;
  td.appendChild(note);
  ["upheld", "rejected"].forEach(function (decision) {
    const b = /** @type {HTMLButtonElement} */ (el("button", null, w[decision === "upheld" ? "uphold" : "reject"]));
    b.type = "button";
    b.setAttribute("data-decision", decision);
    b.addEventListener("click", function () {
      sendJSON("POST", "/api/rankings/disputes/" + d.id, { decision: decision, note: note.value })
        .then(load)
        .catch(function (err) { td.appendChild(el("div", "rw-bad", String(err.message || err))); });
    });
    td.appendChild(b);
  });
  return td;
}

function load() {
  if (!cfg.week) return Promise.resolve();
  return fetch(root + "/api/rankings/" + cfg.week + "/disputes", { credentials: "same-origin" })
    .then(function (r) { return r.json(); })
    .then(function (doc) {
      /** @type {HTMLElement} */ (document.getElementById("rw-disputes-counts")).textContent = fill(w.disputes_counts, doc);
      const table = /** @type {HTMLTableElement} */ (document.getElementById("rw-disputes-table"));
      const body = /** @type {HTMLElement} */ (table.querySelector("tbody"));
      body.textContent = "";
      const items = doc.items || [];
      table.hidden = items.length === 0;
      items.forEach(function (/** @type {any} */ d) {
        const tr = el("tr");
        tr.setAttribute("data-dispute", String(d.id));
        const cell = el("td");
        const link = /** @type {HTMLAnchorElement} */ (el("a"));
        link.href = root + "/cases/" + d.report_id;
        link.appendChild(el(d.decision === "upheld" ? "del" : "code", null, d.report_id));
        cell.appendChild(link);
        tr.appendChild(cell);
        tr.appendChild(el("td", null, d.filed_by));
        tr.appendChild(el("td", null, d.reason));
        tr.appendChild(decisionCell(d));
        body.appendChild(tr);
        if (d.decision === "upheld") {
          document.querySelectorAll('tr[data-report="' + d.report_id + '"]').forEach(function (row) {
            row.classList.add("rw-struck");
          });
        }
      });
      state.disputes = items.length;
    });
}

const form = /** @type {HTMLFormElement | null} */ (document.getElementById("rw-dispute-form"));
if (form) {
  const f = form;
  f.addEventListener("submit", function (e) {
    e.preventDefault();
    const data = new FormData(f);
    const msg = /** @type {HTMLElement} */ (document.getElementById("rw-dispute-msg"));
    sendJSON("POST", "/api/rankings/" + cfg.week + "/disputes", {
      report_id: String(data.get("report_id") || "").trim(),
      reason: String(data.get("reason") || ""),
      evidence: String(data.get("evidence") || "").split(",").map(function (x) { return x.trim(); })
        .filter(function (x) { return x; }),
    }).then(function () {
      msg.textContent = "";
      f.reset();
      return load();
    }).catch(function (err) { msg.textContent = String(err.message || err); });
  });
}
load();
