// @ts-check
/* The case page's extension requests (issue 19): what a responsible chief asked for from the
 * phone (hours, reason), and for a pending one an officer's approve or refuse with a reason.
 * Approving grants it as the staff `extend` does (the server moves the deadline in working
 * hours); both are POSTs as the logged-in officer, who the server records. */
import { TEXT } from "../live/i18n.js";
import { config } from "../live/config.js";
import { $, dayTime, el } from "../live/util.js";
import { errorText, postJSON, t, tf } from "./text.js";

Object.assign(TEXT.zh, {
  extensions: "延期申请", ext_asked: "{who} 申请延长 {h} 工作小时（{at}）：{reason}",
  ext_pending: "待审批", ext_approved: "已批准", ext_refused: "未批准", ext_approve: "批准延期",
  ext_refuse: "不批准", ext_reason: "审批意见（不批准时必填）", ext_by: "{who} 于 {at}",
  act_request_extension: "申请延期", act_refuse_extension: "不批准延期",
});
Object.assign(TEXT.en, {
  extensions: "Extension requests", ext_asked: "{who} asks for {h} more working hours ({at}): {reason}",
  ext_pending: "pending", ext_approved: "approved", ext_refused: "refused", ext_approve: "Approve",
  ext_refuse: "Refuse", ext_reason: "Decision note (required to refuse)", ext_by: "{who} at {at}",
  act_request_extension: "Extension asked", act_refuse_extension: "Extension refused",
});

/** @param {string | null} iso */
function when(iso) {
  return iso ? dayTime(new Date(iso)) : "–";
}

/**
 * An officer's decision form for a pending request.
 * @param {string} caseId
 * @param {any} req
 * @param {() => void} reload
 */
function decide(caseId, req, reload) {
  const form = el("div", "cw-ext-decide");
  const label = el("label");
  label.appendChild(el("span", null, t("ext_reason")));
  const input = document.createElement("input");
  input.type = "text";
  input.id = "cw-ext-reason";
  label.appendChild(input);
  form.appendChild(label);
  const result = el("p", "cw-ext-result");
  result.setAttribute("role", "status");
  ["approve", "refuse"].forEach(function (what) {
    const b = /** @type {HTMLButtonElement} */ (el("button", null, t("ext_" + what)));
    b.type = "button";
    b.id = "cw-ext-" + what;
    b.addEventListener("click", function () {
      /** @type {Record<string, unknown>} */
      const body = { request_id: req.id };
      if (input.value.trim()) body.reason = input.value.trim();
      const path = "/api/cases/" + encodeURIComponent(caseId) + "/" + what + "_extension";
      postJSON(path, body).then(function (r) {
        if (r.ok) reload();
        else { result.textContent = errorText(r.body); result.className = "cw-ext-result cw-error"; }
      });
    });
    form.appendChild(b);
  });
  form.appendChild(result);
  return form;
}

/**
 * Draw the case's requests (the section stays hidden when there are none).
 * @param {any} data the case (GET /api/cases/<id>)
 * @param {() => void} reload
 */
export function drawExtensions(data, reload) {
  const list = $("cw-extensions");
  const reqs = data.extension_requests || [];
  /** @type {HTMLElement} */ ($("cw-extensions-box")).hidden = !reqs.length;
  list.textContent = "";
  const writer = config.user && config.user.role !== "viewer";
  reqs.forEach(function (/** @type {any} */ req) {
    const li = el("li", "cw-ext cw-ext-" + req.status);
    li.setAttribute("data-request", req.id);
    li.setAttribute("data-status", req.status);
    li.appendChild(el("div", null, tf("ext_asked", {
      who: (req.requested_by_name ? req.requested_by_name + " " : "") + req.requested_by, h: req.hours, at: when(req.requested_at), reason: req.reason,
    }) + " · " + t("ext_" + req.status)));
    if (req.status !== "pending") {
      const by = tf("ext_by", { who: req.decided_by, at: when(req.decided_at) });
      li.appendChild(el("div", "cw-muted", by + (req.decision_note ? "：" + req.decision_note : "")));
    } else if (writer) {
      li.appendChild(decide(data.id, req, reload));
    }
    list.appendChild(li);
  });
}
