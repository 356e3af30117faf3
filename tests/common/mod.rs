//! Shared fixture for the integration tests (`mod common;` in `tests/*.rs`).
//!
//! Everything here needs root (`CAP_NET_ADMIN`, `CAP_BPF`, `CAP_SYS_ADMIN` for
//! `setns`); tests call [`require_root`] (or [`VethPair::new`], which calls it)
//! and therefore *fail* rather than skip when not run as root.
//!
//! Network plumbing is done with iproute2 (`ip`) so the fixture needs no crate
//! beyond `libc`. Every network namespace and veth this module creates has a
//! name starting with `fx`, so `scripts/test.sh` can detect leftovers.
//!
//! All traffic stays between the veth ends of a [`VethPair`]: the host end in
//! the test's own (root) namespace and the peer end in a private namespace.
#![allow(dead_code)]

#[cfg(feature = "raw")]
pub mod raw;

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `PACKET_IGNORE_OUTGOING` from `<linux/if_packet.h>` (stable ABI value).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// Panics unless the effective uid is 0. Never skips: a test that needs the
/// kernel must fail loudly when it cannot run.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        panic!(
            "these tests need root (CAP_NET_ADMIN, CAP_BPF): run scripts/test.sh as root \
             (current euid {euid})"
        );
    }
}

// ---------------------------------------------------------------------------
// Command helpers
// ---------------------------------------------------------------------------

/// Runs `ip ARGS...`; returns stdout on success, a description including
/// stderr on failure.
fn ip_try(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `ip ARGS...` and panics with its stderr if it fails.
fn ip(args: &[&str]) -> String {
    ip_try(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads the MAC of `ifname` from `ip -o link show` output (optionally `-n NS`).
fn link_mac(ns: Option<&str>, ifname: &str) -> [u8; 6] {
    let mut args = Vec::new();
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["-o", "link", "show", "dev", ifname]);
    let out = ip(&args);
    let toks: Vec<&str> = out.split_whitespace().collect();
    let mac = toks
        .windows(2)
        .find(|w| w[0] == "link/ether")
        .and_then(|w| parse_mac(w[1]));
    if let Some(mac) = mac {
        return mac;
    }
    panic!("no link/ether address for {ifname} in: {out}");
}

/// `if_nametoindex(3)` in the calling thread's network namespace.
fn ifindex_of(ifname: &str) -> io::Result<u32> {
    let c = CString::new(ifname).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// Writes a sysctl through `/proc/sys` of the calling thread's namespace
/// for the root namespace, or with `ip netns exec NS sysctl` inside `ns`.
fn sysctl(ns: Option<&str>, key: &str, value: &str) {
    match ns {
        None => {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::write(&path, value)
                .unwrap_or_else(|e| panic!("cannot write {value} to {path}: {e}"));
        }
        Some(ns) => {
            let kv = format!("{key}={value}");
            ip(&["netns", "exec", ns, "sysctl", "-q", "-w", &kv]);
        }
    }
}

// ---------------------------------------------------------------------------
// Unique names and subnets
// ---------------------------------------------------------------------------

static PAIR_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Lower-case base36 of `v`, zero-padded to at least `width` digits.
fn base36(mut v: u32, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while v > 0 {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
    }
    while out.len() < width {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// IPv4 addresses currently configured in the calling namespace.
fn root_ipv4_addrs() -> Vec<Ipv4Addr> {
    let out = ip_try(&["-o", "-4", "addr", "show"]).unwrap_or_default();
    let toks: Vec<&str> = out.split_whitespace().collect();
    toks.windows(2)
        .filter(|w| w[0] == "inet")
        .filter_map(|w| w[1].split('/').next()?.parse().ok())
        .collect()
}

/// Picks a /30 inside 198.18.0.0/15 (RFC 2544) from (pid, counter), skipping
/// subnets already present in the root namespace. Returns (host_ip, peer_ip).
fn pick_subnet(pid: u32, counter: u32) -> (Ipv4Addr, Ipv4Addr) {
    const BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
    const SLOTS: u32 = 1 << 15; // 2^17 addresses / 4
    let used = root_ipv4_addrs();
    let start = ((pid % 512) << 6 | (counter % 64)) % SLOTS;
    for i in 0..SLOTS {
        let slot = (start + i.wrapping_mul(7919)) % SLOTS;
        let net = BASE + slot * 4;
        let host = Ipv4Addr::from(net + 1);
        let peer = Ipv4Addr::from(net + 2);
        if !used.contains(&host) && !used.contains(&peer) {
            return (host, peer);
        }
    }
    panic!("no free /30 left in 198.18.0.0/15");
}

// ---------------------------------------------------------------------------
// VethPair
// ---------------------------------------------------------------------------

/// Options for [`VethPair::new`].
#[derive(Debug, Clone)]
pub struct VethOpts {
    /// Number of RX and TX queues on each end (default 1).
    pub queues: u32,
    /// MTU for both ends; `None` keeps the kernel default (1500).
    pub mtu: Option<u32>,
    /// IPv6 on both ends, with [`VethPair::host_ip6`] and [`VethPair::peer_ip6`]
    /// (default off: no router solicitations or MLD reports in the tests that count
    /// frames).
    pub ipv6: bool,
}

impl Default for VethOpts {
    fn default() -> Self {
        VethOpts {
            queues: 1,
            mtu: None,
            ipv6: false,
        }
    }
}

/// The /64 of 2001:2::/48 (RFC 5180, IPv6 benchmarking) that goes with an IPv4 /30
/// of [`pick_subnet`]: `2001:2:0:SLOT::1` (host) and `::2` (peer), as unique as the
/// /30.
fn ipv6_pair_for(host: Ipv4Addr) -> (Ipv6Addr, Ipv6Addr) {
    let slot = (u32::from(host) - u32::from(Ipv4Addr::new(198, 18, 0, 0))) / 4;
    let s = slot as u16;
    (
        Ipv6Addr::new(0x2001, 2, 0, s, 0, 0, 0, 1),
        Ipv6Addr::new(0x2001, 2, 0, s, 0, 0, 0, 2),
    )
}

/// A veth pair whose `host` end lives in the current (root) namespace and
/// whose `peer` end lives in a fresh namespace `ns`, both up, addressed from a
/// unique /30 in 198.18.0.0/15 (and, with [`VethOpts::ipv6`], a unique /64 in
/// 2001:2::/48; IPv6 is disabled otherwise). Default offloads, and no static
/// neighbour entries: the peer resolves the host end's addresses as any client
/// does, so a test whose XDP program takes the traffic for an address answers
/// neighbour discovery for it (`SteeringFilter::neighbours`).
///
/// Dropping it deletes the veth and the namespace (errors are printed, never
/// panicked on). Cleanup is RAII: **keep the value alive for the whole test**
/// (`let pair = VethPair::new(..)`, not `let _ = ..`); it then also runs when
/// the test panics.
#[derive(Debug)]
pub struct VethPair {
    /// Host-end interface name (root namespace), e.g. `fx0k3x21h`.
    pub host: String,
    /// Peer-end interface name (inside `ns`), e.g. `fx0k3x21p`.
    pub peer: String,
    /// Network namespace name (`/var/run/netns/NAME`), e.g. `fx0k3x21n`.
    pub ns: String,
    /// IPv4 address of the host end.
    pub host_ip: Ipv4Addr,
    /// IPv4 address of the peer end.
    pub peer_ip: Ipv4Addr,
    /// IPv6 address of the host end (configured only with [`VethOpts::ipv6`]).
    pub host_ip6: Ipv6Addr,
    /// IPv6 address of the peer end (configured only with [`VethOpts::ipv6`]).
    pub peer_ip6: Ipv6Addr,
    /// MAC of the host end.
    pub host_mac: [u8; 6],
    /// MAC of the peer end.
    pub peer_mac: [u8; 6],
    /// ifindex of the host end (root namespace).
    pub host_ifindex: u32,
    /// ifindex of the peer end (inside `ns`).
    pub peer_ifindex: u32,
    /// Queue count each end was created with.
    pub queues: u32,
    created_ns: bool,
    created_link: bool,
}

impl VethPair {
    /// Creates the namespace and the pair; panics with the failing command's
    /// stderr on any error (whatever was already created is removed).
    pub fn new(opts: VethOpts) -> VethPair {
        require_root();
        assert!(opts.queues >= 1, "VethOpts::queues must be >= 1");
        let pid = std::process::id();
        let counter = PAIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        // "fx" + 5 base36 digits of pid (fixed width, pid_max <= 2^22 < 36^5)
        // + counter in base36 + 1-char suffix: <= 15 chars (IFNAMSIZ - 1).
        let stem = format!("fx{}{}", base36(pid, 5), base36(counter, 1));
        assert!(stem.len() < 15, "name stem too long: {stem}");
        let (host_ip, peer_ip) = pick_subnet(pid, counter);
        let (host_ip6, peer_ip6) = ipv6_pair_for(host_ip);

        // Build the value first so that Drop cleans up if anything below panics.
        let mut pair = VethPair {
            host: format!("{stem}h"),
            peer: format!("{stem}p"),
            ns: format!("{stem}n"),
            host_ip,
            peer_ip,
            host_ip6,
            peer_ip6,
            host_mac: [0; 6],
            peer_mac: [0; 6],
            host_ifindex: 0,
            peer_ifindex: 0,
            queues: opts.queues,
            created_ns: false,
            created_link: false,
        };
        let (host, peer, ns) = (pair.host.clone(), pair.peer.clone(), pair.ns.clone());

        // Names embed our pid, which no live process shares: anything already
        // using them is left over from a dead process that reused this pid.
        if ifindex_of(&host).is_ok() {
            eprintln!("VethPair: removing stale link {host}");
            let _ = ip_try(&["link", "del", "dev", &host]);
        }
        if std::path::Path::new(&format!("/var/run/netns/{ns}")).exists() {
            eprintln!("VethPair: removing stale namespace {ns}");
            let _ = ip_try(&["netns", "del", &ns]);
        }

        ip(&["netns", "add", &ns]);
        pair.created_ns = true;
        // New interfaces in the namespace start with IPv6 off: no RS/DAD/MLD.
        sysctl(Some(&ns), "net.ipv6.conf.all.disable_ipv6", "1");
        sysctl(Some(&ns), "net.ipv6.conf.default.disable_ipv6", "1");

        let q = opts.queues.to_string();
        // numrxqueues/numtxqueues must precede `type veth`; the peer is created
        // directly inside the namespace.
        pair.created_link = true;
        ip(&[
            "link",
            "add",
            &host,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "netns",
            &ns,
        ]);
        // The host end is still down, so nothing has been sent yet.
        if opts.ipv6 {
            // IPv6 without duplicate address detection or router solicitations, so
            // the addresses are usable at once and the link stays quiet.
            for (ns, dev) in [(None, host.as_str()), (Some(ns.as_str()), peer.as_str())] {
                for (key, v) in [
                    ("disable_ipv6", "0"),
                    ("accept_dad", "0"),
                    ("router_solicitations", "0"),
                    ("accept_ra", "0"),
                ] {
                    sysctl(ns, &format!("net.ipv6.conf.{dev}.{key}"), v);
                }
            }
        } else {
            sysctl(None, &format!("net.ipv6.conf.{host}.disable_ipv6"), "1");
            sysctl(
                Some(&ns),
                &format!("net.ipv6.conf.{peer}.disable_ipv6"),
                "1",
            );
        }
        if let Some(mtu) = opts.mtu {
            let m = mtu.to_string();
            ip(&["link", "set", "dev", &host, "mtu", &m]);
            ip(&["-n", &ns, "link", "set", "dev", &peer, "mtu", &m]);
        }

        pair.host_mac = link_mac(None, &host);
        pair.peer_mac = link_mac(Some(&ns), &peer);
        pair.host_ifindex =
            ifindex_of(&host).unwrap_or_else(|e| panic!("if_nametoindex({host}): {e}"));
        let peer_name = peer.clone();
        pair.peer_ifindex = in_netns(&ns, move || ifindex_of(&peer_name))
            .unwrap_or_else(|e| panic!("if_nametoindex({peer}) in {ns}: {e}"));

        let host_cidr = format!("{host_ip}/30");
        let peer_cidr = format!("{peer_ip}/30");
        ip(&["addr", "add", &host_cidr, "dev", &host]);
        ip(&["-n", &ns, "addr", "add", &peer_cidr, "dev", &peer]);
        if opts.ipv6 {
            let (h6, p6) = (format!("{host_ip6}/64"), format!("{peer_ip6}/64"));
            ip(&["addr", "add", &h6, "dev", &host, "nodad"]);
            ip(&["-n", &ns, "addr", "add", &p6, "dev", &peer, "nodad"]);
        }
        ip(&["-n", &ns, "link", "set", "dev", "lo", "up"]);
        ip(&["link", "set", "dev", &host, "up"]);
        ip(&["-n", &ns, "link", "set", "dev", &peer, "up"]);

        pair
    }

    /// Host end's address and `port` as a socket address.
    pub fn host_addr(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.host_ip, port)
    }

    /// Peer end's address and `port` as a socket address.
    pub fn peer_addr(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.peer_ip, port)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end deletes both. If the link is already gone (e.g.
        // creation failed half-way) that is fine and not reported.
        let link = match self.created_link {
            true => ip_try(&["link", "del", "dev", &self.host]),
            false => Ok(String::new()),
        };
        match link {
            Err(e) if ifindex_of(&self.host).is_ok() => eprintln!("VethPair drop: {e}"),
            _ => {}
        }
        let ns = match self.created_ns {
            true => ip_try(&["netns", "del", &self.ns]),
            false => Ok(String::new()),
        };
        if let Err(e) = ns {
            eprintln!("VethPair drop: {e}");
        }
    }
}

// ---------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------

/// Runs `f` on a fresh thread that first joins network namespace `ns`
/// (`setns(CLONE_NEWNET)` on `/var/run/netns/NS`), and returns its result.
/// `setns` only affects the calling thread, hence the thread. Panics in `f`
/// are propagated to the caller. Sockets created inside `f` stay bound to
/// `ns` and may be used from any thread afterwards.
pub fn in_netns<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let path = format!("/var/run/netns/{ns}");
    let handle = std::thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: valid fd for the duration of the call.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                panic!(
                    "setns({path}, CLONE_NEWNET): {}",
                    io::Error::last_os_error()
                );
            }
            drop(file);
            f()
        })
        .expect("spawn netns thread");
    match handle.join() {
        Ok(r) => r,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

// ---------------------------------------------------------------------------
// UDP traffic
// ---------------------------------------------------------------------------

/// Inside `ns`, binds a UDP socket to `src` and sends every payload to `dst`,
/// optionally sleeping `pace` between datagrams. Local ENOBUFS/EAGAIN are
/// retried so no datagram is dropped by the sender; other errors panic.
pub fn udp_send_from_ns(
    ns: &str,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payloads: Vec<Vec<u8>>,
    pace: Option<Duration>,
) {
    in_netns(ns, move || {
        let sock = UdpSocket::bind(src).unwrap_or_else(|e| panic!("bind {src}: {e}"));
        for (i, p) in payloads.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match sock.send_to(p, dst) {
                    Ok(_) => break,
                    Err(e)
                        if (e.raw_os_error() == Some(libc::ENOBUFS)
                            || e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::Interrupted)
                            && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(e) => panic!("send_to {dst} (datagram {i}): {e}"),
                }
            }
            if let Some(d) = pace {
                std::thread::sleep(d);
            }
        }
    })
}

/// Pattern byte at offset `i` of a payload with sequence number `seq`.
fn seq_byte(seq: u32, i: usize) -> u8 {
    (seq.wrapping_mul(31).wrapping_add(i as u32 * 7) ^ (i as u32 >> 8)) as u8
}

/// A payload of `len` bytes (at least 4): `seq` big-endian in the first 4
/// bytes, then a pattern derived from `seq` and the offset.
pub fn seq_payload(seq: u32, len: usize) -> Vec<u8> {
    assert!(len >= 4, "seq_payload needs len >= 4");
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((4..len).map(|i| seq_byte(seq, i)));
    p
}

/// Returns the sequence number of a [`seq_payload`] payload if its pattern is
/// intact, `None` if it is too short or corrupted.
pub fn check_seq_payload(p: &[u8]) -> Option<u32> {
    if p.len() < 4 {
        return None;
    }
    let seq = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    p.iter()
        .enumerate()
        .skip(4)
        .all(|(i, &b)| b == seq_byte(seq, i))
        .then_some(seq)
}

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
fn os_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Opens a raw packet socket bound to `ifname` in the calling thread's
/// namespace. `capture` sets the big buffer and ignore-outgoing options.
fn open_packet_socket(ifname: &str, capture: bool) -> io::Result<(OwnedFd, u32)> {
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
fn setsockopt_int(
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

// ---------------------------------------------------------------------------
// Frame building / parsing
// ---------------------------------------------------------------------------

/// Adds `data` as big-endian 16-bit words to a ones-complement accumulator.
fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds the accumulator and returns the ones-complement checksum.
fn csum_finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Internet checksum (RFC 1071) of `data`.
pub fn ipv4_checksum(data: &[u8]) -> u16 {
    csum_finish(csum_add(0, data))
}

/// UDP checksum over the IPv4 pseudo header and `udp` (header with a zero
/// checksum field, plus payload). A result of 0 is sent as 0xffff.
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let mut sum = csum_add(0, &src.octets());
    sum = csum_add(sum, &dst.octets());
    sum += 17; // zero byte + protocol
    sum += udp.len() as u32;
    sum = csum_add(sum, udp);
    match csum_finish(sum) {
        0 => 0xffff,
        c => c,
    }
}

/// Builds an Ethernet II + IPv4 (no options, DF, TTL 64) + UDP frame with
/// correct IPv4 header and UDP checksums.
pub fn build_udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    assert!(ip_len <= 0xffff, "payload too large for one IPv4 packet");
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    // IPv4 header
    f.push(0x45); // version 4, IHL 5
    f.push(0); // DSCP/ECN
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&0u16.to_be_bytes()); // identification
    f.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
    f.push(64); // TTL
    f.push(17); // UDP
    f.extend_from_slice(&[0, 0]); // checksum placeholder
    f.extend_from_slice(&src.ip().octets());
    f.extend_from_slice(&dst.ip().octets());
    let ip_csum = ipv4_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&ip_csum.to_be_bytes());
    // UDP header + payload
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let udp_csum = udp_checksum(*src.ip(), *dst.ip(), &f[34..]);
    f[40..42].copy_from_slice(&udp_csum.to_be_bytes());
    f
}

/// Parses an Ethernet II/IPv4/UDP frame (no VLAN tag, unfragmented); returns
/// (source, destination, UDP payload). Checks ethertype 0x0800, version, IHL,
/// protocol 17 and the IPv4/UDP lengths; does not verify checksums.
pub fn parse_udp_frame(frame: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, &[u8])> {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let (version, ihl) = (ip[0] >> 4, usize::from(ip[0] & 0x0f) * 4);
    if version != 4 || ihl < 20 || ip.len() < ihl || ip[9] != 17 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if total < ihl + 8 || total > ip.len() || frag & 0x3fff != 0 {
        return None;
    }
    let udp = &ip[ihl..total];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 || udp_len > udp.len() {
        return None;
    }
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    Some((
        SocketAddrV4::new(src_ip, sport),
        SocketAddrV4::new(dst_ip, dport),
        &udp[8..udp_len],
    ))
}

// ---------------------------------------------------------------------------
// XDP attachment checks
// ---------------------------------------------------------------------------

/// True if `ip -d link show` output lists an XDP program (any mode).
fn output_shows_xdp(out: &str) -> bool {
    out.split_whitespace().any(|t| {
        matches!(
            t,
            "xdp" | "xdpgeneric" | "xdpdrv" | "xdpoffload" | "xdpmulti"
        ) || t.starts_with("prog/xdp")
    })
}

/// True if an XDP program (native, generic or offloaded) is attached to
/// `ifname` in the current namespace; false if none or the link is missing.
pub fn xdp_attached(ifname: &str) -> bool {
    ip_try(&["-d", "link", "show", "dev", ifname])
        .map(|o| output_shows_xdp(&o))
        .unwrap_or(false)
}

/// Like [`xdp_attached`] for `ifname` inside namespace `ns`.
pub fn ns_xdp_attached(ns: &str, ifname: &str) -> bool {
    ip_try(&["-n", ns, "-d", "link", "show", "dev", ifname])
        .map(|o| output_shows_xdp(&o))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Resource counters (leak checks)
// ---------------------------------------------------------------------------

/// Number of open file descriptors of this process (entries of
/// `/proc/self/fd`, not counting the one used to list them). Note that other
/// tests running in parallel threads also open fds.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
        .saturating_sub(1)
}

/// `bpf(2)` command numbers from `<linux/bpf.h>`.
const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_MAP_GET_NEXT_ID: libc::c_long = 12;

/// Prefix of `union bpf_attr` used by the `*_GET_NEXT_ID` commands, padded to
/// 128 zeroed bytes (the kernel requires unknown tail bytes to be zero).
#[repr(C)]
struct BpfGetNextIdAttr {
    start_id: u32,
    next_id: u32,
    open_flags: u32,
    _pad: [u8; 116],
}

/// Walks a `*_GET_NEXT_ID` id space system-wide.
fn bpf_ids(cmd: libc::c_long) -> Vec<u32> {
    let mut ids = Vec::new();
    let mut start = 0u32;
    loop {
        let mut attr = BpfGetNextIdAttr {
            start_id: start,
            next_id: 0,
            open_flags: 0,
            _pad: [0; 116],
        };
        // SAFETY: attr is a valid, fully initialised 128-byte bpf_attr prefix.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                &mut attr as *mut BpfGetNextIdAttr,
                std::mem::size_of::<BpfGetNextIdAttr>() as libc::c_uint,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) {
                return ids;
            }
            panic!("bpf(GET_NEXT_ID {cmd}): {e}");
        }
        ids.push(attr.next_id);
        start = attr.next_id;
    }
}

/// Ids of all BPF programs loaded system-wide (`BPF_PROG_GET_NEXT_ID`).
/// System-wide: compare before/after sets, not absolute counts.
pub fn bpf_prog_ids() -> Vec<u32> {
    bpf_ids(BPF_PROG_GET_NEXT_ID)
}

/// Ids of all BPF maps existing system-wide (`BPF_MAP_GET_NEXT_ID`).
pub fn bpf_map_ids() -> Vec<u32> {
    bpf_ids(BPF_MAP_GET_NEXT_ID)
}

/// Names of veth interfaces in the current namespace starting with `p`.
pub fn veth_names_with_prefix(p: &str) -> Vec<String> {
    let out = ip(&["-o", "link", "show", "type", "veth"]);
    out.lines()
        .filter_map(|l| {
            // "12: fx0h@if11: <...>" or "12: fx0h@fx0p: <...>"
            let name = l.split(": ").nth(1)?;
            let name = name.split('@').next()?.trim_end_matches(':');
            name.starts_with(p).then(|| name.to_string())
        })
        .collect()
}

/// Names of network namespaces (`ip netns list`) starting with `p`.
pub fn netns_names_with_prefix(p: &str) -> Vec<String> {
    ip_try(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(p))
        .map(str::to_string)
        .collect()
}

/// Sends UDP datagrams from the namespace in bursts of 64 with a short pause between
/// bursts: veth hands packets to the receiving queue through a 256-entry ring (native
/// mode) or the 1000-entry backlog (generic mode) and drops what does not fit before
/// any XDP program sees it. The pause keeps tests about the library, not that queue.
/// `src_ports` > 1 spreads the datagrams over that many source ports (flows).
pub fn send_paced(
    ns: &str,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payloads: Vec<Vec<u8>>,
    src_ports: u16,
) {
    in_netns(ns, move || {
        let socks: Vec<UdpSocket> = (0..src_ports.max(1))
            .map(|i| {
                let a = SocketAddrV4::new(*src.ip(), src.port() + i);
                UdpSocket::bind(a).unwrap_or_else(|e| panic!("bind {a}: {e}"))
            })
            .collect();
        for (b, burst) in payloads.chunks(64).enumerate() {
            for (i, p) in burst.iter().enumerate() {
                let s = &socks[(b * 64 + i) % socks.len()];
                while let Err(e) = s.send_to(p, dst) {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "send: {e}");
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            std::thread::sleep(Duration::from_micros(300));
        }
    })
}

/// `ip -s link show` of an interface inside a namespace (for failure messages).
pub fn ns_link_stats(ns: &str, ifname: &str) -> String {
    Command::new("ip")
        .args(["-n", ns, "-s", "link", "show", "dev", ifname])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Like [`send_paced`], with flow control: datagram `i` is sent only once fewer than
/// `window` earlier ones are still unaccounted for by `progress` (a counter the
/// receiving side bumps per datagram it saw). This keeps kernel queues (the veth
/// ring, the peer backlog) from overflowing under CPU contention, so that a test
/// measures the library and not a busy machine. If progress stalls for 2 s the sender
/// carries on, and the test's own count check reports the loss.
pub fn send_windowed(
    ns: &str,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payloads: Vec<Vec<u8>>,
    src_ports: u16,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
    window: u64,
) {
    in_netns(ns, move || {
        let socks: Vec<UdpSocket> = (0..src_ports.max(1))
            .map(|i| {
                let a = SocketAddrV4::new(*src.ip(), src.port() + i);
                UdpSocket::bind(a).unwrap_or_else(|e| panic!("bind {a}: {e}"))
            })
            .collect();
        let mut windowed = true;
        for (i, p) in payloads.iter().enumerate() {
            let mut waited = Instant::now();
            let mut last = progress.load(Ordering::Acquire);
            while windowed && (i as u64).saturating_sub(last) >= window {
                std::thread::sleep(Duration::from_micros(50));
                let now = progress.load(Ordering::Acquire);
                if now != last {
                    last = now;
                    waited = Instant::now();
                } else if waited.elapsed() > Duration::from_secs(2) {
                    // Progress stalled (packets lost): send the rest unthrottled
                    // and let the test's count check report the loss.
                    eprintln!("send_windowed: no progress at {i} (seen {now}); sending the rest");
                    windowed = false;
                }
            }
            let s = &socks[i % socks.len()];
            while let Err(e) = s.send_to(p, dst) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "send: {e}");
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    })
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

/// Kernel tests need root. Without it they fail when `FLUX_REQUIRE_ROOT_TESTS` is
/// set (scripts/test.sh and CI set it: there a root test must never be skipped), and
/// otherwise skip with a loud note — so that `cargo test --no-default-features
/// --features sim,engine,system` runs its simulated-device suite as a normal user.
pub fn skip_without_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    if std::env::var_os("FLUX_REQUIRE_ROOT_TESTS").is_some() {
        require_root();
    }
    eprintln!(
        "SKIPPED: this test needs root (CAP_NET_ADMIN, CAP_BPF); run scripts/test.sh as root"
    );
    true
}
