//! A node on loopback with its admin registered (a native client), as the federation tests set
//! them up, and the address another admin pastes to link with it.

use anyhow::Context;
use serde_json::Value;

use crate::{Client, Node, TempDir};

pub struct Site {
    pub node: Node,
    pub admin: Client,
}

impl Site {
    /// Starts a node in `tmp/<name>` (mDNS off, then `extra`) and registers "Admin <name>" with
    /// its admin link.
    pub fn start(tmp: &TempDir, name: &str, extra: &[&str]) -> anyhow::Result<Site> {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir)?;
        let mut args = vec!["--mdns", "false"];
        args.extend_from_slice(extra);
        let node = Node::start(&dir, &args)?;
        let admin = Client::new(&dir, "admin", &node.url);
        let link = node.admin_link.clone().context("admin link")?;
        admin.run(&["register", "--name", &format!("Admin {name}"), "--invite", &link])?;
        Ok(Site { node, admin })
    }

    /// The loopback QUIC address another admin pastes.
    pub fn address(&self) -> anyhow::Result<String> {
        loopback_quic(&self.admin)
    }
}

/// The node's loopback QUIC address (`/ip4/127.0.0.1/udp/…/p2p/<id>`), as its admin sees it.
pub fn loopback_quic(admin: &Client) -> anyhow::Result<String> {
    let own = admin.run(&["admin", "links"])?["own_addrs"].as_array().cloned().unwrap_or_default();
    own.iter()
        .filter_map(Value::as_str)
        .find(|a| a.starts_with("/ip4/127.0.0.1/udp/"))
        .map(str::to_string)
        .with_context(|| format!("no loopback QUIC address in {own:?}"))
}
