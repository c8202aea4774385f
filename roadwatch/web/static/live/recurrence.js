// @ts-check
/* The recurrence layer (issue 22): each district's hot spots — ranked by the lower bound of
 * their rate over the last 12 weeks, not by raw counts — drawn over the segments, with a
 * list beside the map. Off until the header's button asks for it (one request then). */
import { SEGMENT_LAYER } from "./config.js";
import { state } from "./state.js";
import { el } from "./util.js";

const TOP = 5; // per district
let loaded = false;
let shown = false;

/** @param {any[]} rows */
function draw(rows) {
  const map = state.map;
  const ids = rows.map((r) => r.segment);
  map.addLayer({
    id: "hotspots",
    type: "line",
    source: "segments",
    "source-layer": SEGMENT_LAYER,
    filter: ["in", ["get", "id"], ["literal", ids]],
    layout: { "line-cap": "round", "line-join": "round" },
    paint: {
      "line-color": "#8e44ad",
      "line-opacity": 0.85,
      "line-width": ["interpolate", ["linear"], ["zoom"], 10, 5, 14, 10, 17, 18],
    },
  });
  const box = /** @type {HTMLElement} */ (document.getElementById("rw-hotspots"));
  const list = /** @type {HTMLElement} */ (document.getElementById("rw-hotspots-list"));
  list.replaceChildren(...rows.map(function (r) {
    const li = el("li", "", `${r.name} · 周均 ${r.rate}（≥${r.lower}）`);
    li.dataset.segment = r.segment;
    if (r.recurrence) li.title = `复发 ${Math.round(r.recurrence.share * 100)}%`;
    return li;
  }));
  box.hidden = false;
}

export function installRecurrence() {
  const button = document.getElementById("rw-hotspots-toggle");
  if (!button) return;
  button.addEventListener("click", async function () {
    const box = /** @type {HTMLElement} */ (document.getElementById("rw-hotspots"));
    if (!state.map) return;
    if (!loaded) {
      const res = await fetch(`/api/leaders/hotspots?top=${TOP}`, { credentials: "same-origin" });
      if (!res.ok) return;
      draw((await res.json()).segments);
      loaded = shown = true;
      button.classList.add("on");
      return;
    }
    shown = !shown;
    state.map.setLayoutProperty("hotspots", "visibility", shown ? "visible" : "none");
    box.hidden = !shown;
    button.classList.toggle("on", shown);
  });
}
