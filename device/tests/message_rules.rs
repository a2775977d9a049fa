//! A text is checked before it is queued: an empty one or one over the length limit never
//! leaves the device (a receiver could not read it), and nothing is left in the outbox.

mod support;

use support::sim::Sim;
use veche_device::{DeviceError, SendError};
use veche_protocol::content::MAX_TEXT_CHARS;

#[test]
fn texts_too_long_or_empty_are_refused_on_the_device() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    let entries = sim.node.log(group).len();
    assert_eq!(sim.send(alice, group, &"x".repeat(MAX_TEXT_CHARS + 1)), Err(DeviceError::Send(SendError::TooLong)));
    assert_eq!(sim.send(alice, group, "   "), Err(DeviceError::Send(SendError::Empty)));
    assert_eq!(sim.node.log(group).len(), entries, "nothing reached the node");
    assert!(sim.members[alice].device.model().outbox.is_empty());
    sim.sent(alice, group, &"y".repeat(MAX_TEXT_CHARS));
    assert_eq!(sim.members[bob].texts(group), ["y".repeat(MAX_TEXT_CHARS)]);
}
