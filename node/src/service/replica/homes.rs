//! Where accounts of other nodes live (`REMOTE_ACCOUNTS`), and their key packages.
//!
//! An account's home is learned only from the home node itself: this node asks every linked node
//! which of some accounts live on it ([`FedRequest::Locate`]) and believes a home only if exactly
//! one linked node answers for the account with the account's signed home binding naming that
//! node (the account key's signature, `veche_protocol::auth::home_payload`, which the account's
//! first device sends its node: `Request::BindHome`). A linked node cannot make one for an account
//! that is not its own, so it cannot claim an account whose real home this node is not linked
//! with or cannot reach. An answer without a valid binding is not believed, with a warning: an
//! account registered before bindings existed is found again once its first device signs in
//! (it then sends its binding). What a linked node says about other nodes' accounts
//! (the addresses in a forwarded request, a pulled page's members, a key-package answer) is a hint
//! to look up, never a record; a node that names itself as the home of an account of another node
//! gets a conflict, not the account. A known home never changes; its display name is updated only
//! by that home. Key packages an account's home hands out are checked before a device sees them:
//! valid, and made by the account's own key.

use super::*;

/// How long an account that no linked node (or more than one) answered for is not looked up
/// again: pulls name the same members every few seconds and need not ask each time, while the
/// catch-up every 30 s (`FULL_SYNC`, `background::locate_members`) should: just under it.
const UNRESOLVED_RETRY: Duration = Duration::from_secs(25);
/// Accounts remembered as unresolved at most (beyond it, the oldest are forgotten): a linked node
/// that names many made-up accounts costs this node a bounded map.
const MAX_UNRESOLVED: usize = 10_000;

/// Why an account's home is not known after a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unresolved {
    /// No linked node answered for it.
    Nobody,
    /// Several linked nodes answered with a valid binding (the account key signed more than one
    /// home): none is believed.
    Several,
    /// Linked nodes answered for it, but none with the account's signed home binding.
    Unproven,
}

/// Who told this node about an account's home.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source<'a> {
    /// The account's home node itself, as the only linked node that answered for it.
    Located,
    /// A linked node, saying where accounts live (a hint only: it may update the display name of
    /// an account whose home it is, never record a new one).
    Node(&'a str),
}

/// Answers [`FedRequest::Locate`]: the asked accounts that live on this node.
pub(super) fn serve_locate(node: &Node, accounts: Vec<AccountId>) -> ApiResult<FedReply> {
    if accounts.len() > veche_protocol::federation::MAX_LOCATE {
        let max = veche_protocol::federation::MAX_LOCATE;
        return err(ErrorCode::TooLarge, format!("ask about at most {max} accounts at once"));
    }
    let txn = node.store.read().or_internal()?;
    let mut out = Vec::new();
    for account in accounts {
        if let Some(record) = crate::service::accounts::load_account(&txn, &account)? {
            let home_signature = crate::service::accounts::home_binding(&txn, &account)?;
            out.push(LocatedAccount { account, display_name: record.display_name, home_signature });
        }
    }
    Ok(FedReply::Located(out))
}

/// Looks up where the accounts among `accounts` that are neither this node's nor known live, by
/// asking every linked node ([`FedRequest::Locate`]), and records the homes that exactly one
/// linked node answered for.
pub(super) async fn resolve(node: &Node, accounts: impl IntoIterator<Item = AccountId>) -> ApiResult<()> {
    let wanted: Vec<AccountId> = {
        let txn = node.store.read().or_internal()?;
        let local = txn.open_table(ACCOUNTS).or_internal()?;
        let remote = txn.open_table(REMOTE_ACCOUNTS).or_internal()?;
        let now = Instant::now();
        let unresolved = lock(&node.replication.unresolved);
        let mut wanted = BTreeSet::new();
        for account in accounts {
            if wanted.len() == veche_protocol::federation::MAX_LOCATE {
                break;
            }
            if local.get(account.0).or_internal()?.is_some() || remote.get(account.0).or_internal()?.is_some() {
                continue;
            }
            if unresolved.get(&account).is_some_and(|(until, _)| *until > now) {
                continue;
            }
            wanted.insert(account);
        }
        wanted.into_iter().collect()
    };
    if wanted.is_empty() {
        return Ok(());
    }
    let asks = linked_peers(node)?.into_iter().map(|(peer, _)| {
        let request = FedRequest::Locate { accounts: wanted.clone() };
        async move {
            match tokio::time::timeout(LOOKUP_TIMEOUT, ask(node, peer, request)).await {
                Ok(Ok(FedReply::Located(found))) => (peer, found),
                _ => (peer, Vec::new()),
            }
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    let mut claims: BTreeMap<AccountId, Vec<(PeerId, String)>> = BTreeMap::new();
    let mut unproven: BTreeMap<AccountId, Vec<PeerId>> = BTreeMap::new();
    for (peer, found) in answers {
        // Each answer is about the asked accounts only, and names each once.
        let found: BTreeMap<AccountId, LocatedAccount> =
            found.into_iter().filter(|a| wanted.contains(&a.account)).map(|a| (a.account, a)).collect();
        let home = peer.to_string();
        for (account, answer) in found {
            let proven = answer
                .home_signature
                .as_deref()
                .is_some_and(|signature| veche_protocol::auth::verify_home(&account, &home, signature).is_ok());
            if proven {
                claims.entry(account).or_default().push((peer, answer.display_name));
            } else {
                unproven.entry(account).or_default().push(peer);
            }
        }
    }
    let mut located = Vec::new();
    let mut failed = Vec::new();
    for account in &wanted {
        let without = unproven.remove(account).unwrap_or_default();
        if !without.is_empty() {
            let nodes: Vec<String> = without.iter().map(PeerId::to_string).collect();
            tracing::warn!(%account, ?nodes, "a linked node says this account lives on it, without the member's signed home: not believed");
        }
        match claims.remove(account).as_deref() {
            Some([(peer, name)]) => {
                located.push(MemberAddress { account: *account, home: peer.to_string(), display_name: name.clone() });
            }
            Some(several) => {
                let nodes: Vec<String> = several.iter().map(|(p, _)| p.to_string()).collect();
                tracing::warn!(%account, ?nodes, "several linked nodes say this account lives on them: none is believed");
                failed.push((*account, Unresolved::Several));
            }
            None if !without.is_empty() => failed.push((*account, Unresolved::Unproven)),
            None => failed.push((*account, Unresolved::Nobody)),
        }
    }
    if !failed.is_empty() {
        let mut unresolved = lock(&node.replication.unresolved);
        let now = Instant::now();
        unresolved.retain(|_, (until, _)| *until > now);
        for (account, why) in failed {
            if unresolved.len() >= MAX_UNRESOLVED {
                break;
            }
            unresolved.insert(account, (now + UNRESOLVED_RETRY, why));
        }
    }
    if !located.is_empty() {
        let me = node.info.node_id.clone();
        node.writer.run(move |ctx| remember_in(ctx, &me, Source::Located, &located)).await?;
    }
    Ok(())
}

/// Why `account`'s home was not found when it was last looked up (if that was recently).
fn unresolved(node: &Node, account: AccountId) -> Option<Unresolved> {
    lock(&node.replication.unresolved).get(&account).filter(|(until, _)| *until > Instant::now()).map(|(_, why)| *why)
}

/// Forgets which accounts were not found, so they are looked up again at once: a link just came
/// up, and the new node may be their home.
pub(crate) fn forget_unresolved(node: &Node) {
    lock(&node.replication.unresolved).clear();
}

/// The home of an account of another node, if known.
fn known_home(node: &Node, account: AccountId) -> ApiResult<Option<PeerId>> {
    let txn = node.store.read().or_internal()?;
    let remote: Option<RemoteAccount> = records::get(&txn.open_table(REMOTE_ACCOUNTS).or_internal()?, account.0)?;
    Ok(remote.and_then(|r| r.home.parse().ok()))
}

/// Takes key packages of an account that lives on another node, through that node (looked up
/// first if unknown). The packages are checked: valid, and made by the account's own key.
pub async fn claim_remote_key_packages(node: &Node, account: AccountId) -> ApiResult<Vec<Vec<u8>>> {
    let home = match known_home(node, account)? {
        Some(home) => home,
        None => {
            resolve(node, [account]).await?;
            match known_home(node, account)? {
                Some(home) => home,
                None => match unresolved(node, account) {
                    Some(Unresolved::Several) => {
                        return err(
                            ErrorCode::Conflict,
                            "several linked nodes say this member lives on them; the node's admin should check its links",
                        );
                    }
                    Some(Unresolved::Unproven) => {
                        return err(
                            ErrorCode::Forbidden,
                            "a linked node says this member lives on it but cannot prove it (no home signed by the member's key); the member's own node may not be linked with this one, or the member has not signed in with their first device since their node was updated",
                        );
                    }
                    _ => return Err(crate::service::accounts::not_claimable()),
                },
            }
        }
    };
    let claim = tokio::time::timeout(LOOKUP_TIMEOUT, ask(node, home, FedRequest::ClaimKeyPackages { account }));
    let answer = claim.await.map_err(|_| refused("no answer in time"))??;
    match answer {
        FedReply::KeyPackages { member, packages } if member.account == account => {
            if let Err(e) = crate::mls_view::remote_key_packages(account, &packages) {
                tracing::warn!(%account, %home, error = %e.message, "the account's home node sent key packages that are not the account's");
                return err(ErrorCode::Forbidden, "the member's node sent key packages that are not the member's");
            }
            let me = node.info.node_id.clone();
            let home = home.to_string();
            let named = vec![MemberAddress { home: home.clone(), ..member }];
            node.writer.run(move |ctx| remember_in(ctx, &me, Source::Node(&home), &named)).await?;
            Ok(packages)
        }
        FedReply::Refused(e) | FedReply::Response(Err(e)) if e.code == ErrorCode::NotFound => {
            Err(crate::service::accounts::not_claimable())
        }
        FedReply::Refused(e) | FedReply::Response(Err(e)) => Err(e),
        other => Err(crate::service::internal(format!("unexpected answer to a key package claim: {other:?}"))),
    }
}

/// Records what `source` says about where accounts live (never overriding this node's own
/// accounts or a known home; see [`Source`]).
pub(super) fn remember_in(
    ctx: &mut TxnCtx<'_>,
    me: &str,
    source: Source<'_>,
    members: &[MemberAddress],
) -> ApiResult<()> {
    let mut changes = Vec::new();
    {
        let accounts = ctx.read().open_table(ACCOUNTS).or_internal()?;
        let remote = ctx.read().open_table(REMOTE_ACCOUNTS).or_internal()?;
        for m in members {
            if m.home == me || m.home.parse::<PeerId>().is_err() || accounts.get(m.account.0).or_internal()?.is_some() {
                continue;
            }
            let Ok(name) = veche_protocol::validate::display_name(&m.display_name) else {
                tracing::warn!(account = %m.account, home = %m.home, "a linked node sent an invalid display name: ignored");
                continue;
            };
            let current: Option<RemoteAccount> = records::get(&remote, m.account.0)?;
            match (current, source) {
                (None, Source::Located) => {
                    changes.push((m.account, RemoteAccount { home: m.home.clone(), display_name: name }));
                }
                (Some(r), Source::Node(from)) if r.home == m.home && from == r.home && r.display_name != name => {
                    changes.push((m.account, RemoteAccount { display_name: name, ..r }));
                }
                _ => {}
            }
        }
    }
    if !changes.is_empty() {
        let mut remote = ctx.write().open_table(REMOTE_ACCOUNTS).or_internal()?;
        for (account, record) in changes {
            remote.insert(account.0, records::encode(&record).as_slice()).or_internal()?;
        }
    }
    Ok(())
}

/// Records a display name `peer` gives for one of its own accounts, if its home is known to be
/// `peer`.
pub(super) async fn rename(node: &Node, peer: PeerId, account: AccountId, display_name: String) -> ApiResult<()> {
    let me = node.info.node_id.clone();
    let home = peer.to_string();
    let named = vec![MemberAddress { account, home: home.clone(), display_name }];
    node.writer.run(move |ctx| remember_in(ctx, &me, Source::Node(&home), &named)).await
}
