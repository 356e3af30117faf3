//! icmp_echo: own an IPv4 address on an interface — answer ARP for it and ICMP echo
//! requests to it — with the engine and the proto views. The XDP program's steering
//! filter sends only traffic for that address (and ARP for it) to the socket;
//! everything else goes to the kernel as usual. Prints requests answered per second.
//!
//! ```sh
//! sudo target/release/examples/icmp_echo --iface fx0 --ip 198.19.0.1 [--mode generic] [--duration S]
//! ip netns exec fxns ping 198.19.0.1   # after: ip -n fxns route add 198.19.0.1/32 dev fx0p
//! ```

mod common;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Args;
use fluxcapacitor::engine::Engine;
use fluxcapacitor::proto::{answer_in_place, Answer, Identity};
use fluxcapacitor::{FluxBuilder, SteeringFilter};

const USAGE: &str =
    "icmp_echo --iface IF --ip A [--mac MAC] [--mode auto|native|generic] [--duration SECS]";

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("icmp_echo: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), fluxcapacitor::Error> {
    let iface = args.req("iface");
    let ip = args.ip("ip", Ipv4Addr::UNSPECIFIED);
    if ip.is_unspecified() {
        common::die(USAGE, "--ip is required");
    }
    let mac = match args.str("mac") {
        Some(_) => args.mac("mac"),
        None => std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
            .ok()
            .and_then(|s| common::parse_mac(s.trim()))
            .unwrap_or_else(|| common::die(USAGE, "cannot read the interface's MAC; give --mac")),
    };
    let me = Identity { mac, ipv4: ip };
    let mode = args.xdp_mode();
    let engine = Engine::builder(&iface)
        .configure(move |b: FluxBuilder| {
            b.xdp_mode(mode)
                .frame_size(2048)
                .ring_size(1024)
                .filter(SteeringFilter {
                    dst_ipv4: Some(ip),
                    ..Default::default()
                })
        })
        .build()?;
    for r in engine.reports() {
        println!("{r}");
    }
    println!("answering ARP and ping for {ip} at {}", common_mac(&mac));
    let stop = engine.stop_handle();
    common::arm_stop(&stop, args)?;
    let (echo, arp) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let done = Arc::new(AtomicBool::new(false));
    let printer = {
        let (echo, arp, done) = (echo.clone(), arp.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last = 0;
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                let now = echo.load(Ordering::Relaxed);
                println!(
                    "[{:>5.1}s] echo replies {}/s (total {now}), ARP replies {}",
                    start.elapsed().as_secs_f64(),
                    now - last,
                    arp.load(Ordering::Relaxed)
                );
                last = now;
            }
        })
    };
    engine.run(|batch| {
        for mut pkt in batch.iter_mut() {
            match answer_in_place(pkt.data_mut(), &me) {
                Answer::EchoReply => {
                    echo.fetch_add(1, Ordering::Relaxed);
                    pkt.transmit();
                }
                Answer::ArpReply => {
                    arp.fetch_add(1, Ordering::Relaxed);
                    pkt.transmit();
                }
                Answer::Ignore => {}
            }
        }
    })?;
    done.store(true, Ordering::Relaxed);
    let _ = printer.join();
    println!(
        "icmp_echo: answered {} echo requests and {} ARP requests",
        echo.load(Ordering::Relaxed),
        arp.load(Ordering::Relaxed)
    );
    Ok(())
}

fn common_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
