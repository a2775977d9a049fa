//! When the node holds fewer than 10 of the device's one-time key packages, the device makes 40
//! more, stores their keys, then publishes them; with 10 or more it does nothing.

mod support;

use support::sim::{Sim, Trace};
use veche_protocol::wire::Request;

#[test]
fn packages_are_topped_up_below_ten() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let alice_account = sim.members[alice].account();
    // Others claim Alice's packages until 9 are left.
    let claimer = sim.raw("Claimer");
    loop {
        let Ok(veche_protocol::wire::Response::KeyPackageCount(n)) =
            sim.node.handle(sim.members[alice].conn, Request::KeyPackageCount)
        else {
            panic!("count")
        };
        if n <= 9 {
            break;
        }
        let _ = sim.raw_request(&claimer, Request::ClaimKeyPackages { account: alice_account });
    }
    let _ = bob;
    sim.disconnect(alice);
    let before = sim.members[alice].trace.len();
    sim.connect(alice);
    let trace = &sim.members[alice].trace[before..];
    let publish =
        trace.iter().position(|t| matches!(t, Trace::Send(Request::PublishKeyPackages { .. }))).expect("published");
    let Trace::Send(Request::PublishKeyPackages { packages, .. }) = &trace[publish] else { unreachable!() };
    assert_eq!(packages.len(), 40);
    assert!(matches!(trace[publish - 1], Trace::Persist(_)), "their keys are written just before");
    // Topped up: the next connection publishes nothing.
    sim.disconnect(alice);
    let before = sim.members[alice].trace.len();
    sim.connect(alice);
    assert!(
        !sim.members[alice].trace[before..]
            .iter()
            .any(|t| matches!(t, Trace::Send(Request::PublishKeyPackages { .. })))
    );
}
