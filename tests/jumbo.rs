#![cfg(all(feature = "engine", feature = "system", feature = "proto"))]
//! Multi-buffer packets (MTU 9000 jumbo frames) through the engine, system and async
//! modes on real veth pairs: a packet that spans several frames is one packet to the
//! callback and one `Frame` to a handle, goes back out without a copy, and comes back
//! whole. Clients are stock: the kernel's UDP socket and `ping`.

mod common;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fluxcapacitor::engine::Engine;
use fluxcapacitor::proto::checksum;
use fluxcapacitor::system::{Frame, SendFailure};
use fluxcapacitor::{FluxBuilder, SteeringFilter, XdpMode};

/// A 9000-byte IP packet: 8972 bytes of UDP payload, 9014 bytes on the wire.
const JUMBO_PAYLOAD: usize = 8972;
const PORT: u16 = 7500;

fn jumbo_pair() -> VethPair {
    VethPair::new(VethOpts {
        mtu: Some(9000),
        ..Default::default()
    })
}

/// Payload length of datagram `i`: mostly jumbo, some small and some just over one
/// frame, so that batches mix packets in one frame with packets in several.
fn payload_len(i: u32) -> usize {
    match i % 4 {
        0 | 1 => JUMBO_PAYLOAD,
        2 => 100,
        _ => 3900,
    }
}

fn seqs_of(frames: &[Vec<u8>]) -> HashSet<u32> {
    frames
        .iter()
        .filter_map(|f| parse_udp_frame(f))
        .filter_map(|(_, _, p)| {
            let seq = check_seq_payload(p)?;
            (p.len() == payload_len(seq)).then_some(seq)
        })
        .collect()
}

/// Engine l2fwd (swap MACs, send back out) with multi-buffer sockets: every
/// datagram the peer's UDP socket sends comes back to the peer intact, jumbo ones
/// as multi-buffer packets.
fn engine_l2fwd_jumbo(mode: XdpMode) {
    const N: u32 = 400;
    let pair = jumbo_pair();
    let cap = Capture::open(&pair.ns, &pair.peer);
    let ip = pair.host_ip;
    let engine = Engine::builder(&pair.host)
        .configure(move |b: FluxBuilder| {
            b.xdp_mode(mode)
                .multi_buffer(true)
                .frame_size(4096)
                .filter(SteeringFilter::default().answering([ip.into()]))
        })
        .build();
    if refused_multi_buffer(&engine) {
        return;
    }
    let engine = engine.expect("engine");
    let stop = engine.stop_handle();
    let (host_mac, peer_mac) = (pair.host_mac, pair.peer_mac);
    let progress = Arc::new(AtomicU64::new(0));
    let p2 = progress.clone();
    let collector = std::thread::spawn(move || {
        cap.collect_counting(
            |f| {
                f.len() > 12
                    && f[..6] == peer_mac
                    && f[6..12] == host_mac
                    && parse_udp_frame(f).is_some()
            },
            N as usize,
            Duration::from_secs(5),
            &p2,
        )
    });
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| seq_payload(i, payload_len(i))).collect();
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(41000), pair.host_addr(PORT));
    let stop2 = stop.clone();
    let sender = std::thread::spawn(move || {
        send_windowed(&ns, src, dst, payloads, 1, progress, 32);
        std::thread::sleep(Duration::from_millis(300));
        stop2.stop();
    });
    let report = engine
        .run(move |batch| {
            for mut p in batch.iter_mut() {
                if p.is_multi_buffer() {
                    assert_eq!(p.packet_len(), p.frags().map(<[u8]>::len).sum::<usize>());
                    assert_eq!(p.contiguous().len(), p.packet_len());
                }
                let d = p.data_mut();
                if d.len() >= 14 {
                    let (a, b) = d[..12].split_at_mut(6);
                    a.swap_with_slice(b);
                    p.transmit();
                }
            }
        })
        .expect("run");
    sender.join().unwrap();
    let got = collector.join().unwrap();
    let seqs = seqs_of(&got);
    let missing: Vec<u32> = (0..N).filter(|s| !seqs.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "got {} of {N} back intact; missing {missing:?}; {} frames captured; {:?}",
        seqs.len(),
        got.len(),
        report.queues[0]
    );
    let q = &report.queues[0];
    let jumbo = (0..N).filter(|&i| payload_len(i) + 42 > 3840).count() as u64;
    assert_eq!(q.counters.rx_multi_buffer, jumbo, "{q:?}");
    assert_eq!(q.counters.tx_not_multi_buffer, 0);
    assert_eq!(q.kernel.unwrap().tx_invalid_descs, 0);
    let f = report.frames[0];
    assert!(f.is_conserved() && f.user == 0 && f.tx == 0, "{f}");
}

#[test]
fn engine_l2fwd_round_trips_jumbo_frames_native() {
    if skip_without_root() {
        return;
    }
    engine_l2fwd_jumbo(XdpMode::Native);
}

#[test]
fn engine_l2fwd_round_trips_jumbo_frames_generic() {
    if skip_without_root() {
        return;
    }
    engine_l2fwd_jumbo(XdpMode::Generic);
}

/// Turns an ICMP echo request in an IPv4 frame into its reply by editing the first
/// fragment only (MACs, addresses, type; the ICMP checksum incrementally): the
/// payload, in whatever fragments it spans, goes back untouched. `false` for any
/// other frame.
fn icmp_reply_in_head(f: &mut [u8]) -> bool {
    if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[23] != 1 {
        return false;
    }
    let icmp = 14 + usize::from(f[14] & 0x0f) * 4;
    if f.len() < icmp + 4 || f[icmp] != 8 {
        return false;
    }
    let (a, b) = f[..12].split_at_mut(6);
    a.swap_with_slice(b);
    let (a, b) = f[26..34].split_at_mut(4);
    a.swap_with_slice(b);
    let old = u16::from_be_bytes([f[icmp], f[icmp + 1]]);
    f[icmp] = 0;
    let new = u16::from_be_bytes([f[icmp], f[icmp + 1]]);
    let c = u16::from_be_bytes([f[icmp + 2], f[icmp + 3]]);
    let c = checksum::incremental_update16(c, old, new);
    f[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
    true
}

/// `ping -s 8972 -M do` (9000-byte packets, no IP fragmentation) from the peer's
/// namespace; returns ping's output.
fn jumbo_ping(ns: &str, ip: Ipv4Addr, count: u32) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-4", "-n", "-M", "do", "-s"])
        .arg(JUMBO_PAYLOAD.to_string())
        .args(["-c", &count.to_string(), "-i", "0.02", "-W", "10"])
        .arg(ip.to_string())
        .output()
        .expect("run ping (iputils-ping; scripts/test.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn assert_all_replied(out: &str, count: u32) {
    assert!(
        out.contains(&format!("{count} packets transmitted, {count} received")),
        "ping:\n{out}"
    );
    assert!(
        !out.contains("wrong data"),
        "ping saw corrupted replies:\n{out}"
    );
}

/// A multi-buffer socket on the host end; `None` (after checking the typed refusal)
/// on kernels without multi-buffer.
fn jumbo_flux(pair: &VethPair) -> Option<fluxcapacitor::Flux> {
    let built = FluxBuilder::new(&pair.host)
        .multi_buffer(true)
        .frame_size(4096)
        .filter(SteeringFilter::default().answering([pair.host_ip.into()]))
        .build();
    if refused_multi_buffer(&built) {
        return None;
    }
    Some(built.expect("flux"))
}

/// System mode echo: `ping` with 9000-byte packets is answered from the Rx/Tx
/// handles, each request one multi-buffer `Frame` sent back as it came.
#[test]
fn system_echo_answers_jumbo_ping() {
    if skip_without_root() {
        return;
    }
    const COUNT: u32 = 20;
    let pair = jumbo_pair();
    let Some(flux) = jumbo_flux(&pair) else {
        return;
    };
    let (mut rx, mut tx) = flux.split();
    let (ns, ip) = (pair.ns.clone(), pair.host_ip);
    let pinger = std::thread::spawn(move || jumbo_ping(&ns, ip, COUNT));
    let mut answered = 0u32;
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered < COUNT && Instant::now() < deadline {
        let Some(mut f) = rx.recv_timeout(Duration::from_millis(100)).unwrap() else {
            continue;
        };
        if !icmp_reply_in_head(&mut f) {
            continue;
        }
        assert!(f.is_multi_buffer(), "{f:?}");
        assert_eq!(f.packet_len(), 9014);
        assert_eq!(f.frag_count(), 3, "9014 bytes in 3840-byte fragments");
        assert_eq!(f.contiguous().len(), 9014);
        tx.send_timeout(f, Duration::from_secs(1)).expect("send");
        tx.flush().unwrap();
        answered += 1;
    }
    let out = pinger.join().unwrap();
    assert_all_replied(&out, COUNT);
    assert!(tx.drain(Duration::from_secs(2)).unwrap());
    let c = rx.frame_counts();
    assert!(c.is_conserved() && c.user == 0 && c.tx == 0, "{c}");
}

/// The same on tokio.
#[cfg(feature = "async")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_echo_answers_jumbo_ping() {
    if skip_without_root() {
        return;
    }
    const COUNT: u32 = 20;
    let pair = jumbo_pair();
    let Some(flux) = jumbo_flux(&pair) else {
        return;
    };
    let (mut rx, mut tx) = flux.split_async().expect("async handles");
    let (ns, ip) = (pair.ns.clone(), pair.host_ip);
    let pinger = tokio::task::spawn_blocking(move || jumbo_ping(&ns, ip, COUNT));
    let mut answered = 0u32;
    while answered < COUNT {
        let mut f = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("a request within 30 s")
            .unwrap();
        if !icmp_reply_in_head(&mut f) {
            continue;
        }
        assert_eq!((f.packet_len(), f.frag_count()), (9014, 3), "{f:?}");
        tx.send(f).await.expect("send");
        tx.flush().await.unwrap();
        answered += 1;
    }
    let out = pinger.await.unwrap();
    assert_all_replied(&out, COUNT);
    let c = rx.frame_counts();
    assert!(c.is_conserved() && c.user == 0, "{c}");
}

/// A packet built from fresh frames with `Frame::append` leaves as one 9014-byte
/// frame: the peer's UDP socket receives the datagram whole.
#[test]
fn system_sends_a_jumbo_datagram_built_from_fresh_frames() {
    if skip_without_root() {
        return;
    }
    let pair = jumbo_pair();
    let Some(flux) = jumbo_flux(&pair) else {
        return;
    };
    let (_rx, mut tx) = flux.split();
    let peer = SocketAddrV4::new(pair.peer_ip, PORT);
    let sock = in_netns(&pair.ns, move || {
        let s = std::net::UdpSocket::bind(peer).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    });
    for seq in 0..5u32 {
        let payload = seq_payload(seq, JUMBO_PAYLOAD);
        let wire = build_udp_frame(
            pair.host_mac,
            pair.peer_mac,
            pair.host_addr(PORT + 1),
            peer,
            &payload,
        );
        assert_eq!(wire.len(), 9014);
        let mut parts = wire.chunks(3500).map(|part| {
            let mut f = tx.alloc().expect("a free frame");
            f.buffer_mut()[..part.len()].copy_from_slice(part);
            f.set_len(part.len()).unwrap();
            f
        });
        let mut packet = parts.next().unwrap();
        for f in parts {
            packet.append(f).expect("same pool");
        }
        assert_eq!((packet.frag_count(), packet.packet_len()), (3, 9014));
        assert_eq!(&packet.contiguous()[..], &wire[..]);
        tx.send_timeout(packet, Duration::from_secs(1))
            .expect("send");
        tx.flush().unwrap();
        let mut buf = vec![0u8; 10000];
        let (n, from) = sock.recv_from(&mut buf).expect("the datagram at the peer");
        assert_eq!(from, std::net::SocketAddr::V4(pair.host_addr(PORT + 1)));
        assert_eq!(&buf[..n], &payload[..], "datagram {seq} intact");
    }
    assert!(tx.drain(Duration::from_secs(2)).unwrap());
    let c = tx.frame_counts();
    assert!(c.is_conserved() && c.user == 0 && c.tx == 0, "{c}");
}

/// A multi-buffer frame on a socket built without `multi_buffer(true)` is refused
/// with its reason and comes back whole: nothing is queued, nothing lost.
#[test]
fn a_multi_buffer_frame_needs_a_multi_buffer_socket() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let (_rx, mut tx) = FluxBuilder::new(&pair.host)
        .frame_size(2048)
        .build()
        .expect("flux")
        .split();
    let before = tx.free_frames();
    let mut head = tx.alloc().unwrap();
    head.set_len(100).unwrap();
    let mut tail = tx.alloc().unwrap();
    tail.set_len(100).unwrap();
    head.append(tail).unwrap();
    let err = tx.try_send(head).unwrap_err();
    assert!(matches!(err.reason(), SendFailure::NotMultiBuffer), "{err}");
    let back: Frame = err.into_frame();
    assert_eq!(back.frag_count(), 2);
    assert_eq!(tx.pending(), 0);
    drop(back);
    assert_eq!(tx.free_frames(), before, "both frames back in the pool");
}
