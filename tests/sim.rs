#![cfg(feature = "sim")]
//! The simulated device: raw rings, the engine, system handles and (on Linux) the
//! tokio handles running on it without root; seeded faults; and the fidelity bodies
//! (invalid descriptors, FILL starvation, RX full, need_wakeup, the 32-descriptor TX
//! budget) that `tests/fidelity.rs` also runs on a real veth pair — the same code,
//! the same expectations.

#[path = "fidelity/bodies.rs"]
mod bodies;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxcapacitor::engine::Engine;
use fluxcapacitor::sim::{Faults, SimConfig, SimDevice};
use fluxcapacitor::RingSizes;

fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental EtherType
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (seq as usize + i) as u8;
    }
    f
}

fn seq_of(f: &[u8]) -> u32 {
    u32::from_be_bytes([f[14], f[15], f[16], f[17]])
}

/// A sim pair as a fidelity link: `tx` sends, `rx` receives.
fn sim_link(rx_rings: RingSizes, prefill_rx: bool) -> bodies::Link {
    let a = SimConfig::default();
    let b = SimConfig {
        rings: rx_rings,
        prefill: prefill_rx,
        ..SimConfig::default()
    };
    let (da, db) = SimDevice::pair(a, b);
    let a_flux = da.flux().unwrap();
    let b_flux = db.flux().unwrap();
    bodies::Link {
        tx: a_flux,
        rx: b_flux,
        frame: Box::new(frame),
        _keep: Box::new((da, db)),
    }
}

#[test]
fn fidelity_invalid_descriptors_on_sim() {
    bodies::invalid_descriptors(sim_link(RingSizes::default(), true));
}

#[test]
fn fidelity_fill_starvation_on_sim() {
    bodies::fill_starvation(sim_link(RingSizes::default(), false));
}

#[test]
fn fidelity_rx_full_on_sim() {
    bodies::rx_full(sim_link(
        RingSizes {
            fill: 1024,
            completion: 1024,
            rx: 64,
            tx: 1024,
        },
        true,
    ));
}

#[test]
fn fidelity_need_wakeup_on_sim() {
    bodies::need_wakeup(sim_link(RingSizes::default(), true));
}

#[test]
fn fidelity_tx_budget_on_sim() {
    bodies::tx_budget(sim_link(RingSizes::default(), true));
}

#[test]
fn rx_layout_matches_the_kernel() {
    let dev = SimDevice::new(SimConfig {
        umem: fluxcapacitor::UmemConfig {
            frame_size: 2048,
            frame_count: 256,
            headroom: 64,
            ..Default::default()
        },
        ..Default::default()
    });
    let mut flux = dev.flux().unwrap();
    assert!(dev.inject(&frame(7, 100)));
    let raw = flux.raw();
    let peek = raw.rx.unwrap().peek(8);
    assert_eq!(peek.len(), 1);
    let d = peek.get(0).unwrap();
    assert_eq!(
        raw.umem.offset_in_chunk(d.addr),
        256 + 64,
        "data at chunk + 256 + headroom"
    );
    // SAFETY: off RX; not given back while the slice lives.
    let bytes = unsafe { raw.umem.slice(d.addr, d.len as usize) }.unwrap();
    assert_eq!(bytes, &frame(7, 100)[..]);
    peek.release();
}

/// The same l2fwd callback as on a kernel interface; only the engine's constructor
/// differs.
#[test]
fn engine_l2fwd_runs_on_the_simulated_device() {
    let dev = SimDevice::new(SimConfig::default());
    let engine = Engine::from_fluxes(vec![dev.flux().unwrap()])
        .build()
        .unwrap();
    let stop = engine.stop_handle();
    let n = 5000u32;
    let (dev2, stop2) = (dev.clone(), stop.clone());
    let feeder = std::thread::spawn(move || {
        let mut sent = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut next = 0;
        while sent.len() < n as usize {
            assert!(
                Instant::now() < deadline,
                "engine stalled: {} of {n}",
                sent.len()
            );
            // Keep at most a ring's worth in flight, as a link would.
            if next < n && next - (sent.len() as u32) < 512 {
                if dev2.inject(&frame(next, 64 + (next % 200) as usize)) {
                    next += 1;
                }
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
            sent.extend(dev2.take_sent());
        }
        stop2.stop();
        sent
    });
    let report = engine
        .run(|batch| {
            for mut p in batch.iter_mut() {
                let d = p.data_mut();
                let (a, b) = d[..12].split_at_mut(6);
                a.swap_with_slice(b);
                p.transmit();
            }
        })
        .unwrap();
    let sent = feeder.join().unwrap();
    assert_eq!(sent.len(), n as usize);
    for (i, f) in sent.iter().enumerate() {
        assert_eq!(seq_of(f), i as u32, "order kept");
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 1], "MACs swapped");
        assert_eq!(f.len(), 64 + (i % 200));
    }
    let c = report.frames[0];
    assert!(c.is_conserved() && c.user == 0 && c.tx == 0, "{c}");
    assert_eq!(dev.statistics().rx_dropped, 0);
}

#[cfg(feature = "system")]
#[test]
fn system_handles_run_on_the_simulated_device() {
    let dev = SimDevice::new(SimConfig::default());
    let (mut rx, mut tx) = dev.flux().unwrap().split();
    let d2 = dev.clone();
    let t = std::thread::spawn(move || {
        for i in 0..1000 {
            while !d2.inject(&frame(i, 80)) {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    });
    let mut got = 0u32;
    while got < 1000 {
        let f = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("frame");
        assert_eq!(seq_of(f.data()), got);
        got += 1;
        // Echo it back: zero-copy, the same frame goes to TX.
        tx.send(f).map_err(|e| e.into_parts().1).unwrap();
    }
    t.join().unwrap();
    tx.drain(Duration::from_secs(2)).unwrap();
    let sent = dev.take_sent();
    assert_eq!(sent.len(), 1000);
    assert!(sent.iter().enumerate().all(|(i, f)| seq_of(f) == i as u32));
}

#[cfg(all(feature = "async", target_os = "linux"))]
#[test]
fn tokio_handles_run_on_the_simulated_device() {
    let dev = SimDevice::new(SimConfig::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let d2 = dev.clone();
    let got = rt.block_on(async move {
        let (mut rx, _tx) = fluxcapacitor::system::tokio::split(dev.flux().unwrap()).unwrap();
        let feeder = std::thread::spawn(move || {
            for i in 0..500 {
                while !d2.inject(&frame(i, 70)) {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        });
        let mut got = 0u32;
        while got < 500 {
            let f = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("no stall")
                .unwrap();
            assert_eq!(seq_of(f.data()), got);
            got += 1;
        }
        feeder.join().unwrap();
        got
    });
    assert_eq!(got, 500);
}

/// Wire faults are seeded: the same seed gives the same losses, reorderings and
/// corruptions, so an application's loss handling can be tested deterministically.
#[test]
fn seeded_faults_are_deterministic() {
    let run = |seed: u64| -> Vec<Vec<u8>> {
        let cfg = SimConfig {
            faults: Faults {
                drop: 0.1,
                corrupt: 0.05,
                reorder: 0.05,
                delay: 0.05,
                delay_kicks: 3,
            },
            seed,
            ..SimConfig::default()
        };
        let dev = SimDevice::new(cfg);
        let mut flux = dev.flux().unwrap();
        for i in 0..400u32 {
            let mut raw = flux.raw();
            let chunk = raw.pool.alloc().unwrap();
            let off = raw.umem.data_offset() as u64;
            let f = frame(i, 64);
            // SAFETY: from the pool, on no ring.
            unsafe { raw.umem.slice_mut(chunk + off, f.len()) }
                .unwrap()
                .copy_from_slice(&f);
            raw.send(&[fluxcapacitor::XdpDesc {
                addr: chunk + off,
                len: f.len() as u32,
                options: 0,
            }])
            .unwrap();
            raw.device.kick_tx().unwrap();
            let (c, pool, umem) = (raw.completion.unwrap(), raw.pool, raw.umem);
            c.consume(u32::MAX, |a| pool.free(umem.chunk_of(a)));
        }
        for _ in 0..5 {
            dev.kick(); // flush delayed frames
        }
        dev.take_sent()
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(a, b, "same seed, same wire");
    assert_ne!(a, c, "another seed, another wire");
    assert!(
        a.len() < 400 && a.len() > 300,
        "about 10% dropped: {}",
        a.len()
    );
    let in_order = a.windows(2).all(|w| seq_of(&w[0]) < seq_of(&w[1]));
    assert!(!in_order, "reordering happened");
}

#[test]
fn a_stalled_device_receives_nothing_until_restarted() {
    let dev = SimDevice::new(SimConfig::default());
    let mut flux = dev.flux().unwrap();
    dev.stall(true);
    assert!(!dev.inject(&frame(0, 64)));
    assert_eq!(flux.raw().rx.unwrap().available(1), 0);
    dev.stall(false);
    assert!(dev.inject(&frame(1, 64)));
    assert_eq!(flux.raw().rx.unwrap().available(1), 1);
    assert_eq!(dev.statistics().rx_dropped, 1);
}

#[test]
fn engine_stops_promptly_on_an_idle_simulated_device() {
    let dev = SimDevice::new(SimConfig::default());
    let engine = Engine::from_fluxes(vec![dev.flux().unwrap()])
        .build()
        .unwrap();
    let stop = engine.stop_handle();
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        r2.store(true, Ordering::Relaxed);
        stop.stop();
    });
    let t = Instant::now();
    engine.run(|_| {}).unwrap();
    assert!(ran.load(Ordering::Relaxed));
    assert!(t.elapsed() < Duration::from_secs(2));
}

/// With `proto`, engine packets and system frames expose the protocol views directly.
#[cfg(all(feature = "proto", feature = "system"))]
#[test]
fn proto_views_on_engine_packets_and_system_frames() {
    use fluxcapacitor::proto::Net;
    let mut arp = vec![0u8; 60];
    arp[0..6].copy_from_slice(&[0xff; 6]);
    arp[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    arp[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
    arp[28..32].copy_from_slice(&[198, 18, 0, 2]);
    arp[38..42].copy_from_slice(&[198, 18, 0, 1]);
    // System frame.
    let dev = SimDevice::new(SimConfig::default());
    let (mut rx, _tx) = dev.flux().unwrap().split();
    assert!(dev.inject(&arp));
    let f = rx.recv_timeout(Duration::from_secs(1)).unwrap().unwrap();
    let layers = f.parse().unwrap();
    assert!(
        matches!(layers.net, Net::Arp(a) if a.target_ip() == std::net::Ipv4Addr::new(198, 18, 0, 1))
    );
    // Engine packet.
    let dev = SimDevice::new(SimConfig::default());
    let engine = Engine::from_fluxes(vec![dev.flux().unwrap()])
        .build()
        .unwrap();
    let stop = engine.stop_handle();
    assert!(dev.inject(&arp));
    let seen = std::sync::atomic::AtomicBool::new(false);
    engine
        .run(|batch| {
            for p in batch.iter_mut() {
                if matches!(p.parse().map(|l| l.net), Ok(Net::Arp(_))) {
                    seen.store(true, Ordering::Relaxed);
                }
            }
            stop.stop();
        })
        .unwrap();
    assert!(seen.load(Ordering::Relaxed));
}
