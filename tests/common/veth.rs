//! [`VethPair`]: a veth pair across a private namespace, with unique names and
//! addresses, removed on drop.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, Ordering};

use super::cmd::*;
use super::netns::in_netns;
use super::require_root;

// ---------------------------------------------------------------------------
// Unique names and subnets
// ---------------------------------------------------------------------------

static PAIR_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Lower-case base36 of `v`, zero-padded to at least `width` digits.
pub(crate) fn base36(mut v: u32, width: usize) -> String {
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
pub(crate) fn root_ipv4_addrs() -> Vec<Ipv4Addr> {
    let out = ip_try(&["-o", "-4", "addr", "show"]).unwrap_or_default();
    let toks: Vec<&str> = out.split_whitespace().collect();
    toks.windows(2)
        .filter(|w| w[0] == "inet")
        .filter_map(|w| w[1].split('/').next()?.parse().ok())
        .collect()
}

/// Picks a /30 inside 198.18.0.0/15 (RFC 2544) from (pid, counter), skipping
/// subnets already present in the root namespace. Returns (host_ip, peer_ip).
pub(crate) fn pick_subnet(pid: u32, counter: u32) -> (Ipv4Addr, Ipv4Addr) {
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
pub(crate) fn ipv6_pair_for(host: Ipv4Addr) -> (Ipv6Addr, Ipv6Addr) {
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
