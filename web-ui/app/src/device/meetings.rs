//! Meetings: creating one (its chat, then the meeting and its link, which is posted in the chat
//! so its members can share it), and keeping the list of this account's meetings.

use leptos::prelude::*;
use veche_device::{Command, Outcome};
use veche_protocol::content::Body;
use veche_protocol::ids::GroupId;
use veche_protocol::link::InviteLink;
use veche_protocol::meeting::MeetingSettings;
use veche_protocol::wire::{Request, Response};

use super::{Device, Waiter, api_message, node_fingerprint, page_origin};

impl Device {
    pub(super) async fn create_meeting(&mut self, settings: MeetingSettings) -> Result<GroupId, String> {
        let title = settings.title.trim().to_string();
        if title.is_empty() {
            return Err("@err-meeting-title".into());
        }
        let description: String =
            settings.description.chars().take(veche_protocol::validate::MAX_CHAT_DESCRIPTION).collect();
        let group = match self.run(Command::CreateGroup { name: title, description }).await {
            Ok(Outcome::Group(group)) => group,
            Ok(_) => return Err("@err-unexpected".into()),
            Err(e) => return Err(api_message(e)),
        };
        let (meeting, secret) = match self.call(Request::CreateMeeting { group, settings }).await {
            Ok(Response::MeetingCreated { meeting, secret }) => (meeting, secret),
            Ok(_) => return Err("@err-unexpected".into()),
            Err(e) => return Err(api_message(e)),
        };
        let link = InviteLink {
            node_url: page_origin(),
            invite: meeting.invite,
            secret,
            group: Some(group),
            fingerprint: node_fingerprint(self.ui).await,
        }
        .to_url();
        self.ui.meeting_links.update(|l| {
            l.insert(group, link.clone());
        });
        self.ui.meetings.update(|m| {
            m.insert(group, *meeting);
        });
        // The link lives on in the meeting's chat (end-to-end encrypted, like every message).
        self.command(Command::Send { group, body: Body::Text { text: link } }, Waiter::Toast);
        Ok(group)
    }

    /// Asks the node for the meetings of this account's chats.
    pub(super) async fn refresh_meetings(&mut self) {
        if let Ok(Response::Meetings(list)) = self.call(Request::Meetings).await {
            self.ui.meetings.set(list.into_iter().map(|m| (m.group, m)).collect());
        }
    }
}
