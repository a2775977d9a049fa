//! Welcomes: removed and added back while offline, the device processes the removal first and
//! then joins again from the new Welcome; a Welcome it cannot use is acknowledged and dropped so
//! it never blocks the device.

mod support;

use support::sim::Sim;
use veche_device::Command;
use veche_protocol::wire::Request;

#[test]
fn removed_then_added_back_while_offline() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.disconnect(bob);
    let bob_account = sim.members[bob].account();
    assert!(sim.command(alice, Command::Remove { group, member: bob_account }).is_ok());
    sim.sent(alice, group, "Bob cannot read this");
    sim.add(alice, group, bob_account);
    sim.sent(alice, group, "welcome back");
    sim.connect(bob);
    assert!(sim.members[bob].device.model().chats[&group].active);
    assert_eq!(sim.members[bob].texts(group), ["welcome back"]);
    sim.sent(bob, group, "thanks");
    assert_eq!(sim.members[alice].texts(group), ["Bob cannot read this", "welcome back", "thanks"]);
}

#[test]
fn an_unusable_welcome_is_acknowledged_and_dropped() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    sim.disconnect(bob);
    let broken = sim.group(alice, "broken");
    sim.add(alice, broken, sim.members[bob].account());
    for welcome in sim.node.welcomes.values_mut() {
        welcome.welcome = vec![0xde, 0xad];
    }
    let fine = sim.group(alice, "fine");
    sim.add(alice, fine, sim.members[bob].account());
    sim.connect(bob);
    assert!(!sim.members[bob].device.model().chats.contains_key(&broken));
    assert!(sim.members[bob].device.model().chats[&fine].active, "the next welcome still works");
    assert!(sim.node.welcomes.is_empty(), "both acknowledged");
    assert!(sim.members[bob].sent().filter(|r| matches!(r, Request::AckWelcome { .. })).count() >= 2);
}
