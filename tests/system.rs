#![cfg(feature = "system")]
//! System mode (blocking `Rx` / `Tx` handles) on real veth pairs: 10k-frame
//! receive with sends from another thread, an echo round trip with a real UDP
//! client, TX backpressure, frame API edges, and drop order. Each test makes its
//! own namespace and veth pair.

mod common;

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::*;
use fluxcapacitor::system::{Frame, Rx, SendFailure, Tx};
use fluxcapacitor::{FluxBuilder, RingSizes, SteeringFilter};

const N: u32 = 10_000;
const PORT: u16 = 7200;

/// Turns a received IPv4/UDP frame (no IP options) into its reply: swap MACs, IPs,
/// ports. Both checksums stay valid (a swap does not change a ones-complement sum).
fn swap_udp(f: &mut [u8]) {
    let (dst, src) = f[..12].split_at_mut(6);
    dst.swap_with_slice(src);
    let (a, b) = f[26..34].split_at_mut(4);
    a.swap_with_slice(b);
    let (a, b) = f[34..38].split_at_mut(2);
    a.swap_with_slice(b);
}

fn assert_at_rest(rx: &mut Rx, tx: &mut Tx, held: u32) {
    assert!(
        tx.drain(Duration::from_secs(2)).unwrap(),
        "TX did not drain"
    );
    let c = rx.frame_counts();
    assert!(c.is_conserved(), "{c}");
    assert_eq!(
        (c.user, c.tx, c.completion),
        (held, 0, 0),
        "frames left behind: {c}"
    );
    assert_eq!(c.free + c.fill + c.rx + c.user, c.total, "{c}");
    let t = tx.frame_counts();
    assert!(t.is_conserved() && t.user == held, "{t}");
}

#[test]
fn blocking_receive_10k_verified_with_sends_from_another_thread() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let cap = Capture::open(&pair.ns, &pair.peer);
    let (rx, tx) = FluxBuilder::new(&pair.host)
        .frame_size(2048)
        .filter(SteeringFilter::default().answering([pair.host_ip.into()]))
        .build()
        .expect("flux")
        .split();
    let progress = Arc::new(AtomicU64::new(0));

    let p2 = progress.clone();
    let collector = std::thread::spawn(move || {
        cap.collect_counting(
            |f| parse_udp_frame(f).is_some_and(|(s, d, _)| s.port() == PORT && d.port() == 40000),
            N as usize,
            Duration::from_secs(5),
            &p2,
        )
    });
    let payloads: Vec<Vec<u8>> = (0..N)
        .map(|i| seq_payload(i, 64 + (i as usize % 900)))
        .collect();
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(40000), pair.host_addr(PORT));
    let p3 = progress.clone();
    let sender = std::thread::spawn(move || send_windowed(&ns, src, dst, payloads, 1, p3, 128));

    // Receiver thread: verify every datagram, pass the frame to the sender thread.
    let (to_tx, from_rx) = mpsc::channel::<Frame>();
    let receiver = std::thread::spawn(move || {
        let mut rx = rx;
        let mut seen = HashSet::new();
        let mut batch = Vec::with_capacity(64);
        let mut idle = Instant::now();
        while seen.len() < N as usize && idle.elapsed() < Duration::from_secs(5) {
            if rx
                .recv_batch_timeout(&mut batch, 64, Duration::from_millis(100))
                .unwrap()
                == 0
            {
                continue;
            }
            idle = Instant::now();
            for f in batch.drain(..) {
                let Some((_, d, payload)) = parse_udp_frame(&f) else {
                    continue;
                };
                if d.port() != PORT {
                    continue;
                }
                let seq = check_seq_payload(payload).expect("payload intact");
                assert!(seen.insert(seq), "duplicate {seq}");
                to_tx.send(f).unwrap();
            }
        }
        (rx, seen)
    });
    let transmitter = std::thread::spawn(move || {
        let mut tx = tx;
        let mut sent = 0u32;
        loop {
            let mut f = match from_rx.try_recv() {
                Ok(f) => f,
                Err(mpsc::TryRecvError::Empty) => {
                    tx.flush().unwrap();
                    match from_rx.recv() {
                        Ok(f) => f,
                        Err(_) => break,
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
            };
            swap_udp(&mut f);
            tx.send_timeout(f, Duration::from_secs(2)).expect("send");
            sent += 1;
        }
        tx.flush().unwrap();
        (tx, sent)
    });

    sender.join().unwrap();
    let (mut rx, seen) = receiver.join().unwrap();
    let (mut tx, sent) = transmitter.join().unwrap();
    let replies = collector.join().unwrap();
    assert_eq!(
        seen.len() as u32,
        N,
        "received {} of {N}; peer: {}",
        seen.len(),
        ns_link_stats(&pair.ns, &pair.peer)
    );
    assert_eq!(sent, N);
    let back: HashSet<u32> = replies
        .iter()
        .filter_map(|f| parse_udp_frame(f).and_then(|(_, _, p)| check_seq_payload(p)))
        .collect();
    assert_eq!(
        back.len() as u32,
        N,
        "peer got {} intact replies",
        back.len()
    );
    assert!(rx.received() >= N as u64);
    let counters = rx.program_counters().unwrap().expect("program");
    assert!(counters.redirected >= N as u64, "{counters:?}");
    assert_eq!(rx.statistics().unwrap().tx_invalid_descs, 0);
    assert_at_rest(&mut rx, &mut tx, 0);
}

/// A plain client (default socket options: the veth peer leaves its UDP checksums
/// to an offload) against an echo built with `udp_reply_in_place`, which completes
/// them.
#[test]
#[cfg(feature = "proto")]
fn echo_round_trip_with_a_real_udp_client() {
    use std::sync::atomic::{AtomicBool, Ordering};
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let (mut rx, mut tx) = FluxBuilder::new(&pair.host)
        .frame_size(2048)
        .filter(SteeringFilter::default().answering([pair.host_ip.into()]))
        .build()
        .expect("flux")
        .split();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let server = std::thread::spawn(move || {
        let mut batch = Vec::new();
        let mut echoed = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            rx.recv_batch_timeout(&mut batch, 32, Duration::from_millis(20))
                .unwrap();
            for mut f in batch.drain(..) {
                if parse_udp_frame(&f).is_some_and(|(_, d, _)| d.port() == PORT) {
                    fluxcapacitor::proto::edit::udp_reply_in_place(&mut f).expect("a UDP frame");
                    tx.try_send(f).expect("TX has room");
                    echoed += 1;
                }
            }
            tx.flush().unwrap();
        }
        (rx, tx, echoed)
    });
    const COUNT: u32 = 3000;
    let (host, peer) = (pair.host_addr(PORT), pair.peer_addr(0));
    let checked = in_netns(&pair.ns, move || {
        let sock = std::net::UdpSocket::bind(peer).unwrap();
        sock.connect(host).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 2048];
        let mut got = HashSet::new();
        let (mut next, window) = (0u32, 16u32);
        while (got.len() as u32) < COUNT {
            while next < COUNT && next - (got.len() as u32) < window {
                let len = 4 + (next as usize * 37) % 1400;
                sock.send(&seq_payload(next, len)).unwrap();
                next += 1;
            }
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e) => panic!("no reply after {} of {COUNT}: {e}", got.len()),
            };
            let seq = check_seq_payload(&buf[..n]).expect("reply intact");
            assert_eq!(n, 4 + (seq as usize * 37) % 1400, "reply length");
            assert!(got.insert(seq), "duplicate reply {seq}");
        }
        got.len() as u32
    });
    stop.store(true, Ordering::Relaxed);
    let (mut rx, mut tx, echoed) = server.join().unwrap();
    assert_eq!(checked, COUNT);
    assert_eq!(echoed, COUNT as u64);
    assert_at_rest(&mut rx, &mut tx, 0);
}

#[test]
fn tx_full_gives_the_frame_back_and_nothing_leaks() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts {
        queues: 2,
        ..Default::default()
    });
    // Queue 1 keeps receiving but cannot transmit: the kernel leaves TX alone.
    set_channels(&pair.host, 2, 1);
    let cap = Capture::open(&pair.ns, &pair.peer);
    let (mut rx, mut tx) = FluxBuilder::new(&pair.host)
        .queue(1)
        .load_xdp(false)
        .frame_size(2048)
        .frame_count(256)
        .ring_sizes(RingSizes {
            fill: 64,
            completion: 64,
            rx: 64,
            tx: 64,
        })
        .build()
        .expect("flux")
        .split();
    let frame = build_udp_frame(
        pair.host_mac,
        pair.peer_mac,
        pair.host_addr(PORT),
        pair.peer_addr(41000),
        &seq_payload(7, 100),
    );
    let fill = |tx: &mut Tx| {
        let mut f = tx.alloc().expect("a free frame");
        f.buffer_mut()[..frame.len()].copy_from_slice(&frame);
        f.set_len(frame.len()).unwrap();
        f
    };
    let mut queued = 0;
    let back = loop {
        let f = fill(&mut tx);
        match tx.try_send(f) {
            Ok(()) => queued += 1,
            Err(e) => {
                assert!(matches!(e.reason(), SendFailure::Full), "{e}");
                break e.into_frame();
            }
        }
        assert!(queued <= 64, "TX never filled");
    };
    assert_eq!(queued, 64, "TX holds its ring size");
    assert_eq!(&back[..], &frame[..], "the frame came back intact");
    let t0 = Instant::now();
    let err = tx
        .send_timeout(back, Duration::from_millis(50))
        .expect_err("still full");
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert!(matches!(err.reason(), SendFailure::Timeout) && err.is_full());
    let back = err.into_frame();
    let mut batch = vec![fill(&mut tx), fill(&mut tx)];
    assert_eq!(tx.send_batch(&mut batch), 0, "nothing fits");
    assert_eq!(batch.len(), 2, "unsent frames stay with the caller");
    let c = rx.frame_counts();
    assert!(c.is_conserved(), "{c}");
    assert_eq!((c.tx, c.user), (64, 3), "{c}");
    assert_eq!(tx.pending(), 64);

    // Let the queue transmit again: everything goes out and comes back.
    set_channels(&pair.host, 2, 2);
    drop(batch);
    drop(back);
    assert!(tx.drain(Duration::from_secs(2)).unwrap(), "TX drained");
    let got = cap.collect_until(
        |f| parse_udp_frame(f).is_some_and(|(_, d, _)| d.port() == 41000),
        64,
        Duration::from_secs(2),
    );
    assert_eq!(got.len(), 64, "peer saw every queued frame");
    assert_at_rest(&mut rx, &mut tx, 0);
}

#[test]
fn frame_api_edges_and_foreign_frames() {
    if skip_without_root() {
        return;
    }
    let a = VethPair::new(VethOpts::default());
    let b = VethPair::new(VethOpts::default());
    let (_rx_a, mut tx_a) = FluxBuilder::new(&a.host)
        .frame_size(2048)
        .build()
        .unwrap()
        .split();
    let (mut rx_b, mut tx_b) = FluxBuilder::new(&b.host)
        .frame_size(2048)
        .build()
        .unwrap()
        .split();

    let mut f = tx_b.alloc().unwrap();
    assert!(f.is_empty());
    assert_eq!(f.headroom(), 256);
    assert_eq!(f.capacity(), 2048 - 256);
    assert!(f.set_len(f.capacity() + 1).is_err());
    f.set_len(100).unwrap();
    f.fill(0xab);
    f.grow_head(14).unwrap();
    assert_eq!((f.len(), f.headroom()), (114, 242));
    assert!(f[14..].iter().all(|&x| x == 0xab));
    f.shrink_head(14).unwrap();
    assert!(f.shrink_head(101).is_err());
    assert!(f.grow_head(257).is_err());
    assert_eq!(f.tailroom(), 2048 - 256 - 100);

    // A frame of B's UMEM is refused by A's TX and comes back.
    let err = tx_a.try_send(f).expect_err("foreign");
    assert!(matches!(err.reason(), SendFailure::ForeignFrame), "{err}");
    let mut f = err.into_frame();
    // A zero-length frame would be swallowed by the kernel: refused here.
    f.set_len(0).unwrap();
    let err = tx_b.try_send(f).expect_err("empty");
    assert!(matches!(err.reason(), SendFailure::Invalid(_)), "{err}");
    // Frames are Send: a frame dropped on another thread returns to the pool.
    let f = err.into_frame();
    std::thread::spawn(move || drop(f)).join().unwrap();
    let c = rx_b.frame_counts();
    assert!(c.is_conserved() && c.user == 0, "{c}");
    let mut held = Vec::new();
    assert_eq!(tx_b.alloc_batch(&mut held, 10), 10);
    assert_eq!(rx_b.frame_counts().user, 10);
    drop(held);
    assert_eq!(rx_b.frame_counts().user, 0);
}

#[test]
fn handles_and_frames_drop_in_every_order() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    // 0 = Rx, 1 = Tx, 2 = frames.
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let (rx, mut tx) = FluxBuilder::new(&pair.host)
            .frame_size(2048)
            .filter(SteeringFilter::default().answering([pair.host_ip.into()]))
            .busy_retry(Duration::from_secs(3))
            .build()
            .unwrap()
            .split();
        assert!(xdp_attached(&pair.host));
        let payloads: Vec<Vec<u8>> = (0..20).map(|i| seq_payload(i, 80)).collect();
        udp_send_from_ns(
            &pair.ns,
            pair.peer_addr(42000),
            pair.host_addr(PORT),
            payloads,
            None,
        );
        let mut rx = Some(rx);
        let mut frames = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while frames.len() < 5 && Instant::now() < deadline {
            if let Some(r) = rx.as_mut() {
                if let Some(f) = r.recv_timeout(Duration::from_millis(50)).unwrap() {
                    frames.push(f);
                }
            }
        }
        assert_eq!(frames.len(), 5, "received frames");
        frames.push(tx.alloc().unwrap());
        // One frame queued on TX when the handles go.
        let mut queued = tx.alloc().unwrap();
        queued.set_len(60).unwrap();
        tx.try_send(queued).unwrap();
        let mut tx = Some(tx);
        let mut frames = Some(frames);
        for (step, what) in order.iter().enumerate() {
            match what {
                0 => drop(rx.take()),
                1 => drop(tx.take()),
                _ => {
                    // Frames outlive the handles: still readable and writable.
                    for f in frames.as_mut().unwrap().iter_mut() {
                        let n = f.len().min(1);
                        f[..n].fill(1);
                        assert!(f.len() <= f.capacity());
                    }
                    drop(frames.take());
                }
            }
            let handles_gone = rx.is_none() && tx.is_none();
            let attached = xdp_attached(&pair.host);
            assert_eq!(
                attached,
                !handles_gone,
                "order {order:?} step {step}: program attached while a handle lives, detached after (attached {attached}, rx {}, tx {})",
                rx.is_some(),
                tx.is_some()
            );
        }
    }
}
