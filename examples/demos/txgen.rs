//! txgen: a traffic generator on the engine — fixed-size UDP frames, optional rate
//! and count limits, rate printed once per second.
//!
//! ```sh
//! sudo target/release/examples/txgen --iface fx0p --dst-mac 02:..:.. \
//!      [--src-mac MAC] [--src-ip A] [--dst-ip B] [--size 64] [--count N]
//!      [--rate PPS] [--duration SECS] [--mode auto|native|generic]
//! ```

#[path = "../common/mod.rs"]
mod common;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::Args;
use fluxcapacitor::engine::Engine;
use fluxcapacitor::{FluxBuilder, RingSizes};

const USAGE: &str = "txgen --iface IF --dst-mac MAC [--src-mac MAC] [--src-ip A] [--dst-ip B] \
[--src-port P] [--dst-port P] [--size BYTES] [--count N] [--rate PPS] [--duration SECS] \
[--mode auto|native|generic] [--tx-budget N]";

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("txgen: {e}");
        std::process::exit(1);
    }
}

fn iface_mac(iface: &str) -> [u8; 6] {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .ok()
        .and_then(|s| common::parse_mac(s.trim()))
        .unwrap_or([0x02, 0, 0, 0, 0, 1])
}

fn run(args: &Args) -> Result<(), fluxcapacitor::Error> {
    let iface = args.req("iface");
    let dst_mac = args.mac("dst-mac");
    let src_mac = match args.str("src-mac") {
        Some(_) => args.mac("src-mac"),
        None => iface_mac(&iface),
    };
    let size: usize = args.num("size", 64);
    let src = (
        args.ip("src-ip", Ipv4Addr::new(198, 18, 0, 2)),
        args.num("src-port", 9000u16),
    );
    let dst = (
        args.ip("dst-ip", Ipv4Addr::new(198, 18, 0, 1)),
        args.num("dst-port", 9001u16),
    );
    let count: u64 = args.num("count", u64::MAX);
    let rate: f64 = args.num("rate", 0.0);
    let mode = args.xdp_mode();
    let budget: Option<u32> = args.str("tx-budget").map(|_| args.num("tx-budget", 32));
    let template = common::udp_frame(src_mac, dst_mac, src, dst, size);

    let engine = Engine::builder(&iface)
        .always_call(true)
        .configure(move |f: FluxBuilder| {
            // Transmit only: the socket needs no XDP program and no RX ring.
            let f = f
                .xdp_mode(mode)
                .load_xdp(false)
                .frame_size(2048)
                .ring_sizes(RingSizes {
                    fill: 2048,
                    completion: 2048,
                    rx: 0,
                    tx: 2048,
                });
            match budget {
                Some(b) => f.tx_budget(b),
                None => f,
            }
        })
        .build()?;
    for r in engine.reports() {
        println!("{r}");
    }
    let stop = engine.stop_handle();
    common::arm_stop(&stop, args)?;
    let done = Arc::new(AtomicBool::new(false));
    let printer = common::spawn_rate_printer(engine.stats(), "txgen", done.clone());
    let stats = engine.stats();
    let sent = AtomicU64::new(0);
    let cpu0 = common::cpu_secs();
    let start = Instant::now();
    let stop2 = stop.clone();
    let report = engine.run(|batch| {
        let mut n = sent.load(Ordering::Relaxed);
        let mut allowed = count.saturating_sub(n);
        if rate > 0.0 {
            let due = (start.elapsed().as_secs_f64() * rate) as u64;
            allowed = allowed.min(due.saturating_sub(n));
        }
        while allowed > 0 {
            let Some(mut f) = batch.alloc_tx() else { break };
            let buf = f.buffer_mut();
            buf[..template.len()].copy_from_slice(&template);
            // A sequence number at the start of the payload.
            buf[42..50.min(template.len())]
                .copy_from_slice(&n.to_be_bytes()[..8.min(template.len() - 42)]);
            if f.send(template.len()).is_err() {
                break;
            }
            n += 1;
            allowed -= 1;
        }
        sent.store(n, Ordering::Relaxed);
        if n >= count {
            stop2.stop();
        }
    })?;
    done.store(true, Ordering::Relaxed);
    let _ = printer.join();
    let t = start.elapsed().as_secs_f64();
    let total = stats.total();
    println!(
        "txgen: sent {} frames of {} bytes in {:.1}s ({:.0} pps); device drops {}",
        total.tx_packets,
        template.len(),
        t,
        total.tx_packets as f64 / t,
        total.device_drops
    );
    for (i, f) in report.frames.iter().enumerate() {
        println!("  worker {i} frames: {f}");
    }
    common::print_result("txgen", total.tx_packets, t, cpu0);
    Ok(())
}
