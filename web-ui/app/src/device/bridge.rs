//! The core's events, told to the member: the views' signals, toasts, notifications. Nothing
//! here waits: what must (call events, for `crate::media::signaling`, and the meetings list) is
//! left for the driver ([`Later`]).

use leptos::prelude::*;
use veche_device::{CommandId, DeviceError, DeviceEvent, Outcome};
use veche_protocol::wire::Response;

use super::{Device, Later, Waiter, api_message};
use crate::state::{ConnState, Me};

impl Device {
    pub(super) fn bridge(&mut self, event: DeviceEvent) {
        match event {
            DeviceEvent::Done { id, result } => self.done(id, result),
            DeviceEvent::SignedIn(account) => {
                self.ui.names.update(|n| {
                    n.insert(account.account, account.display_name.clone());
                });
                self.ui.me.set(Some(Me {
                    account: account.account,
                    name: account.display_name,
                    node_admin: account.node_admin,
                    guest_of: account.guest_of,
                }));
                self.ui.conn.set(ConnState::Online);
                self.backoff_ms = 0;
            }
            DeviceEvent::SignInFailed(e) => {
                self.ui.toast(api_message(e), true);
                self.disconnected();
                self.failed_attempt();
            }
            // Messages processed from now on are new: the core tells them as `Fresh`.
            DeviceEvent::Synced => self.later.push_back(Later::RefreshMeetings),
            DeviceEvent::ChatChanged(group) => self.publish_chat(group),
            DeviceEvent::ChatInfo(info) => self.apply_info(info),
            DeviceEvent::Names(names) => self.ui.names.update(|n| n.extend(names)),
            DeviceEvent::Fresh { group, messages } => {
                // One notification per chat (each replaces the last): the newest worth one.
                for (sender, text) in messages.iter().rev() {
                    if crate::notify::on_message(self.ui, group, *sender, text) {
                        break;
                    }
                }
            }
            DeviceEvent::Call(event) => self.later.push_back(Later::Call(event)),
            DeviceEvent::Error(e) => self.toast_error(e),
        }
    }

    /// A failure nobody waits for; "offline" is what the connection indicator says already.
    fn toast_error(&self, e: DeviceError) {
        if e != DeviceError::Offline {
            self.ui.toast(api_message(e), true);
        }
    }

    /// A command finished: its answer to whoever waits.
    fn done(&mut self, id: CommandId, result: Result<Outcome, DeviceError>) {
        let Some(waiter) = self.waiters.remove(&id) else { return };
        match waiter {
            Waiter::Silent => {}
            Waiter::Toast => {
                if let Err(e) = result {
                    self.toast_error(e);
                }
            }
            Waiter::Driver => {
                self.done.insert(id, result);
            }
            Waiter::Unit(reply) => {
                let _ = reply.send(result.map(|_| ()).map_err(api_message));
            }
            Waiter::Registered(reply) => {
                if result.is_ok() {
                    self.ui.phase.set(crate::state::Phase::Ready);
                }
                let _ = reply.send(result.map(|_| ()).map_err(api_message));
            }
            Waiter::Group(reply) => {
                let _ = reply.send(match result {
                    Ok(Outcome::Group(group) | Outcome::Joined { group, .. }) => Ok(group),
                    Ok(_) => Err("@err-unexpected".into()),
                    Err(e) => Err(api_message(e)),
                });
            }
            Waiter::Preview(reply) => {
                let _ = reply.send(match result {
                    Ok(Outcome::Preview(preview)) => Ok(preview),
                    Ok(_) => Err("@err-unexpected".into()),
                    Err(e) => Err(api_message(e)),
                });
            }
            Waiter::Response(reply) => {
                let _ = reply.send(match result {
                    Ok(Outcome::Response(response)) => Ok(response),
                    Ok(_) => Err("@err-unexpected".into()),
                    Err(e) => Err(api_message(e)),
                });
            }
            Waiter::Invites(reply) => {
                let _ = reply.send(match result {
                    Ok(Outcome::Response(Response::Invites(list))) => Ok(list),
                    Ok(_) => Err("@err-unexpected".into()),
                    Err(e) => Err(api_message(e)),
                });
            }
        }
    }
}
