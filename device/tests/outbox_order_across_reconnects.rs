//! Messages written while offline wait in the outbox and go out in order once connected, even
//! when the connection drops after the first of them.

mod support;

use support::sim::Sim;
use veche_device::DeviceError;
use veche_protocol::wire::Request;

#[test]
fn messages_written_offline_go_out_in_order() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.disconnect(alice);
    for text in ["one", "two", "three"] {
        assert_eq!(sim.send(alice, group, text), Err(DeviceError::Offline), "kept for later");
    }
    assert_eq!(sim.members[alice].device.model().outbox[&group].len(), 3);
    // The second send's answer is lost with the connection.
    let mut n = 0;
    sim.members[alice].lose_answer = Some(Box::new(move |r| {
        if matches!(r, Request::Send { .. }) {
            n += 1;
        }
        n == 2
    }));
    sim.connect(alice);
    sim.connect(alice);
    assert_eq!(sim.members[bob].texts(group), ["one", "two", "three"]);
    assert_eq!(sim.members[alice].texts(group), ["one", "two", "three"]);
    assert!(sim.members[alice].device.model().outbox.is_empty());
}
