// @ts-check
/* The app's views (sign-in, report, my work, rectification, sent) and the tabs. */
import { renderCategories } from "./forms.js";
import { renderHistory, renderOutbox } from "./outbox.js";
import { renderPlan } from "./plan.js";
import { renderRoutes } from "./route.js";
import { watchPosition } from "./position.js";
import { renderCases, renderMap } from "./work.js";

/**
 * Show one view (and mark its tab); the report form needs the position.
 * @param {string} view
 */
export function show(view) {
  for (const v of document.querySelectorAll(".view")) /** @type {HTMLElement} */ (v).hidden = v.id !== `view-${view}`;
  for (const b of document.querySelectorAll("#tabs button")) {
    b.classList.toggle("on", /** @type {HTMLElement} */ (b).dataset.view === view);
  }
  if (view === "report") watchPosition();
  if (view === "outbox") renderHistory();
  if (view === "work") { watchPosition(); renderMap(); } // the map is drawn when opened
}

/** Everything drawn from the chief's data and the outbox. */
export function renderAll() {
  renderCategories();
  renderMap();
  renderCases();
  renderOutbox();
  renderPlan(); // issue 22: this week's patrol plan, fetched on its own
  renderRoutes(); // issue 22: site-visit routes sent to this chief (route.js)
}
