//! Creating, joining and leaving chats, and direct chats.

use super::*;

impl Device {
    pub(super) async fn create_group(&mut self, name: String, description: String) -> Result<GroupId, String> {
        let name = name.trim().to_string();
        if name.is_empty() {
            return Err("@err-group-name".into());
        }
        let group = random_group();
        let group_info = self.mls()?.create_group(group, ChatKind::Group).map_err(mls_err)?;
        self.persist(Batch::default()).await?;
        let request = Request::CreateChat { group, kind: ChatKind::Group, name, description, peer: None, group_info };
        match self.call(request).await {
            Ok(Response::Chat(info)) => {
                self.add_local_chat(&info, 0, Some(SystemEvent::Created)).await?;
                Ok(group)
            }
            Ok(_) => Err("@err-unexpected".into()),
            Err(e) => {
                self.mls()?.forget_group(group).map_err(mls_err)?;
                self.persist(Batch::default()).await?;
                Err(api_message(e))
            }
        }
    }

    pub(super) async fn add_local_chat(
        &mut self,
        info: &ChatInfo,
        processed: u64,
        note: Option<SystemEvent>,
    ) -> Result<(), String> {
        let group = info.group;
        let mut chat = new_local_chat(info.kind, &info.name, processed);
        chat.seen = processed;
        let mut batch = Batch::default();
        batch.chat(group, chat);
        if let Some(note) = note {
            let me = self.me()?;
            batch.history(group, own_entry(0, me, HistoryBody::System(note)));
        }
        self.persist(batch).await?;
        self.apply_info(info.clone());
        self.publish_chat(group);
        Ok(())
    }

    pub(super) async fn join(&mut self, link: &str) -> Result<GroupId, String> {
        let link = InviteLink::parse(link).map_err(|_| "@err-invite-invalid".to_string())?;
        let Some(target) = link.group else { return Err("@err-node-link".into()) };
        if self.db.chats.get(&target).is_some_and(|c| c.active) {
            return Ok(target);
        }
        let token = InviteToken { invite: link.invite, secret: link.secret };
        for _ in 0..MAX_ATTEMPTS {
            let group_info = match self.call(Request::JoinGroupInfo { token: token.clone() }).await {
                Ok(Response::GroupInfo(info)) => info,
                Ok(_) => return Err("@err-unexpected".into()),
                Err(e) => return Err(api_message(e)),
            };
            let (group, bundle) = self.mls()?.join_external(&group_info).map_err(mls_err)?;
            let pending = PendingJoin {
                invite: token.invite,
                secret: token.secret,
                commit: bundle.commit,
                group_info: bundle.group_info,
            };
            let mut batch = Batch::default();
            batch.pending_join(group, pending.clone());
            self.persist(batch).await?;
            match self.finish_join(group, pending).await? {
                Some(_) => {
                    self.sync_chat(group).await?;
                    return Ok(group);
                }
                None => continue,
            }
        }
        Err("@err-chat-busy".into())
    }

    pub(super) async fn finish_join(&mut self, group: GroupId, pending: PendingJoin) -> Result<Option<u64>, String> {
        let token = InviteToken { invite: pending.invite, secret: pending.secret };
        let request = Request::Join { token, commit: pending.commit, group_info: pending.group_info };
        match self.call(request).await {
            Ok(Response::Stored { seq }) => {
                let info = match self.call(Request::Chat { group }).await {
                    Ok(Response::Chat(info)) => info,
                    Ok(_) => return Err("@err-unexpected".into()),
                    Err(e) => return Err(api_message(e)),
                };
                let mut batch = Batch::default();
                batch.remove_pending_join(group);
                self.persist(batch).await?;
                let me = self.me()?;
                self.add_local_chat(&info, seq, Some(SystemEvent::JoinedByLink(me))).await?;
                Ok(Some(seq))
            }
            Ok(_) => Err("@err-unexpected".into()),
            Err(CallError::Api(e)) => {
                self.mls()?.forget_group(group).map_err(mls_err)?;
                let mut batch = Batch::default();
                batch.remove_pending_join(group);
                self.persist(batch).await?;
                match e.code {
                    ErrorCode::StaleEpoch { .. } => Ok(None),
                    _ => Err(e.message),
                }
            }
            Err(e) => Err(api_message(e)),
        }
    }

    pub(super) async fn claim(&mut self, member: AccountId) -> Result<Vec<Vec<u8>>, String> {
        match self.call(Request::ClaimKeyPackages { account: member }).await {
            Ok(Response::KeyPackages(packages)) => Ok(packages),
            Ok(_) => Err("@err-unexpected".into()),
            Err(e) => Err(api_message(e)),
        }
    }

    pub(super) async fn direct_chat(&mut self, member: AccountId) -> Result<GroupId, String> {
        let me = self.me()?;
        if member == me {
            return Err("@err-that-is-you".into());
        }
        let chats = match self.call(Request::Chats).await {
            Ok(Response::Chats(chats)) => chats,
            Ok(_) => return Err("@err-unexpected".into()),
            Err(e) => return Err(api_message(e)),
        };
        let existing = chats.into_iter().find(|c| {
            c.kind == ChatKind::Direct && (c.peer == Some(member) || c.members.iter().any(|m| m.account == member))
        });
        if let Some(existing) = existing {
            let group = existing.group;
            if !existing.members.iter().any(|m| m.account == member) {
                if !self.db.chats.contains_key(&group) {
                    return Err("@err-dm-elsewhere".into());
                }
                let packages = self.claim(member).await?;
                self.commit(group, SystemEvent::Added(vec![member]), move |mls| mls.add_members(group, &packages))
                    .await?;
                self.refresh_chat(group).await;
            }
            return Ok(group);
        }
        let packages = self.claim(member).await?;
        let group = random_group();
        let group_info = self.mls()?.create_group(group, ChatKind::Direct).map_err(mls_err)?;
        self.persist(Batch::default()).await?;
        let request = Request::CreateChat {
            group,
            kind: ChatKind::Direct,
            name: String::new(),
            description: String::new(),
            peer: Some(member),
            group_info,
        };
        let info = match self.call(request).await {
            Ok(Response::Chat(info)) => info,
            Ok(_) => return Err("@err-unexpected".into()),
            Err(e) => {
                self.mls()?.forget_group(group).map_err(mls_err)?;
                self.persist(Batch::default()).await?;
                return Err(api_message(e));
            }
        };
        self.add_local_chat(&info, 0, None).await?;
        self.commit(group, SystemEvent::Added(vec![member]), move |mls| mls.add_members(group, &packages)).await?;
        self.refresh_chat(group).await;
        Ok(group)
    }

    pub(super) async fn leave(&mut self, group: GroupId) -> Result<(), String> {
        self.catch_up(group).await?;
        let proposal = self.mls()?.leave(group).map_err(mls_err)?;
        self.persist(Batch::default()).await?;
        match self.call(Request::Send { group, message: proposal }).await {
            Ok(Response::Stored { seq }) => {
                let me = self.me()?;
                let mut batch = Batch::default();
                batch.history(group, own_entry(seq, me, HistoryBody::System(SystemEvent::Left)));
                if let Some(mut chat) = self.db.chats.get(&group).cloned() {
                    chat.processed = chat.processed.max(seq);
                    batch.chat(group, chat);
                }
                self.persist(batch).await?;
                self.publish_chat(group);
                Ok(())
            }
            Ok(_) => Err("@err-unexpected".into()),
            Err(e) => Err(api_message(e)),
        }
    }
}

pub(super) fn new_local_chat(kind: ChatKind, name: &str, processed: u64) -> LocalChat {
    LocalChat {
        kind,
        name: name.to_string(),
        processed,
        active: true,
        leavers: Vec::new(),
        seen: processed,
        keep_history: true,
    }
}
