//! What the embedded program sends to the socket ([`SteeringFilter`]) and answers
//! itself ([`Neighbours`]), and the configuration block the program reads them from.

#[cfg(target_os = "linux")]
use crate::error::{Error, Result, Stage};
#[cfg(target_os = "linux")]
use crate::sys;

/// Steering rules for the default program: only matching packets go to the socket,
/// everything else to the kernel stack. Empty rules redirect everything.
///
/// [`neighbours`](Self::neighbours) is not a steering rule: the addresses there are
/// answered by the program itself (ARP, IPv6 neighbour discovery) before any rule is
/// looked at, and what it does not answer is steered by the rules as any packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SteeringFilter {
    /// EtherType (host order), e.g. `0x0800`.
    pub ether_type: Option<u16>,
    /// IP protocol number, e.g. 17 for UDP.
    pub ip_proto: Option<u8>,
    /// Destination UDP/TCP ports (at most 8).
    pub dst_ports: Vec<u16>,
    /// Destination IPv4 address. ARP packets whose target is this address match
    /// too (unless a protocol or port rule is set), so an application that owns an
    /// address sees the ARP for it (unless [`neighbours`](Self::neighbours) answers
    /// it first). With an address rule of one family only, packets of the other IP
    /// family do not match.
    pub dst_ipv4: Option<std::net::Ipv4Addr>,
    /// Destination IPv6 address (see [`dst_ipv4`](Self::dst_ipv4) for the other
    /// family).
    pub dst_ipv6: Option<std::net::Ipv6Addr>,
    /// One socket per port: packets for `dst_ports[i]` on queue `q` go to XSKMAP key
    /// `q + i * queues` (register sockets there with
    /// [`FluxBuilder::xskmap_key`](crate::FluxBuilder::xskmap_key)), so several
    /// sockets sharing a UMEM can split one queue by destination port.
    pub split_by_port: bool,
    /// Addresses the program answers neighbour discovery for itself (see
    /// [`Neighbours`]); empty by default: nothing is answered.
    pub neighbours: Neighbours,
}

impl SteeringFilter {
    /// No steering rule set (whatever [`neighbours`](Self::neighbours) holds): every
    /// packet on a queue with a socket goes to it.
    pub fn is_empty(&self) -> bool {
        SteeringFilter {
            neighbours: Neighbours::default(),
            ..self.clone()
        } == SteeringFilter::default()
    }

    /// These rules, with the program also answering neighbour discovery for `addrs`
    /// (added to [`neighbours`](Self::neighbours); the interface's MAC unless
    /// [`Neighbours::mac`] is set). For a socket that takes every packet (empty
    /// rules) and serves an address, so that clients can resolve it:
    ///
    /// ```
    /// # use fluxcapacitor::SteeringFilter;
    /// let f = SteeringFilter::default().answering(["198.18.0.1".parse().unwrap()]);
    /// assert!(f.is_empty()); // still no steering rule: everything goes to the socket
    /// assert_eq!(f.neighbours.ipv4.len(), 1);
    /// ```
    pub fn answering(mut self, addrs: impl IntoIterator<Item = std::net::IpAddr>) -> Self {
        let more = Neighbours::for_addrs(addrs);
        self.neighbours.ipv4.extend(more.ipv4);
        self.neighbours.ipv6.extend(more.ipv6);
        self
    }

    /// The rules for a service that owns `ipv4` and/or `ipv6` on the interface:
    /// packets to those addresses go to the socket, the program answers ARP and
    /// Neighbor Solicitations for them with the interface's MAC, and everything else
    /// (the host's own traffic) goes to the kernel.
    ///
    /// ```
    /// # use fluxcapacitor::SteeringFilter;
    /// let f = SteeringFilter::serving(Some("198.18.0.1".parse().unwrap()), None);
    /// assert_eq!(f.neighbours.ipv4.len(), 1);
    /// assert!(!f.is_empty());
    /// ```
    pub fn serving(
        ipv4: Option<std::net::Ipv4Addr>,
        ipv6: Option<std::net::Ipv6Addr>,
    ) -> SteeringFilter {
        SteeringFilter {
            dst_ipv4: ipv4,
            dst_ipv6: ipv6,
            neighbours: Neighbours {
                ipv4: ipv4.into_iter().collect(),
                ipv6: ipv6.into_iter().collect(),
                mac: None,
            },
            ..SteeringFilter::default()
        }
    }
}

/// Maximum addresses of each family in [`Neighbours`].
pub const MAX_NEIGHBOUR_ADDRS: usize = 4;

/// Neighbour discovery answered by the embedded program itself, with `XDP_TX`, so
/// that a stock client (whose kernel resolves the service's address before sending)
/// reaches the socket with no static neighbour entry — in engine, system and async
/// mode alike, and with no user-space code.
///
/// Answered, for the listed addresses, on untagged frames, on every queue, by the
/// embedded object itself: its XDP program hands these requests to the kernel path
/// before any steering (so they never reach the socket), and its `flux_nd` TC ingress
/// program, attached with the XDP program, turns them into the reply and sends it out
/// of the interface (not `XDP_TX`: a veth in native mode drops `XDP_TX` frames unless
/// its peer runs NAPI, which a stock client's end does not):
/// * ARP requests (Ethernet/IPv4) → an ARP reply from `mac`. Gratuitous requests
///   (sender address == target address) are not answered.
/// * ICMPv6 Neighbor Solicitations (hop limit 255, right checksum, no option or one
///   8-byte option, not a DAD probe from `::`) → a solicited Neighbor Advertisement
///   (flags S and O) from the target address to the soliciting address, with the
///   target link-layer address option.
///
/// A request for a listed address that is not answered (gratuitous, malformed, odd
/// options) continues to the kernel stack, which ignores it unless it owns the
/// address. Everything else — ARP replies, requests for other addresses, VLAN-tagged
/// requests, other ICMPv6 — is steered by the [`SteeringFilter`] rules like any other
/// packet (with empty rules: to the socket). [`ProgramCounters::nd_requests`](super::ProgramCounters::nd_requests) counts
/// the requests handed over per queue, [`XdpProgram::neighbour_replies`](super::XdpProgram::neighbour_replies) the answers.
///
/// The TC program is attached as a tcx link on kernels 6.6 and later (detached when
/// the program is dropped or the process dies), else through a `clsact` qdisc
/// (detached on drop; a process that is killed leaves that filter behind, and the
/// qdisc stays).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Neighbours {
    /// IPv4 addresses whose ARP requests are answered (at most
    /// [`MAX_NEIGHBOUR_ADDRS`]).
    pub ipv4: Vec<std::net::Ipv4Addr>,
    /// IPv6 addresses whose Neighbor Solicitations are answered (at most
    /// [`MAX_NEIGHBOUR_ADDRS`]).
    pub ipv6: Vec<std::net::Ipv6Addr>,
    /// The link-layer address to answer with; `None`: the interface's own MAC, read
    /// when the program is loaded.
    pub mac: Option<[u8; 6]>,
}

impl Neighbours {
    /// Answer for these addresses, with the interface's MAC.
    pub fn for_addrs(addrs: impl IntoIterator<Item = std::net::IpAddr>) -> Neighbours {
        let mut n = Neighbours::default();
        for a in addrs {
            match a {
                std::net::IpAddr::V4(a) => n.ipv4.push(a),
                std::net::IpAddr::V6(a) => n.ipv6.push(a),
            }
        }
        n
    }

    /// No address to answer for.
    pub fn is_empty(&self) -> bool {
        self.ipv4.is_empty() && self.ipv6.is_empty()
    }
}

/// Maximum ports in a [`SteeringFilter`].
pub const MAX_FILTER_PORTS: usize = 8;

#[cfg(target_os = "linux")]
/// Mirrors `struct flux_config` in `bpf/xsk.bpf.c`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ConfigRaw {
    enabled: u32,
    ether_type: u16,
    ip_proto: u8,
    nports: u8,
    ports: [u16; 8],
    dst_ip4: u32,
    dst_ip6: [u8; 16],
    drop_every_other: u32,
    split_ports: u32,
    nqueues: u32,
    nd_mac: [u8; 6],
    nd_n4: u8,
    nd_n6: u8,
    nd_ip4: [u32; MAX_NEIGHBOUR_ADDRS],
    nd_ip6: [[u8; 16]; MAX_NEIGHBOUR_ADDRS],
}

#[cfg(target_os = "linux")]
pub(super) const CONFIG_LEN: usize = 144;
#[cfg(target_os = "linux")]
const _: () = assert!(std::mem::size_of::<ConfigRaw>() == CONFIG_LEN);

/// The MAC neighbour answers carry: the configured one, else the interface's.
#[cfg(target_os = "linux")]
pub(super) fn neighbour_mac(ifname: &str, n: &Neighbours) -> Result<[u8; 6]> {
    match n.mac {
        Some(m) => Ok(m),
        None if n.is_empty() => Ok([0; 6]),
        None => sys::if_hwaddr(ifname).map_err(|e| Error::Kernel {
            stage: Stage::Load,
            hint: Some(
                "reading the interface's MAC for the neighbour responder failed; set Neighbours::mac",
            ),
            source: e,
        }),
    }
}

/// The program's configuration block (`flux_cfg`) for filter `f`.
#[cfg(target_os = "linux")]
pub(super) fn config_bytes(
    f: &SteeringFilter,
    drop_every_other: bool,
    queues: u32,
    nd_mac: [u8; 6],
) -> [u8; CONFIG_LEN] {
    let mut c = ConfigRaw {
        enabled: (!f.is_empty()) as u32,
        drop_every_other: drop_every_other as u32,
        split_ports: f.split_by_port as u32,
        nqueues: queues.max(1),
        ..Default::default()
    };
    c.ether_type = f.ether_type.unwrap_or(0).to_be();
    c.ip_proto = f.ip_proto.unwrap_or(0);
    c.nports = f.dst_ports.len().min(MAX_FILTER_PORTS) as u8;
    for (d, p) in c.ports.iter_mut().zip(&f.dst_ports) {
        *d = p.to_be();
    }
    c.dst_ip4 = f
        .dst_ipv4
        .map(|a| u32::from_ne_bytes(a.octets()))
        .unwrap_or(0);
    c.dst_ip6 = f.dst_ipv6.map(|a| a.octets()).unwrap_or([0; 16]);
    c.nd_mac = nd_mac;
    let n = &f.neighbours;
    c.nd_n4 = n.ipv4.len().min(MAX_NEIGHBOUR_ADDRS) as u8;
    c.nd_n6 = n.ipv6.len().min(MAX_NEIGHBOUR_ADDRS) as u8;
    for (d, a) in c.nd_ip4.iter_mut().zip(&n.ipv4) {
        *d = u32::from_ne_bytes(a.octets());
    }
    for (d, a) in c.nd_ip6.iter_mut().zip(&n.ipv6) {
        *d = a.octets();
    }
    let c = &c;
    let mut b = [0u8; CONFIG_LEN];
    b[0..4].copy_from_slice(&c.enabled.to_ne_bytes());
    b[4..6].copy_from_slice(&c.ether_type.to_ne_bytes());
    b[6] = c.ip_proto;
    b[7] = c.nports;
    for (i, p) in c.ports.iter().enumerate() {
        b[8 + 2 * i..10 + 2 * i].copy_from_slice(&p.to_ne_bytes());
    }
    b[24..28].copy_from_slice(&c.dst_ip4.to_ne_bytes());
    b[28..44].copy_from_slice(&c.dst_ip6);
    b[44..48].copy_from_slice(&c.drop_every_other.to_ne_bytes());
    b[48..52].copy_from_slice(&c.split_ports.to_ne_bytes());
    b[52..56].copy_from_slice(&c.nqueues.to_ne_bytes());
    b[56..62].copy_from_slice(&c.nd_mac);
    b[62] = c.nd_n4;
    b[63] = c.nd_n6;
    for (i, a) in c.nd_ip4.iter().enumerate() {
        b[64 + 4 * i..68 + 4 * i].copy_from_slice(&a.to_ne_bytes());
    }
    for (i, a) in c.nd_ip6.iter().enumerate() {
        b[80 + 16 * i..96 + 16 * i].copy_from_slice(a);
    }
    b
}
