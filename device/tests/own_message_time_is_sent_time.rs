//! A message written offline at 10:00 and stored at 10:05 shows 10:00 as its time on the
//! sender's device (as on everyone else's), and 10:05 as stored.

mod support;

use support::sim::Sim;

#[test]
fn own_messages_keep_the_time_they_were_written() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.disconnect(alice);
    let written = sim.now;
    let _ = sim.send(alice, group, "written offline");
    sim.advance(300_000);
    sim.connect(alice);
    let own = sim.members[alice]
        .history(group)
        .into_iter()
        .find(|e| e.own && matches!(e.body, veche_device::HistoryBody::Text(_)))
        .unwrap();
    assert_eq!(own.sent_at_ms, written);
    assert_eq!(own.stored_at_ms, written + 300_000);
    let theirs = sim.members[bob]
        .history(group)
        .into_iter()
        .find(|e| !e.own && matches!(e.body, veche_device::HistoryBody::Text(_)))
        .unwrap();
    assert_eq!(theirs.sent_at_ms, written);
}
