//! udp_echo: a UDP echo service on addresses of its own, with the engine (the
//! batch-callback loop). Every UDP datagram to `--ip` (IPv4) or `--ip6` (IPv6) —
//! and `--port`, if given — is turned into its reply in the received frame (MACs,
//! IPs and ports swapped; a checksum the sender left to an offload is completed)
//! and sent back out of the same queue, zero-copy. The embedded program steers only those
//! addresses to the socket and answers ARP and IPv6 neighbour solicitations for
//! them, so a stock client (Python's socket, `socat`, `nc -u`) needs no neighbour
//! entry; the host's own traffic goes to the kernel as usual.
//!
//! ```sh
//! sudo target/release/examples/udp_echo --iface fx0 --ip 198.18.0.1 [--ip6 2001:2::1]
//!      [--port 7] [--mode auto|native|generic] [--all-queues] [--duration SECS]
//! ip netns exec fxns socat - UDP:198.18.0.1:7
//! ```

#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::Args;
use fluxcapacitor::engine::{Engine, Queues};
use fluxcapacitor::proto::edit::udp_reply_in_place;
use fluxcapacitor::{FluxBuilder, SteeringFilter};

const USAGE: &str =
    "udp_echo --iface IF (--ip A | --ip6 A6 | both) [--port P] [--queue Q | --all-queues] \
[--mode auto|native|generic] [--duration SECS]";

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("udp_echo: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), fluxcapacitor::Error> {
    let iface = args.req("iface");
    let (ip, ip6) = args.service_addrs();
    let port = args.str("port").map(|_| args.num("port", 0u16));
    let mode = args.xdp_mode();
    let queues = if args.flag("all-queues") {
        Queues::All
    } else {
        Queues::List(vec![args.num("queue", 0)])
    };
    let engine = Engine::builder(&iface)
        .queues(queues)
        .configure(move |b: FluxBuilder| {
            b.xdp_mode(mode)
                .frame_size(2048)
                .filter(SteeringFilter::serving(ip, ip6))
        })
        .build()?;
    for r in engine.reports() {
        println!("{r}");
    }
    println!(
        "udp_echo: echoing UDP to {}{}",
        common::describe_addrs(ip, ip6),
        port.map(|p| format!(" port {p}")).unwrap_or_default()
    );
    let stop = engine.stop_handle();
    common::arm_stop(&stop, args)?;
    let done = Arc::new(AtomicBool::new(false));
    let printer = common::spawn_rate_printer(engine.stats(), "udp_echo", done.clone());
    let echoed = Arc::new(AtomicU64::new(0));
    let counter = echoed.clone();
    let cpu0 = common::cpu_secs();
    let t0 = Instant::now();
    let report = engine.run(move |batch| {
        let mut n = 0;
        for mut pkt in batch.iter_mut() {
            // Anything else keeps the default verdict (dropped: back to FILL).
            if common::udp_to(pkt.data(), ip, ip6, port)
                && udp_reply_in_place(pkt.data_mut()).is_ok()
            {
                pkt.transmit();
                n += 1;
            }
        }
        counter.fetch_add(n, Ordering::Relaxed);
    })?;
    let secs = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = printer.join();
    let answered = echoed.load(Ordering::Relaxed);
    println!("udp_echo: answered {answered} datagrams in {secs:.1}s");
    for q in &report.queues {
        println!("  {q}");
    }
    common::print_result("udp_echo", answered, secs, cpu0);
    Ok(())
}
