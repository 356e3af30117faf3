//! Network-device lookups: interface index by name, queue counts (ethtool).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::syscall::cvt;

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

/// The Ethernet address of an interface (`SIOCGIFHWADDR`) in the calling thread's
/// network namespace.
pub fn if_hwaddr(ifname: &str) -> io::Result<[u8; 6]> {
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let sock = ioctl_socket()?;
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

/// An `AF_INET` datagram socket for interface ioctls; it answers about the
/// network namespace of the thread that made it.
pub fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd is wrapped immediately.
    let sock =
        cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(sock) })
}

/// Active queue counts of an interface as `(rx, tx)`, from `ETHTOOL_GCHANNELS`, in
/// the calling thread's network namespace.
///
/// Drivers report either separate rx/tx counts or combined channels; both are folded
/// in. Returns `Ok(None)` when the driver does not implement the call.
pub fn ethtool_channels(ifname: &str) -> io::Result<Option<(u32, u32)>> {
    ethtool_channels_on(ioctl_socket()?.as_fd(), ifname)
}

/// As [`ethtool_channels`], through `sock` (see [`ioctl_socket`]): in the network
/// namespace `sock` was made in.
pub fn ethtool_channels_on(sock: BorrowedFd<'_>, ifname: &str) -> io::Result<Option<(u32, u32)>> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
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
