//! A live event arrives ahead of what the device processed (an event was missed): the device
//! fetches what is missing instead of skipping it.

mod support;

use support::sim::Sim;

#[test]
fn a_missed_live_event_is_fetched() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    sim.sent(alice, group, "one");
    // Bob's connection loses the next event.
    let id = sim.start(
        alice,
        veche_device::Command::Send { group, body: veche_protocol::content::Body::Text { text: "two".into() } },
    );
    // Pump Alice alone until her message is stored, then drop Bob's events.
    for _ in 0..100 {
        let alice_conn = sim.members[alice].conn;
        let Some(action) = sim.members[alice].device.poll_action() else { break };
        match action {
            veche_device::Action::Send(rid, request) => {
                let answer = sim.node.handle(alice_conn, request);
                sim.members[alice].device.handle_response(rid, answer, sim.now);
            }
            veche_device::Action::Persist(pid, write) => {
                for (k, v) in write.puts {
                    sim.members[alice].kv.insert(k, v);
                }
                sim.members[alice].device.handle_persisted(pid, Ok(()));
            }
            _ => {}
        }
    }
    let bob_conn = sim.members[bob].conn;
    let lost = sim.node.take_events(bob_conn);
    assert_eq!(lost.len(), 1, "the event Bob misses");
    let _ = id;
    sim.settle();
    sim.sent(alice, group, "three");
    assert_eq!(sim.members[bob].texts(group), ["one", "two", "three"]);
}
