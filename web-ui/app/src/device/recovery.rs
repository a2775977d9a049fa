//! Recovery files: every stored pair, sealed with a passphrase; restored before registering
//! (the page then reloads, and `veche_device::Device::load` migrates what older versions wrote).

use super::{Device, now_ms, store};

fn sealing(e: impl std::fmt::Display) -> String {
    format!("@err-mls|{e}")
}

pub(super) async fn export(passphrase: &str) -> Result<Vec<u8>, String> {
    let entries = store::load().await.map_err(|e| format!("@err-storage|{e}"))?;
    let payload = postcard::to_allocvec(&entries).map_err(sealing)?;
    let mut salt = [0u8; veche_ui_core::recovery::SALT_LEN];
    let mut nonce = [0u8; veche_ui_core::recovery::NONCE_LEN];
    getrandom::fill(&mut salt).map_err(sealing)?;
    getrandom::fill(&mut nonce).map_err(sealing)?;
    veche_ui_core::recovery::seal(passphrase, &payload, salt, nonce).map_err(|_| "@err-weak-passphrase".to_string())
}

impl Device {
    pub(super) async fn import(&mut self, file: &[u8], passphrase: &str) -> Result<(), String> {
        if self.core.account().is_some() {
            return Err("@err-has-account".into());
        }
        let payload = veche_ui_core::recovery::open(passphrase, file).map_err(|e| match e {
            veche_ui_core::recovery::RecoveryError::NotARecoveryFile => "@err-not-recovery-file".to_string(),
            _ => "@err-wrong-passphrase".to_string(),
        })?;
        let entries: Vec<(String, Vec<u8>)> =
            postcard::from_bytes(&payload).map_err(|_| "@err-not-recovery-file".to_string())?;
        // Opened as the page will open it after the reload (migrating an older format).
        let opened = veche_device::Device::load(entries.clone(), now_ms()).ok();
        let node_id = opened.as_ref().and_then(|d| d.model().device.as_ref().map(|r| r.node_id.clone()));
        let node_id = node_id.ok_or_else(|| "@err-not-recovery-file".to_string())?;
        self.connect().await;
        if let Some(conn) = self.conn.as_ref()
            && conn.hello.node_id != node_id
        {
            return Err("@err-other-node".into());
        }
        store::restore(entries).await.map_err(|e| format!("@err-storage|{e}"))?;
        if let Some(window) = web_sys::window() {
            let _ = window.location().reload();
        }
        Ok(())
    }
}
