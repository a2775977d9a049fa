//! The device's key/value pairs in IndexedDB (`js/store.js`). What they mean is the device
//! core's business (`veche_device::model`): this file only loads them all, writes a
//! [`Write`] in one transaction, and dumps or replaces them for recovery files.

use js_sys::{Array, Uint8Array};
use veche_device::{Delete, Write};
use wasm_bindgen::prelude::*;

const DB_NAME: &str = "veche-device";

#[wasm_bindgen(module = "/js/store.js")]
extern "C" {
    #[wasm_bindgen(js_name = kvLoad, catch)]
    async fn kv_load(name: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = kvApply, catch)]
    async fn kv_apply(name: &str, puts: Array, deletes: Array) -> Result<JsValue, JsValue>;
}

fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| js_sys::Reflect::get(&e, &"message".into()).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| "storage error".into())
}

fn pairs(entries: impl IntoIterator<Item = (String, Vec<u8>)>) -> Array {
    let puts = Array::new();
    for (key, value) in entries {
        let pair = Array::new();
        pair.push(&key.into());
        pair.push(&Uint8Array::from(value.as_slice()));
        puts.push(&pair);
    }
    puts
}

/// Every stored pair (none for a new device).
pub async fn load() -> Result<Vec<(String, Vec<u8>)>, String> {
    let entries: Array = kv_load(DB_NAME).await.map_err(js_err)?.into();
    Ok(entries
        .iter()
        .filter_map(|entry| {
            let pair: Array = entry.into();
            Some((pair.get(0).as_string()?, Uint8Array::new(&pair.get(1)).to_vec()))
        })
        .collect())
}

/// Writes all of `write` or none of it (resolves once the transaction completed).
pub async fn apply(write: Write) -> Result<(), String> {
    if write.is_empty() {
        return Ok(());
    }
    let deletes = Array::new();
    for delete in write.deletes {
        // A trailing `*` is a prefix to js/store.js.
        let key = match delete {
            Delete::Key(key) => key,
            Delete::Prefix(prefix) => format!("{prefix}*"),
        };
        deletes.push(&key.into());
    }
    kv_apply(DB_NAME, pairs(write.puts), deletes).await.map(|_| ()).map_err(js_err)
}

/// Replaces everything stored with `entries` (from a recovery file), marked as restored.
pub async fn restore(entries: Vec<(String, Vec<u8>)>) -> Result<(), String> {
    let entries = entries.into_iter().filter(|(k, _)| k != "restored").chain([("restored".to_string(), vec![1])]);
    let deletes = Array::new();
    deletes.push(&"*".into());
    kv_apply(DB_NAME, pairs(entries), deletes).await.map(|_| ()).map_err(js_err)
}
