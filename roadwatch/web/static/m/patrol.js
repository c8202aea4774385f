// @ts-check
/* A patrol (巡查): the watched position sampled every patrol_interval_s into a track that
 * survives a reload; a live track over the broker while connected (best effort), and one
 * end message with every point through the outbox; the platform answers with the segments
 * covered.
 */
import { publish } from "./broker.js";
import { enqueue } from "./outbox.js";
import { watchPosition } from "./position.js";
import { app } from "./state.js";
import { store } from "./store.js";
import { $, toast, uuid } from "./util.js";
import { renderMap } from "./work.js";

const MAX_PATROL_POINTS = 2000; // roadwatch/cases/patrols.py MAX_POINTS

/** @returns {import("./state.js").Auth} */
const signedIn = () => /** @type {import("./state.js").Auth} */ (app.auth);

function patrolPoint() {
  // Sample the watched fix; a fix already recorded (GPS stalled) adds no fake point.
  const f = app.fix;
  const p = app.patrol;
  if (!p || !f || f.at === p.lastAt) return;
  p.lastAt = f.at;
  const pt = { t: new Date(f.at).toISOString(), lat: f.lat, lon: f.lon,
    accuracy_m: Math.round(f.accuracy * 10) / 10 };
  p.points.push(pt);
  p.unsent.push(pt);
  store.setMeta("patrol", { id: p.id, points: p.points });
  $("#patrol-points").textContent = String(p.points.length);
  renderMap(); // the live track
  if (p.points.length >= MAX_PATROL_POINTS) {
    // The platform takes at most this many points in one message: end here, lose nothing.
    toast(`巡查已满 ${MAX_PATROL_POINTS} 个轨迹点，已自动结束；可再开始一次`);
    stopPatrol();
    return;
  }
  // Live track while connected (best effort); the end message carries every point.
  if (p.unsent.length >= 10 && app.mq && app.mq.connected) {
    const points = p.unsent.splice(0);
    publish(`${signedIn().config.topic_root}/patrols/${signedIn().reporter_id}`, {
      v: 1, patrol_id: p.id, reporter_id: signedIn().reporter_id,
      state: "track", crs: "WGS84", points,
    }).catch(() => null);
  }
}

/**
 * Start a patrol, or resume the one a reload interrupted.
 * @param {{id: string, points: import("./state.js").PatrolPoint[]}} [resume]
 */
export function startPatrol(resume) {
  app.patrol = { id: resume ? resume.id : uuid(), points: resume ? resume.points : [], unsent: [] };
  store.setMeta("patrol", { id: app.patrol.id, points: app.patrol.points });
  const every = Math.max(200, signedIn().config.patrol_interval_s * 1000);
  watchPosition();
  patrolPoint();
  app.patrol.timer = setInterval(patrolPoint, every);
  $("#patrol-toggle").textContent = "结束巡查";
  $("#patrol-points").textContent = String(app.patrol.points.length);
  $("#patrol-result").textContent = "巡查中…";
}

async function stopPatrol() {
  const p = /** @type {import("./state.js").Patrol} */ (app.patrol);
  clearInterval(p.timer);
  app.patrol = null;
  await store.setMeta("patrol", null);
  $("#patrol-toggle").textContent = "开始巡查";
  await enqueue("patrol", {
    v: 1, patrol_id: p.id, reporter_id: signedIn().reporter_id, state: "end", crs: "WGS84",
    points: p.points,
  });
  $("#patrol-result").textContent = `巡查结束，${p.points.length} 个轨迹点，等待平台核算…`;
}

/**
 * The platform's answer to a patrol's end: the segments it covered, named and on the map.
 * @param {string[]} ids
 */
export function showCoverage(ids) {
  app.covered = ids;
  /** @type {Record<string, string | null | undefined>} */
  const names = {};
  for (const f of (app.me && app.me.segments.features) || []) names[f.id] = f.properties.name;
  const box = $("#patrol-result");
  box.dataset.covered = ids.join(",");
  box.textContent = ids.length ? `已巡查路段：${ids.map((i) => names[i] || i).join("、")}` : "这次巡查没有走完任何路段";
  renderMap(ids);
}

/** The start/end button. */
export function installPatrol() {
  $("#patrol-toggle").addEventListener("click", () => (app.patrol ? stopPatrol() : startPatrol()));
}
