//! `FluxBuilder`: every setting validated before any system call, then the whole
//! set-up in order: UMEM, socket, rings, bind, program, registration, FILL.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::device::{Device, KernelSocket};
use crate::error::{ConfigError, Error, Result, Stage};
use crate::flux::{Attached, Flux, SetupReport, XskMapTarget};
use crate::socket::{self, BindMode, BindParams, RingSizes};
use crate::sys;
use crate::umem::{FramePool, Umem, UmemConfig};
use crate::watch::{self, LinkDown, WatchParams};
use crate::xdp::{
    SteeringFilter, XdpAttach, XdpMode, XdpProgram, MAX_FILTER_PORTS, MAX_NEIGHBOUR_ADDRS,
};

/// Smallest frame (chunk) the kernel accepts.
pub const MIN_FRAME_SIZE: u32 = 2048;
/// Room a frame must keep for a full 1500-byte-MTU Ethernet frame.
pub const MIN_PACKET_ROOM: u32 = 1514;
/// Largest ring the builder accepts (entries).
pub const MAX_RING_SIZE: u32 = 1 << 20;

/// Builds a [`Flux`]: one AF_XDP socket bound to one queue of one interface, with its
/// UMEM, rings and (by default) the embedded XDP program attached.
///
/// ```no_run
/// use fluxcapacitor::{FluxBuilder, XdpMode, BindMode};
/// # fn main() -> Result<(), fluxcapacitor::Error> {
/// let flux = FluxBuilder::new("veth0")
///     .queue(0)
///     .frame_count(4096)
///     .frame_size(2048)
///     .ring_size(1024)
///     .headroom(0)
///     .bind_mode(BindMode::Auto)
///     .xdp_mode(XdpMode::Auto)
///     .load_xdp(true)
///     .build()?;
/// println!("{}", flux.report());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FluxBuilder {
    pub(crate) ifname: String,
    pub(crate) queue: u32,
    pub(crate) umem: UmemConfig,
    pub(crate) rings: RingSizes,
    pub(crate) bind_mode: BindMode,
    pub(crate) xdp_mode: XdpMode,
    pub(crate) load_xdp: bool,
    pub(crate) need_wakeup: bool,
    pub(crate) multi_buffer: bool,
    pub(crate) filter: SteeringFilter,
    pub(crate) user_map: Option<XskMapTarget>,
    pub(crate) program: Option<Arc<XdpProgram>>,
    pub(crate) busy_retry: Duration,
    pub(crate) prefill: bool,
    pub(crate) drop_every_other: bool,
    pub(crate) shared: Option<SharedUmem>,
    pub(crate) tx_budget: Option<u32>,
    pub(crate) xskmap_key: Option<u32>,
    pub(crate) xdp_attach: XdpAttach,
    pub(crate) replace_program: bool,
    pub(crate) watch: bool,
    pub(crate) link_down: LinkDown,
    pub(crate) drop_oversize: bool,
    /// Settings given explicitly (a sharer must not set what the owner decides).
    pub(crate) explicit: Explicit,
}

/// Which UMEM-level settings the caller set explicitly.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Explicit {
    pub geometry: bool,
    pub bind_mode: bool,
    pub fill_ring: bool,
}

/// The UMEM and socket of another [`Flux`] to share (`XDP_SHARED_UMEM`).
#[derive(Debug, Clone)]
pub(crate) struct SharedUmem {
    pub umem: Arc<Umem>,
    /// The owner's device (kept alive while the sharer binds to its socket).
    pub device: crate::device::Device,
    pub ifindex: u32,
    pub queue: u32,
    pub program: Option<Arc<XdpProgram>>,
}

impl FluxBuilder {
    /// Starts a builder for interface `ifname`, queue 0, 4096 frames of 4096 bytes,
    /// 2048-entry rings, bind mode Auto, XDP mode Auto, need_wakeup on, program loaded.
    pub fn new(ifname: impl Into<String>) -> Self {
        FluxBuilder {
            ifname: ifname.into(),
            queue: 0,
            umem: UmemConfig::default(),
            rings: RingSizes::default(),
            bind_mode: BindMode::Auto,
            xdp_mode: XdpMode::Auto,
            load_xdp: true,
            need_wakeup: true,
            multi_buffer: false,
            filter: SteeringFilter::default(),
            user_map: None,
            program: None,
            busy_retry: Duration::from_millis(250),
            prefill: true,
            drop_every_other: false,
            shared: None,
            tx_budget: None,
            xskmap_key: None,
            xdp_attach: XdpAttach::Link,
            replace_program: false,
            watch: true,
            link_down: LinkDown::Fail,
            drop_oversize: false,
            explicit: Explicit::default(),
        }
    }

    /// The queue to bind to.
    pub fn queue(mut self, q: u32) -> Self {
        self.queue = q;
        self
    }
    /// Frames in the UMEM.
    pub fn frame_count(mut self, n: u32) -> Self {
        self.explicit.geometry = true;
        self.umem.frame_count = n;
        self
    }
    /// Bytes per frame: 2048..=page size; a power of two unless unaligned.
    pub fn frame_size(mut self, n: u32) -> Self {
        self.explicit.geometry = true;
        self.umem.frame_size = n;
        self
    }
    /// Extra headroom before received packets (beyond the kernel's 256 bytes).
    pub fn headroom(mut self, n: u32) -> Self {
        self.explicit.geometry = true;
        self.umem.headroom = n;
        self
    }
    /// Unaligned chunk mode: any frame size in range, `base + offset << 48` addresses.
    pub fn unaligned_chunks(mut self, on: bool) -> Self {
        self.explicit.geometry = true;
        self.umem.unaligned = on;
        self
    }
    /// Back the UMEM with huge pages when available (normal pages otherwise; the
    /// report says which).
    pub fn huge_pages(mut self, on: bool) -> Self {
        self.umem.huge_pages = on;
        self
    }
    /// Sets all four ring sizes.
    pub fn ring_size(mut self, n: u32) -> Self {
        self.rings = RingSizes {
            fill: n,
            completion: n,
            rx: n,
            tx: n,
        };
        self
    }
    /// Sets each ring's size; 0 for RX or TX leaves that ring out.
    pub fn ring_sizes(mut self, sizes: RingSizes) -> Self {
        self.explicit.fill_ring = sizes.fill > 0 || sizes.completion > 0;
        self.rings = sizes;
        self
    }
    /// Copy, zero-copy, or let the kernel choose.
    pub fn bind_mode(mut self, m: BindMode) -> Self {
        self.explicit.bind_mode = true;
        self.bind_mode = m;
        self
    }
    /// Native, generic, or native-else-generic.
    pub fn xdp_mode(mut self, m: XdpMode) -> Self {
        self.xdp_mode = m;
        self
    }
    /// Load and attach the embedded program (default). With `false`, register the
    /// socket into your own XSKMAP with [`register_into`](Self::register_into), or
    /// later with [`Flux::register_into`].
    pub fn load_xdp(mut self, on: bool) -> Self {
        self.load_xdp = on;
        self
    }
    /// Use `XDP_USE_NEED_WAKEUP` (default on): the kernel says when it needs a
    /// syscall, so a busy socket makes none.
    pub fn need_wakeup(mut self, on: bool) -> Self {
        self.need_wakeup = on;
        self
    }
    /// Multi-buffer (`XDP_USE_SG`): packets larger than a frame span several.
    pub fn multi_buffer(mut self, on: bool) -> Self {
        self.multi_buffer = on;
        self
    }
    /// Steering rules for the embedded program: only matching packets reach the
    /// socket; the rest go to the kernel stack.
    pub fn filter(mut self, f: SteeringFilter) -> Self {
        self.filter = f;
        self
    }
    /// With `load_xdp(false)`: register the socket at `key` in the XSKMAP `map`
    /// (any fd of a BPF XSKMAP, e.g. from `libbpf_rs::MapCore::as_fd`).
    pub fn register_into(mut self, map: impl AsFd, key: u32) -> Result<Self> {
        let fd: OwnedFd = map
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::kernel(Stage::MapUpdate, e))?;
        self.user_map = Some(XskMapTarget { map: fd, key });
        Ok(self)
    }
    /// Register into a program another [`Flux`] already attached to this interface
    /// (several queues, one program). See [`Flux::program`].
    pub fn program(mut self, p: Arc<XdpProgram>) -> Self {
        self.program = Some(p);
        self
    }
    /// How long to retry `EBUSY` at bind (the kernel releases a closed socket's queue
    /// in the background). Default 250 ms.
    pub fn busy_retry(mut self, d: Duration) -> Self {
        self.busy_retry = d;
        self
    }
    /// Put frames on FILL at set-up (default). Raw-mode users who manage FILL turn it off.
    pub fn prefill(mut self, on: bool) -> Self {
        self.prefill = on;
        self
    }
    /// Share the UMEM of `owner` (`XDP_SHARED_UMEM`): the frames of one region serve
    /// both sockets, so a frame received on one can be sent on the other without a
    /// copy. On the same interface and queue as the owner this socket has no FILL or
    /// COMPLETION ring of its own (it uses the owner's); elsewhere it gets its own.
    /// The new socket's [`Flux`] starts with no frames of its own: the owner's pool
    /// holds them all. Frame size, count, headroom and chunk mode come from the owner.
    pub fn shared_umem(mut self, owner: &Flux) -> Self {
        self.shared = Some(SharedUmem {
            umem: owner.umem().clone(),
            device: owner.device().clone(),
            ifindex: owner.report().ifindex,
            queue: owner.report().queue,
            program: owner.program().cloned(),
        });
        self
    }
    /// Register the socket at this XSKMAP key instead of its queue id (with a
    /// [`SteeringFilter::split_by_port`] filter: `queue + i * queues` receives
    /// `dst_ports[i]`).
    pub fn xskmap_key(mut self, key: u32) -> Self {
        self.xskmap_key = Some(key);
        self
    }
    /// Copy-mode TX descriptors the kernel handles per kick (`XDP_MAX_TX_SKB_BUDGET`,
    /// kernel ≥ 6.17, 32..=TX ring size; default 32). Older kernels keep 32 and the
    /// report says so.
    pub fn tx_budget(mut self, n: u32) -> Self {
        self.tx_budget = Some(n);
        self
    }
    /// Attach the embedded program with a `bpf_link` (default) or by netlink.
    pub fn xdp_attach(mut self, how: XdpAttach) -> Self {
        self.xdp_attach = how;
        self
    }
    /// Replace an XDP program already on the interface (another tool's, or ours left
    /// by a crashed netlink-mode run) instead of failing with
    /// [`Error::ProgramAlreadyAttached`]. Off by default: taking over an interface is
    /// never done silently.
    pub fn replace_program(mut self, on: bool) -> Self {
        self.replace_program = on;
        self
    }
    /// Watch the device while the socket lives (default on): deletion, a move to
    /// another namespace, link down, our program detached or replaced, an MTU or
    /// queue count that no longer fits end every receive and send with
    /// [`Error::Device`] within a fraction of a second (see [`crate::watch`]).
    pub fn watch_device(mut self, on: bool) -> Self {
        self.watch = on;
        self
    }
    /// What the socket does when its link goes down (default [`LinkDown::Fail`]).
    pub fn link_down(mut self, policy: LinkDown) -> Self {
        self.link_down = policy;
        self
    }
    /// Accept an interface whose MTU admits packets larger than a frame holds, without
    /// multi-buffer: the kernel drops those packets (counted in
    /// [`XskStats::rx_dropped`](crate::XskStats::rx_dropped)). Off by default: the
    /// build fails with [`ConfigError::MtuTooLarge`], and the device watch fails the
    /// socket when the MTU grows past a frame later.
    pub fn drop_oversize(mut self, on: bool) -> Self {
        self.drop_oversize = on;
        self
    }
    /// Test hook of the embedded program: drop every other packet before redirecting.
    #[doc(hidden)]
    pub fn drop_every_other(mut self, on: bool) -> Self {
        self.drop_every_other = on;
        self
    }

    /// Checks every setting that can be checked without the kernel.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        let name = &self.ifname;
        if name.is_empty()
            || name.len() >= libc::IFNAMSIZ
            || name.contains('\0')
            || name.contains('/')
        {
            return Err(ConfigError::InterfaceName(name.clone()));
        }
        let sharer = self.shared.is_some();
        for (ring, size, optional) in [
            ("FILL", self.rings.fill, sharer),
            ("COMPLETION", self.rings.completion, sharer),
            ("RX", self.rings.rx, true),
            ("TX", self.rings.tx, true),
        ] {
            let ok = (optional && size == 0) || (size.is_power_of_two() && size <= MAX_RING_SIZE);
            if !ok {
                return Err(ConfigError::RingSize { ring, size });
            }
        }
        if self.rings.rx == 0 && self.rings.tx == 0 {
            return Err(ConfigError::Conflict(
                "at least one of the RX and TX rings is needed",
            ));
        }
        let page = sys::page_size() as u32;
        let fs = self.umem.frame_size;
        if fs < MIN_FRAME_SIZE || fs > page || (!self.umem.unaligned && !fs.is_power_of_two()) {
            return Err(ConfigError::FrameSize {
                size: fs,
                min: MIN_FRAME_SIZE,
                max: page,
            });
        }
        let max_frames = ((1u64 << 32) / fs as u64).min(u32::MAX as u64) as u32;
        if self.umem.frame_count == 0 || self.umem.frame_count > max_frames {
            return Err(ConfigError::FrameCount {
                count: self.umem.frame_count,
                max: max_frames,
            });
        }
        let max_headroom = fs - sys::XDP_PACKET_HEADROOM - MIN_PACKET_ROOM;
        if self.umem.headroom > max_headroom {
            return Err(ConfigError::Headroom {
                headroom: self.umem.headroom,
                max: max_headroom,
                frame_size: fs,
            });
        }
        if let Some(b) = self.tx_budget {
            if self.rings.tx == 0 || b < 32 || b > self.rings.tx {
                return Err(ConfigError::Conflict(
                    "tx_budget must be 32..=TX ring size, with a TX ring",
                ));
            }
        }
        if self.shared.is_some() {
            if self.multi_buffer {
                return Err(ConfigError::SharedUmem(
                    "multi-buffer is chosen by the UMEM owner; set it there",
                ));
            }
            if self.explicit.bind_mode && self.bind_mode != BindMode::Auto {
                return Err(ConfigError::SharedUmem(
                    "a socket sharing a UMEM binds with XDP_SHARED_UMEM only; its copy/zero-copy mode is the owner's",
                ));
            }
            let owner = self.shared.as_ref().map(|s| *s.umem.config());
            let mine = self.umem;
            let differs = owner.is_some_and(|o| {
                o.frame_size != mine.frame_size
                    || o.frame_count != mine.frame_count
                    || o.headroom != mine.headroom
                    || o.unaligned != mine.unaligned
            });
            if self.explicit.geometry && differs {
                return Err(ConfigError::SharedUmem(
                    "frame size, count, headroom and chunk mode belong to the UMEM owner (these differ from its own)",
                ));
            }
        }
        if self.filter.dst_ports.len() > MAX_FILTER_PORTS {
            return Err(ConfigError::Conflict(
                "the steering filter takes at most 8 ports",
            ));
        }
        let nd = &self.filter.neighbours;
        if nd.ipv4.len() > MAX_NEIGHBOUR_ADDRS || nd.ipv6.len() > MAX_NEIGHBOUR_ADDRS {
            return Err(ConfigError::Conflict(
                "the neighbour responder takes at most 4 addresses of each family",
            ));
        }
        if !self.load_xdp && !nd.is_empty() {
            return Err(ConfigError::Conflict(
                "the neighbour responder is part of the embedded program (load_xdp(true))",
            ));
        }
        if !self.load_xdp && (!self.filter.is_empty() || self.drop_every_other) {
            return Err(ConfigError::Conflict(
                "steering rules need the embedded program (load_xdp(true))",
            ));
        }
        if self.load_xdp && self.user_map.is_some() {
            return Err(ConfigError::Conflict(
                "register_into() is for load_xdp(false)",
            ));
        }
        if self.program.is_some() && !self.load_xdp {
            return Err(ConfigError::Conflict(
                "program() registers into the embedded program; keep load_xdp(true)",
            ));
        }
        Ok(())
    }

    /// Validates, then sets everything up. On error nothing is left behind.
    ///
    /// # Errors
    /// [`Error::Config`] for settings (before any system call);
    /// [`Error::InterfaceNotFound`]; [`Error::Permission`] without CAP_NET_RAW /
    /// CAP_BPF / CAP_NET_ADMIN; [`Error::MemlockLimit`]; [`Error::QueueBusy`];
    /// [`Error::ZeroCopyUnsupported`]; [`Error::NativeUnsupported`];
    /// [`Error::ProgramAlreadyAttached`]; otherwise [`Error::Kernel`] naming the stage.
    pub fn build(mut self) -> Result<Flux> {
        self.validate()?;
        let ifindex = sys::if_nametoindex(&self.ifname)
            .map_err(|e| Error::kernel(Stage::Lookup, e))?
            .ok_or_else(|| Error::InterfaceNotFound(self.ifname.clone()))?;
        // A sharer on the owner's interface registers into the owner's program.
        if self.program.is_none() && self.load_xdp {
            if let Some(s) = &self.shared {
                if s.ifindex == ifindex {
                    self.program = s.program.clone();
                }
            }
        }
        let (rxq, txq) = queue_counts(&self.ifname);
        if self.queue >= rxq {
            return Err(ConfigError::QueueOutOfRange {
                ifname: self.ifname.clone(),
                queue: self.queue,
                count: rxq,
            }
            .into());
        }
        if self.load_xdp && self.program.is_none() && !self.replace_program {
            // Refuse early, before any memory or socket is set up.
            if let Some(e) = crate::xdp::existing_program(&self.ifname, ifindex) {
                return Err(e);
            }
        }
        let max_packet = self.umem_max_packet();
        if !self.multi_buffer && !self.drop_oversize {
            if let Some(mtu) = sys::netlink::link_mtu(ifindex).ok().flatten() {
                if mtu + 14 > max_packet {
                    return Err(ConfigError::MtuTooLarge {
                        ifname: self.ifname.clone(),
                        mtu,
                        max_packet,
                    }
                    .into());
                }
            }
        }
        let (umem, owner_fd, same_queue) = match &self.shared {
            Some(s) => (
                s.umem.clone(),
                Some(s.device.clone()),
                s.ifindex == ifindex && s.queue == self.queue,
            ),
            None => (
                Arc::new(Umem::new(self.umem).map_err(|e| Error::kernel(Stage::UmemAlloc, e))?),
                None,
                false,
            ),
        };
        if same_queue && self.explicit.fill_ring {
            return Err(ConfigError::SharedUmem(
                "a socket on the owner's interface and queue uses the owner's FILL and COMPLETION rings; give it none (RingSizes { fill: 0, completion: 0, .. })",
            )
            .into());
        }
        let mut sizes = self.rings;
        if same_queue {
            // One FILL/COMPLETION pair per (device, queue): the owner's.
            sizes.fill = 0;
            sizes.completion = 0;
        }
        let (fd, mut rings) = socket::create(&umem, owner_fd.is_none(), sizes)?;
        socket::bind(
            &fd,
            &BindParams {
                ifname: self.ifname.clone(),
                ifindex,
                queue: self.queue,
                mode: self.bind_mode,
                need_wakeup: self.need_wakeup,
                multi_buffer: self.multi_buffer,
                shared_with: owner_fd
                    .as_ref()
                    .and_then(|d| d.socket())
                    .map(|f| f.as_raw_fd()),
                busy_retry: self.busy_retry,
            },
        )?;
        let tx_budget = match self.tx_budget {
            Some(b) => {
                match sys::setsockopt(fd.as_fd(), sys::SOL_XDP, sys::XDP_MAX_TX_SKB_BUDGET, &b) {
                    Ok(()) => b,
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::ENOPROTOOPT) | Some(libc::EINVAL)
                        ) =>
                    {
                        32
                    }
                    Err(e) => return Err(Error::kernel(Stage::SocketOption, e)),
                }
            }
            None => 32,
        };
        let zero_copy = crate::device::socket_zero_copy(fd.as_fd())
            .map_err(|e| Error::kernel(Stage::Query, e))?;
        if zero_copy {
            umem.set_zero_copy();
        }

        let mut report = SetupReport {
            ifname: self.ifname.clone(),
            ifindex,
            queue: self.queue,
            rx_queues: rxq,
            tx_queues: txq,
            xdp_mode: None,
            link: false,
            attach_reason: String::new(),
            zero_copy,
            zero_copy_reason: String::new(),
            need_wakeup: self.need_wakeup,
            huge_pages: umem.huge_pages(),
            frame_size: umem.frame_size(),
            frame_count: umem.frame_count(),
            headroom: umem.headroom(),
            multi_buffer: self.multi_buffer,
            tx_budget,
            shared_umem: owner_fd.is_some(),
            xskmap_key: self.xskmap_key.unwrap_or(self.queue),
        };

        // FILL is loaded before the socket is registered anywhere, so that the first
        // packet redirected to it finds a frame.
        let pool = Arc::new(if owner_fd.is_some() {
            FramePool::empty(&umem)
        } else {
            FramePool::new(&umem)
        });
        if self.prefill {
            if let Some(fill) = rings.fill.as_mut() {
                let n = crate::driver::prefill(umem.frame_count(), self.rings);
                fill.fill_from(&pool, n);
                if self.need_wakeup && fill.needs_wakeup() {
                    let _ = sys::kick_rx(fd.as_fd());
                }
            }
        }
        let program = if let Some(p) = self.program {
            if p.ifindex() != ifindex {
                return Err(
                    ConfigError::Conflict("program() is attached to another interface").into(),
                );
            }
            report.xdp_mode = p.mode();
            report.attach_reason = "shared program".into();
            Some(p)
        } else if self.load_xdp {
            let queues = rxq.max(txq).max(self.queue + 1);
            let mut p = XdpProgram::load(
                &self.ifname,
                ifindex,
                queues,
                self.multi_buffer,
                &self.filter,
                self.drop_every_other,
            )?;
            let info = p.attach(self.xdp_mode, self.xdp_attach, self.replace_program)?;
            report.xdp_mode = Some(info.mode);
            report.link = info.link;
            report.attach_reason = info.reason;
            Some(Arc::new(p))
        } else {
            report.attach_reason = "load_xdp(false): no program loaded".into();
            None
        };
        let key = self.xskmap_key.unwrap_or(self.queue);
        if let Some(p) = &program {
            p.register(key, fd.as_fd())?;
        }
        if let Some(t) = &self.user_map {
            sys::map_update_fd(t.map.as_fd(), t.key, fd.as_fd())
                .map_err(|e| Error::kernel(Stage::MapUpdate, e))?;
        }
        report.zero_copy_reason =
            zero_copy_reason(zero_copy, self.bind_mode, report.xdp_mode, ifindex);
        let watch = if self.watch {
            Some(watch::register(WatchParams {
                ifname: self.ifname.clone(),
                ifindex,
                queue: self.queue,
                program: program.as_ref().and_then(|p| p.mode().map(|m| (p.id(), m))),
                max_packet: (!self.multi_buffer && !self.drop_oversize).then_some(max_packet),
                link_down: self.link_down,
            })?)
        } else {
            None
        };

        Ok(Flux::new(
            (Device::new(KernelSocket(fd)), rings, umem, pool),
            Attached {
                report,
                program,
                user_map: self.user_map,
                watch,
            },
        ))
    }
}

impl FluxBuilder {
    /// The largest packet one frame of this socket's UMEM holds.
    fn umem_max_packet(&self) -> u32 {
        let cfg = match &self.shared {
            Some(s) => *s.umem.config(),
            None => self.umem,
        };
        cfg.frame_size - sys::XDP_PACKET_HEADROOM - cfg.headroom
    }
}

/// Active (rx, tx) queue counts: ethtool, else sysfs, else 1.
pub(crate) fn queue_counts(ifname: &str) -> (u32, u32) {
    if let Ok(Some((rx, tx))) = sys::ethtool_channels(ifname) {
        if rx > 0 {
            return (rx, tx.max(1));
        }
    }
    let count = |prefix: &str| {
        std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .count() as u32
            })
            .unwrap_or(0)
            .max(1)
    };
    (count("rx-"), count("tx-"))
}

fn zero_copy_reason(
    on: bool,
    mode: BindMode,
    xdp: Option<crate::xdp::AttachedMode>,
    ifindex: u32,
) -> String {
    if on {
        return "zero-copy: the driver supports it".into();
    }
    if mode == BindMode::Copy {
        return "copy mode requested".into();
    }
    if xdp == Some(crate::xdp::AttachedMode::Generic) {
        return "copy mode: the program runs in generic (SKB) mode, which has no zero-copy".into();
    }
    match sys::xdp_features(ifindex) {
        Ok(f) if f & sys::NETDEV_XDP_ACT_XSK_ZEROCOPY == 0 => {
            "copy mode: the driver does not support AF_XDP zero-copy".into()
        }
        Ok(_) => "copy mode: the kernel chose copy".into(),
        Err(_) => "copy mode (the driver's XDP features could not be read)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(b: FluxBuilder) -> std::result::Result<(), ConfigError> {
        b.validate()
    }

    #[test]
    fn validation_table() {
        let page = sys::page_size() as u32;
        let ok = || FluxBuilder::new("eth0");
        assert_eq!(check(ok()), Ok(()));
        type Case = (FluxBuilder, fn(&ConfigError) -> bool);
        let table: Vec<Case> = vec![
            (FluxBuilder::new(""), |e| {
                matches!(e, ConfigError::InterfaceName(_))
            }),
            (FluxBuilder::new("a-name-that-is-too-long"), |e| {
                matches!(e, ConfigError::InterfaceName(_))
            }),
            (FluxBuilder::new("bad/name"), |e| {
                matches!(e, ConfigError::InterfaceName(_))
            }),
            (ok().ring_size(0), |e| {
                matches!(e, ConfigError::RingSize { size: 0, .. })
            }),
            (ok().ring_size(1000), |e| {
                matches!(e, ConfigError::RingSize { size: 1000, .. })
            }),
            (ok().ring_size(1 << 21), |e| {
                matches!(e, ConfigError::RingSize { .. })
            }),
            (
                ok().ring_sizes(RingSizes {
                    fill: 64,
                    completion: 64,
                    rx: 0,
                    tx: 0,
                }),
                |e| matches!(e, ConfigError::Conflict(_)),
            ),
            (
                ok().ring_sizes(RingSizes {
                    fill: 0,
                    completion: 64,
                    rx: 64,
                    tx: 64,
                }),
                |e| matches!(e, ConfigError::RingSize { ring: "FILL", .. }),
            ),
            (ok().frame_size(1024), |e| {
                matches!(e, ConfigError::FrameSize { size: 1024, .. })
            }),
            (ok().frame_size(3000), |e| {
                matches!(e, ConfigError::FrameSize { size: 3000, .. })
            }),
            (ok().frame_size(page * 2), |e| {
                matches!(e, ConfigError::FrameSize { .. })
            }),
            (ok().frame_count(0), |e| {
                matches!(e, ConfigError::FrameCount { count: 0, .. })
            }),
            (ok().frame_count(u32::MAX), |e| {
                matches!(e, ConfigError::FrameCount { .. })
            }),
            (ok().frame_size(2048).headroom(300), |e| {
                matches!(
                    e,
                    ConfigError::Headroom {
                        headroom: 300,
                        max: 278,
                        ..
                    }
                )
            }),
            (ok().tx_budget(16), |e| {
                matches!(e, ConfigError::Conflict(_))
            }),
            (ok().ring_size(64).tx_budget(128), |e| {
                matches!(e, ConfigError::Conflict(_))
            }),
            (ok().load_xdp(false).drop_every_other(true), |e| {
                matches!(e, ConfigError::Conflict(_))
            }),
            (
                ok().filter(SteeringFilter {
                    dst_ports: (1..=9).collect(),
                    ..Default::default()
                }),
                |e| matches!(e, ConfigError::Conflict(_)),
            ),
        ];
        for (i, (b, want)) in table.into_iter().enumerate() {
            match check(b) {
                Err(e) => assert!(want(&e), "case {i}: unexpected error {e}"),
                Ok(()) => panic!("case {i}: accepted"),
            }
        }
        // Valid edge cases.
        assert_eq!(check(ok().frame_size(2048).headroom(278)), Ok(()));
        assert_eq!(check(ok().frame_size(3000).unaligned_chunks(true)), Ok(()));
        assert_eq!(
            check(ok().ring_sizes(RingSizes {
                fill: 64,
                completion: 64,
                rx: 64,
                tx: 0
            })),
            Ok(())
        );
        assert_eq!(check(ok().ring_size(64).tx_budget(64)), Ok(()));
    }

    #[test]
    fn errors_name_the_field_and_rule() {
        let e = check(FluxBuilder::new("eth0").ring_size(100)).unwrap_err();
        assert!(e.to_string().contains("power of two"), "{e}");
        let e = check(FluxBuilder::new("eth0").frame_size(2048).headroom(4000)).unwrap_err();
        assert!(e.to_string().contains("headroom 4000"), "{e}");
    }
}
