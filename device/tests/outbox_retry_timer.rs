//! The chat's home node is unreachable for a while (a retryable refusal): the message waits,
//! the device asks for a timer, and when it fires the message goes out.

mod support;

use support::sim::Sim;
use veche_device::{DeviceError, OUTBOX_RETRY_MS};
use veche_protocol::wire::ErrorCode;

#[test]
fn a_waiting_message_is_retried_by_the_timer() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.node.refuse_next(group, 1, ErrorCode::Unavailable);
    let result = sim.send(alice, group, "when the home node is back");
    assert!(matches!(&result, Err(DeviceError::Refused(e)) if e.code == ErrorCode::Unavailable), "{result:?}");
    assert!(!sim.members[alice].device.model().outbox[&group].values().next().unwrap().failed, "waiting, not failed");
    assert_eq!(sim.members[alice].timers, [sim.now + OUTBOX_RETRY_MS]);
    assert!(sim.members[bob].texts(group).is_empty());
    sim.advance(OUTBOX_RETRY_MS);
    assert_eq!(sim.members[bob].texts(group), ["when the home node is back"]);
    assert!(sim.members[alice].device.model().outbox.is_empty());
}
