// @ts-check
/* Site-visit routes (观摩路线, issue 22) on the work tab: the routes sent to this chief
 * (GET /m/api/routes) and the one a short URL names (/m/?route=<id>, for the others on
 * the visit), each with its ordered stops, length, time and a sketch map (SVG, north up).
 * Its own module: the app only calls renderRoutes(). */
import { api } from "./session.js";
import { $, el } from "./util.js";

const SVG = "http://www.w3.org/2000/svg";
const LIST_EVERY_MS = 60_000; // renderAll runs often; the list is fetched at most this often
let listedAt = 0;
/** @type {string | null} */
let openedRoute = null;
let linkShown = false;

/** The section under the week's plan, made on first use (index.html stays as it is). */
function section() {
  let box = document.getElementById("route-box");
  if (box) return box;
  const after = document.getElementById("plan-list");
  if (!after || !after.parentElement) return null;
  box = el("div", { id: "route-box" },
    el("h2", { text: "观摩路线" }),
    el("ul", { id: "route-list", class: "cards" }),
    el("div", { id: "route-view" }));
  after.after(box);
  return box;
}

/** List the routes sent to this chief; open the one of the URL (once) or the one open. */
export async function renderRoutes() {
  const box = section();
  if (!box) return;
  const wanted = new URLSearchParams(location.search).get("route");
  if (wanted && !linkShown) {
    linkShown = true;
    const tab = /** @type {HTMLElement | null} */ (document.querySelector('#tabs button[data-view="work"]'));
    if (tab) tab.click();
    await openRoute(wanted);
  }
  if (Date.now() - listedAt < LIST_EVERY_MS) return;
  listedAt = Date.now();
  try {
    const { res, body } = await api("/m/api/routes");
    if (!res.ok) return;
    const routes = (body && body.routes) || [];
    $("#route-list").replaceChildren(...(routes.length ? routes.map((/** @type {any} */ r) =>
      el("li", { "data-route": r.id },
        el("button", { type: "button", text: r.title, onclick: () => openRoute(r.id) }),
        el("div", { class: "hint", text: `${r.stops} 处 · ${r.created_at.slice(0, 10)}` })))
      : [el("li", { class: "hint", text: "没有发给你的观摩路线" })]));
  } catch (_) { /* offline: what is drawn stays */ }
}

/** Fetch one route and draw it: totals, the sketch, the stops in visiting order.
 * @param {string} id */
async function openRoute(id) {
  const view = $("#route-view");
  try {
    const { res, body } = await api(`/m/api/routes/${encodeURIComponent(id)}`);
    if (!res.ok) {
      view.replaceChildren(el("p", { class: "error", text: (body && body.errors && body.errors[0].message) || "打不开这条路线" }));
      return;
    }
    openedRoute = id;
    const km = (body.metres / 1000).toFixed(2);
    view.replaceChildren(
      el("h3", { id: "route-title", text: body.title }),
      el("p", { id: "route-totals", class: "hint", text: `步行 ${km} 公里，约 ${Math.round(body.minutes)} 分钟（含每处停留 ${body.dwell_minutes} 分钟）` }),
      sketch(body.paths, body.stops),
      el("ol", { id: "route-stops" }, ...body.stops.map((/** @type {any} */ s, /** @type {number} */ k) =>
        el("li", { "data-segment": s.segment }, el("b", { text: s.name || s.segment }),
          k > 0 ? el("span", { class: "hint", text: ` 距上一处 ${Math.round(body.legs[k - 1].metres)} 米` }) : null))));
  } catch (_) {
    if (openedRoute !== id) view.replaceChildren(el("p", { class: "hint", text: "离线：联网后再打开" }));
  }
}

/** The walk in grey and the numbered stops, fitted to a square, north up.
 * @param {number[][][]} paths
 * @param {{lon: number, lat: number}[]} stops */
function sketch(paths, stops) {
  const size = 320, pad = 16;
  const pts = [...paths.flat(), ...stops.map((s) => [s.lon, s.lat])];
  const lat0 = pts.reduce((a, p) => a + p[1], 0) / pts.length;
  const kx = Math.cos((lat0 * Math.PI) / 180);
  const xs = pts.map((p) => p[0] * kx), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), y1 = Math.max(...ys);
  const span = Math.max(Math.max(...xs) - x0, y1 - Math.min(...ys)) || 1e-3;
  /** @param {number[]} p */
  const xy = (p) => [((p[0] * kx - x0) / span) * (size - 2 * pad) + pad, ((y1 - p[1]) / span) * (size - 2 * pad) + pad];
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.setAttribute("id", "route-map");
  svg.setAttribute("width", "100%");
  /** @param {string} tag @param {Record<string, string>} attrs */
  const add = (tag, attrs) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    svg.append(e);
    return e;
  };
  for (const line of paths) {
    add("polyline", { points: line.map((p) => xy(p).map((v) => v.toFixed(1)).join(",")).join(" "), fill: "none", stroke: "#888", "stroke-width": "3" });
  }
  stops.forEach((s, k) => {
    const [x, y] = xy([s.lon, s.lat]);
    add("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: "9", fill: "#c0392b" });
    add("text", { x: x.toFixed(1), y: (y + 4).toFixed(1), "font-size": "11", "text-anchor": "middle", fill: "#fff" }).textContent = String(k + 1);
  });
  return svg;
}
