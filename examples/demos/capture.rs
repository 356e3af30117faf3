//! capture: write what a socket receives to a pcap-ng file (read it with tcpdump,
//! Wireshark, tshark), with a bounded file size, packet count or duration.
//!
//! ```sh
//! sudo target/release/examples/capture --iface fx0 --out fx0.pcapng
//!      [--queue 0] [--xdp-mode auto|native|generic] [--max-bytes N[k|M|G]]
//!      [--count N] [--duration SECS] [--snaplen N] [--port P[,P...]]
//!      [--proto udp|tcp] [--answer ADDR[,ADDR...]] [--multi-buffer]
//!      [--frame-size 2048|4096] [--batch 64] [--rx-timestamps]
//! tcpdump -r fx0.pcapng -nn
//! ```
//!
//! Without `--port` / `--proto` the socket takes every packet of the queue — the
//! host's own traffic on that queue too, ARP included. With them only UDP/TCP to
//! those ports (of that protocol) reaches the socket (the library's
//! `SteeringFilter`) and the host keeps everything else, so an address the host owns
//! still resolves and answers. `--answer ADDR` makes the embedded program answer ARP
//! (IPv4) or Neighbor Solicitations (IPv6) for `ADDR` itself, for an interface
//! without that address whose clients must still resolve it.
//!
//! System mode: one thread receives a batch, writes each packet through a
//! `BufWriter` and drops the frames (back to FILL on the next receive). The file is
//! pcap-ng: a section header, one interface description block (the interface's name,
//! link type Ethernet, nanosecond timestamps, the snap length) and one enhanced packet
//! block per packet, written with the `pcap-file` crate. A multi-buffer packet
//! (`--multi-buffer`, jumbo frames) is written whole. `--max-bytes` stops before the
//! record that would take the file past the bound, so the file is never larger and
//! always complete. Exit status: 0 after a clean stop (Ctrl-C, `--count`,
//! `--duration`, `--max-bytes`), 1 on a device or file error (one line on stderr;
//! the records written so far stay readable), 2 on bad arguments.

#[path = "../common/mod.rs"]
mod common;

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{die, Args};
use fluxcapacitor::system::Frame;
use fluxcapacitor::{ConfigError, FluxBuilder, SteeringFilter, XdpMode};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

const USAGE: &str = "capture --iface IF --out FILE [--queue Q] [--xdp-mode auto|native|generic] \
[--max-bytes N[k|M|G]] [--count N] [--duration SECS] [--snaplen N] [--port P[,P...]] \
[--proto udp|tcp] [--answer ADDR[,ADDR...]] [--multi-buffer] [--frame-size 2048|4096] [--batch N] \
[--rx-timestamps]";

/// tcpdump's default snap length: whole packets, jumbo ones included.
const DEFAULT_SNAPLEN: u32 = 262_144;

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        // The library's message names the builder call; say which option that is.
        let hint = match e.downcast_ref::<fluxcapacitor::Error>() {
            Some(fluxcapacitor::Error::Config(ConfigError::MtuTooLarge { .. })) => {
                " (here: --multi-buffer)"
            }
            _ => "",
        };
        eprintln!("capture: {e}{hint}");
        std::process::exit(1);
    }
}

/// A writer that counts the bytes it passes on: the size the file will have once
/// the buffer above the file is flushed.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Size in the file of an enhanced packet block holding `captured` bytes and no
/// options: block type, two lengths, interface id, timestamp (2 words), captured
/// and original length, the data padded to 32 bits.
fn record_len(captured: usize) -> u64 {
    (32 + captured.div_ceil(4) * 4) as u64
}

/// The timestamp of one packet's record, since the Unix epoch.
///
/// The packet's own RX timestamp from the RX metadata (taken by the NIC or the
/// kernel as the packet arrived) is the one to record whenever the library provides
/// it for this frame: it is exact per packet and free of the delay between arrival
/// and this loop. Without it, every packet of a batch gets `batch_received`, the
/// CLOCK_REALTIME reading taken once when the batch came off the RX ring.
/// With `--rx-timestamps` the socket asks for RX metadata; a frame the device
/// stamped then carries its time (the device's clock, nanoseconds, as the NIC keeps
/// it — usually synchronised to the wall clock by PTP).
fn record_timestamp(frame: &Frame, batch_received: Duration) -> Duration {
    match frame.rx_timestamp() {
        Some(ns) => Duration::from_nanos(ns),
        None => batch_received,
    }
}

/// CLOCK_REALTIME now (what `SystemTime` reads on Linux), since the Unix epoch.
fn realtime_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// `123`, `64k`, `10M`, `1G` (binary multiples).
fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// The steering rules of `--port`, `--proto` and `--answer`, and how to say them.
fn steering(args: &Args) -> (SteeringFilter, String) {
    let mut f = SteeringFilter::default();
    if let Some(ports) = args.str("port") {
        for p in ports.split(',') {
            match p.trim().parse::<u16>() {
                Ok(p) if p != 0 => f.dst_ports.push(p),
                _ => die(USAGE, &format!("--port: bad port {p:?}")),
            }
        }
        if f.dst_ports.len() > 8 {
            die(USAGE, "--port: at most 8 ports");
        }
    }
    let proto = match args.str("proto") {
        None => None,
        Some("udp") => Some(("UDP", 17)),
        Some("tcp") => Some(("TCP", 6)),
        Some(p) => die(USAGE, &format!("--proto: {p:?} is not udp|tcp")),
    };
    f.ip_proto = proto.map(|(_, n)| n);
    let mut what = match (proto, f.dst_ports.is_empty()) {
        (None, true) => "every packet".to_string(),
        (p, _) => {
            let name = p.map_or("UDP/TCP", |(n, _)| n);
            if f.dst_ports.is_empty() {
                format!("{name} only (the host keeps the rest)")
            } else {
                let ports: Vec<String> = f.dst_ports.iter().map(|p| p.to_string()).collect();
                format!(
                    "{name} to port {} only (the host keeps the rest)",
                    ports.join(",")
                )
            }
        }
    };
    if let Some(list) = args.str("answer") {
        let addrs: Vec<IpAddr> = list
            .split(',')
            .map(|a| {
                a.trim()
                    .parse()
                    .unwrap_or_else(|_| die(USAGE, &format!("--answer: bad address {a:?}")))
            })
            .collect();
        what.push_str(&format!(
            "; ARP/ND for {} answered by the program",
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        f = f.answering(addrs);
    }
    (f, what)
}

fn xdp_mode(args: &Args) -> XdpMode {
    match args.str("xdp-mode").or(args.str("mode")).unwrap_or("auto") {
        "auto" => XdpMode::Auto,
        "native" | "drv" => XdpMode::Native,
        "generic" | "skb" => XdpMode::Generic,
        m => die(
            USAGE,
            &format!("--xdp-mode: {m:?} is not auto|native|generic"),
        ),
    }
}

/// Why the capture ended.
enum Stop {
    Signal,
    Count,
    Duration,
    /// The next record (`record` bytes, for a packet of `packet` bytes) would have
    /// taken the file past the bound.
    Bound {
        packet: usize,
        record: u64,
    },
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let iface = args.req("iface");
    let out = args.req("out");
    let queue: u32 = args.num("queue", 0);
    let batch: usize = args.num("batch", 64).max(1);
    let count: Option<u64> = args.str("count").map(|_| args.num("count", 0));
    if count == Some(0) {
        die(USAGE, "--count must be at least 1");
    }
    let snaplen: u32 = args.num("snaplen", DEFAULT_SNAPLEN);
    if snaplen == 0 {
        die(USAGE, "--snaplen must be at least 1");
    }
    let max_bytes = args.str("max-bytes").map(|s| {
        parse_size(s).unwrap_or_else(|| die(USAGE, &format!("--max-bytes: bad size {s:?}")))
    });
    let multi_buffer = args.flag("multi-buffer");
    let (filter, steering_text) = steering(args);

    // The file's header: a section header block and one interface description block.
    let idb = InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Owned(iface.clone())),
            InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                "{iface} queue {queue}, AF_XDP socket (fluxcapacitor)"
            ))),
            // pcap-file writes timestamps in nanoseconds: say so (the default is µs).
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    };
    let header_len = {
        let mut probe = PcapNgWriter::new(Vec::new())?;
        probe.write_pcapng_block(idb.clone())?;
        probe.into_inner().len() as u64
    };
    if let Some(max) = max_bytes {
        if max < header_len {
            die(
                USAGE,
                &format!("--max-bytes {max}: the file's header alone takes {header_len} bytes"),
            );
        }
    }

    let flux = FluxBuilder::new(&iface)
        .queue(queue)
        .xdp_mode(xdp_mode(args))
        .frame_size(args.num("frame-size", 4096))
        .multi_buffer(multi_buffer)
        // --rx-timestamps: the device's receive timestamp per packet (RX metadata;
        // native XDP, Linux 6.3, a driver that implements the kfunc).
        .rx_metadata(args.flag("rx-timestamps"))
        .filter(filter)
        .build()?;
    println!("{}", flux.report());
    let stop = Arc::new(AtomicBool::new(false));
    common::stop_flag_on_signals(stop.clone())?;
    let (mut rx, _tx) = flux.split();

    let file = File::create(&out).map_err(|e| format!("{out}: {e}"))?;
    let counted = Counted {
        inner: BufWriter::with_capacity(1 << 20, file),
        bytes: 0,
    };
    let mut writer = PcapNgWriter::new(counted)?;
    writer.write_pcapng_block(idb)?;
    println!(
        "capture: writing {iface} queue {queue} to {out}: {steering_text}{}{}{}",
        max_bytes.map_or(String::new(), |m| format!("; at most {m} bytes")),
        count.map_or(String::new(), |c| format!("; {c} packets")),
        args.duration()
            .map_or(String::new(), |d| format!("; {:.1} s", d.as_secs_f64())),
    );

    let deadline = args.duration().map(|d| Instant::now() + d);
    let cpu0 = common::cpu_secs();
    let t0 = Instant::now();
    let mut frames: Vec<Frame> = Vec::with_capacity(batch);
    // A multi-buffer packet's fragments, copied into one record (reused).
    let mut whole: Vec<u8> = Vec::new();
    let (mut packets, mut bytes, mut truncated, mut multi) = (0u64, 0u64, 0u64, 0u64);
    let mut last_tick = Instant::now();
    let mut last_packets = 0u64;
    // Packets received but not written (those after the bound or the count).
    let mut unwritten = 0u64;
    let reason = 'capture: loop {
        if stop.load(Ordering::Relaxed) {
            break Stop::Signal;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break Stop::Duration;
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            writer.get_mut().flush()?;
            let drops = rx
                .statistics()
                .map(|s| {
                    format!(
                        "drops {} (rx_dropped {}, rx_ring_full {}; fill ring found empty {}x)",
                        s.rx_dropped + s.rx_ring_full,
                        s.rx_dropped,
                        s.rx_ring_full,
                        s.rx_fill_ring_empty_descs
                    )
                })
                .unwrap_or_else(|e| format!("drops unknown ({e})"));
            let host = match rx.program_counters() {
                Ok(Some(c)) if c.filtered > 0 => format!("  host kept {}", c.filtered),
                _ => String::new(),
            };
            println!(
                "[{:>5.1}s] capture: {packets} packets (+{}/s)  {bytes} bytes  file {} bytes  {drops}{host}",
                t0.elapsed().as_secs_f64(),
                packets - last_packets,
                writer.get_ref().bytes,
            );
            last_packets = packets;
            last_tick = Instant::now();
        }
        // A device event (interface gone, link down, program replaced …) ends the
        // capture here with its typed error; the records written so far stay in the
        // file (the buffer is flushed when the writer is dropped).
        if rx.recv_batch_timeout(&mut frames, batch, Duration::from_millis(100))? == 0 {
            continue;
        }
        let received = realtime_now();
        let in_batch = frames.len() as u64;
        for (i, f) in frames.drain(..).enumerate() {
            let len = f.packet_len();
            let captured = len.min(snaplen as usize);
            let record = record_len(captured);
            if let Some(max) = max_bytes {
                if writer.get_ref().bytes + record > max {
                    unwritten = in_batch - i as u64;
                    break 'capture Stop::Bound {
                        packet: len,
                        record,
                    };
                }
            }
            let data: &[u8] = if f.is_multi_buffer() {
                multi += 1;
                whole.clear();
                for frag in f.frags() {
                    let room = captured - whole.len();
                    whole.extend_from_slice(&frag[..frag.len().min(room)]);
                }
                &whole
            } else {
                &f[..captured]
            };
            writer.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: record_timestamp(&f, received),
                original_len: len as u32,
                data: Cow::Borrowed(data),
                options: Vec::new(),
            })?;
            packets += 1;
            bytes += len as u64;
            truncated += u64::from(captured < len);
            if count.is_some_and(|c| packets >= c) {
                unwritten = in_batch - i as u64 - 1;
                break 'capture Stop::Count;
            }
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let mut counted = writer.into_inner();
    counted.flush()?;
    let file_bytes = counted.bytes;
    counted
        .inner
        .into_inner()
        .map_err(|e| format!("{out}: {}", e.error()))?
        .sync_all()
        .map_err(|e| format!("{out}: {e}"))?;

    match reason {
        Stop::Signal => println!("capture: stopped by a signal"),
        Stop::Count => println!("capture: stopped after --count {packets} packets"),
        Stop::Duration => println!("capture: stopped after --duration ({secs:.1} s)"),
        Stop::Bound { packet, record } => println!(
            "capture: stopped at the --max-bytes bound: {out} is {file_bytes} bytes of at most {}; \
             the next packet ({packet} bytes, a {record}-byte record) would have passed it",
            max_bytes.unwrap_or(0)
        ),
    }
    println!(
        "capture: {packets} packets ({bytes} bytes) in {out} ({file_bytes} bytes) in {secs:.1}s; \
         {multi} multi-buffer, {truncated} cut to --snaplen {snaplen}, {unwritten} received but not written"
    );
    println!("  kernel: {:?}", rx.statistics()?);
    println!("  frames: {}", rx.frame_counts());
    common::print_result("capture", packets, secs, cpu0);
    Ok(())
}
