//! Another commit wins the epoch: the node refuses this device's commit with StaleEpoch; the
//! device catches up, makes it again, and it is stored once. After eight refusals in a row it
//! gives up with "chat busy", and its pending commit is dropped (the next one works).

mod support;

use support::sim::Sim;
use veche_device::{Command, DeviceError, HistoryBody, Outcome, SystemEvent};
use veche_protocol::wire::ErrorCode;

#[test]
fn a_commit_refused_as_stale_is_made_again() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let carol = sim.member("Carol");
    let group = sim.chat_of(&[alice, bob]);
    sim.node.refuse_next(group, 1, ErrorCode::StaleEpoch { current: 1 });
    let carol_account = sim.members[carol].account();
    let result = sim.command(alice, Command::Add { group, member: carol_account });
    assert!(matches!(result, Ok(Outcome::Stored(_))), "{result:?}");
    let added: Vec<_> = sim.members[alice]
        .history(group)
        .into_iter()
        .filter(|e| e.body == HistoryBody::System(SystemEvent::Added(vec![carol_account])))
        .collect();
    assert_eq!(added.len(), 1);
    sim.sent(carol, group, "I am in");
    assert_eq!(sim.members[bob].texts(group), ["I am in"]);
}

#[test]
fn eight_stale_refusals_give_up_and_leave_nothing_pending() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let carol = sim.member("Carol");
    let group = sim.chat_of(&[alice, bob]);
    sim.node.refuse_next(group, 8, ErrorCode::StaleEpoch { current: 1 });
    let carol_account = sim.members[carol].account();
    assert_eq!(sim.command(alice, Command::Add { group, member: carol_account }), Err(DeviceError::ChatBusy));
    // Nothing half-done: the next add works and the chat goes on.
    assert!(matches!(sim.command(alice, Command::Add { group, member: carol_account }), Ok(Outcome::Stored(_))));
    sim.sent(alice, group, "welcome Carol");
    assert_eq!(sim.members[carol].texts(group), ["welcome Carol"]);
    assert_eq!(sim.members[bob].texts(group), ["welcome Carol"]);
}
