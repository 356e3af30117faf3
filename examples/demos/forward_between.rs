//! forward_between: forward between two interfaces that share one UMEM — every frame received
//! on one is sent out of the other without a copy.
//!
//! ```sh
//! sudo target/release/examples/forward_between --a fx0 --b fx1 [--mode auto|native|generic]
//!      [--a-mac MAC --b-mac MAC] [--duration SECS]
//! ```
//! With `--a-mac`/`--b-mac`, the destination MAC of frames leaving through A (B) is
//! rewritten to that address (the next hop on that side).

#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::Args;
use fluxcapacitor::engine::Engine;
use fluxcapacitor::FluxBuilder;

const USAGE: &str =
    "forward_between --a IF --b IF [--a-mac MAC] [--b-mac MAC] [--mode auto|native|generic] [--duration SECS]";

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("forward_between: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), fluxcapacitor::Error> {
    let (a, b) = (args.req("a"), args.req("b"));
    let next_hop: [Option<[u8; 6]>; 2] = [
        args.str("a-mac").map(|_| args.mac("a-mac")),
        args.str("b-mac").map(|_| args.mac("b-mac")),
    ];
    let mode = args.xdp_mode();
    let engine = Engine::with_ports(vec![FluxBuilder::new(&a), FluxBuilder::new(&b)])
        .configure(move |f: FluxBuilder| f.xdp_mode(mode).frame_size(2048).frame_count(8192))
        .build()?;
    for r in engine.reports() {
        println!("{r}");
    }
    let stop = engine.stop_handle();
    common::arm_stop(&stop, args)?;
    let done = Arc::new(AtomicBool::new(false));
    let printer = common::spawn_rate_printer(engine.stats(), "forward_between", done.clone());
    let stats = engine.stats();
    let cpu0 = common::cpu_secs();
    let t0 = std::time::Instant::now();
    let report = engine.run(|batch| {
        let out = 1 - batch.port();
        let mac = next_hop[out as usize];
        for mut pkt in batch.iter_mut() {
            if let (Some(m), Some(dst)) = (mac, pkt.data_mut().get_mut(..6)) {
                dst.copy_from_slice(&m);
            }
            pkt.forward(out);
        }
    })?;
    done.store(true, Ordering::Relaxed);
    let _ = printer.join();
    let total = stats.total();
    for q in &report.queues {
        println!("  {q}");
    }
    println!("  frames: {}", report.frames[0]);
    common::print_result(
        "forward_between",
        total.tx_packets,
        t0.elapsed().as_secs_f64(),
        cpu0,
    );
    Ok(())
}
