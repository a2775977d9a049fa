//! The call's connection quality, as the badge in the call panel shows it: good, fair or poor,
//! from what the browser measures of its peer connection with the node (`getStats`, every 2 s).
//!
//! Three measures count, and the worst of them decides:
//! - the round trip to the node (the selected candidate pair's `currentRoundTripTime`): under
//!   150 ms a conversation flows, from 400 ms people talk over each other;
//! - the share of packets lost on the way here over the last interval (inbound RTP, audio and
//!   video): under 2 % nothing shows, from 10 % video freezes and speech breaks up;
//! - while the device sends video, the upload the browser estimates it has
//!   (`availableOutgoingBitrate`): from 300 kbit/s a camera is sent in a usable quality, under
//!   150 kbit/s only in its lowest.
//!
//! A measure the browser does not have (yet) does not count.

/// Round trip up to which the connection is good (milliseconds).
pub const GOOD_RTT_MS: f64 = 150.0;
/// Round trip from which it is poor.
pub const POOR_RTT_MS: f64 = 400.0;
/// Packet loss up to which it is good (a fraction).
pub const GOOD_LOSS: f64 = 0.02;
/// Packet loss from which it is poor.
pub const POOR_LOSS: f64 = 0.10;
/// Upload from which sending video is good (bits per second).
pub const GOOD_UPLOAD_BPS: f64 = 300_000.0;
/// Upload under which it is poor.
pub const POOR_UPLOAD_BPS: f64 = 150_000.0;

/// How the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    Good,
    Fair,
    Poor,
}

impl Quality {
    /// The name in `data-quality` and in message ids (`good`, `fair`, `poor`).
    pub fn name(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Fair => "fair",
            Quality::Poor => "poor",
        }
    }
}

/// One measurement (each `None` when the browser has no value for it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measures {
    /// Round trip to the node, milliseconds.
    pub rtt_ms: Option<f64>,
    /// Share of packets lost over the last interval, 0 to 1.
    pub loss: Option<f64>,
    /// Estimated upload while sending video, bits per second.
    pub upload_bps: Option<f64>,
}

/// What the measures say of the connection: the worst of them.
pub fn assess(m: &Measures) -> Quality {
    let rtt = m.rtt_ms.map(|rtt| grade(rtt < GOOD_RTT_MS, rtt >= POOR_RTT_MS));
    let loss = m.loss.map(|loss| grade(loss < GOOD_LOSS, loss >= POOR_LOSS));
    let upload = m.upload_bps.map(|bps| grade(bps >= GOOD_UPLOAD_BPS, bps < POOR_UPLOAD_BPS));
    [rtt, loss, upload].into_iter().flatten().max().unwrap_or(Quality::Good)
}

fn grade(good: bool, poor: bool) -> Quality {
    if poor {
        Quality::Poor
    } else if good {
        Quality::Good
    } else {
        Quality::Fair
    }
}

/// Packets lost and received so far (inbound RTP, summed over the streams).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub lost: i64,
    pub received: u64,
}

/// The share of packets lost between two measurements, or `None` when nothing arrived in
/// between (or the counters went back, as after a new connection). `packetsLost` may fall when
/// late packets turn up: a fall counts as no loss.
pub fn loss_between(before: Counts, now: Counts) -> Option<f64> {
    let received = now.received.checked_sub(before.received)?;
    let lost = u64::try_from(now.lost.saturating_sub(before.lost)).unwrap_or(0);
    let total = received + lost;
    (total > 0).then(|| lost as f64 / total as f64)
}

/// A percentage with one decimal (`0.0123` → `"1.2"`; with `comma`, `"1,2"`).
pub fn percent(fraction: f64, comma: bool) -> String {
    decimal(fraction * 100.0, comma)
}

/// Megabits per second with one decimal (`2_160_000.0` → `"2.2"`; with `comma`, `"2,2"`).
pub fn mbits(bps: f64, comma: bool) -> String {
    decimal(bps / 1e6, comma)
}

fn decimal(value: f64, comma: bool) -> String {
    let text = format!("{value:.1}");
    if comma { text.replace('.', ",") } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtt(ms: f64) -> Measures {
        Measures { rtt_ms: Some(ms), ..Default::default() }
    }

    fn loss(fraction: f64) -> Measures {
        Measures { loss: Some(fraction), ..Default::default() }
    }

    fn upload(bps: f64) -> Measures {
        Measures { upload_bps: Some(bps), ..Default::default() }
    }

    #[test]
    fn a_loopback_call_is_good() {
        let m = Measures { rtt_ms: Some(1.0), loss: Some(0.0), upload_bps: Some(2_500_000.0) };
        assert_eq!(assess(&m), Quality::Good);
        assert_eq!(assess(&Measures::default()), Quality::Good, "nothing measured yet");
    }

    #[test]
    fn round_trip_thresholds() {
        assert_eq!(assess(&rtt(149.0)), Quality::Good);
        assert_eq!(assess(&rtt(150.0)), Quality::Fair);
        assert_eq!(assess(&rtt(399.0)), Quality::Fair);
        assert_eq!(assess(&rtt(400.0)), Quality::Poor);
    }

    #[test]
    fn loss_thresholds() {
        assert_eq!(assess(&loss(0.019)), Quality::Good);
        assert_eq!(assess(&loss(0.02)), Quality::Fair);
        assert_eq!(assess(&loss(0.099)), Quality::Fair);
        assert_eq!(assess(&loss(0.10)), Quality::Poor);
    }

    #[test]
    fn upload_thresholds() {
        assert_eq!(assess(&upload(300_000.0)), Quality::Good);
        assert_eq!(assess(&upload(299_999.0)), Quality::Fair);
        assert_eq!(assess(&upload(150_000.0)), Quality::Fair);
        assert_eq!(assess(&upload(149_999.0)), Quality::Poor);
    }

    #[test]
    fn the_worst_measure_decides() {
        let m = Measures { rtt_ms: Some(5.0), loss: Some(0.05), upload_bps: Some(3e6) };
        assert_eq!(assess(&m), Quality::Fair);
        let m = Measures { rtt_ms: Some(500.0), loss: Some(0.05), upload_bps: Some(3e6) };
        assert_eq!(assess(&m), Quality::Poor);
        let m = Measures { rtt_ms: Some(5.0), loss: Some(0.0), upload_bps: Some(100_000.0) };
        assert_eq!(assess(&m), Quality::Poor);
    }

    #[test]
    fn loss_over_an_interval() {
        let a = Counts { lost: 10, received: 1000 };
        assert_eq!(loss_between(a, Counts { lost: 10, received: 1100 }), Some(0.0));
        assert_eq!(loss_between(a, Counts { lost: 15, received: 1095 }), Some(0.05));
        // Nothing arrived: no loss figure.
        assert_eq!(loss_between(a, a), None);
        // Late packets lowered packetsLost: no loss, not a negative one.
        assert_eq!(loss_between(a, Counts { lost: 8, received: 1100 }), Some(0.0));
        // A new peer connection started counting again.
        assert_eq!(loss_between(a, Counts { lost: 0, received: 5 }), None);
        // Everything lost.
        assert_eq!(loss_between(a, Counts { lost: 30, received: 1000 }), Some(1.0));
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(percent(0.0123, false), "1.2");
        assert_eq!(percent(0.0123, true), "1,2");
        assert_eq!(percent(0.0, false), "0.0");
        assert_eq!(mbits(2_160_000.0, false), "2.2");
        assert_eq!(mbits(340_000.0, true), "0,3");
        assert_eq!(Quality::Fair.name(), "fair");
    }
}
