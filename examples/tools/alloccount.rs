//! alloccount: heap allocations per packet of the engine in steady state. A counting
//! global allocator wraps the system one; the engine runs over live traffic (drop
//! every packet, or with `--tx` swap MACs and send it back), and after a warm-up the
//! allocations made by the whole process during a measuring window are divided by
//! the packets handled in it. Nothing else in the process allocates in the window.
//!
//! ```sh
//! sudo target/release/examples/alloccount --iface fx0 [--tx] [--warmup 1] [--secs 3] [--pin CPU]
//! ```
//!
//! Prints `RESULT name=alloccount … allocs=N allocs_per_pkt=X`.

#[path = "../common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Args;
use fluxcapacitor::engine::Engine;

const USAGE: &str = "alloccount --iface IF [--tx] [--warmup SECS] [--secs SECS] [--pin CPU]";

/// Allocations (alloc, alloc_zeroed, realloc) on the engine's worker thread, the
/// data path (the library's side threads, e.g. the device watch re-reading the
/// link every 200 ms, are not the per-packet path and are not counted).
static ALLOCS: AtomicU64 = AtomicU64::new(0);

std::thread_local! {
    /// Set on the worker thread by the first callback.
    static WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if WORKER.with(|w| w.get()) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}
/// Packets the callback has seen.
static PKTS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds
// the GlobalAlloc contract; the counter is a lock-free atomic that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from this allocator (i.e. from System) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("alloccount: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), fluxcapacitor::Error> {
    let iface = args.req("iface");
    let tx = args.flag("tx");
    let warmup = Duration::from_secs_f64(args.num("warmup", 1.0));
    let window = Duration::from_secs_f64(args.num("secs", 3.0));
    let mut b = Engine::builder(&iface);
    if let Some(cpu) = args.str("pin") {
        b = b.pin_cpus(vec![cpu.parse().unwrap_or(0)]);
    }
    let engine = b.build()?;
    let stop = engine.stop_handle();
    stop.stop_on_signals()?;
    // The measuring thread: sleeps and reads two atomics -- no allocation inside
    // the window.
    let timer = std::thread::spawn(move || {
        std::thread::sleep(warmup);
        let (a0, p0, t0) = (
            ALLOCS.load(Ordering::Relaxed),
            PKTS.load(Ordering::Relaxed),
            Instant::now(),
        );
        std::thread::sleep(window);
        let (a1, p1, secs) = (
            ALLOCS.load(Ordering::Relaxed),
            PKTS.load(Ordering::Relaxed),
            t0.elapsed().as_secs_f64(),
        );
        stop.stop();
        (a1 - a0, p1 - p0, secs)
    });
    let cpu0 = common::cpu_secs();
    engine.run(|batch| {
        WORKER.with(|w| w.set(true));
        PKTS.fetch_add(batch.len() as u64, Ordering::Relaxed);
        if tx {
            for mut pkt in batch.iter_mut() {
                let data = pkt.data_mut();
                if data.len() >= 14 {
                    let (dst, src) = data[..12].split_at_mut(6);
                    dst.swap_with_slice(src);
                    pkt.transmit();
                }
            }
        }
    })?;
    let (allocs, pkts, secs) = timer.join().unwrap_or((0, 0, 0.0));
    let per = if pkts > 0 {
        allocs as f64 / pkts as f64
    } else {
        f64::NAN
    };
    println!(
        "alloccount ({}): {allocs} allocations over {pkts} packets in the {secs:.1}s steady window \
         = {per:.6} per packet",
        if tx { "tx in place" } else { "drop" }
    );
    common::print_result("alloccount", pkts, secs, cpu0);
    println!("RESULT name=alloccount_allocs allocs={allocs} pkts={pkts} allocs_per_pkt={per:.6}");
    Ok(())
}
