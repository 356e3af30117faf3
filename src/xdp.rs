//! The XDP program: load the embedded object, size the XSKMAP, attach with a
//! `bpf_link`, register sockets, read counters, detach on drop.

use std::fmt;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

#[cfg(target_os = "linux")]
use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};

#[cfg(target_os = "linux")]
use crate::error::{Error, Result, Stage};
#[cfg(target_os = "linux")]
use crate::sys;

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native (driver) mode if the driver supports it, else generic.
    #[default]
    Auto,
    /// Native (driver) mode only (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic (SKB) mode (`XDP_FLAGS_SKB_MODE`): works everywhere, slower.
    Generic,
}

/// How the program is attached to the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpAttach {
    /// A `bpf_link` (the default; kernel ≥ 5.9, else netlink): the program goes away
    /// when the process dies, and other tools cannot detach it by netlink.
    #[default]
    Link,
    /// Netlink (`IFLA_XDP`), as `ip link set dev X xdp obj …` does: for setups whose
    /// other tools expect it. The program stays if the process dies without
    /// dropping the `Flux` (the next build finds it and says so), and other tools can
    /// detach or replace it — which the device watch notices.
    Netlink,
}

/// The mode a program actually runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    /// Driver mode.
    Native,
    /// SKB mode.
    Generic,
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        })
    }
}

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
/// packet (with empty rules: to the socket). [`ProgramCounters::nd_requests`] counts
/// the requests handed over per queue, [`XdpProgram::neighbour_replies`] the answers.
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

/// Per-queue counters of the default program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramCounters {
    /// Packets redirected to the socket.
    pub redirected: u64,
    /// Packets passed to the kernel because no socket was registered on the queue.
    pub passed: u64,
    /// Packets passed to the kernel because the steering filter did not match.
    pub filtered: u64,
    /// Packets dropped by the program's test hook.
    pub dropped: u64,
    /// ARP requests and Neighbor Solicitations for [`Neighbours`] addresses handed to
    /// the responder instead of the socket.
    pub nd_requests: u64,
}

#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CountersRaw {
    redirected: u64,
    passed: u64,
    filtered: u64,
    dropped: u64,
    nd_requests: u64,
}

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
const CONFIG_LEN: usize = 144;
#[cfg(target_os = "linux")]
const _: () = assert!(std::mem::size_of::<ConfigRaw>() == CONFIG_LEN);

#[cfg(target_os = "linux")]
/// The compiled default program, embedded at build time (the same object the
/// generated skeleton carries).
const BPF_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xsk.bpf.o"));

/// Maximum ports in a [`SteeringFilter`].
pub const MAX_FILTER_PORTS: usize = 8;

#[cfg(target_os = "linux")]
/// The loaded default program, attached or not.
pub struct XdpProgram {
    obj: Object,
    prog_name: &'static str,
    ifindex: u32,
    ifname: String,
    attached: Option<Attachment>,
    /// The loaded program's id (what `bpf_xdp_query` reports while it is attached).
    id: u32,
    /// The neighbour responder is loaded (and attached with the XDP program).
    responder: bool,
    responder_attached: Option<TcAttachment>,
}

#[cfg(target_os = "linux")]
/// The name of the TC half of the neighbour responder in the embedded object.
const RESPONDER_PROG: &str = "flux_nd";

#[cfg(target_os = "linux")]
enum TcAttachment {
    /// A tcx link: detaches when this fd closes.
    Link(#[allow(dead_code)] OwnedFd),
    /// A `clsact` filter (kernels before 6.6), [`TC_HANDLE`] / [`TC_PRIORITY`] on the
    /// program's interface: detached in Drop.
    Netlink,
}

#[cfg(target_os = "linux")]
enum Attachment {
    /// A bpf_link: detaches when this fd (our only reference) closes.
    Link(#[allow(dead_code)] OwnedFd, AttachedMode),
    /// Netlink attachment (kernels without XDP links): detached in Drop.
    Netlink(u32, AttachedMode),
}

#[cfg(target_os = "linux")]
impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("prog", &self.prog_name)
            .field("ifname", &self.ifname)
            .field("mode", &self.mode())
            .finish()
    }
}

/// How the attach went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachInfo {
    /// The mode the program runs in.
    pub mode: AttachedMode,
    /// Attached through a `bpf_link` (auto-detaches when the process dies).
    pub link: bool,
    /// Why this mode (e.g. why native was not used).
    pub reason: String,
}

#[cfg(target_os = "linux")]
impl XdpProgram {
    /// Loads the embedded program with an XSKMAP of `queues` entries and the given
    /// steering rules. `frags` selects the `xdp.frags` variant for multi-buffer sockets.
    pub fn load(
        ifname: &str,
        ifindex: u32,
        queues: u32,
        frags: bool,
        filter: &SteeringFilter,
        drop_every_other: bool,
    ) -> Result<XdpProgram> {
        let bpf = |e| Error::Bpf {
            stage: Stage::Load,
            source: e,
        };
        let mut open = ObjectBuilder::default()
            .open_memory(BPF_OBJECT)
            .map_err(bpf)?;
        for mut m in open.maps_mut() {
            let name = m.name().to_string_lossy().into_owned();
            if name == "flux_stats" {
                m.set_max_entries(queues.max(1)).map_err(bpf)?;
            }
            if name == "xsks_map" {
                // One key per queue (per port and queue when ports are split), and as
                // many again for standby sockets that can be swapped in at run time.
                let slots = if filter.split_by_port {
                    filter.dst_ports.len().max(1) as u32
                } else {
                    1
                };
                m.set_max_entries(queues.max(1) * slots * 2).map_err(bpf)?;
            }
        }
        let prog_name = if frags { "flux_xsk_frags" } else { "flux_xsk" };
        let responder = !filter.neighbours.is_empty();
        for mut p in open.progs_mut() {
            let keep = p.name() == prog_name || (responder && p.name() == RESPONDER_PROG);
            p.set_autoload(keep);
        }
        let obj = open.load().map_err(|e| {
            // Surface missing privileges as the typed permission error.
            if e.kind() == libbpf_rs::ErrorKind::PermissionDenied {
                Error::kernel(Stage::Load, std::io::Error::from_raw_os_error(libc::EPERM))
            } else {
                bpf(e)
            }
        })?;
        let mut prog = XdpProgram {
            obj,
            prog_name,
            ifindex,
            ifname: ifname.to_string(),
            attached: None,
            id: 0,
            responder,
            responder_attached: None,
        };
        prog.id = prog
            .with_prog_fd(sys::prog_id)?
            .map_err(|e| Error::kernel(Stage::Load, e))?;
        let nd_mac = neighbour_mac(ifname, &filter.neighbours)?;
        prog.set_config(filter, drop_every_other, queues, nd_mac)?;
        Ok(prog)
    }

    fn map(&self, name: &str) -> Result<libbpf_rs::Map<'_>> {
        self.obj
            .maps()
            .find(|m| m.name() == name)
            .ok_or_else(|| Error::Kernel {
                stage: Stage::Load,
                hint: Some("the embedded object lacks a map; rebuild the crate"),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
    }

    fn set_config(
        &self,
        f: &SteeringFilter,
        drop_every_other: bool,
        queues: u32,
        nd_mac: [u8; 6],
    ) -> Result<()> {
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
        let bytes = config_bytes(&c);
        self.map("flux_cfg")?
            .update(&0u32.to_ne_bytes(), &bytes, MapFlags::ANY)
            .map_err(|e| Error::Bpf {
                stage: Stage::MapUpdate,
                source: e,
            })
    }

    fn with_prog_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Result<R> {
        self.obj
            .progs()
            .find(|p| p.name() == self.prog_name)
            .map(|p| f(p.as_fd()))
            .ok_or_else(|| Error::Kernel {
                stage: Stage::Attach,
                hint: Some("program missing from the embedded object"),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
    }

    /// Attaches to the interface by `how`, with the neighbour responder when the
    /// filter has [`Neighbours`]. When another program is there it refuses, naming it
    /// ([`Error::ProgramAlreadyAttached`]), unless `replace`: then that program is
    /// detached first (its `bpf_link` detached, or its netlink attachment removed
    /// while it is still that program).
    pub fn attach(&mut self, mode: XdpMode, how: XdpAttach, replace: bool) -> Result<AttachInfo> {
        let mut replaced = None;
        if let Some(e) = existing_program(&self.ifname, self.ifindex) {
            if !replace {
                return Err(e);
            }
            replaced = Some(remove_existing(self.ifindex, e)?);
        }
        let mut info = self.attach_xdp(mode, how)?;
        if let Some(r) = replaced {
            info.reason = format!("{}; replaced {r}", info.reason);
        }
        if self.responder {
            if let Err(e) = self.attach_responder() {
                self.detach_xdp();
                return Err(e);
            }
        }
        Ok(info)
    }

    /// Attaches `flux_nd` to the interface's TC ingress: a tcx link, else a `clsact`
    /// filter.
    fn attach_responder(&mut self) -> Result<()> {
        let ifindex = self.ifindex;
        let prog = self
            .obj
            .progs()
            .find(|p| p.name() == RESPONDER_PROG)
            .ok_or_else(|| Error::Kernel {
                stage: Stage::Attach,
                hint: Some("the neighbour responder is missing from the embedded object"),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })?;
        let attached = match sys::tcx_ingress_link_create(prog.as_fd(), ifindex) {
            Ok(link) => TcAttachment::Link(link),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                // No tcx (kernel < 6.6): a filter on the clsact qdisc.
                let mut hook = tc_hook(prog.as_fd(), ifindex);
                let tc = |e: libbpf_rs::Error| {
                    Error::Kernel {
                    stage: Stage::Attach,
                    hint: Some(
                        "attaching the neighbour responder to TC ingress failed (needs cls_bpf / clsact)",
                    ),
                    source: std::io::Error::other(e.to_string()),
                }
                };
                hook.create().map_err(tc)?;
                hook.attach().map_err(tc)?;
                TcAttachment::Netlink
            }
            Err(e) => {
                return Err(Error::Kernel {
                    stage: Stage::Attach,
                    hint: Some("attaching the neighbour responder to TC ingress failed"),
                    source: e,
                })
            }
        };
        self.responder_attached = Some(attached);
        Ok(())
    }

    fn detach_responder(&mut self) {
        match self.responder_attached.take() {
            Some(TcAttachment::Netlink) => {
                let ifindex = self.ifindex;
                if let Some(p) = self.obj.progs().find(|p| p.name() == RESPONDER_PROG) {
                    let _ = tc_hook(p.as_fd(), ifindex).detach();
                }
            }
            // Detached now, not when the last copy of the fd closes (see detach_xdp).
            Some(TcAttachment::Link(fd)) => {
                let _ = sys::link_detach(fd.as_fd());
            }
            None => {}
        }
    }

    fn detach_xdp(&mut self) {
        match self.attached.take() {
            Some(Attachment::Netlink(flags, _)) => {
                // Only while it is still ours: a program someone attached in its place
                // stays.
                let ifindex = self.ifindex;
                let _ = self.with_prog_fd(|fd| sys::xdp_detach_expected(ifindex, flags, fd));
            }
            // Closing our fd detaches the program only once no other process holds a
            // copy; a child forked by another thread holds one until it execs. Detach
            // explicitly, so the program is gone when the drop returns.
            Some(Attachment::Link(fd, _)) => {
                let _ = sys::link_detach(fd.as_fd());
            }
            None => {}
        }
    }

    /// Neighbour answers (ARP replies, Neighbor Advertisements) the responder sent,
    /// summed over CPUs (0 without [`Neighbours`]).
    pub fn neighbour_replies(&self) -> Result<u64> {
        let per_cpu = self
            .map("flux_nd_stats")?
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| Error::Bpf {
                stage: Stage::Query,
                source: e,
            })?
            .unwrap_or_default();
        Ok(per_cpu
            .iter()
            .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()))
            .map(u64::from_ne_bytes)
            .sum())
    }

    fn attach_xdp(&mut self, mode: XdpMode, how: XdpAttach) -> Result<AttachInfo> {
        let try_link = |this: &Self, flags: u32| -> Result<std::io::Result<OwnedFd>> {
            if how == XdpAttach::Netlink {
                return Ok(Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)));
            }
            this.with_prog_fd(|fd| sys::xdp_link_create(fd, this.ifindex, flags))
        };
        let (flags, mode_used, reason) = match mode {
            XdpMode::Native => (
                sys::XDP_FLAGS_DRV_MODE,
                AttachedMode::Native,
                "native requested".to_string(),
            ),
            XdpMode::Generic => (
                sys::XDP_FLAGS_SKB_MODE,
                AttachedMode::Generic,
                "generic requested".to_string(),
            ),
            XdpMode::Auto => (
                sys::XDP_FLAGS_DRV_MODE,
                AttachedMode::Native,
                "auto: driver supports native XDP".to_string(),
            ),
        };
        let reason = match how {
            XdpAttach::Link => reason,
            XdpAttach::Netlink => format!("{reason}; netlink attach requested"),
        };
        match try_link(self, flags)? {
            Ok(link) => {
                self.attached = Some(Attachment::Link(link, mode_used));
                Ok(AttachInfo {
                    mode: mode_used,
                    link: true,
                    reason,
                })
            }
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(0);
                if matches!(errno, libc::EEXIST | libc::EBUSY) {
                    if let Some(e) = existing_program(&self.ifname, self.ifindex) {
                        return Err(e);
                    }
                }
                if errno == libc::EPERM {
                    return Err(Error::kernel(Stage::Attach, e));
                }
                if mode == XdpMode::Auto && flags == sys::XDP_FLAGS_DRV_MODE {
                    // Native failed: fall back to generic, and say why.
                    let why = match how {
                        XdpAttach::Link => {
                            format!("auto: native XDP unavailable ({e}), using generic")
                        }
                        XdpAttach::Netlink => {
                            match self.netlink_attach(flags, AttachedMode::Native, reason.clone())
                            {
                                Ok(info) => return Ok(info),
                                Err(Error::Kernel { source, .. }) => format!(
                                    "auto: native XDP unavailable ({source}), using generic; netlink attach requested"
                                ),
                                Err(other) => return Err(other),
                            }
                        }
                    };
                    match try_link(self, sys::XDP_FLAGS_SKB_MODE)? {
                        Ok(link) => {
                            self.attached = Some(Attachment::Link(link, AttachedMode::Generic));
                            return Ok(AttachInfo {
                                mode: AttachedMode::Generic,
                                link: true,
                                reason: why,
                            });
                        }
                        Err(e2) => {
                            return self.netlink_fallback(
                                sys::XDP_FLAGS_SKB_MODE,
                                AttachedMode::Generic,
                                e2,
                                why,
                            )
                        }
                    }
                }
                if mode == XdpMode::Native && !matches!(errno, libc::EINVAL | libc::EOPNOTSUPP) {
                    return Err(Error::NativeUnsupported {
                        ifname: self.ifname.clone(),
                        reason: e.to_string(),
                        source: e,
                    });
                }
                let (m, r) = (mode_used, reason);
                match self.netlink_fallback(flags, m, e, r) {
                    Err(Error::Kernel { source, .. }) if mode == XdpMode::Native => {
                        Err(Error::NativeUnsupported {
                            ifname: self.ifname.clone(),
                            reason: source.to_string(),
                            source,
                        })
                    }
                    other => other,
                }
            }
        }
    }

    /// Kernels without XDP links (< 5.9), or netlink requested: attach through
    /// netlink and detach in Drop.
    fn netlink_fallback(
        &mut self,
        flags: u32,
        mode: AttachedMode,
        link_err: std::io::Error,
        reason: String,
    ) -> Result<AttachInfo> {
        if !matches!(
            link_err.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
        ) {
            return Err(Error::kernel(Stage::Attach, link_err));
        }
        let reason = if reason.contains("netlink attach requested") {
            reason
        } else {
            format!("{reason}; netlink attach (no XDP link support: {link_err})")
        };
        self.netlink_attach(flags, mode, reason)
    }

    fn netlink_attach(
        &mut self,
        flags: u32,
        mode: AttachedMode,
        reason: String,
    ) -> Result<AttachInfo> {
        let ifindex = self.ifindex;
        self.with_prog_fd(|fd| {
            sys::xdp_netlink_attach(ifindex, Some(fd), flags | sys::XDP_FLAGS_UPDATE_IF_NOEXIST)
        })?
        .map_err(|e| Error::kernel(Stage::Attach, e))?;
        self.attached = Some(Attachment::Netlink(flags, mode));
        Ok(AttachInfo {
            mode,
            link: false,
            reason,
        })
    }

    /// The mode the program is attached in, if attached.
    pub fn mode(&self) -> Option<AttachedMode> {
        match &self.attached {
            Some(Attachment::Link(_, m)) | Some(Attachment::Netlink(_, m)) => Some(*m),
            None => None,
        }
    }

    /// Registers a socket at XSKMAP key `key` (its queue, unless ports are split),
    /// replacing any socket there: traffic moves to it at once.
    pub fn register(&self, key: u32, xsk: BorrowedFd<'_>) -> Result<()> {
        let fd = xsk.as_raw_fd() as u32;
        self.map("xsks_map")?
            .update(&key.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| Error::Bpf {
                stage: Stage::MapUpdate,
                source: e,
            })
    }

    /// Removes the socket registered at `key`; its traffic goes to the kernel.
    pub fn unregister(&self, key: u32) -> Result<()> {
        match self.map("xsks_map")?.delete(&key.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Bpf {
                stage: Stage::MapUpdate,
                source: e,
            }),
        }
    }

    /// Counters of `queue`, summed over CPUs.
    pub fn counters(&self, queue: u32) -> Result<ProgramCounters> {
        let per_cpu = self
            .map("flux_stats")?
            .lookup_percpu(&queue.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| Error::Bpf {
                stage: Stage::Query,
                source: e,
            })?
            .unwrap_or_default();
        let mut c = ProgramCounters::default();
        for v in per_cpu {
            let r = counters_from_bytes(&v);
            c.redirected += r.redirected;
            c.passed += r.passed;
            c.filtered += r.filtered;
            c.dropped += r.dropped;
            c.nd_requests += r.nd_requests;
        }
        Ok(c)
    }

    /// The interface index the program is for.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The program's id (as `bpftool prog` and `ip link` show it).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Runs the loaded program once on `frame` as if received on queue 0
    /// (`BPF_PROG_TEST_RUN`; attached or not): the XDP action (`XDP_PASS` = 2,
    /// `XDP_TX` = 3, `XDP_REDIRECT` = 4, ...) and the frame as the program left it.
    /// For tests of the program's own behaviour (steering, neighbour answers).
    #[doc(hidden)]
    pub fn test_run(&mut self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let name = self.prog_name;
        self.test_run_prog(name, frame)
    }

    /// [`XdpProgram::test_run`] for the TC half of the neighbour responder: the TC
    /// action (`TC_ACT_OK` = 0, `TC_ACT_REDIRECT` = 7) and the frame it leaves.
    #[doc(hidden)]
    pub fn test_run_responder(&mut self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        self.test_run_prog(RESPONDER_PROG, frame)
    }

    fn test_run_prog(&mut self, name: &str, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let mut out = vec![0u8; frame.len() + 4096];
        let prog = self
            .obj
            .progs_mut()
            .find(|p| p.name() == name)
            .ok_or_else(|| Error::Kernel {
                stage: Stage::Query,
                hint: Some("program missing from the embedded object"),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })?;
        let input = libbpf_rs::ProgramInput {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        };
        let output = prog.test_run(input).map_err(|e| Error::Bpf {
            stage: Stage::Query,
            source: e,
        })?;
        let data = output.data.map(|d| d.to_vec()).unwrap_or_default();
        Ok((output.return_value, data))
    }
}

/// The program attached to `ifindex`, if any, as the typed error that names it.
#[cfg(target_os = "linux")]
pub(crate) fn existing_program(ifname: &str, ifindex: u32) -> Option<Error> {
    let found = sys::xdp_query(ifindex).ok()??;
    let mode = match found.mode {
        sys::netlink::XDP_ATTACHED_DRV => "native",
        sys::netlink::XDP_ATTACHED_SKB => "generic",
        sys::netlink::XDP_ATTACHED_HW => "offloaded",
        sys::netlink::XDP_ATTACHED_MULTI => "several modes",
        _ => "unknown mode",
    };
    let link = matches!(sys::xdp_link_on(ifindex), Ok(Some(_)));
    Some(Error::ProgramAlreadyAttached {
        ifname: ifname.to_string(),
        ours: found.name.starts_with("flux_xsk"),
        name: found.name,
        id: found.id,
        mode,
        link,
    })
}

/// Detaches the program `existing` names (a `ProgramAlreadyAttached`); returns a
/// description for the report.
#[cfg(target_os = "linux")]
fn remove_existing(ifindex: u32, existing: Error) -> Result<String> {
    let Error::ProgramAlreadyAttached { name, id, mode, .. } = &existing else {
        return Err(existing);
    };
    let what = format!("program {name:?} (id {id}, {mode})");
    let res = match sys::xdp_link_on(ifindex) {
        Ok(Some(link)) => sys::link_detach_by_id(link),
        _ => {
            let flags = match *mode {
                "generic" => sys::XDP_FLAGS_SKB_MODE,
                "offloaded" => sys::XDP_FLAGS_HW_MODE,
                _ => sys::XDP_FLAGS_DRV_MODE,
            };
            sys::xdp_detach_id(ifindex, flags, *id)
        }
    };
    res.map_err(|e| Error::Kernel {
        stage: Stage::Attach,
        hint: Some("could not detach the program already on the interface (replace_program)"),
        source: e,
    })?;
    Ok(what)
}

#[cfg(target_os = "linux")]
impl Drop for XdpProgram {
    fn drop(&mut self) {
        self.detach_responder();
        self.detach_xdp();
        // A link detaches when its fd closes, right here.
    }
}

/// Handle and priority of the responder's `clsact` filter: uncommon values, so that a
/// user's own filters (which tools number from 1) are neither replaced nor removed.
#[cfg(target_os = "linux")]
const TC_HANDLE: u32 = 0xf1dd;
#[cfg(target_os = "linux")]
const TC_PRIORITY: u32 = 0xf1dd;

/// The `clsact` ingress filter of the responder (kernels without tcx).
#[cfg(target_os = "linux")]
fn tc_hook(prog: BorrowedFd<'_>, ifindex: u32) -> libbpf_rs::TcHook {
    let mut hook = libbpf_rs::TcHook::new(prog);
    hook.ifindex(ifindex as i32)
        .replace(true)
        .handle(TC_HANDLE)
        .priority(TC_PRIORITY)
        .attach_point(libbpf_rs::TC_INGRESS);
    hook
}

/// The MAC neighbour answers carry: the configured one, else the interface's.
#[cfg(target_os = "linux")]
fn neighbour_mac(ifname: &str, n: &Neighbours) -> Result<[u8; 6]> {
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

#[cfg(target_os = "linux")]
fn config_bytes(c: &ConfigRaw) -> [u8; CONFIG_LEN] {
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

#[cfg(target_os = "linux")]
fn counters_from_bytes(v: &[u8]) -> CountersRaw {
    let word = |i: usize| {
        v.get(i * 8..i * 8 + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_ne_bytes)
            .unwrap_or(0)
    };
    CountersRaw {
        redirected: word(0),
        passed: word(1),
        filtered: word(2),
        dropped: word(3),
        nd_requests: word(4),
    }
}
