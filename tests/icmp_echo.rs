#![cfg(all(feature = "engine", feature = "proto"))]
//! The icmp_echo responder (engine + proto + steering filter) answers a real `ping`
//! from the peer namespace, with no static neighbour entry for its address: ARP is
//! answered by the responder too. Traffic not for its address still reaches the
//! kernel (the host end keeps answering its own ping).

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use fluxcapacitor::engine::Engine;
use fluxcapacitor::proto::{answer_in_place, Answer, Identity};
use fluxcapacitor::{FluxBuilder, SteeringFilter, XdpMode};

fn ping(ns: &str, ip: Ipv4Addr, count: u32) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "ping",
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            "0.01",
            // Only matters when no reply comes at all: long enough for a starved VM.
            "-W",
            "10",
        ])
        .arg(ip.to_string())
        .output()
        .expect("run ping (iputils-ping; scripts/test.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn responder(mode: XdpMode) {
    let pair = VethPair::new(VethOpts::default());
    let h = pair.host_ip.octets();
    // The other half of 198.18.0.0/15 from the pair's own addresses, so the
    // responder's address is never the host's or the peer's.
    let ip = Ipv4Addr::new(198, if h[1] == 18 { 19 } else { 18 }, h[2], h[3]);
    let ok = Command::new("ip")
        .args([
            "-n",
            &pair.ns,
            "route",
            "add",
            &format!("{ip}/32"),
            "dev",
            &pair.peer,
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let me = Identity {
        mac: pair.host_mac,
        ipv4: ip,
    };
    let engine = Engine::builder(&pair.host)
        .configure(move |b: FluxBuilder| {
            b.xdp_mode(mode)
                .frame_size(2048)
                .ring_size(512)
                .filter(SteeringFilter {
                    dst_ipv4: Some(ip),
                    ..Default::default()
                })
        })
        .build()
        .expect("engine");
    let stop = engine.stop_handle();
    let (echo, arp, other) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let (ns, stop2) = (pair.ns.clone(), stop.clone());
    let host_ip = pair.host_ip;
    let pinger = std::thread::spawn(move || {
        let ours = ping(&ns, ip, 100);
        let kernel = ping(&ns, host_ip, 5);
        stop2.stop();
        (ours, kernel)
    });
    engine
        .run(|batch| {
            for mut p in batch.iter_mut() {
                match answer_in_place(p.data_mut(), &me) {
                    Answer::EchoReply => {
                        echo.fetch_add(1, Ordering::Relaxed);

                        p.transmit();
                    }
                    Answer::ArpReply => {
                        arp.fetch_add(1, Ordering::Relaxed);
                        p.transmit();
                    }
                    Answer::Ignore => {
                        other.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .expect("run");
    let (ours, kernel) = pinger.join().unwrap();
    assert!(
        ours.contains("100 received") && ours.contains(" 0% packet loss"),
        "ping output:\n{ours}"
    );
    assert_eq!(echo.load(Ordering::Relaxed), 100, "ping said:\n{ours}");
    assert!(
        arp.load(Ordering::Relaxed) >= 1,
        "the peer had to resolve the address by ARP"
    );
    assert_eq!(
        other.load(Ordering::Relaxed),
        0,
        "the filter let foreign traffic through"
    );
    assert!(
        kernel.contains("5 received"),
        "the kernel stopped answering its own ping:\n{kernel}"
    );
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn ping_gets_every_reply_native() {
    if skip_without_root() {
        return;
    }
    responder(XdpMode::Native);
}

#[test]
fn ping_gets_every_reply_generic() {
    if skip_without_root() {
        return;
    }
    responder(XdpMode::Generic);
}
