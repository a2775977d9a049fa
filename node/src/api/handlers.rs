//! Request dispatch: one function from a decoded request to a response.

use crate::service::{self, Node, Session, accounts, chats, delivery, directory, invites, replica};
use std::time::Duration;
use veche_protocol::auth;
use veche_protocol::ids::GroupId;
use veche_protocol::wire::{ApiError, ErrorCode, Request, Response};

/// Failed sign-in attempts before the connection is closed.
const MAX_AUTH_FAILURES: u32 = 3;

/// Per-connection state.
pub struct Conn {
    node: Node,
    challenge: [u8; auth::CHALLENGE_LEN],
    /// This connection's TLS exporter (none without TLS).
    exporter: Option<[u8; auth::TLS_EXPORTER_LEN]>,
    challenge_used: bool,
    auth_failures: u32,
    session: Option<Session>,
    /// A guest account's meeting chat: all it may take part in.
    guest: Option<GroupId>,
    /// When a guest's time is over (ms since the Unix epoch): the connection closes then.
    guest_until_ms: Option<u64>,
    /// The connection's outgoing queue, for call signaling the node starts.
    out: Option<service::calls::Outbox>,
    /// The call this connection is in.
    call: Option<service::calls::InCall>,
    /// A call joined by the last request, whose answer is now on its way to the device.
    joined: Option<service::calls::InCall>,
}

/// The answer to one request, and whether to close the connection after it.
pub struct Outcome {
    pub result: Result<Response, ApiError>,
    pub close: Option<ApiError>,
}

impl Conn {
    pub fn new(
        node: Node,
        challenge: [u8; auth::CHALLENGE_LEN],
        exporter: Option<[u8; auth::TLS_EXPORTER_LEN]>,
    ) -> Self {
        Conn {
            node,
            challenge,
            exporter,
            challenge_used: false,
            auth_failures: 0,
            session: None,
            guest: None,
            guest_until_ms: None,
            out: None,
            call: None,
            joined: None,
        }
    }

    /// After sign-in: a guest account's meeting, and when its guest time is over.
    fn set_guest(&mut self, guest_of: Option<GroupId>) {
        self.guest = guest_of;
        self.guest_until_ms = None;
        if let (Some(_), Some(session)) = (guest_of, self.session) {
            let until = self
                .node
                .store
                .read()
                .ok()
                .and_then(|txn| service::meetings::guest(&txn, &session.account).ok().flatten())
                .map(|g| g.until_ms);
            // A guest without its record is over (sign-in refuses that already).
            self.guest_until_ms = Some(until.unwrap_or(0));
        }
    }

    /// When this connection's guest time is over, if it is a guest's.
    pub fn guest_until_ms(&self) -> Option<u64> {
        self.guest_until_ms
    }

    /// Lets the node send call signaling on this connection.
    pub fn with_outbox(mut self, out: service::calls::Outbox) -> Self {
        self.out = Some(out);
        self
    }

    /// Runs after the answer to a request has been queued on the connection: a device that just
    /// joined a call may now get the node's offers.
    pub async fn after_response(&mut self) {
        if let (Some(call), Some(calls)) = (self.joined.take(), &self.node.calls) {
            calls.ready(call).await;
        }
    }

    /// Leaves the connection's call, if any (the connection is closing).
    pub fn leave_call(&mut self) {
        if let (Some(call), Some(calls)) = (self.call.take(), &self.node.calls) {
            calls.leave(call);
        }
    }

    pub fn session(&self) -> Option<Session> {
        self.session
    }

    /// The TLS exporter a signature with `binding` covers on this connection, or why it cannot.
    fn exporter_for(
        &self,
        binding: auth::ChannelBinding,
    ) -> Result<Option<[u8; auth::TLS_EXPORTER_LEN]>, &'static str> {
        match (binding, self.exporter) {
            (auth::ChannelBinding::Unbound, _) => Ok(None),
            (auth::ChannelBinding::TlsExporter, Some(exporter)) => Ok(Some(exporter)),
            // The device saw TLS, the node did not: something in between terminated it.
            (auth::ChannelBinding::TlsExporter, None) => {
                Err("the signature is bound to a TLS session, but this connection reached the node without TLS: \
                 something between the device and the node terminated it")
            }
        }
    }

    fn bad_signature(&mut self) -> Outcome {
        self.bad_signature_because(
            "signature does not match this connection's challenge (and TLS session, when bound to it): \
             if the device signed a TLS session, something between it and the node terminated that session",
        )
    }

    fn bad_signature_because(&mut self, why: &str) -> Outcome {
        self.auth_failures += 1;
        let error = ApiError::new(ErrorCode::BadSignature, why);
        let close = (self.auth_failures >= MAX_AUTH_FAILURES)
            .then(|| ApiError::new(ErrorCode::BadSignature, "too many failed sign-in attempts"));
        Outcome { result: Err(error), close }
    }
}

fn reply(result: Result<Response, ApiError>) -> Outcome {
    Outcome { result, close: None }
}

fn ok(result: Result<(), ApiError>) -> Outcome {
    reply(result.map(|()| Response::Ok))
}

/// Whether this connection may make `request`: a guest's may take part in its meeting only
/// (`meetings::guest_may`). Every request a signed-in connection makes passes here, one by one
/// (`handle`) or as a batch of `Send`s (`handle_sends`).
fn guest_may(conn: &Conn, request: &Request) -> Result<(), ApiError> {
    let Some(group) = conn.guest else { return Ok(()) };
    service::meetings::guest_may(request, group, || match request {
        Request::JoinGroupInfo { token } | Request::Join { token, .. } => invites::group_of(&conn.node, token),
        _ => None,
    })
}

/// Handles consecutive `Send`s of one connection to one chat, in order: one write transaction
/// here, or one request to the chat's home node. One result per message.
pub async fn handle_sends(conn: &mut Conn, group: GroupId, messages: Vec<Vec<u8>>) -> Vec<Result<Response, ApiError>> {
    let Some(session) = conn.session else {
        let refused = ApiError::new(ErrorCode::Unauthenticated, "sign in first");
        return vec![Err(refused); messages.len()];
    };
    // The same check as for a single request: a guest sends to its meeting's chat only.
    if let Err(refused) = guest_may(conn, &Request::Send { group, message: Vec::new() }) {
        return vec![Err(refused); messages.len()];
    }
    let stored = match replica::route_sends(&conn.node, session, group, messages).await {
        Ok(results) => results,
        Err(here) => delivery::send_many(&conn.node, session, group, here).await,
    };
    stored.into_iter().map(|r| r.map(|seq| Response::Stored { seq })).collect()
}

/// Call signaling: joining, answering the node's offers, leaving.
async fn call(conn: &mut Conn, session: Session, request: Request) -> Result<Response, ApiError> {
    let node = conn.node.clone();
    let Some(calls) = node.calls.clone() else {
        return Err(ApiError::new(ErrorCode::Unavailable, "calls are not available on this node"));
    };
    let not_in = |group| ApiError::new(ErrorCode::NotFound, format!("this connection is not in the call of {group}"));
    match request {
        Request::CallJoin { group, offer } => {
            // A call the node removed this connection from (removed, ended, media failed) is over.
            if conn.call.is_some_and(|c| !calls.is_in(c)) {
                conn.call = None;
            }
            // Someone let in from the lobby opens its media session with the same id.
            let admitted = conn.call.filter(|c| c.group == group && calls.is_admitted(*c));
            if conn.call.is_some() && admitted.is_none() {
                return Err(ApiError::new(ErrorCode::Conflict, "this connection is already in a call; leave it first"));
            }
            let out = conn.out.clone().ok_or_else(|| service::internal("connection without an outbox"))?;
            let joining = service::calls::Joining { group, offer, guest: conn.guest.is_some(), admitted };
            match calls.join(&node, session, joining, out).await? {
                service::calls::Joined::InCall(in_call, joined) => {
                    conn.call = Some(in_call);
                    conn.joined = Some(in_call);
                    Ok(Response::CallJoined(joined))
                }
                service::calls::Joined::Waiting(in_call) => {
                    conn.call = Some(in_call);
                    Ok(Response::CallWaiting { participant: in_call.participant })
                }
            }
        }
        Request::CallAnswer { group, answer } => match conn.call {
            Some(c) if c.group == group => calls.answer(c, answer).await.map(|()| Response::Ok),
            _ => Err(not_in(group)),
        },
        Request::CallModerate { group, participant, action } => match conn.call {
            Some(c) if c.group == group => calls.moderate(c, participant, action).await.map(|()| Response::Ok),
            _ => Err(not_in(group)),
        },
        Request::CallHand { group, raised } => match conn.call {
            Some(c) if c.group == group => calls.hand(c, raised).await.map(|()| Response::Ok),
            _ => Err(not_in(group)),
        },
        Request::CallEnd { group } => match conn.call {
            Some(c) if c.group == group => calls.end(c).await.map(|()| Response::Ok),
            _ => Err(not_in(group)),
        },
        Request::CallDecline { group } => calls.decline(&session, group).map(|()| Response::Ok),
        Request::CallConfigure { group, change } => match conn.call {
            Some(c) if c.group == group => calls.configure(c, change).await.map(|()| Response::Ok),
            _ => Err(not_in(group)),
        },
        Request::CallLeave { group } => match conn.call {
            Some(c) if c.group == group => {
                conn.leave_call();
                Ok(Response::Ok)
            }
            _ => Err(not_in(group)),
        },
        _ => Err(service::internal("not a call request")),
    }
}

/// Handles one request.
pub async fn handle(conn: &mut Conn, request: Request) -> Outcome {
    let node = conn.node.clone();
    let session = match (&request, conn.session) {
        (Request::Register { .. } | Request::SignIn { .. }, Some(_)) => {
            return reply(Err(ApiError::new(ErrorCode::ChallengeUsed, "already signed in on this connection")));
        }
        (Request::Register { device, account, display_name, invite, signature, binding }, None) => {
            if conn.challenge_used {
                return reply(Err(ApiError::new(ErrorCode::ChallengeUsed, "challenge already used; reconnect")));
            }
            let exporter = match conn.exporter_for(*binding) {
                Ok(exporter) => exporter,
                Err(why) => return conn.bad_signature_because(why),
            };
            let payload = auth::register_payload(
                &node.info.node_id,
                &conn.challenge,
                device,
                account,
                display_name,
                exporter.as_ref(),
            );
            if auth::verify(device, &payload, signature).is_err() {
                return conn.bad_signature();
            }
            let result = accounts::register(&node, *device, *account, display_name, invite.clone()).await;
            if let Ok(account) = &result {
                conn.challenge_used = true;
                conn.session = Some(Session { account: account.account, device: account.device });
                conn.set_guest(account.guest_of);
            }
            return reply(result.map(Response::SignedIn));
        }
        (Request::SignIn { device, signature, binding }, None) => {
            if conn.challenge_used {
                return reply(Err(ApiError::new(ErrorCode::ChallengeUsed, "challenge already used; reconnect")));
            }
            let exporter = match conn.exporter_for(*binding) {
                Ok(exporter) => exporter,
                Err(why) => return conn.bad_signature_because(why),
            };
            let payload = auth::sign_in_payload(&node.info.node_id, &conn.challenge, device, exporter.as_ref());
            if auth::verify(device, &payload, signature).is_err() {
                return conn.bad_signature();
            }
            let result = accounts::sign_in(&node, *device);
            if let Ok(account) = &result {
                conn.challenge_used = true;
                conn.session = Some(Session { account: account.account, device: account.device });
                conn.set_guest(account.guest_of);
            }
            return reply(result.map(Response::SignedIn));
        }
        (Request::InvitePreview { token }, session) => {
            let local = invites::preview(&node, token).map(Response::InvitePreview);
            if invites::is_unknown(&node, token, &local) {
                let remote = replica::remote_invite(&node, session, token.invite, request.clone()).await;
                return reply(remote);
            }
            return reply(local);
        }
        (_, None) => {
            return reply(Err(ApiError::new(ErrorCode::Unauthenticated, "sign in first")));
        }
        (_, Some(session)) => session,
    };
    if let Err(e) = guest_may(conn, &request) {
        return reply(Err(e));
    }
    // Chats homed on another node are served there.
    if let Some(result) = replica::route(&node, session, &request).await {
        return reply(result);
    }
    match request {
        Request::Register { .. } | Request::SignIn { .. } | Request::InvitePreview { .. } => {
            reply(Err(service::internal("unreachable request kind")))
        }
        r @ (Request::CallJoin { .. }
        | Request::CallAnswer { .. }
        | Request::CallLeave { .. }
        | Request::CallModerate { .. }
        | Request::CallHand { .. }
        | Request::CallEnd { .. }
        | Request::CallConfigure { .. }
        | Request::CallDecline { .. }) => reply(call(conn, session, r).await),
        Request::CreateMeeting { group, settings } => reply(
            service::meetings::create(&node, session, group, settings)
                .await
                .map(|(meeting, secret)| Response::MeetingCreated { meeting: Box::new(meeting), secret }),
        ),
        Request::Meetings => reply(service::meetings::list(&node, &session).map(Response::Meetings)),
        Request::BindHome { signature } => ok(accounts::bind_home(&node, session, signature).await),
        Request::Me => reply(accounts::sign_in(&node, session.device).map(Response::SignedIn)),
        Request::PublishKeyPackages { packages, last_resort } => {
            ok(accounts::publish_key_packages(&node, session, packages, last_resort).await)
        }
        Request::ClaimKeyPackages { account } => {
            reply(accounts::claim(&node, session, account).await.map(Response::KeyPackages))
        }
        Request::Profiles { accounts: ids } => reply(accounts::profiles(&node, &ids).map(Response::Profiles)),
        Request::CreateChat { group, kind, name, description, peer, group_info } => {
            let new = chats::NewChat { group, kind, name, description, peer, group_info };
            reply(chats::create(&node, session, new).await.map(Response::Chat))
        }
        Request::Chats => reply(chats::list(&node, &session).map(Response::Chats)),
        Request::Chat { group } => reply(chats::get(&node, &session, group).map(Response::Chat)),
        Request::Commit { group, commit, welcome, group_info } => reply(
            delivery::commit(&node, session, group, commit, welcome, group_info)
                .await
                .map(|seq| Response::Stored { seq }),
        ),
        Request::Send { group, message } => {
            reply(delivery::send(&node, session, group, message).await.map(|seq| Response::Stored { seq }))
        }
        Request::GroupInfo { group } => reply(delivery::group_info(&node, &session, group).map(Response::GroupInfo)),
        Request::Fetch { group, after, limit } => reply(
            delivery::fetch(&node, &session, group, after, limit)
                .map(|(messages, head)| Response::Messages { messages, head }),
        ),
        Request::Ack { group, seq } => ok(delivery::ack(&node, session, group, seq).await),
        Request::Welcomes => reply(delivery::welcomes(&node, &session).map(Response::Welcomes)),
        Request::AckWelcome { id } => ok(delivery::ack_welcome(&node, session, id).await),
        Request::CreateInvite { group, max_uses, expires_in_secs } => reply(
            invites::create(&node, session, group, max_uses, expires_in_secs.map(Duration::from_secs))
                .await
                .map(|(invite, secret)| Response::InviteCreated { invite, secret }),
        ),
        Request::RevokeInvite { invite } => ok(invites::revoke(&node, session, invite).await),
        Request::Invites { group } => reply(invites::list(&node, &session, group).map(Response::Invites)),
        Request::JoinGroupInfo { token } => {
            let local = invites::group_info(&node, &token).map(Response::GroupInfo);
            if invites::is_unknown(&node, &token, &local) {
                let request = Request::JoinGroupInfo { token: token.clone() };
                return reply(replica::remote_invite(&node, Some(session), token.invite, request).await);
            }
            reply(local)
        }
        Request::Join { token, commit, group_info } => {
            if invites::is_unknown::<()>(&node, &token, &Err(ApiError::new(ErrorCode::InviteInvalid, ""))) {
                let request = Request::Join { token: token.clone(), commit, group_info };
                return reply(replica::remote_invite(&node, Some(session), token.invite, request).await);
            }
            reply(invites::join(&node, session, token, commit, group_info).await.map(|seq| Response::Stored { seq }))
        }
        Request::SetRetention { group, retention } => ok(chats::set_retention(&node, session, group, retention).await),
        Request::UpdateChat { group, name, description } => {
            ok(chats::update(&node, session, group, name, description).await)
        }
        Request::Nearby => reply(crate::service::federation::nearby(&node, session).await.map(Response::Nearby)),
        Request::Links => reply(crate::service::federation::links(&node, session).await.map(Response::Links)),
        Request::Link { target } => {
            reply(crate::service::federation::link(&node, session, target).await.map(Response::Link))
        }
        Request::Unlink { peer_id } => ok(crate::service::federation::unlink(&node, session, peer_id).await),
        Request::KeyPackageCount => reply(accounts::key_package_count(&node, &session).map(Response::KeyPackageCount)),
        Request::SetAccountOpen { open } => ok(directory::set_account_open(&node, session, open).await),
        Request::SetChatOpen { group, open } => ok(directory::set_chat_open(&node, session, group, open).await),
        Request::Directory => reply(directory::list(&node).await.map(Response::Directory)),
    }
}
