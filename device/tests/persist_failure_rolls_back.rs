//! The store refuses a write: the operation fails with a storage error, the MLS state returns to
//! what is stored (the ratchet did not advance), and the next message is readable by the others.

mod support;

use support::sim::Sim;
use veche_device::{DeviceError, Outcome};

#[test]
fn a_failed_write_rolls_the_device_back() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.sent(alice, group, "first");
    // The outbox entry is written; the write with the ciphertext (and the advanced ratchet) fails.
    let before = sim.members[alice].writes().count();
    sim.members[alice].failing_writes = 0;
    let id = sim.start(
        alice,
        veche_device::Command::Send { group, body: veche_protocol::content::Body::Text { text: "second".into() } },
    );
    // Let the first write (the plaintext outbox entry) through, fail the second.
    let mut writes = 0;
    loop {
        let conn = sim.members[alice].conn;
        let m = &mut sim.members[alice];
        let Some(action) = m.device.poll_action() else { break };
        match action {
            veche_device::Action::Persist(pid, write) => {
                writes += 1;
                if writes == 2 {
                    m.device.handle_persisted(pid, Err("disk full".into()));
                } else {
                    for (k, v) in write.puts {
                        m.kv.insert(k, v);
                    }
                    m.device.handle_persisted(pid, Ok(()));
                }
            }
            veche_device::Action::Send(rid, request) => {
                let answer = sim.node.handle(conn, request);
                sim.members[alice].device.handle_response(rid, answer, sim.now);
            }
            veche_device::Action::Notify(veche_device::DeviceEvent::Done { id: done, result }) if done == id => {
                assert_eq!(result, Err(DeviceError::Storage("disk full".into())));
            }
            _ => {}
        }
    }
    assert!(sim.members[alice].writes().count() >= before);
    // Nothing was sent; the message waits without a ciphertext, and goes out with the next one.
    assert!(sim.members[alice].device.model().outbox[&group].values().all(|e| e.ciphertext.is_none()));
    assert!(matches!(sim.send(alice, group, "third"), Ok(Outcome::Stored(_))));
    assert_eq!(sim.members[bob].texts(group), ["first", "second", "third"]);
}
