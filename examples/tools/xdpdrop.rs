//! xdpdrop: attach an XDP program that counts every frame (per CPU) and drops it —
//! the XDP_DROP ceiling of a receive path, and a counter for what arrives at an
//! interface (e.g. the peer of an l2fwd, or the receiving end of a TX test). Prints
//! the rate once per second and a `RESULT` line at the end.
//!
//! ```sh
//! sudo target/release/examples/xdpdrop --iface fx0 [--mode auto|native|generic]
//!      [--duration SECS]
//! ```
//!
//! The program is attached with a `bpf_link`, so it goes away with the process.

#[path = "../common/mod.rs"]
mod common;

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Args;
use libbpf_rs::{MapCore, MapFlags, ObjectBuilder};

const USAGE: &str = "xdpdrop --iface IF [--mode auto|native|generic] [--duration SECS]";

/// The compiled counting program (build.rs compiles every `bpf/*.bpf.c`).
static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xdpdrop.bpf.o"));

/// `XDP_FLAGS_SKB_MODE` / `XDP_FLAGS_DRV_MODE` from `<linux/if_link.h>`.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

fn main() {
    let args = Args::parse(USAGE);
    if let Err(e) = run(&args) {
        eprintln!("xdpdrop: {e}");
        std::process::exit(1);
    }
}

/// Frames and bytes counted so far, summed over CPUs.
fn read(map: &libbpf_rs::Map<'_>) -> (u64, u64) {
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

fn run(args: &Args) -> Result<(), String> {
    let iface = args.req("iface");
    let ifindex = nix::net::if_::if_nametoindex(iface.as_str())
        .map_err(|e| format!("interface {iface:?} not found: {e}"))?;
    let open = ObjectBuilder::default()
        .open_memory(OBJ)
        .map_err(|e| format!("opening the program: {e}"))?;
    let mode = args.xdp_mode();
    let flags = match mode {
        fluxcapacitor::XdpMode::Native => XDP_FLAGS_DRV_MODE,
        fluxcapacitor::XdpMode::Generic => XDP_FLAGS_SKB_MODE,
        _ => 0,
    };
    let obj = open
        .load()
        .map_err(|e| format!("loading the program: {e} (needs root / CAP_BPF)"))?;
    // Attaching lives on the mutable program handle in libbpf-rs.
    let prog = obj
        .progs_mut()
        .find(|p| p.name() == "xdpdrop")
        .ok_or("xdpdrop program missing")?;
    // A bpf_link (flags 0: the kernel picks native, else generic) unless a mode was
    // forced, which needs the netlink attach with explicit flags.
    let _link;
    let mut netlink_attached = false;
    if flags == 0 {
        _link =
            Some(prog.attach_xdp(ifindex as i32).map_err(|e| {
                format!("attaching to {iface}: {e} (another XDP program attached?)")
            })?);
    } else {
        _link = None;
        let xdp = libbpf_rs::Xdp::new(prog.as_fd());
        xdp.attach(ifindex as i32, libbpf_rs::XdpFlags::from_bits_retain(flags))
            .map_err(|e| format!("attaching to {iface} ({mode:?}): {e}"))?;
        netlink_attached = true;
    }
    let map = obj
        .maps()
        .find(|m| m.name() == "drop_stats")
        .ok_or("drop_stats map missing")?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        use nix::sys::signal::{SigSet, Signal};
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        set.thread_block()
            .map_err(|e| format!("blocking signals: {e}"))?;
        let s = stop.clone();
        std::thread::spawn(move || {
            if set.wait().is_ok() {
                s.store(true, Ordering::Relaxed);
            }
        });
    }
    println!("xdpdrop: counting and dropping every frame on {iface} (ifindex {ifindex})");
    let deadline = args.duration().map(|d| Instant::now() + d);
    let cpu0 = common::cpu_secs();
    let t0 = Instant::now();
    let (f0, _) = read(&map);
    let (mut last, mut last_b) = (f0, 0);
    let mut last_t = Instant::now();
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(20));
        if last_t.elapsed() >= Duration::from_secs(1) {
            let (f, b) = read(&map);
            let dt = last_t.elapsed().as_secs_f64();
            println!(
                "[{:>5.1}s] xdpdrop: {:>10.0} pps  {:>8.1} Mbit/s  total {}",
                t0.elapsed().as_secs_f64(),
                (f - last) as f64 / dt,
                (b - last_b) as f64 * 8.0 / dt / 1e6,
                f - f0
            );
            (last, last_b) = (f, b);
            last_t = Instant::now();
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let (f, _) = read(&map);
    if netlink_attached {
        let xdp = libbpf_rs::Xdp::new(prog.as_fd());
        let _ = xdp.detach(ifindex as i32, libbpf_rs::XdpFlags::from_bits_retain(flags));
    }
    let total = f - f0;
    println!(
        "xdpdrop: {total} frames in {secs:.2}s ({:.0} pps)",
        total as f64 / secs
    );
    // The drops happen in the kernel's receive path (softirq), not in this process:
    // its CPU time is only the once-a-second counter read.
    common::print_result("xdpdrop", total, secs, cpu0);
    Ok(())
}
