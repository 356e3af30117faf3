//! system_rxdrop: receive with the blocking system-mode `Rx` and drop every frame
//! (it returns to the pool and, on the next receive, to FILL). The system-mode twin
//! of `rxdrop`.
//!
//! ```sh
//! sudo target/release/examples/system_rxdrop --iface fx0 [--queue 0]
//!      [--mode auto|native|generic] [--batch 64] [--frame-size 4096] [--pin CPU] [--duration SECS]
//! ```

#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Args;
use fluxcapacitor::FluxBuilder;

const USAGE: &str = "system_rxdrop --iface IF [--queue Q] [--mode auto|native|generic] \
[--batch N] [--frame-size 2048|4096] [--pin CPU] [--duration SECS]";

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("system_rxdrop: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let iface = args.req("iface");
    let batch: usize = args.num("batch", 64);
    let flux = FluxBuilder::new(&iface)
        .queue(args.num("queue", 0))
        .xdp_mode(args.xdp_mode())
        .frame_size(args.num("frame-size", 4096))
        .build()?;
    println!("{}", flux.report());
    let stop = Arc::new(AtomicBool::new(false));
    common::stop_flag_on_signals(stop.clone())?;
    let deadline = args.duration().map(|d| Instant::now() + d);

    let (mut rx, _tx) = flux.split();
    if let Some(cpu) = args.str("pin") {
        // The receiving thread (this one) on that CPU, like the engine's worker.
        fluxcapacitor::system::pin_current_thread(cpu.parse().unwrap_or(0))?;
    }
    let count = Arc::new(AtomicU64::new(0));
    let printer = {
        let (count, stop) = (count.clone(), stop.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                let now = count.load(Ordering::Relaxed);
                println!(
                    "[{:>5.1}s] system_rxdrop: rx {:>10} pps  total rx {now}",
                    start.elapsed().as_secs_f64(),
                    now - last
                );
                last = now;
            }
        })
    };

    let cpu0 = common::cpu_secs();
    let t0 = Instant::now();
    let mut frames = Vec::with_capacity(batch);
    let mut total = 0u64;
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        total += rx.recv_batch_timeout(&mut frames, batch, Duration::from_millis(100))? as u64;
        frames.clear(); // dropped: back to the pool, and to FILL on the next receive
        count.store(total, Ordering::Relaxed);
    }
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = printer.join();
    println!(
        "system_rxdrop: {total} packets in {secs:.1}s ({:.0} pps average)",
        total as f64 / secs
    );
    println!("  kernel: {:?}", rx.statistics()?);
    println!("  frames: {}", rx.frame_counts());
    common::print_result("system_rxdrop", total, secs, cpu0);
    Ok(())
}
