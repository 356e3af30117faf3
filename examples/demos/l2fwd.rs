//! l2fwd: swap the Ethernet addresses of every received frame and send it back out
//! of the same port, in place (zero-copy), printing rates once per second.
//!
//! ```sh
//! sudo target/release/examples/l2fwd --iface fx0 [--queue 0 | --all-queues]
//!      [--mode auto|native|generic] [--batch 64] [--tx-budget N] [--spin]
//!      [--pin CPU] [--duration SECS]
//! ```

#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::Args;
use fluxcapacitor::engine::{Engine, Idle, Queues};
use fluxcapacitor::FluxBuilder;

const USAGE: &str = "l2fwd --iface IF [--queue Q | --all-queues] [--mode auto|native|generic] \
[--batch N] [--tx-budget N] [--spin] [--pin CPU] [--duration SECS]";

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("l2fwd: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), fluxcapacitor::Error> {
    let iface = args.req("iface");
    let mode = args.xdp_mode();
    let budget: Option<u32> = args.str("tx-budget").map(|_| args.num("tx-budget", 32));
    let queues = if args.flag("all-queues") {
        Queues::All
    } else {
        Queues::List(vec![args.num("queue", 0)])
    };
    let mut b = Engine::builder(&iface)
        .queues(queues)
        .batch_size(args.num("batch", 64))
        .configure(move |f: FluxBuilder| {
            let f = f.xdp_mode(mode).frame_size(2048);
            match budget {
                Some(n) => f.tx_budget(n),
                None => f,
            }
        });
    if args.flag("spin") {
        b = b.idle(Idle::Spin);
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
    let printer = common::spawn_rate_printer(engine.stats(), "l2fwd", done.clone());
    let stats = engine.stats();
    let cpu0 = common::cpu_secs();
    let t0 = std::time::Instant::now();
    let report = engine.run(|batch| {
        for mut pkt in batch.iter_mut() {
            let data = pkt.data_mut();
            if data.len() >= 14 {
                let (dst, src) = data[..12].split_at_mut(6);
                dst.swap_with_slice(src);
                pkt.transmit();
            }
        }
    })?;
    done.store(true, Ordering::Relaxed);
    let _ = printer.join();
    let total = stats.total();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "l2fwd: received {} sent {} in {:.1}s; TX-full drops {}, device drops {}",
        total.rx_packets, total.tx_packets, secs, total.tx_ring_full, total.device_drops
    );
    for q in &report.queues {
        println!("  {q}");
    }
    for (i, f) in report.frames.iter().enumerate() {
        println!("  worker {i} frames: {f}");
    }
    common::print_result("l2fwd", total.tx_packets, secs, cpu0);
    Ok(())
}
