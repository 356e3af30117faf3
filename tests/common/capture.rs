//! AF_PACKET capture and raw frames on an interface.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::cmd::ifindex_of;
use super::netns::in_netns;

/// `PACKET_IGNORE_OUTGOING` from `<linux/if_packet.h>` (stable ABI value).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

// ---------------------------------------------------------------------------
// AF_PACKET capture
// ---------------------------------------------------------------------------

/// An `AF_PACKET`/`SOCK_RAW`/`ETH_P_ALL` socket bound to one interface, with a
/// 64 MiB receive buffer and `PACKET_IGNORE_OUTGOING`, i.e. it sees the frames
/// the interface *receives*. The fd may be used from any thread.
#[derive(Debug)]
pub struct Capture {
    fd: OwnedFd,
    /// ifindex the socket is bound to (in the namespace it was opened in).
    pub ifindex: u32,
}

/// Returns the last OS error with `what` prepended.
pub(crate) fn os_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Opens a raw packet socket bound to `ifname` in the calling thread's
/// namespace. `capture` sets the big buffer and ignore-outgoing options.
pub(crate) fn open_packet_socket(ifname: &str, capture: bool) -> io::Result<(OwnedFd, u32)> {
    let ifindex = ifindex_of(ifname)
        .map_err(|e| io::Error::new(e.kind(), format!("if_nametoindex({ifname}): {e}")))?;
    // Protocol 0 at socket() time: receives nothing until bind() below, so no
    // frame from another interface can sneak into the queue.
    // SAFETY: plain syscall.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(os_err("socket(AF_PACKET)"));
    }
    // SAFETY: `raw` is a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if capture {
        setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 64 << 20)?;
        setsockopt_int(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
    }
    // SAFETY: zeroed sockaddr_ll is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os_err(&format!("bind(AF_PACKET, {ifname})")));
    }
    Ok((fd, ifindex))
}

/// `setsockopt` with an `int` value.
pub(crate) fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: pointer/len describe a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os_err(&format!("setsockopt({level}, {name})")));
    }
    Ok(())
}

impl Capture {
    /// Opens a capture on `ifname` inside namespace `ns` (the socket is created
    /// on a thread in `ns`; the ifindex is looked up there). Panics on error.
    pub fn open(ns: &str, ifname: &str) -> Capture {
        let name = ifname.to_string();
        let (fd, ifindex) = in_netns(ns, move || open_packet_socket(&name, true))
            .unwrap_or_else(|e| panic!("Capture::open({ns}, {ifname}): {e}"));
        Capture { fd, ifindex }
    }

    /// Opens a capture on `ifname` in the calling thread's (normally the root)
    /// namespace. Panics on error.
    pub fn open_host(ifname: &str) -> Capture {
        let (fd, ifindex) = open_packet_socket(ifname, true)
            .unwrap_or_else(|e| panic!("Capture::open_host({ifname}): {e}"));
        Capture { fd, ifindex }
    }

    /// Waits up to `timeout` for one frame and copies it into `buf`
    /// (truncated to `buf.len()`); returns its length, or `None` on timeout.
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            // SAFETY: buf is valid for writes of buf.len() bytes.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                return Some(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                panic!("Capture recv: {e}");
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    panic!("Capture poll: {e}");
                }
            }
        }
    }

    /// Collects frames for which `pred` returns true until `want` of them have
    /// arrived or no frame at all (matching or not) arrived for `idle_timeout`.
    pub fn collect_until(
        &self,
        mut pred: impl FnMut(&[u8]) -> bool,
        want: usize,
        idle_timeout: Duration,
    ) -> Vec<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::new();
        while out.len() < want {
            match self.recv_timeout(&mut buf, idle_timeout) {
                Some(n) => {
                    let frame = &buf[..n];
                    if pred(frame) {
                        out.push(frame.to_vec());
                    }
                }
                None => break,
            }
        }
        out
    }

    /// Discards every frame already queued; returns how many were dropped.
    pub fn drain(&self) -> usize {
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        while self.recv_timeout(&mut buf, Duration::ZERO).is_some() {
            n += 1;
        }
        n
    }
}

/// Sends one raw Ethernet `frame` out of `ifname` in the calling thread's
/// namespace through a throw-away `AF_PACKET` socket. Panics on error.
pub fn send_raw_frame(ifname: &str, frame: &[u8]) {
    let (fd, _) = open_packet_socket(ifname, false)
        .unwrap_or_else(|e| panic!("send_raw_frame({ifname}): {e}"));
    // SAFETY: frame is valid for reads of frame.len() bytes.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
        )
    };
    if n < 0 || n as usize != frame.len() {
        panic!(
            "send_raw_frame({ifname}): {} (sent {n})",
            io::Error::last_os_error()
        );
    }
}

/// [`send_raw_frame`] from inside namespace `ns`.
pub fn ns_send_raw_frame(ns: &str, ifname: &str, frame: &[u8]) {
    let (name, frame) = (ifname.to_string(), frame.to_vec());
    in_netns(ns, move || send_raw_frame(&name, &frame));
}

impl Capture {
    /// Like [`Capture::collect_until`], bumping `progress` for every matching frame.
    pub fn collect_counting(
        &self,
        mut pred: impl FnMut(&[u8]) -> bool,
        want: usize,
        idle_timeout: Duration,
        progress: &std::sync::atomic::AtomicU64,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while out.len() < want {
            match self.recv_timeout(&mut buf, idle_timeout) {
                Some(n) => {
                    if pred(&buf[..n]) {
                        out.push(buf[..n].to_vec());
                        progress.fetch_add(1, Ordering::Release);
                    }
                }
                None => break,
            }
        }
        out
    }
}
