//! Sending: the outbox of typed messages, and commits with their StaleEpoch retry.

use super::*;

impl Device {
    pub(super) async fn queue_text(&mut self, group: GroupId, text: String) -> Result<(), String> {
        let text = text.trim().to_string();
        if text.is_empty() {
            return Ok(());
        }
        let message = AppMessage::text(&text, now_ms()).map_err(|_| "@err-too-long".to_string())?;
        self.queue_message(group, message).await
    }

    /// Puts a message (text, call record, whiteboard) into the chat's outbox and sends it when
    /// the device can.
    pub(super) async fn queue_message(&mut self, group: GroupId, message: AppMessage) -> Result<(), String> {
        message.encode().map_err(|_| "@err-too-long".to_string())?;
        let mut id = now_ms() * 1000;
        while self.db.outbox.get(&group).is_some_and(|o| o.contains_key(&id)) {
            id += 1;
        }
        let entry = OutboxEntry { body: message.body, sent_at_ms: message.sent_at_ms, ciphertext: None, failed: false };
        let mut batch = Batch::default();
        batch.outbox(group, id, entry);
        self.persist(batch).await?;
        self.publish_chat(group);
        self.flush_outbox_reporting(group).await;
        Ok(())
    }

    pub(super) async fn flush_outbox_reporting(&mut self, group: GroupId) {
        if self.signed_in
            && let Err(e) = self.flush_outbox(group).await
        {
            self.ui.toast(e, true);
        }
    }

    /// Sends the chat's waiting messages in order. Stops (keeping them) when offline or when the
    /// node may still store them later; marks them failed when refused for good.
    pub(super) async fn flush_outbox(&mut self, group: GroupId) -> Result<(), String> {
        if !self.signed_in {
            return Ok(());
        }
        let ids: Vec<u64> = self.db.outbox.get(&group).map(|o| o.keys().copied().collect()).unwrap_or_default();
        for id in ids {
            let mut attempts = 0;
            while let Some(mut entry) = self.db.outbox.get(&group).and_then(|o| o.get(&id)).cloned() {
                if entry.failed {
                    break;
                }
                attempts += 1;
                if attempts > MAX_ATTEMPTS {
                    return Err("@err-chat-busy".into());
                }
                let active = self.db.chats.get(&group).is_some_and(|c| c.active);
                let ciphertext = match entry.ciphertext.clone() {
                    Some(c) => c,
                    None if !active => {
                        entry.failed = true;
                        let mut batch = Batch::default();
                        batch.outbox(group, id, entry);
                        self.persist(batch).await?;
                        self.publish_chat(group);
                        break;
                    }
                    None => {
                        let content = AppMessage { sent_at_ms: entry.sent_at_ms, body: entry.body.clone() }
                            .encode()
                            .map_err(mls_err)?;
                        let ciphertext = self.mls()?.encrypt(group, &content).map_err(mls_err)?;
                        // The advanced ratchet and the ciphertext are saved before it leaves.
                        entry.ciphertext = Some(ciphertext.clone());
                        let mut batch = Batch::default();
                        batch.outbox(group, id, entry.clone());
                        self.persist(batch).await?;
                        ciphertext
                    }
                };
                match self.call(Request::Send { group, message: ciphertext }).await {
                    Ok(Response::Stored { seq }) => {
                        let me = self.me()?;
                        let history = HistoryEntry {
                            seq,
                            sender: me,
                            sent_at_ms: entry.sent_at_ms,
                            stored_at_ms: now_ms(),
                            own: true,
                            body: HistoryBody::of(entry.body.clone()),
                        };
                        let mut batch = Batch::default();
                        batch.remove_outbox(group, id).history(group, history);
                        self.persist(batch).await?;
                        self.publish_chat(group);
                        break;
                    }
                    Ok(_) => return Err("@err-unexpected".into()),
                    Err(CallError::Api(e)) if matches!(e.code, ErrorCode::StaleEpoch { .. }) => {
                        entry.ciphertext = None;
                        let mut batch = Batch::default();
                        batch.outbox(group, id, entry);
                        self.persist(batch).await?;
                        self.catch_up(group).await?;
                    }
                    Err(CallError::Api(e)) if retryable(e.code) => return Err(api_message(CallError::Api(e))),
                    Err(CallError::Api(e)) => {
                        entry.failed = true;
                        entry.ciphertext = None;
                        let mut batch = Batch::default();
                        batch.outbox(group, id, entry);
                        self.persist(batch).await?;
                        self.publish_chat(group);
                        return Err(e.message);
                    }
                    Err(e) => return Err(api_message(e)),
                }
            }
        }
        Ok(())
    }

    /// Makes a commit with `make` after catching up, sends it, merges it once stored.
    pub(super) async fn commit(
        &mut self,
        group: GroupId,
        describe: SystemEvent,
        make: impl Fn(&mut veche_mls::Client) -> Result<CommitBundle, veche_mls::ClientError>,
    ) -> Result<u64, String> {
        for _ in 0..MAX_ATTEMPTS {
            self.catch_up(group).await?;
            let bundle = make(self.mls()?).map_err(mls_err)?;
            self.persist(Batch::default()).await?;
            match self.call(commit_request(group, &bundle)).await {
                Ok(Response::Stored { seq }) => {
                    self.mls()?.merge_pending_commit(group).map_err(mls_err)?;
                    let me = self.me()?;
                    let mut batch = Batch::default();
                    batch.history(group, own_entry(seq, me, HistoryBody::System(describe.clone())));
                    if let Some(mut chat) = self.db.chats.get(&group).cloned() {
                        chat.processed = chat.processed.max(seq);
                        chat.seen = chat.seen.max(seq);
                        batch.chat(group, chat);
                    }
                    self.persist(batch).await?;
                    self.publish_chat(group);
                    return Ok(seq);
                }
                Ok(_) => return Err("@err-unexpected".into()),
                Err(CallError::Api(e)) => {
                    self.mls()?.discard_pending_commit(group).map_err(mls_err)?;
                    self.persist(Batch::default()).await?;
                    if !matches!(e.code, ErrorCode::StaleEpoch { .. }) {
                        return Err(e.message);
                    }
                }
                Err(e) => return Err(api_message(e)),
            }
        }
        Err("@err-chat-busy".into())
    }

    pub(super) async fn commit_pending_leaves(&mut self, group: GroupId) -> Result<(), String> {
        let me = self.me()?;
        let leavers = self.db.chats.get(&group).map(|c| c.leavers.clone()).unwrap_or_default();
        let mls = self.mls()?;
        if !mls.is_active(group) {
            return Ok(());
        }
        let Ok(policy) = mls.policy(group) else { return Ok(()) };
        let manager = policy.role(&me).can_manage_members();
        let bundle = match mls.commit_pending_proposals(group) {
            Ok(Some(bundle)) => Some(bundle),
            Ok(None) | Err(_) if !manager => None,
            Ok(None) | Err(_) => {
                let members: Vec<AccountId> =
                    mls.members(group).map(|m| m.into_iter().map(|(id, _)| id.account).collect()).unwrap_or_default();
                let still_here: Vec<AccountId> = leavers.into_iter().filter(|a| members.contains(a)).collect();
                if still_here.is_empty() { None } else { mls.remove_members(group, &still_here).ok() }
            }
        };
        let Some(bundle) = bundle else { return Ok(()) };
        self.persist(Batch::default()).await?;
        match self.call(commit_request(group, &bundle)).await {
            Ok(Response::Stored { seq }) => {
                self.mls()?.merge_pending_commit(group).map_err(mls_err)?;
                let removed: Vec<AccountId> = bundle.removed.iter().map(|m| m.account).collect();
                let mut batch = Batch::default();
                batch.history(group, own_entry(seq, me, HistoryBody::System(SystemEvent::RemovedLeavers)));
                if let Some(mut chat) = self.db.chats.get(&group).cloned() {
                    chat.leavers.retain(|a| !removed.contains(a));
                    batch.chat(group, chat);
                }
                self.persist(batch).await?;
                self.publish_chat(group);
                self.refresh_chat(group).await;
            }
            Ok(_) => return Err("@err-unexpected".into()),
            Err(CallError::Api(_)) => {
                let _ = self.mls()?.discard_pending_commit(group);
                self.persist(Batch::default()).await?;
            }
            Err(e) => return Err(api_message(e)),
        }
        Ok(())
    }
}

/// A history entry for something this device did, stored by the node as `seq`.
pub(super) fn own_entry(seq: u64, me: AccountId, body: HistoryBody) -> HistoryEntry {
    HistoryEntry { seq, sender: me, sent_at_ms: now_ms(), stored_at_ms: now_ms(), own: true, body }
}
