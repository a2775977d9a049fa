//! What the views show: reactive signals the device task writes and the views read.

use std::collections::{BTreeMap, HashMap};

use leptos::prelude::*;
use veche_protocol::ids::{AccountId, ChatKind, GroupId, Retention, Role};
use veche_protocol::wire::{MemberInfo, RegistrationPolicy};
use veche_ui_core::i18n::Lang;
use veche_ui_core::model::Delivery;

use veche_device::{HistoryBody, SystemEvent};

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Opening the browser's store.
    Loading,
    /// Another tab of this browser drives the device.
    OtherTab,
    /// No device yet: onboarding.
    Welcome,
    Ready,
    /// The store could not be opened.
    Failed(String),
}

// The call this page is in, and where it is with the lobby: pure, in `veche_ui_core::call` (with
// the reducer of the node's updates).
pub use veche_ui_core::call::{CallLobby, CallState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Online,
    Connecting,
    Offline,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Me {
    pub account: AccountId,
    pub name: String,
    pub node_admin: bool,
    /// A guest account of this meeting's chat (known once signed in).
    pub guest_of: Option<GroupId>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MsgBody {
    Text(String),
    System(SystemEvent),
    /// What became of a 1:1 call.
    Call(veche_protocol::content::CallRecord),
    /// A call's saved whiteboard.
    Whiteboard(Vec<veche_protocol::whiteboard::Item>),
    /// The node said this member sent it; MLS says otherwise: a warning, not their message.
    Forged {
        claimed: AccountId,
    },
}

impl MsgBody {
    pub fn of(body: &HistoryBody) -> MsgBody {
        match body {
            HistoryBody::Text(t) => MsgBody::Text(t.clone()),
            HistoryBody::System(s) => MsgBody::System(s.clone()),
            HistoryBody::Call(record) => MsgBody::Call(*record),
            HistoryBody::Whiteboard(items) => MsgBody::Whiteboard(items.clone()),
            HistoryBody::Forged { claimed } => MsgBody::Forged { claimed: *claimed },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MsgView {
    /// Stable key: `s<seq>` once stored, `o<id>` while in the outbox.
    pub key: String,
    pub seq: Option<u64>,
    pub outbox_id: Option<u64>,
    pub sender: AccountId,
    pub own: bool,
    pub time_ms: u64,
    pub body: MsgBody,
    pub delivery: Delivery,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatState {
    pub group: GroupId,
    pub kind: ChatKind,
    pub name: String,
    pub description: String,
    pub members: Vec<MemberInfo>,
    pub retention: Option<Retention>,
    pub peer: Option<AccountId>,
    pub active: bool,
    pub keep_history: bool,
    pub seen: u64,
    pub messages: Vec<MsgView>,
}

impl ChatState {
    pub fn role_of(&self, account: &AccountId) -> Option<Role> {
        self.members.iter().find(|m| m.account == *account).map(|m| m.role)
    }

    /// The other member of a direct chat.
    pub fn other(&self, me: &AccountId) -> Option<AccountId> {
        self.members.iter().map(|m| m.account).find(|a| a != me).or(self.peer.filter(|p| p != me))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    pub id: u64,
    pub text: String,
    pub error: bool,
}

/// Where the member is.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Chats,
    Chat(GroupId),
    /// The join page; the fragment holds the link's secret.
    Join(String),
    Settings,
}

#[derive(Clone, Copy)]
pub struct AppState {
    pub phase: RwSignal<Phase>,
    pub conn: RwSignal<ConnState>,
    pub me: RwSignal<Option<Me>>,
    pub node_name: RwSignal<String>,
    /// This node's id (members living elsewhere show their node).
    pub node_id: RwSignal<String>,
    pub registration: RwSignal<Option<RegistrationPolicy>>,
    pub chats: RwSignal<BTreeMap<GroupId, ChatState>>,
    pub names: RwSignal<HashMap<AccountId, String>>,
    pub toasts: RwSignal<Vec<Toast>>,
    pub lang: RwSignal<Lang>,
    pub route: RwSignal<Route>,
    pub drafts: RwSignal<HashMap<GroupId, String>>,
    pub call: RwSignal<Option<CallState>>,
    /// Meetings of the chats this account is in.
    pub meetings: RwSignal<BTreeMap<GroupId, veche_protocol::meeting::MeetingInfo>>,
    /// Meeting links this page made (their secret is shown once; the link is also posted in the
    /// meeting's chat).
    pub meeting_links: RwSignal<BTreeMap<GroupId, String>>,
    /// A 1:1 call ringing this account.
    pub ringing: RwSignal<Option<Ringing>>,
    /// The whiteboard of the call this page is in.
    pub whiteboard: RwSignal<crate::media::whiteboard::Whiteboard>,
    /// The chat whose call the member is about to join: its pre-join view is open.
    pub prejoin: RwSignal<Option<GroupId>>,
    /// The camera, microphone and speaker to join calls with.
    pub media: RwSignal<crate::media::call::MediaChoice>,
    /// The SHA-256 of the node's TLS trust anchor (its own CA), as the node's `/healthz` told it:
    /// `None` until it has answered, `Some(None)` when the node has none (`--tls off`, ACME).
    /// Links this page makes carry it (`f=`); Settings shows it.
    pub tls_fingerprint: RwSignal<Option<Option<[u8; 32]>>>,
}

/// Someone calling this account in a direct chat.
#[derive(Debug, Clone, PartialEq)]
pub struct Ringing {
    pub group: GroupId,
    pub from: AccountId,
    pub name: String,
}

impl AppState {
    pub fn new(lang: Lang, route: Route) -> Self {
        AppState {
            phase: RwSignal::new(Phase::Loading),
            conn: RwSignal::new(ConnState::Connecting),
            me: RwSignal::new(None),
            node_name: RwSignal::new(String::new()),
            node_id: RwSignal::new(String::new()),
            registration: RwSignal::new(None),
            chats: RwSignal::new(BTreeMap::new()),
            names: RwSignal::new(HashMap::new()),
            toasts: RwSignal::new(Vec::new()),
            lang: RwSignal::new(lang),
            route: RwSignal::new(route),
            drafts: RwSignal::new(HashMap::new()),
            call: RwSignal::new(None),
            meetings: RwSignal::new(BTreeMap::new()),
            meeting_links: RwSignal::new(BTreeMap::new()),
            ringing: RwSignal::new(None),
            whiteboard: RwSignal::new(Default::default()),
            prejoin: RwSignal::new(None),
            media: RwSignal::new(crate::media::call::MediaChoice::remembered()),
            tls_fingerprint: RwSignal::new(None),
        }
    }

    /// A display name, or the start of the account id while unknown.
    pub fn name_of(&self, account: &AccountId) -> String {
        self.names.with(|names| names.get(account).cloned()).unwrap_or_else(|| account.to_hex()[..8].to_string())
    }

    pub fn toast(&self, text: String, error: bool) {
        let id = js_sys::Date::now() as u64;
        self.toasts.update(|t| {
            t.push(Toast { id, text, error });
            if t.len() > 4 {
                t.remove(0);
            }
        });
        let toasts = self.toasts;
        wasm_bindgen_futures::spawn_local(async move {
            crate::device::sleep_ms(if error { 8000 } else { 4000 }).await;
            toasts.update(|t| t.retain(|x| x.id != id));
        });
    }
}
