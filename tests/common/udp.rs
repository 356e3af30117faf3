//! UDP traffic from the peer namespace, with sequence-numbered payloads, paced or
//! windowed.

use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::netns::in_netns;

// ---------------------------------------------------------------------------
// UDP traffic
// ---------------------------------------------------------------------------

/// Inside `ns`, binds a UDP socket to `src` and sends every payload to `dst`,
/// optionally sleeping `pace` between datagrams. Local ENOBUFS/EAGAIN are
/// retried so no datagram is dropped by the sender; other errors panic.
pub fn udp_send_from_ns(
    ns: &str,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payloads: Vec<Vec<u8>>,
    pace: Option<Duration>,
) {
    in_netns(ns, move || {
        let sock = UdpSocket::bind(src).unwrap_or_else(|e| panic!("bind {src}: {e}"));
        for (i, p) in payloads.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match sock.send_to(p, dst) {
                    Ok(_) => break,
                    Err(e)
                        if (e.raw_os_error() == Some(libc::ENOBUFS)
                            || e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::Interrupted)
                            && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(e) => panic!("send_to {dst} (datagram {i}): {e}"),
                }
            }
            if let Some(d) = pace {
                std::thread::sleep(d);
            }
        }
    })
}

/// Pattern byte at offset `i` of a payload with sequence number `seq`.
pub(crate) fn seq_byte(seq: u32, i: usize) -> u8 {
    (seq.wrapping_mul(31).wrapping_add(i as u32 * 7) ^ (i as u32 >> 8)) as u8
}

/// A payload of `len` bytes (at least 4): `seq` big-endian in the first 4
/// bytes, then a pattern derived from `seq` and the offset.
pub fn seq_payload(seq: u32, len: usize) -> Vec<u8> {
    assert!(len >= 4, "seq_payload needs len >= 4");
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((4..len).map(|i| seq_byte(seq, i)));
    p
}

/// Returns the sequence number of a [`seq_payload`] payload if its pattern is
/// intact, `None` if it is too short or corrupted.
pub fn check_seq_payload(p: &[u8]) -> Option<u32> {
    if p.len() < 4 {
        return None;
    }
    let seq = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    p.iter()
        .enumerate()
        .skip(4)
        .all(|(i, &b)| b == seq_byte(seq, i))
        .then_some(seq)
}

/// Sends UDP datagrams from the namespace in bursts of 64 with a short pause between
/// bursts: veth hands packets to the receiving queue through a 256-entry ring (native
/// mode) or the 1000-entry backlog (generic mode) and drops what does not fit before
/// any XDP program sees it. The pause keeps tests about the library, not that queue.
/// `src_ports` > 1 spreads the datagrams over that many source ports (flows).
pub fn send_paced(
    ns: &str,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payloads: Vec<Vec<u8>>,
    src_ports: u16,
) {
    in_netns(ns, move || {
        let socks: Vec<UdpSocket> = (0..src_ports.max(1))
            .map(|i| {
                let a = SocketAddrV4::new(*src.ip(), src.port() + i);
                UdpSocket::bind(a).unwrap_or_else(|e| panic!("bind {a}: {e}"))
            })
            .collect();
        for (b, burst) in payloads.chunks(64).enumerate() {
            for (i, p) in burst.iter().enumerate() {
                let s = &socks[(b * 64 + i) % socks.len()];
                while let Err(e) = s.send_to(p, dst) {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "send: {e}");
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            std::thread::sleep(Duration::from_micros(300));
        }
    })
}

/// Like [`send_paced`], with flow control: datagram `i` is sent only once fewer than
/// `window` earlier ones are still unaccounted for by `progress` (a counter the
/// receiving side bumps per datagram it saw). This keeps kernel queues (the veth
/// ring, the peer backlog) from overflowing under CPU contention, so that a test
/// measures the library and not a busy machine. If progress stalls for 2 s the sender
/// carries on, and the test's own count check reports the loss.
pub fn send_windowed(
    ns: &str,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payloads: Vec<Vec<u8>>,
    src_ports: u16,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
    window: u64,
) {
    in_netns(ns, move || {
        let socks: Vec<UdpSocket> = (0..src_ports.max(1))
            .map(|i| {
                let a = SocketAddrV4::new(*src.ip(), src.port() + i);
                UdpSocket::bind(a).unwrap_or_else(|e| panic!("bind {a}: {e}"))
            })
            .collect();
        let mut windowed = true;
        for (i, p) in payloads.iter().enumerate() {
            let mut waited = Instant::now();
            let mut last = progress.load(Ordering::Acquire);
            while windowed && (i as u64).saturating_sub(last) >= window {
                std::thread::sleep(Duration::from_micros(50));
                let now = progress.load(Ordering::Acquire);
                if now != last {
                    last = now;
                    waited = Instant::now();
                } else if waited.elapsed() > Duration::from_secs(2) {
                    // Progress stalled (packets lost): send the rest unthrottled
                    // and let the test's count check report the loss.
                    eprintln!("send_windowed: no progress at {i} (seen {now}); sending the rest");
                    windowed = false;
                }
            }
            let s = &socks[i % socks.len()];
            while let Err(e) = s.send_to(p, dst) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "send: {e}");
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    })
}
