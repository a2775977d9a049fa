//! A ciphertext saved before a crash belongs to an epoch that moved on meanwhile: the node
//! refuses it as stale; the device catches up and encrypts the message again instead of
//! dropping it (the native client's copy dropped it).

mod support;

use support::sim::Sim;
use veche_device::Command;
use veche_protocol::wire::Request;

#[test]
fn a_stale_saved_message_is_encrypted_again() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let carol = sim.member("Carol");
    let group = sim.chat_of(&[alice, bob]);
    sim.members[bob].crash_before = Some(Box::new(|r| matches!(r, Request::Send { .. })));
    let _ = sim.send(bob, group, "written before the add");
    // While Bob is down, Alice adds Carol: a new epoch.
    let carol_account = sim.members[carol].account();
    sim.add(alice, group, carol_account);
    let _ = Command::Sync;
    sim.connect(bob);
    assert_eq!(sim.members[alice].texts(group), ["written before the add"]);
    assert_eq!(sim.members[carol].texts(group), ["written before the add"], "encrypted for the new epoch");
}
