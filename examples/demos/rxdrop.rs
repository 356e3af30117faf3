//! rxdrop: receive on an interface with the engine and drop everything, printing
//! the rate once per second.
//!
//! ```sh
//! sudo target/release/examples/rxdrop --iface fx0 [--queue 0 | --all-queues]
//!      [--mode auto|native|generic] [--batch 64] [--spin] [--busy-poll]
//!      [--pin CPU] [--no-watch] [--rx-metadata] [--duration SECS]
//! ```
//!
//! `--rx-metadata` loads the program's RX-metadata variant (native mode, Linux ≥ 6.3)
//! and reads the RSS hash of every packet, to measure what metadata costs.

#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use common::Args;
use fluxcapacitor::engine::{BusyPoll, Engine, Idle, Queues};
use fluxcapacitor::FluxBuilder;

const USAGE: &str = "rxdrop --iface IF [--queue Q | --all-queues] [--mode auto|native|generic] \
[--batch N] [--spin] [--busy-poll] [--pin CPU] [--frame-size 2048|4096] [--frames N] [--no-watch] \
[--rx-metadata] [--duration SECS]";

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("rxdrop: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), fluxcapacitor::Error> {
    let iface = args.req("iface");
    let mode = args.xdp_mode();
    let frame_size: u32 = args.num("frame-size", 4096);
    let frames: u32 = args.num("frames", 4096);
    let no_watch = args.flag("no-watch");
    let rx_meta = args.flag("rx-metadata");
    let queues = if args.flag("all-queues") {
        Queues::All
    } else {
        Queues::List(vec![args.num("queue", 0)])
    };
    let mut b = Engine::builder(&iface)
        .queues(queues)
        .batch_size(args.num("batch", 64))
        .configure(move |f: FluxBuilder| {
            // --no-watch: without the device watch (to measure what it costs).
            f.xdp_mode(mode)
                .frame_size(frame_size)
                .frame_count(frames)
                .watch_device(!no_watch)
                .rx_metadata(rx_meta)
        });
    if args.flag("spin") {
        b = b.idle(Idle::Spin);
    }
    if args.flag("busy-poll") {
        b = b.busy_poll(Some(BusyPoll::default()));
    }
    if let Some(cpu) = args.str("pin") {
        b = b.pin_cpus(vec![cpu.parse().unwrap_or(0)]);
    }
    let engine = b.build()?;
    for r in engine.reports() {
        println!("{r}");
    }
    let stop = engine.stop_handle();
    common::arm_stop(&stop, args)?;
    let done = Arc::new(AtomicBool::new(false));
    let printer = common::spawn_rate_printer(engine.stats(), "rxdrop", done.clone());
    let stats = engine.stats();
    let cpu0 = common::cpu_secs();
    let t0 = std::time::Instant::now();
    // --rx-metadata: the hashes are folded together so the reads are not optimised
    // away (one atomic update per batch); packets without one are counted.
    let hash_acc = AtomicU32::new(0);
    let no_hash = AtomicU64::new(0);
    let report = engine.run(|batch| {
        // Every verdict defaults to Drop: the frames go straight back to FILL.
        if rx_meta {
            let (mut acc, mut missing) = (0u32, 0u64);
            for p in batch.iter_mut() {
                match p.rx_hash() {
                    Some((h, _)) => acc ^= h,
                    None => missing += 1,
                }
            }
            hash_acc.fetch_xor(acc, Ordering::Relaxed);
            no_hash.fetch_add(missing, Ordering::Relaxed);
        }
    })?;
    done.store(true, Ordering::Relaxed);
    let _ = printer.join();
    let total = stats.total();
    println!(
        "rxdrop: {} packets in {:.1}s ({:.0} pps average)",
        total.rx_packets,
        t0.elapsed().as_secs_f64(),
        total.rx_packets as f64 / t0.elapsed().as_secs_f64()
    );
    if rx_meta {
        println!(
            "rxdrop: rx metadata: {} packets without a hash (xor of hashes {:#x})",
            no_hash.load(Ordering::Relaxed),
            hash_acc.load(Ordering::Relaxed)
        );
    }
    for q in &report.queues {
        println!("  {q}");
    }
    for (i, f) in report.frames.iter().enumerate() {
        println!("  worker {i} frames: {f}");
    }
    common::print_result("rxdrop", total.rx_packets, t0.elapsed().as_secs_f64(), cpu0);
    Ok(())
}
