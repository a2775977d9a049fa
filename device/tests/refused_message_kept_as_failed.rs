//! The node refuses a message for good: it stays on the device marked failed (the member may
//! retry or discard it) instead of vanishing; Retry encrypts it afresh and sends it.

mod support;

use support::sim::Sim;
use veche_device::{Command, DeviceError, Outcome};
use veche_protocol::wire::ErrorCode;

#[test]
fn a_refused_message_is_kept_and_can_be_retried() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.node.refuse_next(group, 1, ErrorCode::TooLarge);
    let result = sim.send(alice, group, "refused once");
    assert!(matches!(&result, Err(DeviceError::Refused(e)) if e.code == ErrorCode::TooLarge), "{result:?}");
    let (id, entry) = {
        let model = sim.members[alice].device.model();
        let (id, entry) = model.outbox[&group].iter().next().map(|(i, e)| (*i, e.clone())).unwrap();
        (id, entry)
    };
    assert!(entry.failed);
    assert_eq!(sim.command(alice, Command::Retry { group, outbox_id: id }), Ok(Outcome::Done));
    assert_eq!(sim.members[bob].texts(group), ["refused once"]);
    // Discard drops a failed one.
    sim.node.refuse_next(group, 1, ErrorCode::Forbidden);
    let _ = sim.send(alice, group, "dropped");
    let id = *sim.members[alice].device.model().outbox[&group].keys().next().unwrap();
    assert_eq!(sim.command(alice, Command::Discard { group, outbox_id: id }), Ok(Outcome::Done));
    assert!(sim.members[alice].device.model().outbox.is_empty());
    assert_eq!(sim.members[bob].texts(group), ["refused once"]);
}
