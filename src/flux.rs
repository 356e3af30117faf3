//! `Flux`: one bound AF_XDP socket with its UMEM, rings, frame pool and program.

use std::fmt;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use crate::device::{Device, XskStats};
#[cfg(target_os = "linux")]
use crate::error::ConfigError;
use crate::error::{Error, Result, Stage};
use crate::ring::Rings;
#[cfg(target_os = "linux")]
use crate::sys;
use crate::umem::{FrameCounts, FramePool, RingTotals, Umem};
use crate::watch::DeviceStatus;
#[cfg(target_os = "linux")]
use crate::xdp::XdpProgram;
use crate::xdp::{AttachedMode, ProgramCounters};

/// What a socket is attached to: its program, a user's map, the device watch.
#[cfg(target_os = "linux")]
pub(crate) struct Attached {
    pub report: SetupReport,
    pub program: Option<Arc<XdpProgram>>,
    pub user_map: Option<XskMapTarget>,
    pub watch: Option<crate::watch::Registration>,
}

/// A user-owned XSKMAP to register a socket in (the `load_xdp(false)` path).
#[derive(Debug)]
#[cfg(target_os = "linux")]
pub struct XskMapTarget {
    pub(crate) map: OwnedFd,
    pub(crate) key: u32,
}

#[cfg(target_os = "linux")]
impl XskMapTarget {
    /// Puts the socket `xsk` at this target's key.
    pub(crate) fn insert(&self, xsk: std::os::fd::BorrowedFd<'_>) -> Result<()> {
        insert_into(self.map.as_fd(), self.key, xsk)
    }
}

/// Puts the socket `xsk` at `key` of the XSKMAP `map`.
#[cfg(target_os = "linux")]
fn insert_into(
    map: std::os::fd::BorrowedFd<'_>,
    key: u32,
    xsk: std::os::fd::BorrowedFd<'_>,
) -> Result<()> {
    sys::map_update_fd(map, key, xsk).map_err(|e| Error::kernel(Stage::MapUpdate, e))
}

/// What set-up did and why: the XDP mode used, zero-copy or not, and the reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    /// Interface name.
    pub ifname: String,
    /// Interface index.
    pub ifindex: u32,
    /// Bound queue.
    pub queue: u32,
    /// Active rx queues of the interface.
    pub rx_queues: u32,
    /// Active tx queues of the interface.
    pub tx_queues: u32,
    /// Mode of the attached program (`None` with `load_xdp(false)`).
    pub xdp_mode: Option<AttachedMode>,
    /// Attached through a `bpf_link` (detaches when the process dies).
    pub link: bool,
    /// Why this XDP mode.
    pub attach_reason: String,
    /// The socket runs in zero-copy mode (`XDP_OPTIONS`).
    pub zero_copy: bool,
    /// Why zero-copy is on or off.
    pub zero_copy_reason: String,
    /// `XDP_USE_NEED_WAKEUP` in use.
    pub need_wakeup: bool,
    /// UMEM on huge pages.
    pub huge_pages: bool,
    /// Frame size.
    pub frame_size: u32,
    /// Frames in the UMEM.
    pub frame_count: u32,
    /// User headroom.
    pub headroom: u32,
    /// Multi-buffer (`XDP_USE_SG`).
    pub multi_buffer: bool,
    /// What multi-buffer does on this device (the driver's `rx-sg`, the zero-copy
    /// fragment limit), or why it is off.
    pub multi_buffer_reason: String,
    /// Copy-mode TX descriptors per kick in effect (32 unless raised and supported).
    pub tx_budget: u32,
    /// This socket shares another socket's UMEM.
    pub shared_umem: bool,
    /// The XSKMAP key the socket is registered at.
    pub xskmap_key: u32,
    /// What the device offers, as probed before binding (`None` for a simulated
    /// device). `XdpMode::Auto` and `BindMode::Auto` decided from it, and the
    /// reasons above cite it.
    pub features: Option<crate::features::DeviceFeatures>,
    /// Packets carry RX metadata ([`FluxBuilder::rx_metadata`](crate::FluxBuilder::rx_metadata)).
    pub rx_metadata: bool,
    /// The UMEM carries TX metadata ([`FluxBuilder::tx_metadata`](crate::FluxBuilder::tx_metadata)).
    pub tx_metadata: bool,
}

impl fmt::Display for SetupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = self
            .xdp_mode
            .map(|m| m.to_string())
            .unwrap_or_else(|| "none".into());
        write!(
            f,
            "attached {}:{} (ifindex {}, {} rx queue(s)) xdp={} link={} [{}]; {} [{}]; {} frames x {} B, headroom {}{}{}{}{}{}",
            self.ifname,
            self.queue,
            self.ifindex,
            self.rx_queues,
            mode,
            self.link,
            self.attach_reason,
            if self.zero_copy { "zero-copy" } else { "copy" },
            self.zero_copy_reason,
            self.frame_count,
            self.frame_size,
            self.headroom,
            if self.need_wakeup { ", need_wakeup" } else { "" },
            if self.huge_pages { ", huge pages" } else { "" },
            if self.multi_buffer {
                format!("; {}", self.multi_buffer_reason)
            } else {
                String::new()
            },
            if self.rx_metadata { ", rx metadata" } else { "" },
            if self.tx_metadata { ", tx metadata" } else { "" },
        )
    }
}

/// One AF_XDP socket bound to one queue, ready to move packets.
///
/// Drop order: the program detaches (if this `Flux` holds the last reference), the
/// rings are unmapped, the socket closes (the kernel then takes it out of every XSKMAP
/// it was in), and finally the UMEM is freed once no frame or handle refers to it.
pub struct Flux {
    /// The device watch: dropped first, so that it never sees our own teardown.
    #[cfg(target_os = "linux")]
    pub(crate) watch: Option<crate::watch::Registration>,
    #[cfg(target_os = "linux")]
    program: Option<Arc<XdpProgram>>,
    /// Kept so the map outlives the registration; the kernel removes a socket from
    /// every XSKMAP it is in when the socket closes, so nothing is undone by hand.
    #[cfg(target_os = "linux")]
    #[allow(dead_code)]
    user_map: Option<XskMapTarget>,
    pub(crate) rings: Rings,
    pub(crate) device: Device,
    pub(crate) pool: Arc<FramePool>,
    pub(crate) umem: Arc<Umem>,
    report: SetupReport,
    pub(crate) tx_lost: u64,
}

impl fmt::Debug for Flux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flux")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Flux {
    /// A bound socket and what it is attached to (the builder's last step).
    #[cfg(target_os = "linux")]
    pub(crate) fn new(
        socket: (Device, Rings, Arc<Umem>, Arc<FramePool>),
        attached: Attached,
    ) -> Flux {
        let (device, rings, umem, pool) = socket;
        Flux {
            watch: attached.watch,
            program: attached.program,
            user_map: attached.user_map,
            rings,
            device,
            pool,
            umem,
            report: attached.report,
            tx_lost: 0,
        }
    }

    /// What set-up did and why.
    pub fn report(&self) -> &SetupReport {
        &self.report
    }
    /// The socket.
    pub fn device(&self) -> &Device {
        &self.device
    }
    /// The UMEM.
    pub fn umem(&self) -> &Arc<Umem> {
        &self.umem
    }
    /// A Flux over a simulated device's rings.
    #[cfg(feature = "sim")]
    pub(crate) fn new_sim(
        report: SetupReport,
        device: Device,
        rings: Rings,
        umem: Arc<Umem>,
        pool: Arc<FramePool>,
    ) -> Flux {
        Flux {
            #[cfg(target_os = "linux")]
            program: None,
            #[cfg(target_os = "linux")]
            user_map: None,
            rings,
            device,
            pool,
            umem,
            report,
            tx_lost: 0,
            #[cfg(target_os = "linux")]
            watch: None,
        }
    }

    /// The device under the socket, as the watch last saw it: one atomic load, cheap
    /// enough to ask between batches in raw mode.
    pub fn device_status(&self) -> DeviceStatus {
        #[cfg(target_os = "linux")]
        if let Some(w) = &self.watch {
            return w.watch().status();
        }
        DeviceStatus::Unwatched
    }

    /// Looks at the device now (one `RTM_GETLINK`), from the calling thread.
    pub fn check_device_now(&self) -> DeviceStatus {
        #[cfg(target_os = "linux")]
        if let Some(w) = &self.watch {
            return w.check_now();
        }
        DeviceStatus::Unwatched
    }

    /// `Err(`[`Error::Device`]`)` once the device failed under the socket (see
    /// [`crate::watch`]); one atomic load.
    ///
    /// # Errors
    /// [`Error::Device`] naming the interface and the event.
    #[inline]
    pub fn check_device(&self) -> Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(w) = &self.watch {
            return w.watch().check();
        }
        Ok(())
    }

    /// Times the link went down and came back while the socket waited
    /// ([`LinkDown::Wait`](crate::LinkDown::Wait)).
    pub fn link_flaps(&self) -> u64 {
        #[cfg(target_os = "linux")]
        if let Some(w) = &self.watch {
            return w.watch().flaps();
        }
        0
    }

    /// The watch, for the modes built on this socket.
    #[cfg(target_os = "linux")]
    #[cfg_attr(not(any(feature = "engine", feature = "system")), allow(dead_code))]
    pub(crate) fn watch(&self) -> Option<&Arc<crate::watch::Watch>> {
        self.watch.as_ref().map(|r| r.watch())
    }

    /// The attached program, to register more sockets (other queues) with
    /// [`FluxBuilder::program`](crate::FluxBuilder::program).
    #[cfg(target_os = "linux")]
    pub fn program(&self) -> Option<&Arc<XdpProgram>> {
        self.program.as_ref()
    }
    /// Kernel statistics of this socket.
    pub fn statistics(&self) -> Result<XskStats> {
        self.device
            .statistics()
            .map_err(|e| Error::kernel(Stage::Query, e))
    }
    /// The embedded program's counters for this queue (`None` without a program).
    pub fn program_counters(&self) -> Result<Option<ProgramCounters>> {
        #[cfg(not(target_os = "linux"))]
        return Ok(None);
        #[cfg(target_os = "linux")]
        match &self.program {
            Some(p) => p.counters(self.report.queue).map(Some),
            None => Ok(None),
        }
    }

    /// The kernel socket (absent on a simulated device).
    #[cfg(target_os = "linux")]
    fn socket(&self) -> Result<std::os::fd::BorrowedFd<'_>> {
        self.device.socket().ok_or_else(|| {
            ConfigError::Conflict("a simulated device has no kernel socket to register").into()
        })
    }

    /// Registers this socket at `key` in a user-owned XSKMAP.
    #[cfg(target_os = "linux")]
    pub fn register_into(&self, map: impl AsFd, key: u32) -> Result<()> {
        insert_into(map.as_fd(), key, self.socket()?)
    }

    /// Takes this socket out of the program's XSKMAP (traffic goes to the kernel),
    /// or puts it back with `on = true`.
    #[cfg(target_os = "linux")]
    pub fn set_registered(&self, on: bool) -> Result<()> {
        if let Some(p) = &self.program {
            if on {
                p.register(self.report.xskmap_key, self.socket()?)?;
            } else {
                p.unregister(self.report.xskmap_key)?;
            }
        }
        Ok(())
    }

    /// Puts this socket at XSKMAP key `key` of its program, replacing whatever socket
    /// was there: traffic for that key moves to this socket at once (for example from
    /// another socket sharing the UMEM on the same queue).
    #[cfg(target_os = "linux")]
    pub fn register_at(&mut self, key: u32) -> Result<()> {
        match &self.program {
            Some(p) => {
                p.register(key, self.socket()?)?;
                self.report.xskmap_key = key;
                Ok(())
            }
            None => {
                Err(ConfigError::Conflict("this socket has no program (load_xdp(false))").into())
            }
        }
    }

    /// The census of a group of sockets sharing one UMEM (the owner first): frames
    /// one socket put on FILL may come back on another's RX when they share a queue.
    pub fn group_frame_counts(group: &mut [&mut Flux]) -> FrameCounts {
        let mut total = 0;
        let mut free = 0;
        let mut rings = RingTotals::default();
        for f in group.iter_mut() {
            total += f.pool.total();
            free += f.pool.len();
            rings += f.ring_totals();
        }
        FrameCounts::of(total, free, rings)
    }

    /// Where every frame is right now. Frames the application holds are what is not
    /// anywhere else; at rest (nothing held) `user` must be 0.
    pub fn frame_counts(&mut self) -> FrameCounts {
        let rings = self.ring_totals();
        FrameCounts::of(self.pool.total(), self.pool.len(), rings)
    }

    /// What went through this socket's rings (frames behind invalid TX descriptors
    /// that raw-mode users reported as swallowed included).
    pub(crate) fn ring_totals(&mut self) -> RingTotals {
        RingTotals::of(&mut self.rings, self.tx_lost)
    }

    /// Direct access to the rings, the frame pool and the UMEM (the `raw` feature).
    #[cfg(feature = "raw")]
    pub fn raw(&mut self) -> crate::raw::RawParts<'_> {
        crate::raw::RawParts {
            fill: self.rings.fill.as_mut(),
            completion: self.rings.completion.as_mut(),
            rx: self.rings.rx.as_mut(),
            tx: self.rings.tx.as_mut(),
            pool: &self.pool,
            umem: &self.umem,
            device: &self.device,
            tx_lost: &mut self.tx_lost,
        }
    }
}
