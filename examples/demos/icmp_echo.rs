//! icmp_echo: own an IPv4 and/or IPv6 address on an interface and answer `ping` and
//! `ping -6` to it, with the engine and the proto views. The XDP program's steering
//! filter sends only traffic for those addresses to the socket, and the embedded program
//! answers ARP and IPv6 neighbour solicitations for them itself (with the
//! interface's MAC, or `--mac`); everything else goes to the kernel as usual.
//! Prints echo requests answered per second.
//!
//! ```sh
//! sudo target/release/examples/icmp_echo --iface fx0 --ip 198.19.0.1 [--ip6 2001:2:0:ff::1]
//!      [--mac MAC] [--mode generic] [--duration S]
//! ip netns exec fxns ping 198.19.0.1        # after: ip -n fxns route add 198.19.0.1/32 dev fx0p
//! ip netns exec fxns ping -6 2001:2:0:ff::1 # after: ip -n fxns route add 2001:2:0:ff::1/128 dev fx0p
//! ```

#[path = "../common/mod.rs"]
mod common;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Args;
use fluxcapacitor::engine::Engine;
use fluxcapacitor::proto::{edit, icmpv4, icmpv6, Layers, Net, Transport};
use fluxcapacitor::{FluxBuilder, SteeringFilter};

const USAGE: &str = "icmp_echo --iface IF (--ip A | --ip6 A6 | both) [--mac MAC] \
[--mode auto|native|generic] [--duration SECS]";

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("icmp_echo: {e}");
        std::process::exit(1);
    }
}

/// An ICMPv4 echo request to `v4`, or an ICMPv6 echo request to `v6`?
fn echo_request_to(frame: &[u8], v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> bool {
    let Ok(l) = Layers::parse(frame) else {
        return false;
    };
    match (l.net, l.transport) {
        (Net::Ipv4(ip), Transport::Icmpv4(i)) => {
            Some(ip.dst_addr()) == v4 && i.msg_type() == icmpv4::TYPE_ECHO_REQUEST && i.code() == 0
        }
        (Net::Ipv6(ip), Transport::Icmpv6(i)) => {
            Some(ip.dst_addr()) == v6 && i.msg_type() == icmpv6::TYPE_ECHO_REQUEST && i.code() == 0
        }
        _ => false,
    }
}

fn run(args: &Args) -> Result<(), fluxcapacitor::Error> {
    let iface = args.req("iface");
    let (ip, ip6) = args.service_addrs();
    let mac = args.str("mac").map(|_| args.mac("mac"));
    let mode = args.xdp_mode();
    let mut filter = SteeringFilter::serving(ip, ip6);
    filter.neighbours.mac = mac;
    let engine = Engine::builder(&iface)
        .configure(move |b: FluxBuilder| {
            b.xdp_mode(mode)
                .frame_size(2048)
                .ring_size(1024)
                .filter(filter.clone())
        })
        .build()?;
    for r in engine.reports() {
        println!("{r}");
    }
    println!(
        "answering ping for {} (ARP and neighbour discovery answered by the embedded program)",
        common::describe_addrs(ip, ip6)
    );
    let stop = engine.stop_handle();
    common::arm_stop(&stop, args)?;
    let echo = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let printer = {
        let (echo, done) = (echo.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last = 0;
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                let now = echo.load(Ordering::Relaxed);
                println!(
                    "[{:>5.1}s] echo replies {}/s (total {now})",
                    start.elapsed().as_secs_f64(),
                    now - last,
                );
                last = now;
            }
        })
    };
    let counter = echo.clone();
    engine.run(move |batch| {
        for mut pkt in batch.iter_mut() {
            if echo_request_to(pkt.data(), ip, ip6)
                && edit::icmp_echo_reply_in_place(pkt.data_mut()).is_ok()
            {
                counter.fetch_add(1, Ordering::Relaxed);
                pkt.transmit();
            }
        }
    })?;
    done.store(true, Ordering::Relaxed);
    let _ = printer.join();
    println!(
        "icmp_echo: answered {} echo requests",
        echo.load(Ordering::Relaxed)
    );
    Ok(())
}
