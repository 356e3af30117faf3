#![cfg(feature = "raw")]
//! Core data path on real veth pairs: receive, transmit, both ways, accounting,
//! statistics, program lifecycle, typed set-up errors, and the embedding path.
//! Each test makes its own namespace and veth pair (removed even on panic).

mod common;

use std::collections::HashSet;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::raw::{kick_all, queue_tx, reap, return_to_fill};
use common::*;
use fluxcapacitor::raw::RawParts;
use fluxcapacitor::{
    BindMode, ConfigError, Error, Flux, FluxBuilder, RingSizes, SteeringFilter, XdpMode,
};

const N: u32 = 10_000;
const PORT: u16 = 7000;

/// Receives until `want` datagrams to `port` arrived or `idle` passed without any;
/// returns their payloads. Every received frame goes straight back to FILL.
fn raw_receive(flux: &mut Flux, port: u16, want: usize, idle: Duration) -> Vec<Vec<u8>> {
    raw_receive_counting(flux, port, want, idle, &AtomicU64::new(0))
}

/// [`raw_receive`], bumping `progress` per datagram (for windowed senders).
fn raw_receive_counting(
    flux: &mut Flux,
    port: u16,
    want: usize,
    idle: Duration,
    progress: &AtomicU64,
) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut last = Instant::now();
    while got.len() < want && last.elapsed() < idle {
        let RawParts {
            fill,
            rx,
            umem,
            device: fd,
            ..
        } = flux.raw();
        let (fill, rx) = (fill.unwrap(), rx.unwrap());
        let peek = rx.peek(64);
        if peek.is_empty() {
            drop(peek);
            if fill.needs_wakeup() {
                fd.wake_rx().unwrap();
            }
            fd.poll(true, false, Some(Duration::from_millis(10)))
                .unwrap();
            continue;
        }
        last = Instant::now();
        let mut back = Vec::with_capacity(peek.len() as usize);
        for d in peek.iter() {
            // SAFETY: the frame came off RX and is ours until it goes back on FILL below.
            let bytes = unsafe { umem.slice(d.addr, d.len as usize) }.expect("in bounds");
            if let Some((_, dst, payload)) = parse_udp_frame(bytes) {
                if dst.port() == port {
                    got.push(payload.to_vec());
                    progress.fetch_add(1, Ordering::Release);
                }
            }
            back.push(umem.chunk_of(d.addr));
        }
        peek.release();
        return_to_fill(fill, &back);
    }
    got
}

fn send_paced(ns: &str, src: SocketAddrV4, dst: SocketAddrV4, payloads: Vec<Vec<u8>>) {
    common::send_paced(ns, src, dst, payloads, 1)
}

fn assert_sequence(payloads: &[Vec<u8>], n: u32) {
    let mut seen = HashSet::new();
    for p in payloads {
        let seq = check_seq_payload(p).expect("payload intact");
        assert!(seen.insert(seq), "duplicate datagram {seq}");
    }
    assert_eq!(
        seen.len() as u32,
        n,
        "lost datagrams: got {} of {n}",
        seen.len()
    );
}

fn assert_at_rest(flux: &mut Flux) {
    // Completions arrive asynchronously; reap until TX drains.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        reap(flux);
        let c = flux.frame_counts();
        assert!(c.is_conserved(), "frames not conserved: {c}");
        if c.tx == 0 && c.completion == 0 && c.user == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "frames did not come back: {c}");
        let _ = flux.device().kick_tx();
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn rx_test(mode: XdpMode) {
    let pair = VethPair::new(VethOpts::default());
    let mut flux = FluxBuilder::new(&pair.host)
        .xdp_mode(mode)
        .filter(SteeringFilter::default().answering([pair.host_ip.into()]))
        .frame_count(4096)
        .frame_size(2048)
        .ring_sizes(RingSizes {
            fill: 4096,
            completion: 1024,
            rx: 4096,
            tx: 1024,
        })
        .build()
        .expect("build");
    let expect_mode = match mode {
        XdpMode::Generic => fluxcapacitor::AttachedMode::Generic,
        _ => fluxcapacitor::AttachedMode::Native,
    };
    assert_eq!(
        flux.report().xdp_mode,
        Some(expect_mode),
        "{}",
        flux.report()
    );
    assert!(xdp_attached(&pair.host));
    let before = flux.statistics().unwrap();

    let payloads: Vec<Vec<u8>> = (0..N)
        .map(|i| seq_payload(i, 64 + (i % 7) as usize * 100))
        .collect();
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(40000), pair.host_addr(PORT));
    let progress = Arc::new(AtomicU64::new(0));
    let p2 = progress.clone();
    let sender = std::thread::spawn(move || send_windowed(&ns, src, dst, payloads, 1, p2, 256));
    let got = raw_receive_counting(
        &mut flux,
        PORT,
        N as usize,
        Duration::from_secs(5),
        &progress,
    );
    sender.join().unwrap();
    assert_sequence(&got, N);

    let stats = flux.statistics().unwrap();
    assert_eq!(stats.rx_dropped, before.rx_dropped, "{stats:?}");
    assert_eq!(stats.rx_ring_full, 0, "{stats:?}");
    assert_eq!(stats.rx_invalid_descs, 0);
    let prog = flux.program_counters().unwrap().unwrap();
    assert!(prog.redirected >= N as u64, "{prog:?}");
    assert_at_rest(&mut flux);
    let c = flux.frame_counts();
    assert_eq!(c.total, 4096);
    drop(flux);
    assert!(
        !xdp_attached(&pair.host),
        "program still attached after drop"
    );
}

#[test]
fn receive_10k_udp_native() {
    if skip_without_root() {
        return;
    }
    rx_test(XdpMode::Native);
}

#[test]
fn receive_10k_udp_generic() {
    if skip_without_root() {
        return;
    }
    rx_test(XdpMode::Generic);
}

/// Sends `frames` from the pool in batches of 64, kicking until each batch is taken
/// and reaping completions.
fn raw_send(flux: &mut Flux, frames: &[Vec<u8>]) {
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while next < frames.len() {
        assert!(Instant::now() < deadline, "TX stalled at {next}");
        reap(flux);
        next += queue_tx(flux, &frames[next..(next + 64).min(frames.len())]);
        kick_all(flux);
        // The veth peer queues what we send on a 1000-packet backlog and drops the
        // rest (counted as device drops); pace so that this test sees no such drop.
        std::thread::sleep(Duration::from_micros(150));
    }
}

fn tx_test(mode: XdpMode) {
    let pair = VethPair::new(VethOpts::default());
    let cap = Capture::open(&pair.ns, &pair.peer);
    let mut flux = FluxBuilder::new(&pair.host)
        .xdp_mode(mode)
        .frame_count(2048)
        .ring_size(1024)
        .build()
        .expect("build");
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            build_udp_frame(
                pair.host_mac,
                pair.peer_mac,
                pair.host_addr(5000),
                pair.peer_addr(PORT),
                &seq_payload(i, 18 + (i % 5) as usize * 200),
            )
        })
        .collect();
    let expect = frames.clone();
    let collector = std::thread::spawn(move || {
        cap.collect_until(
            |f| parse_udp_frame(f).is_some_and(|(_, d, _)| d.port() == PORT),
            N as usize,
            Duration::from_secs(5),
        )
    });
    raw_send(&mut flux, &frames);
    let got = collector.join().unwrap();
    if got.len() != N as usize {
        let seqs: HashSet<u32> = got
            .iter()
            .filter_map(|f| parse_udp_frame(f).and_then(|(_, _, p)| check_seq_payload(p)))
            .collect();
        let missing: Vec<u32> = (0..N).filter(|i| !seqs.contains(i)).take(40).collect();
        eprintln!(
            "missing {missing:?} stats {:?} counts {}",
            flux.statistics(),
            flux.frame_counts()
        );
    }
    assert_eq!(
        got.len(),
        N as usize,
        "captured {} of {N}; device drops {}",
        got.len(),
        flux.device().device_drops()
    );
    let want: HashSet<&Vec<u8>> = expect.iter().collect();
    let mut seen = HashSet::new();
    for f in &got {
        assert!(want.contains(f), "frame altered in flight");
        assert!(seen.insert(f.clone()), "duplicate frame");
    }
    assert_at_rest(&mut flux);
    let s = flux.statistics().unwrap();
    assert_eq!(s.tx_invalid_descs, 0, "{s:?}");
}

#[test]
fn transmit_10k_frames_native() {
    if skip_without_root() {
        return;
    }
    tx_test(XdpMode::Native);
}

#[test]
fn transmit_10k_frames_generic() {
    if skip_without_root() {
        return;
    }
    tx_test(XdpMode::Generic);
}

#[test]
fn both_directions_on_one_socket() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let cap = Capture::open(&pair.ns, &pair.peer);
    let mut flux = FluxBuilder::new(&pair.host)
        .frame_count(4096)
        .frame_size(2048)
        .ring_size(2048)
        .filter(SteeringFilter::default().answering([pair.host_ip.into()]))
        .build()
        .expect("build");
    // Socket -> peer, interleaved with the receive (built before traffic starts).
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            build_udp_frame(
                pair.host_mac,
                pair.peer_mac,
                pair.host_addr(PORT),
                pair.peer_addr(PORT + 1),
                &seq_payload(i, 80),
            )
        })
        .collect();
    // Peer -> socket.
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| seq_payload(i, 100)).collect();
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(40001), pair.host_addr(PORT));
    // Flow-controlled: at most 256 datagrams ahead of what the socket has taken, so a
    // starved receiver (a slow VM, a busy machine) cannot run FILL dry between sends.
    let progress = Arc::new(AtomicU64::new(0));
    let p2 = progress.clone();
    let sender = std::thread::spawn(move || send_windowed(&ns, src, dst, payloads, 1, p2, 256));
    let collector = std::thread::spawn(move || {
        cap.collect_until(
            |f| parse_udp_frame(f).is_some_and(|(_, d, _)| d.port() == PORT + 1),
            N as usize,
            Duration::from_secs(5),
        )
    });
    let mut got = Vec::new();
    for part in frames.chunks(64) {
        raw_send(&mut flux, part);
        got.extend(raw_receive_counting(
            &mut flux,
            PORT,
            N as usize - got.len(),
            Duration::from_millis(1),
            &progress,
        ));
    }
    got.extend(raw_receive_counting(
        &mut flux,
        PORT,
        N as usize - got.len(),
        Duration::from_secs(5),
        &progress,
    ));
    sender.join().unwrap();
    let stats = flux.statistics().unwrap();
    assert_eq!(stats.rx_dropped, 0, "{stats:?}");
    assert_sequence(&got, N);
    let sent = collector.join().unwrap();
    let seqs: HashSet<u32> = sent
        .iter()
        .filter_map(|f| parse_udp_frame(f).and_then(|(_, _, p)| check_seq_payload(p)))
        .collect();
    assert_eq!(seqs.len() as u32, N);
    assert_at_rest(&mut flux);
}

#[test]
fn second_socket_on_same_queue_is_busy() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts {
        queues: 2,
        ..Default::default()
    });
    let first = FluxBuilder::new(&pair.host).build().expect("first");
    let second = FluxBuilder::new(&pair.host)
        .program(first.program().unwrap().clone())
        .busy_retry(Duration::from_millis(50))
        .build();
    match second {
        Err(Error::QueueBusy {
            queue: 0,
            ref ifname,
            ..
        }) if *ifname == pair.host => {}
        other => panic!("expected QueueBusy, got {other:?}"),
    }
    // A second program on the same interface is refused, naming the first one.
    match FluxBuilder::new(&pair.host).queue(1).build() {
        Err(Error::ProgramAlreadyAttached { name, .. }) => assert_eq!(name, "flux_xsk"),
        other => panic!("expected ProgramAlreadyAttached, got {other:?}"),
    }
}

#[test]
fn zero_copy_on_veth_is_refused_and_auto_falls_back() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    match FluxBuilder::new(&pair.host)
        .bind_mode(BindMode::ZeroCopy)
        .build()
    {
        Err(Error::ZeroCopyUnsupported { ifname, .. }) => assert_eq!(ifname, pair.host),
        other => panic!("expected ZeroCopyUnsupported, got {other:?}"),
    }
    assert!(
        !xdp_attached(&pair.host),
        "failed build left the program attached"
    );
    let flux = FluxBuilder::new(&pair.host)
        .bind_mode(BindMode::Auto)
        .build()
        .expect("auto");
    let r = flux.report();
    assert!(!r.zero_copy);
    assert!(
        r.zero_copy_reason.contains("does not support"),
        "{}",
        r.zero_copy_reason
    );
}

#[test]
fn typed_setup_errors() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    match FluxBuilder::new("fxnosuchif0").build() {
        Err(Error::InterfaceNotFound(n)) => assert_eq!(n, "fxnosuchif0"),
        other => panic!("{other:?}"),
    }
    match FluxBuilder::new(&pair.host).queue(3).build() {
        Err(Error::Config(ConfigError::QueueOutOfRange {
            queue: 3, count: 1, ..
        })) => {}
        other => panic!("{other:?}"),
    }
    match FluxBuilder::new(&pair.host).ring_size(1000).build() {
        Err(Error::Config(ConfigError::RingSize { size: 1000, .. })) => {}
        other => panic!("{other:?}"),
    }
    match FluxBuilder::new(&pair.host).frame_size(1024).build() {
        Err(Error::Config(ConfigError::FrameSize { size: 1024, .. })) => {}
        other => panic!("{other:?}"),
    }
    assert!(!xdp_attached(&pair.host));
}

/// The program is attached with a bpf_link: when the process that attached it is
/// killed with SIGKILL, the kernel detaches it.
#[test]
fn program_detaches_when_owner_is_killed() {
    if skip_without_root() {
        return;
    }
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let pair = VethPair::new(VethOpts::default());
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_holds_flux_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("FLUX_CHILD_IFACE", &pair.host)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("FLUX_CHILD_READY"));
    assert!(ready, "child did not get ready");
    assert!(xdp_attached(&pair.host), "child's program not attached");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while xdp_attached(&pair.host) {
        assert!(Instant::now() < deadline, "program survived its process");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run only by `program_detaches_when_owner_is_killed` as its child process.
#[test]
#[ignore = "child process of program_detaches_when_owner_is_killed"]
fn child_holds_flux_until_killed() {
    if skip_without_root() {
        return;
    }
    let iface = std::env::var("FLUX_CHILD_IFACE").expect("run by the parent test");
    let _flux = FluxBuilder::new(iface).build().expect("child build");
    println!("FLUX_CHILD_READY");
    std::thread::sleep(Duration::from_secs(60));
    panic!("the parent should have killed this process");
}

/// Embedding: the user loads their own program with their own XSKMAP through
/// libbpf-rs; the crate only registers its socket there (`load_xdp(false)`).
#[test]
fn embedding_registers_into_a_user_xskmap() {
    if skip_without_root() {
        return;
    }
    use libbpf_rs::{MapCore, ObjectBuilder};
    use std::os::fd::AsFd;
    let pair = VethPair::new(VethOpts::default());
    let obj = ObjectBuilder::default()
        .open_memory(include_bytes!(concat!(env!("OUT_DIR"), "/user_xsk.bpf.o")))
        .unwrap()
        .load()
        .unwrap();
    let prog = obj.progs_mut().find(|p| p.name() == "user_prog").unwrap();
    let _link = prog
        .attach_xdp(pair.host_ifindex as i32)
        .expect("attach user program");
    let map = obj.maps().find(|m| m.name() == "user_xsks").unwrap();
    let mut flux = FluxBuilder::new(&pair.host)
        .load_xdp(false)
        .register_into(map.as_fd(), 0)
        .unwrap()
        .build()
        .expect("build without program");
    assert_eq!(flux.report().xdp_mode, None);
    let payloads: Vec<Vec<u8>> = (0..1000).map(|i| seq_payload(i, 64)).collect();
    let (ns, src, dst): (String, SocketAddrV4, SocketAddrV4) =
        (pair.ns.clone(), pair.peer_addr(40002), pair.host_addr(PORT));
    let sender = std::thread::spawn(move || send_paced(&ns, src, dst, payloads));
    let got = raw_receive(&mut flux, PORT, 1000, Duration::from_secs(5));
    sender.join().unwrap();
    assert_sequence(&got, 1000);
    assert_at_rest(&mut flux);
    drop(flux);
    // Our socket left the user's map when the Flux was dropped.
    assert!(map
        .lookup(&0u32.to_ne_bytes(), libbpf_rs::MapFlags::ANY)
        .map(|v| v.is_none())
        .unwrap_or(true));
}
