//! Scenario (three linked nodes on loopback): a group created on node A is joined by members of
//! nodes B and C through their own nodes, with A's invite link; everyone writes; every member
//! reads the same history in the same order, with names, and sees on which node each member
//! lives. A member of B starts a direct chat with a member of C through B. Forwarded requests
//! get the home node's refusals. Open accounts and groups are listed in linked nodes'
//! directories; closed ones never leave their node.

use std::time::{Duration, Instant};

use anyhow::Context;
use veche_protocol::ids::{GroupId, Retention};
use veche_protocol::wire::{InviteToken, Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::site::Site;
use veche_tests::{Client, TempDir, assert_same_history};

fn link(a: &Site, b: &Site) -> anyhow::Result<()> {
    a.admin.run(&["admin", "link", &b.address()?])?;
    let made = b.admin.run(&["admin", "link", &a.address()?])?;
    anyhow::ensure!(made["state"] == "linked", "link not up: {made}");
    Ok(())
}

/// A member registered on `site` with a node invite from its admin.
fn member(tmp: &TempDir, site: &Site, name: &str) -> anyhow::Result<Client> {
    let invite = site.admin.run(&["invite", "node", "--uses", "1"])?;
    let client = Client::new(tmp.path(), name, &site.node.url);
    client.run(&["register", "--name", name, "--invite", invite["link"].as_str().context("link")?])?;
    Ok(client)
}

fn wait_texts(client: &Client, chat: &str, count: usize) -> anyhow::Result<Vec<(u64, String, String)>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let texts = client.texts(chat)?;
        if texts.len() >= count {
            return Ok(texts);
        }
        anyhow::ensure!(Instant::now() < deadline, "only {} of {count} messages arrived: {texts:?}", texts.len());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_group_spans_three_linked_nodes() -> anyhow::Result<()> {
    let tmp = TempDir::new("federation-chats");
    let (a, b, c) = (Site::start(&tmp, "a", &[])?, Site::start(&tmp, "b", &[])?, Site::start(&tmp, "c", &[])?);
    link(&a, &b)?;
    link(&a, &c)?;
    link(&b, &c)?;

    let alice = member(&tmp, &a, "Alice")?;
    let bob = member(&tmp, &b, "Bob")?;
    let carol = member(&tmp, &c, "Carol")?;

    // Alice's group lives on A; Bob and Carol join with A's link, each through their own node.
    let chat = alice.run(&["group", "create", "Town square"])?["chat"].as_str().context("chat")?.to_string();
    let invite = alice.run(&["invite", "create", &chat])?["link"].as_str().context("link")?.to_string();
    assert!(invite.starts_with(&a.node.url), "{invite}");
    bob.run(&["join", &invite])?;
    carol.run(&["join", &invite])?;

    alice.run(&["send", &chat, "hello from A"])?;
    bob.run(&["send", &chat, "hi from B"])?;
    carol.run(&["send", &chat, "hey from C"])?;
    alice.run(&["send", &chat, "welcome both"])?;

    let history = wait_texts(&alice, &chat, 4)?;
    let texts: Vec<&str> = history.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(texts, ["hello from A", "hi from B", "hey from C", "welcome both"]);
    let senders: Vec<&str> = history.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(senders, ["Alice", "Bob", "Carol", "Alice"]);
    assert_same_history(&history, &wait_texts(&bob, &chat, 4)?, "Bob on B");
    assert_same_history(&history, &wait_texts(&carol, &chat, 4)?, "Carol on C");

    // Everyone sees where each member lives, and that the chat's home is A.
    let members = carol.run(&["members", &chat])?["members"].as_array().cloned().unwrap_or_default();
    let home_of = |name: &str| -> Option<String> {
        members.iter().find(|m| m["name"] == name).and_then(|m| m["home_node"].as_str().map(str::to_string))
    };
    assert_eq!(home_of("Alice").as_deref(), Some(a.node.node_id.as_str()), "{members:?}");
    assert_eq!(home_of("Bob").as_deref(), Some(b.node.node_id.as_str()), "{members:?}");
    assert_eq!(home_of("Carol").as_deref(), Some(c.node.node_id.as_str()), "{members:?}");
    let chats = bob.run(&["chats"])?["chats"].as_array().cloned().unwrap_or_default();
    let listed = chats.iter().find(|x| x["chat"] == chat.as_str()).with_context(|| format!("{chats:?}"))?;
    assert_eq!(listed["home_node"], a.node.node_id.as_str(), "{listed}");

    // The home node's refusals reach members on other nodes: Bob is not an admin of the group.
    let refused = bob.fail(&["invite", "create", &chat])?;
    assert_eq!(refused["code"], "Forbidden", "{refused}");

    // A direct chat between members of B and C, opened on B (so homed on B).
    let carol_id = carol.account()?;
    let dm = bob.run(&["dm", &carol_id])?["chat"].as_str().context("dm")?.to_string();
    bob.run(&["send", &dm, "just between us"])?;
    let seen = wait_texts(&carol, &dm, 1)?;
    assert_eq!(seen[0].1, "Bob");
    assert_eq!(seen[0].2, "just between us");
    carol.run(&["send", &dm, "agreed"])?;
    let both = wait_texts(&bob, &dm, 2)?;
    assert_eq!(both.iter().map(|(_, _, t)| t.as_str()).collect::<Vec<_>>(), ["just between us", "agreed"]);

    // The directory: open accounts and groups of linked nodes are listed; closed ones never leave.
    alice.run(&["visibility", "open"])?;
    alice.run(&["group", "visibility", &chat, "open"])?;
    let hidden = alice.run(&["group", "create", "Committee"])?["chat"].as_str().context("chat")?.to_string();
    let refused = bob.fail(&["group", "visibility", &chat, "closed"])?;
    assert_eq!(refused["code"], "Forbidden", "only the owner: {refused}");
    let directory = bob.run(&["directory"])?;
    let names = |key: &str| -> Vec<String> {
        directory[key].as_array().into_iter().flatten().filter_map(|e| e["name"].as_str().map(str::to_string)).collect()
    };
    assert_eq!(names("accounts"), ["Alice"], "{directory}");
    assert_eq!(names("groups"), ["Town square"], "{directory}");
    assert_eq!(directory["accounts"][0]["home_node"], a.node.node_id.as_str());
    assert_eq!(directory["groups"][0]["members"], 3);
    let text = directory.to_string();
    assert!(!text.contains(&carol_id) && !text.contains("Carol"), "a closed account left its node: {text}");
    assert!(!text.contains(&hidden) && !text.contains("Committee"), "a closed group left its node: {text}");
    // Carol opens her account: listed too, with her node.
    carol.run(&["visibility", "open"])?;
    let directory = bob.run(&["directory"])?;
    let carol_entry = directory["accounts"].as_array().into_iter().flatten().find(|e| e["name"] == "Carol").cloned();
    assert_eq!(carol_entry.map(|e| e["home_node"].clone()), Some(c.node.node_id.as_str().into()), "{directory}");

    // The admin page shows how many entries each linked node still has to take (none now).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let links = a.admin.run(&["admin", "links"])?["links"].as_array().cloned().unwrap_or_default();
        let queued: Vec<u64> = links.iter().map(|l| l["queued"].as_u64().unwrap_or(u64::MAX)).collect();
        if queued.iter().all(|q| *q == 0) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "queues never drained: {links:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// A node invite of `site`, as a token a raw device registers with.
fn node_token(site: &Site) -> anyhow::Result<InviteToken> {
    let link = site.admin.run(&["invite", "node", "--uses", "1"])?["link"].as_str().context("link")?.to_string();
    let link = veche_protocol::link::InviteLink::parse(&link)?;
    Ok(InviteToken { invite: link.invite, secret: link.secret })
}

async fn seqs(device: &mut RawDevice, group: GroupId) -> anyhow::Result<Vec<u64>> {
    Ok(fetch(device, group, 0).await?.iter().map(|m| m.seq).collect())
}

/// Polls `device`'s view of the chat until it is `want`.
async fn until_seqs(device: &mut RawDevice, group: GroupId, want: &[u64], what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = seqs(device, group).await?;
        if got == want {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: have {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// "Until fetched" across nodes: the home node drops an entry only when its own devices have it
/// and every member node holds it (a member node that is down keeps it there); the member node
/// drops it when its devices have it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_fetched_waits_for_member_nodes() -> anyhow::Result<()> {
    let tmp = TempDir::new("federation-retention");
    let fast = ["--retention-interval", "200ms"];
    let a = Site::start(&tmp, "a", &fast)?;
    let mut b = Site::start(&tmp, "b", &fast)?;
    link(&a, &b)?;
    let mut owner = RawDevice::register(&a.node.url, "Owner", Some(node_token(&a)?)).await?;
    let mut member = RawDevice::register(&b.node.url, "Member", Some(node_token(&b)?)).await?;
    let group = GroupId([0x42; 16]);
    owner.create_chat(group, "Ephemeral").await?;
    let token = owner.invite(group).await?;
    let (joined, _) = member.join(&token).await?;
    assert_eq!(joined, 1);
    let retention = Request::SetRetention { group, retention: Retention::UntilFetched };
    owner.conn.call(retention).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    for m in match owner.conn.call(Request::Fetch { group, after: 0, limit: 10 }).await? {
        Ok(Response::Messages { messages, .. }) => messages,
        other => anyhow::bail!("{other:?}"),
    } {
        owner.mls.process(&m.payload)?;
    }
    let send = |owner: &mut RawDevice, text: &str| -> anyhow::Result<Request> {
        Ok(Request::Send { group, message: owner.mls.encrypt(group, text.as_bytes())? })
    };
    let request = send(&mut owner, "one")?;
    assert_eq!(owner.conn.call(request).await?, Ok(Response::Stored { seq: 2 }));
    owner.conn.call(Request::Ack { group, seq: 2 }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;

    // B holds 1-2 (and confirms it): the home drops them; B keeps them for its member.
    until_seqs(&mut owner, group, &[], "the home drops what every node holds").await?;
    assert_eq!(seqs(&mut member, group).await?, [1, 2], "kept on B until its member has them");

    // B is down: what the owner sends now stays on the home.
    b.node.kill9();
    for text in ["two", "three"] {
        let request = send(&mut owner, text)?;
        owner.conn.call(request).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    owner.conn.call(Request::Ack { group, seq: 4 }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(seqs(&mut owner, group).await?, [3, 4], "kept for the member node that is down");

    // B is back: it catches up; then the home drops 3-4; B drops all once its member acknowledged.
    b.node.restart()?;
    member.reconnect(&b.node.url).await?;
    until_seqs(&mut member, group, &[1, 2, 3, 4], "B catches up").await?;
    until_seqs(&mut owner, group, &[], "the home drops 3-4 once B holds them").await?;
    member.conn.call(Request::Ack { group, seq: 4 }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    until_seqs(&mut member, group, &[], "B drops them once its member has them").await?;
    Ok(())
}

/// A device on a member node sends a burst without waiting for answers (a phone flushing its
/// outbox): every message is stored once, in the order sent, and answered in that order; a
/// request in the middle of the burst is answered in its turn; a message sent twice keeps its
/// number. The home node's members read the burst in order, and so does the member node's
/// replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_a_member_node_keeps_its_order() -> anyhow::Result<()> {
    const BURST: usize = 300;
    let tmp = TempDir::new("federation-burst");
    let (a, b) = (Site::start(&tmp, "a", &[])?, Site::start(&tmp, "b", &[])?);
    link(&a, &b)?;
    let mut owner = RawDevice::register(&a.node.url, "Owner", Some(node_token(&a)?)).await?;
    let mut member = RawDevice::register(&b.node.url, "Member", Some(node_token(&b)?)).await?;
    let group = GroupId([0x43; 16]);
    owner.create_chat(group, "Burst").await?;
    let token = owner.invite(group).await?;
    let (joined, _) = member.join(&token).await?;
    let join_commit = fetch(&mut owner, group, 0).await?.remove(0);
    owner.mls.process(&join_commit.payload)?;

    // The burst: all frames written before any answer is read.
    let mut sent = Vec::new(); // (id, what)
    let mut repeated = Vec::new();
    for i in 0..BURST {
        let message = member.mls.encrypt(group, i.to_string().as_bytes())?;
        if i == 100 {
            repeated = message.clone();
        }
        sent.push((member.conn.send(Request::Send { group, message }).await?, "send"));
        if i == 150 {
            sent.push((member.conn.send(Request::Chats).await?, "chats"));
        }
        if i == 200 {
            let again = Request::Send { group, message: repeated.clone() };
            sent.push((member.conn.send(again).await?, "again"));
        }
    }
    let mut seqs = Vec::new();
    let mut repeated_seq = 0;
    for (i, (id, what)) in sent.iter().enumerate() {
        let (got, answer) = member.conn.next_answer().await?;
        assert_eq!(got, *id, "answer {i} out of order");
        match (*what, answer) {
            ("send", Ok(Response::Stored { seq })) => seqs.push(seq),
            ("chats", Ok(Response::Chats(chats))) => assert_eq!(chats.len(), 1),
            ("again", Ok(Response::Stored { seq })) => repeated_seq = seq,
            (what, other) => anyhow::bail!("{what} {i}: {other:?}"),
        }
    }
    let want: Vec<u64> = (joined + 1..=joined + BURST as u64).collect();
    assert_eq!(seqs, want, "each message stored once, in the order sent");
    assert_eq!(repeated_seq, seqs[100], "a message sent again keeps its number");

    // The home node's member reads them in the order sent.
    let mut texts = Vec::new();
    let mut after = joined;
    while texts.len() < BURST {
        let page = fetch(&mut owner, group, after).await?;
        anyhow::ensure!(!page.is_empty(), "the home node has only {} of {BURST}", texts.len());
        for m in page {
            after = m.seq;
            if let veche_mls::Processed::Application { plaintext, .. } = owner.mls.process(&m.payload)? {
                texts.push(String::from_utf8(plaintext)?);
            }
        }
    }
    let want_texts: Vec<String> = (0..BURST).map(|i| i.to_string()).collect();
    assert_eq!(texts, want_texts);
    // The member node's replica holds the same log.
    let replica: Vec<u64> = fetch(&mut member, group, joined).await?.iter().map(|m| m.seq).collect();
    assert_eq!(replica, want);
    Ok(())
}

async fn fetch(
    device: &mut RawDevice,
    group: GroupId,
    after: u64,
) -> anyhow::Result<Vec<veche_protocol::wire::Delivered>> {
    match device.conn.call(Request::Fetch { group, after, limit: 1000 }).await? {
        Ok(Response::Messages { messages, .. }) => Ok(messages),
        other => anyhow::bail!("fetch: {other:?}"),
    }
}
