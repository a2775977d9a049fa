//! Scenario: three linked nodes on loopback. A and B are honest; R is a rogue (this test,
//! speaking the federation protocol) that A's admin linked. R tells A that Bob, who lives on B,
//! lives on R: it acts for Bob in a forwarded request and names itself as his home, and it
//! answers key-package claims for Bob with a package of its own device (whose credential names
//! Bob). Alice, on A, claims Bob's key packages and adds him to a chat: she gets Bob's real
//! package, never R's device, and Bob's own node B receives the chat. For Dave, also of B, R
//! goes further and answers A's lookups ("Dave lives on me", signed with R's own key): only B
//! holds Dave's signed home binding, so A believes B and Alice gets Dave's own package. The same
//! for Erin, who joins Alice's chat through B: B gets the chat while R is still linked. R's own
//! key-package claims are held to a linked node's quota. The second test: A is linked with R but
//! not with B, so nobody A asks knows better than R.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use libp2p::{Multiaddr, PeerId};
use veche_protocol::federation::{FedReply, FedRequest, LocatedAccount, MemberAddress};
use veche_protocol::ids::{AccountId, GroupId, InviteId};
use veche_protocol::wire::{ErrorCode, InviteToken, Request, Response};
use veche_tests::TempDir;
use veche_tests::raw::RawDevice;
use veche_tests::rogue::Rogue;
use veche_tests::site::Site;

/// A linked node that lies: it answers key-package claims for each victim in `forged` with that
/// package, says that the victims in `lies` live on it (signing that with a key of its own: the
/// victim's key is the only one that could make it hold), and sends what the test asks.
async fn liar(
    target: Multiaddr,
    target_id: PeerId,
    forged: HashMap<AccountId, Vec<u8>>,
    lies: Vec<AccountId>,
) -> anyhow::Result<Rogue> {
    let own_key = ed25519_dalek::SigningKey::from_bytes(&veche_mls::Client::generate_secret());
    let respond = move |me: PeerId, request: &FedRequest| match request {
        FedRequest::ClaimKeyPackages { account } if forged.contains_key(account) => {
            let member = MemberAddress { account: *account, home: me.to_string(), display_name: "Victim".into() };
            Some(FedReply::KeyPackages { member, packages: vec![forged[account].clone()] })
        }
        FedRequest::Locate { accounts } => Some(FedReply::Located(
            accounts
                .iter()
                .filter(|a| lies.contains(a))
                .map(|account| LocatedAccount {
                    account: *account,
                    display_name: "Victim".into(),
                    home_signature: Some(veche_protocol::auth::sign(
                        &own_key,
                        &veche_protocol::auth::home_payload(account, &me.to_string()),
                    )),
                })
                .collect(),
        )),
        _ => None,
    };
    Rogue::start(target, target_id, Duration::from_secs(10), Box::new(respond)).await
}

/// A node invite from the site's admin, for a raw device.
fn node_token(site: &Site) -> anyhow::Result<InviteToken> {
    let link = site.admin.run(&["invite", "node", "--uses", "1"])?["link"].as_str().context("link")?.to_string();
    let link = veche_protocol::link::InviteLink::parse(&link)?;
    Ok(InviteToken { invite: link.invite, secret: link.secret })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_node_cannot_claim_another_nodes_account() -> anyhow::Result<()> {
    let tmp = TempDir::new("rogue-claims-account");
    let a = Site::start(&tmp, "a", &[])?;
    let b = Site::start(&tmp, "b", &[])?;
    a.admin.run(&["admin", "link", &b.address()?])?;
    let made = b.admin.run(&["admin", "link", &a.address()?])?;
    anyhow::ensure!(made["state"] == "linked", "A and B not linked: {made}");
    let mut alice = RawDevice::register(&a.node.url, "Alice", Some(node_token(&a)?)).await?;
    let mut bob = RawDevice::register(&b.node.url, "Bob", Some(node_token(&b)?)).await?;
    let dave = RawDevice::register(&b.node.url, "Dave", Some(node_token(&b)?)).await?;
    let mut erin = RawDevice::register(&b.node.url, "Erin", Some(node_token(&b)?)).await?;
    let (bob_id, bob_device) = (bob.account(), bob.device());

    // R's own device, with credentials that name Bob's and Dave's accounts.
    let mut forged = HashMap::new();
    for victim in [bob_id, dave.account()] {
        let mut rogue_mls = veche_mls::Client::new_for_account(veche_mls::Client::generate_secret(), victim);
        let package = rogue_mls.key_packages(1)?.remove(0);
        let id = veche_mls::inspect::inspect_key_package(&package)?;
        assert_eq!(id.account, victim);
        assert_ne!(id.device.0, victim.0);
        forged.insert(victim, package);
    }

    // R is linked with A.
    let quic = a.address()?;
    let a_id: PeerId = a.node.node_id.parse()?;
    let target: Multiaddr = quic.trim_end_matches(&format!("/p2p/{a_id}")).parse()?;
    let rogue = liar(target, a_id, forged, vec![dave.account(), erin.account()]).await?;
    let victim = MemberAddress { account: bob_id, home: rogue.peer_id.to_string(), display_name: "Bob".into() };
    let linked = a.admin.run(&["admin", "link", &format!("{}/p2p/{}", rogue.addr, rogue.peer_id)])?;
    assert_eq!(linked["state"], "linked", "{linked}");

    // R acts for Bob as if he lived on R, and names itself as Bob's home.
    let claim = FedRequest::Forward {
        account: bob_id,
        device: bob_device,
        display_name: "Bob".into(),
        homes: vec![victim.clone()],
        request: Box::new(Request::JoinGroupInfo {
            token: InviteToken { invite: InviteId([7; 8]), secret: [7; veche_protocol::link::SECRET_LEN] },
        }),
    };
    let answer = rogue.ask(claim).await;
    eprintln!("R acting for Bob: {answer:?}");

    // A linked node is a claimer too: R claiming Alice's packages over and over is held to its
    // quota, and an account that does not exist gets the same refusal as a member gets.
    let mut granted = 0;
    let mut limited = 0;
    for _ in 0..30 {
        match rogue.ask(FedRequest::ClaimKeyPackages { account: alice.account() }).await {
            Ok(FedReply::KeyPackages { packages, .. }) if limited == 0 && packages.len() == 1 => granted += 1,
            Ok(FedReply::Refused(e)) if e.code == ErrorCode::RateLimited => limited += 1,
            other => anyhow::bail!("R's claim {}: {other:?}", granted + limited),
        }
    }
    eprintln!("30 claims from R for Alice: {granted} granted, {limited} rate limited");
    assert_eq!((granted, limited), (20, 10), "a linked node's quota is 20 claims per account");
    match rogue.ask(FedRequest::ClaimKeyPackages { account: AccountId([0x42; 32]) }).await {
        Ok(FedReply::Refused(e)) => assert_eq!(e.message, "no member you may add has this id", "{e}"),
        other => anyhow::bail!("R's claim for nobody: {other:?}"),
    }

    // Alice claims Bob's key packages: Bob's own device's, or a clear refusal; never R's device.
    let claimed = match alice.conn.call(Request::ClaimKeyPackages { account: bob_id }).await? {
        Ok(Response::KeyPackages(packages)) => packages,
        Ok(other) => anyhow::bail!("claim: {other:?}"),
        Err(e) => anyhow::bail!("Alice could not claim Bob's key packages: {e}"),
    };
    anyhow::ensure!(!claimed.is_empty(), "no package");
    for package in &claimed {
        let id = veche_mls::inspect::inspect_key_package(package)?;
        assert_eq!((id.account, id.device), (bob_id, bob_device), "Alice got a package of another device");
    }

    // Dave: R says he lives on R, and so does B. Only B has Dave's signed home: A believes B, and
    // Alice gets Dave's own package.
    match alice.conn.call(Request::ClaimKeyPackages { account: dave.account() }).await? {
        Ok(Response::KeyPackages(packages)) => {
            anyhow::ensure!(!packages.is_empty(), "no package for Dave");
            for package in &packages {
                let id = veche_mls::inspect::inspect_key_package(package)?;
                assert_eq!((id.account, id.device), (dave.account(), dave.device()), "Alice got R's device for Dave");
            }
        }
        other => anyhow::bail!("Alice's claim for Dave: {other:?}"),
    }

    // Alice adds Bob to a chat on A: Bob's own node B receives it.
    let group = GroupId([0x24; 16]);
    alice.create_chat(group, "Honest").await?;
    let bundle = alice.mls.add_members(group, &claimed)?;
    let commit =
        Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
    alice.conn.call(commit).await?.map_err(|e| anyhow::anyhow!("commit: {e}"))?;
    alice.mls.merge_pending_commit(group)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let Ok(Response::Chats(chats)) = bob.conn.call(Request::Chats).await? else { anyhow::bail!("chats") };
        if chats.iter().any(|c| c.group == group) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "Bob's node B never received the chat Alice added him to");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Erin, of B, joins Alice's chat with its link through B while R says Erin lives on R too: A
    // believes B, which holds Erin's signed home, and B receives the chat while R is still linked.
    let group = GroupId([0x25; 16]);
    alice.create_chat(group, "Erin's").await?;
    let token = alice.invite(group).await?;
    let Ok(Response::GroupInfo(info)) = erin.conn.call(Request::JoinGroupInfo { token: token.clone() }).await? else {
        anyhow::bail!("no GroupInfo for Alice's link")
    };
    let (_, bundle) = erin.mls.join_external(&info)?;
    let join = Request::Join { token, commit: bundle.commit, group_info: bundle.group_info };
    let joined = Instant::now();
    eprintln!("Erin joins while R claims her: {:?}", erin.conn.call(join).await?);
    let deadline = joined + Duration::from_secs(20);
    loop {
        let Ok(Response::Chats(chats)) = erin.conn.call(Request::Chats).await? else { anyhow::bail!("chats") };
        if chats.iter().any(|c| c.group == group) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "B never received the chat Erin joined while R claimed her");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("B received Erin's chat {:?} after she joined, R still linked", joined.elapsed());
    assert!(
        a.node.log().lines().any(|l| l.contains("without the member's signed home")),
        "no warning on A about R's unproven claims"
    );

    for node in [&a.node, &b.node] {
        node.http_get("/healthz")?;
        assert!(!node.log().contains("panicked"), "a node panicked");
    }
    Ok(())
}

/// A is linked with R but not with B, where Bob lives: nobody A can ask knows better when R says
/// "Bob lives on me". A records a home only with Bob's own signature naming it, which R cannot
/// make: Alice's claim for Bob is refused with a clear error, and once A's admin links B, Alice
/// reaches Bob's own device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_node_cannot_claim_an_account_whose_home_is_not_linked() -> anyhow::Result<()> {
    let tmp = TempDir::new("rogue-claims-unlinked");
    let a = Site::start(&tmp, "a", &[])?;
    let b = Site::start(&tmp, "b", &[])?;
    let mut alice = RawDevice::register(&a.node.url, "Alice", Some(node_token(&a)?)).await?;
    let bob = RawDevice::register(&b.node.url, "Bob", Some(node_token(&b)?)).await?;
    let bob_id = bob.account();
    let mut rogue_mls = veche_mls::Client::new_for_account(veche_mls::Client::generate_secret(), bob_id);
    let forged = HashMap::from([(bob_id, rogue_mls.key_packages(1)?.remove(0))]);

    let a_id: PeerId = a.node.node_id.parse()?;
    let target: Multiaddr = a.address()?.trim_end_matches(&format!("/p2p/{a_id}")).parse()?;
    let rogue = liar(target, a_id, forged, vec![bob_id]).await?;
    let linked = a.admin.run(&["admin", "link", &format!("{}/p2p/{}", rogue.addr, rogue.peer_id)])?;
    assert_eq!(linked["state"], "linked", "{linked}");

    // Alice claims Bob's key packages: R is the only linked node that says Bob lives on it.
    let answer = alice.conn.call(Request::ClaimKeyPackages { account: bob_id }).await?;
    eprintln!("Alice's claim for Bob: {answer:?}");
    let refusal = match answer {
        Ok(Response::KeyPackages(packages)) => {
            let ids: Vec<_> = packages.iter().map(|p| veche_mls::inspect::inspect_key_package(p)).collect();
            anyhow::bail!("Alice got key packages for Bob from R: {ids:?}")
        }
        Ok(other) => anyhow::bail!("claim: {other:?}"),
        Err(e) => e,
    };

    // A's admin links B: A asks again, and Alice reaches Bob's own device (a node that took R
    // for Bob's home would keep asking R).
    a.admin.run(&["admin", "link", &b.address()?])?;
    let made = b.admin.run(&["admin", "link", &a.address()?])?;
    anyhow::ensure!(made["state"] == "linked", "A and B not linked: {made}");
    let linked = Instant::now();
    loop {
        let answer = alice.conn.call(Request::ClaimKeyPackages { account: bob_id }).await?;
        if let Ok(Response::KeyPackages(packages)) = &answer {
            anyhow::ensure!(!packages.is_empty(), "no package");
            for package in packages {
                let id = veche_mls::inspect::inspect_key_package(package)?;
                assert_eq!((id.account, id.device), (bob_id, bob.device()), "Alice got another device for Bob");
            }
            break;
        }
        // Every 5 s for 40 s: Alice's claims for one account stay within a member's quota (10).
        anyhow::ensure!(
            linked.elapsed() < Duration::from_secs(40),
            "A still takes R for Bob's home after it linked B: {answer:?}"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    eprintln!("Alice got Bob's own package {:?} after A linked B", linked.elapsed());
    assert_eq!(refusal.code, ErrorCode::Forbidden, "{refusal}");
    assert!(refusal.message.contains("cannot prove"), "the refusal says why: {refusal}");
    assert!(
        a.node.log().lines().any(|l| l.contains("without the member's signed home")),
        "no warning on A about R's unproven claim"
    );
    for node in [&a.node, &b.node] {
        node.http_get("/healthz")?;
        assert!(!node.log().contains("panicked"), "a node panicked");
    }
    Ok(())
}
