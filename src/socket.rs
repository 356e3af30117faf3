//! Making an XDP socket: UMEM registration, ring sizing and mapping, bind. The bound
//! socket then becomes a [`Device`](crate::device::Device).

#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
#[cfg(target_os = "linux")]
use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::Instant;

#[cfg(target_os = "linux")]
use crate::error::{Error, Feature, Result, Stage};
#[cfg(target_os = "linux")]
use crate::ring::Rings;
#[cfg(target_os = "linux")]
use crate::ring::{self, KernelRing};
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
    pub shared_with: Option<i32>,
    /// Bounded wait for a queue the kernel is still releasing.
    pub busy_retry: Duration,
}

#[cfg(target_os = "linux")]
/// Creates an XDP socket; registers `umem` (unless `register` is false, for a socket
/// that shares another's UMEM); sizes and maps the rings it needs.
pub(crate) fn create(umem: &Umem, register: bool, sizes: RingSizes) -> Result<(OwnedFd, Rings)> {
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
            } | if umem.tx_metadata() {
                sys::XDP_UMEM_TX_METADATA_LEN
            } else {
                0
            },
            tx_metadata_len: if umem.tx_metadata() {
                sys::XSK_TX_METADATA_LEN
            } else {
                0
            },
        };
        let mut r = sys::setsockopt(fd.as_fd(), sys::SOL_XDP, sys::XDP_UMEM_REG, &reg);
        if umem.tx_metadata()
            && matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EINVAL))
            && sys::kernel_release().1.is_some_and(|v| v >= (6, 8))
        {
            // Kernels 6.8 to 6.10 (before the stable updates) take `tx_metadata_len`
            // without knowing the flag that now has to go with it, and refuse it.
            // (Older kernels know neither and would ignore the field: no retry.)
            let reg = sys::XdpUmemReg {
                flags: reg.flags & !sys::XDP_UMEM_TX_METADATA_LEN,
                ..reg
            };
            r = sys::setsockopt(fd.as_fd(), sys::SOL_XDP, sys::XDP_UMEM_REG, &reg);
        }
        r.map_err(|e| match e.raw_os_error() {
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
    Ok((fd, rings))
}

#[cfg(target_os = "linux")]
/// Binds the socket to (interface, queue). Retries `EBUSY` for up to
/// `p.busy_retry`, because the kernel frees a closed socket's queue in the background.
pub(crate) fn bind(fd: &OwnedFd, p: &BindParams) -> Result<()> {
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
        shared_umem_fd: p.shared_with.map(|f| f as u32).unwrap_or(0),
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
            Err(e) if p.multi_buffer && e.raw_os_error() == Some(libc::EINVAL) => {
                // Kernels before 6.6 know no XDP_USE_SG and refuse the unknown flag.
                let (release, version) = sys::kernel_release();
                if version.is_none_or(|v| v < (6, 6)) {
                    return Err(Error::Unsupported {
                        feature: Feature::MultiBuffer,
                        ifname: p.ifname.clone(),
                        needs: "Linux 6.6 or later (AF_XDP multi-buffer)",
                        found: format!("Linux {release}"),
                    });
                }
                return Err(Error::kernel(Stage::Bind, e));
            }
            Err(e) => return Err(Error::kernel(Stage::Bind, e)),
        }
    }
}

/// Sets the copy-mode TX budget per kick (`XDP_MAX_TX_SKB_BUDGET`, kernel ≥ 6.17) when
/// asked; returns the budget in effect (32, the kernel's default, where the option is
/// unknown).
#[cfg(target_os = "linux")]
pub(crate) fn set_tx_budget(fd: BorrowedFd<'_>, budget: Option<u32>) -> Result<u32> {
    let Some(b) = budget else {
        return Ok(32);
    };
    match sys::setsockopt(fd, sys::SOL_XDP, sys::XDP_MAX_TX_SKB_BUDGET, &b) {
        Ok(()) => Ok(b),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOPROTOOPT) | Some(libc::EINVAL)
            ) =>
        {
            Ok(32)
        }
        Err(e) => Err(Error::kernel(Stage::SocketOption, e)),
    }
}
