//! The node stores this device's commit but the answer is lost with the connection. The device
//! keeps the commit pending; on the next sync it finds its commit in the log and merges it, so
//! the chat goes on (no second commit, nothing unreadable).

mod support;

use support::sim::Sim;
use veche_device::{Command, DeviceError, HistoryBody, SystemEvent};
use veche_protocol::wire::Request;

#[test]
fn a_stored_commit_whose_answer_was_lost_is_merged_on_the_next_sync() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let carol = sim.member("Carol");
    let group = sim.chat_of(&[alice, bob, carol]);
    sim.members[alice].lose_answer = Some(Box::new(|r| matches!(r, Request::Commit { .. })));
    let carol_account = sim.members[carol].account();
    assert_eq!(sim.command(alice, Command::Remove { group, member: carol_account }), Err(DeviceError::Offline));
    let commits = sim.node.log(group).iter().filter(|e| e.kind == veche_protocol::wire::EntryKind::Handshake).count();
    sim.connect(alice);
    assert_eq!(
        sim.node.log(group).iter().filter(|e| e.kind == veche_protocol::wire::EntryKind::Handshake).count(),
        commits,
        "no second commit"
    );
    sim.sent(alice, group, "after the removal");
    assert_eq!(sim.members[bob].texts(group), ["after the removal"]);
    assert!(!sim.members[carol].device.model().chats[&group].active);
    for who in [alice, bob] {
        assert!(
            !sim.members[who].history(group).iter().any(|e| e.body == HistoryBody::System(SystemEvent::Unreadable)),
            "{}",
            sim.members[who].name
        );
    }
}
