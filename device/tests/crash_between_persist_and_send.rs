//! The device saved a message's ciphertext and stopped before sending it. Started again, it
//! sends the same ciphertext (never a second encryption under the same key); if the node had
//! stored it already, the node's dedup answers the same seq: one message either way.

mod support;

use support::sim::Sim;
use veche_protocol::wire::Request;

#[test]
fn a_saved_ciphertext_is_sent_after_a_crash() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.members[alice].crash_before = Some(Box::new(|r| matches!(r, Request::Send { .. })));
    let _ = sim.send(alice, group, "survives the crash");
    assert!(
        sim.members[alice]
            .device
            .model()
            .outbox
            .get(&group)
            .is_some_and(|o| o.values().all(|e| e.ciphertext.is_some()))
    );
    sim.connect(alice);
    assert_eq!(sim.members[bob].texts(group), ["survives the crash"]);
    assert_eq!(sim.members[alice].texts(group), ["survives the crash"]);
    assert!(sim.members[alice].device.model().outbox.is_empty());
}

#[test]
fn a_message_stored_before_the_crash_is_recorded_once() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    // The node stores it; the answer never arrives; the device restarts from its store.
    sim.members[alice].lose_answer = Some(Box::new(|r| matches!(r, Request::Send { .. })));
    let _ = sim.send(alice, group, "once");
    sim.restart(alice);
    sim.connect(alice);
    assert_eq!(sim.members[alice].texts(group), ["once"]);
    assert_eq!(sim.members[bob].texts(group), ["once"]);
    let sends = sim.node.log(group).iter().filter(|e| e.kind == veche_protocol::wire::EntryKind::Application).count();
    assert_eq!(sends, 1, "stored once");
}
