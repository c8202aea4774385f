// The globals the browser modules use. Types come from the same pinned npm packages
// vendor.sh copies.
//
// The command centre (roadwatch/web/static/live/*.js): the vendored UMD builds of
// MapLibre GL JS (window.maplibregl) and Socket.IO's client (window.io), loaded by classic
// <script> tags before the modules, and what the page's head leaves on window.
//
// The phone app (roadwatch/web/static/m/*.js): MQTT.js's browser bundle (window.mqtt),
// loaded by broker.js once the shell is usable, and the test hooks the app leaves on window.
/// <reference types="maplibre-gl" />
import type { io as socketIo, Socket } from "socket.io-client";
import type * as Mqtt from "mqtt";
import type { Roadwatch } from "../roadwatch/web/static/live/state.js";
import type { App } from "../roadwatch/web/static/m/state.js";
import type { store } from "../roadwatch/web/static/m/store.js";

declare global {
  const io: typeof socketIo;
  /** The live feed's Socket.IO connection. */
  type LiveSocket = Socket;

  /** A request the page's head made before the modules loaded: {ok, status, body}. */
  type EarlyAnswer = { ok: true; body: unknown; status?: undefined } | { ok: false; status: number; body?: undefined };

  /** Phone app: a connection to the broker (MQTT.js). */
  type MqttClient = Mqtt.MqttClient;

  interface Window {
    /** The page's state and test hooks (state.js). */
    roadwatch: Roadwatch;
    /** The answers the page's head asked for first (table, districts). */
    roadwatchEarly?: { table: Promise<EarlyAnswer> | null; districts: Promise<EarlyAnswer> | null };

    /** Phone app: MQTT.js (dist/mqtt.min.js), once broker.js has loaded it. */
    mqtt?: typeof Mqtt;
    /** Phone app: what the app knows (m/state.js), for the browser tests. */
    rwApp?: App;
    /** Phone app: its IndexedDB (m/store.js), for the browser tests. */
    rwStore?: typeof store;
    /** Phone app: the shell is usable (m/session.js). */
    __rwReady?: boolean;
    /** Phone app: when the shell became usable (performance.now()). */
    __rwReadyAt?: number;
  }
}
