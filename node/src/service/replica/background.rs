//! Background work: telling member nodes of changes, and catching up with home nodes.

use super::*;

/// Tells the member nodes of changed chats homed here; one notification in flight per (node,
/// chat), repeated if the chat changed meanwhile.
pub async fn notify_changes(node: Node, mut changes: tokio::sync::mpsc::Receiver<GroupId>) {
    while let Some(group) = changes.recv().await {
        let peers = match node.store.read().or_internal().and_then(|txn| {
            if home_of(&txn, group)?.is_some() {
                return Ok(Vec::new());
            }
            let Some(chat) = crate::service::chats::load(&txn, group)? else { return Ok(Vec::new()) };
            let remote = txn.open_table(REMOTE_ACCOUNTS).or_internal()?;
            Ok(member_nodes_in(&remote, &chat)?.into_iter().filter_map(|p| p.parse::<PeerId>().ok()).collect())
        }) {
            Ok(peers) => peers,
            Err(e) => {
                tracing::warn!(%group, error = %e.message, "cannot find member nodes");
                continue;
            }
        };
        for peer in peers {
            start_notify(&node, peer, group);
        }
    }
}

/// Starts telling `peer` that `group` changed, unless a notification is in flight (then it goes
/// again once answered).
fn start_notify(node: &Node, peer: PeerId, group: GroupId) {
    {
        let mut notifying = lock(&node.replication.notifying);
        if let Some(dirty) = notifying.get_mut(&(peer, group)) {
            *dirty = true;
            return;
        }
        notifying.insert((peer, group), false);
    }
    let node = node.clone();
    tokio::spawn(async move { notify(&node, peer, group).await });
}

/// Looks up members of chats homed here whose home is not known (their node could not be asked
/// when they were added), and tells the nodes found about those chats.
async fn locate_members(node: &Node) -> ApiResult<()> {
    let unknown: Vec<(GroupId, AccountId)> = {
        let txn = node.store.read().or_internal()?;
        let homes = txn.open_table(CHAT_HOMES).or_internal()?;
        let accounts = txn.open_table(ACCOUNTS).or_internal()?;
        let remote = txn.open_table(REMOTE_ACCOUNTS).or_internal()?;
        let mut out = Vec::new();
        for row in txn.open_table(CHATS).or_internal()?.iter().or_internal()? {
            let (key, value) = row.or_internal()?;
            if homes.get(key.value()).or_internal()?.is_some() {
                continue;
            }
            let chat: Chat = records::decode(value.value())?;
            for account in chat.roster.keys() {
                if accounts.get(account.0).or_internal()?.is_none() && remote.get(account.0).or_internal()?.is_none() {
                    out.push((GroupId(key.value()), *account));
                }
            }
        }
        out
    };
    if unknown.is_empty() {
        return Ok(());
    }
    super::homes::resolve(node, unknown.iter().map(|(_, a)| *a)).await?;
    let found = remote_names(&node.store.read().or_internal()?, &unknown.iter().map(|(_, a)| *a).collect::<Vec<_>>())?;
    for (group, account) in unknown {
        if let Some(peer) = found.get(&account).and_then(|r| r.home.parse::<PeerId>().ok()) {
            start_notify(node, peer, group);
        }
    }
    Ok(())
}

/// Tells `peer` that `group` changed, until it answers (with backoff while it is unreachable:
/// the home's log is the outbox, and the notification is what makes the member node take it),
/// and again if the chat changed meanwhile.
async fn notify(node: &Node, peer: PeerId, group: GroupId) {
    loop {
        if let Some(at) = retry_at(node, peer) {
            tokio::time::sleep_until(at.into()).await;
        }
        let head = node
            .store
            .read()
            .ok()
            .and_then(|txn| crate::service::chats::load(&txn, group).ok().flatten())
            .map(|c| c.head);
        let Some(head) = head else {
            lock(&node.replication.notifying).remove(&(peer, group));
            return;
        };
        match ask(node, peer, FedRequest::Notify { group, head }).await {
            Ok(FedReply::Refused(e)) if e.code == ErrorCode::RateLimited => {
                // The member node is busy: tell it again shortly (it must not miss the change).
                tokio::time::sleep(BACKOFF_MIN).await;
                continue;
            }
            Ok(_) => reachable(node, peer),
            Err(e) if e.code == ErrorCode::Unavailable => {
                tracing::debug!(%peer, %group, error = %e.message, "notification not delivered; retrying");
                failed(node, peer);
                continue;
            }
            Err(e) => {
                // Not linked any more, or refused: nothing to retry.
                tracing::debug!(%peer, %group, error = %e.message, "notification refused");
            }
        }
        // Under one lock: either the chat changed meanwhile (go again), or this task is done and
        // leaves the map, so the next change starts a new one (none is lost in between).
        let mut notifying = lock(&node.replication.notifying);
        match notifying.get_mut(&(peer, group)) {
            Some(dirty) if *dirty => *dirty = false,
            _ => {
                notifying.remove(&(peer, group));
                return;
            }
        }
    }
}

/// Pulls every replica homed at `home` (or at every home), skipping homes in backoff unless
/// `force`.
pub async fn catch_up(node: &Node, home: Option<PeerId>, force: bool) -> ApiResult<()> {
    let replicas: Vec<(GroupId, PeerId)> = {
        let txn = node.store.read().or_internal()?;
        let mut out = Vec::new();
        for row in txn.open_table(CHAT_HOMES).or_internal()?.iter().or_internal()? {
            let (key, value) = row.or_internal()?;
            if let Ok(peer) = value.value().parse::<PeerId>()
                && home.is_none_or(|h| h == peer)
            {
                out.push((GroupId(key.value()), peer));
            }
        }
        out
    };
    let mut unreachable = BTreeSet::new();
    for (group, peer) in replicas {
        if (!force && retry_at(node, peer).is_some()) || unreachable.contains(&peer) {
            continue;
        }
        // `u64::MAX`: pull until the home says there is no more.
        if let Err(e) = sync(node, peer, group, u64::MAX).await {
            tracing::debug!(%group, %peer, error = %e.message, "catch-up pull failed");
            if e.code == ErrorCode::Unavailable {
                // Do not wait on an unreachable home once for each of its chats.
                unreachable.insert(peer);
            }
        }
    }
    Ok(())
}

/// Background catch-up: every [`FULL_SYNC`], and more often for homes that failed (with
/// backoff).
pub async fn run_catch_up(node: Node) {
    let mut last_full = Instant::now() - FULL_SYNC;
    let mut last_directory = Instant::now();
    loop {
        let now = Instant::now();
        if now.duration_since(last_directory) >= crate::service::directory::REFRESH_EVERY {
            last_directory = now;
            if let Err(e) = crate::service::directory::refresh(&node, Duration::from_secs(10)).await {
                tracing::debug!(error = %e.message, "directory refresh");
            }
        }
        if now.duration_since(last_full) >= FULL_SYNC {
            last_full = now;
            if let Err(e) = catch_up(&node, None, true).await {
                tracing::warn!(error = %e.message, "catch-up");
            }
            if let Err(e) = locate_members(&node).await {
                tracing::warn!(error = %e.message, "looking up where members live");
            }
        } else {
            let due: Vec<PeerId> =
                lock(&node.replication.backoff).iter().filter(|(_, (at, _))| *at <= now).map(|(p, _)| *p).collect();
            for peer in due {
                let _ = catch_up(&node, Some(peer), true).await;
            }
        }
        tokio::time::sleep(BACKOFF_MIN).await;
    }
}
