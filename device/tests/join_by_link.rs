//! Joining a chat by invite link: with every member offline; with the answer lost (the saved
//! join is resent and recorded once); the completion is one write; a saved join that went stale
//! while the device was down is made again with the chat's current GroupInfo.

mod support;

use support::sim::Sim;
use veche_device::{Command, Delete, DeviceError, HistoryBody, Outcome, SystemEvent};
use veche_protocol::wire::Request;

#[test]
fn joining_while_every_member_is_offline() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.group(alice, "town");
    let link = sim.invite(alice, group);
    sim.disconnect(alice);
    let joined = sim.command(bob, Command::Join { link });
    assert!(matches!(joined, Ok(Outcome::Joined { group: g, .. }) if g == group), "{joined:?}");
    sim.sent(bob, group, "hello, anyone?");
    sim.connect(alice);
    assert_eq!(sim.members[alice].texts(group), ["hello, anyone?"]);
    let bob_account = sim.members[bob].account();
    assert!(
        sim.members[alice]
            .history(group)
            .iter()
            .any(|e| e.body == HistoryBody::System(SystemEvent::JoinedByLink(bob_account)))
    );
}

#[test]
fn a_join_whose_answer_was_lost_completes_on_the_next_connection() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.group(alice, "town");
    let link = sim.invite(alice, group);
    sim.members[bob].lose_answer = Some(Box::new(|r| matches!(r, Request::Join { .. })));
    assert_eq!(sim.command(bob, Command::Join { link }), Err(DeviceError::Offline));
    assert!(sim.members[bob].kv.keys().any(|k| k.starts_with("j:")), "the join is saved");
    sim.restart(bob);
    sim.connect(bob);
    assert!(sim.members[bob].device.model().chats.get(&group).is_some_and(|c| c.active));
    assert!(sim.members[bob].device.model().pending_joins.is_empty());
    let joins = sim.node.log(group).iter().filter(|e| e.kind == veche_protocol::wire::EntryKind::Handshake).count();
    assert_eq!(joins, 1, "the node stored the join once");
    sim.sent(alice, group, "welcome");
    assert_eq!(sim.members[bob].texts(group), ["welcome"]);
    // The write that completed the join removed the saved join and added the chat together.
    let hex = group.to_hex();
    let completion = sim.members[bob]
        .writes()
        .find(|w| w.deletes.contains(&Delete::Key(format!("j:{hex}"))))
        .expect("a write removes the pending join");
    assert!(completion.puts.iter().any(|(k, _)| *k == format!("c:{hex}")), "…and adds the chat in the same write");
}

#[test]
fn a_saved_join_that_went_stale_is_made_again() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let carol = sim.member("Carol");
    let group = sim.group(alice, "town");
    let link = sim.invite(alice, group);
    // Bob saves his join and stops before sending it.
    sim.members[bob].crash_before = Some(Box::new(|r| matches!(r, Request::Join { .. })));
    let _ = sim.command(bob, Command::Join { link });
    assert!(!sim.members[bob].device.model().pending_joins.is_empty());
    // Meanwhile the chat moves on.
    let carol_account = sim.members[carol].account();
    sim.add(alice, group, carol_account);
    sim.connect(bob);
    assert!(sim.members[bob].device.model().chats.get(&group).is_some_and(|c| c.active), "joined after all");
    sim.sent(carol, group, "hi Bob");
    assert_eq!(sim.members[bob].texts(group), ["hi Bob"]);
}
