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

/// The account key signs its node as the account's home when it registers; an account whose node
/// holds no binding (registered before bindings existed) sends it at its next sign-in, once.
#[test]
fn the_first_device_signs_its_home_at_registration_and_when_the_node_has_none() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let account = sim.members[alice].account();
    let node_id = sim.node.node_id.clone();
    let bound = |sim: &Sim| sim.node.accounts[&account].home_signature.clone();
    let signature = bound(&sim).expect("the home binding was sent at registration");
    assert!(veche_protocol::auth::verify_home(&account, &node_id, &signature).is_ok());
    let binds = |sim: &Sim| sim.members[alice].sent().filter(|r| matches!(r, Request::BindHome { .. })).count();
    assert_eq!(binds(&sim), 1);
    // Signing in again to a node that holds it: nothing more is sent.
    sim.disconnect(alice);
    sim.connect(alice);
    assert_eq!(binds(&sim), 1);
    // The node has none (an account from before bindings): the next sign-in sends it.
    sim.node.accounts.get_mut(&account).unwrap().home_signature = None;
    sim.disconnect(alice);
    sim.connect(alice);
    assert_eq!(binds(&sim), 2);
    assert!(bound(&sim).is_some_and(|s| veche_protocol::auth::verify_home(&account, &node_id, &s).is_ok()));
}
