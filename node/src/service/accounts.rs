//! Registration, sign-in, profiles and the key package directory.

use super::{ApiResult, Node, OrInternal, Session, err};
use crate::mls_view;
use crate::store::records::{self, Account, now_ms};
use crate::store::tables::{ACCOUNTS, DEVICES, GUESTS, KEY_PACKAGES, LAST_RESORT};
use redb::{ReadableTable, ReadableTableMetadata};
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
    Ok(wire::Account { account, device, display_name, node_admin: record.node_admin, guest_of: guest.map(|g| g.group) })
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
    })
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

/// Takes one key package for every device of `account`: a one-time one if any is left (and
/// deletes it), else the last-resort one.
pub async fn claim_key_packages(node: &Node, account: AccountId) -> ApiResult<Vec<Vec<u8>>> {
    node.writer
        .run(move |ctx| {
            let record: Option<Account> = records::get(&ctx.read().open_table(ACCOUNTS).or_internal()?, account.0)?;
            let Some(record) = record else {
                return err(ErrorCode::NotFound, "no such member on this node");
            };
            if ctx.read().open_table(GUESTS).or_internal()?.get(account.0).or_internal()?.is_some() {
                return err(ErrorCode::Forbidden, "a guest takes part in its meeting only; nobody adds it to chats");
            }
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
