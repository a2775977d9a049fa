//! Which peer a datagram on the one media port belongs to.
//!
//! Every peer connection shares one UDP port (ICE-lite). The first byte tells what a datagram
//! is (RFC 7983): STUN, DTLS, RTP/RTCP, or nothing we speak. A STUN binding request names the
//! server's ICE ufrag in its USERNAME (`<server ufrag>:<client ufrag>`); the node gives each peer
//! its own ufrag, so STUN goes to the peer whose ufrag it names, and that peer's ICE agent checks
//! the message integrity with its password. Only once a peer's ICE agent has accepted an
//! address ([`Demux::confirm`]) do DTLS and media from that address reach it: a datagram from an
//! address no peer confirmed is dropped, whatever it claims to be. A peer has one confirmed
//! address, the first: a nomination (USE-CANDIDATE) for it from any other address is dropped
//! before its ICE agent sees it, and nothing but binding responses is sent elsewhere
//! (`media/mod.rs`), so nobody, the participant included, can steer the node's media at another
//! address. Nothing here trusts a packet to say whom it is for.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

/// What a datagram is, by its first byte (RFC 7983).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stun,
    Dtls,
    /// RTP or RTCP (SRTP / SRTCP once keys are set).
    Media,
    Other,
}

pub fn classify(datagram: &[u8]) -> Kind {
    match datagram.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) if datagram.len() >= 4 => Kind::Media,
        _ => Kind::Other,
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drop {
    /// Not STUN, DTLS, RTP or RTCP, or too short to be.
    Malformed,
    /// STUN that does not decode, or has no usable USERNAME.
    BadStun,
    /// STUN naming a ufrag no peer has.
    UnknownUfrag,
    /// A STUN message claiming the ICE-CONTROLLED role. The node is ICE-lite, so its peers are
    /// always controlling (RFC 8445 §6.1.1): only a forgery says this, and the core would act on
    /// its role-conflict rules before checking the message's integrity.
    ClaimsControlled,
    /// DTLS or media from an address no peer's ICE agent accepted.
    UnknownAddress,
    /// A nominating binding request (USE-CANDIDATE) for a session from an address other than
    /// the one it confirmed: a session keeps its first confirmed address, so nobody (its own
    /// participant included) can move the node's media to another.
    OtherAddress,
}

impl Drop {
    /// Every reason, for reporting.
    pub const ALL: [Drop; 6] = [
        Drop::Malformed,
        Drop::BadStun,
        Drop::UnknownUfrag,
        Drop::ClaimsControlled,
        Drop::UnknownAddress,
        Drop::OtherAddress,
    ];

    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Drop::Malformed => "malformed",
            Drop::BadStun => "bad_stun",
            Drop::UnknownUfrag => "unknown_ufrag",
            Drop::ClaimsControlled => "claims_controlled",
            Drop::UnknownAddress => "unknown_address",
            Drop::OtherAddress => "other_address",
        }
    }
}

/// Where a datagram goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<P> {
    Peer(P),
    Drop(Drop),
}

/// What the demux reads of a STUN message.
struct StunInfo {
    /// The server ufrag it names (the part of USERNAME before `:`).
    ufrag: String,
    /// It claims the ICE-CONTROLLED role.
    controlled: bool,
    /// It nominates (USE-CANDIDATE).
    nominates: bool,
}

fn stun_info(datagram: &[u8]) -> Option<StunInfo> {
    if !rtc_stun::message::is_stun_message(datagram) {
        return None;
    }
    let mut message = rtc_stun::message::Message::new();
    message.unmarshal_binary(datagram).ok()?;
    let controlled = message.contains(rtc_stun::attributes::ATTR_ICE_CONTROLLED);
    let nominates = message.contains(rtc_stun::attributes::ATTR_USE_CANDIDATE);
    let username =
        rtc_stun::textattrs::TextAttribute::get_from_as(&message, rtc_stun::attributes::ATTR_USERNAME).ok()?;
    let (server, _client) = username.text.split_once(':')?;
    (!server.is_empty()).then(|| StunInfo { ufrag: server.to_string(), controlled, nominates })
}

/// The routing table of the media port.
#[derive(Debug)]
pub struct Demux<P> {
    by_ufrag: HashMap<String, P>,
    by_addr: HashMap<SocketAddr, P>,
    /// Each peer's one confirmed address (the first its ICE agent accepted).
    addr_of: HashMap<P, SocketAddr>,
    /// Datagrams dropped, by reason (for metrics).
    pub dropped: HashMap<Drop, u64>,
}

impl<P> Default for Demux<P> {
    fn default() -> Self {
        Demux { by_ufrag: HashMap::new(), by_addr: HashMap::new(), addr_of: HashMap::new(), dropped: HashMap::new() }
    }
}

impl<P: Copy + Eq + Hash> Demux<P> {
    /// A peer whose answer carries this ICE ufrag.
    pub fn register(&mut self, ufrag: &str, peer: P) {
        self.by_ufrag.insert(ufrag.to_string(), peer);
    }

    /// The peer registered with this ufrag, if any.
    pub fn peer_of_ufrag(&self, ufrag: &str) -> Option<P> {
        self.by_ufrag.get(ufrag).copied()
    }

    /// The peer's ICE agent accepted `addr` (a checked binding request came from there). The
    /// first address confirmed is the peer's only one: another is not confirmed (false), so
    /// neither DTLS nor media from it reaches the peer.
    pub fn confirm(&mut self, addr: SocketAddr, peer: P) -> bool {
        if let Some(confirmed) = self.addr_of.get(&peer) {
            return *confirmed == addr;
        }
        if self.by_addr.contains_key(&addr) {
            return false; // another peer's address
        }
        self.addr_of.insert(peer, addr);
        self.by_addr.insert(addr, peer);
        true
    }

    /// The peer's confirmed address, if it has one yet.
    pub fn address_of(&self, peer: P) -> Option<SocketAddr> {
        self.addr_of.get(&peer).copied()
    }

    /// Forgets a peer (it left, or its connection failed).
    pub fn remove(&mut self, peer: P) {
        self.by_ufrag.retain(|_, p| *p != peer);
        self.by_addr.retain(|_, p| *p != peer);
        self.addr_of.remove(&peer);
    }

    /// Where a datagram from `from` goes.
    pub fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Route<P> {
        let route = match classify(datagram) {
            Kind::Other => Route::Drop(Drop::Malformed),
            Kind::Stun => match stun_info(datagram) {
                None => Route::Drop(Drop::BadStun),
                Some(StunInfo { controlled: true, .. }) => Route::Drop(Drop::ClaimsControlled),
                Some(info) => match self.by_ufrag.get(&info.ufrag) {
                    // A nomination from anywhere but the session's confirmed address would
                    // move its media: never seen by its agent.
                    Some(peer) if info.nominates && self.addr_of.get(peer).is_some_and(|a| *a != from) => {
                        Route::Drop(Drop::OtherAddress)
                    }
                    Some(peer) => Route::Peer(*peer),
                    None => Route::Drop(Drop::UnknownUfrag),
                },
            },
            Kind::Dtls | Kind::Media => match self.by_addr.get(&from) {
                Some(peer) => Route::Peer(*peer),
                None => Route::Drop(Drop::UnknownAddress),
            },
        };
        if let Route::Drop(reason) = route {
            *self.dropped.entry(reason).or_default() += 1;
        }
        route
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_stun::message::{BINDING_REQUEST, Message, Setter, TransactionId};
    use rtc_stun::textattrs::TextAttribute;

    fn binding(username: &str) -> Vec<u8> {
        let mut m = Message::new();
        let username = TextAttribute::new(rtc_stun::attributes::ATTR_USERNAME, username.to_string());
        let setters: Vec<Box<dyn Setter>> =
            vec![Box::new(BINDING_REQUEST), Box::new(TransactionId::new()), Box::new(username)];
        m.build(&setters).unwrap();
        m.raw.clone()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn stun_goes_to_the_peer_whose_ufrag_it_names_and_media_only_from_confirmed_addresses() {
        let mut d = Demux::default();
        d.register("alice01", 1u32);
        d.register("bob0002", 2u32);
        assert_eq!(d.route(addr(5000), &binding("bob0002:browser")), Route::Peer(2));
        assert_eq!(d.route(addr(5000), &binding("alice01:x")), Route::Peer(1));
        // DTLS (first byte 22) and RTP (first byte 0x80) from an address nobody confirmed.
        assert_eq!(d.route(addr(5000), &[22, 254, 253, 0, 0]), Route::Drop(Drop::UnknownAddress));
        assert_eq!(d.route(addr(5000), &[0x80, 96, 0, 1, 0, 0, 0, 0]), Route::Drop(Drop::UnknownAddress));
        d.confirm(addr(5000), 2);
        assert_eq!(d.route(addr(5000), &[22, 254, 253, 0, 0]), Route::Peer(2));
        assert_eq!(d.route(addr(5000), &[0x80, 96, 0, 1, 0, 0, 0, 0]), Route::Peer(2));
        assert_eq!(d.route(addr(5001), &[0x80, 96, 0, 1, 0, 0, 0, 0]), Route::Drop(Drop::UnknownAddress));
        d.remove(2);
        assert_eq!(d.route(addr(5000), &[22, 254, 253, 0, 0]), Route::Drop(Drop::UnknownAddress));
        assert_eq!(d.route(addr(5000), &binding("bob0002:browser")), Route::Drop(Drop::UnknownUfrag));
    }

    #[test]
    fn a_peer_keeps_its_first_confirmed_address() {
        let mut d = Demux::default();
        d.register("alice01", 1u32);
        d.register("bob0002", 2u32);
        assert!(d.confirm(addr(5000), 1));
        assert!(!d.confirm(addr(6000), 1), "a second address is not confirmed");
        assert!(!d.confirm(addr(5000), 2), "nor is another peer's");
        assert_eq!(d.address_of(1), Some(addr(5000)));
        assert_eq!(d.route(addr(6000), &[0x80, 96, 0, 1, 0, 0, 0, 0]), Route::Drop(Drop::UnknownAddress));
        let mut nominating = Message::new();
        let username = TextAttribute::new(rtc_stun::attributes::ATTR_USERNAME, "alice01:x".to_string());
        let setters: Vec<Box<dyn Setter>> =
            vec![Box::new(BINDING_REQUEST), Box::new(TransactionId::new()), Box::new(username)];
        nominating.build(&setters).unwrap();
        nominating.add(rtc_stun::attributes::ATTR_USE_CANDIDATE, &[]);
        assert_eq!(d.route(addr(6000), &nominating.raw), Route::Drop(Drop::OtherAddress));
        assert_eq!(d.route(addr(5000), &nominating.raw), Route::Peer(1), "from its own address it goes through");
        assert_eq!(d.route(addr(6000), &binding("alice01:x")), Route::Peer(1), "a plain check is answered");
        // Bob has no confirmed address yet: his nominations go through from anywhere.
        assert_eq!(d.route(addr(7000), &binding("bob0002:x")), Route::Peer(2));
        d.remove(1);
        assert_eq!(d.address_of(1), None);
        assert!(d.confirm(addr(5000), 2), "a freed address may be another peer's");
    }

    #[test]
    fn stun_claiming_the_controlled_role_is_dropped() {
        let mut d = Demux::default();
        d.register("alice01", 1u32);
        let mut m = Message::new();
        let username = TextAttribute::new(rtc_stun::attributes::ATTR_USERNAME, "alice01:x".to_string());
        let setters: Vec<Box<dyn Setter>> =
            vec![Box::new(BINDING_REQUEST), Box::new(TransactionId::new()), Box::new(username)];
        m.build(&setters).unwrap();
        m.add(rtc_stun::attributes::ATTR_ICE_CONTROLLED, &0u64.to_be_bytes());
        assert_eq!(d.route(addr(1), &m.raw), Route::Drop(Drop::ClaimsControlled));
        assert_eq!(d.route(addr(1), &binding("alice01:x")), Route::Peer(1), "an ordinary check still goes through");
    }

    #[test]
    fn garbage_and_bad_stun_are_dropped_and_counted() {
        let mut d: Demux<u32> = Demux::default();
        d.register("alice01", 1);
        assert_eq!(d.route(addr(1), &[]), Route::Drop(Drop::Malformed));
        assert_eq!(d.route(addr(1), &[0x7f; 100]), Route::Drop(Drop::Malformed));
        assert_eq!(d.route(addr(1), &[0x80, 1]), Route::Drop(Drop::Malformed), "too short for RTP");
        assert_eq!(d.route(addr(1), &binding("stranger:x")), Route::Drop(Drop::UnknownUfrag));
        assert_eq!(d.route(addr(1), &binding("no-colon")), Route::Drop(Drop::BadStun));
        let mut truncated = binding("alice01:x");
        truncated.truncate(25);
        assert_eq!(d.route(addr(1), &truncated), Route::Drop(Drop::BadStun));
        // Pseudo-random datagrams of every length never reach a peer and never panic.
        let mut x: u32 = 0x1234_5678;
        for len in 0..600 {
            let bytes = crate::noise(&mut x, len);
            assert!(matches!(d.route(addr(2), &bytes), Route::Drop(_)));
        }
        assert!(d.dropped.values().sum::<u64>() >= 605);
    }
}
