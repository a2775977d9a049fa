//! Scenario: a rogue libp2p peer talks to a real `veche` node over `/veche/fed/1`.
//!
//! Not linked, it is refused; malformed and oversized frames are dropped; a flood is rate
//! limited; the node keeps serving its members. Once an admin links it, 150 streams that announce
//! 8 MiB and stall after 2 MiB grow the node's memory by tens of MiB, not 300; it still cannot act for
//! the node's own accounts or unknown ones, nor pull chats it has no members in, nor make the node
//! keep a chat none of whose members lives there. As the home of a
//! chat, it serves pages that are not consecutive or start at seq 0 (refused: nothing applied)
//! and pages that repeat sequence numbers (each entry applied exactly once).
//!
//! A stranger may send only small messages (64 KiB): its large announces are refused at once,
//! and a linked node's 4 MiB page does not wait for them.

use std::time::{Duration, Instant};

use anyhow::Context;
use libp2p::{Multiaddr, PeerId};
use veche_protocol::federation::{ChatReplica, FedReply, FedRequest, ReplicaState, ReplicatedEntry};
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId, Retention, Role};
use veche_protocol::wire::{EntryKind, ErrorCode, Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::rogue::{Answer, Out, Rogue};
use veche_tests::{Client, Node, TempDir};

/// A rogue whose requests wait 10 s for an answer and which answers the node from its script.
async fn scripted(target: Multiaddr, target_id: PeerId) -> anyhow::Result<Rogue> {
    Rogue::start(target, target_id, Duration::from_secs(10), Box::new(|_, _| None)).await
}

/// Streams the rogue opens and stalls, 2 MiB into an announced 8 MiB message.
const STALLED_STREAMS: usize = 150;
/// What they may grow the node's memory by: the read budget (64 MiB of announced lengths; 8 streams
/// with 2 MiB each read) plus the transport's windows of the streams waiting for it.
const STALL_RSS_BOUND: u64 = 128 * 1024 * 1024;

fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse::<u64>()? * 1024)
}

fn refused_with(answer: &Answer) -> Option<ErrorCode> {
    match answer {
        Ok(FedReply::Refused(e)) => Some(e.code),
        Ok(FedReply::Response(Err(e))) => Some(e.code),
        _ => None,
    }
}

fn state(head: u64, member: AccountId) -> ReplicaState {
    ReplicaState {
        kind: ChatKind::Group,
        name: "Rogue's chat".into(),
        description: String::new(),
        created_by: member,
        created_ms: 1,
        retention: Retention::Forever,
        epoch: 0,
        head,
        roster: vec![(member, Role::Member)],
        leaves: Vec::new(),
        removed_at: Vec::new(),
        peer: None,
    }
}

fn entry(seq: u64, sender: AccountId) -> ReplicatedEntry {
    ReplicatedEntry {
        seq,
        kind: EntryKind::Application,
        epoch: 0,
        sender,
        stored_ms: seq,
        payload: format!("entry {seq}").into_bytes(),
        commit: None,
    }
}

fn page(head: u64, member: AccountId, seqs: &[u64]) -> FedReply {
    let entries = seqs.iter().map(|s| entry(*s, member)).collect();
    FedReply::Entries(Box::new(ChatReplica { state: state(head, member), members: Vec::new(), entries, upto: head }))
}

/// The sequence numbers and payloads a member of the node reads in `group`, if it is listed.
async fn read_chat(device: &mut RawDevice, group: GroupId) -> anyhow::Result<Option<Vec<(u64, Vec<u8>)>>> {
    let Ok(Response::Chats(chats)) = device.conn.call(Request::Chats).await? else { anyhow::bail!("chats") };
    if !chats.iter().any(|c| c.group == group) {
        return Ok(None);
    }
    match device.conn.call(Request::Fetch { group, after: 0, limit: 100 }).await? {
        Ok(Response::Messages { messages, .. }) => Ok(Some(messages.into_iter().map(|m| (m.seq, m.payload)).collect())),
        other => anyhow::bail!("fetch: {other:?}"),
    }
}

async fn wait_for_entries(device: &mut RawDevice, group: GroupId, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let held = read_chat(device, group).await?;
        if held.as_ref().is_some_and(|m| m.len() >= count) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "waiting for {count} entries, have {held:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_until<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await? {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_peer_cannot_harm_a_node() -> anyhow::Result<()> {
    let tmp = TempDir::new("bad-peers");
    // A low federation rate (200 requests/s per peer, 400 in a burst) so the flood below exceeds
    // it however fast this machine serves it.
    let node = Node::start(tmp.path(), &["--mdns", "false", "--federation-rate", "200"])?;
    let admin = Client::new(tmp.path(), "admin", &node.url);
    admin.run(&["register", "--name", "Admin", "--invite", node.admin_link.as_deref().context("admin link")?])?;
    let quic = veche_tests::site::loopback_quic(&admin)?;
    let node_id: PeerId = node.node_id.parse()?;
    let target: Multiaddr = quic.trim_end_matches(&format!("/p2p/{node_id}")).parse()?;
    let rogue = scripted(target, node_id).await?;
    let admin_account: AccountId = admin.account()?.parse()?;
    let group = GroupId([0x5a; 16]);

    // Not linked: refused, whatever it claims.
    let forward = |account: AccountId| FedRequest::Forward {
        account,
        device: DeviceId([1; 32]),
        display_name: "Mallory".into(),
        homes: Vec::new(),
        request: Box::new(Request::Send { group, message: vec![1, 2, 3] }),
    };
    let answer = rogue.ask(forward(AccountId([9; 32]))).await;
    assert_eq!(refused_with(&answer), Some(ErrorCode::Forbidden), "{answer:?}");
    let answer = rogue.ask(FedRequest::Pull { group, after: None }).await;
    assert_eq!(refused_with(&answer), Some(ErrorCode::Forbidden), "{answer:?}");

    // Malformed and oversized frames: the stream is dropped, no answer.
    let garbage = rogue.send(Out::Raw([0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff].to_vec())).await;
    assert!(garbage.is_err(), "garbage got an answer: {garbage:?}");
    let mut huge = (64u32 * 1024 * 1024).to_be_bytes().to_vec();
    huge.extend_from_slice(&[0u8; 1024]);
    let oversized = rogue.send(Out::Raw(huge)).await;
    assert!(oversized.is_err(), "an oversized frame got an answer: {oversized:?}");

    // A flood: beyond the burst, refused as rate limited; the node keeps serving its members.
    let started = Instant::now();
    let flood: Vec<_> = (0..3000).map(|i| rogue.ask(FedRequest::Notify { group, head: i })).collect();
    let answers = libp2p::futures::future::join_all(flood).await;
    let limited = answers.iter().filter(|a| refused_with(a) == Some(ErrorCode::RateLimited)).count();
    eprintln!("flood of 3000: {limited} rate limited, in {:?}", started.elapsed());
    assert!(limited > 0, "no request of the flood was rate limited");
    node.http_get("/healthz")?;
    admin.run(&["whoami"])?;

    // Linked by the admin (the rogue says yes): still only what its own accounts may do.
    let linked = admin.run(&["admin", "link", &format!("{}/p2p/{}", rogue.addr, rogue.peer_id)])?;
    assert_eq!(linked["state"], "linked", "{linked}");
    tokio::time::sleep(Duration::from_secs(2)).await; // let the rate limit refill
    // Streams that announce the largest message (8 MiB), send 2 MiB of it and stall (a stranger's
    // are refused at once, see below; these are a linked node's): the node reads bodies within
    // one budget and a bounded number of streams, so its memory grows by tens of MiB, not by the
    // 300 MiB sent (which it used to read into memory, all of it).
    let before = rss_bytes(node.pid())?;
    let mut stall = (8u32 * 1024 * 1024).to_be_bytes().to_vec();
    stall.extend(std::iter::repeat_n(0u8, 2 * 1024 * 1024));
    let stalled: Vec<_> = (0..STALLED_STREAMS).map(|_| rogue.send(Out::Stall(stall.clone()))).collect();
    let sample = async {
        let mut peak = before;
        for _ in 0..16 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            peak = peak.max(rss_bytes(node.pid())?);
        }
        anyhow::Ok(peak)
    };
    let (answers, peak) = tokio::join!(libp2p::futures::future::join_all(stalled), sample);
    let peak = peak?;
    admin.run(&["whoami"])?;
    eprintln!("node RSS {} MiB before {STALLED_STREAMS} stalled streams, peak {} MiB", before >> 20, peak >> 20);
    assert!(
        peak.saturating_sub(before) < STALL_RSS_BOUND,
        "stalled federation streams grew the node's memory by {} MiB",
        peak.saturating_sub(before) >> 20
    );
    assert!(answers.iter().all(Result::is_err), "a stalled stream got an answer");

    let answer = rogue.ask(forward(admin_account)).await;
    assert_eq!(refused_with(&answer), Some(ErrorCode::Forbidden), "acting for the node's own account: {answer:?}");
    let answer = rogue.ask(forward(AccountId([9; 32]))).await;
    assert_eq!(refused_with(&answer), Some(ErrorCode::NotFound), "an unknown account: {answer:?}");
    let sends = |account: AccountId, count: usize| FedRequest::ForwardSends {
        account,
        device: DeviceId([1; 32]),
        display_name: "Mallory".into(),
        group,
        messages: vec![vec![1, 2, 3]; count],
    };
    let answer = rogue.ask(sends(admin_account, 2)).await;
    assert_eq!(refused_with(&answer), Some(ErrorCode::Forbidden), "batched, for the node's own account: {answer:?}");
    let answer = rogue.ask(sends(AccountId([9; 32]), 2)).await;
    assert_eq!(refused_with(&answer), Some(ErrorCode::NotFound), "batched, an unknown account: {answer:?}");
    let answer = rogue.ask(sends(AccountId([9; 32]), 33)).await;
    assert_eq!(refused_with(&answer), Some(ErrorCode::BadRequest), "more than 32 at once: {answer:?}");
    let answer = rogue.ask(FedRequest::Pull { group, after: None }).await;
    assert_eq!(refused_with(&answer), Some(ErrorCode::NotFound), "pulling a chat that is not there: {answer:?}");
    let answer = rogue.ask(FedRequest::ClaimKeyPackages { account: AccountId([9; 32]) }).await;
    assert_eq!(refused_with(&answer), Some(ErrorCode::NotFound), "{answer:?}");

    // The rogue as a chat's home, with a member of the node in it.
    let invite = admin.run(&["invite", "node", "--uses", "1"])?["link"].as_str().context("invite")?.to_string();
    let link = veche_protocol::link::InviteLink::parse(&invite)?;
    let token = veche_protocol::wire::InviteToken { invite: link.invite, secret: link.secret };
    let mut member = RawDevice::register(&node.url, "Member", Some(token)).await?;
    let me = member.account();

    // A chat none of whose members lives on the node is not kept there: the rogue cannot make the
    // node store chats of strangers.
    let strangers = GroupId([0x5e; 16]);
    let pulls = || rogue.heard.lock().unwrap().iter().filter(|r| matches!(r, FedRequest::Pull { .. })).count();
    let before = pulls();
    rogue.script.lock().unwrap().push_back(page(1, AccountId([0x77; 32]), &[1]));
    rogue.ask(FedRequest::Notify { group: strangers, head: 1 }).await.map_err(anyhow::Error::msg)?;
    wait_until("the node's pull", || async { Ok(pulls() > before) }).await?;
    let rogue_id = rogue.peer_id.to_string();
    wait_until("the refusal in the node's log", || async {
        Ok(node.log().lines().any(|l| l.contains("none of its members lives here") && l.contains(&rogue_id)))
    })
    .await?;

    // A page with a gap is refused: nothing applied, no chat.
    let before = pulls();
    rogue.script.lock().unwrap().push_back(page(4, me, &[1, 2, 4]));
    rogue.ask(FedRequest::Notify { group, head: 4 }).await.map_err(anyhow::Error::msg)?;
    wait_until("the node's pull", || async { Ok(pulls() > before) }).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(read_chat(&mut member, group).await?, None, "a page with a gap was applied");

    // A page whose first entry has seq 0 is refused with a warning naming the rogue (it used to
    // panic the node's writer thread, after which nothing could be stored).
    let before = pulls();
    rogue.script.lock().unwrap().push_back(page(1, me, &[0, 1]));
    rogue.ask(FedRequest::Notify { group, head: 1 }).await.map_err(anyhow::Error::msg)?;
    wait_until("the node's pull", || async { Ok(pulls() > before) }).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(read_chat(&mut member, group).await?, None, "a page from seq 0 was applied");
    assert!(
        node.log()
            .lines()
            .any(|l| l.contains("refused a page pulled") && l.contains("sequence number 0") && l.contains(&rogue_id)),
        "no warning naming the rogue home"
    );

    // A consecutive page is applied; then pages that repeat sequence numbers add each entry once.
    rogue.script.lock().unwrap().push_back(page(2, me, &[1, 2]));
    rogue.ask(FedRequest::Notify { group, head: 2 }).await.map_err(anyhow::Error::msg)?;
    wait_for_entries(&mut member, group, 2).await?;
    rogue.script.lock().unwrap().push_back(page(3, me, &[1, 2, 3]));
    rogue.ask(FedRequest::Notify { group, head: 3 }).await.map_err(anyhow::Error::msg)?;
    wait_for_entries(&mut member, group, 3).await?;
    rogue.script.lock().unwrap().push_back(page(3, me, &[2, 3]));
    rogue.ask(FedRequest::Notify { group, head: 3 }).await.map_err(anyhow::Error::msg)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = read_chat(&mut member, group).await?.context("chat")?;
    let seqs: Vec<u64> = held.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [1, 2, 3], "each entry exactly once, in order");
    assert_eq!(held[2].1, b"entry 3");

    // Still serving everyone, and no panic in the log.
    node.http_get("/healthz")?;
    admin.run(&["whoami"])?;
    assert!(!node.log().contains("panicked"), "the node panicked");
    Ok(())
}

/// Streams a stranger opens that announce the largest message and send its body slowly.
const STRANGER_STREAMS: usize = 16;
/// How soon each of them must be refused: the node decides on the 4-byte length alone.
const REFUSED_WITHIN: Duration = Duration::from_secs(3);
/// How soon a linked node's page of about 4 MiB must reach a member while the stranger's streams
/// are open (on a quiet node it takes well under a second).
const PAGE_WITHIN: Duration = Duration::from_secs(10);

/// A page of entries `seqs` of 125 KiB each (the most an MLS message may be is 128 KiB) up to
/// `head`: 30 of them are about 4 MiB, the largest page a home node sends.
fn big_page(member: AccountId, seqs: std::ops::RangeInclusive<u64>, head: u64) -> FedReply {
    let entries =
        seqs.map(|seq| ReplicatedEntry { payload: vec![seq as u8; 125 * 1024], ..entry(seq, member) }).collect();
    FedReply::Entries(Box::new(ChatReplica { state: state(head, member), members: Vec::new(), entries, upto: head }))
}

/// A stranger (a libp2p peer no admin linked) may send only small federation messages: a
/// `Locate` of the most accounts still gets its typed refusal, a 100 KiB forward is dropped
/// unread, and streams announcing 8 MiB are refused at once, however slowly they would send the
/// rest. Meanwhile a linked node's 4 MiB page reaches the node's member as fast as ever: the
/// stranger takes nothing from what the node reads linked nodes' messages with. (Before, any peer
/// could announce 8 MiB: the stranger's streams held the node's whole read budget until they
/// timed out, 30 s, and the linked node's page waited behind them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_gets_a_tiny_cap_and_linked_nodes_do_not_wait_for_it() -> anyhow::Result<()> {
    let tmp = TempDir::new("stranger-cap");
    let node = Node::start(tmp.path(), &["--mdns", "false"])?;
    let admin = Client::new(tmp.path(), "admin", &node.url);
    admin.run(&["register", "--name", "Admin", "--invite", node.admin_link.as_deref().context("admin link")?])?;
    let quic = veche_tests::site::loopback_quic(&admin)?;
    let node_id: PeerId = node.node_id.parse()?;
    let target: Multiaddr = quic.trim_end_matches(&format!("/p2p/{node_id}")).parse()?;

    // A linked node, home of a chat with a member of this node.
    let home = scripted(target.clone(), node_id).await?;
    let linked = admin.run(&["admin", "link", &format!("{}/p2p/{}", home.addr, home.peer_id)])?;
    assert_eq!(linked["state"], "linked", "{linked}");
    let invite = admin.run(&["invite", "node", "--uses", "1"])?["link"].as_str().context("invite")?.to_string();
    let link = veche_protocol::link::InviteLink::parse(&invite)?;
    let token = veche_protocol::wire::InviteToken { invite: link.invite, secret: link.secret };
    let mut member = RawDevice::register(&node.url, "Member", Some(token)).await?;
    let group = GroupId([0x4b; 16]);

    // A stranger whose requests wait longer than the node's own timeout for an answer.
    let stranger = Rogue::start(target, node_id, Duration::from_secs(45), Box::new(|_, _| None)).await?;
    let locate = FedRequest::Locate {
        accounts: (0..veche_protocol::federation::MAX_LOCATE).map(|i| AccountId([(i % 251) as u8; 32])).collect(),
    };
    let answer = stranger.ask(locate).await;
    assert_eq!(refused_with(&answer), Some(ErrorCode::Forbidden), "a Locate of the most accounts: {answer:?}");
    let forward = FedRequest::Forward {
        account: AccountId([9; 32]),
        device: DeviceId([1; 32]),
        display_name: "Mallory".into(),
        homes: Vec::new(),
        request: Box::new(Request::Send { group, message: vec![7; 100 * 1024] }),
    };
    let answer = stranger.ask(forward).await;
    assert!(answer.is_err(), "a stranger's 100 KiB request was read and answered: {answer:?}");

    let trickles = libp2p::futures::future::join_all((0..STRANGER_STREAMS).map(|_| async {
        let started = Instant::now();
        let answer = stranger.send(Out::Trickle { announce: 8 * 1024 * 1024 }).await;
        (answer, started.elapsed())
    }));
    let page = async {
        tokio::time::sleep(Duration::from_millis(500)).await; // the stranger's streams are open
        home.script.lock().unwrap().push_back(big_page(member.account(), 1..=30, 30));
        let sent = Instant::now();
        home.ask(FedRequest::Notify { group, head: 30 }).await.map_err(anyhow::Error::msg)?;
        loop {
            if read_chat(&mut member, group).await?.is_some_and(|m| m.len() == 30) {
                break anyhow::Ok(Some(sent.elapsed()));
            }
            if sent.elapsed() > PAGE_WITHIN {
                break anyhow::Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (trickles, page) = tokio::join!(trickles, page);
    let slowest = trickles.iter().map(|(_, took)| *took).max().unwrap_or_default();
    eprintln!(
        "stranger's {STRANGER_STREAMS} streams of 8 MiB: the last refused after {slowest:?}; linked page: {page:?}"
    );
    for (answer, _) in &trickles {
        assert!(answer.is_err(), "a stranger's 8 MiB message got an answer: {answer:?}");
    }
    assert!(slowest < REFUSED_WITHIN, "the stranger's streams stayed open for up to {slowest:?}");
    let took = page?.with_context(|| format!("the linked node's 4 MiB page did not arrive within {PAGE_WITHIN:?}"))?;
    eprintln!("the linked node's page of 30 × 125 KiB reached the member in {took:?}");

    node.http_get("/healthz")?;
    assert!(!node.log().contains("panicked"), "the node panicked");
    Ok(())
}

/// A linked node's chats take at most `--replica-quota` bytes here: of a chat's 30 entries of
/// 125 KiB, a node with a 1 MiB quota keeps the first 8 and refuses the rest (`QuotaExceeded`,
/// with a warning naming the linked node); its member reads those 8 and no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_nodes_chats_fit_the_replica_quota() -> anyhow::Result<()> {
    let tmp = TempDir::new("replica-quota");
    let node = Node::start(tmp.path(), &["--mdns", "false", "--replica-quota", "1MiB"])?;
    let admin = Client::new(tmp.path(), "admin", &node.url);
    admin.run(&["register", "--name", "Admin", "--invite", node.admin_link.as_deref().context("admin link")?])?;
    let quic = veche_tests::site::loopback_quic(&admin)?;
    let node_id: PeerId = node.node_id.parse()?;
    let target: Multiaddr = quic.trim_end_matches(&format!("/p2p/{node_id}")).parse()?;
    let home = scripted(target, node_id).await?;
    let linked = admin.run(&["admin", "link", &format!("{}/p2p/{}", home.addr, home.peer_id)])?;
    assert_eq!(linked["state"], "linked", "{linked}");
    let invite = admin.run(&["invite", "node", "--uses", "1"])?["link"].as_str().context("invite")?.to_string();
    let link = veche_protocol::link::InviteLink::parse(&invite)?;
    let token = veche_protocol::wire::InviteToken { invite: link.invite, secret: link.secret };
    let mut member = RawDevice::register(&node.url, "Member", Some(token)).await?;
    let group = GroupId([0x71; 16]);

    // The whole chat, then (as the node asks for the rest) the entries it did not keep.
    home.script
        .lock()
        .unwrap()
        .extend([big_page(member.account(), 1..=30, 30), big_page(member.account(), 9..=30, 30)]);
    home.ask(FedRequest::Notify { group, head: 30 }).await.map_err(anyhow::Error::msg)?;
    wait_for_entries(&mut member, group, 8).await?;
    let home_id = home.peer_id.to_string();
    wait_until("the quota warning in the node's log", || async {
        Ok(node.log().lines().any(|l| l.contains("the most bytes kept for one node") && l.contains(&home_id)))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = read_chat(&mut member, group).await?.context("chat")?;
    assert_eq!(held.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>(), "8 × 125 KiB fit 1 MiB");
    assert!(!node.log().contains("panicked"), "the node panicked");
    Ok(())
}
