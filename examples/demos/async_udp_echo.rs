//! async_udp_echo: a UDP echo service on addresses of its own, on tokio. Every UDP
//! datagram to `--ip` (IPv4) or `--ip6` (IPv6) — and `--port`, if given — goes back
//! to its sender, zero-copy (MACs, IPs and ports swapped in place; a checksum the
//! sender left to an offload is completed). The embedded program steers only those
//! addresses to the socket and answers ARP and IPv6 neighbour solicitations for
//! them, so a stock client needs no neighbour entry.
//!
//! ```sh
//! sudo target/release/examples/async_udp_echo --iface fx0 --ip 198.18.0.1 [--ip6 2001:2::1]
//!      [--port 7] [--queue 0] [--mode auto|native|generic] [--duration SECS]
//! ```

#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Args;
use fluxcapacitor::proto::edit::udp_reply_in_place;
use fluxcapacitor::{FluxBuilder, SteeringFilter};

const USAGE: &str = "async_udp_echo --iface IF (--ip A | --ip6 A6 | both) [--port P] [--queue Q] \
[--mode auto|native|generic] [--duration SECS]";

#[tokio::main]
async fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args).await {
        eprintln!("async_udp_echo: {e}");
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
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
        "async_udp_echo: echoing UDP to {}{}",
        common::describe_addrs(ip, ip6),
        port.map(|p| format!(" port {p}")).unwrap_or_default()
    );
    let (mut rx, mut tx) = flux.split_async()?;

    let (rx_count, echoed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let done = Arc::new(AtomicBool::new(false));
    let printer = {
        let (r, e, done) = (rx_count.clone(), echoed.clone(), done.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let (mut lr, mut le) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                let (nr, ne) = (r.load(Ordering::Relaxed), e.load(Ordering::Relaxed));
                println!(
                    "[{:>5.1}s] async_udp_echo: rx {:>9} pps  echo {:>9} pps  total rx {nr} echoed {ne}",
                    start.elapsed().as_secs_f64(),
                    nr - lr,
                    ne - le
                );
                (lr, le) = (nr, ne);
            }
        })
    };

    let until = tokio::time::sleep(args.duration().unwrap_or(Duration::from_secs(86_400 * 365)));
    tokio::pin!(until);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let cpu0 = common::cpu_secs();
    let t0 = Instant::now();
    let mut frames = Vec::with_capacity(64);
    let (mut received, mut answered) = (0u64, 0u64);
    loop {
        tokio::select! {
            biased;
            n = rx.recv_batch(&mut frames, 64) => received += n? as u64,
            _ = &mut until => break,
            _ = &mut ctrl_c => break,
        }
        for mut frame in frames.drain(..) {
            if !common::udp_to(&frame, ip, ip6, port) || udp_reply_in_place(&mut frame).is_err() {
                continue; // dropped: back to the pool
            }
            match tx.send(frame).await {
                Ok(()) => answered += 1,
                Err(e) => eprintln!("async_udp_echo: reply not sent: {e}"),
            }
        }
        tx.flush().await?;
        rx_count.store(received, Ordering::Relaxed);
        echoed.store(answered, Ordering::Relaxed);
    }
    let secs = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = printer.join();
    println!("async_udp_echo: received {received}, answered {answered} in {secs:.1}s");
    println!("  frames: {}", rx.frame_counts());
    common::print_result("async_udp_echo", answered, secs, cpu0);
    Ok(())
}
