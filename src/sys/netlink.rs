//! Netlink: a socket, request/reply with a time limit, and attribute parsing over
//! plain bytes; with rtnetlink's link table (`RTM_GETLINK`) and its change
//! notifications (`RTMGRP_LINK`) on top.
//!
//! A netlink socket belongs to the network namespace of the thread that created it,
//! so a socket made while setting up a `Flux` keeps answering about *that*
//! namespace, whichever thread later reads it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `RTMGRP_LINK`: link changes.
pub const RTMGRP_LINK: u32 = 1;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const IFINFOMSG_LEN: usize = 16;

const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_XDP: u16 = 43;
const IFLA_NEW_NETNSID: u16 = 45;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;

/// `IFF_UP`: administratively up.
pub const IFF_UP: u32 = 0x1;
/// `IFF_LOWER_UP`: the driver signals carrier.
pub const IFF_LOWER_UP: u32 = 0x1_0000;

/// `XDP_ATTACHED_*`: how the program on a link is attached.
pub const XDP_ATTACHED_DRV: u8 = 1;
/// Generic (SKB) mode.
pub const XDP_ATTACHED_SKB: u8 = 2;
/// Offloaded to the NIC.
pub const XDP_ATTACHED_HW: u8 = 3;
/// Programs in more than one mode.
pub const XDP_ATTACHED_MULTI: u8 = 4;

/// The XDP programs attached to a link, by mode (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkXdp {
    /// `XDP_ATTACHED_*` (0: nothing attached).
    pub attached: u8,
    /// The one program's id, when a single mode is in use.
    pub prog_id: u32,
    /// Native-mode program.
    pub drv_prog_id: u32,
    /// Generic-mode program.
    pub skb_prog_id: u32,
    /// Offloaded program.
    pub hw_prog_id: u32,
}

impl LinkXdp {
    /// The native program's id (also when it is the only one).
    pub fn native(&self) -> u32 {
        match (self.drv_prog_id, self.attached) {
            (0, XDP_ATTACHED_DRV) => self.prog_id,
            (id, _) => id,
        }
    }
    /// The generic program's id (also when it is the only one).
    pub fn generic(&self) -> u32 {
        match (self.skb_prog_id, self.attached) {
            (0, XDP_ATTACHED_SKB) => self.prog_id,
            (id, _) => id,
        }
    }
}

/// One row of the link table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub ifindex: u32,
    /// Current name.
    pub name: String,
    /// `IFF_*` flags.
    pub flags: u32,
    /// MTU.
    pub mtu: u32,
    /// Attached XDP programs.
    pub xdp: LinkXdp,
}

/// A change notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link appeared or changed.
    New(LinkInfo),
    /// A link left this namespace: deleted, or (`new_netnsid` set) moved to another.
    Del {
        /// Its index here.
        ifindex: u32,
        /// The namespace it moved to, when it moved.
        new_netnsid: Option<i32>,
    },
}

/// An `AF_NETLINK` socket of one protocol, in the namespace it was made in.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: std::cell::Cell<u32>,
}

impl AsFd for Netlink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Netlink {
    /// Opens a socket of `protocol` (e.g. `NETLINK_ROUTE`) joined to the multicast
    /// `groups` bitmask (0: none). `nonblocking` for notification sockets; request
    /// sockets block with a receive time-out of `timeout`.
    pub fn open(
        protocol: libc::c_int,
        groups: u32,
        nonblocking: bool,
        timeout: Duration,
    ) -> io::Result<Netlink> {
        let mut ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
        if nonblocking {
            ty |= libc::SOCK_NONBLOCK;
        }
        // SAFETY: plain syscall; the fd is wrapped at once.
        let fd = cvt(unsafe { libc::socket(libc::AF_NETLINK, ty, protocol) })?;
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: zero is a valid sockaddr_nl; the fields are set below.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = groups;
        // SAFETY: `sa` is a valid sockaddr_nl of the size passed.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        if !nonblocking {
            let tv = libc::timeval {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_usec: timeout.subsec_micros() as libc::suseconds_t,
            };
            super::setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        }
        Ok(Netlink {
            fd,
            seq: std::cell::Cell::new(1),
        })
    }

    /// Sends one request of message type `ty` with `payload` (the family header and
    /// attributes) and `flags` besides `NLM_F_REQUEST`; returns its sequence number.
    pub fn send(&self, ty: u16, flags: u16, payload: &[u8]) -> io::Result<u32> {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let len = NLMSG_HDRLEN + payload.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(payload);
        // SAFETY: `msg` is readable for its length; a null address sends to the kernel.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(seq)
    }

    /// Receives one datagram (possibly several messages) into `buf`; `Ok(0)` when a
    /// non-blocking socket has nothing.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(e),
            }
        }
    }

    /// Sends a request and collects the reply messages with its sequence number,
    /// calling `each(type, payload)` for every one, until the kernel says done (or,
    /// for a single-message reply, after it). A netlink error comes back as the
    /// `io::Error` of its errno; a missing reply as `TimedOut`.
    pub fn request(
        &self,
        ty: u16,
        flags: u16,
        payload: &[u8],
        mut each: impl FnMut(u16, &[u8]),
    ) -> io::Result<()> {
        let seq = self.send(ty, flags, payload)?;
        let multi = flags & 0x300 != 0; // NLM_F_DUMP
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = self.recv(&mut buf)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            }
            let mut done = false;
            for (mty, mseq, body) in messages(&buf[..n]) {
                if mseq != seq {
                    continue;
                }
                match mty {
                    NLMSG_ERROR => {
                        let errno = body
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        if errno != 0 {
                            return Err(io::Error::from_raw_os_error(-errno));
                        }
                        done = true;
                    }
                    NLMSG_DONE => done = true,
                    _ => {
                        each(mty, body);
                        if !multi {
                            done = true;
                        }
                    }
                }
            }
            if done {
                return Ok(());
            }
        }
    }
}

/// The messages of one datagram: `(type, sequence, payload)`.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let body = &buf[NLMSG_HDRLEN..len];
        buf = buf.get(align4(len)..).unwrap_or(&[]);
        Some((ty, seq, body))
    })
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The attributes in `buf`: `(type without flag bits, value)`.
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        if len < 4 || len > buf.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        let val = &buf[4..len];
        buf = buf.get(align4(len)..).unwrap_or(&[]);
        Some((ty, val))
    })
}

/// Appends attribute `ty` with `val` (padded to 4 bytes) to `out`.
#[cfg(test)]
pub fn put_attr(out: &mut Vec<u8>, ty: u16, val: &[u8]) {
    let len = 4 + val.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(val);
    out.resize(align4(out.len()), 0);
}

/// A `u32` attribute value (0 when short).
pub fn attr_u32(v: &[u8]) -> u32 {
    v.get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// A NUL-terminated string attribute value.
pub fn attr_str(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn ifinfo(body: &[u8]) -> Option<(u32, u32, &[u8])> {
    if body.len() < IFINFOMSG_LEN {
        return None;
    }
    let index = i32::from_ne_bytes([body[4], body[5], body[6], body[7]]);
    let flags = u32::from_ne_bytes([body[8], body[9], body[10], body[11]]);
    Some((index as u32, flags, &body[IFINFOMSG_LEN..]))
}

fn link_info(body: &[u8]) -> Option<LinkInfo> {
    let (ifindex, flags, rest) = ifinfo(body)?;
    let mut info = LinkInfo {
        ifindex,
        flags,
        ..Default::default()
    };
    for (ty, val) in attrs(rest) {
        match ty {
            IFLA_IFNAME => info.name = attr_str(val),
            IFLA_MTU => info.mtu = attr_u32(val),
            IFLA_XDP => {
                for (xty, xval) in attrs(val) {
                    match xty {
                        IFLA_XDP_ATTACHED => info.xdp.attached = xval.first().copied().unwrap_or(0),
                        IFLA_XDP_PROG_ID => info.xdp.prog_id = attr_u32(xval),
                        IFLA_XDP_DRV_PROG_ID => info.xdp.drv_prog_id = attr_u32(xval),
                        IFLA_XDP_SKB_PROG_ID => info.xdp.skb_prog_id = attr_u32(xval),
                        IFLA_XDP_HW_PROG_ID => info.xdp.hw_prog_id = attr_u32(xval),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(info)
}

/// Parses one rtnetlink link notification (`RTM_NEWLINK` / `RTM_DELLINK`).
pub fn link_event(ty: u16, body: &[u8]) -> Option<LinkEvent> {
    match ty {
        libc::RTM_NEWLINK => link_info(body).map(LinkEvent::New),
        libc::RTM_DELLINK => {
            let (ifindex, _, rest) = ifinfo(body)?;
            let new_netnsid = attrs(rest)
                .find(|(t, _)| *t == IFLA_NEW_NETNSID)
                .map(|(_, v)| attr_u32(v) as i32);
            Some(LinkEvent::Del {
                ifindex,
                new_netnsid,
            })
        }
        _ => None,
    }
}

/// `RTM_GETLINK` for `ifindex` on a `NETLINK_ROUTE` request socket; `Ok(None)` when
/// no such link exists in the socket's namespace.
pub fn get_link(nl: &Netlink, ifindex: u32) -> io::Result<Option<LinkInfo>> {
    let mut req = vec![0u8; IFINFOMSG_LEN];
    req[0] = libc::AF_UNSPEC as u8;
    req[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    let mut out = None;
    match nl.request(libc::RTM_GETLINK, 0, &req, |ty, body| {
        if ty == libc::RTM_NEWLINK {
            out = link_info(body);
        }
    }) {
        Ok(()) => Ok(out),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The MTU of `ifindex` in the calling thread's namespace (`Ok(None)`: no such link).
pub fn link_mtu(ifindex: u32) -> io::Result<Option<u32>> {
    let nl = Netlink::open(libc::NETLINK_ROUTE, 0, false, Duration::from_secs(1))?;
    Ok(get_link(&nl, ifindex)?.map(|l| l.mtu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_and_stop_at_garbage() {
        let mut b = Vec::new();
        put_attr(&mut b, IFLA_IFNAME, b"fx0\0");
        put_attr(&mut b, IFLA_MTU, &1500u32.to_ne_bytes());
        let got: Vec<_> = attrs(&b).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(attr_str(got[0].1), "fx0");
        assert_eq!(attr_u32(got[1].1), 1500);
        // A length running past the end ends the walk instead of panicking.
        let mut bad = b.clone();
        bad[0] = 200;
        assert_eq!(attrs(&bad).count(), 0);
        assert_eq!(attrs(&b[..3]).count(), 0);
    }

    #[test]
    fn link_messages_parse() {
        let mut body = vec![0u8; IFINFOMSG_LEN];
        body[4..8].copy_from_slice(&7i32.to_ne_bytes());
        body[8..12].copy_from_slice(&(IFF_UP | IFF_LOWER_UP).to_ne_bytes());
        put_attr(&mut body, IFLA_MTU, &9000u32.to_ne_bytes());
        let mut xdp = Vec::new();
        put_attr(&mut xdp, IFLA_XDP_ATTACHED, &[XDP_ATTACHED_DRV]);
        put_attr(&mut xdp, IFLA_XDP_PROG_ID, &42u32.to_ne_bytes());
        put_attr(&mut body, IFLA_XDP, &xdp);
        let Some(LinkEvent::New(info)) = link_event(libc::RTM_NEWLINK, &body) else {
            panic!("not parsed");
        };
        assert_eq!((info.ifindex, info.mtu), (7, 9000));
        assert_eq!((info.xdp.native(), info.xdp.generic()), (42, 0));
        let mut del = vec![0u8; IFINFOMSG_LEN];
        del[4..8].copy_from_slice(&7i32.to_ne_bytes());
        put_attr(&mut del, IFLA_NEW_NETNSID, &3u32.to_ne_bytes());
        assert_eq!(
            link_event(libc::RTM_DELLINK, &del),
            Some(LinkEvent::Del {
                ifindex: 7,
                new_netnsid: Some(3)
            })
        );
        assert_eq!(link_event(libc::RTM_NEWLINK, &del[..8]), None);
    }

    #[test]
    fn the_loopback_link_is_in_the_table() {
        let nl = Netlink::open(libc::NETLINK_ROUTE, 0, false, Duration::from_secs(1))
            .expect("netlink socket");
        let lo = get_link(&nl, 1)
            .expect("RTM_GETLINK")
            .expect("lo has ifindex 1");
        assert_eq!(lo.name, "lo");
        assert!(lo.mtu > 0);
        assert_eq!(get_link(&nl, u32::MAX >> 1).expect("RTM_GETLINK"), None);
    }
}
