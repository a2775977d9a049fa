//! The node at the device's address now has another id (another machine, or an impostor): the
//! device refuses to sign in and sends nothing.

mod support;

use support::sim::Sim;
use veche_device::{DeviceError, DeviceEvent, SignInError};
use veche_protocol::wire::Request;

#[test]
fn another_node_at_the_same_address_is_refused() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    sim.disconnect(alice);
    sim.node.node_id = "node-2".into();
    let before = sim.members[alice].trace.len();
    sim.connect(alice);
    assert!(sim.members[alice].events.iter().any(|e| matches!(
        e,
        DeviceEvent::SignInFailed(DeviceError::SignIn(SignInError::NodeChanged { known, now })) if known == "node-1" && now == "node-2"
    )));
    assert!(
        !sim.members[alice].trace[before..]
            .iter()
            .any(|t| matches!(t, support::sim::Trace::Send(Request::SignIn { .. })))
    );
    assert!(!sim.members[alice].device.is_signed_in());
}
