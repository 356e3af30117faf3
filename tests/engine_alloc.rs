#![cfg(feature = "engine")]
//! The engine allocates nothing on the heap per packet in steady state: a counting
//! global allocator (per thread) is read inside the callback at two points while
//! traffic flows, and the worker thread must not have allocated in between.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fluxcapacitor::engine::Engine;
use fluxcapacitor::{FluxBuilder, SteeringFilter};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the thread-local counter is a const-init
// Cell, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs_here() -> u64 {
    ALLOCS.with(|c| c.get())
}

#[test]
fn engine_steady_state_allocates_nothing_per_packet() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let ip = pair.host_ip;
    let engine = Engine::builder(&pair.host)
        .configure(move |b: FluxBuilder| {
            b.frame_size(2048)
                .ring_size(1024)
                .filter(SteeringFilter::default().answering([ip.into()]))
        })
        .build()
        .expect("engine");
    let stop = engine.stop_handle();
    let n = 20_000u32;
    let payloads: Vec<Vec<u8>> = (0..n).map(|i| seq_payload(i, 64)).collect();
    let progress = Arc::new(AtomicU64::new(0));
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(44000), pair.host_addr(7200));
    let p2 = progress.clone();
    let stop2 = stop.clone();
    let sender = std::thread::spawn(move || {
        send_windowed(&ns, src, dst, payloads, 1, p2, 256);
        std::thread::sleep(Duration::from_millis(200));
        stop2.stop();
    });
    // Snapshots of the worker thread's allocation count at 2,000 and 18,000 packets,
    // with transmits in between (half the packets go back out, half are dropped).
    let (first, second) = (AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX));
    let seen = AtomicU64::new(0);
    engine
        .run(|batch| {
            let before = seen.load(Ordering::Relaxed);
            let mut count = 0;
            for mut p in batch.iter_mut() {
                if parse_udp_frame(p.data()).is_some_and(|(_, d, _)| d.port() == 7200) {
                    count += 1;
                    if (before + count) % 2 == 0 {
                        let d = p.data_mut();
                        let (a, b) = d[..12].split_at_mut(6);
                        a.swap_with_slice(b);
                        p.transmit();
                    }
                }
            }
            let now = before + count;
            seen.store(now, Ordering::Relaxed);
            progress.store(now, Ordering::Release);
            if before < 2_000 && now >= 2_000 {
                first.store(allocs_here(), Ordering::Relaxed);
            }
            if before < 18_000 && now >= 18_000 {
                second.store(allocs_here(), Ordering::Relaxed);
            }
        })
        .expect("run");
    sender.join().unwrap();
    let (a, b) = (
        first.load(Ordering::Relaxed),
        second.load(Ordering::Relaxed),
    );
    assert!(
        a != u64::MAX && b != u64::MAX,
        "traffic did not reach both points: seen {}",
        seen.load(Ordering::Relaxed)
    );
    assert_eq!(
        b - a,
        0,
        "the worker allocated {} times over 16,000 packets",
        b - a
    );
}
