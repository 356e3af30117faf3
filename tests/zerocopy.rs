#![cfg(all(feature = "raw", target_os = "linux"))]
//! Zero-copy for real: AF_XDP sockets in `BindMode::ZeroCopy` on two NICs wired back to
//! back, each sending to the other through its TX ring and receiving on its RX ring.
//!
//! veth has no zero-copy, so these tests need hardware (or virtio-net, kernel ≥ 6.11):
//! `scripts/kernel-matrix.sh` boots VMs with two virtio-net NICs on one private QEMU
//! hub (whatever one sends arrives on the other, and nowhere else) and runs
//!
//! ```text
//! FLUX_ZC_IFACES=eth0,eth1 zerocopy-<hash> --ignored
//! ```
//!
//! Without `FLUX_ZC_IFACES` they are ignored (with that reason); with it they fail,
//! never skip, if zero-copy does not work. `FLUX_ZC_EXPECT=refused` (set by the
//! matrix for kernels whose driver has no AF_XDP zero-copy) turns the test into a
//! check that the refusal is the typed `Error::ZeroCopyUnsupported` naming the NIC.

mod common;

use std::time::{Duration, Instant};

use common::raw::{kick_all, queue_tx, reap, return_to_fill};
use common::*;
use fluxcapacitor::raw::RawParts;
use fluxcapacitor::{AttachedMode, BindMode, Error, Flux, FluxBuilder, XdpDesc, XdpMode};

const NEEDS: &str = "needs two NICs wired back to back with AF_XDP zero-copy: \
                     FLUX_ZC_IFACES=eth0,eth1 and --ignored (scripts/kernel-matrix.sh --zerocopy)";
const PORT: u16 = 7100;
const N: u32 = 2000;
const CHUNK: usize = 64;

/// The two interfaces of `FLUX_ZC_IFACES` (panics without it: --ignored was asked for).
fn ifaces() -> (String, String) {
    let v = std::env::var("FLUX_ZC_IFACES")
        .unwrap_or_else(|_| panic!("FLUX_ZC_IFACES is not set; this test {NEEDS}"));
    match v.split(',').collect::<Vec<_>>()[..] {
        [a, b] if !a.is_empty() && !b.is_empty() && a != b => (a.to_string(), b.to_string()),
        _ => panic!("FLUX_ZC_IFACES={v:?}: give two different interfaces, e.g. eth0,eth1"),
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

fn mac_of(ifname: &str) -> [u8; 6] {
    let s = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address"))
        .unwrap_or_else(|e| panic!("no MAC for {ifname}: {e}"));
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(s.trim().split(':')) {
        *b = u8::from_str_radix(p, 16).expect("hex MAC");
    }
    mac
}

/// The error and every source under it, with the errno where there is one.
fn explain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(" <- ");
        s.push_str(&c.to_string());
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if let Some(n) = io.raw_os_error() {
                s.push_str(&format!(" [errno {n}]"));
            }
        }
        cur = c.source();
    }
    s
}

fn zero_copy_flux(ifname: &str) -> Result<Flux, Error> {
    FluxBuilder::new(ifname)
        .xdp_mode(XdpMode::Native)
        .bind_mode(BindMode::ZeroCopy)
        .build()
}

/// Takes everything on RX, records the sequence numbers of our datagrams, returns
/// the frames to FILL and wakes the driver if it asks. Returns how many frames came.
fn drain_rx(flux: &mut Flux, seqs: &mut Vec<u32>) -> u32 {
    let RawParts {
        fill,
        rx,
        umem,
        device: fd,
        ..
    } = flux.raw();
    let (fill, rx) = (fill.expect("FILL ring"), rx.expect("RX ring"));
    let mut chunks = Vec::new();
    let n = rx.consume(u32::MAX, |d: XdpDesc| {
        // SAFETY: the frame came off RX and is on no ring until it goes back on FILL below.
        let bytes = unsafe { umem.slice(d.addr, d.len as usize) }.expect("RX frame in the UMEM");
        if let Some((_, dst, payload)) = parse_udp_frame(bytes) {
            if dst.port() == PORT {
                seqs.push(check_seq_payload(payload).expect("payload intact"));
            }
        }
        chunks.push(umem.chunk_of(d.addr));
    });
    return_to_fill(fill, &chunks);
    if fill.needs_wakeup() {
        fd.wake_rx().expect("wake RX");
    }
    n
}

/// Sends N datagrams from `tx` to `rx` (chunk by chunk, draining RX as it goes) and
/// checks that each arrived exactly once, intact, with no drop the kernel counted.
fn one_way(tx: &mut Flux, rx: &mut Flux, what: &str) {
    let (src_mac, dst_mac) = (mac_of(&tx.report().ifname), mac_of(&rx.report().ifname));
    let src = "198.18.200.1:40000".parse().unwrap();
    let dst = format!("198.18.200.2:{PORT}").parse().unwrap();
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            build_udp_frame(
                src_mac,
                dst_mac,
                src,
                dst,
                &seq_payload(i, 64 + (i % 13) as usize * 100),
            )
        })
        .collect();
    let before = rx.statistics().expect("statistics");
    let mut seqs = Vec::new();
    for chunk in frames.chunks(CHUNK) {
        let mut sent = 0;
        while sent < chunk.len() {
            sent += queue_tx(tx, &chunk[sent..]);
            kick_all(tx);
            reap(tx);
            drain_rx(rx, &mut seqs);
        }
    }
    let mut last = Instant::now();
    while seqs.len() < N as usize && last.elapsed() < Duration::from_secs(5) {
        reap(tx);
        if drain_rx(rx, &mut seqs) > 0 {
            last = Instant::now();
        } else {
            rx.device()
                .poll(true, false, Some(Duration::from_millis(10)))
                .expect("poll");
        }
    }
    let stats = rx.statistics().expect("statistics");
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seqs.len(), "{what}: duplicate datagrams");
    assert_eq!(
        seqs.len(),
        N as usize,
        "{what}: got {} of {N} datagrams; rx stats before {before:?}, after {stats:?}",
        seqs.len()
    );
    assert_eq!(stats.rx_dropped, before.rx_dropped, "{what}: {stats:?}");
    assert_eq!(stats.rx_invalid_descs, 0, "{what}: {stats:?}");
    assert_eq!(
        tx.statistics().expect("statistics").tx_invalid_descs,
        0,
        "{what}"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        reap(tx);
        let c = tx.frame_counts();
        assert!(c.is_conserved(), "{what}: frames not conserved: {c}");
        if c.tx == 0 && c.completion == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: TX frames did not complete: {c}"
        );
        let _ = tx.device().kick_tx();
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
#[ignore = "needs two NICs wired back to back with AF_XDP zero-copy: FLUX_ZC_IFACES=eth0,eth1 and --ignored (scripts/kernel-matrix.sh --zerocopy)"]
fn zero_copy_rx_and_tx_between_back_to_back_nics() {
    require_root();
    let (a, b) = ifaces();
    let k = kernel();
    for i in [&a, &b] {
        let state = std::fs::read_to_string(format!("/sys/class/net/{i}/operstate"))
            .unwrap_or_else(|e| panic!("FLUX_ZC_IFACES names {i}, which has no operstate: {e}"));
        assert_eq!(
            state.trim(),
            "up",
            "{i} is not up (`ip link set dev {i} up`)"
        );
    }
    if std::env::var("FLUX_ZC_EXPECT").as_deref() == Ok("refused") {
        match zero_copy_flux(&a) {
            Err(e @ Error::ZeroCopyUnsupported { .. }) => {
                let Error::ZeroCopyUnsupported { ifname, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(ifname, &a);
                assert!(
                    !xdp_attached(&a),
                    "the refused build left its program on {a}"
                );
                // The device probe agrees: no xsk-zerocopy (or, before 6.3, unknown).
                let f = fluxcapacitor::probe(&a).expect("probe");
                assert_ne!(f.zero_copy(), Some(true), "kernel {k}: refused, yet {f}");
                println!("kernel {k}: {}", f.summary());
                println!(
                    "kernel {k}: zero-copy on {a} refused as expected: {}",
                    explain(&e)
                );
                return;
            }
            Err(e) => panic!(
                "kernel {k}: expected ZeroCopyUnsupported on {a}, got: {}",
                explain(&e)
            ),
            Ok(f) => panic!(
                "kernel {k}: zero-copy on {a} was expected to be refused but bound: {}",
                f.report()
            ),
        }
    }
    // The device probe says zero-copy, with its fragment limit, and BindMode::Auto
    // therefore tries it, and gets it, citing the probe.
    {
        let f = fluxcapacitor::probe(&a).expect("probe");
        println!("kernel {k}: {}", f.summary());
        assert_eq!(
            f.zero_copy(),
            Some(true),
            "kernel {k}: zero-copy works, yet\n{f}"
        );
        assert!(f.xdp_zc_max_segs.is_some_and(|n| n >= 1), "{f}");
        let auto = FluxBuilder::new(&a)
            .bind_mode(BindMode::Auto)
            .build()
            .unwrap_or_else(|e| panic!("kernel {k}: auto build on {a}: {}", explain(&e)));
        let r = auto.report();
        assert!(r.zero_copy, "kernel {k}: BindMode::Auto bound copy: {r}");
        assert!(
            r.zero_copy_reason.contains(&f.summary()),
            "{}",
            r.zero_copy_reason
        );
        assert_eq!(r.features.as_ref().and_then(|f| f.zero_copy()), Some(true));
    }
    let build = |ifname: &str| {
        let flux = zero_copy_flux(ifname).unwrap_or_else(|e| {
            panic!("kernel {k}: zero-copy on {ifname} refused: {}", explain(&e))
        });
        let r = flux.report();
        println!("kernel {k}: {r}");
        assert!(r.zero_copy, "{ifname}: report says copy mode: {r}");
        assert_eq!(r.xdp_mode, Some(AttachedMode::Native), "{r}");
        assert!(
            flux.device().zero_copy().expect("XDP_OPTIONS"),
            "{ifname}: XDP_OPTIONS says copy"
        );
        flux
    };
    let mut fa = build(&a);
    let mut fb = build(&b);
    one_way(&mut fb, &mut fa, &format!("{b} -> {a}"));
    one_way(&mut fa, &mut fb, &format!("{a} -> {b}"));
    println!("kernel {k}: {N} datagrams each way between {a} and {b} in zero-copy mode");
}
