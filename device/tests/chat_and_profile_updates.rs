//! What the node says about chats and accounts is kept: a renamed chat's new name is stored on
//! the members' devices (the browser kept it only on screen), a display name changed elsewhere
//! is stored at the next sign-in, and a chat's role change by someone else is a line in history.

mod support;

use support::sim::Sim;
use veche_device::{Command, HistoryBody, Outcome, SystemEvent};
use veche_protocol::ids::Role;

#[test]
fn a_renamed_chat_is_stored_renamed() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    let renamed =
        sim.command(alice, Command::UpdateChat { group, name: "Library club".into(), description: "Thursdays".into() });
    assert_eq!(renamed, Ok(Outcome::Done));
    sim.restart(bob);
    assert_eq!(sim.members[bob].device.model().chats[&group].name, "Library club");
}

#[test]
fn a_new_display_name_is_stored_at_sign_in() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    sim.disconnect(alice);
    let account = sim.members[alice].account();
    sim.node.accounts.get_mut(&account).unwrap().display_name = "Alice B.".into();
    sim.connect(alice);
    sim.restart(alice);
    assert_eq!(sim.members[alice].device.model().device.as_ref().unwrap().display_name, "Alice B.");
}

#[test]
fn a_role_change_by_another_member_is_recorded() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let carol = sim.member("Carol");
    let group = sim.chat_of(&[alice, bob, carol]);
    let bob_account = sim.members[bob].account();
    assert!(matches!(
        sim.command(alice, Command::SetRole { group, member: bob_account, role: Role::Admin }),
        Ok(Outcome::Stored(_))
    ));
    let alice_account = sim.members[alice].account();
    let last = sim.members[carol].history(group).pop().unwrap();
    assert_eq!(last.body, HistoryBody::System(SystemEvent::RolesChanged { by: Some(alice_account) }));
    // Alice's own device names the member.
    assert_eq!(
        sim.members[alice].history(group).pop().unwrap().body,
        HistoryBody::System(SystemEvent::RoleChanged(bob_account))
    );
}
