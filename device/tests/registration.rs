//! Registering: the device record and the key packages' private keys are written before the
//! packages leave (50 one-time packages and a last-resort one); a registration interrupted after
//! the node accepted it signs in with the same key instead of losing the account.

mod support;

use support::sim::{Sim, Trace};
use veche_device::Command;
use veche_protocol::wire::Request;

#[test]
fn keys_are_stored_before_the_packages_leave() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let trace = &sim.members[alice].trace;
    let publish = trace
        .iter()
        .position(|t| matches!(t, Trace::Send(Request::PublishKeyPackages { .. })))
        .expect("packages published");
    let device_written = trace
        .iter()
        .position(|t| matches!(t, Trace::Persist(w) if w.puts.iter().any(|(k, _)| k == "device")))
        .expect("device record written");
    assert!(device_written < publish);
    let Trace::Send(Request::PublishKeyPackages { packages, last_resort }) = &trace[publish] else { unreachable!() };
    assert_eq!(packages.len(), veche_device::KEY_PACKAGES_FIRST);
    assert_eq!(packages.len(), 50);
    assert!(last_resort.is_some());
    // The stored device opens again as the same account.
    let account = sim.members[alice].account();
    sim.restart(alice);
    assert_eq!(sim.members[alice].device.account(), Some(account));
}

#[test]
fn an_interrupted_registration_signs_in_with_the_same_key() {
    let mut sim = Sim::new();
    let i = sim.device_from("Alice", Vec::new());
    sim.connect(i);
    sim.members[i].lose_answer = Some(Box::new(|r| matches!(r, Request::Register { .. })));
    let first = sim.command(i, Command::Register { name: "Alice".into(), invite: None, node_url: None });
    assert!(first.is_err());
    assert!(sim.members[i].kv.contains_key("pending-secret"));
    sim.restart(i);
    sim.connect(i);
    let again = sim.command(i, Command::Register { name: "Alice".into(), invite: None, node_url: None });
    assert_eq!(again, Ok(veche_device::Outcome::Done));
    assert_eq!(sim.node.accounts.len(), 1, "one account, not two");
    assert!(sim.members[i].sent().any(|r| matches!(r, Request::SignIn { .. })), "Conflict, then sign-in");
    assert!(!sim.members[i].kv.contains_key("pending-secret"));
}
