//! system_echo: a UDP echo service on addresses of its own, with the blocking
//! system-mode handles. Every UDP datagram to `--ip` (IPv4) or `--ip6` (IPv6) — and
//! `--port`, if given — goes back to its sender, zero-copy: MACs, IPs and ports
//! swapped in the received frame, which is then sent as it is (a checksum the
//! sender left to an offload, as veth peers and containers do, is completed).
//! The embedded program steers only those addresses to the socket and answers ARP and
//! IPv6 neighbour solicitations for them itself, so a stock client — Python's
//! socket, `socat`, `nc -u` — needs no neighbour entry; everything else goes to the
//! kernel as usual.
//!
//! ```sh
//! sudo target/release/examples/system_echo --iface fx0 --ip 198.18.0.1 [--ip6 2001:2::1]
//!      [--port 7] [--queue 0] [--mode auto|native|generic] [--duration SECS]
//! ip netns exec fxns nc -u 198.18.0.1 7      # the client needs a route, nothing else
//! ```

#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Args;
use fluxcapacitor::proto::edit::udp_reply_in_place;
use fluxcapacitor::{FluxBuilder, SteeringFilter};

const USAGE: &str = "system_echo --iface IF (--ip A | --ip6 A6 | both) [--port P] [--queue Q] \
[--mode auto|native|generic] [--duration SECS]";

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("system_echo: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let iface = args.req("iface");
    let (ip, ip6) = args.service_addrs();
    let port = args.str("port").map(|_| args.num("port", 0u16));
    // Only the service's addresses come to the socket, and the embedded program answers
    // ARP / neighbour solicitations for them: a stock client needs nothing set up.
    let flux = FluxBuilder::new(&iface)
        .queue(args.num("queue", 0))
        .xdp_mode(args.xdp_mode())
        .frame_size(2048)
        .filter(SteeringFilter::serving(ip, ip6))
        .build()?;
    println!("{}", flux.report());
    println!(
        "system_echo: echoing UDP to {}{}",
        common::describe_addrs(ip, ip6),
        port.map(|p| format!(" port {p}")).unwrap_or_default()
    );
    let stop = Arc::new(AtomicBool::new(false));
    common::stop_flag_on_signals(stop.clone())?;
    let deadline = args.duration().map(|d| Instant::now() + d);
    let (mut rx, mut tx) = flux.split();

    let (rx_count, echoed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let printer = {
        let (r, e, stop) = (rx_count.clone(), echoed.clone(), stop.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let (mut lr, mut le) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                let (nr, ne) = (r.load(Ordering::Relaxed), e.load(Ordering::Relaxed));
                println!(
                    "[{:>5.1}s] system_echo: rx {:>9} pps  echo {:>9} pps  total rx {nr} echoed {ne}",
                    start.elapsed().as_secs_f64(),
                    nr - lr,
                    ne - le
                );
                (lr, le) = (nr, ne);
            }
        })
    };

    let cpu0 = common::cpu_secs();
    let t0 = Instant::now();
    let mut frames = Vec::with_capacity(64);
    let (mut received, mut answered, mut unsent) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        received += rx.recv_batch_timeout(&mut frames, 64, Duration::from_millis(100))? as u64;
        for mut frame in frames.drain(..) {
            if !common::udp_to(&frame, ip, ip6, port) || udp_reply_in_place(&mut frame).is_err() {
                continue; // dropped: back to the pool
            }
            // Wait a little for room rather than drop an answer.
            match tx.send_timeout(frame, Duration::from_millis(100)) {
                Ok(()) => answered += 1,
                Err(e) => {
                    eprintln!("system_echo: reply not sent: {e}");
                    unsent += 1;
                }
            }
        }
        tx.flush()?;
        rx_count.store(received, Ordering::Relaxed);
        echoed.store(answered, Ordering::Relaxed);
    }
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = printer.join();
    tx.drain(Duration::from_secs(1))?;
    println!(
        "system_echo: received {received}, answered {answered}, not sent {unsent} in {secs:.1}s"
    );
    println!("  frames: {}", rx.frame_counts());
    common::print_result("system_echo", answered, secs, cpu0);
    Ok(())
}
