//! Registration, sign-in, profiles and the key package directory.

use super::{ApiResult, Node, OrInternal, Session, err};
use crate::mls_view;
use crate::store::records::{self, Account, now_ms};
use crate::store::tables::{ACCOUNTS, DEVICES, GUESTS, HOME_BINDINGS, KEY_PACKAGES, LAST_RESORT};
use redb::{ReadableTable, ReadableTableMetadata};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use veche_protocol::ids::{AccountId, DeviceId};
use veche_protocol::wire::{self, ErrorCode, InviteToken, Profile, RegistrationPolicy};

/// One-time key packages a device may keep on the node.
pub const MAX_KEY_PACKAGES: u64 = 200;
/// Largest key package accepted, in bytes.
pub const MAX_KEY_PACKAGE_BYTES: usize = 8 * 1024;

/// Registers a new account with its first device. The signature was checked by the caller.
pub async fn register(
    node: &Node,
    device: DeviceId,
    account: AccountId,
    display_name: &str,
    invite: Option<InviteToken>,
) -> ApiResult<wire::Account> {
    let display_name = veche_protocol::validate::display_name(display_name)
        .map_err(|e| wire::ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    if account.0 != device.0 {
        return err(ErrorCode::BadRequest, "the first device's key must be the account key");
    }
    let policy = node.info.registration;
    let name = display_name.clone();
    let record = node
        .writer
        .run(move |ctx| {
            if ctx.read().open_table(DEVICES).or_internal()?.get(device.0).or_internal()?.is_some() {
                return err(ErrorCode::Conflict, "this device is already registered; sign in instead");
            }
            let invite = match &invite {
                Some(token) => Some(super::invites::check_token(ctx.read(), token, false)?),
                None => None,
            };
            let grants_admin = invite.as_ref().is_some_and(|(_, inv)| inv.grants_admin);
            // A meeting's link makes a guest account, for that meeting only.
            let guest = match &invite {
                Some((id, inv)) => match inv.group {
                    Some(group) => super::meetings::load_for_write(ctx.read(), group)?
                        .filter(|m| m.invite == *id)
                        .map(|m| records::Guest { group, until_ms: m.guests_until_ms }),
                    None => None,
                },
                None => None,
            };
            match (policy, &invite) {
                (RegistrationPolicy::Open, _) => {}
                (_, Some(_)) if grants_admin => {}
                (RegistrationPolicy::Invite, Some(_)) => {}
                (RegistrationPolicy::Invite, None) => {
                    return err(ErrorCode::InviteRequired, "this node admits new members by invite link only");
                }
                (RegistrationPolicy::Closed, _) => {
                    return err(ErrorCode::RegistrationClosed, "this node is not accepting new members");
                }
            }
            // Node invites are spent by registering. Chat invites are spent by joining, and admit
            // at most as many new accounts as they have uses.
            let invite = match invite {
                Some((id, mut inv)) if inv.group.is_none() => {
                    inv.uses += 1;
                    Some((id, inv))
                }
                Some((id, mut inv)) => {
                    if inv.max_uses.is_some_and(|max| inv.registrations >= max) {
                        return err(
                            ErrorCode::InviteUsedUp,
                            "this invite link has admitted as many new members as it may",
                        );
                    }
                    inv.registrations += 1;
                    Some((id, inv))
                }
                None => None,
            };
            let txn = ctx.write();
            if let Some((id, inv)) = invite {
                txn.open_table(crate::store::tables::INVITES)
                    .or_internal()?
                    .insert(id.0, records::encode(&inv).as_slice())
                    .or_internal()?;
            }
            let record =
                Account { display_name: name, created_ms: now_ms(), node_admin: grants_admin, devices: vec![device] };
            txn.open_table(ACCOUNTS)
                .or_internal()?
                .insert(account.0, records::encode(&record).as_slice())
                .or_internal()?;
            txn.open_table(DEVICES).or_internal()?.insert(device.0, account.0).or_internal()?;
            if let Some(guest) = guest {
                txn.open_table(GUESTS)
                    .or_internal()?
                    .insert(account.0, records::encode(&guest).as_slice())
                    .or_internal()?;
            }
            Ok((record, guest))
        })
        .await?;
    let (record, guest) = record;
    tracing::info!(account = %account, admin = record.node_admin, guest = guest.is_some(), "member registered");
    Ok(wire::Account {
        account,
        device,
        display_name,
        node_admin: record.node_admin,
        guest_of: guest.map(|g| g.group),
        home_bound: false,
    })
}

/// Looks up a registered device for sign-in.
pub fn sign_in(node: &Node, device: DeviceId) -> ApiResult<wire::Account> {
    let txn = node.store.read().or_internal()?;
    let Some(account) = txn.open_table(DEVICES).or_internal()?.get(device.0).or_internal()?.map(|g| g.value()) else {
        return err(ErrorCode::NotFound, "this device is not registered on this node");
    };
    let account = AccountId(account);
    let record = load_account(&txn, &account)?.ok_or_else(|| super::internal("device without account"))?;
    let guest = super::meetings::guest(&txn, &account)?;
    if let Some(guest) = &guest {
        super::meetings::check_guest_time(guest)?;
    }
    Ok(wire::Account {
        account,
        device,
        display_name: record.display_name,
        node_admin: record.node_admin,
        guest_of: guest.map(|g| g.group),
        home_bound: home_binding(&txn, &account)?.is_some(),
    })
}

/// The account's signed home binding, if its first device sent one ([`bind_home`]).
pub(crate) fn home_binding(txn: &redb::ReadTransaction, account: &AccountId) -> ApiResult<Option<Vec<u8>>> {
    let table = txn.open_table(HOME_BINDINGS).or_internal()?;
    Ok(table.get(account.0).or_internal()?.map(|v| v.value().to_vec()))
}

/// Stores the signed-in account's home binding: the account key's signature naming this node as
/// its home ([`veche_protocol::auth::home_payload`]). Other nodes believe this node is the
/// account's home only with it (`replica::homes`).
pub async fn bind_home(node: &Node, session: Session, signature: Vec<u8>) -> ApiResult<()> {
    let account = session.account;
    if veche_protocol::auth::verify_home(&account, &node.info.node_id, &signature).is_err() {
        return err(
            ErrorCode::BadSignature,
            "the home binding is not the account key's signature naming this node (only the account's first device holds that key)",
        );
    }
    node.writer
        .run(move |ctx| {
            ctx.write()
                .open_table(HOME_BINDINGS)
                .or_internal()?
                .insert(account.0, signature.as_slice())
                .or_internal()?;
            Ok(())
        })
        .await?;
    tracing::info!(%account, "the account's home binding is stored");
    Ok(())
}

pub(crate) fn load_account(txn: &redb::ReadTransaction, account: &AccountId) -> ApiResult<Option<Account>> {
    records::get(&txn.open_table(ACCOUNTS).or_internal()?, account.0)
}

/// Whether the account lives on this node.
pub fn is_local(node: &Node, account: &AccountId) -> bool {
    node.store.read().ok().and_then(|txn| load_account(&txn, account).ok().flatten()).is_some()
}

/// Display names of accounts known to this node, its own and other nodes' (unknown ids are
/// left out).
pub fn profiles(node: &Node, accounts: &[AccountId]) -> ApiResult<Vec<Profile>> {
    if accounts.len() > 1000 {
        return err(ErrorCode::TooLarge, "ask for at most 1000 profiles at once");
    }
    let txn = node.store.read().or_internal()?;
    let mut remote = super::replica::remote_names(&txn, accounts)?;
    let mut out = Vec::with_capacity(accounts.len());
    for account in accounts {
        if let Some(record) = load_account(&txn, account)? {
            out.push(Profile { account: *account, display_name: record.display_name });
        } else if let Some(r) = remote.remove(account) {
            out.push(Profile { account: *account, display_name: r.display_name });
        }
    }
    Ok(out)
}

/// Stores key packages of the signed-in device after checking each names this device.
pub async fn publish_key_packages(
    node: &Node,
    session: Session,
    packages: Vec<Vec<u8>>,
    last_resort: Option<Vec<u8>>,
) -> ApiResult<()> {
    if packages.len() as u64 > MAX_KEY_PACKAGES {
        return err(ErrorCode::TooLarge, format!("upload at most {MAX_KEY_PACKAGES} key packages at once"));
    }
    for package in packages.iter().chain(last_resort.iter()) {
        if package.len() > MAX_KEY_PACKAGE_BYTES {
            return err(ErrorCode::TooLarge, "key package too large");
        }
        let identity = mls_view::key_package(package)?;
        if identity.device != session.device || identity.account != session.account {
            return err(ErrorCode::Forbidden, "key package belongs to another device");
        }
    }
    node.writer
        .run(move |ctx| {
            let existing = {
                let table = ctx.read().open_table(KEY_PACKAGES).or_internal()?;
                let range = table.range((session.device.0, 0)..=(session.device.0, u64::MAX)).or_internal()?;
                let mut count = 0u64;
                let mut last = 0u64;
                for item in range {
                    let (key, _) = item.or_internal()?;
                    count += 1;
                    last = key.value().1;
                }
                (count, last)
            };
            if existing.0 + packages.len() as u64 > MAX_KEY_PACKAGES {
                return err(ErrorCode::TooLarge, format!("a device keeps at most {MAX_KEY_PACKAGES} key packages"));
            }
            let txn = ctx.write();
            let mut table = txn.open_table(KEY_PACKAGES).or_internal()?;
            for (i, package) in packages.iter().enumerate() {
                table.insert((session.device.0, existing.1 + 1 + i as u64), package.as_slice()).or_internal()?;
            }
            if let Some(package) = &last_resort {
                txn.open_table(LAST_RESORT)
                    .or_internal()?
                    .insert(session.device.0, package.as_slice())
                    .or_internal()?;
            }
            Ok(())
        })
        .await
}

/// The same refusal for an account that does not exist, is a guest, or may not be claimed by
/// this claimer: a claim never tells whether an account exists or is a guest.
pub fn not_claimable() -> wire::ApiError {
    wire::ApiError::new(ErrorCode::NotFound, "no member you may add has this id")
}

/// Whether `claimer` may take key packages of `account` (a registered account of this node) to
/// add it to a chat: the account is open, shares a chat with the claimer, or allows contact by
/// the claimer. There are no contact policies yet (issue 26 adds them, and refines this
/// function): every registered account that is not a meeting's guest allows contact for now.
/// A guest takes part in its meeting only; nobody adds it to chats.
fn may_claim(txn: &redb::WriteTransaction, _claimer: &Claimer, account: &AccountId) -> ApiResult<bool> {
    let record: Option<Account> = records::get(&txn.open_table(ACCOUNTS).or_internal()?, account.0)?;
    if record.is_none() {
        return Ok(false);
    }
    Ok(txn.open_table(GUESTS).or_internal()?.get(account.0).or_internal()?.is_none())
}

/// Takes one key package of every device of `account` for a member of this node: of this node's
/// account, or through the account's home node. Counted against the member's quotas first
/// ([`ClaimQuota`]), whatever the answer.
pub async fn claim(node: &Node, session: Session, account: AccountId) -> ApiResult<Vec<Vec<u8>>> {
    let claimer = Claimer::Member(session.account);
    count_claim(node, &claimer, account)?;
    if is_local(node, &account) {
        take_key_packages(node, claimer, account).await
    } else {
        super::replica::claim_remote_key_packages(node, account).await
    }
}

/// Takes one key package of every device of this node's `account` for `claimer` (a linked node
/// claims for one of its members), counted against its quotas first.
pub async fn claim_key_packages(node: &Node, claimer: Claimer, account: AccountId) -> ApiResult<Vec<Vec<u8>>> {
    count_claim(node, &claimer, account)?;
    take_key_packages(node, claimer, account).await
}

fn count_claim(node: &Node, claimer: &Claimer, account: AccountId) -> ApiResult<()> {
    let mut quota = node.replication.claims.lock().unwrap_or_else(|e| e.into_inner());
    quota.count(claimer, account, std::time::Instant::now()).map_err(|wait| {
        let secs = wait.as_secs().max(1);
        wire::ApiError::new(ErrorCode::RateLimited, format!("too many key package claims; try again in {secs} s"))
    })
}

/// Takes one key package for every device of `account`: a one-time one if any is left (and
/// deletes it), else the last-resort one.
async fn take_key_packages(node: &Node, claimer: Claimer, account: AccountId) -> ApiResult<Vec<Vec<u8>>> {
    node.writer
        .run(move |ctx| {
            if !may_claim(ctx.read(), &claimer, &account)? {
                return Err(not_claimable());
            }
            let record: Option<Account> = records::get(&ctx.read().open_table(ACCOUNTS).or_internal()?, account.0)?;
            let record = record.ok_or_else(not_claimable)?;
            // Read first: a job may only write once it cannot fail any more.
            let mut out = Vec::new();
            let mut spent = Vec::new();
            {
                let txn = ctx.read();
                let one_time = txn.open_table(KEY_PACKAGES).or_internal()?;
                let last_resort = txn.open_table(LAST_RESORT).or_internal()?;
                for device in &record.devices {
                    let first = one_time
                        .range((device.0, 0)..=(device.0, u64::MAX))
                        .or_internal()?
                        .next()
                        .transpose()
                        .or_internal()?
                        .map(|(k, v)| (k.value(), v.value().to_vec()));
                    if let Some((key, package)) = first {
                        spent.push(key);
                        out.push(package);
                    } else if let Some(package) = last_resort.get(device.0).or_internal()? {
                        out.push(package.value().to_vec());
                    }
                }
            }
            if out.is_empty() {
                return err(ErrorCode::NotFound, "this member has no key packages; they must come online first");
            }
            if !spent.is_empty() {
                let mut one_time = ctx.write().open_table(KEY_PACKAGES).or_internal()?;
                for key in spent {
                    one_time.remove(key).or_internal()?;
                }
            }
            Ok(out)
        })
        .await
}

/// One-time key packages of the session's device still on the node.
pub fn key_package_count(node: &Node, session: &Session) -> ApiResult<u32> {
    let txn = node.store.read().or_internal()?;
    let table = txn.open_table(KEY_PACKAGES).or_internal()?;
    let count = table.range((session.device.0, 0)..=(session.device.0, u64::MAX)).or_internal()?.count();
    Ok(count as u32)
}

/// Counts for metrics.
pub fn device_count(node: &Node) -> u64 {
    node.store.read().ok().and_then(|txn| txn.open_table(DEVICES).ok().and_then(|t| t.len().ok())).unwrap_or(0)
}

/// Who claims key packages: a member of this node, or a linked node (for one of its members,
/// whom that node counted against its own member quotas first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Claimer {
    Member(AccountId),
    /// A linked node, by peer id.
    Node(String),
}

/// The window claims are counted in.
pub const CLAIM_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Claims one member may make for one account per window. Adding someone takes one claim, and a
/// device retries an add up to 8 times (`veche_device::MAX_ATTEMPTS`) while the chat moves on;
/// ten leave that margin, and take at most 10 of the 50 one-time packages a device keeps.
pub const MEMBER_CLAIMS_PER_ACCOUNT: u32 = 10;
/// Claims one member may make per window, for all accounts: a chat created with 200 people.
pub const MEMBER_CLAIMS: u32 = 200;
/// Claims one linked node may make for one account per window: it claims for all its members
/// (each held to the member quotas there), so a few adds at once, but never half of the 50
/// one-time packages a device keeps.
pub const NODE_CLAIMS_PER_ACCOUNT: u32 = 20;
/// Claims one linked node may make per window, for all accounts: ten members creating large
/// chats at once.
pub const NODE_CLAIMS: u32 = 2000;
/// Counters kept at most (one per claimer, one per claimer and account): about 10 MB. When full
/// of counters still running, claims are refused until some expire.
const MAX_CLAIM_COUNTERS: usize = 100_000;

/// Key-package claims counted per claimer and per claimer and account, in fixed windows of
/// [`CLAIM_WINDOW`]. No IO: the caller passes the time.
#[derive(Debug, Default)]
pub struct ClaimQuota {
    /// (claimer, account or `None` for all accounts) -> (window start, claims in it).
    counters: HashMap<(Claimer, Option<AccountId>), (Instant, u32)>,
}

impl ClaimQuota {
    /// Counts one claim by `claimer` for `account` at `now`; `Err(wait)`: over a quota (nothing
    /// counted), try again after `wait`.
    pub fn count(&mut self, claimer: &Claimer, account: AccountId, now: Instant) -> Result<(), Duration> {
        let (per_account, total) = match claimer {
            Claimer::Member(_) => (MEMBER_CLAIMS_PER_ACCOUNT, MEMBER_CLAIMS),
            Claimer::Node(_) => (NODE_CLAIMS_PER_ACCOUNT, NODE_CLAIMS),
        };
        let keys = [((claimer.clone(), Some(account)), per_account), ((claimer.clone(), None), total)];
        if keys.iter().any(|(key, _)| !self.counters.contains_key(key)) && self.counters.len() + 2 > MAX_CLAIM_COUNTERS
        {
            self.counters.retain(|_, (start, _)| now.duration_since(*start) < CLAIM_WINDOW);
            if self.counters.len() + 2 > MAX_CLAIM_COUNTERS {
                return Err(CLAIM_WINDOW);
            }
        }
        let mut wait = None;
        for (key, max) in &keys {
            if let Some((start, n)) = self.counters.get(key) {
                let age = now.duration_since(*start);
                if age < CLAIM_WINDOW && *n >= *max {
                    wait = wait.max(Some(CLAIM_WINDOW - age));
                }
            }
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        for (key, _) in keys {
            let counter = self.counters.entry(key).or_insert((now, 0));
            if now.duration_since(counter.0) >= CLAIM_WINDOW {
                *counter = (now, 0);
            }
            counter.1 += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_counted_per_account_and_in_total() {
        let mut quota = ClaimQuota::default();
        let start = Instant::now();
        let mallory = Claimer::Member(AccountId([1; 32]));
        let carol = AccountId([2; 32]);
        for _ in 0..MEMBER_CLAIMS_PER_ACCOUNT {
            assert_eq!(quota.count(&mallory, carol, start), Ok(()));
        }
        let later = start + Duration::from_secs(60);
        assert_eq!(quota.count(&mallory, carol, later), Err(CLAIM_WINDOW - Duration::from_secs(60)));
        // Others, and other accounts, are not held up.
        assert_eq!(quota.count(&Claimer::Member(AccountId([3; 32])), carol, later), Ok(()));
        assert_eq!(quota.count(&mallory, AccountId([4; 32]), later), Ok(()));
        // A new window.
        assert_eq!(quota.count(&mallory, carol, start + CLAIM_WINDOW), Ok(()));
        // The total over all accounts.
        let node = Claimer::Node("peer".into());
        for i in 0..NODE_CLAIMS {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            assert_eq!(quota.count(&node, AccountId(id), start), Ok(()));
        }
        assert!(quota.count(&node, carol, start).is_err());
    }
}
