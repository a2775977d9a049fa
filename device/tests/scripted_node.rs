//! The scripted node answers as the real node does, for two (then three) real MLS clients:
//! registration, key packages, a chat with an added member and its Welcome, messages through
//! Send/Fetch, dedup of resends, StaleEpoch for commits and messages of an old epoch, test
//! refusals, retention gaps, and a join by invite link.

mod support;

use ed25519_dalek::SigningKey;
use support::node::ScriptedNode;
use veche_mls::{Client, Processed};
use veche_protocol::auth;
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId, Role};
use veche_protocol::wire::{Delivered, EntryKind, ErrorCode, Event, InviteToken, Request, Response};

struct Dev {
    client: Client,
    key: SigningKey,
    conn: u64,
}

impl Dev {
    fn new(conn: u64) -> Self {
        let secret = Client::generate_secret();
        Dev { client: Client::new(secret), key: SigningKey::from_bytes(&secret), conn }
    }

    fn account(&self) -> AccountId {
        self.client.identity().account
    }

    fn device(&self) -> DeviceId {
        self.client.identity().device
    }

    fn register_request(&self, node_id: &str, challenge: &[u8; 32], name: &str) -> Request {
        let payload = auth::register_payload(node_id, challenge, &self.device(), &self.account(), name, None);
        Request::Register {
            device: self.device(),
            account: self.account(),
            display_name: name.into(),
            invite: None,
            signature: auth::sign(&self.key, &payload),
            binding: auth::ChannelBinding::Unbound,
        }
    }

    fn register(&mut self, node: &mut ScriptedNode, name: &str) {
        let hello = node.connect(self.conn);
        let request = self.register_request(&hello.node_id, &hello.challenge, name);
        match node.handle(self.conn, request) {
            Ok(Response::SignedIn(account)) => assert_eq!(account.account, self.account()),
            other => panic!("register: {other:?}"),
        }
        let packages = self.client.key_packages(2).unwrap();
        let last_resort = Some(self.client.last_resort_key_package().unwrap());
        let publish = Request::PublishKeyPackages { packages, last_resort };
        assert_eq!(node.handle(self.conn, publish), Ok(Response::Ok));
    }

    fn call(&self, node: &mut ScriptedNode, request: Request) -> Response {
        node.handle(self.conn, request).unwrap_or_else(|e| panic!("request refused: {e}"))
    }

    fn stored(&self, node: &mut ScriptedNode, request: Request) -> u64 {
        match self.call(node, request) {
            Response::Stored { seq } => seq,
            other => panic!("expected Stored, got {other:?}"),
        }
    }

    fn fetch(&self, node: &mut ScriptedNode, group: GroupId, after: u64) -> (Vec<Delivered>, u64) {
        match self.call(node, Request::Fetch { group, after, limit: 500 }) {
            Response::Messages { messages, head } => (messages, head),
            other => panic!("expected Messages, got {other:?}"),
        }
    }

    fn text_of(&mut self, entry: &Delivered) -> String {
        match self.client.process(&entry.payload).unwrap() {
            Processed::Application { plaintext, .. } => String::from_utf8(plaintext).unwrap(),
            other => panic!("expected an application message, got {other:?}"),
        }
    }
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(d) => Some(d.seq),
            _ => None,
        })
        .collect()
}

#[test]
fn two_members_talk_through_the_scripted_node() {
    let mut node = ScriptedNode::new("node-under-test");
    node.set_now(1_000_000);
    let mut alice = Dev::new(1);
    let mut bob = Dev::new(2);
    alice.register(&mut node, "Alice");
    bob.register(&mut node, "Bob");

    // Registering again is a conflict; a wrong signature is refused; signing in works on a
    // challenge from `hello`.
    let hello = node.connect(9);
    let again = alice.register_request(&hello.node_id, &hello.challenge, "Alice");
    assert_eq!(node.handle(9, again).unwrap_err().code, ErrorCode::Conflict);
    let hello = node.hello();
    let bad = Request::SignIn { device: bob.device(), signature: vec![0; 64], binding: auth::ChannelBinding::Unbound };
    assert_eq!(node.handle(3, bad).unwrap_err().code, ErrorCode::BadSignature);
    let payload = auth::sign_in_payload(&hello.node_id, &hello.challenge, &bob.device(), None);
    let sign_in = Request::SignIn {
        device: bob.device(),
        signature: auth::sign(&bob.key, &payload),
        binding: auth::ChannelBinding::Unbound,
    };
    assert!(matches!(node.handle(3, sign_in.clone()), Ok(Response::SignedIn(_))));
    assert_eq!(node.handle(3, sign_in).unwrap_err().code, ErrorCode::ChallengeUsed);
    assert_eq!(node.handle(4, Request::Me).unwrap_err().code, ErrorCode::Unauthenticated);

    // Alice creates a chat and adds Bob with a claimed package.
    let group = GroupId(Client::generate_secret()[..16].try_into().unwrap());
    let info = alice.client.create_group(group, ChatKind::Group).unwrap();
    let create = Request::CreateChat {
        group,
        kind: ChatKind::Group,
        name: "Garden".into(),
        description: String::new(),
        peer: None,
        group_info: info,
    };
    let Response::Chat(chat) = alice.call(&mut node, create) else { panic!() };
    assert_eq!((chat.epoch, chat.head, chat.members.len()), (0, 0, 1));
    assert_eq!(chat.members[0].role, Role::Owner);
    let Response::KeyPackages(packages) = alice.call(&mut node, Request::ClaimKeyPackages { account: bob.account() })
    else {
        panic!()
    };
    assert_eq!(packages.len(), 1);
    assert_eq!(bob.call(&mut node, Request::KeyPackageCount), Response::KeyPackageCount(1));
    let add = alice.client.add_members(group, &packages).unwrap();
    let commit = Request::Commit {
        group,
        commit: add.commit.clone(),
        welcome: add.welcome.clone(),
        group_info: add.group_info.clone(),
    };
    assert_eq!(alice.stored(&mut node, commit.clone()), 1);
    alice.client.merge_pending_commit(group).unwrap();
    // A resent commit answers its original seq.
    assert_eq!(alice.stored(&mut node, commit), 1);
    assert_eq!(node.log(group).len(), 1);
    assert_eq!(node.log(group)[0].kind, EntryKind::Handshake);
    assert_eq!(seqs(&node.take_events(alice.conn)), vec![1]);

    // Bob gets the commit and the Welcome, on both of his connections.
    let events = node.take_events(bob.conn);
    assert_eq!(seqs(&events), vec![1]);
    let welcome = events
        .iter()
        .find_map(|e| match e {
            Event::Welcome(w) => Some(w.clone()),
            _ => None,
        })
        .expect("a Welcome event");
    assert_eq!(seqs(&node.take_events(3)), vec![1]);
    assert_eq!((welcome.group, welcome.commit_seq), (group, 1));
    assert_eq!(bob.call(&mut node, Request::Welcomes), Response::Welcomes(vec![welcome.clone()]));
    assert_eq!(bob.client.join_from_welcome(&welcome.welcome).unwrap(), group);
    assert_eq!(bob.call(&mut node, Request::AckWelcome { id: welcome.id }), Response::Ok);
    assert_eq!(bob.call(&mut node, Request::Welcomes), Response::Welcomes(vec![]));
    let Response::Chat(chat) = bob.call(&mut node, Request::Chat { group }) else { panic!() };
    assert_eq!((chat.epoch, chat.head, chat.members.len()), (1, 1, 2));

    // They exchange messages; a resend of the same ciphertext answers the same seq.
    let hello = alice.client.encrypt(group, b"hello bob").unwrap();
    assert_eq!(alice.stored(&mut node, Request::Send { group, message: hello.clone() }), 2);
    assert_eq!(alice.stored(&mut node, Request::Send { group, message: hello }), 2);
    assert_eq!(node.log(group).len(), 2);
    let (messages, head) = bob.fetch(&mut node, group, 1);
    assert_eq!((messages.len(), head), (1, 2));
    assert_eq!((messages[0].sender, messages[0].stored_at_ms), (alice.account(), 1_000_000));
    assert_eq!(bob.text_of(&messages[0]), "hello bob");
    assert_eq!(bob.call(&mut node, Request::Ack { group, seq: 2 }), Response::Ok);
    let reply = bob.client.encrypt(group, b"hi alice").unwrap();
    assert_eq!(bob.stored(&mut node, Request::Send { group, message: reply }), 3);
    let (messages, _) = alice.fetch(&mut node, group, 2);
    assert_eq!(alice.text_of(&messages[0]), "hi alice");
    assert_eq!(seqs(&node.take_events(alice.conn)), vec![2, 3]);
    assert_eq!(seqs(&node.take_events(bob.conn)), vec![2, 3]);

    // Both commit at epoch 1: Alice's wins, Bob's is stale, and so is a message of epoch 1.
    let bob_late = bob.client.encrypt(group, b"late").unwrap();
    let alice_update = alice.client.self_update(group).unwrap();
    let bob_update = bob.client.self_update(group).unwrap();
    let alice_commit =
        Request::Commit { group, commit: alice_update.commit, welcome: None, group_info: alice_update.group_info };
    assert_eq!(alice.stored(&mut node, alice_commit), 4);
    alice.client.merge_pending_commit(group).unwrap();
    let bob_commit =
        Request::Commit { group, commit: bob_update.commit, welcome: None, group_info: bob_update.group_info };
    assert_eq!(node.handle(bob.conn, bob_commit).unwrap_err().code, ErrorCode::StaleEpoch { current: 2 });
    let refused = node.handle(bob.conn, Request::Send { group, message: bob_late }).unwrap_err();
    assert_eq!(refused.code, ErrorCode::StaleEpoch { current: 2 });
    bob.client.discard_pending_commit(group).unwrap();
    let (messages, head) = bob.fetch(&mut node, group, 3);
    assert_eq!((messages.len(), head), (1, 4));
    assert!(matches!(bob.client.process(&messages[0].payload).unwrap(), Processed::Commit { new_epoch: 2, .. }));

    // A scripted refusal, then the same message goes through.
    let next = bob.client.encrypt(group, b"after the update").unwrap();
    node.refuse_next(group, 1, ErrorCode::Internal);
    let refused = node.handle(bob.conn, Request::Send { group, message: next.clone() });
    assert_eq!(refused.unwrap_err().code, ErrorCode::Internal);
    assert_eq!(node.log(group).len(), 4);
    assert_eq!(bob.stored(&mut node, Request::Send { group, message: next }), 5);

    // Retention: expired entries leave a gap in Fetch; head stays.
    node.expire(group, 4);
    let (messages, head) = alice.fetch(&mut node, group, 0);
    assert_eq!((messages.iter().map(|m| m.seq).collect::<Vec<_>>(), head), (vec![5], 5));
    assert_eq!(alice.text_of(&messages[0]), "after the update");

    // Carol joins by invite link with an external commit; a resent join answers its seq.
    let mut carol = Dev::new(5);
    carol.register(&mut node, "Carol");
    let create = Request::CreateInvite { group: Some(group), max_uses: Some(2), expires_in_secs: Some(3600) };
    let Response::InviteCreated { invite, secret } = alice.call(&mut node, create) else { panic!() };
    let token = InviteToken { invite: invite.invite, secret };
    let Response::InvitePreview(preview) = node.handle(77, Request::InvitePreview { token: token.clone() }).unwrap()
    else {
        panic!()
    };
    assert_eq!((preview.name.as_str(), preview.member_count), ("Garden", 2));
    let Response::GroupInfo(info) = carol.call(&mut node, Request::JoinGroupInfo { token: token.clone() }) else {
        panic!()
    };
    let (joined, bundle) = carol.client.join_external(&info).unwrap();
    assert_eq!(joined, group);
    let join = Request::Join { token: token.clone(), commit: bundle.commit, group_info: bundle.group_info };
    assert_eq!(carol.stored(&mut node, join.clone()), 6);
    assert_eq!(carol.stored(&mut node, join), 6);
    let (messages, _) = bob.fetch(&mut node, group, 5);
    assert!(matches!(bob.client.process(&messages[0].payload).unwrap(), Processed::Commit { new_epoch: 3, .. }));
    let welcome_text = carol.client.encrypt(group, b"thanks for the link").unwrap();
    assert_eq!(carol.stored(&mut node, Request::Send { group, message: welcome_text }), 7);
    let (messages, _) = bob.fetch(&mut node, group, 6);
    assert_eq!(bob.text_of(&messages[0]), "thanks for the link");

    // Renaming tells every member's connection.
    node.take_events(carol.conn);
    let rename = Request::UpdateChat { group, name: "Orchard".into(), description: "fruit".into() };
    assert_eq!(alice.call(&mut node, rename), Response::Ok);
    assert_eq!(node.take_events(carol.conn), vec![Event::ChatUpdated { group }]);
    let rename = Request::UpdateChat { group, name: "Nope".into(), description: String::new() };
    assert_eq!(node.handle(carol.conn, rename).unwrap_err().code, ErrorCode::Forbidden);

    // A disconnected connection gets nothing.
    node.disconnect(bob.conn);
    let (messages, _) = alice.fetch(&mut node, group, 5);
    assert!(matches!(alice.client.process(&messages[0].payload).unwrap(), Processed::Commit { new_epoch: 3, .. }));
    assert_eq!(alice.text_of(&messages[1]), "thanks for the link");
    let more = alice.client.encrypt(group, b"anyone?").unwrap();
    assert_eq!(alice.stored(&mut node, Request::Send { group, message: more }), 8);
    assert!(node.take_events(bob.conn).is_empty());
    assert_eq!(seqs(&node.take_events(3)).last(), Some(&8));
}
