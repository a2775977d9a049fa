//! A message stored between this device's catch-up and its own leave proposal is still
//! processed (the browser raised `processed` past it). Then the owner's device completes the
//! removal, and the leaver's chat becomes inactive.

mod support;

use support::sim::Sim;
use veche_device::{Command, HistoryBody, Outcome, SystemEvent};
use veche_protocol::wire::Request;

#[test]
fn leaving_keeps_what_came_just_before_and_the_owner_completes_it() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let mut carol = sim.raw("Carol");
    let group = sim.chat_of(&[alice, bob]);
    sim.add(alice, group, carol.account());
    sim.raw_catch_up(&mut carol, group);
    let message = sim.raw_text(&mut carol, group, "before you go");
    let conn = carol.conn;
    let mut once = Some(message);
    sim.members[bob].inject_before = Some(Box::new(move |r| match r {
        Request::Send { group: g, .. } if *g == group => {
            once.take().map(|m| (conn, Request::Send { group, message: m }))
        }
        _ => None,
    }));
    let left = sim.command(bob, Command::Leave { group });
    assert!(matches!(left, Ok(Outcome::Stored(_))), "{left:?}");
    sim.settle();
    assert_eq!(sim.members[bob].texts(group), ["before you go"]);
    // Alice's device (the owner's) committed Bob's leave when it saw the proposal.
    assert!(!sim.members[bob].device.model().chats[&group].active, "Bob is out");
    assert!(
        sim.members[alice].history(group).iter().any(|e| e.body == HistoryBody::System(SystemEvent::RemovedLeavers)),
        "Alice's device removed the leaver"
    );
    assert!(!sim.node.chats[&group].roster.contains_key(&sim.members[bob].account()));
}
