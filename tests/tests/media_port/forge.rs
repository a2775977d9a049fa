//! Forged packets for the bad-input tests: pseudo-random noise, STUN binding requests with
//! chosen credentials and ICE role, DTLS records (a ClientHello among them), and RTP/RTCP
//! packets naming chosen SSRCs.

use crate::capture::{CLIENT_HELLO, DTLS_HANDSHAKE};

/// Pseudo-random bytes (xorshift32).
pub(crate) fn noise(x: &mut u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *x ^= *x << 13;
            *x ^= *x >> 17;
            *x ^= *x << 5;
            *x as u8
        })
        .collect()
}

/// A binding request naming `username`, like a browser's check; MESSAGE-INTEGRITY with
/// `password` (none if None). `controlled`: ICE-CONTROLLED instead of ICE-CONTROLLING.
pub(crate) fn binding_request(
    username: &str,
    password: Option<&str>,
    use_candidate: bool,
    controlled: bool,
    tie_breaker: u64,
) -> anyhow::Result<Vec<u8>> {
    use rtc::ice::attributes::control::{AttrControlled, AttrControlling};
    use rtc::ice::attributes::priority::PriorityAttr;
    use rtc::ice::attributes::use_candidate::UseCandidateAttr;
    use rtc::stun::attributes::ATTR_USERNAME;
    use rtc::stun::fingerprint::FINGERPRINT;
    use rtc::stun::integrity::MessageIntegrity;
    use rtc::stun::message::{BINDING_REQUEST, Message, Setter, TransactionId};
    use rtc::stun::textattrs::TextAttribute;

    let provider = rtc::crypto::default_provider().map_err(|e| anyhow::anyhow!("crypto provider: {e}"))?;
    let mut setters: Vec<Box<dyn Setter + '_>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(TextAttribute::new(ATTR_USERNAME, username.to_string())),
        Box::new(PriorityAttr(0x6e7f_1eff)),
    ];
    if controlled {
        setters.push(Box::new(AttrControlled(tie_breaker)));
    } else {
        setters.push(Box::new(AttrControlling(tie_breaker)));
    }
    if use_candidate {
        setters.push(Box::<UseCandidateAttr>::default());
    }
    if let Some(password) = password {
        setters.push(Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            password.to_string(),
            provider.crypto(),
        )));
    }
    setters.push(Box::new(FINGERPRINT));
    let mut m = Message::new();
    m.build(&setters).map_err(|e| anyhow::anyhow!("building a binding request: {e}"))?;
    Ok(m.raw.clone())
}

/// A well-formed DTLS 1.2 ClientHello record (as a browser would open with).
pub(crate) fn client_hello(x: &mut u32) -> Vec<u8> {
    let mut body = vec![0xfe, 0xfd]; // client_version DTLS 1.2
    body.extend(noise(x, 32)); // random
    body.push(0); // session id
    body.push(0); // cookie
    let suites: [u16; 4] = [0xc02b, 0xc02f, 0xc00a, 0xc014];
    body.extend((suites.len() as u16 * 2).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]); // compression: null
    let mut ext = Vec::new();
    ext.extend([0x00, 0x17, 0x00, 0x00]); // extended_master_secret
    ext.extend([0x00, 0x0e, 0x00, 0x05, 0x00, 0x02, 0x00, 0x07, 0x00]); // use_srtp: AEAD_AES_128_GCM
    ext.extend([0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17]); // supported_groups: P-256
    ext.extend([0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]); // ec_point_formats
    ext.extend([0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]); // signature_algorithms
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let len = body.len() as u32;
    let mut handshake = vec![CLIENT_HELLO];
    handshake.extend(&len.to_be_bytes()[1..]); // length
    handshake.extend([0, 0]); // message_seq
    handshake.extend([0, 0, 0]); // fragment_offset
    handshake.extend(&len.to_be_bytes()[1..]); // fragment_length
    handshake.extend(body);
    dtls_record(DTLS_HANDSHAKE, 0, 0, &handshake)
}

pub(crate) fn dtls_record(content_type: u8, epoch: u16, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type, 0xfe, 0xfd];
    r.extend(epoch.to_be_bytes());
    r.extend(&seq.to_be_bytes()[2..]);
    r.extend((body.len() as u16).to_be_bytes());
    r.extend(body);
    r
}

/// An RTCP packet of type `pt` (200-206) naming `ssrcs`, with a random SRTCP-like trailer.
pub(crate) fn rtcp_like(x: &mut u32, pt: u8, count: u8, ssrcs: &[u32]) -> Vec<u8> {
    let mut body = Vec::new();
    for s in ssrcs {
        body.extend(s.to_be_bytes());
    }
    let extra = noise(x, 4 * (usize::from(count) + 1));
    body.extend(&extra);
    let words = (body.len() / 4) as u16;
    let mut p = vec![0x80 | (count & 0x1f), pt];
    p.extend(words.to_be_bytes());
    p.extend(body);
    // SRTCP: E flag and index, then a 10-byte tag.
    p.extend((0x8000_0000u32 | (*x & 0x7fff_ffff)).to_be_bytes());
    p.extend(noise(x, 10));
    p
}

pub(crate) fn rtp_like(x: &mut u32, pt: u8, seq: u16, ssrc: u32, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend(seq.to_be_bytes());
    p.extend((u32::from(seq) * 3000).to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend(noise(x, payload));
    p
}
