//! A message stored between this device's catch-up and its own commit (same epoch, so the node
//! takes both) has a lower sequence number than the commit. The device still processes it: the
//! browser's copy raised `processed` to the commit's seq and so skipped it for good.

mod support;

use support::sim::Sim;
use veche_device::Command;
use veche_protocol::wire::Request;

#[test]
fn a_message_stored_just_before_my_commit_is_not_lost() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let carol = sim.member("Carol");
    let mut bob = sim.raw("Bob");
    let group = sim.chat_of(&[alice, carol]);
    sim.add(alice, group, bob.account());
    sim.raw_catch_up(&mut bob, group);
    // Bob's message, encrypted in the current epoch, reaches the node right before Alice's commit.
    let message = sim.raw_text(&mut bob, group, "stored in between");
    let bob_conn = bob.conn;
    let mut pending = Some(message);
    let node_injection = move |request: &Request| matches!(request, Request::Commit { .. });
    sim.members[alice].crash_before = None;
    let carol_account = sim.members[carol].account();
    // Alice removes Carol: her device catches up, makes the commit; just before it is sent,
    // Bob's message is stored.
    let id = sim.start(alice, Command::Remove { group, member: carol_account });
    loop {
        let Some(action) = sim.members[alice].device.poll_action() else { panic!("stalled") };
        match action {
            veche_device::Action::Send(rid, request) => {
                if node_injection(&request)
                    && let Some(message) = pending.take()
                {
                    let stored = sim.node.handle(bob_conn, Request::Send { group, message });
                    assert!(matches!(stored, Ok(veche_protocol::wire::Response::Stored { .. })), "{stored:?}");
                }
                let conn = sim.members[alice].conn;
                let answer = sim.node.handle(conn, request);
                sim.members[alice].device.handle_response(rid, answer, sim.now);
            }
            veche_device::Action::Persist(pid, write) => {
                let m = &mut sim.members[alice];
                for (k, v) in write.puts {
                    m.kv.insert(k, v);
                }
                m.device.handle_persisted(pid, Ok(()));
            }
            veche_device::Action::Notify(veche_device::DeviceEvent::Done { id: done, result }) if done == id => {
                assert!(result.is_ok(), "{result:?}");
                break;
            }
            _ => {}
        }
    }
    sim.settle();
    assert!(
        sim.members[alice].texts(group).contains(&"stored in between".to_string()),
        "{:?}",
        sim.members[alice].history(group)
    );
}
