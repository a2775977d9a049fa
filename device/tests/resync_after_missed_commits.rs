//! A device stuck behind commits it cannot process (the node dropped them before it fetched
//! them) rejoins the chat by an external commit that replaces its own leaf (a resync): it reads
//! and sends again, shows one line for what it could not decrypt, keeps its role, and a resync
//! the node refuses is retried with backoff, not on every sync.

mod support;

use support::sim::Sim;
use veche_device::{Command, DeviceError, HistoryBody, SystemEvent};
use veche_protocol::ids::Role;
use veche_protocol::wire::{ErrorCode, Request};

/// Bob misses the commit that adds Carol and messages after it: the node no longer keeps them.
fn bob_falls_behind(sim: &mut Sim) -> (usize, usize, usize, veche_protocol::ids::GroupId) {
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let carol = sim.member("Carol");
    let group = sim.chat_of(&[alice, bob]);
    sim.sent(alice, group, "before");
    sim.disconnect(bob);
    let carol_account = sim.members[carol].account();
    let added = sim.add(alice, group, carol_account);
    sim.sent(alice, group, "while Bob was away 1");
    sim.sent(carol, group, "while Bob was away 2");
    sim.node.expire(group, added);
    (alice, bob, carol, group)
}

fn resynced_lines(sim: &Sim, member: usize, group: veche_protocol::ids::GroupId) -> Vec<u64> {
    sim.members[member]
        .history(group)
        .iter()
        .filter_map(|e| match e.body {
            HistoryBody::System(SystemEvent::Resynced { skipped }) => Some(skipped),
            _ => None,
        })
        .collect()
}

#[test]
fn a_device_behind_a_pruned_commit_rejoins_and_reads_again() {
    let mut sim = Sim::new();
    let (alice, bob, carol, group) = bob_falls_behind(&mut sim);
    sim.connect(bob);
    assert!(sim.members[bob].device.model().chats[&group].active, "Bob is still in the chat");
    sim.sent(alice, group, "after");
    sim.sent(carol, group, "after, from Carol");
    assert_eq!(sim.members[bob].texts(group), ["before", "after", "after, from Carol"]);
    // What he could not decrypt is said plainly, once.
    let lines = resynced_lines(&sim, bob, group);
    assert_eq!(lines.len(), 1, "{:?}", sim.members[bob].history(group));
    assert!(lines[0] >= 2, "the two messages sent while Bob was away are counted: {lines:?}");
    // The others read him, and the chat still has its three members.
    sim.sent(bob, group, "back");
    assert_eq!(sim.members[alice].texts(group).last().map(String::as_str), Some("back"));
    assert_eq!(sim.members[carol].texts(group).last().map(String::as_str), Some("back"));
    assert_eq!(sim.node.chat_info(group).members.len(), 3);
    // Alice's and Carol's devices saw Bob's resync as Bob replacing his own leaf, not a join.
    let bob_account = sim.members[bob].account();
    for member in [alice, carol] {
        let history = sim.members[member].history(group);
        assert!(
            history.iter().any(|e| e.body == HistoryBody::System(SystemEvent::DeviceRejoined(bob_account))),
            "{history:?}"
        );
    }
}

#[test]
fn an_admin_who_resyncs_keeps_the_role() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let dave = sim.member("Dave");
    let group = sim.chat_of(&[alice, bob]);
    let bob_account = sim.members[bob].account();
    let made_admin = sim.command(alice, Command::SetRole { group, member: bob_account, role: Role::Admin });
    assert!(made_admin.is_ok(), "{made_admin:?}");
    sim.disconnect(bob);
    sim.sent(alice, group, "m1");
    let dave_account = sim.members[dave].account();
    let added = sim.add(alice, group, dave_account);
    sim.sent(dave, group, "m2");
    sim.node.expire(group, added);
    sim.connect(bob);
    let info = sim.node.chat_info(group);
    let bob_role = info.members.iter().find(|m| m.account == bob_account).map(|m| m.role);
    assert_eq!(bob_role, Some(Role::Admin), "{info:?}");
    assert_eq!(resynced_lines(&sim, bob, group).len(), 1);
    // Still an admin on his own device too: he can add a member.
    let erin = sim.member("Erin");
    let erin_account = sim.members[erin].account();
    sim.add(bob, group, erin_account);
    sim.sent(erin, group, "hi all");
    assert_eq!(sim.members[bob].texts(group).last().map(String::as_str), Some("hi all"));
}

#[test]
fn a_refused_resync_waits_before_it_is_tried_again() {
    let mut sim = Sim::new();
    let (alice, bob, _carol, group) = bob_falls_behind(&mut sim);
    // The node refuses Bob's first resync (e.g. a quota or a passing failure).
    sim.node.refuse_next(group, 1, ErrorCode::Internal);
    sim.connect(bob);
    let commits = |sim: &Sim| sim.members[bob].sent().filter(|r| matches!(r, Request::Commit { .. })).count();
    assert_eq!(commits(&sim), 1, "one attempt");
    // More messages arrive at once: no new attempt on each.
    for i in 0..3 {
        sim.sent(alice, group, &format!("during backoff {i}"));
    }
    assert_eq!(commits(&sim), 1, "no attempt during the backoff");
    let sent = sim.send(bob, group, "queued");
    assert!(matches!(sent, Err(DeviceError::Resyncing)), "{sent:?}");
    // After the backoff the next sync resyncs, and the queued message goes out.
    sim.advance(veche_device::RESYNC_BACKOFF_FIRST_MS);
    sim.command(bob, Command::Sync).ok();
    assert_eq!(commits(&sim), 2);
    assert_eq!(sim.members[alice].texts(group).last().map(String::as_str), Some("queued"));
    sim.sent(alice, group, "after");
    assert_eq!(sim.members[bob].texts(group).last().map(String::as_str), Some("after"));
}

/// A device restored from a recovery file made after which it committed (a role change, whose
/// secrets only the lost state held) cannot process its own commit: it rejoins the chat instead
/// of dropping it, refreshes its keys, and both sides read each other.
#[test]
fn a_restored_device_behind_its_own_commit_rejoins() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    let mut backup: Vec<(String, Vec<u8>)> =
        sim.members[alice].kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    backup.push(("restored".into(), vec![1]));
    let bob_account = sim.members[bob].account();
    let promoted = sim.command(alice, Command::SetRole { group, member: bob_account, role: Role::Admin });
    assert!(promoted.is_ok(), "{promoted:?}");
    sim.sent(bob, group, "after the backup");
    sim.disconnect(alice);
    let restored = sim.device_from("Alice again", backup);
    sim.connect(restored);
    assert!(sim.members[restored].device.model().chats[&group].active, "the chat is still followed");
    assert_eq!(resynced_lines(&sim, restored, group), [2], "the role change and Bob's message");
    sim.sent(bob, group, "hello again");
    assert_eq!(sim.members[restored].texts(group), ["hello again"]);
    sim.sent(restored, group, "back");
    assert_eq!(sim.members[bob].texts(group).last().map(String::as_str), Some("back"));
    let roles = sim.node.chat_info(group).members;
    assert!(roles.iter().any(|m| m.account == bob_account && m.role == Role::Admin), "{roles:?}");
}

/// The same in a direct chat: Bob misses Alice's key refresh (a commit) and it is dropped before
/// he fetches it; his device rejoins the direct chat by replacing its own leaf, and the two go on.
#[test]
fn a_device_behind_in_a_direct_chat_rejoins() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let bob_account = sim.members[bob].account();
    let group = match sim.command(alice, Command::DirectChat { member: bob_account }) {
        Ok(veche_device::Outcome::Group(g)) => g,
        other => panic!("direct chat: {other:?}"),
    };
    sim.sent(alice, group, "hi");
    assert_eq!(sim.members[bob].texts(group), ["hi"]);
    let mut backup: Vec<(String, Vec<u8>)> =
        sim.members[alice].kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    backup.push(("restored".into(), vec![1]));
    sim.disconnect(bob);
    sim.disconnect(alice);
    let restored = sim.device_from("Alice again", backup);
    sim.connect(restored);
    let refreshed = sim.node.log(group).last().map(|e| e.seq).expect("the key refresh is stored");
    sim.sent(restored, group, "while Bob was away");
    sim.node.expire(group, refreshed);
    sim.connect(bob);
    assert!(sim.members[bob].device.model().chats[&group].active);
    assert_eq!(resynced_lines(&sim, bob, group), [1]);
    sim.sent(restored, group, "after");
    assert_eq!(sim.members[bob].texts(group), ["hi", "after"]);
    sim.sent(bob, group, "back");
    assert_eq!(sim.members[restored].texts(group).last().map(String::as_str), Some("back"));
    assert_eq!(sim.node.chat_info(group).members.len(), 2);
}

/// A restored device whose first resync is refused keeps the chat: it rejoins after the pause.
#[test]
fn a_restored_device_keeps_a_chat_whose_resync_must_wait() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let group = sim.chat_of(&[alice, bob]);
    let mut backup: Vec<(String, Vec<u8>)> =
        sim.members[alice].kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    backup.push(("restored".into(), vec![1]));
    let bob_account = sim.members[bob].account();
    let promoted = sim.command(alice, Command::SetRole { group, member: bob_account, role: Role::Admin });
    assert!(promoted.is_ok(), "{promoted:?}");
    sim.disconnect(alice);
    let restored = sim.device_from("Alice again", backup);
    sim.node.refuse_next(group, 1, ErrorCode::Internal);
    sim.connect(restored);
    assert!(sim.members[restored].device.model().chats[&group].active, "kept while the resync waits");
    assert!(!sim.members[restored].device.model().restored);
    sim.advance(veche_device::RESYNC_BACKOFF_FIRST_MS);
    sim.command(restored, Command::Sync).ok();
    assert_eq!(resynced_lines(&sim, restored, group).len(), 1);
    sim.sent(restored, group, "back");
    assert_eq!(sim.members[bob].texts(group).last().map(String::as_str), Some("back"));
}

/// Stuck behind a commit, but the node no longer lists the account (a later commit removed it):
/// no resync; the chat is kept read-only with a line saying this device was removed.
#[test]
fn a_device_behind_its_own_removal_does_not_rejoin() {
    let mut sim = Sim::new();
    let alice = sim.member("Alice");
    let bob = sim.member("Bob");
    let carol = sim.member("Carol");
    let group = sim.chat_of(&[alice, bob, carol]);
    sim.disconnect(bob);
    let carol_account = sim.members[carol].account();
    let promoted = sim.command(alice, Command::SetRole { group, member: carol_account, role: Role::Admin });
    let Ok(veche_device::Outcome::Stored(promoted)) = promoted else { panic!("{promoted:?}") };
    let bob_account = sim.members[bob].account();
    let removed = sim.command(alice, Command::Remove { group, member: bob_account });
    assert!(removed.is_ok(), "{removed:?}");
    sim.node.expire(group, promoted);
    sim.connect(bob);
    let commits = sim.members[bob].sent().filter(|r| matches!(r, Request::Commit { .. })).count();
    assert_eq!(commits, 0, "no resync for a former member");
    assert!(!sim.members[bob].device.model().chats[&group].active);
    assert!(
        sim.members[bob]
            .history(group)
            .iter()
            .any(|e| e.body == HistoryBody::System(SystemEvent::Removed(vec![bob_account]))),
        "{:?}",
        sim.members[bob].history(group)
    );
}
