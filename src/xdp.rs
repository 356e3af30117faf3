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
    /// address sees the ARP for it.
    pub dst_ipv4: Option<std::net::Ipv4Addr>,
    /// Destination IPv6 address.
    pub dst_ipv6: Option<std::net::Ipv6Addr>,
    /// One socket per port: packets for `dst_ports[i]` on queue `q` go to XSKMAP key
    /// `q + i * queues` (register sockets there with
    /// [`FluxBuilder::xskmap_key`](crate::FluxBuilder::xskmap_key)), so several
    /// sockets sharing a UMEM can split one queue by destination port.
    pub split_by_port: bool,
}

impl SteeringFilter {
    /// No rule set.
    pub fn is_empty(&self) -> bool {
        *self == SteeringFilter::default()
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
}

#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CountersRaw {
    redirected: u64,
    passed: u64,
    filtered: u64,
    dropped: u64,
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
}

#[cfg(target_os = "linux")]
const _: () = assert!(std::mem::size_of::<ConfigRaw>() == 56);

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
        for mut p in open.progs_mut() {
            let keep = p.name() == prog_name;
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
        };
        prog.id = prog
            .with_prog_fd(sys::prog_id)?
            .map_err(|e| Error::kernel(Stage::Load, e))?;
        prog.set_config(filter, drop_every_other, queues)?;
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

    fn set_config(&self, f: &SteeringFilter, drop_every_other: bool, queues: u32) -> Result<()> {
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

    /// Attaches to the interface by `how`. When another program is there it refuses,
    /// naming it ([`Error::ProgramAlreadyAttached`]), unless `replace`: then that
    /// program is detached first (its `bpf_link` detached, or its netlink
    /// attachment removed while it is still that program).
    pub fn attach(&mut self, mode: XdpMode, how: XdpAttach, replace: bool) -> Result<AttachInfo> {
        let mut replaced = None;
        if let Some(e) = existing_program(&self.ifname, self.ifindex) {
            if !replace {
                return Err(e);
            }
            replaced = Some(remove_existing(self.ifindex, e)?);
        }
        let mut info = self.attach_new(mode, how)?;
        if let Some(r) = replaced {
            info.reason = format!("{}; replaced {r}", info.reason);
        }
        Ok(info)
    }

    fn attach_new(&mut self, mode: XdpMode, how: XdpAttach) -> Result<AttachInfo> {
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
        if let Some(Attachment::Netlink(flags, _)) = self.attached.take() {
            // Only while it is still ours: a program someone attached in its place stays.
            let ifindex = self.ifindex;
            let _ = self.with_prog_fd(|fd| sys::xdp_detach_expected(ifindex, flags, fd));
        }
        // A link detaches when its fd closes, right here.
    }
}

#[cfg(target_os = "linux")]
fn config_bytes(c: &ConfigRaw) -> [u8; 56] {
    let mut b = [0u8; 56];
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
    }
}
