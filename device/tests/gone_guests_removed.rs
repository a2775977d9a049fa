//! Members the node deleted (guests whose meeting is over) leave the chat's MLS group: the node
//! lists them in `ChatInfo::gone` and tells the chat (`ChatUpdated`); an owner's or admin's device
//! commits their removal, once, and a plain member's device does not try.

mod support;

use support::sim::Sim;
use veche_device::{HistoryBody, SystemEvent};
use veche_protocol::wire::{Event, Request};

#[test]
fn the_owners_device_removes_members_the_node_deleted() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let mut gina = sim.raw("Gina");
    let group = sim.chat_of(&[alice, bob]);
    sim.add(alice, group, gina.account());
    sim.raw_catch_up(&mut gina, group);
    sim.settle();
    assert!(sim.node.chats[&group].roster.contains_key(&gina.account()));

    // Gina's time is over: the node deletes her account and tells the chat.
    sim.node.gone.insert((group, gina.account()));
    let roster: Vec<_> = sim.node.chats[&group].roster.keys().copied().collect();
    sim.node.publish(&roster, Event::ChatUpdated { group });
    sim.settle();

    assert!(!sim.node.chats[&group].roster.contains_key(&gina.account()), "Gina is out of the chat");
    assert!(
        sim.members[alice].history(group).iter().any(|e| e.body == HistoryBody::System(SystemEvent::RemovedLeavers)),
        "the owner's device committed the removal"
    );
    let commits = |i: usize| sim.members[i].sent().filter(|r| matches!(r, Request::Commit { .. })).count();
    assert_eq!(commits(bob), 0, "a plain member's device does not try");
    // Both devices are in the new epoch and keep talking.
    sim.sent(bob, group, "after the meeting");
    assert_eq!(sim.members[alice].texts(group), ["after the meeting"]);
}

#[test]
fn an_owner_offline_then_removes_them_when_it_syncs() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let mut gina = sim.raw("Gina");
    let group = sim.chat_of(&[alice, bob]);
    sim.add(alice, group, gina.account());
    sim.raw_catch_up(&mut gina, group);
    sim.settle();
    sim.disconnect(alice);
    sim.node.gone.insert((group, gina.account()));
    let roster: Vec<_> = sim.node.chats[&group].roster.keys().copied().collect();
    sim.node.publish(&roster, Event::ChatUpdated { group });
    sim.settle();
    assert!(sim.node.chats[&group].roster.contains_key(&gina.account()), "nobody who may remove her is online");
    sim.connect(alice);
    sim.settle();
    assert!(!sim.node.chats[&group].roster.contains_key(&gina.account()), "removed once the owner is back");
}
