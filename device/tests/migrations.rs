//! Data stored by the releases before the device core opens with its history, outbox, pending
//! joins and MLS state: a browser's IndexedDB (and a recovery file exported from it), and a
//! native client's `client.redb` tables. The old formats are rebuilt here from a live device
//! with frozen copies of the old types.

mod support;

use serde::Serialize;
use support::sim::Sim;
use veche_device::migrate::{NativeV0, native_v0};
use veche_device::{DeviceRecord, HistoryBody, HistoryEntry, LocalChat, OutboxEntry};
use veche_protocol::content::Body;
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId};

#[derive(Serialize)]
struct BrowserDeviceV0 {
    secret: [u8; 32],
    account: AccountId,
    device: DeviceId,
    node_id: String,
    display_name: String,
    node_admin: bool,
}

#[derive(Serialize)]
struct BrowserTextOutboxV0 {
    text: String,
    sent_at_ms: u64,
    ciphertext: Option<Vec<u8>>,
    failed: bool,
}

#[derive(Serialize)]
struct NativeDeviceV0 {
    secret: [u8; 32],
    account: AccountId,
    device: DeviceId,
    node_url: String,
    node_id: String,
    display_name: String,
}

#[derive(Serialize)]
struct NativeChatV0 {
    kind: ChatKind,
    name: String,
    processed: u64,
    active: bool,
    leavers: Vec<AccountId>,
}

#[derive(Serialize)]
struct NativeHistoryV0 {
    seq: u64,
    sender: AccountId,
    sent_at_ms: u64,
    stored_at_ms: u64,
    own: bool,
    body: NativeBodyV0,
}

#[derive(Serialize)]
#[allow(dead_code)]
enum NativeBodyV0 {
    Text(String),
    System(String),
    Unreadable(String),
}

#[derive(Serialize)]
struct NativeOutboxV0 {
    ciphertext: Vec<u8>,
    text: String,
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).unwrap()
}

fn dec<T: serde::de::DeserializeOwned>(v: &[u8]) -> T {
    postcard::from_bytes(v).unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// Alice and Bob chatting; Alice has one message waiting (offline). Returns Alice's stored kv.
fn live_pair(sim: &mut Sim) -> (usize, usize, GroupId) {
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.sent(alice, group, "stored before the update");
    sim.sent(bob, group, "a reply");
    // Saved with its ciphertext, not yet sent (the device stopped).
    sim.members[alice].crash_before = Some(Box::new(|r| matches!(r, veche_protocol::wire::Request::Send { .. })));
    let _ = sim.send(alice, group, "waiting in the outbox");
    assert!(!sim.members[alice].online);
    (alice, bob, group)
}

fn browser_v0_entries(sim: &Sim, alice: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (key, value) in &sim.members[alice].kv {
        if key == "format" {
            continue;
        } else if key == "device" {
            let d: DeviceRecord = dec(value);
            out.push((
                key.clone(),
                enc(&BrowserDeviceV0 {
                    secret: d.secret,
                    account: d.account,
                    device: d.device,
                    node_id: d.node_id,
                    display_name: d.display_name,
                    node_admin: d.node_admin,
                }),
            ));
        } else if let Some(rest) = key.strip_prefix("ob:") {
            // The oldest browser outbox: text only, under `o:`.
            let e: OutboxEntry = dec(value);
            let Body::Text { text } = e.body else { panic!("text") };
            out.push((
                format!("o:{rest}"),
                enc(&BrowserTextOutboxV0 {
                    text,
                    sent_at_ms: e.sent_at_ms,
                    ciphertext: e.ciphertext,
                    failed: e.failed,
                }),
            ));
        } else {
            out.push((key.clone(), value.clone()));
        }
    }
    out
}

fn check_opened_and_working(sim: &mut Sim, opened: usize, bob: usize, group: GroupId) {
    assert_eq!(sim.members[opened].texts(group), ["stored before the update", "a reply"]);
    assert_eq!(sim.members[opened].device.model().outbox[&group].len(), 1);
    assert!(sim.members[opened].kv.contains_key("format"), "rewritten in the current format");
    sim.connect(opened);
    assert_eq!(sim.members[opened].texts(group), ["stored before the update", "a reply", "waiting in the outbox"]);
    sim.sent(opened, group, "after the update");
    sim.sent(bob, group, "read you");
    assert_eq!(
        sim.members[bob].texts(group),
        ["stored before the update", "a reply", "waiting in the outbox", "after the update", "read you"]
    );
    assert_eq!(sim.members[opened].texts(group).last().map(String::as_str), Some("read you"));
}

#[test]
fn a_browser_store_from_the_last_release_opens() {
    let mut sim = Sim::new();
    let (alice, bob, group) = live_pair(&mut sim);
    let old = browser_v0_entries(&sim, alice);
    assert!(old.iter().any(|(k, _)| k.starts_with("o:")) && !old.iter().any(|(k, _)| k == "format"));
    let opened = sim.device_from("Alice (updated)", old);
    assert!(!sim.members[opened].kv.keys().any(|k| k.starts_with("o:")), "old outbox keys replaced");
    check_opened_and_working(&mut sim, opened, bob, group);
}

#[test]
fn a_recovery_file_from_the_last_release_opens() {
    let mut sim = Sim::new();
    let (alice, bob, group) = live_pair(&mut sim);
    // The file's payload: postcard of every kv pair (sealed with the passphrase around it).
    let payload = enc(&browser_v0_entries(&sim, alice));
    let entries: Vec<(String, Vec<u8>)> = dec(&payload);
    let opened = sim.device_from("Alice (restored)", entries);
    check_opened_and_working(&mut sim, opened, bob, group);
}

#[test]
fn a_native_client_store_from_the_last_release_opens() {
    let mut sim = Sim::new();
    let (alice, bob, group) = live_pair(&mut sim);
    let mut old = NativeV0::default();
    for (key, value) in &sim.members[alice].kv {
        let (kind, rest) = key.split_once(':').unwrap_or((key, ""));
        match kind {
            "device" => {
                let d: DeviceRecord = dec(value);
                old.device = Some(enc(&NativeDeviceV0 {
                    secret: d.secret,
                    account: d.account,
                    device: d.device,
                    node_url: "https://node.test".into(),
                    node_id: d.node_id,
                    display_name: d.display_name,
                }));
            }
            "c" => {
                let c: LocalChat = dec(value);
                let group: GroupId = rest.parse().unwrap();
                old.chats.push((
                    group.0,
                    enc(&NativeChatV0 {
                        kind: c.kind,
                        name: c.name,
                        processed: c.processed,
                        active: c.active,
                        leavers: c.leavers,
                    }),
                ));
            }
            "h" => {
                let h: HistoryEntry = dec(value);
                let group: GroupId = rest[..32].parse().unwrap();
                let body = match h.body {
                    HistoryBody::Text(t) => NativeBodyV0::Text(t),
                    other => NativeBodyV0::System(format!("{other:?}")),
                };
                old.history.push((
                    (group.0, h.seq),
                    enc(&NativeHistoryV0 {
                        seq: h.seq,
                        sender: h.sender,
                        sent_at_ms: h.sent_at_ms,
                        stored_at_ms: h.stored_at_ms,
                        own: h.own,
                        body,
                    }),
                ));
            }
            "ob" => {
                let e: OutboxEntry = dec(value);
                let group: GroupId = rest[..32].parse().unwrap();
                let Body::Text { text } = e.body else { panic!("text") };
                // The native client encrypted at once: its outbox always held the ciphertext.
                let ciphertext = e.ciphertext.expect("saved with its ciphertext");
                old.outbox.push(((group.0, e.sent_at_ms * 1_000_000), enc(&NativeOutboxV0 { ciphertext, text })));
            }
            "m" => old.mls.push((unhex(rest), value.clone())),
            _ => {}
        }
    }
    old.pending.push(("tls_pin".into(), vec![9; 32]));
    let entries = native_v0(old).expect("migrates");
    assert!(entries.iter().any(|(k, v)| k == "tls-pin" && v == &vec![9; 32]), "the driver's pin is kept");
    let opened = sim.device_from("Alice (native)", entries);
    assert_eq!(
        sim.members[opened].device.model().device.as_ref().unwrap().node_url.as_deref(),
        Some("https://node.test")
    );
    check_opened_and_working(&mut sim, opened, bob, group);
}
