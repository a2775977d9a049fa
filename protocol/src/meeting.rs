//! Meetings: a conference with its own chat, a title, an optional time, and a link that lets
//! guests in with only a name (spec/calls.md §6).
//!
//! A meeting *is* a chat: the organizer's device creates its MLS group like any group chat, then
//! registers it as a meeting ([`crate::wire::Request::CreateMeeting`]). The chat's call is the
//! meeting's conference, and the chat stays after the meeting ends, with whatever was written in
//! it. The meeting link is a chat invite link: someone with an account joins the chat with it;
//! someone without one registers a *guest* account with it (a name, nothing else), valid for
//! that meeting only and until [`MeetingInfo::guests_until_ms`].

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, GroupId, InviteId};

/// Longest meeting title, in characters.
pub const MAX_TITLE: usize = 100;
/// Longest meeting description, in characters.
pub const MAX_DESCRIPTION: usize = 2000;
/// Longest meeting, in minutes (a day).
pub const MAX_DURATION_MINS: u32 = 24 * 60;
/// Guests of a meeting may stay this long after its planned end (meetings run over), unless the
/// node's admin sets another (`veche run --guest-grace`).
pub const GUEST_GRACE_MS: u64 = 60 * 60 * 1000;
/// Farthest ahead a meeting may be scheduled, in milliseconds (a year).
pub const MAX_AHEAD_MS: u64 = 365 * 24 * 3600 * 1000;

/// What the organizer chooses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingSettings {
    pub title: String,
    pub description: String,
    /// Planned start, milliseconds since the Unix epoch; `None`: an instant meeting (now).
    pub start_ms: Option<u64>,
    /// Planned length in minutes (1 to [`MAX_DURATION_MINS`]).
    pub duration_mins: u32,
    /// Guests wait in a lobby until the organizer or a moderator admits them.
    pub lobby: bool,
    /// Starts as a webinar: only presenters (and moderators) publish; others watch.
    pub webinar: bool,
}

/// A meeting as members (and the holders of its link) see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingInfo {
    /// The meeting's chat.
    pub group: GroupId,
    pub settings: MeetingSettings,
    pub organizer: AccountId,
    pub created_ms: u64,
    /// The start: the planned one, or when it was created for an instant meeting.
    pub start_ms: u64,
    /// Until when guest accounts made with its link work (planned end plus the node's grace,
    /// [`GUEST_GRACE_MS`] unless its admin set another). Connected guests are disconnected then.
    pub guests_until_ms: u64,
    /// The invite behind the meeting link (its secret is shown only to the organizer, once).
    pub invite: InviteId,
}

impl MeetingInfo {
    /// The planned end, milliseconds since the Unix epoch.
    pub fn end_ms(&self) -> u64 {
        self.start_ms + u64::from(self.settings.duration_mins) * 60_000
    }
}

/// Why meeting settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("a meeting needs a title of at most {MAX_TITLE} characters")]
    Title,
    #[error("the description is longer than {MAX_DESCRIPTION} characters")]
    Description,
    #[error("a meeting lasts from 1 minute to {MAX_DURATION_MINS} minutes")]
    Duration,
    #[error("a meeting can be scheduled at most a year ahead")]
    TooFarAhead,
}

/// Checks and normalizes settings (titles are trimmed). `now_ms`: the node's clock.
pub fn validate(settings: &MeetingSettings, now_ms: u64) -> Result<MeetingSettings, SettingsError> {
    let title = settings.title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE || title.chars().any(char::is_control) {
        return Err(SettingsError::Title);
    }
    if settings.description.chars().count() > MAX_DESCRIPTION {
        return Err(SettingsError::Description);
    }
    if settings.duration_mins == 0 || settings.duration_mins > MAX_DURATION_MINS {
        return Err(SettingsError::Duration);
    }
    if settings.start_ms.is_some_and(|s| s > now_ms.saturating_add(MAX_AHEAD_MS)) {
        return Err(SettingsError::TooFarAhead);
    }
    Ok(MeetingSettings { title: title.to_string(), ..settings.clone() })
}

/// An iCalendar file (RFC 5545) with the meeting as one event, for calendar apps: the title,
/// planned start and end (UTC), description, and the meeting link as its URL and location.
/// `node_name` goes into the organizer-independent product id; `now_ms` stamps it.
pub fn ics(meeting: &MeetingInfo, link: &str, node_name: &str, now_ms: u64) -> String {
    let mut out = String::new();
    let mut line = |text: String| fold_into(&mut out, &text);
    line("BEGIN:VCALENDAR".into());
    line("VERSION:2.0".into());
    line(format!("PRODID:-//Veche//{}//EN", escape(node_name)));
    line("CALSCALE:GREGORIAN".into());
    line("METHOD:PUBLISH".into());
    line("BEGIN:VEVENT".into());
    line(format!("UID:{}@veche", hex(&meeting.group.0)));
    line(format!("DTSTAMP:{}", utc(now_ms)));
    line(format!("DTSTART:{}", utc(meeting.start_ms)));
    line(format!("DTEND:{}", utc(meeting.end_ms())));
    line(format!("SUMMARY:{}", escape(&meeting.settings.title)));
    let mut description = meeting.settings.description.clone();
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    description.push_str(link);
    line(format!("DESCRIPTION:{}", escape(&description)));
    line(format!("LOCATION:{}", escape(link)));
    line(format!("URL:{link}"));
    line("END:VEVENT".into());
    line("END:VCALENDAR".into());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// TEXT escaping (RFC 5545 §3.3.11).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends a content line folded at 75 octets (never inside a UTF-8 character), CRLF-ended
/// (RFC 5545 §3.1).
fn fold_into(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}

/// `YYYYMMDDTHHMMSSZ` of milliseconds since the Unix epoch.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meeting(title: &str, description: &str) -> MeetingInfo {
        MeetingInfo {
            group: GroupId([0xab; 16]),
            settings: MeetingSettings {
                title: title.into(),
                description: description.into(),
                start_ms: Some(1_798_761_600_000),
                duration_mins: 90,
                lobby: true,
                webinar: false,
            },
            organizer: AccountId([1; 32]),
            created_ms: 0,
            start_ms: 1_798_761_600_000, // 2027-01-01T00:00:00Z
            guests_until_ms: 0,
            invite: InviteId([2; 8]),
        }
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc(0), "19700101T000000Z");
        assert_eq!(utc(951_782_400_000), "20000229T000000Z"); // a leap day
        assert_eq!(utc(1_798_761_600_000 + 5_400_000), "20270101T013000Z");
        assert_eq!(utc(4_102_444_799_000), "20991231T235959Z");
    }

    #[test]
    fn an_ics_file_has_the_event_with_escaped_text_and_folded_lines() {
        let m = meeting("Town hall; budget, roads", "Line one\nLine two \\ end");
        let link = format!("http://192.168.1.20:7800/join#i={}&s={}", "a".repeat(16), "b".repeat(43));
        let ics = ics(&m, &link, "library", 1_798_000_000_000);
        assert!(ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"), "{ics}");
        assert!(ics.ends_with("END:VEVENT\r\nEND:VCALENDAR\r\n"), "{ics}");
        assert!(ics.contains("\r\nDTSTART:20270101T000000Z\r\n"), "{ics}");
        assert!(ics.contains("\r\nDTEND:20270101T013000Z\r\n"), "{ics}");
        assert!(ics.contains("\r\nSUMMARY:Town hall\\; budget\\, roads\r\n"), "{ics}");
        assert!(ics.contains(&format!("UID:{}@veche", "ab".repeat(16))));
        // Every physical line is at most 75 octets; unfolding gives back the long lines.
        for l in ics.split("\r\n") {
            assert!(l.len() <= 75, "{l:?} is {} octets", l.len());
        }
        let unfolded = ics.replace("\r\n ", "");
        assert!(unfolded.contains("DESCRIPTION:Line one\\nLine two \\\\ end\\n\\n"), "{unfolded}");
        assert!(unfolded.contains(&format!("\r\nURL:{link}\r\n")), "{unfolded}");
    }

    #[test]
    fn folding_never_splits_a_character() {
        let m = meeting(&"Собрание жильцов ".repeat(5), "");
        let ics = ics(&m, "http://n/join", "n", 0);
        for l in ics.split("\r\n") {
            assert!(l.len() <= 75);
        }
        assert!(ics.replace("\r\n ", "").contains(&format!("SUMMARY:{}", "Собрание жильцов ".repeat(5))));
    }

    #[test]
    fn settings_are_checked() {
        let ok = meeting(" Standup ", "").settings;
        let now = 1_798_000_000_000;
        assert_eq!(validate(&ok, now).map(|s| s.title), Ok("Standup".to_string()));
        assert_eq!(validate(&MeetingSettings { title: "  ".into(), ..ok.clone() }, now), Err(SettingsError::Title));
        assert_eq!(validate(&MeetingSettings { duration_mins: 0, ..ok.clone() }, now), Err(SettingsError::Duration));
        assert_eq!(
            validate(&MeetingSettings { duration_mins: MAX_DURATION_MINS + 1, ..ok.clone() }, now),
            Err(SettingsError::Duration)
        );
        assert_eq!(
            validate(&MeetingSettings { start_ms: Some(now + MAX_AHEAD_MS + 1), ..ok.clone() }, now),
            Err(SettingsError::TooFarAhead)
        );
        let long = "x".repeat(MAX_DESCRIPTION + 1);
        assert_eq!(validate(&MeetingSettings { description: long, ..ok }, now), Err(SettingsError::Description));
    }
}
