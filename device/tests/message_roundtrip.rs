//! Two members in a group: what one sends, the other reads, in order, under the sender's name;
//! each side records its own message once.

mod support;

use support::sim::Sim;
use veche_device::HistoryBody;

#[test]
fn messages_arrive_in_order_under_their_sender() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.sent(alice, group, "hello");
    sim.sent(bob, group, "hi Alice");
    sim.sent(alice, group, "how are you");
    for who in [alice, bob] {
        assert_eq!(sim.members[who].texts(group), ["hello", "hi Alice", "how are you"], "{}", sim.members[who].name);
    }
    let bob_view = sim.members[bob].history(group);
    let hello = bob_view.iter().find(|e| e.body == HistoryBody::Text("hello".into())).unwrap();
    assert_eq!(hello.sender, sim.members[alice].account());
    assert!(!hello.own);
    // Bob's device knows Alice's name (learnt from the node).
    assert_eq!(
        sim.members[bob].device.model().profiles.get(&sim.members[alice].account()).map(String::as_str),
        Some("Alice")
    );
}
