// The globals the command centre's modules (roadwatch/web/static/live/*.js) use: the
// vendored UMD builds of MapLibre GL JS (window.maplibregl) and Socket.IO's client
// (window.io), loaded by classic <script> tags before the modules, and what the page's
// head leaves on window. Types come from the same pinned npm packages vendor.sh copies.
/// <reference types="maplibre-gl" />
import type { io as socketIo, Socket } from "socket.io-client";
import type { Roadwatch } from "../roadwatch/web/static/live/state.js";

declare global {
  const io: typeof socketIo;
  /** The live feed's Socket.IO connection. */
  type LiveSocket = Socket;

  /** A request the page's head made before the modules loaded: {ok, status, body}. */
  type EarlyAnswer = { ok: true; body: unknown; status?: undefined } | { ok: false; status: number; body?: undefined };

  interface Window {
    /** The page's state and test hooks (state.js). */
    roadwatch: Roadwatch;
    /** The answers the page's head asked for first (table, districts). */
    roadwatchEarly?: { table: Promise<EarlyAnswer> | null; districts: Promise<EarlyAnswer> | null };
  }
}
