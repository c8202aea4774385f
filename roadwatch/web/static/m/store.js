// @ts-check
/* IndexedDB for the phone app: the outbox, photos and the sign-in survive reloads and
 * closing the app. Nothing here talks to the network.
 *
 * Test hook: window.rwStore is this module's `store` (the browser tests read the outbox).
 */

const DB_NAME = "roadwatch-m";
const VERSION = 1;
/** @type {Promise<IDBDatabase> | null} */
let opened = null;

/** @typedef {"outbox" | "photos" | "meta"} StoreName */

/** @returns {Promise<IDBDatabase>} */
function open() {
  if (opened) return opened;
  opened = new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      // outbox: one row per message, keyed by its UUID (report_id, rectification_id,
      // patrol_id): resending is safe because the platform dedupes by that id.
      db.createObjectStore("outbox", { keyPath: "id" });
      db.createObjectStore("photos", { keyPath: "id" });
      db.createObjectStore("meta", { keyPath: "k" });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return opened;
}

/**
 * One transaction on one object store; resolves with the request's result (if `fn`
 * returns a request) once the transaction has completed.
 * @param {StoreName} name
 * @param {IDBTransactionMode} mode
 * @param {(s: IDBObjectStore) => IDBRequest | void} fn
 * @returns {Promise<any>}
 */
function run(name, mode, fn) {
  return open().then((db) => new Promise((resolve, reject) => {
    const tx = db.transaction(name, mode);
    const result = fn(tx.objectStore(name));
    tx.oncomplete = () => resolve(result && "result" in result ? result.result : result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("IndexedDB transaction aborted"));
  }));
}

/** The phone's database: outbox items, photos and small values ("meta": auth, me, patrol, device). */
export const store = {
  /** @type {(name: StoreName, key: string) => Promise<any>} */
  get: (name, key) => run(name, "readonly", (s) => s.get(key)),
  /** @type {(name: StoreName, value: object) => Promise<void>} */
  put: (name, value) => run(name, "readwrite", (s) => { s.put(value); }),
  /** @type {(name: StoreName, key: string) => Promise<void>} */
  del: (name, key) => run(name, "readwrite", (s) => { s.delete(key); }),
  /** @type {(name: StoreName) => Promise<any[]>} */
  all: (name) => run(name, "readonly", (s) => s.getAll()),
  /** @type {(k: string) => Promise<any>} */
  meta: (k) => run("meta", "readonly", (s) => s.get(k)).then((r) => (r ? r.v : undefined)),
  /** @type {(k: string, v: unknown) => Promise<void>} */
  setMeta: (k, v) => run("meta", "readwrite", (s) => { s.put({ k, v }); }),
};
window.rwStore = store; // for the browser tests' eyes only
