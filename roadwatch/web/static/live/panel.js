// @ts-check
/* The segment panel: the segment under the pointer (or the one clicked, pinned), its
 * chief and counters; for a pinned one also its team, open cases and recent reports. */
import { HIT_PX, segmentKey } from "./config.js";
import { districtName, lang, t } from "./i18n.js";
import { segments, state } from "./state.js";
import { $, caseListUrl, caseUrl, dayTime, el, fetchJSON, numFmt, OPEN_STATUSES } from "./util.js";

/** @param {{role: string, level?: number, person?: {id: string, name?: string} | null}} h */
function fmtPerson(h) {
  const role = h.role === "road_chief" ? t("level" + h.level) : t(h.role);
  const who = h.person ? h.person.name || h.person.id : "?";
  return role + "：" + who;
}

/** @param {string | null} id */
export function showSegment(id) {
  const s = id != null ? segments.get(id) : null;
  const panel = $("rw-segment");
  if (state.shownId !== id) $("rw-segment-detail").textContent = "";
  state.shownId = s ? id : null;
  if (!s) {
    panel.hidden = true;
    return;
  }
  const p = s.props;
  /**
   * @param {string} field
   * @param {string} text
   * @param {string} [cls]
   */
  const set = function (field, text, cls) {
    const e = /** @type {HTMLElement} */ (panel.querySelector('[data-field="' + field + '"]'));
    e.textContent = text;
    e.className = cls || "";
  };
  set("name", p.name || p.road || /** @type {string} */ (id));
  set("id", /** @type {string} */ (id));
  set("span", p.from || p.to ? (p.from || "?") + " 至 " + (p.to || "?") : "—");
  set("district", [districtName(p.district), p.subdistrict].filter(Boolean).join(" · ") || "—");
  set("chief", p.chief && p.chief.name ? p.chief.name + (p.chief.id ? "（" + p.chief.id + "）" : "") : t("unassigned"));
  set("open", String(s.open), s.open > 0 ? "rw-hot" : "");
  set("overdue", String(s.overdue), s.overdue > 0 ? "rw-overdue" : "");
  set("score", s.score != null ? String(s.score) : "100");
  set("length", p.length_m != null ? numFmt.format(Math.round(p.length_m)) + " " + t("metres") : "—");
  panel.hidden = false;
}

/**
 * Chief and team, open cases with deadlines, photos, recent reports.
 * @param {string} id
 */
export function loadSegmentDetail(id) {
  const box = $("rw-segment-detail");
  box.textContent = t("loading");
  fetchJSON("/api/segments/" + encodeURIComponent(id)).then(function (doc) {
    if (state.shownId !== id) return;
    const p = doc.properties || {};
    box.textContent = "";
    box.appendChild(el("h3", null, t("team")));
    const team = el("ul", "rw-team");
    (p.responsible_now || []).forEach(function (/** @type {any} */ h) { team.appendChild(el("li", null, fmtPerson(h))); });
    if (!team.children.length) team.appendChild(el("li", "rw-dim", t("none")));
    box.appendChild(team);

    // every open case (the API gives up to 50, soonest deadline first), each a link to
    // its case page; the heading links to the whole list of the segment's open cases
    const all = el("a", null, t("open_cases") + " (" + (p.open_cases || []).length + ")");
    /** @type {HTMLAnchorElement} */ (all).href = caseListUrl({ segment: id, status: OPEN_STATUSES });
    const head = el("h3");
    head.appendChild(all);
    box.appendChild(head);
    const cases = el("ul", "rw-cases");
    (p.open_cases || []).forEach(function (/** @type {any} */ c) {
      const li = el("li", c.overdue ? "rw-case rw-case-overdue" : "rw-case");
      const link = /** @type {HTMLAnchorElement} */ (el("a", "rw-case-link"));
      link.href = caseUrl(c.id);
      link.appendChild(el("span", "rw-case-cat", (lang === "en" ? c.category_name_en : c.category_name) || c.category));
      const due = c.due_at ? t("due") + " " + dayTime(new Date(c.due_at)) : t("status_" + c.status);
      link.appendChild(el("span", "rw-case-due", due));
      li.appendChild(link);
      (c.photos || []).slice(0, 3).forEach(function (/** @type {string} */ src) {
        const full = /** @type {HTMLAnchorElement} */ (el("a", "rw-photo-link"));
        full.href = src; // the photo itself, full size
        full.target = "_blank";
        full.rel = "noopener";
        const img = /** @type {HTMLImageElement} */ (el("img", "rw-photo"));
        img.loading = "lazy";
        img.alt = t("photo");
        img.src = src;
        img.addEventListener("error", function () { full.remove(); }); // not uploaded yet
        full.appendChild(img);
        li.appendChild(full);
      });
      cases.appendChild(li);
    });
    if (!cases.children.length) cases.appendChild(el("li", "rw-dim", t("none")));
    box.appendChild(cases);

    box.appendChild(el("h3", null, t("recent")));
    const recent = el("ul", "rw-recent");
    (p.recent || []).slice(0, 6).forEach(function (/** @type {any} */ c) {
      const li = el("li");
      const link = /** @type {HTMLAnchorElement} */ (el("a", null,
        dayTime(new Date(c.observed_at)) + "  " + (lang === "en" ? c.category_name_en : c.category_name) +
        " · " + t("status_" + c.status)));
      link.href = caseUrl(c.id);
      li.appendChild(link);
      recent.appendChild(li);
    });
    if (!recent.children.length) recent.appendChild(el("li", "rw-dim", t("none")));
    box.appendChild(recent);
  }).catch(function (err) {
    if (state.shownId === id) box.textContent = String(err.message || err);
  });
}

/** @param {string | null} id */
function setHover(id) {
  const map = state.map;
  if (id === state.hoveredId) return;
  if (state.hoveredId != null) map.setFeatureState(segmentKey(state.hoveredId), { hover: false });
  state.hoveredId = id;
  if (id != null) map.setFeatureState(segmentKey(id), { hover: true });
  map.getCanvas().style.cursor = id != null ? "pointer" : "";
  if (state.pinnedId == null) showSegment(id);
}

export function installPanel() {
  $("rw-segment-close").addEventListener("click", function () {
    state.pinnedId = null;
    showSegment(state.hoveredId);
  });
}

/**
 * Hits within HIT_PX of the pointer (a thin line is hard to hit exactly); no second,
 * wider layer for that: it would double the work of drawing the network.
 */
export function segmentPointer() {
  const map = state.map;
  /** @param {maplibregl.Point} point */
  const hitAt = function (point) {
    /** @type {[maplibregl.PointLike, maplibregl.PointLike]} */
    const box = [[point.x - HIT_PX, point.y - HIT_PX], [point.x + HIT_PX, point.y + HIT_PX]];
    return map.queryRenderedFeatures(box, { layers: ["segments"] });
  };
  map.on("mousemove", function (e) {
    if (!state.drawn) return;
    const hits = hitAt(e.point);
    setHover(hits.length ? String(hits[0].id) : null);
  });
  map.getCanvas().addEventListener("mouseleave", function () {
    if (state.drawn) setHover(null);
  });
  map.on("click", function (e) {
    if (!state.drawn) return;
    const hits = hitAt(e.point);
    state.pinnedId = hits.length ? String(hits[0].id) : null;
    showSegment(state.pinnedId != null ? state.pinnedId : state.hoveredId);
    if (state.pinnedId != null) loadSegmentDetail(state.pinnedId);
  });
  map.on("click", "report-clusters", function (e) {
    const f = e.features && e.features[0];
    if (!f) return;
    /** @type {maplibregl.GeoJSONSource} */ (map.getSource("reports")).getClusterExpansionZoom(f.properties.cluster_id).then(function (z) {
      map.easeTo({ center: /** @type {[number, number]} */ (/** @type {any} */ (f.geometry).coordinates), zoom: z });
    });
  });
}
