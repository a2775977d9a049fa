//! Scenario: a `client.redb` written by the native client before the device core (tables
//! `device`, `chats`, `history`, `outbox`, `pending`, `mls_state`) opens with today's client: its
//! history, chat and pinned fingerprint are kept, the old tables are gone, and the device goes on
//! exchanging messages in the chat (its MLS state came along).
//!
//! The old format is built by hand from a real device: Alice registers and chats with today's
//! client, then her state dir is rewritten in the old layout with the frozen types below.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::Serialize;
use std::path::Path;
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId};
use veche_tests::{Client, Node, TempDir};

// The old client's tables and types (node/src/client/state.rs before veche-device), frozen.
const DEVICE: TableDefinition<&str, &[u8]> = TableDefinition::new("device");
const CHATS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("chats");
const HISTORY: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("history");
const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending");
const OUTBOX: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("outbox");
const MLS_STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("mls_state");

#[derive(Serialize)]
struct DeviceRecord {
    secret: [u8; 32],
    account: AccountId,
    device: DeviceId,
    node_url: String,
    node_id: String,
    display_name: String,
}

#[derive(Serialize)]
struct LocalChat {
    kind: ChatKind,
    name: String,
    processed: u64,
    active: bool,
    leavers: Vec<AccountId>,
}

#[derive(Serialize)]
struct HistoryEntry {
    seq: u64,
    sender: AccountId,
    sent_at_ms: u64,
    stored_at_ms: u64,
    own: bool,
    body: HistoryBody,
}

#[derive(Serialize)]
#[allow(dead_code)] // every variant is part of the frozen format
enum HistoryBody {
    Text(String),
    System(String),
    Unreadable(String),
}

// Today's layout, read to build the fixture.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("device_kv");

fn kv_entries(path: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let db = Database::open(path)?;
    let read = db.begin_read()?;
    let table = read.open_table(KV)?;
    let mut out = Vec::new();
    for item in table.iter()? {
        let (k, v) = item?;
        out.push((k.value().to_string(), v.value().to_vec()));
    }
    Ok(out)
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// Rewrites the client state at `path` (today's layout) in the layout of the old native client.
fn write_old_format(path: &Path, node_url: &str, pin: &[u8; 32]) -> anyhow::Result<GroupId> {
    let entries = kv_entries(path)?;
    std::fs::remove_file(path)?;
    let db = Database::create(path)?;
    let txn = db.begin_write()?;
    let mut the_group = None;
    {
        let mut device = txn.open_table(DEVICE)?;
        let mut chats = txn.open_table(CHATS)?;
        let mut history = txn.open_table(HISTORY)?;
        let mut pending = txn.open_table(PENDING)?;
        txn.open_table(OUTBOX)?;
        let mut mls = txn.open_table(MLS_STATE)?;
        for (key, value) in &entries {
            if key == "device" {
                let new: veche_device::DeviceRecord = postcard::from_bytes(value)?;
                let old = DeviceRecord {
                    secret: new.secret,
                    account: new.account,
                    device: new.device,
                    node_url: node_url.to_string(),
                    node_id: new.node_id,
                    display_name: new.display_name,
                };
                device.insert("device", postcard::to_stdvec(&old)?.as_slice())?;
            } else if let Some(group) = key.strip_prefix("c:") {
                let group: GroupId = group.parse()?;
                let new: veche_device::LocalChat = postcard::from_bytes(value)?;
                // The old client recorded how far it processed; its own sends were in history.
                let processed = entries
                    .iter()
                    .filter(|(k, _)| k.starts_with(&format!("h:{}:", group.to_hex())))
                    .map(|(k, _)| k.rsplit(':').next().unwrap().parse::<u64>().unwrap())
                    .max()
                    .unwrap_or(0)
                    .max(new.processed);
                let old = LocalChat { kind: new.kind, name: new.name, processed, active: new.active, leavers: vec![] };
                chats.insert(group.0, postcard::to_stdvec(&old)?.as_slice())?;
                the_group = Some(group);
            } else if let Some(rest) = key.strip_prefix("h:") {
                let group: GroupId = rest[..32].parse()?;
                let new: veche_device::HistoryEntry = postcard::from_bytes(value)?;
                let body = match new.body {
                    veche_device::HistoryBody::Text(text) => HistoryBody::Text(text),
                    other => HistoryBody::System(format!("old system line: {other:?}")),
                };
                let old = HistoryEntry {
                    seq: new.seq,
                    sender: new.sender,
                    sent_at_ms: new.sent_at_ms,
                    stored_at_ms: new.stored_at_ms,
                    own: new.own,
                    body,
                };
                history.insert((group.0, new.seq), postcard::to_stdvec(&old)?.as_slice())?;
            } else if let Some(key) = key.strip_prefix("m:") {
                mls.insert(unhex(key).as_slice(), value.as_slice())?;
            }
        }
        pending.insert("tls_pin", pin.as_slice())?;
    }
    txn.commit()?;
    the_group.ok_or_else(|| anyhow::anyhow!("no chat in the fixture"))
}

#[test]
fn a_client_redb_of_the_old_client_opens_and_keeps_its_history() -> anyhow::Result<()> {
    let tmp = TempDir::new("old-client-state");
    let node = Node::start(tmp.path(), &["--registration", "open"])?;
    let alice = Client::new(tmp.path(), "alice", &node.url);
    let bob = Client::new(tmp.path(), "bob", &node.url);
    alice.run(&["register", "--name", "Alice"])?;
    bob.run(&["register", "--name", "Bob"])?;
    let group = alice.run(&["group", "create", "Old times"])?["chat"].as_str().unwrap().to_string();
    alice.run(&["add", &group, &bob.account()?])?;
    alice.run(&["send", &group, "written before the upgrade"])?;
    bob.run(&["send", &group, "bob, before the upgrade"])?;
    let before = alice.texts(&group)?;
    assert_eq!(before.len(), 2, "{before:?}");

    // Alice's state as the old client kept it.
    let path = alice.state.join("client.redb");
    let pin = [7u8; 32];
    assert_eq!(write_old_format(&path, &node.url, &pin)?.to_hex(), group);
    {
        let db = Database::open(&path)?;
        let read = db.begin_read()?;
        let names: Vec<String> = read.list_tables()?.map(|t| t.name().to_string()).collect();
        assert!(!names.iter().any(|n| n == "device_kv"), "{names:?}");
    }

    // Today's client opens it: the chat and its history are there, with the senders' names.
    let lines = alice.lines(&["read", &group])?;
    assert!(lines.iter().any(|l| l["type"] == "system"), "the old system lines are kept: {lines:?}");
    assert_eq!(alice.texts(&group)?, before, "the history is kept");
    let chats = alice.run(&["chats"])?;
    assert!(chats["chats"].as_array().unwrap().iter().any(|c| c["chat"] == group.as_str() && c["name"] == "Old times"));

    // Migrated once: one table left, holding the pin under the driver's key.
    {
        let db = Database::open(&path)?;
        let read = db.begin_read()?;
        let names: Vec<String> = read.list_tables()?.map(|t| t.name().to_string()).collect();
        assert_eq!(names, vec!["device_kv".to_string()]);
        let kv = read.open_table(KV)?;
        assert_eq!(kv.get("tls-pin")?.map(|v| v.value().to_vec()), Some(pin.to_vec()));
        assert!(kv.get("format")?.is_some());
    }

    // The MLS state came along: both go on talking.
    bob.run(&["send", &group, "bob, after the upgrade"])?;
    alice.run(&["send", &group, "alice, after the upgrade"])?;
    let after = alice.texts(&group)?;
    let texts: Vec<&str> = after.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["written before the upgrade", "bob, before the upgrade", "bob, after the upgrade", "alice, after the upgrade"]
    );
    assert_eq!(after[2].1, "Bob");
    assert_eq!(after[3].1, "Alice");
    assert_eq!(bob.texts(&group)?, after, "bob sees the same");
    Ok(())
}
