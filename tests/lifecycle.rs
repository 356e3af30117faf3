//! Device and program lifecycle under a running socket, in every mode (engine,
//! system, async, raw): the interface deleted or moved to another namespace, set
//! down or losing carrier (and a flap ridden out with `LinkDown::Wait`), our program
//! detached or replaced (netlink and bpf_link attachments), the MTU raised past a
//! frame, the channel count lowered under the bound queue. Each test fails when the
//! event goes unnoticed for more than a second, when the error does not name the
//! interface and the event, or when a frame is not accounted for afterwards.
//!
//! Stale attachments: a program left by a crashed netlink-mode run, and another
//! tool's program, are named at build time and replaced only on request.
#![cfg(all(feature = "engine", feature = "async", target_os = "linux"))]

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{build_udp_frame, ns_send_raw_frame, skip_without_root, VethOpts, VethPair};
use fluxcapacitor::engine::Engine;
use fluxcapacitor::system::SendFailure;
use fluxcapacitor::{
    DeviceEvent, DeviceStatus, Error, FluxBuilder, FrameCounts, LinkDown, XdpAttach, XdpMode,
};

/// How long an event may go unnoticed.
const NOTICE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Engine,
    System,
    Async,
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Delete,
    MoveNs,
    AdminDown,
    CarrierDown,
    NetlinkDetach,
    NetlinkReplace,
    LinkDetach,
    MtuRaise,
}

fn sh(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn run_ok(cmd: &str, args: &[&str]) {
    let out = sh(cmd, args);
    assert!(
        out.status.success(),
        "`{cmd} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The builder each event needs: netlink attach for the events only a netlink
/// attachment allows, native mode where the event is about native mode.
fn builder(pair: &VethPair, ev: Option<Ev>, policy: LinkDown) -> FluxBuilder {
    let b = FluxBuilder::new(&pair.host)
        .xdp_mode(XdpMode::Native)
        .link_down(policy);
    match ev {
        Some(Ev::NetlinkDetach | Ev::NetlinkReplace) => b.xdp_attach(XdpAttach::Netlink),
        _ => b,
    }
}

type StatusFn = Box<dyn Fn() -> DeviceStatus + Send>;

/// A status the runner thread publishes, and the reader of it.
fn reported_status() -> (Arc<Mutex<Option<DeviceStatus>>>, StatusFn) {
    let shared = Arc::new(Mutex::new(None::<DeviceStatus>));
    let src = shared.clone();
    let read = Box::new(move || src.lock().unwrap().clone().unwrap_or(DeviceStatus::Ok));
    (shared, read)
}

/// What a running socket reports back.
struct Running {
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    status: StatusFn,
    done: std::thread::JoinHandle<Outcome>,
}

struct Outcome {
    result: Result<(), Error>,
    ended: Instant,
    frames: Vec<FrameCounts>,
    /// A send after the failure, in modes that have a TX handle.
    send_after: Option<Result<(), String>>,
    flaps: u64,
}

fn start(mode: Mode, b: FluxBuilder) -> Running {
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (r, s) = (received.clone(), stop.clone());
    let (status, done): (StatusFn, _) = match mode {
        Mode::Engine => {
            let engine = Engine::from_fluxes(vec![b.build().expect("build")])
                .build()
                .expect("engine");
            let stats = engine.stats();
            let handle = engine.stop_handle();
            let st = stats.clone();
            let status: StatusFn = Box::new(move || st.device_status()[0].clone());
            let done = std::thread::spawn(move || {
                let stopper = {
                    let s = s.clone();
                    std::thread::spawn(move || {
                        while !s.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        handle.stop();
                    })
                };
                let result = engine
                    .run(|batch| {
                        r.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    })
                    .map(drop);
                let ended = Instant::now();
                s.store(true, Ordering::Relaxed);
                let _ = stopper.join();
                Outcome {
                    result,
                    ended,
                    frames: stats.final_frames().expect("census after run"),
                    send_after: None,
                    flaps: 0,
                }
            });
            (status, done)
        }
        Mode::System => {
            let flux = b.build().expect("build");
            let (mut rx, mut tx) = flux.split();
            let (shared, status) = reported_status();
            let done = std::thread::spawn(move || {
                let result = loop {
                    *shared.lock().unwrap() = Some(rx.device_status());
                    if s.load(Ordering::Relaxed) {
                        break Ok(());
                    }
                    match rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(Some(f)) => {
                            drop(f);
                            r.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => {}
                        Err(e) => break Err(e),
                    }
                };
                let ended = Instant::now();
                let send_after = result.is_err().then(|| {
                    let mut f = tx.alloc().expect("a free frame");
                    f.set_len(60).expect("60 bytes fit");
                    match tx.try_send(f) {
                        Ok(()) => Ok(()),
                        Err(e) => match e.reason() {
                            SendFailure::Device(d) => Err(d.to_string()),
                            other => Err(format!("not a device failure: {other:?}")),
                        },
                    }
                });
                if result.is_err() {
                    assert!(
                        matches!(tx.flush(), Err(Error::Device(_))),
                        "flush after the failure must fail with Error::Device"
                    );
                }
                let flaps = 0;
                let frames = vec![rx.frame_counts()];
                Outcome {
                    result,
                    ended,
                    frames,
                    send_after,
                    flaps,
                }
            });
            (status, done)
        }
        Mode::Async => {
            let flux = b.build().expect("build");
            let (shared, status) = reported_status();
            let done = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let (mut rx, mut tx) = flux.split_async().expect("async split");
                    let result = loop {
                        *shared.lock().unwrap() = Some(rx.get_ref().device_status());
                        if s.load(Ordering::Relaxed) {
                            break Ok(());
                        }
                        // A long wait: the failure must end it, not the time-out.
                        match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
                            Ok(Ok(f)) => {
                                drop(f);
                                r.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(Err(e)) => break Err(e),
                            Err(_) => {}
                        }
                    };
                    let ended = Instant::now();
                    let send_after = if result.is_err() {
                        let mut f = tx.alloc().expect("a free frame");
                        f.set_len(60).expect("60 bytes fit");
                        Some(match tx.send(f).await {
                            Ok(()) => Ok(()),
                            Err(e) => match e.reason() {
                                SendFailure::Device(d) => Err(d.to_string()),
                                other => Err(format!("not a device failure: {other:?}")),
                            },
                        })
                    } else {
                        None
                    };
                    let frames = vec![rx.frame_counts()];
                    Outcome {
                        result,
                        ended,
                        frames,
                        send_after,
                        flaps: 0,
                    }
                })
            });
            (status, done)
        }
        Mode::Raw => {
            let mut flux = b.build().expect("build");
            let (shared, status) = reported_status();
            let done = std::thread::spawn(move || {
                let result = loop {
                    *shared.lock().unwrap() = Some(flux.device_status());
                    if s.load(Ordering::Relaxed) {
                        break Ok(());
                    }
                    // The cheap call a raw-mode loop makes between batches.
                    if let Err(e) = flux.check_device() {
                        break Err(e);
                    }
                    let raw = flux.raw();
                    let (rx, fill, umem) = (raw.rx.expect("RX"), raw.fill.expect("FILL"), raw.umem);
                    let peek = rx.peek(64);
                    let n = peek.len();
                    let back: Vec<u64> = peek.iter().map(|d| umem.chunk_of(d.addr)).collect();
                    peek.release();
                    common::raw::return_to_fill(fill, &back);
                    r.fetch_add(n as u64, Ordering::Relaxed);
                    if n == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                };
                let ended = Instant::now();
                let flaps = flux.link_flaps();
                Outcome {
                    result,
                    ended,
                    frames: vec![flux.frame_counts()],
                    send_after: None,
                    flaps,
                }
            });
            (status, done)
        }
    };
    Running {
        received,
        stop,
        status,
        done,
    }
}

/// Sends `n` frames from the peer and waits until the socket has them all.
fn traffic(pair: &VethPair, run: &Running, n: u64) {
    let before = run.received.load(Ordering::Relaxed);
    let frame = build_udp_frame(
        pair.peer_mac,
        pair.host_mac,
        pair.peer_addr(4000),
        pair.host_addr(5000),
        &[0x5a; 32],
    );
    for _ in 0..n {
        ns_send_raw_frame(&pair.ns, &pair.peer, &frame);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while run.received.load(Ordering::Relaxed) < before + n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} frames arrived",
            run.received.load(Ordering::Relaxed) - before
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The id of the XDP program on `ifname` (`ip -d link show`).
fn xdp_prog_id(ifname: &str) -> u32 {
    let out = sh("ip", &["-d", "link", "show", "dev", ifname]);
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("prog/xdp").expect("an XDP program");
    text[at..]
        .split_whitespace()
        .skip_while(|w| *w != "id")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no program id in: {text}"))
}

/// The bpf_link holding the XDP program on `ifname`, from `bpftool link show`.
fn xdp_link_id(ifname: &str) -> u32 {
    let prog = xdp_prog_id(ifname);
    let out = sh("bpftool", &["-j", "link", "show"]);
    let text = String::from_utf8_lossy(&out.stdout);
    // Objects like {"id":12,"type":"xdp","prog_id":34,…}: find the one of our program.
    for obj in text.split('{').skip(1) {
        let field = |k: &str| -> Option<u32> {
            let i = obj.find(&format!("\"{k}\":"))? + k.len() + 3;
            obj[i..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        if obj.contains("\"type\":\"xdp\"") && field("prog_id") == Some(prog) {
            return field("id").expect("link id");
        }
    }
    panic!("no XDP link of program {prog} in: {text}");
}

/// The counting XDP_DROP program, built with the crate (another tool's program).
fn other_program() -> String {
    concat!(env!("OUT_DIR"), "/xdpdrop.bpf.o").to_string()
}

fn trigger(ev: Ev, pair: &VethPair) {
    let host = pair.host.as_str();
    match ev {
        Ev::Delete => run_ok("ip", &["link", "del", "dev", host]),
        Ev::MoveNs => run_ok("ip", &["link", "set", "dev", host, "netns", &pair.ns]),
        Ev::AdminDown => run_ok("ip", &["link", "set", "dev", host, "down"]),
        Ev::CarrierDown => run_ok(
            "ip",
            &["-n", &pair.ns, "link", "set", "dev", &pair.peer, "down"],
        ),
        Ev::NetlinkDetach => run_ok("ip", &["link", "set", "dev", host, "xdpdrv", "off"]),
        Ev::NetlinkReplace => run_ok(
            "ip",
            &[
                "-force",
                "link",
                "set",
                "dev",
                host,
                "xdpdrv",
                "obj",
                &other_program(),
                "sec",
                "xdp",
            ],
        ),
        Ev::LinkDetach => {
            let id = xdp_link_id(host).to_string();
            run_ok("bpftool", &["link", "detach", "id", &id]);
        }
        Ev::MtuRaise => run_ok("ip", &["link", "set", "dev", host, "mtu", "9000"]),
    }
}

fn expected(ev: Ev, event: &DeviceEvent) -> bool {
    match ev {
        Ev::Delete => *event == DeviceEvent::Removed,
        Ev::MoveNs => matches!(event, DeviceEvent::MovedNamespace { .. }),
        Ev::AdminDown => *event == DeviceEvent::Down { admin: true },
        Ev::CarrierDown => *event == DeviceEvent::Down { admin: false },
        Ev::NetlinkDetach | Ev::LinkDetach => *event == DeviceEvent::ProgramDetached,
        Ev::NetlinkReplace => {
            matches!(event, DeviceEvent::ProgramReplaced { name, .. } if name == "xdpdrop")
        }
        Ev::MtuRaise => matches!(event, DeviceEvent::MtuTooLarge { mtu: 9000, .. }),
    }
}

fn assert_accounted(frames: &[FrameCounts]) {
    for f in frames {
        assert!(f.is_conserved(), "frames not conserved: {f}");
        assert_eq!(f.user, 0, "frames lost to the application: {f}");
    }
}

/// One event under one mode: traffic flows, the event happens, the socket ends with
/// the typed error within a second, and every frame is accounted for.
fn event_ends_the_socket(mode: Mode, ev: Ev) {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let run = start(mode, builder(&pair, Some(ev), LinkDown::Fail));
    traffic(&pair, &run, 32);
    trigger(ev, &pair);
    let t0 = Instant::now();
    let deadline = t0 + NOTICE * 5;
    while !run.done.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    run.stop.store(true, Ordering::Relaxed); // only matters if it went unnoticed
    let out = run.done.join().expect("runner");
    let late = out.ended.saturating_duration_since(t0);
    let err = match out.result {
        Err(Error::Device(d)) => d,
        Err(e) => panic!("{mode:?}/{ev:?}: expected Error::Device, got {e}"),
        Ok(()) => panic!(
            "{mode:?}/{ev:?}: the event went unnoticed for {:?}",
            NOTICE * 5
        ),
    };
    assert!(
        late <= NOTICE,
        "{mode:?}/{ev:?}: noticed after {late:?}: {err}"
    );
    assert_eq!(err.ifname, pair.host, "{mode:?}/{ev:?}: {err}");
    assert!(
        expected(ev, &err.event),
        "{mode:?}/{ev:?}: unexpected event: {err}"
    );
    let line = err.to_string();
    assert!(
        line.starts_with(&pair.host) && !line.contains('\n'),
        "{line}"
    );
    if let Some(sent) = out.send_after {
        let msg = sent.expect_err("a send after the failure must fail");
        assert_eq!(msg, line, "{mode:?}/{ev:?}: send failed otherwise");
    }
    assert_accounted(&out.frames);
    eprintln!("{mode:?}/{ev:?}: noticed after {late:?}: {line}");
}

/// `LinkDown::Wait`: a flap is ridden out: the socket sees the link down and back,
/// keeps running, and traffic resumes.
fn flap_is_ridden_out(mode: Mode) {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let run = start(mode, builder(&pair, None, LinkDown::Wait));
    traffic(&pair, &run, 16);
    let wait_for = |want: DeviceStatus, what: &str| {
        let t0 = Instant::now();
        while (run.status)() != want {
            assert!(
                !run.done.is_finished(),
                "{mode:?}: the socket ended on a flap"
            );
            assert!(
                t0.elapsed() <= NOTICE,
                "{mode:?}: {what} not seen within {NOTICE:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    run_ok("ip", &["link", "set", "dev", &pair.host, "down"]);
    wait_for(DeviceStatus::Down, "link down");
    run_ok("ip", &["link", "set", "dev", &pair.host, "up"]);
    wait_for(DeviceStatus::Ok, "link up again");
    traffic(&pair, &run, 16);
    run.stop.store(true, Ordering::Relaxed);
    let out = run.done.join().expect("runner");
    assert!(out.result.is_ok(), "{mode:?}: {:?}", out.result.err());
    if mode == Mode::Raw {
        assert_eq!(out.flaps, 1, "one flap");
    }
    assert_accounted(&out.frames);
}

macro_rules! lifecycle_tests {
    ($($name:ident: $mode:expr, $ev:expr;)*) => {
        $(#[test] fn $name() { event_ends_the_socket($mode, $ev); })*
    };
}

lifecycle_tests! {
    engine_deleted: Mode::Engine, Ev::Delete;
    system_deleted: Mode::System, Ev::Delete;
    async_deleted: Mode::Async, Ev::Delete;
    raw_deleted: Mode::Raw, Ev::Delete;
    engine_moved_to_another_namespace: Mode::Engine, Ev::MoveNs;
    system_moved_to_another_namespace: Mode::System, Ev::MoveNs;
    async_moved_to_another_namespace: Mode::Async, Ev::MoveNs;
    raw_moved_to_another_namespace: Mode::Raw, Ev::MoveNs;
    engine_set_down: Mode::Engine, Ev::AdminDown;
    system_set_down: Mode::System, Ev::AdminDown;
    async_set_down: Mode::Async, Ev::AdminDown;
    raw_set_down: Mode::Raw, Ev::AdminDown;
    engine_lost_carrier: Mode::Engine, Ev::CarrierDown;
    system_lost_carrier: Mode::System, Ev::CarrierDown;
    async_lost_carrier: Mode::Async, Ev::CarrierDown;
    raw_lost_carrier: Mode::Raw, Ev::CarrierDown;
    engine_program_detached_by_netlink: Mode::Engine, Ev::NetlinkDetach;
    system_program_detached_by_netlink: Mode::System, Ev::NetlinkDetach;
    async_program_detached_by_netlink: Mode::Async, Ev::NetlinkDetach;
    raw_program_detached_by_netlink: Mode::Raw, Ev::NetlinkDetach;
    engine_program_replaced_by_netlink: Mode::Engine, Ev::NetlinkReplace;
    system_program_replaced_by_netlink: Mode::System, Ev::NetlinkReplace;
    async_program_replaced_by_netlink: Mode::Async, Ev::NetlinkReplace;
    raw_program_replaced_by_netlink: Mode::Raw, Ev::NetlinkReplace;
    engine_link_detached: Mode::Engine, Ev::LinkDetach;
    system_link_detached: Mode::System, Ev::LinkDetach;
    async_link_detached: Mode::Async, Ev::LinkDetach;
    raw_link_detached: Mode::Raw, Ev::LinkDetach;
    engine_mtu_raised_past_the_frame: Mode::Engine, Ev::MtuRaise;
    system_mtu_raised_past_the_frame: Mode::System, Ev::MtuRaise;
    async_mtu_raised_past_the_frame: Mode::Async, Ev::MtuRaise;
    raw_mtu_raised_past_the_frame: Mode::Raw, Ev::MtuRaise;
}

macro_rules! flap_tests {
    ($($name:ident: $mode:expr;)*) => {
        $(#[test] fn $name() { flap_is_ridden_out($mode); })*
    };
}

flap_tests! {
    engine_rides_out_a_flap: Mode::Engine;
    system_rides_out_a_flap: Mode::System;
    async_rides_out_a_flap: Mode::Async;
    raw_rides_out_a_flap: Mode::Raw;
}

/// Lowering the channel count under a bound queue: the kernel refuses it while an
/// AF_XDP socket is bound there (its pool is registered at the queue even in copy
/// mode), so the socket keeps working; if a kernel lets it through, the watch must
/// report the queue gone within a second.
#[test]
fn lowering_channels_under_the_bound_queue() {
    if skip_without_root() {
        return;
    }
    for mode in [Mode::Engine, Mode::System, Mode::Async, Mode::Raw] {
        let pair = VethPair::new(VethOpts {
            queues: 2,
            ..Default::default()
        });
        let run = start(mode, builder(&pair, None, LinkDown::Fail).queue(1));
        let out = sh("ethtool", &["-L", &pair.host, "rx", "1", "tx", "1"]);
        let t0 = Instant::now();
        if out.status.success() {
            while !run.done.is_finished() {
                assert!(t0.elapsed() <= NOTICE, "{mode:?}: queue 1 gone, unnoticed");
                std::thread::sleep(Duration::from_millis(2));
            }
            let out = run.done.join().expect("runner");
            match out.result {
                Err(Error::Device(d)) => {
                    assert_eq!(
                        d.event,
                        DeviceEvent::QueueGone {
                            queue: 1,
                            queues: 1
                        }
                    )
                }
                other => panic!("{mode:?}: expected QueueGone, got {other:?}"),
            }
            assert_accounted(&out.frames);
        } else {
            let why = String::from_utf8_lossy(&out.stderr);
            assert!(
                why.contains("AF_XDP") || why.contains("Invalid argument"),
                "{why}"
            );
            std::thread::sleep(NOTICE / 2);
            assert_eq!((run.status)(), DeviceStatus::Ok, "{mode:?}");
            assert!(
                !run.done.is_finished(),
                "{mode:?}: ended although nothing changed"
            );
            run.stop.store(true, Ordering::Relaxed);
            let out = run.done.join().expect("runner");
            assert!(out.result.is_ok(), "{mode:?}");
            assert_accounted(&out.frames);
            eprintln!("{mode:?}: the kernel refused: {}", why.trim());
        }
    }
}

/// An MTU a frame cannot hold is refused at build time, naming the fix.
#[test]
fn build_refuses_an_mtu_larger_than_a_frame() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts {
        mtu: Some(9000),
        ..Default::default()
    });
    match FluxBuilder::new(&pair.host).frame_size(4096).build() {
        Err(Error::Config(fluxcapacitor::ConfigError::MtuTooLarge {
            mtu: 9000,
            max_packet: 3840,
            ..
        })) => {}
        other => panic!("expected MtuTooLarge, got {other:?}"),
    }
    // With multi-buffer the same interface is fine (where the kernel has it; before
    // 6.6 the refusal is typed).
    let built = FluxBuilder::new(&pair.host).multi_buffer(true).build();
    if common::refused_multi_buffer(&built) {
        return;
    }
    let flux = built.expect("multi-buffer accepts MTU 9000");
    assert!(flux.report().multi_buffer);
}

/// Builds a netlink-attached socket in a child process that is then killed: the
/// program stays on the interface (nothing detaches a netlink attachment when its
/// process dies). The next build names it as ours, and replaces it on request.
#[test]
fn a_crashed_netlink_run_leaves_a_program_that_is_named_and_replaced_on_request() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_attaches_by_netlink_then_waits",
            "--ignored",
            "--nocapture",
        ])
        .env("FLUX_CHILD_IFACE", &pair.host)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("child");
    let stdout = child.stdout.take().expect("stdout");
    let ready = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .any(|l| l.contains("FLUX_CHILD_READY"));
    assert!(ready, "child did not get ready");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(
        common::xdp_attached(&pair.host),
        "a netlink attachment outlives its process"
    );

    let stale = FluxBuilder::new(&pair.host).build();
    match &stale {
        Err(Error::ProgramAlreadyAttached {
            name,
            ours: true,
            link: false,
            mode: "native",
            id,
            ..
        }) => {
            assert_eq!(name, "flux_xsk");
            let msg = stale.as_ref().unwrap_err().to_string();
            assert!(
                msg.contains(&id.to_string()) && msg.contains("did not exit cleanly"),
                "{msg}"
            );
            assert!(
                msg.contains(&format!("ip link set dev {} xdpdrv off", pair.host)),
                "{msg}"
            );
            assert!(msg.contains("replace_program(true)"), "{msg}");
        }
        other => panic!("expected our stale program, got {other:?}"),
    }
    let flux = FluxBuilder::new(&pair.host)
        .replace_program(true)
        .build()
        .expect("replace the stale program");
    assert!(
        flux.report()
            .attach_reason
            .contains("replaced program \"flux_xsk\""),
        "{}",
        flux.report()
    );
    assert!(flux.report().link);
    drop(flux);
    assert!(
        !common::xdp_attached(&pair.host),
        "nothing left after the replacement drops"
    );
}

#[test]
#[ignore = "child process of a_crashed_netlink_run_leaves_a_program_that_is_named_and_replaced_on_request"]
fn child_attaches_by_netlink_then_waits() {
    let iface = std::env::var("FLUX_CHILD_IFACE").expect("run by the parent test");
    let _flux = FluxBuilder::new(&iface)
        .xdp_mode(XdpMode::Native)
        .xdp_attach(XdpAttach::Netlink)
        .build()
        .expect("child build");
    println!("FLUX_CHILD_READY");
    std::thread::sleep(Duration::from_secs(60));
}

/// Another tool's program (attached with `ip`) is named with its mode and the way
/// out, and replaced only with `replace_program(true)`; afterwards the other
/// program is gone and ours detaches cleanly.
#[test]
fn another_tools_program_is_named_and_replaced_on_request() {
    if skip_without_root() {
        return;
    }
    for (mode, ip_mode) in [
        (XdpMode::Generic, "xdpgeneric"),
        (XdpMode::Native, "xdpdrv"),
    ] {
        let pair = VethPair::new(VethOpts::default());
        run_ok(
            "ip",
            &[
                "link",
                "set",
                "dev",
                &pair.host,
                ip_mode,
                "obj",
                &other_program(),
                "sec",
                "xdp",
            ],
        );
        match FluxBuilder::new(&pair.host).xdp_mode(mode).build() {
            Err(e @ Error::ProgramAlreadyAttached { ours: false, .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("xdpdrop") && msg.contains("another tool"),
                    "{msg}"
                );
                assert!(msg.contains(&format!("{ip_mode} off")), "{msg}");
            }
            other => panic!("expected the other program, got {other:?}"),
        }
        let flux = FluxBuilder::new(&pair.host)
            .xdp_mode(mode)
            .replace_program(true)
            .build()
            .expect("replace");
        assert!(
            flux.report().attach_reason.contains("xdpdrop"),
            "{}",
            flux.report()
        );
        drop(flux);
        assert!(
            !common::xdp_attached(&pair.host),
            "{ip_mode}: left attached"
        );
    }
}

/// The watch thread does not take signals: SIGINT/SIGTERM stay with the
/// application's `stop_on_signals` thread (the watch thread starts at the first
/// build, before the application blocks them).
#[test]
fn the_watch_thread_blocks_every_signal() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let _flux = FluxBuilder::new(&pair.host).build().expect("build");
    // A thread names itself once it runs: give a fresh one a moment.
    let t0 = Instant::now();
    let mut seen = false;
    while !seen && t0.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(5));
        seen = std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .flatten()
            .any(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .unwrap_or_default()
                    .trim()
                    == "flux-watch"
            });
    }
    let tasks = std::fs::read_dir("/proc/self/task").expect("tasks");
    for t in tasks.flatten() {
        let dir = t.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != "flux-watch" {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).expect("status");
        let blocked = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex"))
            .expect("SigBlk");
        let want = (1u64 << (libc::SIGINT - 1)) | (1u64 << (libc::SIGTERM - 1));
        assert_eq!(blocked & want, want, "SigBlk {blocked:x}");
    }
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .flatten()
        .map(|t| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default())
        .collect();
    assert!(seen, "no flux-watch thread among {names:?}");
}
