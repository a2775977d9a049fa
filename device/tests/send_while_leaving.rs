//! A member who asked to leave (not yet removed) cannot encrypt in that chat: a message written
//! there is marked failed instead of waiting for ever, and the device's other chats keep syncing.

mod support;

use support::sim::Sim;
use veche_device::{Command, DeviceError, Outcome};

#[test]
fn a_message_in_a_chat_being_left_fails_and_other_chats_go_on() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let leaving = sim.chat_of(&[alice, bob]);
    let other = sim.chat_of(&[alice, bob]);
    // Nobody commits Bob's leave while Alice is away.
    sim.disconnect(alice);
    assert!(matches!(sim.command(bob, Command::Leave { group: leaving }), Ok(Outcome::Stored(_))));
    let result = sim.send(bob, leaving, "one more thing");
    assert!(matches!(result, Err(DeviceError::Mls(_))), "{result:?}");
    assert!(sim.members[bob].device.model().outbox[&leaving].values().all(|e| e.failed));
    sim.disconnect(bob);
    sim.connect(alice);
    sim.sent(alice, other, "in the other chat");
    sim.connect(bob);
    assert_eq!(sim.members[bob].texts(other), ["in the other chat"]);
}
