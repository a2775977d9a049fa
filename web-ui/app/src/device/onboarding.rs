//! Becoming a device: registering (with an invite link when the node wants one), invite
//! previews, and restoring from a recovery file.

use super::*;

impl Device {
    pub(super) async fn register(&mut self, name: &str, link: Option<&str>) -> Result<(), String> {
        if self.db.device.is_some() {
            return Ok(());
        }
        let name = veche_protocol::validate::display_name(name).map_err(|e| format!("@err-bad-name|{e}"))?;
        let token = match link {
            Some(link) => {
                let link = InviteLink::parse(link).map_err(|_| "@err-invite-invalid".to_string())?;
                Some(InviteToken { invite: link.invite, secret: link.secret })
            }
            None => None,
        };
        if self.conn.is_none() {
            self.connect().await;
        }
        // Reuse the key of an interrupted registration: the node may have accepted it.
        let secret = match self.db.pending_secret {
            Some(secret) => secret,
            None => {
                let secret = veche_mls::Client::generate_secret();
                let mut batch = Batch::default();
                batch.pending_secret(Some(secret));
                self.persist(batch).await?;
                secret
            }
        };
        let mut mls = veche_mls::Client::new(secret);
        let identity = mls.identity();
        let (node_id, challenge) = match self.conn.as_ref() {
            Some(conn) => (conn.hello.node_id.clone(), conn.hello.challenge),
            None => return Err("@err-offline".into()),
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&secret);
        let payload =
            veche_protocol::auth::register_payload(&node_id, &challenge, &identity.device, &identity.account, &name);
        let signature = veche_protocol::auth::sign(&key, &payload);
        let request = Request::Register {
            device: identity.device,
            account: identity.account,
            display_name: name.clone(),
            invite: token,
            signature,
        };
        let account = match self.call(request).await {
            Ok(Response::SignedIn(account)) => account,
            Ok(_) => return Err("@err-unexpected".into()),
            Err(CallError::Api(e)) if e.code == ErrorCode::Conflict => {
                let payload = veche_protocol::auth::sign_in_payload(&node_id, &challenge, &identity.device);
                let signature = veche_protocol::auth::sign(&key, &payload);
                match self.call(Request::SignIn { device: identity.device, signature }).await {
                    Ok(Response::SignedIn(account)) => account,
                    Ok(_) => return Err("@err-unexpected".into()),
                    Err(e) => return Err(api_message(e)),
                }
            }
            Err(e) => return Err(api_message(e)),
        };
        let packages = mls.key_packages(FIRST_KEY_PACKAGES).map_err(mls_err)?;
        let last_resort = mls.last_resort_key_package().map_err(mls_err)?;
        // The packages' private keys are saved before the packages leave the device.
        let record = DeviceRecord {
            secret,
            account: account.account,
            device: account.device,
            node_id,
            display_name: account.display_name.clone(),
            node_admin: account.node_admin,
        };
        self.mls = Some(mls);
        let mut batch = Batch::default();
        batch.device(record).pending_secret(None).profile(account.account, account.display_name.clone());
        if let Err(e) = self.persist(batch).await {
            self.mls = None;
            return Err(e);
        }
        self.call(Request::PublishKeyPackages { packages, last_resort: Some(last_resort) })
            .await
            .map_err(api_message)?;
        self.signed_in = true;
        self.ui.names.update(|n| {
            n.insert(account.account, account.display_name.clone());
        });
        self.ui.me.set(Some(Me {
            account: account.account,
            name: account.display_name,
            node_admin: account.node_admin,
            guest_of: account.guest_of,
        }));
        self.ui.phase.set(Phase::Ready);
        Ok(())
    }

    pub(super) async fn preview(&mut self, link: &str) -> Result<InvitePreview, String> {
        let link = InviteLink::parse(link).map_err(|_| "@err-invite-invalid".to_string())?;
        if self.conn.is_none() {
            self.connect().await;
        }
        let token = InviteToken { invite: link.invite, secret: link.secret };
        match self.call(Request::InvitePreview { token }).await {
            Ok(Response::InvitePreview(preview)) => Ok(preview),
            Ok(_) => Err("@err-unexpected".into()),
            Err(e) => Err(api_message(e)),
        }
    }

    pub(super) async fn import(&mut self, file: &[u8], passphrase: &str) -> Result<(), String> {
        if self.db.device.is_some() {
            return Err("@err-has-account".into());
        }
        let payload = veche_ui_core::recovery::open(passphrase, file).map_err(|e| match e {
            veche_ui_core::recovery::RecoveryError::NotARecoveryFile => "@err-not-recovery-file".to_string(),
            _ => "@err-wrong-passphrase".to_string(),
        })?;
        let entries: Vec<(String, Vec<u8>)> =
            postcard::from_bytes(&payload).map_err(|_| "@err-not-recovery-file".to_string())?;
        let record: DeviceRecord = entries
            .iter()
            .find(|(k, _)| k == "device")
            .and_then(|(_, v)| postcard::from_bytes(v).ok())
            .ok_or_else(|| "@err-not-recovery-file".to_string())?;
        if self.conn.is_none() {
            self.connect().await;
        }
        if let Some(conn) = self.conn.as_ref()
            && conn.hello.node_id != record.node_id
        {
            return Err("@err-other-node".into());
        }
        Db::restore(entries).await?;
        if let Some(window) = web_sys::window() {
            let _ = window.location().reload();
        }
        Ok(())
    }

    /// A restored state may be older than what the device did before it was lost: its sender
    /// ratchets may have been used since. Before anything is encrypted, every chat moves to a
    /// new epoch by this device's own commit, whose secrets the old state never held.
    pub(super) async fn refresh_keys_after_restore(&mut self) -> Result<(), String> {
        let groups: Vec<GroupId> = self.db.chats.iter().filter(|(_, c)| c.active).map(|(g, _)| *g).collect();
        for group in groups {
            if let Err(e) = self.commit(group, SystemEvent::KeysRefreshed, move |mls| mls.self_update(group)).await {
                if !self.signed_in {
                    return Err(e); // offline: try again on the next connection
                }
                // The old state cannot follow this chat any more (it missed its own later commits).
                if let Some(mut chat) = self.db.chats.get(&group).cloned() {
                    chat.active = false;
                    let mut batch = Batch::default();
                    batch.chat(group, chat);
                    self.persist(batch).await?;
                    self.publish_chat(group);
                }
            }
        }
        let mut batch = Batch::default();
        batch.restored(false);
        self.persist(batch).await
    }
}

pub(super) async fn export(passphrase: &str) -> Result<Vec<u8>, String> {
    let entries = Db::dump().await?;
    let payload = postcard::to_allocvec(&entries).map_err(mls_err)?;
    let mut salt = [0u8; veche_ui_core::recovery::SALT_LEN];
    let mut nonce = [0u8; veche_ui_core::recovery::NONCE_LEN];
    getrandom::fill(&mut salt).map_err(mls_err)?;
    getrandom::fill(&mut nonce).map_err(mls_err)?;
    veche_ui_core::recovery::seal(passphrase, &payload, salt, nonce).map_err(|_| "@err-weak-passphrase".to_string())
}
