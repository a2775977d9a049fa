//! Keeping the local MLS state in step with the node's log: welcomes, catching up each chat in
//! order, live events, and what the views show of it (seen marks, names, chat info).

use super::*;
use veche_protocol::call::{CallUpdate, RingEnd};

impl Device {
    pub(super) async fn sync_all(&mut self) -> Result<(), String> {
        let pending: Vec<_> = self.db.pending_joins.iter().map(|(g, p)| (*g, p.clone())).collect();
        for (group, join) in pending {
            self.finish_join(group, join).await?;
        }
        if self.db.restored {
            self.refresh_keys_after_restore().await?;
        }
        self.replenish_key_packages().await?;
        if let Ok(Response::Chats(infos)) = self.call(Request::Chats).await {
            for info in infos {
                self.apply_info(info);
            }
        }
        self.refresh_meetings().await;
        let groups: Vec<GroupId> = self.db.chats.iter().filter(|(_, c)| c.active).map(|(g, _)| *g).collect();
        for group in groups {
            self.sync_chat(group).await?;
        }
        self.sync_welcomes().await
    }

    pub(super) async fn replenish_key_packages(&mut self) -> Result<(), String> {
        let Ok(Response::KeyPackageCount(count)) = self.call(Request::KeyPackageCount).await else {
            return Err("@err-unexpected".into());
        };
        if count >= KEY_PACKAGES_LOW {
            return Ok(());
        }
        let packages = self.mls()?.key_packages(KEY_PACKAGES_BATCH).map_err(mls_err)?;
        self.persist(Batch::default()).await?;
        self.call(Request::PublishKeyPackages { packages, last_resort: None }).await.map_err(api_message)?;
        Ok(())
    }

    pub(super) async fn sync_welcomes(&mut self) -> Result<(), String> {
        loop {
            let welcomes = match self.call(Request::Welcomes).await {
                Ok(Response::Welcomes(w)) => w,
                Ok(_) => return Err("@err-unexpected".into()),
                Err(e) => return Err(api_message(e)),
            };
            if welcomes.is_empty() {
                return Ok(());
            }
            for welcome in welcomes {
                let group = welcome.group;
                if self.accept_welcome(welcome).await? {
                    self.sync_chat(group).await?;
                }
            }
        }
    }

    pub(super) async fn accept_welcome(
        &mut self,
        welcome: veche_protocol::wire::WelcomeEnvelope,
    ) -> Result<bool, String> {
        let current = self.db.chats.get(&welcome.group).is_some_and(|c| c.active && c.processed >= welcome.commit_seq);
        let mut joined = false;
        if !current {
            match self.mls()?.join_from_welcome(&welcome.welcome) {
                Ok(group) if group == welcome.group => match self.call(Request::Chat { group }).await {
                    Ok(Response::Chat(info)) => {
                        let chat = new_local_chat(info.kind, &info.name, welcome.commit_seq);
                        let mut batch = Batch::default();
                        batch.chat(group, chat);
                        self.persist(batch).await?;
                        self.apply_info(info);
                        joined = true;
                    }
                    Ok(_) => return Err("@err-unexpected".into()),
                    Err(CallError::Api(_)) => {
                        self.mls()?.forget_group(group).map_err(mls_err)?;
                        self.persist(Batch::default()).await?;
                    }
                    Err(e) => {
                        self.mls()?.rollback();
                        return Err(api_message(e));
                    }
                },
                Ok(other) => {
                    self.mls()?.forget_group(other).map_err(mls_err)?;
                    self.persist(Batch::default()).await?;
                }
                Err(_) => {} // unusable welcome: acknowledged below so it never blocks the device
            }
        }
        match self.call(Request::AckWelcome { id: welcome.id }).await {
            Ok(_) | Err(CallError::Api(_)) => Ok(joined),
            Err(e) => Err(api_message(e)),
        }
    }

    /// Fetches and processes the chat's log, then sends what waits in its outbox.
    pub(super) async fn sync_chat(&mut self, group: GroupId) -> Result<(), String> {
        self.catch_up(group).await?;
        self.flush_outbox(group).await
    }

    pub(super) async fn catch_up(&mut self, group: GroupId) -> Result<(), String> {
        loop {
            let Some(chat) = self.db.chats.get(&group).cloned() else { return Ok(()) };
            if !chat.active {
                return Ok(());
            }
            let request = Request::Fetch { group, after: chat.processed, limit: PAGE };
            let (messages, head) = match self.call(request).await {
                Ok(Response::Messages { messages, head }) => (messages, head),
                Ok(_) => return Err("@err-unexpected".into()),
                Err(e) => return Err(api_message(e)),
            };
            if messages.is_empty() {
                return self.commit_pending_leaves(group).await;
            }
            let last = self.process_batch(group, chat, messages, true).await?;
            self.call(Request::Ack { group, seq: last }).await.map_err(api_message)?;
            if last >= head {
                return self.commit_pending_leaves(group).await;
            }
        }
    }

    pub(super) async fn process_batch(
        &mut self,
        group: GroupId,
        mut chat: LocalChat,
        entries: Vec<Delivered>,
        fetched: bool,
    ) -> Result<u64, String> {
        let me = self.me()?;
        let mut batch = Batch::default();
        let mut membership_changed = false;
        // Text messages from others, newest last: what a notification may show.
        let mut fresh: Vec<(AccountId, String)> = Vec::new();
        for entry in entries {
            if entry.seq <= chat.processed || !chat.active {
                continue;
            }
            if entry.seq > chat.processed + 1 {
                if !fetched {
                    break;
                }
                let missing = entry.seq - chat.processed - 1;
                batch.history(
                    group,
                    HistoryEntry {
                        seq: chat.processed + 1,
                        sender: me,
                        sent_at_ms: 0,
                        stored_at_ms: entry.stored_at_ms,
                        own: false,
                        body: HistoryBody::System(SystemEvent::Expired(missing)),
                    },
                );
            }
            chat.processed = entry.seq;
            let known = self.db.history.get(&group).is_some_and(|h| h.contains_key(&entry.seq));
            if entry.sender == me && known {
                continue;
            }
            let body = match self.mls()?.process(&entry.payload) {
                Ok(Processed::Application { plaintext, .. }) => match AppMessage::decode(&plaintext) {
                    Ok(message) => Some((message.sent_at_ms, HistoryBody::of(message.body))),
                    Err(_) => Some((0, HistoryBody::System(SystemEvent::Unreadable))),
                },
                Ok(Processed::Commit { sender, added, removed, we_were_removed, .. }) => {
                    membership_changed = true;
                    chat.leavers.retain(|a| !removed.iter().any(|r| r.account == *a));
                    if we_were_removed {
                        chat.active = false;
                    }
                    let added: Vec<AccountId> = added.iter().map(|m| m.account).collect();
                    let removed: Vec<AccountId> = removed.iter().map(|m| m.account).collect();
                    if sender.is_some() && added.len() == 1 && sender.map(|s| s.account) == added.first().copied() {
                        Some((0, HistoryBody::System(SystemEvent::JoinedByLink(added[0]))))
                    } else if !added.is_empty() {
                        Some((0, HistoryBody::System(SystemEvent::Added(added))))
                    } else if !removed.is_empty() {
                        Some((0, HistoryBody::System(SystemEvent::Removed(removed))))
                    } else {
                        None
                    }
                }
                Ok(Processed::Proposal { sender, kind: veche_mls::ProposalKind::Leave }) => {
                    if !chat.leavers.contains(&sender.account) {
                        chat.leavers.push(sender.account);
                    }
                    None
                }
                Err(ProcessError::OwnMessage | ProcessError::Stale { .. }) => None,
                Err(_) if entry.sender == me && entry.kind == EntryKind::Handshake => {
                    match self.mls()?.merge_pending_commit(group) {
                        Ok(()) => None,
                        Err(_) => Some((0, HistoryBody::System(SystemEvent::Unreadable))),
                    }
                }
                Err(_) => Some((0, HistoryBody::System(SystemEvent::Unreadable))),
            };
            if let Some((sent_at_ms, body)) = body {
                if let HistoryBody::Text(text) = &body
                    && entry.sender != me
                {
                    fresh.push((entry.sender, text.clone()));
                }
                batch.history(
                    group,
                    HistoryEntry {
                        seq: entry.seq,
                        sender: entry.sender,
                        sent_at_ms,
                        stored_at_ms: entry.stored_at_ms,
                        own: entry.sender == me,
                        body,
                    },
                );
            }
        }
        let processed = chat.processed;
        batch.chat(group, chat);
        self.persist(batch).await?;
        self.publish_chat(group);
        if membership_changed {
            self.refresh_chat(group).await;
        }
        self.learn_names(group).await;
        if self.live {
            // One notification per chat (each replaces the last): the newest message worth one.
            for (sender, text) in fresh.iter().rev() {
                if crate::notify::on_message(self.ui, group, *sender, text) {
                    break;
                }
            }
        }
        Ok(processed)
    }

    pub(super) async fn handle_event(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Message(delivered) => {
                let group = delivered.group;
                let Some(chat) = self.db.chats.get(&group).cloned() else { return Ok(()) };
                if delivered.seq == chat.processed + 1 {
                    let seq = self.process_batch(group, chat, vec![delivered], false).await?;
                    self.call(Request::Ack { group, seq }).await.map_err(api_message)?;
                    self.commit_pending_leaves(group).await?;
                } else if delivered.seq > chat.processed + 1 {
                    self.sync_chat(group).await?;
                }
            }
            Event::Welcome(welcome) => {
                let group = welcome.group;
                if self.accept_welcome(welcome).await? {
                    self.sync_chat(group).await?;
                }
            }
            Event::Lagged => self.sync_all().await?,
            Event::ChatUpdated { group } => self.refresh_chat(group).await,
            Event::CallOffer { group, sdp } => self.call_offer(group, sdp).await?,
            Event::Call { group, update } => {
                // What became of a 1:1 call this device started.
                let told = match &update {
                    CallUpdate::Declined => Some("call-declined"),
                    CallUpdate::Busy => Some("call-busy"),
                    CallUpdate::NoAnswer => Some("call-no-answer"),
                    _ => None,
                };
                if let Some(id) = told {
                    self.ui.toast(format!("@{id}"), false);
                }
                self.call_update(group, update)
            }
            Event::CallRing { group, from, name } => {
                self.ui.names.update(|n| {
                    n.insert(from, name.clone());
                });
                self.ui.ringing.set(Some(crate::state::Ringing { group, from, name: name.clone() }));
                crate::notify::on_ring(self.ui, group, &name);
            }
            Event::CallRingEnded { group, reason } => {
                let ringing = self.ui.ringing.get_untracked().filter(|r| r.group == group);
                if let Some(r) = ringing {
                    self.ui.ringing.set(None);
                    let missed = matches!(reason, RingEnd::Missed | RingEnd::Cancelled);
                    crate::notify::on_ring_end(self.ui, group, &r.name, missed);
                    if missed {
                        self.ui.toast(format!("@call-missed|{}", r.name), false);
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) async fn mark_seen(&mut self, group: GroupId) {
        let Some(mut chat) = self.db.chats.get(&group).cloned() else { return };
        let last = self.db.history.get(&group).and_then(|h| h.keys().next_back().copied()).unwrap_or(0);
        let newest = last.max(chat.processed);
        if chat.seen >= newest {
            return;
        }
        chat.seen = newest;
        let mut batch = Batch::default();
        batch.chat(group, chat);
        if self.persist(batch).await.is_ok() {
            self.publish_chat(group);
        }
    }

    /// Reloads the chat's name, members and roles from the node.
    pub(super) async fn refresh_chat(&mut self, group: GroupId) {
        if let Ok(Response::Chat(info)) = self.call(Request::Chat { group }).await {
            self.apply_info(info);
        }
    }

    /// Fetches display names of senders this device does not know yet.
    pub(super) async fn learn_names(&mut self, group: GroupId) {
        let known = self.ui.names.with_untracked(|n| n.keys().copied().collect::<std::collections::HashSet<_>>());
        let mut unknown: Vec<AccountId> = self
            .db
            .history
            .get(&group)
            .into_iter()
            .flat_map(|h| h.values())
            .flat_map(|e| {
                let mut ids = vec![e.sender];
                if let HistoryBody::System(SystemEvent::Added(list) | SystemEvent::Removed(list)) = &e.body {
                    ids.extend(list.iter().copied());
                }
                if let HistoryBody::System(SystemEvent::JoinedByLink(a) | SystemEvent::RoleChanged(a)) = &e.body {
                    ids.push(*a);
                }
                ids
            })
            .filter(|a| !known.contains(a))
            .collect();
        unknown.sort();
        unknown.dedup();
        if unknown.is_empty() {
            return;
        }
        if let Ok(Response::Profiles(profiles)) = self.call(Request::Profiles { accounts: unknown }).await {
            let mut batch = Batch::default();
            for profile in &profiles {
                batch.profile(profile.account, profile.display_name.clone());
            }
            if self.persist(batch).await.is_ok() {
                self.ui.names.update(|n| {
                    for p in profiles {
                        n.insert(p.account, p.display_name);
                    }
                });
            }
        }
    }
}
