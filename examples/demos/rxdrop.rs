//! rxdrop: receive on an interface with the engine and drop everything, printing
//! the rate once per second.
//!
//! ```sh
//! sudo target/release/examples/rxdrop --iface fx0 [--queue 0 | --all-queues]
//!      [--mode auto|native|generic] [--batch 64] [--spin] [--busy-poll]
//!      [--pin CPU] [--no-watch] [--duration SECS]
//! ```

#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::Args;
use fluxcapacitor::engine::{BusyPoll, Engine, Idle, Queues};
use fluxcapacitor::FluxBuilder;

const USAGE: &str = "rxdrop --iface IF [--queue Q | --all-queues] [--mode auto|native|generic] \
[--batch N] [--spin] [--busy-poll] [--pin CPU] [--frame-size 2048|4096] [--frames N] [--no-watch] \
[--duration SECS]";

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
    let report = engine.run(|_batch| {
        // Every verdict defaults to Drop: the frames go straight back to FILL.
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
    for q in &report.queues {
        println!("  {q}");
    }
    for (i, f) in report.frames.iter().enumerate() {
        println!("  worker {i} frames: {f}");
    }
    common::print_result("rxdrop", total.rx_packets, t0.elapsed().as_secs_f64(), cpu0);
    Ok(())
}
