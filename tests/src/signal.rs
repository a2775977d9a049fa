//! A call participant for tests: a device's signaling (its WebSocket to the node) and its media
//! (a native [`CallClient`]), with the node's offers answered as they come, like a browser does,
//! and the call updates it was told kept in order for the test to look at.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context;
use veche_protocol::call::{CallJoined, CallUpdate, ParticipantId};
use veche_protocol::ids::GroupId;
use veche_protocol::wire::{ErrorCode, Event, Request, Response, ServerFrame};

use crate::call::CallClient;
use crate::raw::{Answer, RawDevice};

/// One device in a chat's call.
pub struct Party {
    pub device: RawDevice,
    pub media: CallClient,
    pub group: GroupId,
    /// Call updates received and not yet taken by [`Party::update`].
    pub updates: VecDeque<CallUpdate>,
    /// Its id in the call, once joined (or waiting).
    pub participant: Option<ParticipantId>,
    /// Ids of the `CallAnswer`s it sent, whose responses are its own business.
    answers: Vec<u32>,
    /// Refusals of those answers (a test asserts there are none).
    pub answer_errors: Vec<String>,
}

impl Party {
    /// `publish`: its media client sends a camera (see [`CallClient::start`]).
    pub fn new(device: RawDevice, name: &str, publish: bool, group: GroupId) -> anyhow::Result<Party> {
        Ok(Party {
            device,
            media: CallClient::start(name, publish)?,
            group,
            updates: VecDeque::new(),
            participant: None,
            answers: Vec::new(),
            answer_errors: Vec::new(),
        })
    }

    /// Handles a frame: offers are answered, updates kept; a response to anything else is returned.
    async fn take(&mut self, frame: ServerFrame) -> anyhow::Result<Option<(u32, Answer)>> {
        match frame {
            ServerFrame::Event(Event::CallOffer { group, sdp }) if group == self.group => {
                let answer = self.media.answer_offer(sdp)?;
                let id = self.device.conn.send(Request::CallAnswer { group, answer }).await?;
                self.answers.push(id);
            }
            ServerFrame::Event(Event::Call { group, update }) if group == self.group => self.updates.push_back(update),
            ServerFrame::Response { id, result } => {
                if let Some(at) = self.answers.iter().position(|a| *a == id) {
                    self.answers.remove(at);
                    if let Err(e) = result {
                        self.answer_errors.push(e.to_string());
                    }
                } else {
                    return Ok(Some((id, result)));
                }
            }
            ServerFrame::Fatal(e) => anyhow::bail!("the node closed the connection: {e}"),
            _ => {}
        }
        Ok(None)
    }

    /// Reads and handles frames for up to `within` (returns early on a response to `id`).
    async fn pump(&mut self, within: Duration, id: Option<u32>) -> anyhow::Result<Option<Answer>> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let Ok(frame) = self.device.conn.until(left, Some).await else { return Ok(None) };
            if let Some((got, answer)) = self.take(frame).await?
                && Some(got) == id
            {
                return Ok(Some(answer));
            }
        }
    }

    /// Sends a request and waits for its answer, handling whatever else comes meanwhile.
    pub async fn request(&mut self, request: Request) -> anyhow::Result<Answer> {
        let id = self.device.conn.send(request).await?;
        match self.pump(Duration::from_secs(15), Some(id)).await? {
            Some(answer) => Ok(answer),
            None => anyhow::bail!("no answer within 15 s"),
        }
    }

    /// Joins the chat's call with a fresh offer: `Ok(Some(joined))` in the call (the node's
    /// answer applied), `Ok(None)` waiting in the lobby, `Err` refused.
    pub async fn join(&mut self) -> anyhow::Result<Result<Option<CallJoined>, veche_protocol::wire::ApiError>> {
        let offer = self.media.offer()?;
        match self.request(Request::CallJoin { group: self.group, offer }).await? {
            Ok(Response::CallJoined(joined)) => {
                self.media.set_answer(joined.answer.clone())?;
                self.participant = Some(joined.participant);
                Ok(Ok(Some(joined)))
            }
            Ok(Response::CallWaiting { participant }) => {
                self.participant = Some(participant);
                Ok(Ok(None))
            }
            Ok(other) => anyhow::bail!("join: {other:?}"),
            Err(e) => Ok(Err(e)),
        }
    }

    /// The first update (received or coming within 15 s) that `want` picks; earlier ones stay.
    pub async fn update(
        &mut self,
        what: &str,
        mut want: impl FnMut(&CallUpdate) -> bool,
    ) -> anyhow::Result<CallUpdate> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(at) = self.updates.iter().position(&mut want) {
                return Ok(self.updates.remove(at).unwrap_or(CallUpdate::Ended));
            }
            anyhow::ensure!(Instant::now() < deadline, "{what}: not told within 15 s; told {:?}", self.updates);
            self.pump(Duration::from_millis(50), None).await?;
        }
    }

    /// Whether an update `want` picks was received (without waiting).
    pub fn was_told(&self, want: impl FnMut(&CallUpdate) -> bool) -> bool {
        self.updates.iter().any(want)
    }
}

/// Keeps every party's signaling going (offers answered) until `done` (given the parties),
/// for up to `within`.
pub async fn until(
    what: &str,
    parties: &mut [&mut Party],
    within: Duration,
    mut done: impl FnMut(&[&mut Party]) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !done(parties) {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {within:?}");
        for p in parties.iter_mut() {
            p.pump(Duration::from_millis(10), None).await?;
        }
    }
    Ok(())
}

/// Whether `answer` is a refusal with `code`.
pub fn refused(answer: &Answer, code: ErrorCode) -> bool {
    matches!(answer, Err(e) if e.code == code)
}

/// Reads `device`'s frames until `want` picks one (for up to 20 s), answering the node's offers
/// on the way as a browser does.
pub async fn signal_until<T>(
    device: &mut RawDevice,
    client: &CallClient,
    group: GroupId,
    mut want: impl FnMut(&ServerFrame) -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = device.conn.until(left, Some).await?;
        if let Some(found) = want(&frame) {
            return Ok(found);
        }
        if let ServerFrame::Event(Event::CallOffer { group: g, sdp }) = frame
            && g == group
        {
            let answer = client.answer_offer(sdp)?;
            device.conn.send(Request::CallAnswer { group, answer }).await?;
        }
    }
}

/// The media port, from the 127.0.0.1 host candidate in the node's SDP answer.
pub fn media_port(answer: &str) -> anyhow::Result<u16> {
    let line = answer
        .lines()
        .find(|l| l.contains("candidate:") && l.contains("127.0.0.1"))
        .with_context(|| format!("no 127.0.0.1 host candidate in the answer:\n{answer}"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields.iter().position(|f| *f == "127.0.0.1").with_context(|| line.to_string())?;
    Ok(fields.get(at + 1).with_context(|| line.to_string())?.parse()?)
}
