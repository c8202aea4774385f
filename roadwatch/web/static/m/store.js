/* IndexedDB for the phone app: the outbox, photos and the sign-in survive reloads and
   closing the app. Nothing here talks to the network. */
"use strict";
(function () {
  const DB_NAME = "roadwatch-m";
  const VERSION = 1;
  let opened = null;

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

  function run(store, mode, fn) {
    return open().then((db) => new Promise((resolve, reject) => {
      const tx = db.transaction(store, mode);
      const result = fn(tx.objectStore(store));
      tx.oncomplete = () => resolve(result && "result" in result ? result.result : result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("IndexedDB transaction aborted"));
    }));
  }

  window.rwStore = {
    get: (store, key) => run(store, "readonly", (s) => s.get(key)),
    put: (store, value) => run(store, "readwrite", (s) => { s.put(value); }),
    del: (store, key) => run(store, "readwrite", (s) => { s.delete(key); }),
    all: (store) => run(store, "readonly", (s) => s.getAll()),
    meta: (k) => run("meta", "readonly", (s) => s.get(k)).then((r) => (r ? r.v : undefined)),
    setMeta: (k, v) => run("meta", "readwrite", (s) => { s.put({ k, v }); }),
  };
})();
