//! rxdrop on the `xdpilone` crate: the same loop as fluxcapacitor's `rxdrop --spin`
//! and the C reference (receive a batch of 64, give the frames straight back to FILL,
//! wake the kernel when it asks, spin otherwise), behind the same embedded XDP
//! program, so that the comparison is about the user-space ring driver alone.
//!
//! ```sh
//! xdpilone_rxdrop --iface IF [--queue Q] [--duration SECS] [--pin CPU]
//! ```
//! Prints `RESULT name=xdpilone_rxdrop pkts=… secs=… pps=… cpu_secs=… cpu_ns_per_pkt=…`.

use std::ffi::CString;
use std::num::NonZeroU32;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use fluxcapacitor::{SteeringFilter, XdpAttach, XdpMode, XdpProgram};
use xdpilone::{IfInfo, Socket, SocketConfig, Umem, UmemConfig};

const FRAMES: u32 = 4096;
const FRAME_SIZE: u32 = 4096;
const RING: u32 = 2048;
const BATCH: u32 = 64;

fn arg(name: &str) -> Option<String> {
    let mut it = std::env::args();
    while let Some(a) = it.next() {
        if a == name {
            return it.next();
        }
    }
    None
}

fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn main() {
    let iface = arg("--iface").expect("--iface IF");
    let queue: u32 = arg("--queue").map_or(0, |q| q.parse().expect("--queue N"));
    let secs: f64 = arg("--duration").map_or(5.0, |d| d.parse().expect("--duration S"));
    if let Some(cpu) = arg("--pin") {
        fluxcapacitor::system::pin_current_thread(cpu.parse().expect("--pin CPU")).expect("pin");
    }

    // The packet memory, page aligned, locked by the kernel at registration.
    let len = (FRAMES * FRAME_SIZE) as usize;
    // SAFETY: a fresh anonymous mapping; it lives until the process ends.
    let area = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    assert!(area != libc::MAP_FAILED, "mmap");
    let area = NonNull::slice_from_raw_parts(NonNull::new(area.cast::<u8>()).unwrap(), len);
    let config = UmemConfig {
        fill_size: RING,
        complete_size: RING,
        frame_size: FRAME_SIZE,
        headroom: 0,
        flags: 0,
    };
    // SAFETY: the mapping is page aligned and outlives the UMEM.
    let umem = unsafe { Umem::new(config, area) }.expect("umem");
    let name = CString::new(iface.clone()).unwrap();
    let mut info = IfInfo::invalid();
    info.from_name(&name).expect("interface");
    info.set_queue(queue);
    let sock = Socket::with_shared(&info, &umem).expect("socket");
    let mut device = umem.fq_cq(&sock).expect("fill/completion");
    let user = umem
        .rx_tx(
            &sock,
            &SocketConfig {
                rx_size: NonZeroU32::new(RING),
                tx_size: None,
                bind_flags: SocketConfig::XDP_BIND_NEED_WAKEUP,
            },
        )
        .expect("rx ring");
    let mut rx = user.map_rx().expect("map rx");
    umem.bind(&user).expect("bind");

    // The same program as fluxcapacitor's examples, registered with this socket.
    let queues = std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| d.count() as u32)
        .unwrap_or(1);
    let mut program = XdpProgram::load(
        &iface,
        info.ifindex(),
        queues,
        false,
        &SteeringFilter::default(),
        false,
    )
    .expect("load");
    program
        .attach(XdpMode::Native, XdpAttach::Link, false)
        .expect("attach");
    // SAFETY: the socket fd stays open as long as `rx` lives (to the end of main).
    let fd = unsafe { BorrowedFd::borrow_raw(rx.as_raw_fd()) };
    program.register(queue, fd).expect("register");

    {
        let mut fill = device.fill(RING);
        fill.insert((0..RING as u64).map(|i| i * FRAME_SIZE as u64));
        fill.commit();
    }
    println!("attached {iface}:{queue} (xdpilone)");
    let mask = !(FRAME_SIZE as u64 - 1);
    let mut addrs = [0u64; BATCH as usize];
    let mut pkts = 0u64;
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut turns = 0u32;
    loop {
        let mut n = 0;
        {
            let mut r = rx.receive(BATCH);
            while let Some(d) = r.read() {
                addrs[n] = d.addr & mask;
                n += 1;
            }
            r.release();
        }
        if n > 0 {
            pkts += n as u64;
            let mut fill = device.fill(n as u32);
            fill.insert(addrs[..n].iter().copied());
            fill.commit();
        }
        if device.needs_wakeup() {
            device.wake();
        }
        turns = turns.wrapping_add(1);
        if turns % 1024 == 0 && Instant::now() >= end {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    println!(
        "RESULT name=xdpilone_rxdrop pkts={pkts} secs={secs:.3} pps={:.0} cpu_secs={cpu:.3} cpu_ns_per_pkt={:.1}",
        pkts as f64 / secs,
        if pkts > 0 { cpu * 1e9 / pkts as f64 } else { 0.0 }
    );
}
