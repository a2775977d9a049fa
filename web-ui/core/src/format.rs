//! Formatting for display: avatar initials and colours, times, previews.

/// Up to two initials of a display name, upper-cased (`"анна петрова"` → `"АП"`, `"bob"` → `"B"`).
pub fn initials(name: &str) -> String {
    let mut words = name.split_whitespace().filter_map(|w| w.chars().find(|c| c.is_alphanumeric()));
    let first = words.next();
    let last = words.next_back();
    [first, last].into_iter().flatten().flat_map(char::to_uppercase).collect::<String>().chars().take(2).collect()
}

/// A stable hue (0-359) for an avatar, from an id's bytes.
pub fn avatar_hue(seed: &[u8]) -> u16 {
    let folded = seed.iter().fold(2166136261u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(16777619));
    (folded % 360) as u16
}

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// Milliseconds since the Unix epoch, shifted into local time (`offset_min`: minutes east of UTC).
fn local_ms(ms: u64, offset_min: i32) -> i64 {
    ms as i64 + i64::from(offset_min) * MINUTE_MS
}

/// Local wall-clock time `HH:MM`.
pub fn clock(ms: u64, offset_min: i32) -> String {
    let minutes = local_ms(ms, offset_min).rem_euclid(DAY_MS) / MINUTE_MS;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The local day number (days since 1970-01-01), to group messages by day.
pub fn day_number(ms: u64, offset_min: i32) -> i64 {
    local_ms(ms, offset_min).div_euclid(DAY_MS)
}

/// Local calendar date `(year, month, day)` of a day number.
pub fn civil_date(day: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil algorithm.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// How the time of a chat's last message shows in the chat list: `HH:MM` today, else `DD.MM.YYYY`.
pub fn list_time(ms: u64, now_ms: u64, offset_min: i32) -> String {
    if day_number(ms, offset_min) == day_number(now_ms, offset_min) {
        clock(ms, offset_min)
    } else {
        let (y, m, d) = civil_date(day_number(ms, offset_min));
        format!("{d:02}.{m:02}.{y}")
    }
}

/// A date and time for a meeting: `DD.MM.YYYY HH:MM` in the member's time zone.
pub fn date_time(ms: u64, offset_min: i32) -> String {
    let (y, m, d) = civil_date(day_number(ms, offset_min));
    format!("{d:02}.{m:02}.{y} {}", clock(ms, offset_min))
}

/// Parses the value of an `<input type="datetime-local">` (`YYYY-MM-DDTHH:MM`, local time) into
/// milliseconds since the Unix epoch, given the member's time zone offset.
pub fn parse_local_date_time(value: &str, offset_min: i32) -> Option<u64> {
    let (date, time) = value.trim().split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min) = (t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || !(0..24).contains(&h) || !(0..60).contains(&min) {
        return None;
    }
    // Days from civil (H. Hinnant), the inverse of `civil_date`.
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let local_min = days * 1440 + h * 60 + min;
    u64::try_from((local_min - i64::from(offset_min)) * 60_000).ok()
}

/// One line of at most `max` characters, for the chat list's preview.
pub fn preview(text: &str, max: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A certificate fingerprint as certificate viewers (and the node's trust page) show it:
/// upper-case hex, bytes separated by colons.
pub fn fingerprint_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_print_as_colon_separated_hex() {
        assert_eq!(fingerprint_hex(&[0x0a, 0xff, 0x00]), "0A:FF:00");
        assert_eq!(fingerprint_hex(&[0x12; 32]).len(), 32 * 3 - 1);
        assert_eq!(fingerprint_hex(&[]), "");
    }

    #[test]
    fn meeting_times_read_and_print_in_local_time() {
        // 2027-01-01 00:00 UTC; Moscow is 3 hours ahead (offset +180 minutes).
        let ms = 1_798_761_600_000;
        assert_eq!(date_time(ms, 0), "01.01.2027 00:00");
        assert_eq!(date_time(ms, 180), "01.01.2027 03:00");
        assert_eq!(date_time(ms, -60), "31.12.2026 23:00");
        assert_eq!(parse_local_date_time("2027-01-01T03:00", 180), Some(ms));
        assert_eq!(parse_local_date_time("2024-02-29T12:30", 0), Some(1_709_209_800_000));
        assert_eq!(parse_local_date_time("2027-13-01T00:00", 0), None);
        assert_eq!(parse_local_date_time("tomorrow", 0), None);
        for (value, offset) in [("2026-12-03T18:45", 0), ("2030-06-15T09:05", 330), ("2026-03-29T02:30", -240)] {
            let ms = parse_local_date_time(value, offset).expect(value);
            assert_eq!(date_time(ms, offset), {
                let (date, time) = value.split_once('T').unwrap();
                let p: Vec<&str> = date.split('-').collect();
                format!("{}.{}.{} {time}", p[2], p[1], p[0])
            });
        }
    }

    #[test]
    fn initials_of_names() {
        assert_eq!(initials("Anna Petrova"), "AP");
        assert_eq!(initials("анна петрова"), "АП");
        assert_eq!(initials("bob"), "B");
        assert_eq!(initials("  Mary  Ann  Smith "), "MS");
        assert_eq!(initials("(Dr) Who"), "DW");
        assert_eq!(initials(""), "");
        assert_eq!(initials("ß"), "SS");
    }

    #[test]
    fn hue_is_stable_and_spread() {
        assert_eq!(avatar_hue(b"abc"), avatar_hue(b"abc"));
        let hues: std::collections::BTreeSet<u16> = (0u8..50).map(|i| avatar_hue(&[i, 7, 9])).collect();
        assert!(hues.len() > 30);
        assert!(hues.iter().all(|h| *h < 360));
    }

    #[test]
    fn clock_and_dates_in_local_time() {
        // 2026-11-23 10:05:00 UTC
        let ms = 1_795_428_300_000;
        assert_eq!(clock(ms, 0), "10:05");
        assert_eq!(clock(ms, 180), "13:05"); // Moscow
        assert_eq!(clock(ms, -600), "00:05");
        assert_eq!(civil_date(day_number(ms, 0)), (2026, 11, 23));
        assert_eq!(civil_date(day_number(ms, 14 * 60)), (2026, 11, 24));
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(day_number(951_782_400_000, 0)), (2000, 2, 29));
        assert_eq!(list_time(ms, ms + 60_000, 0), "10:05");
        assert_eq!(list_time(ms, ms + 86_400_000, 0), "23.11.2026");
    }

    #[test]
    fn previews_are_one_short_line() {
        assert_eq!(preview("hello\n  world", 40), "hello world");
        assert_eq!(preview("abcdefgh", 5), "abcd…");
        assert_eq!(preview("привет мир", 6), "приве…");
        assert_eq!(preview("", 5), "");
    }
}
