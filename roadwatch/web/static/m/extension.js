// @ts-check
/* "申请延期": a chief asks for more working hours on an open case, with a reason
 * (POST /m/api/cases/{id}/request_extension, as the signed-in chief; docs/protocol.md 4.5).
 * The command centre approves or refuses it; the answer comes back as a notice. This is an
 * online request, not an outbox message: without a connection the chief is told to retry.
 */
import { api } from "./session.js";
import { el, errorsText, toast } from "./util.js";

const CLOCK_RUNNING = ["dispatched", "reopened"];

/**
 * The case card's "申请延期" button and its small form, or null when the case has no
 * running deadline.
 * @param {import("./state.js").Case} c
 * @returns {HTMLElement | null}
 */
export function extensionButton(c) {
  if (!CLOCK_RUNNING.includes(c.status)) return null;
  const hours = el("input", { type: "number", name: "hours", min: "1", max: "720", step: "1", value: "8", required: true });
  const reason = el("textarea", { name: "reason", rows: "2", maxlength: "2000", required: true });
  const said = el("p", { class: "hint", role: "status" });
  const form = el("form", { class: "ext-form", hidden: true },
    el("label", null, "延长工作小时", hours),
    el("label", null, "延期原因", reason),
    el("button", { type: "submit", text: "提交申请" }), said);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    said.textContent = "正在提交…";
    const body = {
      hours: Number(/** @type {HTMLInputElement} */ (hours).value),
      reason: /** @type {HTMLTextAreaElement} */ (reason).value.trim(),
    };
    try {
      const { res, body: answer } = await api(`/m/api/cases/${encodeURIComponent(c.id)}/request_extension`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      if (res.ok) {
        form.hidden = true;
        toast("延期申请已提交，等待指挥中心审批");
      } else {
        said.textContent = errorsText(answer && answer.errors);
      }
    } catch (_) {
      said.textContent = "网络不通，请稍后再试";
    }
  });
  const open = el("button", { type: "button", class: "ext-open", text: "申请延期",
    onclick: () => { form.hidden = !form.hidden; } });
  return el("div", { class: "ext", "data-extension": c.id }, open, form);
}
