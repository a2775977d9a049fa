// IndexedDB glue for the device store: one object store of string keys and byte values.
// kvApply writes a whole batch in one readwrite transaction and resolves only when the
// transaction has completed (durability "strict"), so the caller may then release what depends on it.

const STORE = "kv";
let dbPromise = null;

function openDb(name) {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(new Error("IndexedDB open failed: " + req.error));
      req.onblocked = () => reject(new Error("IndexedDB is blocked by another tab"));
    });
  }
  return dbPromise;
}

// Every entry as [key, Uint8Array] pairs.
export async function kvLoad(name) {
  const db = await openDb(name);
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, "readonly");
    const store = tx.objectStore(STORE);
    const keysReq = store.getAllKeys();
    const valuesReq = store.getAll();
    tx.oncomplete = () => {
      const keys = keysReq.result;
      const values = valuesReq.result;
      resolve(keys.map((k, i) => [k, new Uint8Array(values[i])]));
    };
    tx.onerror = () => reject(new Error("IndexedDB read failed: " + tx.error));
  });
}

// puts: array of [key, Uint8Array]; deletes: array of keys (a key ending in "*" deletes the prefix).
export async function kvApply(name, puts, deletes) {
  const db = await openDb(name);
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, "readwrite", { durability: "strict" });
    const store = tx.objectStore(STORE);
    for (const key of deletes) {
      if (key.endsWith("*")) {
        const prefix = key.slice(0, -1);
        store.delete(IDBKeyRange.bound(prefix, prefix + "\uffff"));
      } else {
        store.delete(key);
      }
    }
    for (const [key, value] of puts) store.put(value, key);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(new Error("IndexedDB write failed: " + tx.error));
    tx.onabort = () => reject(new Error("IndexedDB write aborted: " + tx.error));
  });
}

// Holds the named Web Lock for the life of the page, so only one tab of a browser drives the
// device: calls `acquired()` once it holds it, and `waiting()` first if another tab holds it.
// Browsers offer Web Locks only in a secure context (https, or localhost); without them (an old
// browser, a page on plain http) the tab drives the device unguarded, as before.
export function holdLock(name, waiting, acquired) {
  let started = false;
  const start = () => {
    if (!started) {
      started = true;
      acquired();
    }
  };
  if (!navigator.locks || typeof navigator.locks.request !== "function") {
    console.warn("Web Locks unavailable (not a secure context?): another tab may drive this device too");
    start();
    return;
  }
  const hold = () => new Promise(() => {}); // released when the page goes
  navigator.locks
    .request(name, { ifAvailable: true }, (lock) => {
      if (lock) {
        start();
        return hold();
      }
      waiting();
      return navigator.locks.request(name, () => {
        start();
        return hold();
      });
    })
    .catch((e) => {
      // A browser that refuses the request (a sandboxed or opaque origin): unguarded.
      console.warn("Web Lock refused:", e);
      start();
    });
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
