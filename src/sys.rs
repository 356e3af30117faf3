//! The kernel ABI (`<linux/if_xdp.h>`) mirrored as `repr(C)` structs, and every raw
//! system call the crate makes, each returning [`std::io::Result`].
//!
//! Everything here is a thin, checked wrapper: no policy, no retries. Layout is pinned
//! with compile-time size and offset assertions, because a padded or short struct
//! handed to `setsockopt` gives EINVAL (or, worse, silently drops fields).
#![allow(unsafe_code)]
// Constants keep the kernel's names from <linux/if_xdp.h>; see that header for each.
#![allow(missing_docs)]

use std::mem::{offset_of, size_of};

/// `AF_XDP` address family.
pub const AF_XDP: i32 = 44;
/// `SOL_XDP` socket option level.
pub const SOL_XDP: i32 = 283;

/// Socket options at `SOL_XDP`.
pub const XDP_MMAP_OFFSETS: i32 = 1;
pub const XDP_RX_RING: i32 = 2;
pub const XDP_TX_RING: i32 = 3;
pub const XDP_UMEM_REG: i32 = 4;
pub const XDP_UMEM_FILL_RING: i32 = 5;
pub const XDP_UMEM_COMPLETION_RING: i32 = 6;
pub const XDP_STATISTICS: i32 = 7;
pub const XDP_OPTIONS: i32 = 8;
/// Copy-mode TX descriptors handled per `sendto` (kernel ≥ 6.17; range 32..=TX size).
pub const XDP_MAX_TX_SKB_BUDGET: i32 = 9;

/// `sxdp_flags` bits for bind.
pub const XDP_SHARED_UMEM: u16 = 1 << 0;
pub const XDP_COPY: u16 = 1 << 1;
pub const XDP_ZEROCOPY: u16 = 1 << 2;
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
pub const XDP_USE_SG: u16 = 1 << 4;

/// `xdp_umem_reg.flags`.
pub const XDP_UMEM_UNALIGNED_CHUNK_FLAG: u32 = 1 << 0;
/// Ring `flags` word: the kernel wants a wake-up.
pub const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;
/// `xdp_options.flags`: the socket runs in zero-copy mode.
pub const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;
/// `xdp_desc.options`: more fragments of this packet follow.
pub const XDP_PKT_CONTD: u32 = 1 << 0;

/// mmap page offsets of the four rings.
pub const XDP_PGOFF_RX_RING: i64 = 0;
pub const XDP_PGOFF_TX_RING: i64 = 0x8000_0000;
pub const XDP_UMEM_PGOFF_FILL_RING: i64 = 0x1_0000_0000;
pub const XDP_UMEM_PGOFF_COMPLETION_RING: i64 = 0x1_8000_0000;

/// Unaligned-chunk addresses carry the offset in the upper 16 bits.
pub const XSK_UNALIGNED_BUF_OFFSET_SHIFT: u32 = 48;
pub const XSK_UNALIGNED_BUF_ADDR_MASK: u64 = (1 << XSK_UNALIGNED_BUF_OFFSET_SHIFT) - 1;

/// The kernel reserves this much headroom in front of every received packet.
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// `XDP_FLAGS_*` for attaching programs.
pub const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1 << 0;
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SockaddrXdp {
    pub family: u16,
    pub flags: u16,
    pub ifindex: u32,
    pub queue_id: u32,
    pub shared_umem_fd: u32,
}

/// `struct xdp_ring_offset`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}

/// `struct xdp_umem_reg` (v3, with `tx_metadata_len` declared so there is no padding).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// `struct xdp_statistics` (v2: 48 bytes; v1 kernels return the first 24).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

/// `struct xdp_options`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpOptions {
    pub flags: u32,
}

/// `struct xdp_desc`: one RX or TX descriptor.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XdpDesc {
    /// UMEM address of the packet data.
    pub addr: u64,
    /// Length of the packet data.
    pub len: u32,
    /// Option bits (`XDP_PKT_CONTD`, TX metadata).
    pub options: u32,
}

const _: () = {
    assert!(size_of::<SockaddrXdp>() == 16);
    assert!(offset_of!(SockaddrXdp, ifindex) == 4);
    assert!(offset_of!(SockaddrXdp, shared_umem_fd) == 12);
    assert!(size_of::<XdpRingOffset>() == 32);
    assert!(size_of::<XdpMmapOffsets>() == 128);
    assert!(offset_of!(XdpMmapOffsets, cr) == 96);
    assert!(size_of::<XdpUmemReg>() == 32);
    assert!(offset_of!(XdpUmemReg, tx_metadata_len) == 28);
    assert!(size_of::<XdpStatistics>() == 48);
    assert!(size_of::<XdpOptions>() == 4);
    assert!(size_of::<XdpDesc>() == 16);
    assert!(offset_of!(XdpDesc, options) == 12);
};

/// `NETDEV_XDP_ACT_XSK_ZEROCOPY`.
pub const NETDEV_XDP_ACT_XSK_ZEROCOPY: u64 = 1 << 3;

/// `NETDEV_XDP_ACT_RX_SG`.
pub const NETDEV_XDP_ACT_RX_SG: u64 = 1 << 5;

/// `SO_BUSY_POLL` (µs to busy-poll in blocking calls).
pub const SO_BUSY_POLL: i32 = 46;

/// `SO_PREFER_BUSY_POLL`.
pub const SO_PREFER_BUSY_POLL: i32 = 69;

/// `SO_BUSY_POLL_BUDGET`.
pub const SO_BUSY_POLL_BUDGET: i32 = 70;

/// Memory mappings (Unix).
#[cfg(unix)]
mod mem {
    use std::io;
    #[cfg(target_os = "linux")]
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::ptr::NonNull;

    /// An owned `mmap` region, unmapped on drop.
    #[derive(Debug)]
    pub struct Mmap {
        ptr: NonNull<u8>,
        len: usize,
    }

    // SAFETY: the region is plain memory; who may touch which bytes is governed by the
    // ring and frame ownership protocols built on top, not by the mapping itself.
    unsafe impl Send for Mmap {}
    // SAFETY: as above; `Mmap` itself exposes only the raw pointer.
    unsafe impl Sync for Mmap {}

    impl Mmap {
        /// Maps a ring of the XDP socket `fd` at page offset `pgoff`.
        #[cfg(target_os = "linux")]
        pub fn ring(fd: BorrowedFd<'_>, len: usize, pgoff: libc::off_t) -> io::Result<Self> {
            Self::map(
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        }

        /// Anonymous private memory (UMEM backing), optionally from huge pages.
        pub fn anonymous(len: usize, huge: bool) -> io::Result<Self> {
            #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
            let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            #[cfg(target_os = "linux")]
            {
                flags |= libc::MAP_POPULATE;
                if huge {
                    flags |= libc::MAP_HUGETLB;
                }
            }
            #[cfg(not(target_os = "linux"))]
            if huge {
                return Err(io::Error::from(io::ErrorKind::Unsupported));
            }
            Self::map(len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0)
        }

        fn map(len: usize, prot: i32, flags: i32, fd: i32, off: libc::off_t) -> io::Result<Self> {
            if len == 0 {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            }
            // SAFETY: a fresh mapping chosen by the kernel; arguments are checked by it.
            let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, off) };
            if p == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            NonNull::new(p.cast::<u8>())
                .map(|ptr| Mmap { ptr, len })
                .ok_or_else(|| io::Error::from(io::ErrorKind::Other))
        }

        /// Start of the mapping.
        pub fn as_ptr(&self) -> *mut u8 {
            self.ptr.as_ptr()
        }

        /// Length in bytes.
        pub fn len(&self) -> usize {
            self.len
        }

        /// Never true: empty mappings are refused at creation.
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }
    }

    impl Drop for Mmap {
        fn drop(&mut self) {
            // SAFETY: we own the mapping and nothing refers to it once we are dropped.
            unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            }
        }
    }

    /// The system page size.
    pub fn page_size() -> usize {
        // SAFETY: sysconf has no preconditions.
        let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if v <= 0 {
            4096
        } else {
            v as usize
        }
    }
}
#[cfg(unix)]
pub use mem::*;

/// The page size assumed where there is no `sysconf` (the simulated device on Windows).
#[cfg(not(unix))]
pub fn page_size() -> usize {
    4096
}

/// Where there is no `mmap` (Windows), the UMEM of a simulated device is a
/// page-aligned, zeroed heap allocation with the same interface.
#[cfg(not(unix))]
#[derive(Debug)]
pub struct Mmap {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: plain memory; access is governed by the frame ownership protocol above it.
#[cfg(not(unix))]
unsafe impl Send for Mmap {}
// SAFETY: as above.
#[cfg(not(unix))]
unsafe impl Sync for Mmap {}

#[cfg(not(unix))]
impl Mmap {
    /// A zeroed, page-aligned region (huge pages are not available here).
    pub fn anonymous(len: usize, huge: bool) -> std::io::Result<Self> {
        if huge {
            return Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
        }
        let layout = std::alloc::Layout::from_size_align(len.max(1), page_size())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        std::ptr::NonNull::new(p)
            .map(|ptr| Mmap { ptr, layout })
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::OutOfMemory))
    }
    /// Start of the region.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }
    /// Never true.
    pub fn is_empty(&self) -> bool {
        self.layout.size() == 0
    }
}

#[cfg(not(unix))]
impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: allocated in `anonymous` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// System calls (Linux only).
#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::CString;
    use std::io;
    use std::mem::size_of;
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
    use std::time::Duration;

    use super::*;

    fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    /// `socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0)`.
    pub fn xsk_socket() -> io::Result<OwnedFd> {
        // SAFETY: plain syscall; the returned fd is fresh and owned by us.
        let fd = cvt(unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `fd` is a valid, open descriptor nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// `setsockopt` with a `repr(C)` value passed at its full size.
    pub fn setsockopt<T: Copy>(
        fd: BorrowedFd<'_>,
        level: libc::c_int,
        name: libc::c_int,
        value: &T,
    ) -> io::Result<()> {
        // SAFETY: `value` is a valid `T` for `size_of::<T>()` bytes; the kernel only reads.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                size_of::<T>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// `getsockopt` into a zeroed `T`; returns the value and the length the kernel wrote.
    pub fn getsockopt<T: Copy + Default>(
        fd: BorrowedFd<'_>,
        level: libc::c_int,
        name: libc::c_int,
    ) -> io::Result<(T, usize)> {
        let mut value = T::default();
        let mut len = size_of::<T>() as libc::socklen_t;
        // SAFETY: `value` is writable for `len` bytes and `len` is a valid in/out pointer.
        cvt(unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                level,
                name,
                (&mut value as *mut T).cast(),
                &mut len,
            )
        })?;
        Ok((value, len as usize))
    }

    /// `bind` an XDP socket.
    pub fn bind_xdp(fd: BorrowedFd<'_>, addr: &SockaddrXdp) -> io::Result<()> {
        // SAFETY: `addr` is a valid `sockaddr_xdp` of the size we pass.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (addr as *const SockaddrXdp).cast(),
                size_of::<SockaddrXdp>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`: the TX kick.
    pub fn kick_tx(fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: a zero-length send with null buffer and address is what the kernel expects.
        cvt(unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            ) as libc::c_int
        })
        .map(drop)
    }

    /// `recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL)`: wakes the RX/FILL side.
    pub fn kick_rx(fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: zero-length receive with null buffers.
        cvt(unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            ) as libc::c_int
        })
        .map(drop)
    }

    /// `poll` one fd for `events`; returns the revents (0 on timeout). `None` waits forever.
    pub fn poll_fd(fd: BorrowedFd<'_>, events: i16, timeout: Option<Duration>) -> io::Result<i16> {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = match timeout {
            None => -1,
            Some(d) => d.as_millis().min(i32::MAX as u128) as libc::c_int,
        };
        // SAFETY: one valid pollfd.
        let n = cvt(unsafe { libc::poll(&mut pfd, 1, ms) })?;
        Ok(if n == 0 { 0 } else { pfd.revents })
    }

    /// `if_nametoindex`; `Ok(None)` when no such interface exists.
    pub fn if_nametoindex(name: &str) -> io::Result<Option<u32>> {
        let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a valid NUL-terminated string.
        let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if idx == 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENODEV) | Some(libc::ENXIO) | Some(0) | None => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(idx))
    }

    #[repr(C)]
    #[derive(Default)]
    struct EthtoolChannels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }

    #[repr(C)]
    struct IfreqData {
        name: [libc::c_char; libc::IFNAMSIZ],
        data: *mut libc::c_void,
        _pad: [u8; 16],
    }

    /// Active queue counts of an interface as `(rx, tx)`, from `ETHTOOL_GCHANNELS`.
    ///
    /// Drivers report either separate rx/tx counts or combined channels; both are folded
    /// in. Returns `Ok(None)` when the driver does not implement the call.
    pub fn ethtool_channels(ifname: &str) -> io::Result<Option<(u32, u32)>> {
        const SIOCETHTOOL: libc::c_ulong = 0x8946;
        const ETHTOOL_GCHANNELS: u32 = 0x3c;
        if ifname.len() >= libc::IFNAMSIZ {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: plain syscall; the fd is wrapped immediately.
        let sock =
            cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: fresh fd we own.
        let sock = unsafe { OwnedFd::from_raw_fd(sock) };
        let mut ch = EthtoolChannels {
            cmd: ETHTOOL_GCHANNELS,
            ..Default::default()
        };
        let mut ifr = IfreqData {
            name: [0; libc::IFNAMSIZ],
            data: (&mut ch as *mut EthtoolChannels).cast(),
            _pad: [0; 16],
        };
        for (dst, src) in ifr.name.iter_mut().zip(ifname.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: `ifr` is a valid ifreq whose data points at a live ethtool_channels.
        let ret = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EOPNOTSUPP) => Ok(None),
                _ => Err(e),
            };
        }
        let rx = ch.rx_count.max(ch.combined_count);
        let tx = ch.tx_count.max(ch.combined_count);
        Ok(Some((rx, tx)))
    }

    /// The Ethernet address of an interface (`SIOCGIFHWADDR`) in the calling thread's
    /// network namespace.
    pub fn if_hwaddr(ifname: &str) -> io::Result<[u8; 6]> {
        if ifname.len() >= libc::IFNAMSIZ {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: plain syscall; the fd is wrapped immediately.
        let sock =
            cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: fresh fd we own.
        let sock = unsafe { OwnedFd::from_raw_fd(sock) };
        // SAFETY: an all-zero ifreq is a valid value (a name and a union of plain data).
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(ifname.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: `ifr` is a valid ifreq with a NUL-terminated name; SIOCGIFHWADDR
        // writes only its hardware-address member.
        let ret = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR as _, &mut ifr) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: after a successful SIOCGIFHWADDR the union holds `ifru_hwaddr`.
        let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *d = *s as u8;
        }
        Ok(mac)
    }

    /// Current `RLIMIT_MEMLOCK` soft limit in bytes (`None` = unlimited).
    pub fn memlock_limit() -> Option<u64> {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `r` is a valid out pointer.
        if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0 {
            return None;
        }
        if r.rlim_cur == libc::RLIM_INFINITY {
            None
        } else {
            Some(r.rlim_cur)
        }
    }

    /// `BPF_LINK_CREATE` of `prog_fd` on `ifindex` for `attach_type`, with `flags`.
    fn link_create(
        prog_fd: BorrowedFd<'_>,
        ifindex: u32,
        attach_type: libbpf_sys::bpf_attach_type,
        flags: u32,
    ) -> io::Result<OwnedFd> {
        // SAFETY: zero is a valid bit pattern for this plain-data opts struct.
        let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
        opts.sz = size_of::<libbpf_sys::bpf_link_create_opts>() as _;
        opts.flags = flags;
        // SAFETY: valid fds and a fully initialised opts struct; libbpf returns -errno.
        let fd = unsafe {
            libbpf_sys::bpf_link_create(
                prog_fd.as_raw_fd(),
                ifindex as libc::c_int,
                attach_type,
                &opts,
            )
        };
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(-fd));
        }
        // SAFETY: a fresh link fd owned by us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// `BPF_LINK_DETACH`: detaches the link's program now, whoever else still holds the
    /// link fd (a child process between fork and exec does, for a moment).
    pub fn link_detach(link_fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: plain syscall on a valid fd; libbpf returns -errno.
        let ret = unsafe { libbpf_sys::bpf_link_detach(link_fd.as_raw_fd()) };
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(-ret));
        }
        Ok(())
    }

    /// Attaches the TC program `prog_fd` to the ingress of `ifindex` as a tcx `bpf_link`
    /// (kernel 6.6+; older kernels answer `EINVAL`). Closing the fd detaches it.
    pub fn tcx_ingress_link_create(prog_fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<OwnedFd> {
        link_create(prog_fd, ifindex, libbpf_sys::BPF_TCX_INGRESS, 0)
    }

    /// Attaches `prog_fd` to `ifindex` as an XDP `bpf_link` with the given `XDP_FLAGS_*`
    /// mode bits. The returned fd owns the link: closing it detaches the program.
    pub fn xdp_link_create(
        prog_fd: BorrowedFd<'_>,
        ifindex: u32,
        flags: u32,
    ) -> io::Result<OwnedFd> {
        link_create(prog_fd, ifindex, libbpf_sys::BPF_XDP, flags)
    }

    /// Name and id of the XDP program attached to `ifindex` in any mode, if one is.
    pub fn xdp_query(ifindex: u32) -> io::Result<Option<(u32, String)>> {
        // SAFETY: zero is a valid bit pattern for this plain-data struct.
        let mut q: libbpf_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
        q.sz = size_of::<libbpf_sys::bpf_xdp_query_opts>() as _;
        // SAFETY: `q` is a valid, sized opts struct.
        let ret = unsafe { libbpf_sys::bpf_xdp_query(ifindex as libc::c_int, 0, &mut q) };
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(-ret));
        }
        let id = [q.prog_id, q.drv_prog_id, q.skb_prog_id, q.hw_prog_id]
            .into_iter()
            .find(|&i| i != 0);
        let Some(id) = id else { return Ok(None) };
        Ok(Some((id, prog_name(id).unwrap_or_else(|_| "?".into()))))
    }

    /// The name of the BPF program with this id.
    pub fn prog_name(id: u32) -> io::Result<String> {
        // SAFETY: plain libbpf call returning an fd or -errno.
        let fd = unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) };
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(-fd));
        }
        // SAFETY: fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: zero is valid for this plain-data struct.
        let mut info: libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libbpf_sys::bpf_prog_info>() as u32;
        // SAFETY: `info` is writable for `len` bytes.
        let ret =
            unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(-ret));
        }
        let name: Vec<u8> = info
            .name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        Ok(String::from_utf8_lossy(&name).into_owned())
    }

    /// Detaches whatever XDP program is attached to `ifindex` in the given mode through
    /// netlink (the fallback path for kernels without XDP links).
    pub fn xdp_netlink_attach(
        ifindex: u32,
        prog_fd: Option<BorrowedFd<'_>>,
        flags: u32,
    ) -> io::Result<()> {
        let fd = prog_fd.map(|f| f.as_raw_fd()).unwrap_or(-1);
        // SAFETY: plain libbpf call; a null opts pointer is allowed.
        let ret = unsafe {
            libbpf_sys::bpf_xdp_attach(ifindex as libc::c_int, fd, flags, std::ptr::null())
        };
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(-ret));
        }
        Ok(())
    }

    /// Sets an integer socket option at `SOL_SOCKET`.
    pub fn setsockopt_int(
        fd: BorrowedFd<'_>,
        name: libc::c_int,
        value: libc::c_int,
    ) -> io::Result<()> {
        setsockopt(fd, libc::SOL_SOCKET, name, &value)
    }

    /// Pins the calling thread to one CPU.
    pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
        // SAFETY: zeroed cpu_set_t is the empty set; CPU_SET bounds-checks internally.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if cpu >= 8 * size_of::<libc::cpu_set_t>() {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            }
            libc::CPU_SET(cpu, &mut set);
            cvt(libc::sched_setaffinity(
                0,
                size_of::<libc::cpu_set_t>(),
                &set,
            ))
            .map(drop)
        }
    }

    /// The effective user id is root.
    pub fn is_root() -> bool {
        // SAFETY: no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// Writes `value_fd` at `key` into the BPF map `map_fd` (an XSKMAP owned by the user).
    pub fn map_update_fd(
        map_fd: BorrowedFd<'_>,
        key: u32,
        value_fd: BorrowedFd<'_>,
    ) -> io::Result<()> {
        let k = key;
        let v = value_fd.as_raw_fd() as u32;
        // SAFETY: key and value point at live u32s, the sizes an XSKMAP uses.
        let ret = unsafe {
            libbpf_sys::bpf_map_update_elem(
                map_fd.as_raw_fd(),
                (&k as *const u32).cast(),
                (&v as *const u32).cast(),
                0,
            )
        };
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(-ret));
        }
        Ok(())
    }

    /// Deletes `key` from the BPF map `map_fd`; a missing key is not an error.
    pub fn map_delete(map_fd: BorrowedFd<'_>, key: u32) -> io::Result<()> {
        let k = key;
        // SAFETY: key points at a live u32.
        let ret = unsafe {
            libbpf_sys::bpf_map_delete_elem(map_fd.as_raw_fd(), (&k as *const u32).cast())
        };
        if ret < 0 && -ret != libc::ENOENT {
            return Err(io::Error::from_raw_os_error(-ret));
        }
        Ok(())
    }

    /// XDP feature flags the driver advertises (`NETDEV_XDP_ACT_*`), from `bpf_xdp_query`.
    pub fn xdp_features(ifindex: u32) -> io::Result<u64> {
        // SAFETY: zero is a valid bit pattern for this plain-data struct.
        let mut q: libbpf_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
        q.sz = size_of::<libbpf_sys::bpf_xdp_query_opts>() as _;
        // SAFETY: `q` is a valid, sized opts struct.
        let ret = unsafe { libbpf_sys::bpf_xdp_query(ifindex as libc::c_int, 0, &mut q) };
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(-ret));
        }
        Ok(q.feature_flags)
    }

    /// A non-blocking, close-on-exec `eventfd` (used to wake pollers on stop).
    pub fn eventfd() -> io::Result<OwnedFd> {
        // SAFETY: plain syscall; the fd is wrapped at once.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: fresh fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Adds 1 to an eventfd.
    pub fn eventfd_signal(fd: BorrowedFd<'_>) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        let n = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EAGAIN) {
                return Ok(()); // counter saturated: already signalled
            }
            return Err(e);
        }
        Ok(())
    }

    /// `poll` on several fds; fills each entry's `revents`; returns how many are ready.
    pub fn poll_many(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
        let ms = match timeout {
            None => -1,
            Some(d) => d.as_millis().min(i32::MAX as u128) as libc::c_int,
        };
        // SAFETY: `fds` is a valid, writable array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }
}
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_sizes_match_the_kernel_headers() {
        assert_eq!(size_of::<SockaddrXdp>(), 16);
        assert_eq!(size_of::<XdpMmapOffsets>(), 128);
        assert_eq!(size_of::<XdpUmemReg>(), 32);
        assert_eq!(size_of::<XdpStatistics>(), 48);
        assert_eq!(size_of::<XdpDesc>(), 16);
        assert_eq!(offset_of!(XdpMmapOffsets, tx), 32);
        assert_eq!(offset_of!(XdpMmapOffsets, fr), 64);
        assert_eq!(offset_of!(XdpStatistics, rx_ring_full), 24);
        assert_eq!(offset_of!(XdpUmemReg, chunk_size), 16);
    }
}
