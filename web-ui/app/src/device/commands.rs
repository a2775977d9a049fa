//! The views' commands: most are the core's [`Command`]s, answered when the core is done with
//! them; invite links, meetings and recovery files are the driver's own; calls go to
//! [`crate::media::signaling`].

use veche_device::Command;
use veche_protocol::content::Body;
use veche_protocol::link::InviteLink;
use veche_protocol::wire::{InviteToken, Request, Response};

use super::{Cmd, Device, Waiter, api_message, node_fingerprint, page_origin};
use crate::media::signaling;

impl Device {
    pub(super) async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Register { name, link, reply } => {
                let invite = match link.map(|l| InviteLink::parse(&l)) {
                    None => None,
                    Some(Ok(link)) => Some(InviteToken { invite: link.invite, secret: link.secret }),
                    Some(Err(_)) => {
                        let _ = reply.send(Err("@err-invite-invalid".into()));
                        return;
                    }
                };
                if self.core.account().is_some() {
                    let _ = reply.send(Ok(()));
                    return;
                }
                self.connect().await;
                self.command(Command::Register { name, invite, node_url: None }, Waiter::Registered(reply));
            }
            Cmd::Preview { link, reply } => {
                self.connect().await;
                self.command(Command::Preview { link }, Waiter::Preview(reply));
            }
            Cmd::Join { link, reply } => {
                let result = self.run(Command::Join { link }).await;
                if result.is_ok() {
                    self.refresh_meetings().await;
                }
                let _ = reply.send(match result {
                    Ok(veche_device::Outcome::Joined { group, .. } | veche_device::Outcome::Group(group)) => Ok(group),
                    Ok(_) => Err("@err-unexpected".into()),
                    Err(e) => Err(api_message(e)),
                });
            }
            Cmd::CreateGroup { name, description, reply } => {
                self.command(Command::CreateGroup { name, description }, Waiter::Group(reply));
            }
            Cmd::CreateMeeting { settings, reply } => {
                let result = self.create_meeting(settings).await;
                let _ = reply.send(result);
            }
            Cmd::UpdateChat { group, name, description, reply } => {
                self.command(Command::UpdateChat { group, name, description }, Waiter::Unit(reply));
            }
            Cmd::Send { group, text } => self.send_text(group, text),
            Cmd::Retry { group, outbox_id } => self.command(Command::Retry { group, outbox_id }, Waiter::Toast),
            Cmd::Discard { group, outbox_id } => self.command(Command::Discard { group, outbox_id }, Waiter::Toast),
            Cmd::Seen { group } => self.command(Command::Seen { group }, Waiter::Silent),
            Cmd::CreateInvite { group, max_uses, expires_in_secs, reply } => {
                let request = Request::CreateInvite { group: Some(group), max_uses, expires_in_secs };
                let result = match self.call(request).await {
                    Ok(Response::InviteCreated { invite, secret }) => Ok(InviteLink {
                        node_url: page_origin(),
                        invite: invite.invite,
                        secret,
                        group: Some(group),
                        fingerprint: node_fingerprint(self.ui).await,
                    }
                    .to_url()),
                    Ok(_) => Err("@err-unexpected".into()),
                    Err(e) => Err(api_message(e)),
                };
                let _ = reply.send(result);
            }
            Cmd::Invites { group, reply } => {
                self.command(Command::Request(Request::Invites { group }), Waiter::Invites(reply));
            }
            Cmd::RevokeInvite { invite, reply } => {
                self.command(Command::Request(Request::RevokeInvite { invite }), Waiter::Unit(reply));
            }
            Cmd::DirectChat { member, reply } => self.command(Command::DirectChat { member }, Waiter::Group(reply)),
            Cmd::Remove { group, member, reply } => {
                self.command(Command::Remove { group, member }, Waiter::Unit(reply));
            }
            Cmd::SetRole { group, member, role, reply } => {
                self.command(Command::SetRole { group, member, role }, Waiter::Unit(reply));
            }
            Cmd::Leave { group, reply } => self.command(Command::Leave { group }, Waiter::Unit(reply)),
            Cmd::SetRetention { group, retention, reply } => {
                self.command(Command::SetRetention { group, retention }, Waiter::Unit(reply));
            }
            Cmd::KeepHistory { group, keep } => self.command(Command::KeepHistory { group, keep }, Waiter::Toast),
            Cmd::JoinCall { group, offer, reply } => {
                let result = signaling::join(self, group, offer).await;
                let _ = reply.send(result);
            }
            Cmd::LeaveCall => signaling::leave(self).await,
            Cmd::EndCall { reply } => {
                let result = signaling::end(self).await;
                let _ = reply.send(result);
            }
            Cmd::Call { request, reply } => self.command(Command::Request(request), Waiter::Response(reply)),
            Cmd::Export { passphrase, reply } => {
                let _ = reply.send(super::recovery::export(&passphrase).await);
            }
            Cmd::Import { file, passphrase, reply } => {
                let result = self.import(&file, &passphrase).await;
                let _ = reply.send(result);
            }
            Cmd::Reconnect => {
                if self.conn.is_none() {
                    // Overtakes the attempt under way: the next wait starts one with no delay.
                    self.backoff_ms = 0;
                    self.generation = self.generation.wrapping_add(1);
                }
            }
        }
    }

    /// A text message into the chat's outbox (sent when the device can).
    pub(super) fn send_text(&mut self, group: veche_protocol::ids::GroupId, text: String) {
        let text = text.trim().to_string();
        if !text.is_empty() {
            self.command(Command::Send { group, body: Body::Text { text } }, Waiter::Toast);
        }
    }
}
