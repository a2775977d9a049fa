//! The node dropped entries (retention) before this device fetched them: one "expired" line
//! where they were, and what is still there is processed.

mod support;

use support::sim::Sim;
use veche_device::{HistoryBody, SystemEvent};

#[test]
fn entries_expired_on_the_node_show_as_one_line() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.disconnect(bob);
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(sim.sent(alice, group, &format!("m{i}")));
    }
    sim.node.expire(group, seqs[2]);
    sim.connect(bob);
    let history = sim.members[bob].history(group);
    let expired: Vec<_> =
        history.iter().filter(|e| matches!(e.body, HistoryBody::System(SystemEvent::Expired(_)))).collect();
    assert_eq!(expired.len(), 1, "{history:?}");
    assert_eq!(expired[0].body, HistoryBody::System(SystemEvent::Expired(3)));
    assert_eq!(expired[0].seq, seqs[0]);
    assert_eq!(sim.members[bob].texts(group), ["m3", "m4"]);
}
