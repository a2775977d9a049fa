//! Every decoder of bytes from the network answers random and mutated input with a value or an
//! error, never a panic. A deterministic generator keeps failures reproducible. (`cargo fuzz`
//! needs a nightly toolchain, which the project's machines do not have.)

use veche_protocol::content::AppMessage;
use veche_protocol::ids::{GroupId, InviteId};
use veche_protocol::link::InviteLink;
use veche_protocol::wire::{ClientFrame, InviteToken, Request, ServerFrame};

/// xorshift64*: small, deterministic, good enough to spray bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            1 => out.truncate(rng.below(out.len() + 1)),
            2 => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
            _ => out.extend(rng.bytes(8)),
        }
    }
    out
}

#[test]
fn frames_content_and_links_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let seeds = [
        ClientFrame { id: 3, request: Request::Send { group: GroupId([4; 16]), message: vec![9; 40] } }.encode(),
        ClientFrame {
            id: 4,
            request: Request::Join {
                token: InviteToken { invite: InviteId([1; 8]), secret: [2; 32] },
                commit: vec![1; 20],
                group_info: vec![2; 20],
            },
        }
        .encode(),
        AppMessage::text("привет, сосед", 77).unwrap().encode().unwrap(),
    ];
    for round in 0..200_000 {
        let input = if round % 2 == 0 { rng.bytes(64) } else { mutate(&mut rng, &seeds[round % seeds.len()]) };
        let _ = ClientFrame::decode(&input);
        let _ = ServerFrame::decode(&input);
        let _ = AppMessage::decode(&input);
        let _ = InviteLink::parse(&String::from_utf8_lossy(&input));
    }
    let link = "http://10.0.0.1:7800/join#i=0102030405060708&s=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&g=00112233445566778899aabbccddeeff";
    for _ in 0..50_000 {
        let mutated = mutate(&mut rng, link.as_bytes());
        let _ = InviteLink::parse(&String::from_utf8_lossy(&mutated));
    }
}
