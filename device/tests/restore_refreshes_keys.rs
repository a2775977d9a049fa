//! A device restored from a recovery file (an older copy of its state) moves every chat to a new
//! epoch by its own commit before it encrypts anything, so it never reuses a ratchet key the lost
//! device may have used; the others read what it sends next.

mod support;

use support::sim::Sim;
use veche_device::{HistoryBody, SystemEvent};

#[test]
fn a_restored_device_refreshes_its_keys_first() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.sent(alice, group, "before the backup");
    // The recovery file: everything Alice's device stored, as the browser exports it.
    let mut backup: Vec<(String, Vec<u8>)> =
        sim.members[alice].kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    backup.push(("restored".into(), vec![1]));
    sim.sent(alice, group, "after the backup, on the lost device");
    sim.disconnect(alice);
    let restored = sim.device_from("Alice again", backup);
    sim.connect(restored);
    assert!(!sim.members[restored].device.model().restored, "refresh done");
    assert!(
        sim.members[restored].history(group).iter().any(|e| e.body == HistoryBody::System(SystemEvent::KeysRefreshed)),
        "{:?}",
        sim.members[restored].history(group)
    );
    sim.sent(restored, group, "back again");
    assert_eq!(
        sim.members[bob].texts(group),
        ["before the backup", "after the backup, on the lost device", "back again"]
    );
}
