//! The device <-> node protocol over one WebSocket.
//!
//! Every WebSocket message is one binary frame holding one postcard-encoded value: a
//! [`ClientFrame`] from the device, a [`ServerFrame`] from the node. The node speaks first with
//! [`ServerFrame::Hello`], which carries a fresh sign-in challenge. Until the device has sent a
//! successful [`Request::Register`] or [`Request::SignIn`] only those two and
//! [`Request::InvitePreview`] are served. Each request carries an id chosen by the device; the
//! node answers it exactly once with a [`ServerFrame::Response`] carrying the same id. Events
//! ([`ServerFrame::Event`]) may arrive at any time after sign-in.
//!
//! See `spec/protocol.md` for the flows and the error codes.

use crate::ids::{AccountId, ChatKind, DeviceId, GroupId, InviteId, Retention, Role};
use crate::link::SECRET_LEN;
use serde::{Deserialize, Serialize};

/// An ed25519 signature (64 bytes; any other length fails verification).
pub type Signature = Vec<u8>;

/// A frame from a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    pub id: u32,
    pub request: Request,
}

/// A frame from the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    Hello(Hello),
    Response {
        id: u32,
        result: Result<Response, ApiError>,
    },
    Event(Event),
    /// The node is closing this connection because the device broke the protocol.
    Fatal(ApiError),
}

/// First frame on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u16,
    pub node_id: String,
    pub node_name: String,
    pub registration: RegistrationPolicy,
    /// Sign this (see [`crate::auth`]); valid once, on this connection only.
    pub challenge: [u8; crate::auth::CHALLENGE_LEN],
}

/// Who may register on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistrationPolicy {
    /// Anyone who can reach the node.
    Open,
    /// Holders of a valid invite link (a chat invite or a node invite).
    Invite,
    /// Nobody new.
    Closed,
}

/// Proof of holding an invite link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteToken {
    pub invite: InviteId,
    pub secret: [u8; SECRET_LEN],
}

/// What a device asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Registers a new account with its first device, and signs in.
    Register {
        device: DeviceId,
        account: AccountId,
        display_name: String,
        invite: Option<InviteToken>,
        signature: Signature,
        /// What the signature is bound to besides the node and challenge.
        binding: crate::auth::ChannelBinding,
    },
    /// Signs in a registered device.
    SignIn {
        device: DeviceId,
        signature: Signature,
        /// What the signature is bound to besides the node and challenge.
        binding: crate::auth::ChannelBinding,
    },
    /// The signed-in account.
    Me,
    /// Uploads one-time key packages and optionally replaces the last-resort one.
    PublishKeyPackages {
        packages: Vec<Vec<u8>>,
        last_resort: Option<Vec<u8>>,
    },
    /// Takes one key package of every device of an account (one-time ones first).
    ClaimKeyPackages {
        account: AccountId,
    },
    /// Display names of accounts.
    Profiles {
        accounts: Vec<AccountId>,
    },
    /// Registers a new chat whose MLS group the device has just created (epoch 0, only itself).
    CreateChat {
        group: GroupId,
        kind: ChatKind,
        name: String,
        description: String,
        /// For direct chats: the other member. Only one direct chat per pair exists.
        peer: Option<AccountId>,
        group_info: Vec<u8>,
    },
    /// Chats the account is in.
    Chats,
    /// One chat with its members.
    Chat {
        group: GroupId,
    },
    /// An MLS commit (PublicMessage) made by a member, with the Welcome for added members and
    /// the GroupInfo of the new epoch.
    Commit {
        group: GroupId,
        commit: Vec<u8>,
        welcome: Option<Vec<u8>>,
        group_info: Vec<u8>,
    },
    /// An MLS proposal or application message for the chat's current epoch.
    Send {
        group: GroupId,
        message: Vec<u8>,
    },
    /// Log entries with sequence numbers greater than `after`, oldest first.
    Fetch {
        group: GroupId,
        after: u64,
        limit: u32,
    },
    /// The device has durably processed everything up to `seq`.
    Ack {
        group: GroupId,
        seq: u64,
    },
    /// Welcomes waiting for this device.
    Welcomes,
    /// The device has joined from this welcome; the node may drop it.
    AckWelcome {
        id: u64,
    },
    /// Creates an invite link (chat invite with `group`, node invite without; node invites are for admins).
    CreateInvite {
        group: Option<GroupId>,
        max_uses: Option<u32>,
        expires_in_secs: Option<u64>,
    },
    RevokeInvite {
        invite: InviteId,
    },
    /// Invites of a chat (owner/admin).
    Invites {
        group: GroupId,
    },
    /// What an invite link leads to. Served before sign-in (the join page shows it).
    InvitePreview {
        token: InviteToken,
    },
    /// The current GroupInfo of the chat an invite admits to, for an MLS external commit.
    JoinGroupInfo {
        token: InviteToken,
    },
    /// Joins a chat by invite with an external commit, and the GroupInfo of the new epoch.
    Join {
        token: InviteToken,
        commit: Vec<u8>,
        group_info: Vec<u8>,
    },
    /// Sets how long the node keeps the chat's log (owner only).
    SetRetention {
        group: GroupId,
        retention: Retention,
    },
    /// How many one-time key packages of this device the node still holds.
    KeyPackageCount,
    /// Renames a group chat and sets its description (owner or admin; not direct chats).
    UpdateChat {
        group: GroupId,
        name: String,
        description: String,
    },
    /// Other nodes this node has found on its LAN (node admins only).
    Nearby,
    /// This node's links to other nodes (node admins only).
    Links,
    /// Approves a link (node admins): `target` is a nearby node's peer id, or a node address
    /// `<multiaddr>/p2p/<peer id>` from the other admin.
    Link {
        target: String,
    },
    /// Removes a link (node admins).
    Unlink {
        peer_id: String,
    },
    /// Makes the signed-in account findable by members of linked nodes (`open`), or not
    /// (closed, the default: a closed account never leaves its node's directory).
    SetAccountOpen {
        open: bool,
    },
    /// Makes a group chat findable by members of linked nodes (`open`), or not (closed, the
    /// default). Owner only; not direct chats.
    SetChatOpen {
        group: GroupId,
        open: bool,
    },
    /// Open accounts and open groups of this node and of its linked nodes.
    Directory,
    /// Joins the call of a chat (starting it if nobody is in it) with the SDP offer of the
    /// device's peer connection. One call per connection. See spec/calls.md.
    CallJoin {
        group: GroupId,
        offer: String,
    },
    /// The device's SDP answer to the node's latest [`Event::CallOffer`].
    CallAnswer {
        group: GroupId,
        answer: String,
    },
    /// Leaves the call (closing the connection leaves it too).
    CallLeave {
        group: GroupId,
    },
    /// The organizer or a moderator acts on a participant of the connection's call.
    CallModerate {
        group: GroupId,
        participant: crate::call::ParticipantId,
        action: crate::call::CallAction,
    },
    /// Raises or lowers this device's hand in its call.
    CallHand {
        group: GroupId,
        raised: bool,
    },
    /// Ends the call for everyone (the organizer or a moderator).
    CallEnd {
        group: GroupId,
    },
    /// Declines the 1:1 call this account's devices are being rung for ([`Event::CallRing`]).
    CallDecline {
        group: GroupId,
    },
    /// Changes the whole call: mode or lock (the organizer or a moderator).
    CallConfigure {
        group: GroupId,
        change: crate::call::CallChange,
    },
    /// Makes a group chat the device's account owns a meeting (its chat, its call, its link).
    /// Answered with the meeting and its link's secret (shown once, like an invite's).
    CreateMeeting {
        group: GroupId,
        settings: crate::meeting::MeetingSettings,
    },
    /// The meetings of the chats the account is in (a guest: its meeting).
    Meetings,
    /// The chat's current GroupInfo, for a member whose device cannot follow the chat any more:
    /// it rejoins by an external commit that replaces its own leaf (a resync; see
    /// spec/protocol.md), sent with [`Request::Commit`]. Members only.
    GroupInfo {
        group: GroupId,
    },
    /// The account's signed home binding: the account key's signature over
    /// [`crate::auth::home_payload`]`(account, node id)`. Sent by the account's first device (its
    /// key is the account key) right after registering, and after signing in when
    /// [`Account::home_bound`] is false. Answered [`Response::Ok`]; other nodes believe this node
    /// is the account's home only with it.
    BindHome {
        signature: Signature,
    },
}

/// What the node answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Ok,
    SignedIn(Account),
    KeyPackages(Vec<Vec<u8>>),
    Profiles(Vec<Profile>),
    Chat(ChatInfo),
    Chats(Vec<ChatInfo>),
    /// The message is durably stored under this sequence number.
    Stored {
        seq: u64,
    },
    Messages {
        messages: Vec<Delivered>,
        head: u64,
    },
    Welcomes(Vec<WelcomeEnvelope>),
    InviteCreated {
        invite: InviteInfo,
        secret: [u8; SECRET_LEN],
    },
    Invites(Vec<InviteInfo>),
    InvitePreview(InvitePreview),
    GroupInfo(Vec<u8>),
    KeyPackageCount(u32),
    Nearby(Vec<NearbyNode>),
    Links(LinksInfo),
    Link(LinkInfo),
    Directory(DirectoryInfo),
    CallJoined(crate::call::CallJoined),
    /// The call has a lobby for this device: it waits to be admitted ([`crate::call::CallUpdate::Admitted`]).
    CallWaiting {
        participant: crate::call::ParticipantId,
    },
    MeetingCreated {
        meeting: Box<crate::meeting::MeetingInfo>,
        secret: [u8; SECRET_LEN],
    },
    Meetings(Vec<crate::meeting::MeetingInfo>),
}

/// What members can find: open accounts and open groups, here and on linked nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryInfo {
    pub accounts: Vec<DirectoryAccount>,
    pub groups: Vec<DirectoryGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryAccount {
    pub account: AccountId,
    pub display_name: String,
    /// Node id of its home node, and that node's name.
    pub home_node: String,
    pub home_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryGroup {
    pub group: GroupId,
    pub name: String,
    pub description: String,
    pub member_count: u32,
    pub home_node: String,
    pub home_name: String,
}

/// This node's links, and the addresses another admin can link to it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinksInfo {
    /// `<multiaddr>/p2p/<peer id>` for each interface address this node listens on.
    pub own_addrs: Vec<String>,
    pub links: Vec<LinkInfo>,
}

/// Where a link between two nodes stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkState {
    /// Both admins approved.
    Linked,
    /// Our admin approved; the other node's admin has not yet.
    WaitingForThem,
    /// The other node asked; our admin has not approved yet.
    WaitingForUs,
}

/// A link to another node, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    pub peer_id: String,
    pub name: String,
    pub state: LinkState,
    pub addrs: Vec<String>,
    pub connected: bool,
    /// Milliseconds since the Unix epoch the other node was last heard from (0: never).
    pub last_seen_ms: u64,
    /// Entries of chats homed here that the other node has not confirmed holding yet.
    pub queued: u64,
}

/// A node found on the LAN by mDNS. `verified`: a libp2p connection proved its peer id (mDNS
/// alone is only a hint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearbyNode {
    pub peer_id: String,
    pub name: String,
    pub http_port: u16,
    /// Multiaddrs it announced.
    pub addrs: Vec<String>,
    pub verified: bool,
    pub connected: bool,
    /// Milliseconds since the Unix epoch of the last announcement heard.
    pub last_seen_ms: u64,
}

/// Something that happened, pushed to signed-in devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A new log entry in a chat the device is in.
    Message(Delivered),
    /// The device was added to a chat.
    Welcome(WelcomeEnvelope),
    /// The device fell behind on live events; fetch to catch up.
    Lagged,
    /// A chat's name or description changed; ask for its `Chat` again.
    ChatUpdated { group: GroupId },
    /// The node's new SDP offer for this device's call (tracks came or went): answer it with
    /// [`Request::CallAnswer`].
    CallOffer { group: GroupId, sdp: String },
    /// Something happened in this device's call.
    Call { group: GroupId, update: crate::call::CallUpdate },
    /// Someone calls this account in a direct chat: join the chat's call to answer, or
    /// [`Request::CallDecline`]. Sent to every connection of the account.
    CallRing { group: GroupId, from: AccountId, name: String },
    /// The ring of [`Event::CallRing`] is over.
    CallRingEnded { group: GroupId, reason: crate::call::RingEnd },
}

/// The signed-in account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub account: AccountId,
    pub device: DeviceId,
    pub display_name: String,
    pub node_admin: bool,
    /// A guest account: made with a meeting link, it may only be in that meeting's chat and
    /// call, until the meeting's guest time ends.
    pub guest_of: Option<GroupId>,
    /// The node holds the account's signed home binding ([`Request::BindHome`]).
    pub home_bound: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub account: AccountId,
    pub display_name: String,
}

/// Whether a log entry is an MLS handshake (commit/proposal) or an application message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    Handshake,
    Application,
}

/// One entry of a chat's log as delivered to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    pub group: GroupId,
    pub seq: u64,
    pub kind: EntryKind,
    pub epoch: u64,
    /// The account whose device sent it (as authenticated by the node; MLS authenticates again).
    pub sender: AccountId,
    /// Node clock when stored, milliseconds since the Unix epoch.
    pub stored_at_ms: u64,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeEnvelope {
    pub id: u64,
    pub group: GroupId,
    /// Sequence number of the commit that added the device; read the log after it.
    pub commit_seq: u64,
    pub welcome: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub account: AccountId,
    pub display_name: String,
    pub role: Role,
    /// Node id of the member's home node (where the account lives).
    pub home_node: String,
    /// That node's name, as far as this node knows it.
    pub home_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatInfo {
    pub group: GroupId,
    pub kind: ChatKind,
    pub name: String,
    pub description: String,
    /// Node id of the chat's home node, which orders its messages.
    pub home_node: String,
    pub retention: Retention,
    pub epoch: u64,
    /// Sequence number of the newest log entry (0: empty).
    pub head: u64,
    pub members: Vec<MemberInfo>,
    /// For a direct chat: the member it was opened with (its creator is the other one).
    pub peer: Option<AccountId>,
    /// Members whose accounts the node deleted (guests whose meeting is over) and who are still
    /// in the chat's MLS group: an owner's or admin's device commits their removal.
    pub gone: Vec<AccountId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    pub invite: InviteId,
    pub group: Option<GroupId>,
    pub created_by: AccountId,
    pub created_at_ms: u64,
    pub expires_at_ms: Option<u64>,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitePreview {
    pub group: Option<GroupId>,
    pub name: String,
    pub description: String,
    pub member_count: u32,
    pub node_name: String,
    /// The link is a meeting's: registering with it makes a guest account.
    pub meeting: Option<Box<crate::meeting::MeetingInfo>>,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    /// Human-readable explanation, safe to show to the member.
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }
}

/// Machine-readable reason for a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame could not be decoded.
    Malformed,
    /// A field is invalid (the message says which).
    BadRequest,
    /// Larger than the node accepts.
    TooLarge,
    /// Sign in first.
    Unauthenticated,
    /// Signature did not verify against this connection's challenge.
    BadSignature,
    /// Already signed in on this connection, or the challenge was used.
    ChallengeUsed,
    /// The account may not do this (role, membership, node policy).
    Forbidden,
    NotFound,
    /// Already exists (device registered, direct chat for this pair, chat id taken).
    Conflict,
    /// The commit or message is for an epoch that is no longer current: fetch, process, retry.
    StaleEpoch {
        current: u64,
    },
    /// Registration needs an invite link on this node.
    InviteRequired,
    RegistrationClosed,
    InviteInvalid,
    InviteExpired,
    InviteRevoked,
    InviteUsedUp,
    /// Slow down.
    RateLimited,
    /// The node failed; the request may be retried.
    Internal,
    /// The chat's home node (another node) cannot be reached now; retry later.
    Unavailable,
    /// A per-account bound of this node is reached (live invite links, stored bytes, chats); the
    /// message says which and how to free some.
    QuotaExceeded,
}

/// Decoding a frame failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is larger than {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], max: usize) -> Result<T, FrameError> {
    if bytes.len() > max {
        return Err(FrameError::TooLarge { len: bytes.len(), max });
    }
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(FrameError::Malformed(format!("{} trailing bytes after the frame", rest.len()))),
        Err(e) => Err(FrameError::Malformed(e.to_string())),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard only fails on writer errors or unsupported types; a Vec writer and our types have neither.
    postcard::to_stdvec(value).unwrap_or_default()
}

impl ClientFrame {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        decode(bytes, crate::MAX_FRAME_BYTES)
    }
}

impl ServerFrame {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    /// The length of [`ServerFrame::encode`]'s output, measured without encoding.
    pub fn encoded_len(&self) -> usize {
        postcard::serialize_with_flavor(self, postcard::ser_flavors::Size::default()).unwrap_or(0)
    }
    /// Node frames can be large (a page of messages); devices accept up to 16 MiB.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        decode(bytes, 16 * 1024 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frame = ClientFrame { id: 7, request: Request::Send { group: GroupId([1; 16]), message: vec![1, 2, 3] } };
        assert_eq!(ClientFrame::decode(&frame.encode()).unwrap(), frame);
        let resp = ServerFrame::Response {
            id: 7,
            result: Err(ApiError::new(ErrorCode::StaleEpoch { current: 4 }, "fetch and retry")),
        };
        assert_eq!(ServerFrame::decode(&resp.encode()).unwrap(), resp);
    }

    #[test]
    fn encoded_len_is_the_encoding_length() {
        let frames = [
            ServerFrame::Response { id: 300, result: Err(ApiError::new(ErrorCode::TooLarge, "x".repeat(200))) },
            ServerFrame::Fatal(ApiError::new(ErrorCode::RateLimited, "slow down")),
            ServerFrame::Event(Event::Lagged),
        ];
        for frame in frames {
            assert_eq!(frame.encoded_len(), frame.encode().len());
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = ClientFrame { id: 1, request: Request::Me }.encode();
        bytes.push(0);
        assert!(matches!(ClientFrame::decode(&bytes), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let bytes = ClientFrame { id: 1, request: Request::Me }.encode();
        for cut in 0..bytes.len() {
            assert!(ClientFrame::decode(&bytes[..cut]).is_err());
        }
        let big = vec![0u8; crate::MAX_FRAME_BYTES + 1];
        assert!(matches!(ClientFrame::decode(&big), Err(FrameError::TooLarge { .. })));
    }
}
