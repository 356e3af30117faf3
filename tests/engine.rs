#![cfg(feature = "engine")]
//! Engine mode on real veth pairs: l2fwd round trip, generator count, two-port
//! forwarding over a shared UMEM, multi-queue workers, stop under traffic, callback
//! panic. Each test makes its own namespaces and veth pairs.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fluxcapacitor::engine::{Engine, Queues, Verdict};
use fluxcapacitor::{Error, FluxBuilder, RingSizes, SteeringFilter, XdpMode};

const N: u32 = 10_000;
const PORT: u16 = 7100;

fn stop_after(stop: fluxcapacitor::engine::StopHandle, d: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(d);
        stop.stop();
    });
}

fn seqs_of(frames: &[Vec<u8>]) -> HashSet<u32> {
    frames
        .iter()
        .filter_map(|f| parse_udp_frame(f).and_then(|(_, _, p)| check_seq_payload(p)))
        .collect()
}

#[test]
fn l2fwd_round_trip_swaps_macs() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let cap = Capture::open(&pair.ns, &pair.peer);
    let ip = pair.host_ip;
    let engine = Engine::builder(&pair.host)
        .configure(move |b: FluxBuilder| {
            b.frame_size(2048)
                .ring_size(2048)
                .filter(SteeringFilter::default().answering([ip.into()]))
        })
        .build()
        .expect("engine");
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
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| seq_payload(i, 64)).collect();
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(41000), pair.host_addr(PORT));
    let stop2 = stop.clone();
    let sender = std::thread::spawn(move || {
        send_windowed(&ns, src, dst, payloads, 1, progress, 128);
        std::thread::sleep(Duration::from_millis(300));
        stop2.stop();
    });
    let report = engine
        .run(|batch| {
            for mut p in batch.iter_mut() {
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
    assert_eq!(seqs.len() as u32, N, "got {} of {N} back", seqs.len());
    assert_eq!(got.len() as u32, N, "duplicates");
    let f = report.frames[0];
    assert!(
        f.is_conserved() && f.user == 0 && f.tx == 0 && f.completion == 0,
        "{f}"
    );
    let q = &report.queues[0];
    assert!(q.counters.verdict_tx >= N as u64, "{q}");
    assert_eq!(q.kernel.unwrap().tx_invalid_descs, 0);
    assert!(!xdp_attached(&pair.host), "program left attached");
}

#[test]
fn txgen_sends_exactly_the_requested_count() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let cap = Capture::open(&pair.ns, &pair.peer);
    let count = 20_000u64;
    let engine = Engine::builder(&pair.host)
        .always_call(true)
        .configure(|b: FluxBuilder| {
            b.load_xdp(false).frame_size(2048).ring_sizes(RingSizes {
                fill: 1024,
                completion: 1024,
                rx: 0,
                tx: 1024,
            })
        })
        .build()
        .expect("engine");
    let stop = engine.stop_handle();
    let frame = build_udp_frame(
        pair.host_mac,
        pair.peer_mac,
        pair.host_addr(5000),
        pair.peer_addr(PORT),
        &[0u8; 22],
    );
    let collector = std::thread::spawn(move || {
        cap.collect_until(
            |f| parse_udp_frame(f).is_some_and(|(_, d, _)| d.port() == PORT),
            count as usize + 1,
            Duration::from_secs(3),
        )
    });
    let sent = AtomicU64::new(0);
    let start = Instant::now();
    // ~200k frames/s keeps the veth peer's 1000-packet backlog from overflowing.
    let rate = 200_000.0;
    engine
        .run(|batch| {
            let mut n = sent.load(Ordering::Relaxed);
            let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(count);
            while n < due {
                let Some(mut f) = batch.alloc_tx() else { break };
                let buf = f.buffer_mut();
                buf[..frame.len()].copy_from_slice(&frame);
                buf[42..46].copy_from_slice(&(n as u32).to_be_bytes());
                f.send(frame.len()).unwrap();
                n += 1;
            }
            sent.store(n, Ordering::Relaxed);
            if n == count {
                stop.stop();
            }
        })
        .expect("run");
    let got = collector.join().unwrap();
    assert_eq!(got.len() as u64, count, "peer saw {} of {count}", got.len());
    let distinct: HashSet<u32> = got
        .iter()
        .map(|f| u32::from_be_bytes([f[42], f[43], f[44], f[45]]))
        .collect();
    assert_eq!(distinct.len() as u64, count);
}

#[test]
fn two_ports_forward_over_shared_umem() {
    if skip_without_root() {
        return;
    }
    let a = VethPair::new(VethOpts::default());
    let b = VethPair::new(VethOpts::default());
    let cap_b = Capture::open(&b.ns, &b.peer);
    let a_port =
        FluxBuilder::new(&a.host).filter(SteeringFilter::default().answering([a.host_ip.into()]));
    let engine = Engine::with_ports(vec![a_port, FluxBuilder::new(&b.host)])
        .configure(|f: FluxBuilder| f.frame_size(2048).frame_count(8192).ring_size(2048))
        .build()
        .expect("engine");
    let reports = engine.reports();
    assert!(reports[1].shared_umem, "second port shares the UMEM");
    let stop = engine.stop_handle();
    let b_mac = b.peer_mac;
    let progress = Arc::new(AtomicU64::new(0));
    let p2 = progress.clone();
    let collector = std::thread::spawn(move || {
        cap_b.collect_counting(
            |f| parse_udp_frame(f).is_some(),
            N as usize,
            Duration::from_secs(5),
            &p2,
        )
    });
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| seq_payload(i, 200)).collect();
    let (ns, src, dst) = (a.ns.clone(), a.peer_addr(41001), a.host_addr(PORT));
    let stop2 = stop.clone();
    let sender = std::thread::spawn(move || {
        send_windowed(&ns, src, dst, payloads, 1, progress, 128);
        std::thread::sleep(Duration::from_millis(300));
        stop2.stop();
    });
    let report = engine
        .run(move |batch| {
            let to = 1 - batch.port();
            for mut p in batch.iter_mut() {
                p.data_mut()[..6].copy_from_slice(&b_mac);
                assert!(p.forward(to));
            }
        })
        .expect("run");
    sender.join().unwrap();
    let got = collector.join().unwrap();
    assert_eq!(
        seqs_of(&got).len() as u32,
        N,
        "forwarded {} of {N}",
        got.len()
    );
    let f = report.frames[0];
    assert!(f.is_conserved() && f.user == 0 && f.tx == 0, "{f}");
    assert!(report.queues[0].counters.verdict_forward >= N as u64);
}

#[test]
fn multi_queue_workers_account_for_every_packet() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts {
        queues: 2,
        ..Default::default()
    });
    let ip = pair.host_ip;
    let engine = Engine::builder(&pair.host)
        .queues(Queues::All)
        .configure(move |b: FluxBuilder| {
            b.xdp_mode(XdpMode::Native)
                .frame_size(2048)
                .ring_size(2048)
                .filter(SteeringFilter::default().answering([ip.into()]))
        })
        .build()
        .expect("engine");
    assert_eq!(engine.reports().len(), 2);
    let stop = engine.stop_handle();
    let per_queue: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let seen = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| seq_payload(i, 100)).collect();
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(42000), pair.host_addr(PORT));
    let stop2 = stop.clone();
    let progress = Arc::new(AtomicU64::new(0));
    let p2 = progress.clone();
    let sender = std::thread::spawn(move || {
        // 32 flows so the peer's transmit hash spreads them over both queues.
        send_windowed(&ns, src, dst, payloads, 32, p2, 128);
        std::thread::sleep(Duration::from_millis(300));
        stop2.stop();
    });
    let (pq, seen2) = (per_queue.clone(), seen.clone());
    let report = engine
        .run_with(move |_worker| {
            let (pq, seen, progress) = (pq.clone(), seen2.clone(), progress.clone());
            move |batch: &mut fluxcapacitor::engine::Batch<'_>| {
                let q = batch.queue() as usize;
                let mut local = Vec::new();
                for p in batch.iter_mut() {
                    if let Some((_, d, payload)) = parse_udp_frame(p.data()) {
                        if d.port() == PORT {
                            local.push(check_seq_payload(payload).expect("intact"));
                        }
                    }
                }
                pq[q].fetch_add(local.len() as u64, Ordering::Relaxed);
                progress.fetch_add(local.len() as u64, Ordering::Release);
                let mut s = seen.lock().unwrap();
                for x in local {
                    assert!(s.insert(x), "duplicate {x}");
                }
            }
        })
        .expect("run");
    sender.join().unwrap();
    let (q0, q1) = (
        per_queue[0].load(Ordering::Relaxed),
        per_queue[1].load(Ordering::Relaxed),
    );
    let diag = format!(
        "q0 {q0} q1 {q1}; {:?}; peer: {}",
        report
            .queues
            .iter()
            .map(|q| q.to_string())
            .collect::<Vec<_>>(),
        ns_link_stats(&pair.ns, &pair.peer)
    );
    assert_eq!(seen.lock().unwrap().len() as u32, N, "{diag}");
    assert!(
        q0 > 0 && q1 > 0,
        "traffic should reach both queues: q0 {q0} q1 {q1}"
    );
    for f in &report.frames {
        assert!(f.is_conserved() && f.user == 0, "{f}");
    }
    let rx: u64 = report.queues.iter().map(|q| q.counters.rx_packets).sum();
    assert!(rx >= N as u64);
}

#[test]
fn stop_under_traffic_and_callback_panic_leave_frames_accounted() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    // 1. Stop while traffic flows, with frames on TX.
    let ip = pair.host_ip;
    let answering = move |b: FluxBuilder| {
        b.frame_size(2048)
            .ring_size(1024)
            .filter(SteeringFilter::default().answering([ip.into()]))
    };
    let engine = Engine::builder(&pair.host)
        .configure(answering)
        .build()
        .unwrap();
    let stop = engine.stop_handle();
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| seq_payload(i, 64)).collect();
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(43000), pair.host_addr(PORT));
    let sender = std::thread::spawn(move || send_paced(&ns, src, dst, payloads, 1));
    stop_after(stop, Duration::from_millis(30));
    let report = engine.run(|batch| batch.set_all(Verdict::Tx)).expect("run");
    let f = report.frames[0];
    assert!(
        f.is_conserved() && f.user == 0 && f.tx == 0 && f.completion == 0,
        "{f}"
    );
    sender.join().unwrap();
    assert!(!xdp_attached(&pair.host));

    // 2. A panicking callback stops the engine cleanly with a typed error.
    let engine = Engine::builder(&pair.host)
        .configure(answering)
        .build()
        .unwrap();
    let stats = engine.stats();
    let payloads: Vec<Vec<u8>> = (0..1000).map(|i| seq_payload(i, 64)).collect();
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(43001), pair.host_addr(PORT));
    let sender = std::thread::spawn(move || send_paced(&ns, src, dst, payloads, 1));
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // keep the expected panic quiet
    let seen = AtomicU64::new(0);
    let res = engine.run(|batch| {
        if seen.fetch_add(batch.len() as u64, Ordering::Relaxed) > 100 {
            panic!("boom in the callback");
        }
    });
    std::panic::set_hook(hook);
    match res {
        Err(Error::CallbackPanicked { message, worker: 0 }) => assert!(message.contains("boom")),
        other => panic!("expected CallbackPanicked, got {other:?}"),
    }
    assert!(stats.total().rx_packets > 100);
    assert!(
        !xdp_attached(&pair.host),
        "program detached after the panic"
    );
    sender.join().unwrap();
}
