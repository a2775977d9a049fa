//! One commit that adds a member and removes another (an admin's add that also commits a pending
//! leave proposal): the other members' devices record both in one line. The browser's copy of
//! the rules recorded only the add.

mod support;

use support::sim::Sim;
use veche_device::{HistoryBody, SystemEvent};
use veche_protocol::wire::{Request, Response};

#[test]
fn a_commit_that_adds_and_removes_is_recorded_as_both() {
    let mut sim = Sim::new();
    let carol = sim.member("Carol");
    let dave = sim.member("Dave");
    let mut alice = sim.raw("Alice");
    let mut bob = sim.raw("Bob");
    // Alice (a bare client) owns the chat; Bob, Carol and Dave are in it.
    let group = veche_protocol::ids::GroupId([7; 16]);
    let group_info = alice.client.create_group(group, veche_protocol::ids::ChatKind::Group).unwrap();
    let create = Request::CreateChat {
        group,
        kind: veche_protocol::ids::ChatKind::Group,
        name: "g".into(),
        description: String::new(),
        peer: None,
        group_info,
    };
    assert!(matches!(sim.raw_request(&alice, create), Ok(Response::Chat(_))));
    let mut packages = Vec::new();
    for account in [bob.account(), sim.members[carol].account()] {
        let Ok(Response::KeyPackages(p)) = sim.raw_request(&alice, Request::ClaimKeyPackages { account }) else {
            panic!("claim")
        };
        packages.extend(p);
    }
    let bundle = alice.client.add_members(group, &packages).unwrap();
    let commit =
        Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
    assert!(matches!(sim.raw_request(&alice, commit), Ok(Response::Stored { .. })));
    alice.client.merge_pending_commit(group).unwrap();
    sim.settle();
    sim.raw_catch_up(&mut bob, group);
    // Bob asks to leave; Alice receives the proposal, then adds Dave: her commit carries both.
    let proposal = bob.client.leave(group).unwrap();
    assert!(matches!(
        sim.raw_request(&bob, Request::Send { group, message: proposal.clone() }),
        Ok(Response::Stored { .. })
    ));
    alice.client.process(&proposal).unwrap();
    let Ok(Response::KeyPackages(dave_packages)) =
        sim.raw_request(&alice, Request::ClaimKeyPackages { account: sim.members[dave].account() })
    else {
        panic!("claim")
    };
    let bundle = alice.client.add_members(group, &dave_packages).unwrap();
    assert_eq!(bundle.removed.len(), 1, "the add carries Bob's leave");
    let commit =
        Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
    assert!(matches!(sim.raw_request(&alice, commit), Ok(Response::Stored { .. })));
    sim.settle();
    let last = sim.members[carol].history(group).pop().expect("a line for the commit");
    assert_eq!(
        last.body,
        HistoryBody::System(SystemEvent::Membership {
            added: vec![sim.members[dave].account()],
            removed: vec![bob.account()]
        })
    );
    assert_eq!(last.sender, alice.account());
}
