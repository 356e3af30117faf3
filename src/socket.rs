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
#[cfg(target_os = "linux")]
use crate::ring::{self, KernelRing};
use crate::ring::{Consumer, Peek, Producer, Reservation};
#[cfg(target_os = "linux")]
use crate::sys::{self, XdpMmapOffsets};
use crate::sys::{XdpDesc, XdpStatistics};
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

macro_rules! counted_producer {
    ($(#[$m:meta])* $name:ident, $t:ty) => {
        $(#[$m])*
        #[derive(Debug)]
        pub struct $name {
            ring: Producer<$t>,
            produced: u64,
        }

        impl $name {
            pub(crate) fn new(ring: Producer<$t>) -> Self {
                $name { ring, produced: 0 }
            }
            /// Ring capacity.
            pub fn size(&self) -> u32 {
                self.ring.size()
            }
            /// Free slots (refreshes from the kernel if fewer than `want` are cached).
            pub fn free(&mut self, want: u32) -> u32 {
                self.ring.free(want)
            }
            /// Entries published and not yet consumed by the other side.
            pub fn pending(&self) -> u32 {
                self.ring.pending()
            }
            /// Total entries ever published through this handle.
            pub fn produced(&self) -> u64 {
                self.produced
            }
            /// The kernel wants a wake-up to process this ring.
            pub fn needs_wakeup(&self) -> bool {
                self.ring.needs_wakeup()
            }
            /// Reserves up to `want` slots; see [`Reservation`].
            pub fn reserve(&mut self, want: u32) -> CountedReservation<'_, $t> {
                CountedReservation {
                    inner: self.ring.reserve(want),
                    produced: &mut self.produced,
                }
            }
        }
    };
}

macro_rules! counted_consumer {
    ($(#[$m:meta])* $name:ident, $t:ty) => {
        $(#[$m])*
        #[derive(Debug)]
        pub struct $name {
            ring: Consumer<$t>,
            consumed: u64,
        }

        impl $name {
            pub(crate) fn new(ring: Consumer<$t>) -> Self {
                $name { ring, consumed: 0 }
            }
            /// Ring capacity.
            pub fn size(&self) -> u32 {
                self.ring.size()
            }
            /// Entries ready (refreshes from the producer if fewer than `want` are cached).
            pub fn available(&mut self, want: u32) -> u32 {
                self.ring.available(want)
            }
            /// Total entries ever consumed through this handle.
            pub fn consumed(&self) -> u64 {
                self.consumed
            }
            /// Peeks at up to `max` entries; see [`Peek`].
            pub fn peek(&mut self, max: u32) -> CountedPeek<'_, $t> {
                CountedPeek {
                    inner: self.ring.peek(max),
                    consumed: &mut self.consumed,
                }
            }
            /// Consumes up to `max` entries, handing each to `f`; returns how many.
            pub fn consume(&mut self, max: u32, f: impl FnMut($t)) -> u32 {
                let n = self.ring.consume(max, f);
                self.consumed += n as u64;
                n
            }
        }
    };
}

counted_producer!(
    /// The FILL ring: frames handed to the kernel to receive into (chunk addresses).
    FillRing,
    u64
);

impl FillRing {
    /// Moves up to `n` frames from `pool` onto FILL; returns how many.
    pub fn fill_from(&mut self, pool: &mut crate::umem::FramePool, n: u32) -> u32 {
        self.produce_from(&mut std::iter::from_fn(|| pool.alloc()), n)
    }

    fn produce_from(&mut self, items: &mut impl Iterator<Item = u64>, max: u32) -> u32 {
        let n = self.ring.produce_from(items, max);
        self.produced += n as u64;
        n
    }
}

/// How many of a UMEM's `frames` belong on FILL: all FILL can hold, except that with a
/// TX ring half the frames (at most a TX ring's worth) stay free for sending.
pub(crate) fn fill_share(frames: u32, fill_size: u32, tx_size: u32) -> u32 {
    let for_tx = if tx_size > 0 {
        (frames / 2).min(tx_size)
    } else {
        0
    };
    (frames - for_tx).min(fill_size)
}
counted_producer!(
    /// The TX ring: descriptors of packets to send.
    TxRing,
    XdpDesc
);
counted_consumer!(
    /// The COMPLETION ring: addresses of frames the kernel has finished sending.
    CompletionRing,
    u64
);
counted_consumer!(
    /// The RX ring: descriptors of received packets.
    RxRing,
    XdpDesc
);

/// A reservation on a counted ring: push, then [`commit`](Self::commit); dropping it
/// publishes nothing.
#[must_use = "a reservation publishes nothing unless committed"]
#[derive(Debug)]
pub struct CountedReservation<'a, T: Copy> {
    inner: Reservation<'a, T>,
    produced: &'a mut u64,
}

impl<T: Copy> CountedReservation<'_, T> {
    /// Slots reserved.
    pub fn capacity(&self) -> u32 {
        self.inner.capacity()
    }
    /// Slots still free.
    pub fn remaining(&self) -> u32 {
        self.inner.remaining()
    }
    /// Items pushed.
    pub fn len(&self) -> u32 {
        self.inner.len()
    }
    /// Nothing pushed.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    /// Writes the next slot; gives the value back when full.
    #[inline]
    pub fn push(&mut self, v: T) -> std::result::Result<(), T> {
        self.inner.push(v)
    }
    /// Publishes what was pushed; returns how many.
    pub fn commit(self) -> u32 {
        let n = self.inner.commit();
        *self.produced += n as u64;
        n
    }
}

/// A peek on a counted ring: read, then [`release`](Self::release); dropping it leaves
/// the entries on the ring.
#[must_use = "peeked entries stay on the ring unless released"]
#[derive(Debug)]
pub struct CountedPeek<'a, T: Copy> {
    inner: Peek<'a, T>,
    consumed: &'a mut u64,
}

impl<T: Copy> CountedPeek<'_, T> {
    /// Entries peeked.
    pub fn len(&self) -> u32 {
        self.inner.len()
    }
    /// None peeked.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    /// Entry `i`, if `i < len()`.
    #[inline]
    pub fn get(&self, i: u32) -> Option<T> {
        self.inner.try_get(i)
    }
    /// Iterates over the peeked entries.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.inner.len()).map(|i| self.inner.get(i))
    }
    /// Consumes every peeked entry.
    pub fn release(self) -> u32 {
        let n = self.inner.release();
        *self.consumed += n as u64;
        n
    }
    /// Consumes the first `n`.
    pub fn release_n(self, n: u32) -> u32 {
        let n = self.inner.release_n(n);
        *self.consumed += n as u64;
        n
    }
}

/// A socket's rings, as created.
#[derive(Debug)]
pub struct Rings {
    /// FILL (absent on a sharer of another socket's queue).
    pub fill: Option<FillRing>,
    /// COMPLETION (as FILL).
    pub completion: Option<CompletionRing>,
    /// RX, if asked for.
    pub rx: Option<RxRing>,
    /// TX, if asked for.
    pub tx: Option<TxRing>,
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
        rings.fill = Some(FillRing::new(r));
    }
    if own_umem_rings && sizes.completion > 0 {
        let r = ring::kernel_consumer(fd.as_fd(), KernelRing::Completion, &off, sizes.completion)
            .map_err(mmap_err)?;
        rings.completion = Some(CompletionRing::new(r));
    }
    if sizes.rx > 0 {
        let r =
            ring::kernel_consumer(fd.as_fd(), KernelRing::Rx, &off, sizes.rx).map_err(mmap_err)?;
        rings.rx = Some(RxRing::new(r));
    }
    if sizes.tx > 0 {
        let r =
            ring::kernel_producer(fd.as_fd(), KernelRing::Tx, &off, sizes.tx).map_err(mmap_err)?;
        rings.tx = Some(TxRing::new(r));
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
