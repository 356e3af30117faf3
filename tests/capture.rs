#![cfg(feature = "system")]
//! The `capture` example end to end: the built example binary captures on the host
//! end of a veth pair while a plain `std::net::UdpSocket` in the peer namespace
//! sends sequence-numbered datagrams of varied sizes (default socket options,
//! default offloads, no neighbour entry: the host resolves its own address, as
//! `--port` steering leaves ARP and everything else to it). Debian's `tcpdump` must
//! read the pcap-ng file and count every datagram; its re-export (`tcpdump -w`) is
//! compared byte for byte with what was sent, and the file itself is checked with
//! `pcap-file`: the interface description names the interface, link type Ethernet,
//! nanosecond timestamps within the run. Also: `--max-bytes` bounds the file (the
//! example says it stopped there, tcpdump still reads it), jumbo frames with
//! `--multi-buffer` are written whole, and a device that goes away ends the capture
//! with status 1 and one line.
//!
//! The example binary is built by `cargo test` (examples are part of its build);
//! when only this test target is built (`cargo test --test capture`), the test
//! builds it with the same features itself (`cargo build --example capture`), so
//! the binary always matches the source. `FX_CAPTURE_EXAMPLE` names another one.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

const PORT: u16 = 7070;
const SRC_PORT: u16 = 40070;

// ---------------------------------------------------------------------------
// The example binary
// ---------------------------------------------------------------------------

/// The features this test was built with, for building the example alike.
fn features() -> String {
    [
        ("raw", cfg!(feature = "raw")),
        ("engine", cfg!(feature = "engine")),
        ("sim", cfg!(feature = "sim")),
        ("system", cfg!(feature = "system")),
        ("async", cfg!(feature = "async")),
        ("proto", cfg!(feature = "proto")),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(f, _)| *f)
    .collect::<Vec<_>>()
    .join(",")
}

/// Path of the `capture` example, built (once per test process) when this test runs
/// from cargo's target directory.
fn capture_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("FX_CAPTURE_EXAMPLE") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/capture-HASH: the example is target/<profile>/examples/capture.
        let deps = exe.parent().expect("exe dir");
        if deps.file_name().is_some_and(|n| n == "deps") {
            let profile_dir = deps.parent().expect("profile dir");
            let target_dir = profile_dir.parent().expect("target dir");
            let mut cmd = Command::new(env!("CARGO"));
            cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
                .args([
                    "build",
                    "--quiet",
                    "--example",
                    "capture",
                    "--no-default-features",
                ])
                .args(["--features", &features()])
                .arg("--target-dir")
                .arg(target_dir);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let out = cmd.output().expect("run cargo build --example capture");
            assert!(
                out.status.success(),
                "cargo build --example capture failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return profile_dir.join("examples").join("capture");
        }
        // A copy of the test binary elsewhere (the kernel matrix): the checkout's build.
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/debug/examples/capture"
        ))
    })
}

/// A private directory for one test's files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "fx-capture-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        TempDir(d)
    }
    fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running capture: its stdout lines arrive on a channel, stderr is collected.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    /// Starts the example and waits until it says it writes the file.
    fn start(args: &[&str]) -> Running {
        let bin = capture_bin();
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut r = Running {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
        };
        r.wait_for_line("capture: writing ", Duration::from_secs(30));
        r
    }

    /// Waits for a stdout line starting with `prefix`; panics with the output so far
    /// if the example exits or the time runs out first.
    fn wait_for_line(&mut self, prefix: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    let hit = l.starts_with(prefix);
                    self.stdout.push(l);
                    if hit {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = self.child.kill();
        let status = self.child.wait();
        panic!(
            "capture printed no {prefix:?} line ({status:?}); stdout:\n{}",
            self.stdout.join("\n")
        );
    }

    /// Waits for the example to exit (killing it after `timeout`); returns its
    /// status, stdout and stderr.
    fn finish(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for capture") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "capture did not stop within {timeout:?}; stdout:\n{}",
                    self.stdout.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends at EOF; collect what is left.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(l);
        }
        let stderr = self.stderr.join().unwrap_or_default();
        (status, self.stdout.join("\n"), stderr)
    }
}

// ---------------------------------------------------------------------------
// Traffic and checks
// ---------------------------------------------------------------------------

/// Payload length of datagram `i` for an MTU of 1500: 4 to 1472 bytes.
fn payload_len(i: u32) -> usize {
    4 + (i as usize * 397) % 1469
}

/// Payload length of datagram `i` on an MTU 9000 pair: mostly jumbo (several
/// frames), some in one frame, some just over one.
fn jumbo_payload_len(i: u32) -> usize {
    match i % 4 {
        0 | 1 => 8972,
        2 => 100 + i as usize,
        _ => 3900 + i as usize % 1000,
    }
}

/// The peer resolves the host end and gets its answer from the host's kernel
/// (the capture steers only UDP/TCP to `PORT`), then sends the datagrams.
fn ping_then_send(pair: &VethPair, n: u32, len: fn(u32) -> usize) {
    let ping = Command::new("ip")
        .args(["netns", "exec", &pair.ns, "ping", "-c", "1", "-W", "3"])
        .arg(pair.host_ip.to_string())
        .output()
        .expect("run ping");
    assert!(
        ping.status.success(),
        "the host stopped answering ping during the capture: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let payloads = (0..n).map(|i| seq_payload(i, len(i))).collect();
    send_paced(
        &pair.ns,
        pair.peer_addr(SRC_PORT),
        pair.host_addr(PORT),
        payloads,
        1,
    );
}

/// `tcpdump -r FILE -nn`: must succeed and say link-type Ethernet; returns its
/// packet lines.
fn tcpdump_lines(file: &str) -> Vec<String> {
    let out = Command::new("tcpdump")
        .args(["-r", file, "-nn"])
        .output()
        .expect("run tcpdump (Debian package tcpdump; scripts/test.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tcpdump -r {file} failed: {stderr}");
    assert!(
        stderr.contains("link-type EN10MB (Ethernet)"),
        "tcpdump does not see an Ethernet capture: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// The packets tcpdump reads from `file`, re-exported by tcpdump itself as a pcap
/// file (`tcpdump -r FILE -w OUT`) and read back with pcap-file.
fn tcpdump_packets(file: &str, dir: &TempDir) -> Vec<Vec<u8>> {
    let re = dir.file("reexport.pcap");
    let out = Command::new("tcpdump")
        .args(["-r", file, "-w", &re])
        .output()
        .expect("run tcpdump");
    assert!(
        out.status.success(),
        "tcpdump -r {file} -w {re} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = std::fs::File::open(&re).expect("open the re-export");
    let mut r = pcap_file::pcap::PcapReader::new(f).expect("tcpdump wrote a pcap file");
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.expect("a packet of the re-export");
        assert_eq!(
            p.orig_len as usize,
            p.data.len(),
            "a packet was cut to the snap length"
        );
        v.push(p.data.into_owned());
    }
    v
}

/// What the pcap-ng file holds, read with pcap-file: the interface description
/// and every packet record (timestamp, data).
struct PcapNg {
    linktype: DataLink,
    if_name: Option<String>,
    tsresol: Option<u8>,
    packets: Vec<(Duration, Vec<u8>)>,
}

fn read_pcapng(file: &str) -> PcapNg {
    let f = std::fs::File::open(file).unwrap_or_else(|e| panic!("open {file}: {e}"));
    let mut r = PcapNgReader::new(f).expect("a pcap-ng section header");
    let mut out = PcapNg {
        linktype: DataLink::Unknown(u32::MAX),
        if_name: None,
        tsresol: None,
        packets: Vec::new(),
    };
    let mut idbs = 0;
    while let Some(b) = r.next_block() {
        match b.expect("a well-formed block") {
            Block::InterfaceDescription(idb) => {
                idbs += 1;
                out.linktype = idb.linktype;
                for o in &idb.options {
                    match o {
                        InterfaceDescriptionOption::IfName(n) => out.if_name = Some(n.to_string()),
                        InterfaceDescriptionOption::IfTsResol(t) => out.tsresol = Some(*t),
                        _ => {}
                    }
                }
            }
            Block::EnhancedPacket(p) => {
                assert_eq!(p.interface_id, 0);
                assert_eq!(p.original_len as usize, p.data.len(), "record cut short");
                out.packets.push((p.timestamp, p.data.into_owned()));
            }
            other => panic!("unexpected block {other:?}"),
        }
    }
    assert_eq!(idbs, 1, "one interface description block");
    out
}

fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
}

/// Sequence numbers of the intact datagrams from the peer to `PORT` in `frames`, in
/// order, each with a payload of exactly `len(seq)` bytes; panics on any other frame.
fn seqs(frames: &[Vec<u8>], pair: &VethPair, len: fn(u32) -> usize) -> Vec<u32> {
    frames
        .iter()
        .map(|f| {
            let (src, dst, p) = parse_udp_frame(f).unwrap_or_else(|| {
                panic!("a frame that is no UDP datagram was captured: {f:02x?}")
            });
            assert_eq!(src, pair.peer_addr(SRC_PORT));
            assert_eq!(dst, SocketAddrV4::new(pair.host_ip, PORT));
            let seq = check_seq_payload(p)
                .unwrap_or_else(|| panic!("a corrupted payload ({} bytes)", p.len()));
            assert_eq!(p.len(), len(seq), "datagram {seq}: wrong length");
            assert_eq!(
                f.len(),
                42 + p.len(),
                "datagram {seq}: bytes after the datagram"
            );
            seq
        })
        .collect()
}

/// The checks every complete capture of `n` datagrams passes: tcpdump reads and
/// counts them all, its re-export and the file itself hold every datagram once,
/// equal byte for byte, the interface description is right, timestamps are in the
/// run and in order.
fn check_complete(
    file: &str,
    dir: &TempDir,
    pair: &VethPair,
    n: u32,
    len: fn(u32) -> usize,
    t0: Duration,
) {
    let t1 = wall_clock();
    let lines = tcpdump_lines(file);
    assert_eq!(lines.len(), n as usize, "tcpdump's count");
    let to = format!("> {}.{PORT}: UDP", pair.host_ip);
    for l in &lines {
        assert!(l.contains(&to), "tcpdump line {l:?} is no datagram to {to}");
    }
    let all: Vec<u32> = (0..n).collect();
    let via_tcpdump = seqs(&tcpdump_packets(file, dir), pair, len);
    assert_eq!(via_tcpdump, all, "every datagram, once, in order (tcpdump)");

    let cap = read_pcapng(file);
    assert_eq!(cap.linktype, DataLink::ETHERNET);
    assert_eq!(cap.if_name.as_deref(), Some(pair.host.as_str()));
    assert_eq!(cap.tsresol, Some(9), "nanosecond timestamps");
    let frames: Vec<Vec<u8>> = cap.packets.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(seqs(&frames, pair, len), all, "every datagram (pcap-file)");
    let mut last = Duration::ZERO;
    for (ts, _) in &cap.packets {
        assert!(
            *ts >= t0 && *ts <= t1,
            "timestamp {ts:?} outside the run {t0:?}..{t1:?}"
        );
        assert!(*ts >= last, "timestamps go back");
        last = *ts;
    }
}

/// RESULT line's packet count.
fn result_pkts(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT name=capture pkts="))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no RESULT line in:\n{stdout}"))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// 1,000 datagrams of 4 to 1,472 bytes, `--port` steering: every one in the file,
/// equal byte for byte, counted by tcpdump; the host keeps answering ping.
fn captures_every_datagram(mode: &str, extra: &[&str]) {
    const N: u32 = 1000;
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let dir = TempDir::new("all");
    let file = dir.file("all.pcapng");
    let t0 = wall_clock();
    let n = N.to_string();
    let port = PORT.to_string();
    let mut args = vec![
        "--iface",
        &pair.host,
        "--xdp-mode",
        mode,
        "--out",
        &file,
        "--port",
        &port,
        "--count",
        &n,
        "--duration",
        "60",
    ];
    args.extend_from_slice(extra);
    let run = Running::start(&args);
    ping_then_send(&pair, N, payload_len);
    let (status, stdout, stderr) = run.finish(Duration::from_secs(90));
    assert!(
        status.success(),
        "capture failed ({status}): {stderr}\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("capture: stopped after --count {N} packets")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(" xdp={mode} ")),
        "attached {mode}:\n{stdout}"
    );
    if extra.contains(&"--rx-timestamps") {
        assert!(
            stdout.contains(", rx metadata"),
            "RX metadata on:\n{stdout}"
        );
    }
    assert_eq!(result_pkts(&stdout), u64::from(N));
    check_complete(&file, &dir, &pair, N, payload_len, t0);
}

#[test]
fn capture_writes_every_datagram_native() {
    captures_every_datagram("native", &[]);
}

/// `--rx-timestamps` captures through the RX metadata program (a veth stamps no
/// hardware time, so the records carry the batch's receive time; the file is as
/// complete and its times as ordered).
#[test]
fn capture_with_rx_timestamps_native() {
    if !kernel_at_least(6, 3) {
        return;
    }
    captures_every_datagram("native", &["--rx-timestamps"]);
}

#[test]
fn capture_writes_every_datagram_generic() {
    captures_every_datagram("generic", &[]);
}

/// `--max-bytes`: the file stops short of the bound, holds the first datagrams
/// complete (tcpdump reads them), and the next one would not have fit.
#[test]
fn capture_max_bytes_bounds_the_file() {
    const N: u32 = 300;
    const BOUND: u64 = 64 * 1024;
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let dir = TempDir::new("bound");
    let file = dir.file("bound.pcapng");
    let run = Running::start(&[
        "--iface",
        &pair.host,
        "--out",
        &file,
        "--port",
        &PORT.to_string(),
        "--max-bytes",
        "64k",
        "--duration",
        "60",
    ]);
    ping_then_send(&pair, N, payload_len);
    let (status, stdout, stderr) = run.finish(Duration::from_secs(90));
    assert!(
        status.success(),
        "capture failed ({status}): {stderr}\n{stdout}"
    );
    assert!(
        stdout.contains("capture: stopped at the --max-bytes bound"),
        "the example did not say it stopped at the bound:\n{stdout}"
    );
    let size = std::fs::metadata(&file).expect("the file").len();
    assert!(size <= BOUND, "{size} bytes > the bound {BOUND}");
    assert!(
        stdout.contains(&format!("{file} is {size} bytes of at most {BOUND}")),
        "{stdout}"
    );

    let lines = tcpdump_lines(&file);
    let k = lines.len() as u32;
    assert!(k > 10 && k < N, "{k} datagrams in a {BOUND}-byte file");
    let got = seqs(&tcpdump_packets(&file, &dir), &pair, payload_len);
    assert_eq!(got, (0..k).collect::<Vec<_>>(), "the first {k} datagrams");
    // The next datagram's record (32 bytes of block around its padded frame) did not fit.
    let next_frame = 42 + payload_len(k) as u64;
    let next_record = 32 + next_frame.div_ceil(4) * 4;
    assert!(
        size + next_record > BOUND,
        "datagram {k} ({next_record}-byte record) would still have fit in {size} of {BOUND}"
    );
    assert_eq!(result_pkts(&stdout), u64::from(k));
}

/// MTU 9000, `--multi-buffer` with 4096-byte frames: jumbo datagrams (three frames)
/// are written whole, mixed with ones in one or two frames. A kernel without
/// multi-buffer AF_XDP (before 6.6) refuses it: status 1, one line.
#[test]
fn capture_writes_jumbo_frames_whole() {
    const N: u32 = 300;
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts {
        mtu: Some(9000),
        ..Default::default()
    });
    let dir = TempDir::new("jumbo");
    let file = dir.file("jumbo.pcapng");
    let args = [
        "--iface",
        &pair.host,
        "--out",
        &file,
        "--port",
        &PORT.to_string(),
        "--multi-buffer",
        "--frame-size",
        "4096",
        "--count",
        &N.to_string(),
        "--duration",
        "60",
    ];
    if !kernel_has_multi_buffer() {
        let out = Command::new(capture_bin())
            .args(args)
            .output()
            .expect("run capture");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.to_lowercase().contains("multi-buffer"), "{stderr}");
        return;
    }
    let t0 = wall_clock();
    let run = Running::start(&args);
    ping_then_send(&pair, N, jumbo_payload_len);
    let (status, stdout, stderr) = run.finish(Duration::from_secs(90));
    assert!(
        status.success(),
        "capture failed ({status}): {stderr}\n{stdout}"
    );
    let multi = N / 2 + N / 4; // 8972 and 3900+ byte payloads span several frames
    assert!(
        stdout.contains(&format!("; {multi} multi-buffer,")),
        "multi-buffer count:\n{stdout}"
    );
    check_complete(&file, &dir, &pair, N, jumbo_payload_len, t0);
}

/// The interface goes away under a running capture: status 1, one line on stderr
/// naming it, and the datagrams captured before are still in a file tcpdump reads.
#[test]
fn capture_exits_with_one_line_when_the_device_goes() {
    const N: u32 = 50;
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let dir = TempDir::new("gone");
    let file = dir.file("gone.pcapng");
    let mut run = Running::start(&[
        "--iface",
        &pair.host,
        "--out",
        &file,
        "--port",
        &PORT.to_string(),
        "--duration",
        "60",
    ]);
    ping_then_send(&pair, N, payload_len);
    // Wait for a live line that shows all of them, then delete the interface.
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = format!("capture: {N} packets");
    while !run.stdout.iter().any(|l| l.contains(&want)) {
        assert!(
            Instant::now() < deadline,
            "never saw {want:?}:\n{}",
            run.stdout.join("\n")
        );
        run.wait_for_line("[", Duration::from_secs(5));
    }
    let live = run
        .stdout
        .iter()
        .find(|l| l.contains(&want))
        .expect("the live line");
    assert!(
        live.starts_with('[') && live.contains(" bytes  file ") && live.contains("drops 0 "),
        "live line: {live}"
    );
    let del = Command::new("ip")
        .args(["link", "del", "dev", &pair.host])
        .status()
        .expect("ip link del");
    assert!(del.success());
    let (status, stdout, stderr) = run.finish(Duration::from_secs(20));
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr:?}");
    assert!(
        stderr.starts_with("capture: ") && stderr.contains(&pair.host),
        "the line names the interface: {stderr:?}"
    );
    let got = seqs(&tcpdump_packets(&file, &dir), &pair, payload_len);
    assert_eq!(
        got,
        (0..N).collect::<Vec<_>>(),
        "the datagrams before the event"
    );
}

/// Inside the peer namespace, datagram 0 alone (its ARP request resolves the host
/// end), a pause, then the rest.
fn send_resolving_first(pair: &VethPair, n: u32, len: fn(u32) -> usize) {
    let (src, dst) = (pair.peer_addr(SRC_PORT), pair.host_addr(PORT));
    udp_send_from_ns(&pair.ns, src, dst, vec![seq_payload(0, len(0))], None);
    std::thread::sleep(Duration::from_millis(300));
    let rest = (1..n).map(|i| seq_payload(i, len(i))).collect();
    send_paced(&pair.ns, src, dst, rest, 1);
}

/// No steering: the socket takes every packet, and `--answer` has the program answer
/// ARP for the host's address (the host no longer sees the requests), so the peer
/// resolves it and every datagram is in the file — and nothing else is.
#[test]
fn capture_everything_answering_arp() {
    const N: u32 = 500;
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let dir = TempDir::new("every");
    let file = dir.file("every.pcapng");
    let t0 = wall_clock();
    let run = Running::start(&[
        "--iface",
        &pair.host,
        "--out",
        &file,
        "--answer",
        &pair.host_ip.to_string(),
        "--count",
        &N.to_string(),
        "--duration",
        "60",
    ]);
    assert!(
        run.stdout
            .iter()
            .any(|l| l.contains("every packet; ARP/ND for")),
        "{:?}",
        run.stdout
    );
    send_resolving_first(&pair, N, payload_len);
    let (status, stdout, stderr) = run.finish(Duration::from_secs(90));
    assert!(
        status.success(),
        "capture failed ({status}): {stderr}\n{stdout}"
    );
    check_complete(&file, &dir, &pair, N, payload_len, t0);
}

/// `--snaplen 100`: records hold the first 100 bytes of each frame and its
/// original length; tcpdump reads them and still names every datagram.
#[test]
fn capture_snaplen_cuts_records() {
    const N: u32 = 200;
    const SNAP: usize = 100;
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let dir = TempDir::new("snap");
    let file = dir.file("snap.pcapng");
    let run = Running::start(&[
        "--iface",
        &pair.host,
        "--out",
        &file,
        "--port",
        &PORT.to_string(),
        "--snaplen",
        &SNAP.to_string(),
        "--count",
        &N.to_string(),
        "--duration",
        "60",
    ]);
    ping_then_send(&pair, N, payload_len);
    let (status, stdout, stderr) = run.finish(Duration::from_secs(90));
    assert!(
        status.success(),
        "capture failed ({status}): {stderr}\n{stdout}"
    );
    let lines = tcpdump_lines(&file);
    assert_eq!(lines.len(), N as usize, "tcpdump's count");
    // Read the records themselves: captured and original lengths.
    let f = std::fs::File::open(&file).expect("open");
    let mut r = PcapNgReader::new(f).expect("pcap-ng");
    let mut seq = 0u32;
    let mut cut = 0u32;
    while let Some(b) = r.next_block() {
        if let Block::EnhancedPacket(p) = b.expect("block") {
            let frame_len = 42 + payload_len(seq);
            assert_eq!(p.original_len as usize, frame_len, "datagram {seq}");
            assert_eq!(p.data.len(), frame_len.min(SNAP), "datagram {seq}");
            let payload = &p.data[42..];
            assert_eq!(payload[..4], seq.to_be_bytes(), "datagram {seq} in order");
            assert_eq!(
                payload,
                &seq_payload(seq, payload_len(seq))[..payload.len()]
            );
            cut += u32::from(frame_len > SNAP);
            seq += 1;
        }
    }
    assert_eq!(seq, N);
    assert!(
        stdout.contains(&format!("{cut} cut to --snaplen {SNAP}")),
        "{stdout}"
    );
}
