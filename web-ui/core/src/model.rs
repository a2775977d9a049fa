//! The chat list and timeline as the views show them.

use crate::format::day_number;

/// Where a message this device sent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Waiting to be encrypted and sent (offline, or in flight).
    Sending,
    /// The node acknowledged it: stored durably, with a sequence number.
    Stored,
    /// The node refused it for good; the member may retry.
    Failed,
}

impl Delivery {
    /// The message id of its label.
    pub fn label_id(self) -> &'static str {
        match self {
            Delivery::Sending => "delivery-sending",
            Delivery::Stored => "delivery-stored",
            Delivery::Failed => "delivery-failed",
        }
    }
}

/// One row of the chat list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRow {
    pub id: String,
    pub direct: bool,
    pub title: String,
    pub preview: String,
    /// Time of the last message (0: none yet).
    pub last_ms: u64,
    pub unread: u32,
}

/// Groups and direct chats, each newest first (then by title).
pub fn split_and_order(rows: Vec<ChatRow>) -> (Vec<ChatRow>, Vec<ChatRow>) {
    let (mut direct, mut groups): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.direct);
    for list in [&mut groups, &mut direct] {
        list.sort_by(|a, b| b.last_ms.cmp(&a.last_ms).then_with(|| a.title.cmp(&b.title)).then(a.id.cmp(&b.id)));
    }
    (groups, direct)
}

/// Unread messages: others' messages with a sequence number above what the member has seen.
pub fn unread<I>(seen_seq: u64, entries: I) -> u32
where
    I: IntoIterator<Item = (u64, bool)>,
{
    entries.into_iter().filter(|(seq, own)| *seq > seen_seq && !own).count() as u32
}

/// An item of a chat's timeline.
#[derive(Debug, PartialEq, Eq)]
pub enum TimelineItem<'a, M> {
    /// A new local day starts (day number, see [`crate::format::day_number`]).
    Day(i64),
    Message(&'a M),
}

/// The messages with a day separator before the first message of every local day.
pub fn with_day_separators<M>(
    messages: &[M],
    time_ms: impl Fn(&M) -> u64,
    offset_min: i32,
) -> Vec<TimelineItem<'_, M>> {
    let mut items = Vec::with_capacity(messages.len() + 4);
    let mut day = None;
    for message in messages {
        let this_day = day_number(time_ms(message), offset_min);
        if day != Some(this_day) {
            items.push(TimelineItem::Day(this_day));
            day = Some(this_day);
        }
        items.push(TimelineItem::Message(message));
    }
    items
}

/// How many of the newest messages to show, growing by `page` each time the member scrolls to
/// the top, never past `total`.
pub fn grow_window(shown: usize, page: usize, total: usize) -> usize {
    (shown + page).min(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, direct: bool, last_ms: u64) -> ChatRow {
        ChatRow { id: id.into(), direct, title: id.into(), preview: String::new(), last_ms, unread: 0 }
    }

    #[test]
    fn chats_split_and_newest_first() {
        let (groups, direct) =
            split_and_order(vec![row("a", false, 5), row("b", true, 9), row("c", false, 7), row("d", true, 1)]);
        assert_eq!(groups.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["c", "a"]);
        assert_eq!(direct.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b", "d"]);
    }

    #[test]
    fn unread_counts_only_others_after_seen() {
        let entries = [(1, false), (2, true), (3, false), (4, false), (5, true)];
        assert_eq!(unread(0, entries), 3);
        assert_eq!(unread(3, entries), 1);
        assert_eq!(unread(5, entries), 0);
    }

    #[test]
    fn day_separators() {
        let day = 86_400_000;
        let times = [day + 1, day + 2, 2 * day + 5, 5 * day];
        let items = with_day_separators(&times, |t| *t, 0);
        let days: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                TimelineItem::Day(d) => Some(*d),
                TimelineItem::Message(_) => None,
            })
            .collect();
        assert_eq!(days, [1, 2, 5]);
        assert_eq!(items.len(), 7);
        assert!(with_day_separators(&[] as &[u64], |t| *t, 0).is_empty());
    }

    #[test]
    fn window_grows_up_to_total() {
        assert_eq!(grow_window(50, 50, 120), 100);
        assert_eq!(grow_window(100, 50, 120), 120);
        assert_eq!(grow_window(120, 50, 120), 120);
    }
}
