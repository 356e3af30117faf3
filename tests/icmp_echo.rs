#![cfg(all(feature = "engine", feature = "proto"))]
//! The icmp_echo responder (engine + proto + steering filter) answers a real `ping`
//! from the peer namespace, with no static neighbour entry for its address: ARP is
//! answered by the user-space responder too (`proto::answer_in_place`), or — as the
//! example does — by the embedded program's neighbour responder, for `ping` and
//! `ping -6` alike. Traffic not for its address still reaches the kernel (the host end
//! keeps answering its own ping).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use fluxcapacitor::engine::Engine;
use fluxcapacitor::proto::{
    answer_in_place, edit, icmpv4, icmpv6, Answer, Identity, Layers, Net, Transport,
};
use fluxcapacitor::{FluxBuilder, SteeringFilter, XdpMode};

fn ping(ns: &str, ip: impl Into<IpAddr>, count: u32) -> String {
    let ip = ip.into();
    let family = if ip.is_ipv6() { "-6" } else { "-4" };
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "ping",
            family,
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

/// The responder's IPv4 address: the other half of 198.18.0.0/15 from the pair's
/// own addresses, so it is never the host's or the peer's, with a route to it in the
/// peer namespace (it is in no subnet of the peer's).
fn responder_ipv4(pair: &VethPair) -> Ipv4Addr {
    let h = pair.host_ip.octets();
    let ip = Ipv4Addr::new(198, if h[1] == 18 { 19 } else { 18 }, h[2], h[3]);
    let route = format!("{ip}/32");
    let ok = Command::new("ip")
        .args(["-n", &pair.ns, "route", "add", &route, "dev", &pair.peer])
        .status()
        .unwrap();
    assert!(ok.success());
    ip
}

fn responder(mode: XdpMode) {
    let pair = VethPair::new(VethOpts::default());
    let ip = responder_ipv4(&pair);
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

/// An ICMPv4 echo request to `v4` or an ICMPv6 echo request to `v6`?
fn echo_request_to(frame: &[u8], v4: Ipv4Addr, v6: Ipv6Addr) -> bool {
    let Ok(l) = Layers::parse(frame) else {
        return false;
    };
    match (l.net, l.transport) {
        (Net::Ipv4(ip), Transport::Icmpv4(i)) => {
            ip.dst_addr() == v4 && i.msg_type() == icmpv4::TYPE_ECHO_REQUEST
        }
        (Net::Ipv6(ip), Transport::Icmpv6(i)) => {
            ip.dst_addr() == v6 && i.msg_type() == icmpv6::TYPE_ECHO_REQUEST
        }
        _ => false,
    }
}

/// `ping` and `ping -6` to addresses the socket serves, neighbour discovery
/// answered by the program (`SteeringFilter::serving`), as the example runs.
fn dual_stack(mode: XdpMode) {
    let pair = VethPair::new(VethOpts {
        ipv6: true,
        ..Default::default()
    });
    let ip = responder_ipv4(&pair);
    // On the pair's /64, so on-link for the peer: no route needed.
    let s = pair.host_ip6.segments();
    let ip6 = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0xa);
    let engine = Engine::builder(&pair.host)
        .configure(move |b: FluxBuilder| {
            b.xdp_mode(mode)
                .frame_size(2048)
                .ring_size(512)
                .filter(SteeringFilter::serving(Some(ip), Some(ip6)))
        })
        .build()
        .expect("engine");
    let stop = engine.stop_handle();
    let (echo, other) = (AtomicU64::new(0), AtomicU64::new(0));
    let (ns, stop2) = (pair.ns.clone(), stop.clone());
    let (host_ip, host_ip6) = (pair.host_ip, pair.host_ip6);
    let pinger = std::thread::spawn(move || {
        let out = [
            ping(&ns, ip, 100),
            ping(&ns, ip6, 100),
            ping(&ns, host_ip, 5),
            ping(&ns, host_ip6, 5),
        ];
        stop2.stop();
        out
    });
    engine
        .run(|batch| {
            for mut p in batch.iter_mut() {
                if echo_request_to(p.data(), ip, ip6)
                    && edit::icmp_echo_reply_in_place(p.data_mut()).is_ok()
                {
                    echo.fetch_add(1, Ordering::Relaxed);
                    p.transmit();
                } else {
                    other.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .expect("run");
    let [v4, v6, kernel4, kernel6] = pinger.join().unwrap();
    for (what, out) in [("ping", &v4), ("ping -6", &v6)] {
        assert!(
            out.contains("100 received") && out.contains(" 0% packet loss"),
            "{what} output:\n{out}"
        );
    }
    assert_eq!(echo.load(Ordering::Relaxed), 200);
    assert_eq!(
        other.load(Ordering::Relaxed),
        0,
        "neighbour traffic or foreign packets reached the socket"
    );
    for (what, out) in [("ping", &kernel4), ("ping -6", &kernel6)] {
        assert!(
            out.contains("5 received"),
            "the kernel stopped answering its own {what}:\n{out}"
        );
    }
}

#[test]
fn ping_and_ping6_with_the_program_answering_neighbours_native() {
    if skip_without_root() {
        return;
    }
    dual_stack(XdpMode::Native);
}

#[test]
fn ping_and_ping6_with_the_program_answering_neighbours_generic() {
    if skip_without_root() {
        return;
    }
    dual_stack(XdpMode::Generic);
}
