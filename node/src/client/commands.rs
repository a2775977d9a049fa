//! The client's commands.

use super::ClientArgs;
use super::conn::{CallError, Connection};
use super::session::Session;
use super::state::{self, DeviceRecord, HistoryBody, HistoryEntry, State};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use veche_protocol::ids::{AccountId, ChatKind, GroupId, InviteId, Retention, Role};
use veche_protocol::link::InviteLink;
use veche_protocol::wire::{ChatInfo, InviteToken, Request, Response};

/// One-time key packages uploaded at registration.
const KEY_PACKAGES: usize = 50;

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
    let state = State::open(&dir)?;
    if let Command::Register { name, invite } = &args.command {
        return register(state, args.node.as_deref(), name, invite.as_deref(), args.accept_fingerprint, json_mode)
            .await;
    }
    let mut session = Session::connect(state).await?;
    session.sync_all().await?;
    match args.command {
        Command::Register { .. } => unreachable!("handled above"),
        Command::Whoami => {
            let device = session.state.device()?.clone();
            let Response::SignedIn(account) = session.call(Request::Me).await? else { bail!("unexpected answer") };
            print(
                json_mode,
                json!({"account": account.account.to_hex(), "device": device.device.to_hex(), "name": account.display_name,
                       "node_admin": account.node_admin, "node": device.node_url, "node_id": device.node_id}),
                || format!("{} ({}) on {}", account.display_name, account.account, device.node_url),
            );
        }
        Command::Group(GroupCommand::Create { name, description }) => {
            let group = random_group()?;
            let group_info = session.state.mls()?.create_group(group, ChatKind::Group)?;
            session.state.persist(|_| Ok(()))?;
            let request = Request::CreateChat {
                group,
                kind: ChatKind::Group,
                name: name.clone(),
                description,
                peer: None,
                group_info,
            };
            let info = match session.call(request).await {
                Ok(Response::Chat(info)) => info,
                Ok(_) => bail!("unexpected answer"),
                Err(e) => {
                    session.state.mls()?.forget_group(group)?;
                    session.state.persist(|_| Ok(()))?;
                    return Err(e.into());
                }
            };
            session.add_local_chat(group, ChatKind::Group, &info.name, 0)?;
            print(json_mode, json!({"chat": group.to_hex(), "name": info.name}), || {
                format!("created {} {}", group, info.name)
            });
        }
        Command::Group(GroupCommand::Update { chat, name, description }) => {
            let group = resolve_chat(&session, &chat)?;
            let current = session.chat_info(group).await?;
            let name = name.unwrap_or(current.name);
            let description = description.unwrap_or(current.description);
            session.call(Request::UpdateChat { group, name, description }).await?;
            let info = session.refresh_chat_name(group).await?;
            print(
                json_mode,
                json!({"chat": group.to_hex(), "name": info.name, "description": info.description}),
                || format!("{} is now {}", group, info.name),
            );
        }
        Command::Admin(AdminCommand::Nearby) => {
            let Response::Nearby(nodes) = session.call(Request::Nearby).await? else { bail!("unexpected answer") };
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
            let Response::Links(info) = session.call(Request::Links).await? else { bail!("unexpected answer") };
            let list: Vec<Value> = info.links.iter().map(link_json).collect();
            print(json_mode, json!({"own_addrs": info.own_addrs, "links": list}), || {
                let mut lines = vec![format!("this node: {}", info.own_addrs.join(" "))];
                lines.extend(info.links.iter().map(|l| format!("{} {} {:?}", l.peer_id, l.name, l.state)));
                lines.join("\n")
            });
        }
        Command::Admin(AdminCommand::Link { target }) => {
            let Response::Link(link) = session.call(Request::Link { target }).await? else {
                bail!("unexpected answer")
            };
            print(json_mode, link_json(&link), || format!("{} {} {:?}", link.peer_id, link.name, link.state));
        }
        Command::Admin(AdminCommand::Unlink { peer_id }) => {
            session.call(Request::Unlink { peer_id: peer_id.clone() }).await?;
            print(json_mode, json!({"unlinked": peer_id}), || format!("unlinked {peer_id}"));
        }
        Command::Visibility { visibility } => {
            let open = matches!(visibility, Visibility::Open);
            session.call(Request::SetAccountOpen { open }).await?;
            print(json_mode, json!({"open": open}), || {
                format!("your account is {}", if open { "open" } else { "closed" })
            });
        }
        Command::Group(GroupCommand::Visibility { chat, visibility }) => {
            let group = resolve_chat(&session, &chat)?;
            let open = matches!(visibility, Visibility::Open);
            session.call(Request::SetChatOpen { group, open }).await?;
            print(json_mode, json!({"chat": group.to_hex(), "open": open}), || {
                format!("{group} is {}", if open { "open" } else { "closed" })
            });
        }
        Command::Directory => {
            let Response::Directory(directory) = session.call(Request::Directory).await? else {
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
            let Response::Chats(chats) = session.call(Request::Chats).await? else { bail!("unexpected answer") };
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
                InviteCommand::Create { chat, uses, expires } => (Some(resolve_chat(&session, &chat)?), uses, expires),
                InviteCommand::Node { uses, expires } => (None, uses, expires),
                _ => unreachable!("matched above"),
            };
            let request =
                Request::CreateInvite { group, max_uses: uses, expires_in_secs: expires.map(|d| d.as_secs().max(1)) };
            let Response::InviteCreated { invite, secret } = session.call(request).await? else {
                bail!("unexpected answer")
            };
            let node_url = session.state.device()?.node_url.clone();
            let fingerprint = session.state.tls_pin()?;
            let link = InviteLink { node_url, invite: invite.invite, secret, group, fingerprint }.to_url();
            print(
                json_mode,
                json!({"id": invite.invite.to_hex(), "link": link, "uses": invite.max_uses, "expires_at_ms": invite.expires_at_ms}),
                || link.clone(),
            );
        }
        Command::Invite(InviteCommand::Revoke { id }) => {
            session.call(Request::RevokeInvite { invite: id }).await?;
            print(json_mode, json!({"revoked": id.to_hex()}), || format!("revoked {id}"));
        }
        Command::Invite(InviteCommand::List { chat }) => {
            let group = resolve_chat(&session, &chat)?;
            let Response::Invites(invites) = session.call(Request::Invites { group }).await? else {
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
            let (group, seq) = join(&mut session, &link).await?;
            print(json_mode, json!({"chat": group.to_hex(), "seq": seq}), || format!("joined {group}"));
        }
        Command::Dm { member } => {
            let group = dm(&mut session, member).await?;
            print(json_mode, json!({"chat": group.to_hex()}), || format!("direct chat {group}"));
        }
        Command::Add { chat, member } => {
            let group = resolve_chat(&session, &chat)?;
            let seq = add_member(&mut session, group, member).await?;
            print(json_mode, json!({"chat": group.to_hex(), "added": member.to_hex(), "seq": seq}), || {
                format!("added {member}")
            });
        }
        Command::Send { chat, text, stdin } => {
            let group = resolve_chat(&session, &chat)?;
            if stdin {
                // One message per line; each stored message is printed at once, so a script sees
                // exactly which messages the node acknowledged even if the run is cut short.
                for line in std::io::stdin().lines() {
                    let line = line?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let seq = session.send_text(group, &line).await?;
                    print(json_mode, json!({"chat": group.to_hex(), "seq": seq}), || format!("sent #{seq}"));
                }
            } else {
                let text = text.context("give the text to send (or --stdin)")?;
                let seq = session.send_text(group, &text).await?;
                print(json_mode, json!({"chat": group.to_hex(), "seq": seq}), || format!("sent #{seq}"));
            }
        }
        Command::Read { chat, since, follow, idle_exit } => {
            let group = resolve_chat(&session, &chat)?;
            let mut names = HashMap::new();
            let mut last = since;
            last = print_history(&mut session, group, last, json_mode, &mut names).await?;
            if follow {
                // Events buffered meanwhile are kept: handle_event skips what is already processed.
                loop {
                    let event = match idle_exit {
                        Some(secs) => {
                            match tokio::time::timeout(Duration::from_secs(secs), session.conn.next_event()).await {
                                Ok(event) => event?,
                                Err(_) => break,
                            }
                        }
                        None => session.conn.next_event().await?,
                    };
                    session.handle_event(event).await?;
                    last = print_history(&mut session, group, last, json_mode, &mut names).await?;
                }
            }
        }
        Command::Members { chat } => {
            let group = resolve_chat(&session, &chat)?;
            let info = session.chat_info(group).await?;
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
            let group = resolve_chat(&session, &chat)?;
            let (seq, _) = session
                .commit(group, &format!("removed {}", &member.to_hex()[..12]), |mls| {
                    mls.remove_members(group, &[member])
                })
                .await?;
            print(json_mode, json!({"chat": group.to_hex(), "removed": member.to_hex(), "seq": seq}), || {
                format!("removed {member}")
            });
        }
        Command::Leave { chat } => {
            let group = resolve_chat(&session, &chat)?;
            let proposal = session.state.mls()?.leave(group)?;
            session.state.persist(|_| Ok(()))?;
            let Response::Stored { seq } = session.call(Request::Send { group, message: proposal }).await? else {
                bail!("unexpected answer")
            };
            print(json_mode, json!({"chat": group.to_hex(), "left": true, "seq": seq}), || {
                format!("left {group}; an admin's device completes the removal")
            });
        }
        Command::Role { chat, member, role } => {
            let group = resolve_chat(&session, &chat)?;
            let (seq, _) = session
                .commit(group, &format!("made {} {}", &member.to_hex()[..12], role.as_str()), |mls| {
                    mls.set_role(group, member, role)
                })
                .await?;
            print(
                json_mode,
                json!({"chat": group.to_hex(), "member": member.to_hex(), "role": role.as_str(), "seq": seq}),
                || format!("{member} is now {}", role.as_str()),
            );
        }
        Command::Retention { chat, policy } => {
            let group = resolve_chat(&session, &chat)?;
            session.call(Request::SetRetention { group, retention: policy }).await?;
            print(json_mode, json!({"chat": group.to_hex(), "retention": policy.to_string()}), || {
                format!("retention {policy}")
            });
        }
    }
    Ok(())
}

fn random_group() -> anyhow::Result<GroupId> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(GroupId(id))
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
fn resolve_chat(session: &Session, chat: &str) -> anyhow::Result<GroupId> {
    if let Ok(group) = chat.parse::<GroupId>() {
        if session.state.chat(group)?.is_none() {
            bail!("this device is not in chat {group}");
        }
        return Ok(group);
    }
    let matches: Vec<GroupId> =
        session.state.chats()?.into_iter().filter(|(_, c)| c.name == chat && c.active).map(|(g, _)| g).collect();
    match matches.as_slice() {
        [group] => Ok(*group),
        [] => bail!("no chat named {chat:?} (use its id)"),
        _ => bail!("several chats are named {chat:?}: use the id"),
    }
}

async fn register(
    state: State,
    node: Option<&str>,
    name: &str,
    invite: Option<&str>,
    accept_fingerprint: bool,
    json_mode: bool,
) -> anyhow::Result<()> {
    if state.device.is_some() {
        bail!("this state dir already holds a registered device");
    }
    let link = invite.map(InviteLink::parse).transpose()?;
    let node_url = node
        .map(str::to_string)
        .or_else(|| link.as_ref().map(|l| l.node_url.clone()))
        .context("give --node URL (or an --invite link)")?;
    let node_url = node_url.trim_end_matches('/').to_string();
    let mut state = state;
    // Reuse the key of a registration that was interrupted: the node may have accepted it.
    let secret = match state.pending_secret()? {
        Some(secret) => secret,
        None => {
            let secret = veche_mls::Client::generate_secret();
            state.set_pending_secret(&secret)?;
            secret
        }
    };
    let mut mls = veche_mls::Client::new(secret);
    let identity = mls.identity();
    let trust = match (link.as_ref().and_then(|l| l.fingerprint), accept_fingerprint) {
        (Some(pin), _) => super::tls::Trust::Pinned(pin),
        (None, true) => super::tls::Trust::FirstUse,
        (None, false) => super::tls::Trust::System,
    };
    let mut conn = Connection::open(&node_url, trust).await?;
    if let Some(anchor) = conn.anchor {
        state.set_tls_pin(&anchor)?;
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    let payload = veche_protocol::auth::register_payload(
        &conn.hello.node_id,
        &conn.hello.challenge,
        &identity.device,
        &identity.account,
        name,
    );
    let signature = veche_protocol::auth::sign(&key, &payload);
    let token = link.map(|l| InviteToken { invite: l.invite, secret: l.secret });
    let request = Request::Register {
        device: identity.device,
        account: identity.account,
        display_name: name.to_string(),
        invite: token,
        signature,
    };
    let account = match conn.call(request).await {
        Ok(Response::SignedIn(account)) => account,
        Ok(_) => bail!("unexpected answer"),
        Err(CallError::Api(e)) if e.code == veche_protocol::wire::ErrorCode::Conflict => {
            // Registered before an interruption: sign in with the same key instead.
            let payload =
                veche_protocol::auth::sign_in_payload(&conn.hello.node_id, &conn.hello.challenge, &identity.device);
            let signature = veche_protocol::auth::sign(&key, &payload);
            match conn.call(Request::SignIn { device: identity.device, signature }).await? {
                Response::SignedIn(account) => account,
                _ => bail!("unexpected answer"),
            }
        }
        Err(e) => return Err(e.into()),
    };
    let packages = mls.key_packages(KEY_PACKAGES)?;
    let last_resort = mls.last_resort_key_package()?;
    conn.call(Request::PublishKeyPackages { packages, last_resort: Some(last_resort) }).await?;
    let record = DeviceRecord {
        secret,
        account: account.account,
        device: account.device,
        node_url: node_url.clone(),
        node_id: conn.hello.node_id.clone(),
        display_name: account.display_name.clone(),
    };
    state.save_device(record, mls)?;
    print(
        json_mode,
        json!({"account": account.account.to_hex(), "device": account.device.to_hex(), "name": account.display_name,
               "node_admin": account.node_admin, "node_id": conn.hello.node_id}),
        || {
            format!(
                "registered {} as {}{}",
                account.display_name,
                account.account,
                if account.node_admin { " (node admin)" } else { "" }
            )
        },
    );
    Ok(())
}

async fn join(session: &mut Session, link: &str) -> anyhow::Result<(GroupId, u64)> {
    let link = InviteLink::parse(link)?;
    let token = InviteToken { invite: link.invite, secret: link.secret };
    for _ in 0..8 {
        let Response::GroupInfo(group_info) = session.call(Request::JoinGroupInfo { token: token.clone() }).await?
        else {
            bail!("unexpected answer")
        };
        let (group, bundle) = session.state.mls()?.join_external(&group_info)?;
        // Save the joined state and the commit before sending, so a crash after the node has
        // accepted it cannot lose this device's leaf (the next run resends it; the node answers
        // a repeat with the original sequence number).
        let pending = state::PendingJoin {
            invite: token.invite,
            secret: token.secret,
            commit: bundle.commit,
            group_info: bundle.group_info,
        };
        session.state.persist(|txn| state::put_pending_join(txn, group, &pending))?;
        match session.finish_join(group, pending).await {
            Ok(Some(seq)) => return Ok((group, seq)),
            Ok(None) => continue, // the chat moved on: try again with its new GroupInfo
            Err(e) => return Err(e),
        }
    }
    bail!("the chat kept changing; try again")
}

async fn claim(session: &mut Session, member: AccountId) -> anyhow::Result<Vec<Vec<u8>>> {
    let Response::KeyPackages(packages) = session.call(Request::ClaimKeyPackages { account: member }).await? else {
        bail!("unexpected answer")
    };
    Ok(packages)
}

async fn add_member(session: &mut Session, group: GroupId, member: AccountId) -> anyhow::Result<u64> {
    let packages = claim(session, member).await?;
    add_with(session, group, member, packages).await
}

async fn add_with(
    session: &mut Session,
    group: GroupId,
    member: AccountId,
    packages: Vec<Vec<u8>>,
) -> anyhow::Result<u64> {
    let (seq, _) = session
        .commit(group, &format!("added {}", &member.to_hex()[..12]), |mls| mls.add_members(group, &packages))
        .await?;
    Ok(seq)
}

async fn dm(session: &mut Session, member: AccountId) -> anyhow::Result<GroupId> {
    let me = session.me()?;
    if member == me {
        bail!("that is you");
    }
    let Response::Chats(chats) = session.call(Request::Chats).await? else { bail!("unexpected answer") };
    let existing = chats.iter().find(|c| {
        c.kind == ChatKind::Direct && (c.peer == Some(member) || c.members.iter().any(|m| m.account == member))
    });
    if let Some(existing) = existing {
        let group = existing.group;
        // A direct chat this device opened earlier whose add did not complete: finish it.
        if !existing.members.iter().any(|m| m.account == member) {
            if session.state.chat(group)?.is_none() {
                bail!("the direct chat {group} with this member was opened on another device");
            }
            add_member(session, group, member).await?;
        }
        return Ok(group);
    }
    // Their key packages first: if they cannot be added, no half-made chat is left behind.
    let packages = claim(session, member).await?;
    let group = random_group()?;
    let group_info = session.state.mls()?.create_group(group, ChatKind::Direct)?;
    session.state.persist(|_| Ok(()))?;
    let request = Request::CreateChat {
        group,
        kind: ChatKind::Direct,
        name: String::new(),
        description: String::new(),
        peer: Some(member),
        group_info,
    };
    if let Err(e) = session.call(request).await {
        session.state.mls()?.forget_group(group)?;
        session.state.persist(|_| Ok(()))?;
        return Err(e.into());
    }
    session.add_local_chat(group, ChatKind::Direct, "", 0)?;
    add_with(session, group, member, packages).await?;
    Ok(group)
}

async fn print_history(
    session: &mut Session,
    group: GroupId,
    after: u64,
    json_mode: bool,
    names: &mut HashMap<AccountId, String>,
) -> anyhow::Result<u64> {
    let entries = session.state.history(group, after)?;
    let unknown: Vec<AccountId> = entries
        .iter()
        .map(|e| e.sender)
        .filter(|a| !names.contains_key(a))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty()
        && let Ok(Response::Profiles(profiles)) = session.call(Request::Profiles { accounts: unknown }).await
    {
        for p in profiles {
            names.insert(p.account, p.display_name);
        }
    }
    let mut last = after;
    for entry in &entries {
        print_entry(entry, names.get(&entry.sender).map(String::as_str).unwrap_or("?"), json_mode);
        last = entry.seq;
    }
    Ok(last)
}

fn print_entry(entry: &HistoryEntry, name: &str, json_mode: bool) {
    let (kind, text) = match &entry.body {
        HistoryBody::Text(t) => ("text", t.as_str()),
        HistoryBody::System(t) => ("system", t.as_str()),
        HistoryBody::Unreadable(t) => ("unreadable", t.as_str()),
    };
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
