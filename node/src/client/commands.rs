//! The client's commands: each one opens the device, connects, waits for the core to sign in and
//! catch up, runs one core command (or a request), and prints the result.

use super::ClientArgs;
use super::conn::Connection;
use super::driver::{Driver, now_ms};
use super::store::Store;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use veche_device::{Command as Core, Device, HistoryBody, HistoryEntry, Outcome, SystemEvent};
use veche_protocol::content::{Body, CallRecord};
use veche_protocol::ids::{AccountId, GroupId, InviteId, Retention, Role};
use veche_protocol::link::InviteLink;
use veche_protocol::wire::{ChatInfo, InviteToken, Request, Response};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create this device's key and register it on the node.
    Register {
        #[arg(long)]
        name: String,
        /// An invite link (needed when the node admits by invite; the admin link makes you admin).
        #[arg(long)]
        invite: Option<String>,
    },
    /// Show this device's account.
    Whoami,
    /// Group chats.
    #[command(subcommand)]
    Group(GroupCommand),
    /// List chats.
    Chats,
    /// Invite links.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Join a chat by invite link.
    Join { link: String },
    /// Start (or open) the direct chat with a member.
    Dm { member: AccountId },
    /// Add a member to a chat (owner/admin).
    Add { chat: String, member: AccountId },
    /// Send a text message (or, with --stdin, one message per input line).
    Send {
        chat: String,
        text: Option<String>,
        #[arg(long)]
        stdin: bool,
    },
    /// Print a chat's messages.
    Read {
        chat: String,
        /// Only messages after this sequence number.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// Keep printing new messages as they arrive.
        #[arg(long)]
        follow: bool,
        /// With --follow: exit after this many seconds without a new message.
        #[arg(long)]
        idle_exit: Option<u64>,
    },
    /// List a chat's members.
    Members { chat: String },
    /// Remove a member (owner/admin).
    Remove { chat: String, member: AccountId },
    /// Leave a chat.
    Leave { chat: String },
    /// Change a member's role (owner).
    Role { chat: String, member: AccountId, role: Role },
    /// How long the node keeps the chat's ciphertext: forever, <N>d, until-fetched (owner).
    Retention { chat: String, policy: Retention },
    /// Node administration (node admins).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Whether members of linked nodes can find your account: open or closed (the default).
    Visibility { visibility: Visibility },
    /// Open accounts and open groups of this node and its linked nodes.
    Directory,
}

/// Findable by members of linked nodes, or not.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Visibility {
    Open,
    Closed,
}

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Other Veche nodes found on the LAN (mDNS), and whether a connection proved their id.
    Nearby,
    /// Links with other nodes: linked, waiting for them, waiting for us.
    Links,
    /// Approve a link: a nearby node's peer id, or an address `<multiaddr>/p2p/<peer id>`.
    Link { target: String },
    /// Remove a link.
    Unlink { peer_id: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// Create a group chat; you are its owner.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Rename a group chat and/or change its description (owner/admin).
    Update {
        chat: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Whether members of linked nodes can find the group: open or closed (the default; owner).
    Visibility { chat: String, visibility: Visibility },
}

#[derive(Debug, clap::Subcommand)]
pub enum InviteCommand {
    /// Create an invite link to a chat.
    Create {
        chat: String,
        /// How many people may join with it.
        #[arg(long)]
        uses: Option<u32>,
        /// How long it stays valid, e.g. 1h, 7d.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// Create an invite link to this node, for someone to register (node admins).
    Node {
        /// How many people may register with it.
        #[arg(long)]
        uses: Option<u32>,
        /// How long it stays valid, e.g. 1h, 7d.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// Revoke an invite link by its id.
    Revoke { id: InviteId },
    /// List a chat's invite links.
    List { chat: String },
}

fn print(json_mode: bool, value: Value, human: impl FnOnce() -> String) {
    if json_mode {
        println!("{value}");
    } else {
        println!("{}", human());
    }
}

pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let json_mode = args.json;
    let dir = args.state.clone().unwrap_or_else(|| {
        dirs::data_dir().map(|d| d.join("veche-client")).unwrap_or_else(|| std::path::PathBuf::from("veche-client"))
    });
    let (store, entries) = Store::open(&dir)?;
    let device = Device::load(entries, now_ms()).context("opening the client state")?;
    let mut d = Driver::new(device, store);
    if let Command::Register { name, invite } = &args.command {
        return register(d, args.node.as_deref(), name, invite.as_deref(), args.accept_fingerprint, json_mode).await;
    }
    let node_url = node_url(&d)?;
    let trust = match d.store.tls_pin()? {
        Some(pin) => super::tls::Trust::Pinned(pin),
        None => super::tls::Trust::System,
    };
    let conn = Connection::open(&node_url, trust).await?;
    d.connected(conn);
    d.synced().await?;
    match args.command {
        Command::Register { .. } => unreachable!("handled above"),
        Command::Whoami => {
            let record = d.device.model().device.clone().context("no device")?;
            let Response::SignedIn(account) = d.request(Request::Me).await? else { bail!("unexpected answer") };
            print(
                json_mode,
                json!({"account": account.account.to_hex(), "device": record.device.to_hex(), "name": account.display_name,
                       "node_admin": account.node_admin, "node": node_url, "node_id": record.node_id}),
                || format!("{} ({}) on {}", account.display_name, account.account, node_url),
            );
        }
        Command::Group(GroupCommand::Create { name, description }) => {
            let group = match d.run(Core::CreateGroup { name, description }).await? {
                Outcome::Group(group) => group,
                other => bail!("unexpected outcome {other:?}"),
            };
            let name = d.device.model().chats.get(&group).map(|c| c.name.clone()).unwrap_or_default();
            print(json_mode, json!({"chat": group.to_hex(), "name": name}), || format!("created {group} {name}"));
        }
        Command::Group(GroupCommand::Update { chat, name, description }) => {
            let group = resolve_chat(&d, &chat)?;
            let current = chat_info(&mut d, group).await?;
            let name = name.unwrap_or(current.name);
            let description = description.unwrap_or(current.description);
            d.run(Core::UpdateChat { group, name, description }).await?;
            let info = chat_info(&mut d, group).await?;
            print(
                json_mode,
                json!({"chat": group.to_hex(), "name": info.name, "description": info.description}),
                || format!("{} is now {}", group, info.name),
            );
        }
        Command::Admin(AdminCommand::Nearby) => {
            let Response::Nearby(nodes) = d.request(Request::Nearby).await? else { bail!("unexpected answer") };
            let list: Vec<Value> = nodes
                .iter()
                .map(|n| {
                    json!({"peer_id": n.peer_id, "name": n.name, "http_port": n.http_port, "addrs": n.addrs,
                           "verified": n.verified, "connected": n.connected, "last_seen_ms": n.last_seen_ms})
                })
                .collect();
            print(json_mode, json!({"nearby": list}), || {
                nodes
                    .iter()
                    .map(|n| format!("{} {} {}", n.peer_id, n.name, if n.verified { "verified" } else { "unverified" }))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Admin(AdminCommand::Links) => {
            let Response::Links(info) = d.request(Request::Links).await? else { bail!("unexpected answer") };
            let list: Vec<Value> = info.links.iter().map(link_json).collect();
            print(json_mode, json!({"own_addrs": info.own_addrs, "links": list}), || {
                let mut lines = vec![format!("this node: {}", info.own_addrs.join(" "))];
                lines.extend(info.links.iter().map(|l| format!("{} {} {:?}", l.peer_id, l.name, l.state)));
                lines.join("\n")
            });
        }
        Command::Admin(AdminCommand::Link { target }) => {
            let Response::Link(link) = d.request(Request::Link { target }).await? else { bail!("unexpected answer") };
            print(json_mode, link_json(&link), || format!("{} {} {:?}", link.peer_id, link.name, link.state));
        }
        Command::Admin(AdminCommand::Unlink { peer_id }) => {
            d.request(Request::Unlink { peer_id: peer_id.clone() }).await?;
            print(json_mode, json!({"unlinked": peer_id}), || format!("unlinked {peer_id}"));
        }
        Command::Visibility { visibility } => {
            let open = matches!(visibility, Visibility::Open);
            d.request(Request::SetAccountOpen { open }).await?;
            print(json_mode, json!({"open": open}), || {
                format!("your account is {}", if open { "open" } else { "closed" })
            });
        }
        Command::Group(GroupCommand::Visibility { chat, visibility }) => {
            let group = resolve_chat(&d, &chat)?;
            let open = matches!(visibility, Visibility::Open);
            d.request(Request::SetChatOpen { group, open }).await?;
            print(json_mode, json!({"chat": group.to_hex(), "open": open}), || {
                format!("{group} is {}", if open { "open" } else { "closed" })
            });
        }
        Command::Directory => {
            let Response::Directory(directory) = d.request(Request::Directory).await? else {
                bail!("unexpected answer")
            };
            let accounts: Vec<Value> = directory
                .accounts
                .iter()
                .map(|a| json!({"account": a.account.to_hex(), "name": a.display_name, "home_node": a.home_node, "home_name": a.home_name}))
                .collect();
            let groups: Vec<Value> = directory
                .groups
                .iter()
                .map(|g| json!({"chat": g.group.to_hex(), "name": g.name, "description": g.description, "members": g.member_count, "home_node": g.home_node, "home_name": g.home_name}))
                .collect();
            print(json_mode, json!({"accounts": accounts, "groups": groups}), || {
                let mut lines: Vec<String> = directory
                    .accounts
                    .iter()
                    .map(|a| format!("{} {} ({})", a.account, a.display_name, a.home_name))
                    .collect();
                lines.extend(
                    directory
                        .groups
                        .iter()
                        .map(|g| format!("{} {} — {} members ({})", g.group, g.name, g.member_count, g.home_name)),
                );
                lines.join("\n")
            });
        }
        Command::Chats => {
            let Response::Chats(chats) = d.request(Request::Chats).await? else { bail!("unexpected answer") };
            let list: Vec<Value> = chats.iter().map(chat_json).collect();
            print(json_mode, json!({"chats": list}), || {
                chats
                    .iter()
                    .map(|c| format!("{} {:?} {} ({} members)", c.group, c.kind, c.name, c.members.len()))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Invite(command @ (InviteCommand::Create { .. } | InviteCommand::Node { .. })) => {
            let (group, uses, expires) = match command {
                InviteCommand::Create { chat, uses, expires } => (Some(resolve_chat(&d, &chat)?), uses, expires),
                InviteCommand::Node { uses, expires } => (None, uses, expires),
                _ => unreachable!("matched above"),
            };
            let request =
                Request::CreateInvite { group, max_uses: uses, expires_in_secs: expires.map(|d| d.as_secs().max(1)) };
            let Response::InviteCreated { invite, secret } = d.request(request).await? else {
                bail!("unexpected answer")
            };
            let node_url = node_url.clone();
            let fingerprint = d.store.tls_pin()?;
            let link = InviteLink { node_url, invite: invite.invite, secret, group, fingerprint }.to_url();
            print(
                json_mode,
                json!({"id": invite.invite.to_hex(), "link": link, "uses": invite.max_uses, "expires_at_ms": invite.expires_at_ms}),
                || link.clone(),
            );
        }
        Command::Invite(InviteCommand::Revoke { id }) => {
            d.request(Request::RevokeInvite { invite: id }).await?;
            print(json_mode, json!({"revoked": id.to_hex()}), || format!("revoked {id}"));
        }
        Command::Invite(InviteCommand::List { chat }) => {
            let group = resolve_chat(&d, &chat)?;
            let Response::Invites(invites) = d.request(Request::Invites { group }).await? else {
                bail!("unexpected answer")
            };
            let list: Vec<Value> = invites
                .iter()
                .map(|i| json!({"id": i.invite.to_hex(), "uses": i.uses, "max_uses": i.max_uses, "expires_at_ms": i.expires_at_ms, "revoked": i.revoked}))
                .collect();
            print(json_mode, json!({"invites": list}), || {
                invites
                    .iter()
                    .map(|i| format!("{} used {}/{:?} revoked={}", i.invite, i.uses, i.max_uses, i.revoked))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Join { link } => {
            let (group, seq) = match d.run(Core::Join { link }).await? {
                Outcome::Joined { group, seq } => (group, seq),
                other => bail!("unexpected outcome {other:?}"),
            };
            print(json_mode, json!({"chat": group.to_hex(), "seq": seq}), || format!("joined {group}"));
        }
        Command::Dm { member } => {
            let group = match d.run(Core::DirectChat { member }).await? {
                Outcome::Group(group) => group,
                other => bail!("unexpected outcome {other:?}"),
            };
            print(json_mode, json!({"chat": group.to_hex()}), || format!("direct chat {group}"));
        }
        Command::Add { chat, member } => {
            let group = resolve_chat(&d, &chat)?;
            let seq = stored(d.run(Core::Add { group, member }).await?)?;
            print(json_mode, json!({"chat": group.to_hex(), "added": member.to_hex(), "seq": seq}), || {
                format!("added {member}")
            });
        }
        Command::Send { chat, text, stdin } => {
            let group = resolve_chat(&d, &chat)?;
            if stdin {
                // One message per line; each stored message is printed at once, so a script sees
                // exactly which messages the node acknowledged even if the run is cut short.
                for line in std::io::stdin().lines() {
                    let line = line?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let seq = stored(d.run(Core::Send { group, body: Body::Text { text: line } }).await?)?;
                    print(json_mode, json!({"chat": group.to_hex(), "seq": seq}), || format!("sent #{seq}"));
                }
            } else {
                let text = text.context("give the text to send (or --stdin)")?;
                let seq = stored(d.run(Core::Send { group, body: Body::Text { text } }).await?)?;
                print(json_mode, json!({"chat": group.to_hex(), "seq": seq}), || format!("sent #{seq}"));
            }
        }
        Command::Read { chat, since, follow, idle_exit } => {
            let group = resolve_chat(&d, &chat)?;
            let mut names = HashMap::new();
            let mut last = print_history(&mut d, group, since, json_mode, &mut names).await?;
            if follow {
                // The core keeps processing live events; whatever reaches the history is printed.
                let idle = idle_exit.map(Duration::from_secs);
                let mut deadline = idle.map(|i| tokio::time::Instant::now() + i);
                loop {
                    match deadline {
                        Some(at) => match tokio::time::timeout_at(at, d.step()).await {
                            Ok(stepped) => stepped?,
                            Err(_) => break,
                        },
                        None => d.step().await?,
                    }
                    d.drain_events();
                    let newest = print_history(&mut d, group, last, json_mode, &mut names).await?;
                    if newest != last {
                        deadline = idle.map(|i| tokio::time::Instant::now() + i);
                    }
                    last = newest;
                }
            }
        }
        Command::Members { chat } => {
            let group = resolve_chat(&d, &chat)?;
            let info = chat_info(&mut d, group).await?;
            let list: Vec<Value> = info
                .members
                .iter()
                .map(|m| json!({"account": m.account.to_hex(), "name": m.display_name, "role": m.role.as_str(), "home_node": m.home_node, "home_name": m.home_name}))
                .collect();
            print(json_mode, json!({"chat": group.to_hex(), "members": list}), || {
                info.members
                    .iter()
                    .map(|m| format!("{} {} {}", m.account, m.role.as_str(), m.display_name))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Remove { chat, member } => {
            let group = resolve_chat(&d, &chat)?;
            let seq = stored(d.run(Core::Remove { group, member }).await?)?;
            print(json_mode, json!({"chat": group.to_hex(), "removed": member.to_hex(), "seq": seq}), || {
                format!("removed {member}")
            });
        }
        Command::Leave { chat } => {
            let group = resolve_chat(&d, &chat)?;
            let seq = stored(d.run(Core::Leave { group }).await?)?;
            print(json_mode, json!({"chat": group.to_hex(), "left": true, "seq": seq}), || {
                format!("left {group}; an admin's device completes the removal")
            });
        }
        Command::Role { chat, member, role } => {
            let group = resolve_chat(&d, &chat)?;
            let seq = stored(d.run(Core::SetRole { group, member, role }).await?)?;
            print(
                json_mode,
                json!({"chat": group.to_hex(), "member": member.to_hex(), "role": role.as_str(), "seq": seq}),
                || format!("{member} is now {}", role.as_str()),
            );
        }
        Command::Retention { chat, policy } => {
            let group = resolve_chat(&d, &chat)?;
            d.run(Core::SetRetention { group, retention: policy }).await?;
            print(json_mode, json!({"chat": group.to_hex(), "retention": policy.to_string()}), || {
                format!("retention {policy}")
            });
        }
    }
    Ok(())
}

fn stored(outcome: Outcome) -> anyhow::Result<u64> {
    match outcome {
        Outcome::Stored(seq) => Ok(seq),
        other => bail!("unexpected outcome {other:?}"),
    }
}

/// The URL of the node this device registered on.
fn node_url(d: &Driver) -> anyhow::Result<String> {
    let model = d.device.model();
    let record = model.device.as_ref().context("this state dir has no registered device; run `register` first")?;
    record.node_url.clone().context("the device record has no node URL")
}

async fn chat_info(d: &mut Driver, group: GroupId) -> anyhow::Result<ChatInfo> {
    match d.request(Request::Chat { group }).await? {
        Response::Chat(info) => Ok(info),
        _ => bail!("unexpected answer"),
    }
}

fn link_json(l: &veche_protocol::wire::LinkInfo) -> Value {
    let state = match l.state {
        veche_protocol::wire::LinkState::Linked => "linked",
        veche_protocol::wire::LinkState::WaitingForThem => "waiting-for-them",
        veche_protocol::wire::LinkState::WaitingForUs => "waiting-for-us",
    };
    json!({"peer_id": l.peer_id, "name": l.name, "state": state, "addrs": l.addrs, "connected": l.connected,
           "last_seen_ms": l.last_seen_ms, "queued": l.queued})
}

fn chat_json(c: &ChatInfo) -> Value {
    json!({
        "chat": c.group.to_hex(), "kind": format!("{:?}", c.kind).to_lowercase(), "name": c.name,
        "description": c.description, "epoch": c.epoch,
        "head": c.head, "retention": c.retention.to_string(), "home_node": c.home_node,
        "members": c.members.iter().map(|m| json!({"account": m.account.to_hex(), "name": m.display_name, "role": m.role.as_str(), "home_node": m.home_node, "home_name": m.home_name})).collect::<Vec<_>>(),
    })
}

/// A chat by id, or by its unique name among this device's chats.
/// A chat by id, or by its unique name among this device's chats.
fn resolve_chat(d: &Driver, chat: &str) -> anyhow::Result<GroupId> {
    let model = d.device.model();
    if let Ok(group) = chat.parse::<GroupId>() {
        if !model.chats.contains_key(&group) {
            bail!("this device is not in chat {group}");
        }
        return Ok(group);
    }
    let matches: Vec<GroupId> =
        model.chats.iter().filter(|(_, c)| c.name == chat && c.active).map(|(g, _)| *g).collect();
    match matches.as_slice() {
        [group] => Ok(*group),
        [] => bail!("no chat named {chat:?} (use its id)"),
        _ => bail!("several chats are named {chat:?}: use the id"),
    }
}

async fn register(
    mut d: Driver,
    node: Option<&str>,
    name: &str,
    invite: Option<&str>,
    accept_fingerprint: bool,
    json_mode: bool,
) -> anyhow::Result<()> {
    if d.device.model().device.is_some() {
        bail!("this state dir already holds a registered device");
    }
    let link = invite.map(InviteLink::parse).transpose()?;
    let node_url = node
        .map(str::to_string)
        .or_else(|| link.as_ref().map(|l| l.node_url.clone()))
        .context("give --node URL (or an --invite link)")?;
    let node_url = node_url.trim_end_matches('/').to_string();
    let trust = match (link.as_ref().and_then(|l| l.fingerprint), accept_fingerprint) {
        (Some(pin), _) => super::tls::Trust::Pinned(pin),
        (None, true) => super::tls::Trust::FirstUse,
        (None, false) => super::tls::Trust::System,
    };
    let conn = Connection::open(&node_url, trust).await?;
    if let Some(anchor) = conn.anchor {
        d.store.set_tls_pin(&anchor)?;
    }
    d.connected(conn);
    let token = link.map(|l| InviteToken { invite: l.invite, secret: l.secret });
    d.run(Core::Register { name: name.to_string(), invite: token, node_url: Some(node_url) }).await?;
    let record = d.device.model().device.clone().context("registered, yet no device record")?;
    print(
        json_mode,
        json!({"account": record.account.to_hex(), "device": record.device.to_hex(), "name": record.display_name,
               "node_admin": record.node_admin, "node_id": record.node_id}),
        || {
            format!(
                "registered {} as {}{}",
                record.display_name,
                record.account,
                if record.node_admin { " (node admin)" } else { "" }
            )
        },
    );
    Ok(())
}

/// Prints the chat's history after `after`; returns the last sequence number printed.
async fn print_history(
    d: &mut Driver,
    group: GroupId,
    after: u64,
    json_mode: bool,
    names: &mut HashMap<AccountId, String>,
) -> anyhow::Result<u64> {
    let entries: Vec<HistoryEntry> = d.device.model().history_after(group, after).cloned().collect();
    let unknown: Vec<AccountId> = {
        let model = d.device.model();
        let mut unknown: Vec<AccountId> = entries
            .iter()
            .map(|e| e.sender)
            .filter(|a| !names.contains_key(a) && !model.profiles.contains_key(a))
            .collect();
        unknown.sort();
        unknown.dedup();
        unknown
    };
    if !unknown.is_empty()
        && let Ok(Response::Profiles(profiles)) = d.request(Request::Profiles { accounts: unknown }).await
    {
        for p in profiles {
            names.insert(p.account, p.display_name);
        }
    }
    let mut last = after;
    for entry in &entries {
        let name = match names.get(&entry.sender) {
            Some(name) => name.clone(),
            None => d.device.model().profiles.get(&entry.sender).cloned().unwrap_or_else(|| "?".into()),
        };
        print_entry(entry, &name, json_mode);
        last = entry.seq;
    }
    Ok(last)
}

fn short(account: &AccountId) -> String {
    account.to_hex()[..12].to_string()
}

fn list(accounts: &[AccountId]) -> String {
    accounts.iter().map(short).collect::<Vec<_>>().join(", ")
}

/// A history entry's kind and English text.
fn render(body: &HistoryBody) -> (&'static str, String) {
    match body {
        HistoryBody::Text(text) => ("text", text.clone()),
        HistoryBody::System(SystemEvent::Unreadable) => ("unreadable", "a message this device could not read".into()),
        HistoryBody::System(SystemEvent::Legacy(text)) => match text.strip_prefix("unreadable: ") {
            Some(detail) => ("unreadable", detail.to_string()),
            None => ("system", text.clone()),
        },
        HistoryBody::System(event) => ("system", system_text(event)),
        HistoryBody::Call(CallRecord::Missed) => ("system", "missed call".into()),
        HistoryBody::Call(CallRecord::Declined) => ("system", "call declined".into()),
        HistoryBody::Whiteboard(items) => ("system", format!("whiteboard saved ({} items)", items.len())),
        HistoryBody::Forged { claimed } => (
            "forged",
            format!("warning: the node delivered this as a message from {}, but it is not from them", short(claimed)),
        ),
    }
}

fn system_text(event: &SystemEvent) -> String {
    match event {
        SystemEvent::Created => "created the chat".into(),
        SystemEvent::JoinedByLink(account) => format!("{} joined by link", short(account)),
        SystemEvent::Added(added) => format!("added {}", list(added)),
        SystemEvent::Removed(removed) => format!("removed {}", list(removed)),
        SystemEvent::Membership { added, removed } => format!("added {}; removed {}", list(added), list(removed)),
        SystemEvent::RoleChanged(account) => format!("changed the role of {}", short(account)),
        SystemEvent::RolesChanged { by: Some(by) } => format!("{} changed roles", short(by)),
        SystemEvent::RolesChanged { by: None } => "roles changed".into(),
        SystemEvent::Left => "left the chat".into(),
        SystemEvent::RemovedLeavers => "removed members who left".into(),
        SystemEvent::Expired(missing) => {
            format!("{missing} earlier messages expired on the node before this device fetched them")
        }
        SystemEvent::Unreadable => "a message this device could not read".into(),
        SystemEvent::KeysRefreshed => "refreshed this device's keys".into(),
        SystemEvent::Legacy(text) => text.clone(),
        SystemEvent::Resynced { skipped } => format!(
            "this device fell behind in this chat and rejoined it: {skipped} earlier entries could not be decrypted \
             on this device"
        ),
        SystemEvent::DeviceRejoined(account) => {
            format!("{}'s device fell behind and rejoined the chat", short(account))
        }
    }
}

fn print_entry(entry: &HistoryEntry, name: &str, json_mode: bool) {
    let (kind, text) = render(&entry.body);
    if json_mode {
        println!(
            "{}",
            json!({"seq": entry.seq, "sender": entry.sender.to_hex(), "sender_name": name, "own": entry.own, "type": kind,
                   "text": text, "sent_at_ms": entry.sent_at_ms, "stored_at_ms": entry.stored_at_ms})
        );
    } else {
        println!("#{} {}: {}{}", entry.seq, name, if kind == "text" { "" } else { "* " }, text);
    }
}
