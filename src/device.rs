//! The device seam: what sits on the other side of a socket's rings. The kernel's
//! AF_XDP socket is one implementation of the crate's `DeviceOps` seam; the simulated device (`sim` feature) is
//! another. The modes talk to a [`Device`] only, and ask it for capabilities (a
//! descriptor to wait on, busy polling) instead of asking what it is.

use std::fmt;
use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sys::XdpStatistics;

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

/// Result of [`Device::poll`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollEvents {
    /// RX has packets.
    pub readable: bool,
    /// TX has room.
    pub writable: bool,
    /// Error or hang-up (a kernel socket whose device went away).
    pub error: bool,
}

/// What one TX kick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kicked {
    /// The device took descriptors (or had nothing to do).
    Ok,
    /// A transient refusal (`EAGAIN`, `ENOBUFS`, `ENETDOWN`, a stalled device): call
    /// again later.
    Retry,
    /// Copy mode: the device dropped one frame (`NET_XMIT_DROP`, reported as
    /// `EBUSY`); it comes back on COMPLETION but never left.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    DeviceDrop,
}

/// The other side of a socket's rings.
pub(crate) trait DeviceOps: Send + Sync + fmt::Debug {
    /// Makes the device process TX (`sendto`).
    fn kick_tx(&self) -> io::Result<Kicked>;
    /// Tells the device FILL has frames again (`recvfrom`).
    fn wake_rx(&self) -> io::Result<()>;
    /// Waits for RX packets and/or TX room, up to `timeout` (`None`: no limit).
    fn poll(&self, rx: bool, tx: bool, timeout: Option<Duration>) -> io::Result<PollEvents>;
    /// `XDP_STATISTICS`.
    fn statistics(&self) -> io::Result<XskStats>;
    /// The socket runs in zero-copy mode (`XDP_OPTIONS`).
    fn zero_copy(&self) -> io::Result<bool>;
    /// A descriptor that `poll(2)` reports readable exactly while RX has packets
    /// (level-triggered), to wait on several devices at once; `None` if there is none.
    #[cfg(target_os = "linux")]
    #[cfg_attr(not(any(feature = "engine", feature = "system")), allow(dead_code))]
    fn poll_fd(&self) -> Option<BorrowedFd<'_>>;
    /// A descriptor whose readability signals RX progress, for an async reactor
    /// (edge-triggered use); `None` if there is none.
    #[cfg(target_os = "linux")]
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn async_fd(&self) -> Option<BorrowedFd<'_>>;
    /// The kernel AF_XDP socket, for XSKMAPs, shared-UMEM binds and socket options;
    /// `None` for a device that is not one.
    #[cfg(target_os = "linux")]
    fn socket(&self) -> Option<BorrowedFd<'_>>;
}

/// The device end of a socket's rings — the kernel's AF_XDP socket, or a
/// [simulated device](crate::sim): TX kicks, RX wake-ups, waiting, statistics.
/// Cheap to clone; every clone is the same device.
#[derive(Debug, Clone)]
pub struct Device(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    ops: Box<dyn DeviceOps>,
    /// TX kicks made.
    kicks: AtomicU64,
    /// Kicks the device answered with a dropped frame.
    device_drops: AtomicU64,
}

impl Device {
    pub(crate) fn new(ops: impl DeviceOps + 'static) -> Device {
        Device(Arc::new(Inner {
            ops: Box::new(ops),
            kicks: AtomicU64::new(0),
            device_drops: AtomicU64::new(0),
        }))
    }

    /// Kicks TX (`sendto(MSG_DONTWAIT)` on a kernel socket). Transient refusals
    /// (`EAGAIN`, `EBUSY`, `ENOBUFS`, `ENETDOWN`) are `Ok(false)`: call again later.
    ///
    /// In copy mode `EBUSY` means the device dropped one frame (`NET_XMIT_DROP`,
    /// e.g. a full backlog on a veth peer): the kernel completes that frame without
    /// sending it. Such drops are counted in [`Device::device_drops`].
    ///
    /// # Errors
    /// The kernel's error for anything but a transient refusal.
    pub fn kick_tx(&self) -> io::Result<bool> {
        // Relaxed: statistics only.
        self.0.kicks.fetch_add(1, Ordering::Relaxed);
        match self.0.ops.kick_tx()? {
            Kicked::Ok => Ok(true),
            Kicked::Retry => Ok(false),
            Kicked::DeviceDrop => {
                self.0.device_drops.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
        }
    }

    /// TX kicks made through this device.
    pub fn kicks(&self) -> u64 {
        self.0.kicks.load(Ordering::Relaxed)
    }

    /// Frames the device dropped on transmit (copy mode, `EBUSY` from a kick): they
    /// came back on COMPLETION but never left.
    pub fn device_drops(&self) -> u64 {
        self.0.device_drops.load(Ordering::Relaxed)
    }

    /// Wakes the device's RX side (FILL refilled while it slept):
    /// `recvfrom(MSG_DONTWAIT)` on a kernel socket.
    ///
    /// # Errors
    /// The kernel's error for anything but a transient refusal.
    pub fn wake_rx(&self) -> io::Result<()> {
        self.0.ops.wake_rx()
    }

    /// Waits for `POLLIN` (RX non-empty) and/or `POLLOUT` (TX has room); in copy mode
    /// a wait for TX room also makes the kernel transmit. An empty result is a
    /// time-out.
    ///
    /// # Errors
    /// The kernel's error from `poll(2)`.
    pub fn poll(&self, rx: bool, tx: bool, timeout: Option<Duration>) -> io::Result<PollEvents> {
        self.0.ops.poll(rx, tx, timeout)
    }

    /// Reads `XDP_STATISTICS`, accepting the short v1 layout of old kernels.
    ///
    /// # Errors
    /// The kernel's error from `getsockopt`.
    pub fn statistics(&self) -> io::Result<XskStats> {
        self.0.ops.statistics()
    }

    /// `XDP_OPTIONS`: whether the bound socket runs in zero-copy mode.
    ///
    /// # Errors
    /// The kernel's error from `getsockopt`.
    pub fn zero_copy(&self) -> io::Result<bool> {
        self.0.ops.zero_copy()
    }

    /// A descriptor `poll(2)` reports readable exactly while RX has packets.
    #[cfg(target_os = "linux")]
    #[cfg_attr(not(any(feature = "engine", feature = "system")), allow(dead_code))]
    pub(crate) fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        self.0.ops.poll_fd()
    }

    /// A descriptor whose readability signals RX progress (for tokio's `AsyncFd`).
    #[cfg(target_os = "linux")]
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn async_fd(&self) -> Option<BorrowedFd<'_>> {
        self.0.ops.async_fd()
    }

    /// The kernel AF_XDP socket (`None` for a simulated device): register it in your
    /// own XSKMAP, or wait on it.
    #[cfg(target_os = "linux")]
    pub fn socket(&self) -> Option<BorrowedFd<'_>> {
        self.0.ops.socket()
    }
}

/// `XDP_OPTIONS` of a bound AF_XDP socket: does it run in zero-copy mode?
#[cfg(target_os = "linux")]
pub(crate) fn socket_zero_copy(fd: BorrowedFd<'_>) -> io::Result<bool> {
    use crate::sys;
    let (o, _): (sys::XdpOptions, usize) = sys::getsockopt(fd, sys::SOL_XDP, sys::XDP_OPTIONS)?;
    Ok(o.flags & sys::XDP_OPTIONS_ZEROCOPY != 0)
}

/// The kernel's AF_XDP socket as a device.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct KernelSocket(pub(crate) OwnedFd);

#[cfg(target_os = "linux")]
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::ENETDOWN)
    )
}

#[cfg(target_os = "linux")]
impl DeviceOps for KernelSocket {
    fn kick_tx(&self) -> io::Result<Kicked> {
        use crate::sys;
        match sys::kick_tx(self.0.as_fd()) {
            Ok(()) => Ok(Kicked::Ok),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(Kicked::DeviceDrop),
            Err(e) if is_transient(&e) => Ok(Kicked::Retry),
            Err(e) => Err(e),
        }
    }

    fn wake_rx(&self) -> io::Result<()> {
        match crate::sys::kick_rx(self.0.as_fd()) {
            Ok(()) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn poll(&self, rx: bool, tx: bool, timeout: Option<Duration>) -> io::Result<PollEvents> {
        let mut ev = 0;
        if rx {
            ev |= libc::POLLIN;
        }
        if tx {
            ev |= libc::POLLOUT;
        }
        loop {
            match crate::sys::poll_fd(self.0.as_fd(), ev, timeout) {
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

    fn statistics(&self) -> io::Result<XskStats> {
        use crate::sys;
        let (s, len): (XdpStatistics, usize) =
            sys::getsockopt(self.0.as_fd(), sys::SOL_XDP, sys::XDP_STATISTICS)?;
        let mut s = s;
        if len < std::mem::size_of::<XdpStatistics>() {
            // v1 (24 bytes): the newer fields were not written.
            s.rx_ring_full = 0;
            s.rx_fill_ring_empty_descs = 0;
            s.tx_ring_empty_descs = 0;
        }
        Ok(s.into())
    }

    fn zero_copy(&self) -> io::Result<bool> {
        socket_zero_copy(self.0.as_fd())
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.0.as_fd())
    }

    fn async_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.0.as_fd())
    }

    fn socket(&self) -> Option<BorrowedFd<'_>> {
        Some(self.0.as_fd())
    }
}
