//! Copies the core's state of a chat (`veche_device::Model`) into the views' signals after it
//! changed.

use leptos::prelude::*;
use veche_protocol::ids::GroupId;
use veche_protocol::wire::ChatInfo;
use veche_ui_core::model::Delivery;

use super::Device;
use crate::state::{ChatState, MsgBody, MsgView};
use veche_device::HistoryBody;

impl Device {
    /// Everything, after loading the store.
    pub(super) fn publish_all(&mut self) {
        let profiles = self.core.model().profiles.clone();
        self.ui.names.update(|names| names.extend(profiles));
        let groups: Vec<GroupId> = self.core.model().chats.keys().copied().collect();
        for group in groups {
            self.publish_chat(group);
        }
    }

    /// One chat's messages (history then outbox) and local settings.
    pub(super) fn publish_chat(&mut self, group: GroupId) {
        let model = self.core.model();
        let Some(chat) = model.chats.get(&group) else { return };
        let mut messages: Vec<MsgView> = model
            .history
            .get(&group)
            .into_iter()
            .flat_map(|h| h.values())
            .map(|e| MsgView {
                key: format!("s{}", e.seq),
                seq: Some(e.seq),
                outbox_id: None,
                sender: e.sender,
                own: e.own,
                time_ms: if e.sent_at_ms > 0 { e.sent_at_ms } else { e.stored_at_ms },
                body: MsgBody::of(&e.body),
                delivery: Delivery::Stored,
            })
            .collect();
        if let Some(me) = model.me() {
            messages.extend(model.outbox.get(&group).into_iter().flat_map(|o| o.iter()).map(|(id, e)| MsgView {
                key: format!("o{id}"),
                seq: None,
                outbox_id: Some(*id),
                sender: me,
                own: true,
                time_ms: e.sent_at_ms,
                body: MsgBody::of(&HistoryBody::of(e.body.clone())),
                delivery: if e.failed { Delivery::Failed } else { Delivery::Sending },
            }));
        }
        let (kind, name, active, keep_history, seen) =
            (chat.kind, chat.name.clone(), chat.active, chat.keep_history, chat.seen);
        drop(model);
        self.ui.chats.update(|chats| {
            let entry = chats.entry(group).or_insert_with(|| ChatState {
                group,
                kind,
                name: name.clone(),
                description: String::new(),
                members: Vec::new(),
                retention: None,
                peer: None,
                active,
                keep_history,
                seen,
                messages: Vec::new(),
            });
            entry.active = active;
            entry.keep_history = keep_history;
            entry.seen = seen;
            entry.messages = messages;
        });
    }

    /// The node's view of a chat: name, description, members with names and roles.
    pub(super) fn apply_info(&mut self, info: ChatInfo) {
        if !self.core.model().chats.contains_key(&info.group) {
            return;
        }
        if self.ui.chats.with_untracked(|c| !c.contains_key(&info.group)) {
            self.publish_chat(info.group);
        }
        self.ui.names.update(|names| {
            for m in &info.members {
                names.insert(m.account, m.display_name.clone());
            }
        });
        self.ui.chats.update(|chats| {
            if let Some(chat) = chats.get_mut(&info.group) {
                chat.name = info.name;
                chat.description = info.description;
                chat.members = info.members;
                chat.retention = Some(info.retention);
                chat.peer = info.peer;
                chat.kind = info.kind;
            }
        });
    }
}
