// @ts-check
/* "Send to phone" on the site-visit route page (issue 22): POST /api/leaders/routes with the
 * stops and the chiefs ticked; shows the short URL the other visitors open on the phone app. */

const box = /** @type {HTMLElement | null} */ (document.getElementById("rw-route-share"));
const button = /** @type {HTMLButtonElement | null} */ (document.getElementById("rw-route-send"));
const out = /** @type {HTMLElement} */ (document.getElementById("rw-route-link"));

async function send() {
  if (!box || !button) return;
  const chiefs = [...box.querySelectorAll("#rw-route-chiefs input:checked")].map(
    (i) => /** @type {HTMLInputElement} */ (i).value);
  const title = /** @type {HTMLInputElement} */ (document.getElementById("rw-route-title")).value;
  button.disabled = true;
  try {
    const root = box.dataset.root || ""; // the app's path prefix behind a proxy ("" at /)
    const res = await fetch(root + "/api/leaders/routes", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({
        segments: (box.dataset.segments || "").split(",").filter(Boolean),
        first: box.dataset.first || null,
        title,
        chiefs,
      }),
    });
    const body = await res.json();
    if (!res.ok) {
      out.textContent = `没有发送：${(body && body.errors && body.errors[0].message) || res.status}`;
      return;
    }
    const url = new URL(root + body.url, location.origin).href;
    out.replaceChildren(`已发送给 ${body.chiefs.length} 位路长；短链接：`,
      Object.assign(document.createElement("a"), { href: url, textContent: url }));
  } catch (_) {
    out.textContent = "没有发送：网络不通";
  } finally {
    button.disabled = false;
  }
}

button?.addEventListener("click", send);
