#![cfg(all(feature = "system", feature = "proto"))]
//! Stock clients against a system-mode UDP echo: `socat` and `nc -u` (Debian's
//! socat and netcat-openbsd, run unmodified inside the peer namespace) each send
//! 1,000 datagrams over IPv4 and over IPv6, in native and generic XDP mode, with
//! default offloads, default socket options and no neighbour entry. Every reply is
//! compared byte for byte with what was sent, and the client namespace's
//! `UdpInCsumErrors` (/proc/net/snmp) and `Udp6InCsumErrors` (/proc/net/snmp6) must
//! not move: the echo completes the checksums the veth peer left to an offload, and
//! the XDP program answers ARP and neighbour solicitations for the served addresses.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use fluxcapacitor::proto::{edit, ChecksumState, Layers, Net, Transport};
use fluxcapacitor::system::{Rx, Tx};
use fluxcapacitor::{FluxBuilder, SteeringFilter, XdpMode};

const PORT: u16 = 7007;
const COUNT: usize = 1000;

#[derive(Debug, Default)]
struct EchoStats {
    echoed: u64,
    /// Datagrams whose checksum arrived partial (left to an offload).
    partial: u64,
}

/// A UDP echo on the host end for the pair's IPv4 and IPv6 addresses, as the
/// examples do it: steering to those addresses, the program answering neighbour
/// discovery for them, `udp_reply_in_place` on every datagram to `PORT`.
fn start_echo(pair: &VethPair, mode: XdpMode, stop: Arc<AtomicBool>) -> JoinHandle<EchoStats> {
    let filter = SteeringFilter::serving(Some(pair.host_ip), Some(pair.host_ip6));
    let (rx, tx) = FluxBuilder::new(&pair.host)
        .xdp_mode(mode)
        .frame_size(2048)
        .filter(filter)
        .build()
        .expect("echo socket")
        .split();
    std::thread::spawn(move || serve(rx, tx, &stop))
}

fn serve(mut rx: Rx, mut tx: Tx, stop: &AtomicBool) -> EchoStats {
    let mut stats = EchoStats::default();
    let mut batch = Vec::with_capacity(64);
    while !stop.load(Ordering::Relaxed) {
        rx.recv_batch_timeout(&mut batch, 64, Duration::from_millis(20))
            .expect("receive");
        for mut f in batch.drain(..) {
            let (to_port, partial) = match Layers::parse(&f) {
                Ok(l) => match (l.net, l.transport) {
                    (Net::Ipv4(_) | Net::Ipv6(_), Transport::Udp(u)) => (
                        u.dst_port() == PORT,
                        l.checksum_state() == Some(ChecksumState::Partial),
                    ),
                    _ => (false, false),
                },
                Err(_) => (false, false),
            };
            if to_port && edit::udp_reply_in_place(&mut f).is_ok() {
                stats.partial += u64::from(partial);
                tx.send_timeout(f, Duration::from_secs(2)).expect("send");
                stats.echoed += 1;
            }
        }
        tx.flush().expect("flush");
    }
    tx.drain(Duration::from_secs(1)).expect("drain");
    stats
}

/// `UdpInCsumErrors` (IPv4) or `Udp6InCsumErrors` (IPv6) inside `ns`.
fn csum_errors(ns: &str, v6: bool) -> u64 {
    let file = if v6 {
        "/proc/net/snmp6"
    } else {
        "/proc/net/snmp"
    };
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", file])
        .output()
        .expect("read the namespace's SNMP counters");
    let text = String::from_utf8_lossy(&out.stdout);
    if v6 {
        text.lines()
            .find_map(|l| l.strip_prefix("Udp6InCsumErrors"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Udp6InCsumErrors in {file}:\n{text}"))
    } else {
        // Two "Udp:" lines: the names, then the values.
        let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
        let (names, values) = (udp.next().unwrap_or(""), udp.next().unwrap_or(""));
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "InCsumErrors")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no Udp InCsumErrors in {file}:\n{text}"))
    }
}

#[derive(Clone, Copy, Debug)]
enum Client {
    Socat,
    Nc,
}

/// Starts the client in `ns`, talking to `dst`:`PORT` on stdin/stdout.
fn spawn_client(ns: &str, client: Client, dst: IpAddr) -> Child {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]);
    match (client, dst) {
        (Client::Socat, IpAddr::V4(a)) => cmd.args(["socat", "-", &format!("UDP4:{a}:{PORT}")]),
        (Client::Socat, IpAddr::V6(a)) => cmd.args(["socat", "-", &format!("UDP6:[{a}]:{PORT}")]),
        (Client::Nc, IpAddr::V4(a)) => {
            cmd.args(["nc", "-4", "-u", &a.to_string(), &PORT.to_string()])
        }
        (Client::Nc, IpAddr::V6(a)) => {
            cmd.args(["nc", "-6", "-u", &a.to_string(), &PORT.to_string()])
        }
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("run {client:?} (Debian packages socat, netcat-openbsd; scripts/test.sh installs them): {e}")
        })
}

/// Datagram `i`: a line of a length that varies from 8 to ~1,200 bytes, its
/// number first, the rest a pattern of it.
fn line(i: usize) -> String {
    let len = 8 + (i * 131) % 1200;
    let mut s = format!("{i:06} ");
    s.extend((s.len()..len).map(|k| (b'!' + ((i * 7 + k * 13) % 94) as u8) as char));
    s.push('\n');
    s
}

/// Sends `COUNT` datagrams one at a time, each only after the reply to the last
/// arrived (so a client that sends what one read gives it sends one line per
/// datagram), and checks every reply byte for byte.
fn run_client(pair: &VethPair, client: Client, dst: IpAddr) {
    let mut child = spawn_client(&pair.ns, client, dst);
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let mut l = String::new();
            match r.read_line(&mut l) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if lines_tx.send(l).is_err() {
                        break;
                    }
                }
            }
        }
    });
    for i in 0..COUNT {
        let want = line(i);
        stdin
            .write_all(want.as_bytes())
            .expect("write to the client");
        stdin.flush().expect("flush the client's stdin");
        // A bound for a lost reply, not a speed requirement.
        match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(got) => assert_eq!(got, want, "{client:?} to {dst}: reply {i} differs"),
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("client output");
                panic!(
                    "{client:?} to {dst}: no reply to datagram {i} of {COUNT}; client stderr: {}; peer: {}",
                    String::from_utf8_lossy(&out.stderr),
                    ns_link_stats(&pair.ns, &pair.peer)
                );
            }
        }
    }
    drop(stdin);
    // The client waits for more datagrams after stdin closes (nc -u forever,
    // socat for its 0.5 s timeout): end it, by its pid.
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
}

fn stock_client(client: Client, v6: bool, mode: XdpMode) {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts {
        ipv6: v6,
        ..Default::default()
    });
    let dst: IpAddr = if v6 {
        pair.host_ip6.into()
    } else {
        pair.host_ip.into()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let echo = start_echo(&pair, mode, stop.clone());
    let errors_before = csum_errors(&pair.ns, v6);
    run_client(&pair, client, dst);
    let errors_after = csum_errors(&pair.ns, v6);
    stop.store(true, Ordering::Relaxed);
    let stats = echo.join().expect("echo thread");
    assert_eq!(
        errors_after, errors_before,
        "the client's kernel saw bad UDP checksums"
    );
    assert_eq!(stats.echoed, COUNT as u64, "{stats:?}");
    // The peer offloads its checksums: the completion path is what was tested.
    assert_eq!(
        stats.partial, COUNT as u64,
        "expected every datagram with a partial checksum: {stats:?}"
    );
}

#[test]
fn socat_ipv4_native() {
    stock_client(Client::Socat, false, XdpMode::Native);
}

#[test]
fn socat_ipv4_generic() {
    stock_client(Client::Socat, false, XdpMode::Generic);
}

#[test]
fn socat_ipv6_native() {
    stock_client(Client::Socat, true, XdpMode::Native);
}

#[test]
fn socat_ipv6_generic() {
    stock_client(Client::Socat, true, XdpMode::Generic);
}

#[test]
fn nc_ipv4_native() {
    stock_client(Client::Nc, false, XdpMode::Native);
}

#[test]
fn nc_ipv4_generic() {
    stock_client(Client::Nc, false, XdpMode::Generic);
}

#[test]
fn nc_ipv6_native() {
    stock_client(Client::Nc, true, XdpMode::Native);
}

#[test]
fn nc_ipv6_generic() {
    stock_client(Client::Nc, true, XdpMode::Generic);
}
