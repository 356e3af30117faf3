//! The XDP socket: UMEM registration, ring sizing and mapping, bind, wake-ups,
//! statistics and options; and the four typed rings.

use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::Instant;

#[cfg(target_os = "linux")]
use crate::error::{Error, Result, Stage};
use crate::ring::Rings;
#[cfg(target_os = "linux")]
use crate::ring::{self, KernelRing};
use crate::sys::XdpStatistics;
#[cfg(target_os = "linux")]
use crate::sys::{self, XdpMmapOffsets};
#[cfg(target_os = "linux")]
use crate::umem::Umem;

/// How the socket moves packets between driver and UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Let the kernel choose: zero-copy where the driver supports it, else copy.
    /// The setup report says which one it picked and why.
    #[default]
    Auto,
    /// Always copy (`XDP_COPY`).
    Copy,
    /// Require zero-copy (`XDP_ZEROCOPY`); fails with
    /// [`Error::ZeroCopyUnsupported`] where the driver lacks it.
    ZeroCopy,
}

/// Ring sizes (entries, powers of two). An RX or TX size of 0 leaves that ring out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSizes {
    /// FILL ring.
    pub fill: u32,
    /// COMPLETION ring.
    pub completion: u32,
    /// RX ring (0: no RX).
    pub rx: u32,
    /// TX ring (0: no TX).
    pub tx: u32,
}

impl Default for RingSizes {
    fn default() -> Self {
        RingSizes {
            fill: 2048,
            completion: 2048,
            rx: 2048,
            tx: 2048,
        }
    }
}

/// Kernel counters of one socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Packets dropped for lack of FILL frames or too large for a frame.
    pub rx_dropped: u64,
    /// Invalid descriptors on FILL.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on TX (consumed, never completed).
    pub tx_invalid_descs: u64,
    /// Packets dropped because RX was full (kernel ≥ 5.9).
    pub rx_ring_full: u64,
    /// Times the kernel found FILL empty (kernel ≥ 5.9).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found TX empty when woken (kernel ≥ 5.9).
    pub tx_ring_empty_descs: u64,
}

impl From<XdpStatistics> for XskStats {
    fn from(s: XdpStatistics) -> Self {
        XskStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        }
    }
}

/// The socket, shared by the rings and handles made from it: a kernel AF_XDP socket,
/// or (with the `sim` feature) a [simulated device](crate::sim).
#[derive(Debug, Clone)]
pub struct XskFd(Arc<FdInner>);

#[derive(Debug)]
struct FdInner {
    kind: Kind,
    /// `sendto` calls made (TX kicks).
    kicks: AtomicU64,
    /// Kicks that returned EBUSY: in copy mode each is one frame the device dropped
    /// (`NET_XMIT_DROP`): completed, but never sent.
    device_drops: AtomicU64,
}

#[derive(Debug)]
enum Kind {
    #[cfg(target_os = "linux")]
    Kernel(OwnedFd),
    #[cfg(feature = "sim")]
    Sim(Arc<crate::sim::Shared>),
}

/// The descriptor to wait on: the socket, or the simulated device's readiness
/// eventfd (readable once RX gets packets).
#[cfg(target_os = "linux")]
impl AsFd for XskFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.0.kind {
            Kind::Kernel(fd) => fd.as_fd(),
            #[cfg(feature = "sim")]
            Kind::Sim(dev) => dev.event_fd(),
        }
    }
}

impl XskFd {
    fn from_kind(kind: Kind) -> XskFd {
        XskFd(Arc::new(FdInner {
            kind,
            kicks: AtomicU64::new(0),
            device_drops: AtomicU64::new(0),
        }))
    }

    #[cfg(target_os = "linux")]
    fn new(fd: OwnedFd) -> XskFd {
        Self::from_kind(Kind::Kernel(fd))
    }

    #[cfg(feature = "sim")]
    pub(crate) fn sim(dev: Arc<crate::sim::Shared>) -> XskFd {
        Self::from_kind(Kind::Sim(dev))
    }

    /// This is a simulated device, not a kernel socket.
    #[allow(irrefutable_let_patterns)]
    pub fn is_simulated(&self) -> bool {
        #[cfg(feature = "sim")]
        if let Kind::Sim(_) = &self.0.kind {
            return true;
        }
        false
    }

    /// Kicks TX: `sendto(MSG_DONTWAIT)`. Transient errors (`EAGAIN`, `EBUSY`,
    /// `ENOBUFS`, `ENETDOWN`) are reported as `Ok(false)`: call again later.
    ///
    /// In copy mode `EBUSY` means the device dropped one frame (`NET_XMIT_DROP`,
    /// e.g. a full backlog on a veth peer): the kernel completes that frame without
    /// sending it. Such drops are counted in [`XskFd::device_drops`].
    pub fn kick_tx(&self) -> io::Result<bool> {
        // Relaxed: statistics only.
        self.0.kicks.fetch_add(1, Ordering::Relaxed);
        match &self.0.kind {
            #[cfg(target_os = "linux")]
            Kind::Kernel(fd) => match sys::kick_tx(fd.as_fd()) {
                Ok(()) => Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    self.0.device_drops.fetch_add(1, Ordering::Relaxed);
                    Ok(false)
                }
                Err(e) if is_transient(&e) => Ok(false),
                Err(e) => Err(e),
            },
            #[cfg(feature = "sim")]
            Kind::Sim(dev) => Ok(dev.kick()),
        }
    }

    /// TX kicks (`sendto` calls) made through this socket.
    pub fn kicks(&self) -> u64 {
        self.0.kicks.load(Ordering::Relaxed)
    }

    /// Frames the device dropped on transmit (copy mode, `EBUSY` from a kick): they
    /// came back on COMPLETION but never left.
    pub fn device_drops(&self) -> u64 {
        self.0.device_drops.load(Ordering::Relaxed)
    }

    /// Wakes the kernel's RX side (FILL refilled while it slept): `recvfrom(MSG_DONTWAIT)`.
    pub fn wake_rx(&self) -> io::Result<()> {
        match &self.0.kind {
            #[cfg(target_os = "linux")]
            Kind::Kernel(fd) => match sys::kick_rx(fd.as_fd()) {
                Ok(()) => Ok(()),
                Err(e) if is_transient(&e) => Ok(()),
                Err(e) => Err(e),
            },
            #[cfg(feature = "sim")]
            Kind::Sim(_) => Ok(()),
        }
    }

    /// Waits for `POLLIN` (RX non-empty) and/or `POLLOUT` (TX has room).
    /// Returns the ready events; an empty result is a timeout.
    pub fn poll(&self, rx: bool, tx: bool, timeout: Option<Duration>) -> io::Result<PollEvents> {
        match &self.0.kind {
            #[cfg(target_os = "linux")]
            Kind::Kernel(fd) => {
                let mut ev = 0;
                if rx {
                    ev |= libc::POLLIN;
                }
                if tx {
                    ev |= libc::POLLOUT;
                }
                loop {
                    match sys::poll_fd(fd.as_fd(), ev, timeout) {
                        Ok(r) => {
                            return Ok(PollEvents {
                                readable: r & libc::POLLIN != 0,
                                writable: r & libc::POLLOUT != 0,
                                error: r & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0,
                            })
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            #[cfg(feature = "sim")]
            Kind::Sim(dev) => Ok(dev.poll(rx, tx, timeout)),
        }
    }

    /// Reads `XDP_STATISTICS`, accepting the short v1 layout of old kernels.
    pub fn statistics(&self) -> io::Result<XskStats> {
        match &self.0.kind {
            #[cfg(target_os = "linux")]
            Kind::Kernel(fd) => {
                let (s, len): (XdpStatistics, usize) =
                    sys::getsockopt(fd.as_fd(), sys::SOL_XDP, sys::XDP_STATISTICS)?;
                let mut s = s;
                if len < std::mem::size_of::<XdpStatistics>() {
                    // v1 (24 bytes): the newer fields were not written.
                    s.rx_ring_full = 0;
                    s.rx_fill_ring_empty_descs = 0;
                    s.tx_ring_empty_descs = 0;
                }
                Ok(s.into())
            }
            #[cfg(feature = "sim")]
            Kind::Sim(dev) => Ok(dev.statistics()),
        }
    }

    /// `XDP_OPTIONS`: whether the bound socket runs in zero-copy mode.
    pub fn zero_copy(&self) -> io::Result<bool> {
        match &self.0.kind {
            #[cfg(target_os = "linux")]
            Kind::Kernel(fd) => {
                let (o, _): (sys::XdpOptions, usize) =
                    sys::getsockopt(fd.as_fd(), sys::SOL_XDP, sys::XDP_OPTIONS)?;
                Ok(o.flags & sys::XDP_OPTIONS_ZEROCOPY != 0)
            }
            #[cfg(feature = "sim")]
            Kind::Sim(_) => Ok(false),
        }
    }

    /// The raw descriptor (for registering in an XSKMAP, or waiting on).
    #[cfg(target_os = "linux")]
    pub fn raw(&self) -> i32 {
        self.as_fd().as_raw_fd()
    }
}

/// Result of [`XskFd::poll`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollEvents {
    /// RX has packets.
    pub readable: bool,
    /// TX has room.
    pub writable: bool,
    /// Error or hang-up.
    pub error: bool,
}

#[cfg(target_os = "linux")]
pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::ENETDOWN)
    )
}

/// What `bind` needs.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone)]
pub(crate) struct BindParams {
    pub ifname: String,
    pub ifindex: u32,
    pub queue: u32,
    pub mode: BindMode,
    pub need_wakeup: bool,
    pub multi_buffer: bool,
    /// `Some(fd)`: share this socket's UMEM (XDP_SHARED_UMEM).
    pub shared_with: Option<XskFd>,
    /// Bounded wait for a queue the kernel is still releasing.
    pub busy_retry: Duration,
}

#[cfg(target_os = "linux")]
/// Creates an XDP socket; registers `umem` (unless `register` is false, for a socket
/// that shares another's UMEM); sizes and maps the rings it needs.
pub(crate) fn create(umem: &Umem, register: bool, sizes: RingSizes) -> Result<(XskFd, Rings)> {
    let fd = sys::xsk_socket().map_err(|e| Error::kernel(Stage::Socket, e))?;
    if register {
        let reg = sys::XdpUmemReg {
            addr: umem.base_ptr() as u64,
            len: umem.len(),
            chunk_size: umem.frame_size(),
            headroom: umem.headroom(),
            flags: if umem.config().unaligned {
                sys::XDP_UMEM_UNALIGNED_CHUNK_FLAG
            } else {
                0
            },
            tx_metadata_len: 0,
        };
        sys::setsockopt(fd.as_fd(), sys::SOL_XDP, sys::XDP_UMEM_REG, &reg).map_err(|e| match e
            .raw_os_error()
        {
            Some(libc::ENOBUFS) => Error::MemlockLimit {
                bytes: umem.len(),
                limit: sys::memlock_limit()
                    .map(|l| format!("{l} bytes"))
                    .unwrap_or_else(|| "unlimited".into()),
                source: e,
            },
            _ => Error::kernel(Stage::UmemRegister, e),
        })?;
    }
    let set = |opt, n: u32| -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        sys::setsockopt(fd.as_fd(), sys::SOL_XDP, opt, &(n as libc::c_int))
            .map_err(|e| Error::kernel(Stage::RingSize, e))
    };
    let own_umem_rings = register || sizes.fill > 0;
    if own_umem_rings {
        set(sys::XDP_UMEM_FILL_RING, sizes.fill)?;
        set(sys::XDP_UMEM_COMPLETION_RING, sizes.completion)?;
    }
    set(sys::XDP_RX_RING, sizes.rx)?;
    set(sys::XDP_TX_RING, sizes.tx)?;

    let (off, _): (XdpMmapOffsets, usize) =
        sys::getsockopt(fd.as_fd(), sys::SOL_XDP, sys::XDP_MMAP_OFFSETS)
            .map_err(|e| Error::kernel(Stage::Mmap, e))?;
    let mmap_err = |e| Error::kernel(Stage::Mmap, e);
    let mut rings = Rings {
        fill: None,
        completion: None,
        rx: None,
        tx: None,
    };
    if own_umem_rings && sizes.fill > 0 {
        let r = ring::kernel_producer(fd.as_fd(), KernelRing::Fill, &off, sizes.fill)
            .map_err(mmap_err)?;
        rings.fill = Some(r);
    }
    if own_umem_rings && sizes.completion > 0 {
        let r = ring::kernel_consumer(fd.as_fd(), KernelRing::Completion, &off, sizes.completion)
            .map_err(mmap_err)?;
        rings.completion = Some(r);
    }
    if sizes.rx > 0 {
        let r =
            ring::kernel_consumer(fd.as_fd(), KernelRing::Rx, &off, sizes.rx).map_err(mmap_err)?;
        rings.rx = Some(r);
    }
    if sizes.tx > 0 {
        let r =
            ring::kernel_producer(fd.as_fd(), KernelRing::Tx, &off, sizes.tx).map_err(mmap_err)?;
        rings.tx = Some(r);
    }
    Ok((XskFd::new(fd), rings))
}

#[cfg(target_os = "linux")]
/// Binds the socket to (interface, queue). Retries `EBUSY` for up to
/// `p.busy_retry`, because the kernel frees a closed socket's queue in the background.
pub(crate) fn bind(fd: &XskFd, p: &BindParams) -> Result<()> {
    let mut flags = 0u16;
    if let Some(_owner) = &p.shared_with {
        flags |= sys::XDP_SHARED_UMEM;
    } else {
        match p.mode {
            BindMode::Auto => {}
            BindMode::Copy => flags |= sys::XDP_COPY,
            BindMode::ZeroCopy => flags |= sys::XDP_ZEROCOPY,
        }
        if p.need_wakeup {
            flags |= sys::XDP_USE_NEED_WAKEUP;
        }
    }
    if p.multi_buffer {
        flags |= sys::XDP_USE_SG;
    }
    let addr = sys::SockaddrXdp {
        family: sys::AF_XDP as u16,
        flags,
        ifindex: p.ifindex,
        queue_id: p.queue,
        shared_umem_fd: p.shared_with.as_ref().map(|f| f.raw() as u32).unwrap_or(0),
    };
    let start = Instant::now();
    loop {
        match sys::bind_xdp(fd.as_fd(), &addr) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if start.elapsed() >= p.busy_retry {
                    return Err(Error::QueueBusy {
                        ifname: p.ifname.clone(),
                        queue: p.queue,
                        source: e,
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e)
                if p.mode == BindMode::ZeroCopy
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP) | Some(libc::EPROTONOSUPPORT)
                    ) =>
            {
                return Err(Error::ZeroCopyUnsupported {
                    ifname: p.ifname.clone(),
                    source: e,
                })
            }
            Err(e) => return Err(Error::kernel(Stage::Bind, e)),
        }
    }
}
