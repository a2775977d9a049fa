//! The node (or a rogue linked home node) delivers Bob's ciphertext under Carol's name: devices
//! show the member MLS authenticates, with a warning, never a message "from Carol". An entry that
//! claims this device's own account at a seq it never sent is processed, not skipped as its own.

mod support;

use support::sim::Sim;
use veche_device::HistoryBody;

#[test]
fn a_message_under_another_members_name_is_shown_as_forged() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let carol = sim.member("Carol");
    let group = sim.chat_of(&[alice, bob, carol]);
    sim.disconnect(alice);
    let seq = sim.sent(bob, group, "I am Carol, honest");
    let carol_account = sim.members[carol].account();
    let entry = sim.node.chats.get_mut(&group).unwrap().log.iter_mut().find(|e| e.seq == seq).unwrap();
    entry.sender = carol_account;
    sim.connect(alice);
    let shown = sim.members[alice].history(group).into_iter().find(|e| e.seq == seq).unwrap();
    assert_eq!(shown.sender, sim.members[bob].account(), "shown under the authenticated sender");
    assert_eq!(shown.body, HistoryBody::Forged { claimed: carol_account });
    assert!(sim.members[alice].texts(group).is_empty(), "its text is not shown as anyone's message");
}

#[test]
fn an_entry_claiming_my_account_is_not_skipped_as_my_own() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.disconnect(alice);
    let seq = sim.sent(bob, group, "hidden as Alice's?");
    let alice_account = sim.members[alice].account();
    sim.node.chats.get_mut(&group).unwrap().log.iter_mut().find(|e| e.seq == seq).unwrap().sender = alice_account;
    sim.connect(alice);
    let shown = sim.members[alice].history(group).into_iter().find(|e| e.seq == seq).expect("processed");
    assert_eq!(shown.body, HistoryBody::Forged { claimed: alice_account });
    assert!(!shown.own);
}
