//! Sends the media loop's datagrams in batches: one `sendmmsg` system call for up to
//! [`BATCH`] datagrams to any mix of destinations (Linux), instead of one `send_to` each. A
//! fan-out to many subscribers is many destinations, so GSO (one destination per call) does not
//! apply; `sendmmsg` saves the per-call cost (measured in `veche-sfu-bench`).

use std::net::{SocketAddr, UdpSocket};

/// Datagrams per system call at most.
pub const BATCH: usize = 64;

/// What a [`send_all`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub datagrams: usize,
    /// System calls made.
    pub calls: usize,
    /// Datagrams the kernel refused (a full buffer, an unreachable peer): lost, like any UDP loss.
    pub failed: usize,
}

/// Sends every datagram, in order, in batches.
#[cfg(target_os = "linux")]
pub fn send_all<B: AsRef<[u8]>>(socket: &UdpSocket, datagrams: &[(SocketAddr, B)]) -> Sent {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

    let mut sent = Sent::default();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH.min(datagrams.len()), None);
    let mut rest = datagrams;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(BATCH)];
        let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|(_, d)| [IoSlice::new(d.as_ref())]).collect();
        let addrs: Vec<Option<SockaddrStorage>> =
            chunk.iter().map(|(to, _)| Some(SockaddrStorage::from(*to))).collect();
        sent.calls += 1;
        let done = match sendmmsg(socket.as_raw_fd(), &mut headers, &slices, &addrs, [], MsgFlags::empty()) {
            Ok(results) => results.count(),
            Err(_) => 0,
        };
        if done == 0 {
            // The first datagram of the chunk failed (sendmmsg reports only that): try it on
            // its own, so one bad destination cannot hold up the rest.
            sent.calls += 1;
            match socket.send_to(chunk[0].1.as_ref(), chunk[0].0) {
                Ok(_) => sent.datagrams += 1,
                Err(_) => sent.failed += 1,
            }
            rest = &rest[1..];
        } else {
            sent.datagrams += done;
            rest = &rest[done..];
        }
    }
    sent
}

/// Sends every datagram, in order (one `send_to` each where `sendmmsg` is not available).
#[cfg(not(target_os = "linux"))]
pub fn send_all<B: AsRef<[u8]>>(socket: &UdpSocket, datagrams: &[(SocketAddr, B)]) -> Sent {
    let mut sent = Sent::default();
    for (to, datagram) in datagrams {
        sent.calls += 1;
        match socket.send_to(datagram.as_ref(), to) {
            Ok(_) => sent.datagrams += 1,
            Err(_) => sent.failed += 1,
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_datagram_reaches_its_own_destination_in_order_and_batches_are_bounded() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sinks: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        for s in &sinks {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        let datagrams: Vec<(SocketAddr, Vec<u8>)> = (0..150u32)
            .map(|i| (sinks[i as usize % 3].local_addr().unwrap(), [i.to_be_bytes().as_slice(), &[7; 1000]].concat()))
            .collect();
        let sent = send_all(&socket, &datagrams);
        assert_eq!((sent.datagrams, sent.failed), (150, 0));
        if cfg!(target_os = "linux") {
            assert_eq!(sent.calls, 3, "150 datagrams in batches of {BATCH}");
        }
        for (k, sink) in sinks.iter().enumerate() {
            let mut buf = [0u8; 2048];
            for i in (k as u32..150).step_by(3) {
                let (len, from) = sink.recv_from(&mut buf).unwrap();
                assert_eq!(from, socket.local_addr().unwrap());
                assert_eq!((len, &buf[..4]), (1004, i.to_be_bytes().as_slice()));
            }
        }
    }

    #[test]
    fn a_datagram_the_kernel_refuses_does_not_hold_up_the_others() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let to = sink.local_addr().unwrap();
        // Too large for UDP: EMSGSIZE, for that one only.
        let datagrams = vec![(to, vec![1; 100]), (to, vec![2; 70_000]), (to, vec![3; 100])];
        let sent = send_all(&socket, &datagrams);
        assert_eq!((sent.datagrams, sent.failed), (2, 1));
        let mut buf = [0u8; 2048];
        assert_eq!(sink.recv_from(&mut buf).unwrap().0, 100);
        assert_eq!(buf[0], 1);
        assert_eq!(sink.recv_from(&mut buf).unwrap().0, 100);
        assert_eq!(buf[0], 3);
    }
}
