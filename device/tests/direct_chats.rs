//! Direct chats: opening one adds the member; opening it again finds it; one whose add did not
//! complete (the node refused the commit for a while) is completed by the next attempt.

mod support;

use support::sim::Sim;
use veche_device::{Command, DeviceError, Outcome};
use veche_protocol::wire::ErrorCode;

#[test]
fn a_half_made_direct_chat_is_completed() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let bob_account = sim.members[bob].account();
    // The node stores the chat but refuses the add for now.
    let first = {
        let id = sim.start(alice, Command::DirectChat { member: bob_account });
        let _ = id;
        // Refuse the first Commit of any new chat: set the knob as soon as the chat exists.
        let mut armed = false;
        for _ in 0..200 {
            if let Some(group) = sim.node.chats.keys().next().copied()
                && !armed
            {
                sim.node.refuse_next(group, 1, ErrorCode::Internal);
                armed = true;
            }
            let conn = sim.members[alice].conn;
            let m = &mut sim.members[alice];
            let Some(action) = m.device.poll_action() else { break };
            match action {
                veche_device::Action::Send(rid, request) => {
                    let answer = sim.node.handle(conn, request);
                    sim.members[alice].device.handle_response(rid, answer, sim.now);
                }
                veche_device::Action::Persist(pid, write) => {
                    for (k, v) in write.puts {
                        m.kv.insert(k, v);
                    }
                    m.device.handle_persisted(pid, Ok(()));
                }
                veche_device::Action::Notify(veche_device::DeviceEvent::Done { result, .. }) => {
                    assert!(
                        matches!(&result, Err(DeviceError::Refused(e)) if e.code == ErrorCode::Internal),
                        "{result:?}"
                    );
                }
                _ => {}
            }
        }
        sim.node.chats.keys().next().copied().expect("the chat exists on the node")
    };
    sim.settle();
    assert!(!sim.node.chats[&first].roster.contains_key(&bob_account), "Bob not in it yet");
    let again = sim.command(alice, Command::DirectChat { member: bob_account });
    assert_eq!(again, Ok(Outcome::Group(first)), "the same chat, completed");
    assert!(sim.node.chats[&first].roster.contains_key(&bob_account));
    sim.sent(alice, first, "hi Bob");
    assert_eq!(sim.members[bob].texts(first), ["hi Bob"]);
    assert_eq!(
        sim.command(alice, Command::DirectChat { member: bob_account }),
        Ok(Outcome::Group(first)),
        "found again"
    );
    let me = sim.members[alice].account();
    assert_eq!(
        sim.command(alice, Command::DirectChat { member: me }),
        Err(DeviceError::DirectChat(veche_device::DirectChatError::ThatIsYou))
    );
}
