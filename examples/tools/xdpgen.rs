//! xdpgen: a kernel-speed traffic generator. No socket and no copy per packet: an
//! XDP program (`bpf/xdpgen.bpf.c`) is run with `BPF_PROG_RUN` in live-frames mode
//! (`BPF_F_TEST_XDP_LIVE_FRAMES`, Linux ≥ 5.18) over one prepared UDP frame, and
//! returns `XDP_TX`, which the kernel turns into a transmit out of `--iface` — the
//! technique of xdp-trafficgen. One sending thread per `--threads`, each optionally
//! pinned (`--cpu 0,1`); the frames sent per second are printed once per second and
//! a `RESULT` line at the end.
//!
//! ```sh
//! sudo ip netns exec NS target/release/examples/xdpgen --iface fx0p --dst-mac 02:.. \
//!      [--src-mac MAC] [--src-ip A] [--dst-ip B] [--src-port P] [--dst-port P]
//!      [--size 64] [--count N | --duration SECS] [--threads 1] [--cpu 0[,1…]]
//!      [--redirect IFNAME]
//! ```
//!
//! `--redirect IF` sends out of `IF` (`bpf_redirect`) instead of `--iface`. The
//! interface must be in the namespace the generator runs in. Frames the receiving
//! side cannot take are dropped there (veth counts them in `ethtool -S`), so the
//! receiver's count is the one to trust; this one counts frames handed to the
//! driver.

#[path = "../common/mod.rs"]
mod common;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Args;
use libbpf_rs::{MapCore, MapFlags, MapHandle, ObjectBuilder, ProgramInput};

const USAGE: &str = "xdpgen --iface IF --dst-mac MAC [--src-mac MAC] [--src-ip A] [--dst-ip B] \
[--src-port P] [--dst-port P] [--size BYTES] [--count N | --duration SECS] [--threads N] \
[--cpu CPU[,CPU…]] [--redirect IF]";

/// The compiled generator program (build.rs compiles every `bpf/*.bpf.c`).
static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xdpgen.bpf.o"));

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("xdpgen: {e}");
        std::process::exit(1);
    }
}

fn iface_mac(iface: &str) -> Option<[u8; 6]> {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .ok()
        .and_then(|s| common::parse_mac(s.trim()))
}

fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ifindex(name: &str) -> Result<u32, String> {
    nix::net::if_::if_nametoindex(name)
        .map_err(|e| format!("interface {name:?} not found in this network namespace: {e}"))
}

/// `struct xdp_md` as BPF_PROG_RUN takes it: data, data_end, data_meta,
/// ingress_ifindex, rx_queue_index, egress_ifindex (all u32).
fn xdp_md(len: usize, ifindex: u32) -> [u8; 24] {
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}

/// The per-CPU counters of one thread's copy of the program: frames, bytes.
fn read_counters(map: &MapHandle) -> (u64, u64) {
    let per_cpu = map
        .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
        .ok()
        .flatten()
        .unwrap_or_default();
    per_cpu.iter().fold((0, 0), |(f, b), v| {
        let word = |i: usize| {
            v.get(i * 8..i * 8 + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_ne_bytes)
                .unwrap_or(0)
        };
        (f + word(0), b + word(1))
    })
}

/// A SIGUSR1 handler that does nothing: its only job is to make the kernel end a
/// running `BPF_PROG_RUN` early (`EINTR`) when the generator is told to stop.
extern "C" fn on_usr1(_: libc::c_int) {}

fn install_interrupt_handler() -> Result<(), String> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_usr1),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler touches nothing (trivially async-signal-safe), and it is
    // installed before any other thread exists, so no thread's signal disposition
    // changes under it.
    unsafe { sigaction(Signal::SIGUSR1, &action) }
        .map(drop)
        .map_err(|e| format!("installing the SIGUSR1 handler: {e}"))
}

/// What a sending thread hands the main thread once its program is loaded.
struct Started {
    stats: MapHandle,
}

fn usr1() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGUSR1);
    set
}

fn run(args: &Args) -> Result<(), String> {
    let iface = args.req("iface");
    let ifidx = ifindex(&iface)?;
    let redirect = match args.str("redirect") {
        Some(r) => ifindex(r)?,
        None => 0,
    };
    let dst_mac = args.mac("dst-mac");
    let src_mac = match args.str("src-mac") {
        Some(_) => args.mac("src-mac"),
        None => iface_mac(&iface).unwrap_or([0x02, 0, 0, 0, 0, 1]),
    };
    let size: usize = args.num("size", 64);
    if !(42..=3000).contains(&size) {
        return Err(format!(
            "--size {size}: must be 42..=3000 bytes (one page with headroom)"
        ));
    }
    let src = (
        args.ip("src-ip", Ipv4Addr::new(198, 18, 0, 2)),
        args.num("src-port", 9000u16),
    );
    let dst = (
        args.ip("dst-ip", Ipv4Addr::new(198, 18, 0, 1)),
        args.num("dst-port", 9001u16),
    );
    let count: u64 = args.num("count", u64::MAX);
    let duration = args.duration();
    let threads: usize = args.num("threads", 1usize).max(1);
    let cpus: Vec<usize> = match args.str("cpu") {
        Some(list) => list
            .split(',')
            .map(|c| {
                c.trim()
                    .parse()
                    .map_err(|_| format!("--cpu: bad CPU {c:?}"))
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let frame = common::udp_frame(src_mac, dst_mac, src, dst, size);

    install_interrupt_handler()?;
    // SIGINT/SIGTERM are blocked in every thread (the mask is inherited) and taken
    // by one waiting thread, which asks for a stop.
    let stop = Arc::new(AtomicBool::new(false));
    {
        use nix::sys::signal::{SigSet, Signal};
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        set.thread_block()
            .map_err(|e| format!("blocking signals: {e}"))?;
        // SIGUSR1 goes to the sending threads only (they unblock it).
        usr1()
            .thread_block()
            .map_err(|e| format!("blocking signals: {e}"))?;
        let s = stop.clone();
        std::thread::spawn(move || {
            if set.wait().is_ok() {
                s.store(true, Ordering::Relaxed);
            }
        });
    }
    let deadline = duration.map(|d| Instant::now() + d);
    println!(
        "xdpgen: {} bytes {} -> {} on {iface} (ifindex {ifidx}{}), {threads} thread(s){}",
        frame.len(),
        fmt_mac(&src_mac),
        fmt_mac(&dst_mac),
        if redirect != 0 {
            format!(", redirect to ifindex {redirect}")
        } else {
            String::new()
        },
        if cpus.is_empty() {
            String::new()
        } else {
            format!(" on CPUs {cpus:?}")
        }
    );

    let cpu0 = common::cpu_secs();
    let mut t0 = Instant::now();
    let result: Result<(), String> = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<Started>();
        let mut handles = Vec::new();
        for i in 0..threads {
            let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
            // Split the count between the threads.
            let share = if count == u64::MAX {
                u64::MAX
            } else {
                count / threads as u64 + u64::from((i as u64) < count % threads as u64)
            };
            let (stop, frame, tx) = (&stop, &frame, tx.clone());
            handles.push(s.spawn(move || {
                let r = sender(stop, frame, ifidx, redirect, cpu, share, tx);
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                r
            }));
        }
        drop(tx);
        let mut started: Vec<Started> = Vec::new();
        let total = |started: &[Started]| {
            started
                .iter()
                .map(|s| read_counters(&s.stats))
                .fold((0, 0), |(f, b), (f2, b2)| (f + f2, b + b2))
        };
        // Rate printer and stop watcher on this thread.
        let (mut last, mut last_b) = (0u64, 0u64);
        let mut last_t = Instant::now();
        while handles.iter().any(|h| !h.is_finished()) {
            while let Ok(st) = rx.try_recv() {
                if started.is_empty() {
                    t0 = Instant::now();
                    last_t = t0;
                }
                started.push(st);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                stop.store(true, Ordering::Relaxed);
            }
            if stop.load(Ordering::Relaxed) {
                // End the runs in progress: the kernel hands a process-directed
                // SIGUSR1 to one thread that does not block it -- a sender. Again
                // every turn until all have finished.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::this(),
                    nix::sys::signal::Signal::SIGUSR1,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
            if last_t.elapsed() >= Duration::from_secs(1) {
                let (now, now_b) = total(&started);
                let dt = last_t.elapsed().as_secs_f64();
                println!(
                    "[{:>5.1}s] xdpgen: {:>10.0} pps  {:>8.1} Mbit/s  total {now}",
                    t0.elapsed().as_secs_f64(),
                    (now - last) as f64 / dt,
                    (now_b - last_b) as f64 * 8.0 / dt / 1e6,
                );
                (last, last_b) = (now, now_b);
                last_t = Instant::now();
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let (sent, _) = total(&started);
        println!(
            "xdpgen: sent {sent} frames of {} bytes in {secs:.2}s ({:.0} pps)",
            frame.len(),
            sent as f64 / secs
        );
        common::print_result("xdpgen", sent, secs, cpu0);
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err("sender thread panicked".into()))
        })
    });
    result
}

/// One sending thread: its own copy of the program (libbpf objects are not shared
/// between threads), pinned if asked. Each `BPF_PROG_RUN` call sets up and tears
/// down a page pool (an RCU grace period, milliseconds), so a thread makes as few
/// calls as it can: one run of `share` frames, ended early by SIGUSR1 on stop.
fn sender(
    stop: &AtomicBool,
    frame: &[u8],
    ifidx: u32,
    redirect: u32,
    cpu: Option<usize>,
    share: u64,
    started: std::sync::mpsc::Sender<Started>,
) -> Result<(), String> {
    if let Some(cpu) = cpu {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu).map_err(|e| format!("--cpu {cpu}: {e}"))?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
            .map_err(|e| format!("pinning to CPU {cpu}: {e}"))?;
    }
    let obj = ObjectBuilder::default()
        .open_memory(OBJ)
        .and_then(|o| o.load())
        .map_err(|e| format!("loading the generator program: {e} (needs root / CAP_BPF)"))?;
    let map = |name: &str| {
        obj.maps()
            .find(|m| m.name() == name)
            .ok_or_else(|| format!("{name} map missing"))
    };
    if redirect != 0 {
        map("gen_cfg")?
            .update(&0u32.to_ne_bytes(), &redirect.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| format!("setting the redirect target: {e}"))?;
    }
    let stats = map("gen_stats")?;
    let stats = MapHandle::try_from(&stats).map_err(|e| format!("gen_stats: {e}"))?;
    let counters = MapHandle::try_from(&stats).map_err(|e| format!("gen_stats: {e}"))?;
    usr1()
        .thread_unblock()
        .map_err(|e| format!("unblocking SIGUSR1: {e}"))?;
    let _ = started.send(Started { stats });
    // `test_run` lives on the mutable program handle in libbpf-rs.
    let prog = obj
        .progs_mut()
        .find(|p| p.name() == "xdpgen_tx")
        .ok_or("xdpgen_tx program missing")?;
    while !stop.load(Ordering::Relaxed) {
        let done = read_counters(&counters).0;
        if done >= share {
            break;
        }
        let n = (share - done).min(u32::MAX as u64) as u32;
        let mut ctx = xdp_md(frame.len(), ifidx);
        let input = ProgramInput {
            context_in: Some(&mut ctx),
            data_in: Some(frame),
            flags: libbpf_rs::libbpf_sys::BPF_F_TEST_XDP_LIVE_FRAMES,
            repeat: n,
            ..Default::default()
        };
        match prog.test_run(input) {
            Ok(_) => {}
            // Stopped by SIGUSR1: the counters say how far it got.
            Err(e) if e.kind() == libbpf_rs::ErrorKind::Interrupted => break,
            Err(e) => {
                return Err(format!(
                    "BPF_PROG_RUN (live frames) failed: {e}. Needs Linux ≥ 5.18, an \
                     interface that can transmit XDP frames (veth: the peer needs an XDP \
                     program or GRO), and a frame that fits one page"
                ))
            }
        }
    }
    Ok(())
}
