//! A member asks to leave, but another member's commit lands first and makes the leave proposal
//! stale: the owner's device still removes the leaver, inline.

mod support;

use support::sim::Sim;
use veche_device::{HistoryBody, SystemEvent};
use veche_protocol::wire::{Request, Response};

#[test]
fn a_leaver_whose_proposal_went_stale_is_removed_anyway() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let mut bob = sim.raw("Bob");
    let mut carol = sim.raw("Carol");
    let group = sim.group(alice, "chat");
    sim.add(alice, group, bob.account());
    sim.add(alice, group, carol.account());
    sim.raw_catch_up(&mut bob, group);
    sim.raw_catch_up(&mut carol, group);
    sim.disconnect(alice);
    let proposal = bob.client.leave(group).unwrap();
    assert!(matches!(sim.raw_request(&bob, Request::Send { group, message: proposal }), Ok(Response::Stored { .. })));
    // Carol commits a key update without having seen Bob's proposal: it goes stale.
    let bundle = carol.client.self_update(group).unwrap();
    let commit =
        Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
    assert!(matches!(sim.raw_request(&carol, commit), Ok(Response::Stored { .. })), "Carol's commit is stored");
    carol.client.merge_pending_commit(group).unwrap();
    assert!(sim.node.chats[&group].roster.contains_key(&bob.account()));
    sim.connect(alice);
    assert!(!sim.node.chats[&group].roster.contains_key(&bob.account()), "Bob removed");
    assert!(
        sim.members[alice].history(group).iter().any(|e| e.body == HistoryBody::System(SystemEvent::RemovedLeavers))
    );
}
