//! async_rxdrop: receive with the tokio `AsyncRx` and drop every frame. The async
//! twin of `rxdrop` (one current-thread runtime, like one engine worker).
//!
//! ```sh
//! sudo target/release/examples/async_rxdrop --iface fx0 [--queue 0]
//!      [--mode auto|native|generic] [--batch 64] [--frame-size 4096] [--pin CPU]
//!      [--idle napper|readiness|yield|nap] [--duration SECS]
//! ```
//!
//! `--idle` picks [`AsyncIdle`]; without it the program takes the library's
//! default (`napper`: 1 ms window after traffic, 100 µs naps on the napper
//! thread, then readiness), as a tokio user who sets nothing does.

#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Args;
use fluxcapacitor::system::tokio::AsyncIdle;
use fluxcapacitor::FluxBuilder;

const USAGE: &str = "async_rxdrop --iface IF [--queue Q] [--mode auto|native|generic] \
[--batch N] [--frame-size 2048|4096] [--pin CPU] [--idle napper|readiness|yield|nap] [--duration SECS]";

fn main() {
    let args = Args::parse(USAGE);
    if let Some(cpu) = args.str("pin") {
        // The current-thread runtime polls on this thread: pin it, like an engine worker.
        if let Err(e) = fluxcapacitor::system::pin_current_thread(cpu.parse().unwrap_or(0)) {
            eprintln!("async_rxdrop: --pin: {e}");
            std::process::exit(1);
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("async_rxdrop: runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(&args)) {
        eprintln!("async_rxdrop: {e}");
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let iface = args.req("iface");
    let batch: usize = args.num("batch", 64);
    let flux = FluxBuilder::new(&iface)
        .queue(args.num("queue", 0))
        .xdp_mode(args.xdp_mode())
        .frame_size(args.num("frame-size", 4096))
        .build()?;
    println!("{}", flux.report());
    let (mut rx, _tx) = flux.split_async()?;
    let window = Duration::from_millis(1);
    let nap = Duration::from_micros(100);
    rx.set_idle(match args.str("idle").unwrap_or("napper") {
        "napper" => AsyncIdle::Napper { window, nap },
        "readiness" => AsyncIdle::Readiness,
        "yield" => AsyncIdle::Yield { window },
        "nap" => AsyncIdle::Nap { window, nap },
        other => common::die(
            USAGE,
            &format!("--idle: {other:?} is not napper|readiness|yield|nap"),
        ),
    });

    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let printer = {
        let (count, done) = (count.clone(), done.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut last = 0;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                let now = count.load(Ordering::Relaxed);
                println!(
                    "[{:>5.1}s] async_rxdrop: rx {:>10} pps  total rx {now}",
                    start.elapsed().as_secs_f64(),
                    now - last
                );
                last = now;
            }
        })
    };

    let until = tokio::time::sleep(args.duration().unwrap_or(Duration::from_secs(86_400 * 365)));
    tokio::pin!(until);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let cpu0 = common::cpu_secs();
    let t0 = Instant::now();
    let mut frames = Vec::with_capacity(batch);
    let mut total = 0u64;
    loop {
        tokio::select! {
            biased;
            n = rx.recv_batch(&mut frames, batch) => {
                total += n? as u64;
                frames.clear(); // dropped: back to the pool, and to FILL on the next receive
                count.store(total, Ordering::Relaxed);
            }
            _ = &mut until => break,
            _ = &mut ctrl_c => break,
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = printer.join();
    println!(
        "async_rxdrop: {total} packets in {secs:.1}s ({:.0} pps average)",
        total as f64 / secs
    );
    println!("  kernel: {:?}", rx.get_ref().statistics()?);
    println!("  frames: {}", rx.frame_counts());
    common::print_result("async_rxdrop", total, secs, cpu0);
    Ok(())
}
