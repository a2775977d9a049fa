//! The call's data channel on each peer connection (spec/calls.md §7): the device opens one
//! labelled [`CHANNEL_LABEL`]; what arrives on it goes to the room ([`Room::on_signal`]), and the
//! room's [`Action::Signal`]s go out on the channels of the participants they are for.
//!
//! [`Room::on_signal`]: crate::room::Room::on_signal
//! [`Action::Signal`]: crate::room::Action::Signal

use std::time::Instant as WallInstant;

use rtc::data_channel::{RTCDataChannelId, RTCDataChannelMessage};
use rtc::peer_connection::event::RTCDataChannelEvent;
use veche_protocol::incall::{CHANNEL_LABEL, FromNode};

use super::{MediaSessions, PeerKey};
use crate::{ConferenceId, ParticipantId};

impl MediaSessions {
    pub(super) fn on_channel_event(&mut self, now: WallInstant, key: PeerKey, event: RTCDataChannelEvent) {
        match event {
            RTCDataChannelEvent::OnOpen(id) => {
                let Some(peer) = self.peers.get_mut(&key) else { return };
                let Some(mut channel) = peer.pc.data_channel(id) else { return };
                if channel.label() != CHANNEL_LABEL || peer.channel.is_some() {
                    // Only the one channel the protocol names.
                    let _ = channel.close();
                    return;
                }
                peer.channel = Some(id);
                let conference = peer.conference;
                if let Some(actions) = self.rooms.get(&conference).map(|r| r.board_for(key)) {
                    self.apply(now, conference, actions);
                }
            }
            RTCDataChannelEvent::OnClose(id) => {
                if let Some(peer) = self.peers.get_mut(&key)
                    && peer.channel == Some(id)
                {
                    peer.channel = None;
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_channel_message(
        &mut self,
        now: WallInstant,
        key: PeerKey,
        id: RTCDataChannelId,
        message: RTCDataChannelMessage,
    ) {
        let Some(peer) = self.peers.get(&key) else { return };
        if peer.channel != Some(id) {
            return;
        }
        let (conference, at) = (peer.conference, self.since_epoch(now));
        if let Some(actions) = self.rooms.get_mut(&conference).map(|r| r.on_signal(at, key, &message.data)) {
            self.apply(now, conference, actions);
        }
    }

    /// Sends a room's message on the data channel of `to` (or of everyone in the conference).
    pub(super) fn signal(
        &mut self,
        now: WallInstant,
        conference: ConferenceId,
        to: Option<ParticipantId>,
        message: FromNode,
    ) {
        let text = message.encode();
        let targets: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(k, p)| p.conference == conference && p.channel.is_some() && to.is_none_or(|to| to == **k))
            .map(|(k, _)| *k)
            .collect();
        for key in targets {
            let Some(peer) = self.peers.get_mut(&key) else { continue };
            let Some(id) = peer.channel else { continue };
            if let Some(mut channel) = peer.pc.data_channel(id) {
                // A channel that closed meanwhile: its OnClose follows.
                let _ = channel.send_text(now, text.clone());
            }
            self.flush(key);
        }
    }
}
