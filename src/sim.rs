//! A simulated AF_XDP device: the kernel's side of the four rings and the UMEM,
//! played in process, so that engine, system and async code runs unchanged without
//! root, without a kernel, and on Windows and macOS.
//!
//! The device takes frames from FILL, writes received packets into them with the
//! kernel's layout (data at `chunk + 256 + headroom`) and publishes them on RX; it
//! consumes TX (at most the TX budget, 32 by default, per kick, as copy mode does),
//! validates each descriptor as the kernel does, and publishes COMPLETION; it keeps
//! the need-wakeup flags and counts the statistics the kernel reports
//! (`rx_dropped` and `rx_fill_ring_empty_descs` when FILL is empty, `rx_ring_full`,
//! `tx_invalid_descs`, ...). Two devices can be wired together like a veth pair; a
//! test can inject frames and read what was sent.
//!
//! Faults on demand, seeded and deterministic: drop, corrupt, reorder or delay frames
//! on the wire, and stall the device.
//!
//! ```
//! use fluxcapacitor::sim::{SimDevice, SimConfig};
//! # fn main() -> Result<(), fluxcapacitor::Error> {
//! let dev = SimDevice::new(SimConfig::default());
//! let mut flux = dev.flux()?;               // a Flux on the simulated device
//! dev.inject(&[0xab; 60]);                  // a packet arrives
//! let rx = flux.raw().rx.unwrap();
//! assert_eq!(rx.available(1), 1);
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::device::{Device, DeviceOps, Kicked, PollEvents, XskStats};
use crate::driver::prefill;
use crate::error::Result;
use crate::flux::{Flux, SetupReport};
use crate::ring::{heap_pair, Consumer, Producer, Rings};
use crate::socket::RingSizes;
use crate::sys::{XdpDesc, XDP_PACKET_HEADROOM, XDP_PKT_CONTD};
use crate::umem::{FramePool, Umem, UmemConfig};

/// Faults the device injects, each with a probability per frame (0.0 to 1.0).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Drop a frame on the wire.
    pub drop: f64,
    /// Flip one byte of a frame on the wire.
    pub corrupt: f64,
    /// Swap a frame with the next one on the wire.
    pub reorder: f64,
    /// Hold a frame back for `delay_kicks` TX kicks.
    pub delay: f64,
    /// How long a delayed frame is held, in kicks.
    pub delay_kicks: u32,
}

/// Geometry and behaviour of a simulated device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    /// UMEM geometry.
    pub umem: UmemConfig,
    /// Ring sizes.
    pub rings: RingSizes,
    /// TX descriptors handled per kick (the kernel's copy-mode default is 32).
    pub tx_budget: u32,
    /// Largest frame the device carries (its MTU plus the Ethernet header).
    pub max_frame: u32,
    /// Wire faults.
    pub faults: Faults,
    /// Seed of the fault generator.
    pub seed: u64,
    /// Put frames on FILL when the [`Flux`] is made (as the builder does).
    pub prefill: bool,
    /// Put invalid TX descriptors on COMPLETION after counting them in
    /// `tx_invalid_descs`, as Linux 6.18 does in copy mode (observed on veth);
    /// `false` swallows them as older kernels do.
    pub complete_invalid_tx: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            umem: UmemConfig {
                frame_size: 2048,
                frame_count: 4096,
                ..Default::default()
            },
            rings: RingSizes::default(),
            tx_budget: 32,
            max_frame: 1514,
            faults: Faults::default(),
            seed: 0x5eed,
            prefill: true,
            complete_invalid_tx: true,
        }
    }
}

/// The device's ends of the four rings and its counters.
struct Kernel {
    fill: Consumer<u64>,
    rx: Producer<XdpDesc>,
    tx: Consumer<XdpDesc>,
    comp: Producer<u64>,
    stats: XskStats,
    /// Frames sent while not wired to a peer, for tests to read.
    sent: VecDeque<Vec<u8>>,
    /// Frames held back by the delay fault: (kicks left, bytes).
    delayed: VecDeque<(u32, Vec<u8>)>,
    /// A frame held back by the reorder fault, sent after the next one.
    held: Option<Vec<u8>>,
    /// Fragments of a multi-descriptor TX packet being gathered.
    partial: Vec<u8>,
    stalled: bool,
    rng: u64,
    kicks: u64,
}

pub(crate) struct Shared {
    umem: Arc<Umem>,
    cfg: SimConfig,
    kernel: Mutex<Kernel>,
    /// Signalled when RX gets packets or TX room frees up.
    ready: Condvar,
    peer: Mutex<Option<std::sync::Weak<Shared>>>,
    /// Written whenever RX gets packets, so that code waiting on a descriptor
    /// (`poll()`, tokio's `AsyncFd`) wakes as it would for a socket.
    #[cfg(target_os = "linux")]
    event: std::os::fd::OwnedFd,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimShared")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// A simulated AF_XDP device. Cheap to clone (a handle).
#[derive(Clone)]
pub struct SimDevice {
    shared: Arc<Shared>,
    user: Arc<Mutex<Option<UserRings>>>,
}

struct UserRings {
    fill: Producer<u64>,
    rx: Consumer<XdpDesc>,
    tx: Producer<XdpDesc>,
    comp: Consumer<u64>,
}

impl fmt::Debug for SimDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimDevice")
            .field("cfg", &self.shared.cfg)
            .field("stats", &self.statistics())
            .finish()
    }
}

impl SimDevice {
    /// A device with its own UMEM and rings, not wired to anything.
    ///
    /// # Panics
    /// When a ring size is not a power of two or the UMEM cannot be allocated.
    pub fn new(cfg: SimConfig) -> SimDevice {
        let umem = Arc::new(Umem::new(cfg.umem).expect("UMEM for the simulated device"));
        let (ufill, kfill) = heap_pair::<u64>(cfg.rings.fill, 0);
        let (kcomp, ucomp) = heap_pair::<u64>(cfg.rings.completion, 0);
        let (krx, urx) = heap_pair::<XdpDesc>(cfg.rings.rx.max(1), 0);
        let (utx, ktx) = heap_pair::<XdpDesc>(cfg.rings.tx.max(1), 0);
        // Copy mode: TX always wants a kick.
        utx.set_needs_wakeup(true);
        let shared = Arc::new(Shared {
            umem,
            cfg,
            kernel: Mutex::new(Kernel {
                fill: kfill,
                rx: krx,
                tx: ktx,
                comp: kcomp,
                stats: XskStats::default(),
                sent: VecDeque::new(),
                delayed: VecDeque::new(),
                held: None,
                partial: Vec::new(),
                stalled: false,
                rng: cfg.seed | 1,
                kicks: 0,
            }),
            ready: Condvar::new(),
            peer: Mutex::new(None),
            #[cfg(target_os = "linux")]
            event: crate::sys::eventfd().expect("eventfd for the simulated device"),
        });
        SimDevice {
            shared,
            user: Arc::new(Mutex::new(Some(UserRings {
                fill: ufill,
                rx: urx,
                tx: utx,
                comp: ucomp,
            }))),
        }
    }

    /// Two devices wired back to back, like the two ends of a veth pair: what one
    /// sends, the other receives.
    pub fn pair(a: SimConfig, b: SimConfig) -> (SimDevice, SimDevice) {
        let (x, y) = (SimDevice::new(a), SimDevice::new(b));
        *lock(&x.shared.peer) = Some(Arc::downgrade(&y.shared));
        *lock(&y.shared.peer) = Some(Arc::downgrade(&x.shared));
        (x, y)
    }

    /// The application's side: a [`Flux`] over this device's rings and UMEM, usable
    /// with raw mode, the engine and the system handles exactly as a kernel socket.
    /// Can be taken once.
    pub fn flux(&self) -> Result<Flux> {
        let user = lock(&self.user)
            .take()
            .ok_or(crate::error::ConfigError::Conflict(
                "the simulated device's Flux was taken already",
            ))?;
        let cfg = self.shared.cfg;
        let umem = self.shared.umem.clone();
        let mut rings = Rings {
            fill: Some(user.fill),
            completion: Some(user.comp),
            rx: (cfg.rings.rx > 0).then_some(user.rx),
            tx: (cfg.rings.tx > 0).then_some(user.tx),
        };
        let pool = Arc::new(FramePool::new(&umem));
        if cfg.prefill {
            if let Some(fill) = rings.fill.as_mut() {
                let n = prefill(umem.frame_count(), cfg.rings);
                fill.fill_from(&pool, n);
            }
        }
        let report = SetupReport {
            ifname: "sim".into(),
            ifindex: 0,
            queue: 0,
            rx_queues: 1,
            tx_queues: 1,
            xdp_mode: None,
            link: false,
            attach_reason: "simulated device: no XDP program".into(),
            zero_copy: false,
            zero_copy_reason: "simulated device (copy semantics)".into(),
            need_wakeup: true,
            huge_pages: false,
            frame_size: umem.frame_size(),
            frame_count: umem.frame_count(),
            headroom: umem.headroom(),
            multi_buffer: false,
            multi_buffer_reason: "simulated device: one frame per packet".into(),
            tx_budget: cfg.tx_budget,
            shared_umem: false,
            xskmap_key: 0,
            features: None,
            rx_metadata: false,
            tx_metadata: false,
        };
        Ok(Flux::new_sim(
            report,
            Device::new(SimPort(self.shared.clone())),
            rings,
            umem,
            pool,
        ))
    }

    /// A packet arrives from the wire, as the NIC would receive it. Returns whether
    /// it was put on RX (else a statistic says why not).
    pub fn inject(&self, frame: &[u8]) -> bool {
        self.shared.receive(frame)
    }

    /// Frames the device sent while not wired to a peer, oldest first.
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        lock(&self.shared.kernel).sent.drain(..).collect()
    }

    /// How many sent frames wait to be taken with [`take_sent`](Self::take_sent).
    pub fn sent_len(&self) -> usize {
        lock(&self.shared.kernel).sent.len()
    }

    /// The kernel-side counters (`XDP_STATISTICS`).
    pub fn statistics(&self) -> XskStats {
        lock(&self.shared.kernel).stats
    }

    /// Stops (`true`) or restarts the device: while stalled it neither receives nor
    /// sends, as a driver that stopped servicing its queue.
    pub fn stall(&self, on: bool) {
        lock(&self.shared.kernel).stalled = on;
        self.shared.ready.notify_all();
    }

    /// Processes TX as a kick would (the application's `kick_tx` does this).
    pub fn kick(&self) -> bool {
        self.shared.kick()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Kernel {
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // xorshift64*: deterministic for a seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let v = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (v >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The simulated device as the other side of a socket's rings.
#[derive(Debug)]
struct SimPort(Arc<Shared>);

impl DeviceOps for SimPort {
    fn kick_tx(&self) -> std::io::Result<Kicked> {
        Ok(if self.0.kick() {
            Kicked::Ok
        } else {
            Kicked::Retry
        })
    }
    fn wake_rx(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn poll(&self, rx: bool, tx: bool, timeout: Option<Duration>) -> std::io::Result<PollEvents> {
        Ok(self.0.poll(rx, tx, timeout))
    }
    fn statistics(&self) -> std::io::Result<XskStats> {
        Ok(self.0.statistics())
    }
    fn zero_copy(&self) -> std::io::Result<bool> {
        Ok(false)
    }
    /// The readiness eventfd is never drained (it only signals progress), so it
    /// cannot stand for "RX has packets" to a level-triggered `poll(2)`.
    #[cfg(target_os = "linux")]
    fn poll_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
    #[cfg(target_os = "linux")]
    fn async_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.0.event_fd())
    }
    #[cfg(target_os = "linux")]
    fn socket(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

impl Shared {
    /// RX path: one packet from the wire into a FILL frame and onto RX.
    fn receive(&self, frame: &[u8]) -> bool {
        let mut k = lock(&self.kernel);
        if k.stalled {
            k.stats.rx_dropped += 1;
            return false;
        }
        let room = self.umem.max_data_len() as usize;
        if frame.len() > room || frame.is_empty() {
            k.stats.rx_dropped += 1;
            return false;
        }
        // The kernel checks RX room before taking a FILL frame: a full RX ring drops
        // the packet and leaves FILL alone.
        if k.rx.free(1) == 0 {
            k.stats.rx_ring_full += 1;
            return false;
        }
        let mut chunk = None;
        k.fill.consume(1, |a| chunk = Some(a));
        let Some(addr) = chunk else {
            k.stats.rx_dropped += 1;
            k.stats.rx_fill_ring_empty_descs += 1;
            return false;
        };
        let base = self.umem.chunk_of(addr);
        let data = base + XDP_PACKET_HEADROOM as u64 + self.umem.headroom() as u64;
        // The chunk came off FILL: the device (kernel role) holds it until it is
        // published on RX below.
        let buf = self.umem.owned_chunk(data);
        let off = self.umem.offset_in_chunk(data) as usize;
        if let Some(dst) = buf.get_mut(off..off + frame.len()) {
            dst.copy_from_slice(frame);
        }
        let mut r = k.rx.reserve(1);
        let _ = r.push(XdpDesc {
            addr: data,
            len: frame.len() as u32,
            options: 0,
        });
        r.commit();
        drop(k);
        self.ready.notify_all();
        #[cfg(target_os = "linux")]
        let _ = crate::sys::eventfd_signal(std::os::fd::AsFd::as_fd(&self.event));
        true
    }

    /// The readiness descriptor (see the `event` field).
    #[cfg(target_os = "linux")]
    pub(crate) fn event_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.event)
    }

    /// TX path: up to the budget from TX, validated, onto the wire, addresses onto
    /// COMPLETION. Returns false when it stopped early (COMPLETION full, stalled).
    pub(crate) fn kick(&self) -> bool {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let finished;
        {
            let mut k = lock(&self.kernel);
            k.kicks += 1;
            if k.stalled {
                return false;
            }
            // Delayed frames whose time has come.
            let mut still = VecDeque::new();
            while let Some((left, f)) = k.delayed.pop_front() {
                if left <= 1 {
                    out.push(f);
                } else {
                    still.push_back((left - 1, f));
                }
            }
            k.delayed = still;
            let mut budget = self.cfg.tx_budget.max(1);
            let mut blocked = false;
            if k.tx.available(u32::MAX) == 0 {
                // As the kernel does: a wake-up that finds TX empty is counted.
                k.stats.tx_ring_empty_descs += 1;
            }
            while budget > 0 {
                if k.comp.free(1) == 0 {
                    blocked = true;
                    break;
                }
                let mut desc = None;
                k.tx.consume(1, |d| desc = Some(d));
                let Some(d) = desc else { break };
                budget -= 1;
                if self.umem.check_tx(d.addr, d.len, d.options).is_err()
                    || d.len as usize > self.cfg.max_frame as usize
                {
                    // Consumed and counted; completed or swallowed as configured.
                    k.stats.tx_invalid_descs += 1;
                    if self.cfg.complete_invalid_tx {
                        let mut r = k.comp.reserve(1);
                        let _ = r.push(d.addr);
                        r.commit();
                    }
                    continue;
                }
                // The frame is on TX (the kernel's side) until completed below.
                let bytes = self.umem.owned_chunk(d.addr);
                let off = self.umem.offset_in_chunk(d.addr) as usize;
                let data = bytes
                    .get(off..off + d.len as usize)
                    .unwrap_or_default()
                    .to_vec();
                k.partial.extend_from_slice(&data);
                let mut r = k.comp.reserve(1);
                let _ = r.push(d.addr);
                r.commit();
                if d.options & XDP_PKT_CONTD == 0 {
                    let frame = std::mem::take(&mut k.partial);
                    self.wire(&mut k, frame, &mut out);
                }
            }
            finished = !blocked && k.tx.available(u32::MAX) == 0;
        }
        self.ready.notify_all();
        let peer = lock(&self.peer).as_ref().and_then(|w| w.upgrade());
        match peer {
            Some(p) => {
                for f in out {
                    p.receive(&f);
                }
            }
            None => lock(&self.kernel).sent.extend(out),
        }
        finished
    }

    /// Applies the wire faults to one frame on its way out.
    fn wire(&self, k: &mut Kernel, mut frame: Vec<u8>, out: &mut Vec<Vec<u8>>) {
        let f = self.cfg.faults;
        if k.chance(f.drop) {
            return;
        }
        if k.chance(f.corrupt) && !frame.is_empty() {
            let i = (k.rng as usize) % frame.len();
            frame[i] ^= 0xff;
        }
        if k.chance(f.delay) {
            k.delayed.push_back((f.delay_kicks.max(1), frame));
            return;
        }
        if let Some(h) = k.held.take() {
            out.push(frame);
            out.push(h);
            return;
        }
        if k.chance(f.reorder) {
            k.held = Some(frame);
            return;
        }
        out.push(frame);
    }

    pub(crate) fn statistics(&self) -> XskStats {
        lock(&self.kernel).stats
    }

    /// Waits for RX packets and/or TX room, like `poll()` on the socket.
    pub(crate) fn poll(&self, rx: bool, tx: bool, timeout: Option<Duration>) -> PollEvents {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut k = lock(&self.kernel);
        loop {
            // In copy mode poll() drives TX too.
            if tx && k.tx.available(u32::MAX) > 0 && !k.stalled {
                drop(k);
                self.kick();
                k = lock(&self.kernel);
            }
            let readable = rx && k.rx.pending() > 0;
            let writable = tx && k.tx.available(u32::MAX) <= k.tx.size() / 2;
            if readable || writable {
                return PollEvents {
                    readable,
                    writable,
                    error: false,
                };
            }
            let wait = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return PollEvents::default();
                    }
                    d - now
                }
                None => Duration::from_millis(50),
            };
            k = self
                .ready
                .wait_timeout(k, wait.min(Duration::from_millis(50)))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}
