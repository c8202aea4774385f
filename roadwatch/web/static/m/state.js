// @ts-check
/* What the phone app knows: the sign-in (device credential, never the password), the
 * chief's data, the position fix, the broker connection, the photos of the forms being
 * written and the running patrol. One object, `app`; window.rwApp is it, for the browser
 * tests' eyes only.
 */

/**
 * What the platform tells the phone at sign-in (roadwatch/web/mobile.py `_config`).
 * @typedef {object} Config
 * @property {string} topic_root
 * @property {string | null} mqtt_ws_url "{host}" stands for this page's host name
 * @property {number} max_photo_bytes
 * @property {number} max_note_chars
 * @property {number[] | null} city_bounds [west, south, east, north]
 * @property {number} patrol_interval_s
 */

/** @typedef {{id: string, name: string, level?: string | null, district?: string | null}} Chief */

/**
 * The stored sign-in: never the password.
 * @typedef {object} Auth
 * @property {string} reporter_id
 * @property {string} device_id
 * @property {string} token the device credential (Bearer)
 * @property {Chief} chief
 * @property {Config} config
 * @property {string} [password] only in what an older version of the app stored
 */

/** @typedef {{code: string, name: string, used?: number, photo_required?: boolean}} Category */
/** @typedef {{key: string, label: string, items: Category[]}} CategoryGroup */

/**
 * An open case assigned to the chief.
 * @typedef {object} Case
 * @property {string} id
 * @property {string} category
 * @property {string} category_name
 * @property {boolean} photo_required
 * @property {string | null} segment_id
 * @property {string | null} segment_name
 * @property {string} status
 * @property {string | null} due_at
 * @property {boolean} overdue
 * @property {string | null} observed_at
 * @property {string | null} note
 * @property {number | null} [lat]
 * @property {number | null} [lon]
 * @property {number} [severity] 1 一般, 2 较重, 3 紧急
 * @property {number | null} [work_left_h] working hours to the deadline; negative: overdue by
 * @property {string | null} [photo] the problem photo's URL
 * @property {string} [reporter] who reported it (name)
 * @property {boolean} [own_report]
 */

/**
 * One of the chief's segments (GeoJSON).
 * @typedef {{id: string, geometry: {coordinates: number[][]}, properties: {name?: string | null}}} SegmentFeature
 */

/**
 * GET /m/api/me.
 * @typedef {object} Me
 * @property {{favourites: string[], groups: CategoryGroup[]}} categories
 * @property {{type: "FeatureCollection", features: SegmentFeature[]}} segments
 * @property {Case[]} cases
 * @property {{basemap: {url: string, minzoom: number, maxzoom: number, attribution: string} | null,
 *   covered_today: string[]}} [map] the map of the chief's road
 */

/** @typedef {{lat: number, lon: number, accuracy: number, at: number, heading?: number | null}} Fix */
/** @typedef {{deg: number, ref: string | null}} Look where a photo's camera faced (EXIF) */
/** @typedef {{id: string, url: string, look?: Look | null}} Thumb a photo attached to a form being written */
/** @typedef {{t: string, lat: number, lon: number, accuracy_m: number}} PatrolPoint */

/**
 * @typedef {object} Patrol
 * @property {string} id
 * @property {PatrolPoint[]} points
 * @property {PatrolPoint[]} unsent not yet published as a live track
 * @property {ReturnType<typeof setInterval>} [timer]
 * @property {number} [lastAt] the time of the last fix recorded
 */

/**
 * The platform's answer to a message (an ack on roadwatch/v1/acks/{me}, or the HTTP answer).
 * @typedef {object} Ack
 * @property {string} id
 * @property {string} status "accepted", "duplicate", "needs_review", "rejected", …
 * @property {ApiError[]} [errors]
 * @property {string[]} [covered_segments] a patrol's end
 * @property {string | null} [segment_name]
 * @property {string | null} [segment_id]
 * @property {string | null} [case_status]
 */

/** @typedef {{field?: string, code?: string, message?: string}} ApiError */

/** @typedef {"report" | "rectification" | "patrol"} Kind */
/** @typedef {"held" | "queued" | "sent" | "accepted" | "rejected"} ItemState */

/**
 * One message in the outbox, keyed by its UUID.
 * @typedef {object} OutboxItem
 * @property {string} id
 * @property {Kind} kind
 * @property {Record<string, any>} payload
 * @property {string[]} photo_ids
 * @property {ItemState} state
 * @property {string | null} reason
 * @property {number} tries
 * @property {number} next_at
 * @property {number} created_at
 * @property {number} updated_at
 * @property {string | null} last_error
 * @property {number} [sent_at]
 * @property {Ack} [ack]
 * @property {string} [held_by] the page that holds it ("held": the chief is being asked)
 */

/**
 * A photo on the phone, until its message is acknowledged and cleared.
 * @typedef {object} PhotoRecord
 * @property {string} id
 * @property {Blob} blob
 * @property {string | null} sha256
 * @property {boolean} uploaded
 * @property {number} width
 * @property {number} height
 * @property {number} created_at
 */

/**
 * @typedef {object} App
 * @property {Auth | null} auth stored; never the password
 * @property {Me | null} me /m/api/me
 * @property {Fix | null} fix
 * @property {MqttClient | null} mq the broker connection (MQTT.js, frontend/globals.d.ts)
 * @property {Thumb[]} photos attached to the report being written
 * @property {Thumb[]} rectPhotos
 * @property {Case | null} rectCase
 * @property {Patrol | null} patrol
 * @property {boolean} pumping
 * @property {number} [holdUntil] the server asked for no sending before then (Retry-After)
 * @property {string[]} [covered] the last patrol's covered segments
 * @property {number} [watch] the geolocation watch
 * @property {ReturnType<typeof setInterval>} [fixTimer]
 * @property {string | null} [nearKey] where the nearby segments were last asked for
 * @property {string | null} [lastReport] the report just sent from the form (its receipt)
 * @property {Set<string>} [pendingRect] cases whose rectification waits in the outbox
 */

/** @type {App} */
export const app = {
  auth: null,
  me: null,
  fix: null,
  mq: null,
  photos: [],
  rectPhotos: [],
  rectCase: null,
  patrol: null,
  pumping: false,
};
window.rwApp = app; // for the browser tests' eyes only
