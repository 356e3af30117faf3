//! Small helpers shared by the examples: argument parsing, a once-per-second rate
//! printer, and a UDP frame builder. Kept dependency-free on purpose.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "engine")]
use std::sync::Arc;
use std::time::Duration;
#[cfg(feature = "engine")]
use std::time::Instant;

#[cfg(feature = "engine")]
use fluxcapacitor::engine::{EngineStats, StopHandle};

/// `--key value` / `--flag` arguments.
pub struct Args {
    map: HashMap<String, String>,
    usage: &'static str,
}

impl Args {
    pub fn parse(usage: &'static str) -> Args {
        let mut map = HashMap::new();
        let mut it = std::env::args().skip(1).peekable();
        while let Some(a) = it.next() {
            if a == "-h" || a == "--help" {
                println!("{usage}");
                std::process::exit(0);
            }
            let Some(key) = a.strip_prefix("--") else {
                die(usage, &format!("unexpected argument {a:?}"));
            };
            let val = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next().unwrap_or_default(),
                _ => "true".to_string(),
            };
            map.insert(key.to_string(), val);
        }
        Args { map, usage }
    }
    pub fn str(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(|s| s.as_str())
    }
    pub fn req(&self, k: &str) -> String {
        self.str(k)
            .map(|s| s.to_string())
            .unwrap_or_else(|| die(self.usage, &format!("--{k} is required")))
    }
    pub fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        match self.str(k) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die(self.usage, &format!("--{k}: bad number {v:?}"))),
        }
    }
    pub fn flag(&self, k: &str) -> bool {
        self.str(k).is_some_and(|v| v != "false")
    }
    pub fn mac(&self, k: &str) -> [u8; 6] {
        let s = self.req(k);
        parse_mac(&s).unwrap_or_else(|| die(self.usage, &format!("--{k}: bad MAC {s:?}")))
    }
    pub fn ip(&self, k: &str, default: Ipv4Addr) -> Ipv4Addr {
        match self.str(k) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die(self.usage, &format!("--{k}: bad IPv4 address {v:?}"))),
        }
    }
    pub fn ip6(&self, k: &str) -> Option<Ipv6Addr> {
        self.str(k).map(|v| {
            v.parse()
                .unwrap_or_else(|_| die(self.usage, &format!("--{k}: bad IPv6 address {v:?}")))
        })
    }
    /// `--ip` and `--ip6`: the addresses a service owns; at least one is required.
    pub fn service_addrs(&self) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
        let v4 = self.str("ip").map(|_| self.ip("ip", Ipv4Addr::UNSPECIFIED));
        let v6 = self.ip6("ip6");
        if v4.is_none() && v6.is_none() {
            die(self.usage, "give --ip and/or --ip6");
        }
        (v4, v6)
    }
    pub fn xdp_mode(&self) -> fluxcapacitor::XdpMode {
        match self.str("mode").unwrap_or("auto") {
            "auto" => fluxcapacitor::XdpMode::Auto,
            "native" | "drv" => fluxcapacitor::XdpMode::Native,
            "generic" | "skb" => fluxcapacitor::XdpMode::Generic,
            m => die(
                self.usage,
                &format!("--mode: {m:?} is not auto|native|generic"),
            ),
        }
    }
    pub fn duration(&self) -> Option<Duration> {
        self.str("duration")
            .map(|_| Duration::from_secs_f64(self.num("duration", 0.0)))
    }
}

pub fn die(usage: &str, msg: &str) -> ! {
    eprintln!("error: {msg}\n\n{usage}");
    std::process::exit(2)
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    for (o, p) in out.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    Some(out)
}

/// Prints one line per second from the engine's live counters until `done`.
#[cfg(feature = "engine")]
pub fn spawn_rate_printer(
    stats: EngineStats,
    label: &'static str,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut last = stats.total();
        let mut last_t = Instant::now();
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if last_t.elapsed() < Duration::from_secs(1) {
                continue;
            }
            let now = stats.total();
            let dt = last_t.elapsed().as_secs_f64();
            last_t = Instant::now();
            println!(
                "[{:>5.1}s] {label}: rx {:>10.0} pps  tx {:>10.0} pps  ({:.1} Mbit/s rx)  total rx {} tx {}  kicks/s {:.0} polls/s {:.0}",
                start.elapsed().as_secs_f64(),
                (now.rx_packets - last.rx_packets) as f64 / dt,
                (now.tx_packets - last.tx_packets) as f64 / dt,
                (now.rx_bytes - last.rx_bytes) as f64 * 8.0 / dt / 1e6,
                now.rx_packets,
                now.tx_packets,
                (now.tx_kicks - last.tx_kicks) as f64 / dt,
                (now.polls - last.polls) as f64 / dt,
            );
            last = now;
        }
    })
}

fn csum_fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn csum_add(data: &[u8], mut s: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        s += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        s += (*b as u32) << 8;
    }
    s
}

/// An Ethernet + IPv4 + UDP frame of exactly `frame_len` bytes (at least 42).
pub fn udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    frame_len: usize,
) -> Vec<u8> {
    let frame_len = frame_len.max(42);
    let mut f = vec![0u8; frame_len];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (frame_len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    let c = csum_fold(csum_add(ip, 0));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp_len = ip_len - 20;
    f[34..36].copy_from_slice(&src.1.to_be_bytes());
    f[36..38].copy_from_slice(&dst.1.to_be_bytes());
    f[38..40].copy_from_slice(&udp_len.to_be_bytes());
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = i as u8;
    }
    // UDP checksum over the pseudo-header.
    let mut s = csum_add(&src.0.octets(), 0);
    s = csum_add(&dst.0.octets(), s);
    s += 17 + udp_len as u32;
    s = csum_add(&f[34..], s);
    let mut c = csum_fold(s);
    if c == 0 {
        c = 0xffff;
    }
    f[40..42].copy_from_slice(&c.to_be_bytes());
    f
}

/// CPU seconds (user + system) this process has used so far, from /proc/self/stat.
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// The one machine-readable summary line every example prints at exit, read by
/// scripts/bench.sh: `RESULT name=… pkts=… secs=… pps=… cpu_secs=… cpu_ns_per_pkt=…`.
pub fn print_result(name: &str, pkts: u64, secs: f64, cpu_at_start: f64) {
    let cpu = cpu_secs() - cpu_at_start;
    let pps = if secs > 0.0 { pkts as f64 / secs } else { 0.0 };
    let ns = if pkts > 0 {
        cpu * 1e9 / pkts as f64
    } else {
        0.0
    };
    println!("RESULT name={name} pkts={pkts} secs={secs:.3} pps={pps:.0} cpu_secs={cpu:.3} cpu_ns_per_pkt={ns:.1}");
}

/// Stops on Ctrl-C / SIGTERM, and after `--duration SECS` when given.
#[cfg(feature = "engine")]
pub fn arm_stop(stop: &StopHandle, args: &Args) -> Result<(), fluxcapacitor::Error> {
    stop.stop_on_signals()?;
    if let Some(d) = args.duration() {
        let s = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(d);
            s.stop();
        });
    }
    Ok(())
}

/// Sets `stop` on SIGINT / SIGTERM (blocked here, so call before spawning threads).
pub fn stop_flag_on_signals(stop: std::sync::Arc<AtomicBool>) -> Result<(), fluxcapacitor::Error> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()
        .map_err(|e| fluxcapacitor::Error::Kernel {
            stage: fluxcapacitor::Stage::Signal,
            hint: Some("blocking SIGINT/SIGTERM"),
            source: std::io::Error::from_raw_os_error(e as i32),
        })?;
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            stop.store(true, Ordering::Relaxed);
        }
    });
    Ok(())
}

/// A UDP datagram to `v4` or `v6` (and `port`, if given)? Parsed with the proto views.
#[cfg(feature = "proto")]
pub fn udp_to(frame: &[u8], v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>, port: Option<u16>) -> bool {
    use fluxcapacitor::proto::{Layers, Net, Transport};
    let Ok(l) = Layers::parse(frame) else {
        return false;
    };
    let Transport::Udp(udp) = l.transport else {
        return false;
    };
    let to_us = match l.net {
        Net::Ipv4(ip) => Some(ip.dst_addr()) == v4,
        Net::Ipv6(ip) => Some(ip.dst_addr()) == v6,
        _ => false,
    };
    to_us && port.is_none_or(|p| p == udp.dst_port())
}

/// What a service on `--ip`/`--ip6` prints about its addresses.
pub fn describe_addrs(v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> String {
    let mut s: Vec<String> = v4.iter().map(|a| a.to_string()).collect();
    s.extend(v6.iter().map(|a| a.to_string()));
    s.join(" and ")
}
