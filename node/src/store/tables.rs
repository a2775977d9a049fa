//! Table definitions. Keys are fixed-size ids (and sequence numbers); values are postcard bytes.

use redb::{TableDefinition, WriteTransaction};

/// Node singletons: "next_welcome_id". (The node key is the `node.key` file.)
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// account id -> records::Account
pub const ACCOUNTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("accounts");
/// device id -> account id
pub const DEVICES: TableDefinition<[u8; 32], [u8; 32]> = TableDefinition::new("devices");
/// (device, n) -> one-time key package
pub const KEY_PACKAGES: TableDefinition<([u8; 32], u64), &[u8]> = TableDefinition::new("key_packages");
/// device -> last-resort key package
pub const LAST_RESORT: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("last_resort");
/// group -> records::Chat
pub const CHATS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("chats");
/// group -> latest GroupInfo (for external joins)
pub const GROUP_INFO: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("group_info");
/// (account, group) -> () : the chats an account is in
pub const MEMBERSHIP: TableDefinition<([u8; 32], [u8; 16]), ()> = TableDefinition::new("membership");
/// sorted pair of accounts -> direct chat
pub const DIRECT_PAIRS: TableDefinition<([u8; 32], [u8; 32]), [u8; 16]> = TableDefinition::new("direct_pairs");
/// (group, seq) -> records::LogEntry
pub const LOG: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("log");
/// (device, group) -> highest acknowledged seq
pub const CURSORS: TableDefinition<([u8; 32], [u8; 16]), u64> = TableDefinition::new("cursors");
/// (device, welcome id) -> records::Welcome
pub const WELCOMES: TableDefinition<([u8; 32], u64), &[u8]> = TableDefinition::new("welcomes");
/// invite id -> records::Invite
pub const INVITES: TableDefinition<[u8; 8], &[u8]> = TableDefinition::new("invites");
/// (group, sha256 of the MLS message) -> seq: a device that retries after losing the node's
/// answer gets the original sequence number instead of a duplicate.
pub const DEDUP: TableDefinition<([u8; 16], [u8; 32]), u64> = TableDefinition::new("dedup");
/// peer id of another node -> records::Link
pub const LINKS: TableDefinition<&str, &[u8]> = TableDefinition::new("links");
/// group -> peer id of its home node, for chats homed on another node (replicas kept here)
pub const CHAT_HOMES: TableDefinition<[u8; 16], &str> = TableDefinition::new("chat_homes");
/// account -> records::RemoteAccount, for accounts that live on other nodes
pub const REMOTE_ACCOUNTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("remote_accounts");
/// (group, seq) -> federation::CommitEffect of a commit (member nodes replay it)
pub const COMMIT_EFFECTS: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("commit_effects");
/// (group, member node's peer id) -> highest seq that node has confirmed holding
pub const PEER_CURSORS: TableDefinition<([u8; 16], &str), u64> = TableDefinition::new("peer_cursors");
/// accounts of this node that chose to be findable by members of linked nodes
pub const OPEN_ACCOUNTS: TableDefinition<[u8; 32], ()> = TableDefinition::new("open_accounts");
/// group chats homed here that their owner made findable
pub const OPEN_GROUPS: TableDefinition<[u8; 16], ()> = TableDefinition::new("open_groups");
/// peer id of a linked node -> its last directory (federation::Directory, postcard)
pub const REMOTE_DIRECTORIES: TableDefinition<&str, &[u8]> = TableDefinition::new("remote_directories");
/// group -> veche_protocol::meeting::MeetingInfo: chats that are meetings
pub const MEETINGS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("meetings");
/// account -> records::Guest: guest accounts made with a meeting link
pub const GUESTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("guests");
/// (group, account) -> (): members this node deleted (guests whose meeting is over) that are
/// still in the chat's MLS group; `ChatInfo::gone` lists them until an owner's or admin's device
/// commits their removal
pub const GONE_MEMBERS: TableDefinition<([u8; 16], [u8; 32]), ()> = TableDefinition::new("gone_members");
/// counter name -> value (metrics that survive restarts)
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
/// (group, invite id) -> (): the invites of a chat (listing them reads only these rows)
pub const INVITES_BY_GROUP: TableDefinition<([u8; 16], [u8; 8]), ()> = TableDefinition::new("invites_by_group");
/// (creator account, invite id) -> (): the invites a member made (their quota counts these)
pub const INVITES_BY_CREATOR: TableDefinition<([u8; 32], [u8; 8]), ()> = TableDefinition::new("invites_by_creator");
/// (expiry ms, invite id) -> (): invites by expiry (the clean-up pass finds the dead ones here)
pub const INVITES_BY_EXPIRY: TableDefinition<(u64, [u8; 8]), ()> = TableDefinition::new("invites_by_expiry");
/// account -> bytes of log entries it sent that chats homed here still store (its storage quota)
pub const ACCOUNT_BYTES: TableDefinition<[u8; 32], u64> = TableDefinition::new("account_bytes");
/// account of this node -> the account key's signature over `auth::home_payload(account, this
/// node's id)`: the proof other nodes ask for before they believe this node is the account's home
pub const HOME_BINDINGS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("home_bindings");

/// home node's peer id -> (replicas of its chats kept here, bytes of their log entries kept here):
/// a linked node's quotas (`Quotas::max_replicas_per_link`, `replica_bytes_per_link`)
pub const REPLICA_USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("replica_usage");

/// Creates every table so readers never meet a missing one.
pub fn create_all(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(META)?;
    txn.open_table(ACCOUNTS)?;
    txn.open_table(DEVICES)?;
    txn.open_table(KEY_PACKAGES)?;
    txn.open_table(LAST_RESORT)?;
    txn.open_table(CHATS)?;
    txn.open_table(GROUP_INFO)?;
    txn.open_table(MEMBERSHIP)?;
    txn.open_table(DIRECT_PAIRS)?;
    txn.open_table(LOG)?;
    txn.open_table(CURSORS)?;
    txn.open_table(WELCOMES)?;
    txn.open_table(INVITES)?;
    txn.open_table(COUNTERS)?;
    txn.open_table(DEDUP)?;
    txn.open_table(LINKS)?;
    txn.open_table(CHAT_HOMES)?;
    txn.open_table(REMOTE_ACCOUNTS)?;
    txn.open_table(COMMIT_EFFECTS)?;
    txn.open_table(PEER_CURSORS)?;
    txn.open_table(OPEN_ACCOUNTS)?;
    txn.open_table(OPEN_GROUPS)?;
    txn.open_table(REMOTE_DIRECTORIES)?;
    txn.open_table(MEETINGS)?;
    txn.open_table(GUESTS)?;
    txn.open_table(INVITES_BY_GROUP)?;
    txn.open_table(INVITES_BY_CREATOR)?;
    txn.open_table(INVITES_BY_EXPIRY)?;
    txn.open_table(ACCOUNT_BYTES)?;
    txn.open_table(REPLICA_USAGE)?;
    txn.open_table(GONE_MEMBERS)?;
    txn.open_table(HOME_BINDINGS)?;
    Ok(())
}
