//! The embedded object loaded: its maps sized and configured, sockets registered in
//! its XSKMAP, its counters read, and everything undone on drop.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};

use super::filter::{config_bytes, neighbour_mac};
use super::responder::RESPONDER_PROG;
use super::{AttachedMode, ProgramCounters, SteeringFilter};
use crate::error::{Error, Feature, Result, Stage};
use crate::sys;

/// The compiled default program, embedded at build time (the same object the
/// generated skeleton carries).
const BPF_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xsk.bpf.o"));

/// The loaded default program, attached or not.
pub struct XdpProgram {
    pub(super) obj: Object,
    pub(super) prog_name: &'static str,
    pub(super) ifindex: u32,
    pub(super) ifname: String,
    pub(super) attached: Option<Attachment>,
    /// The loaded program's id (what `bpf_xdp_query` reports while it is attached).
    pub(super) id: u32,
    /// The neighbour responder is loaded (and attached with the XDP program).
    pub(super) responder: bool,
    pub(super) responder_attached: Option<TcAttachment>,
    /// The RX-metadata variant, loaded device-bound to `ifindex`.
    pub(super) rx_metadata: bool,
}

pub(super) enum TcAttachment {
    /// A tcx link: detaches when this fd closes.
    Link(#[allow(dead_code)] OwnedFd),
    /// A `clsact` filter (kernels before 6.6), [`TC_HANDLE`] / [`TC_PRIORITY`] on the
    /// program's interface: detached in Drop.
    Netlink,
}

pub(super) enum Attachment {
    /// A bpf_link: detaches when this fd (our only reference) closes.
    Link(#[allow(dead_code)] OwnedFd, AttachedMode),
    /// Netlink attachment (kernels without XDP links): detached in Drop.
    Netlink(u32, AttachedMode),
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("prog", &self.prog_name)
            .field("ifname", &self.ifname)
            .field("mode", &self.mode())
            .finish()
    }
}

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
        Self::load_variant(
            ifname,
            ifindex,
            queues,
            frags,
            filter,
            drop_every_other,
            false,
        )
    }

    /// [`XdpProgram::load`] of the RX-metadata variant: loaded device-bound to
    /// `ifindex` (the XDP metadata kfuncs require it), it writes the packet's RX
    /// metadata in front of every packet it redirects (see [`crate::RxMetadata`]).
    /// It can only be attached in native mode.
    ///
    /// # Errors
    /// [`Error::Unsupported`] with [`Feature::RxMetadata`] when the kernel refuses a
    /// device-bound program for this interface (before Linux 6.3, or a device that
    /// cannot bind one); otherwise as [`XdpProgram::load`].
    pub fn load_rx_metadata(
        ifname: &str,
        ifindex: u32,
        queues: u32,
        frags: bool,
        filter: &SteeringFilter,
        drop_every_other: bool,
    ) -> Result<XdpProgram> {
        Self::load_variant(
            ifname,
            ifindex,
            queues,
            frags,
            filter,
            drop_every_other,
            true,
        )
    }

    fn load_variant(
        ifname: &str,
        ifindex: u32,
        queues: u32,
        frags: bool,
        filter: &SteeringFilter,
        drop_every_other: bool,
        rx_metadata: bool,
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
        let prog_name = match (frags, rx_metadata) {
            (false, false) => "flux_xsk",
            (true, false) => "flux_xsk_frags",
            (false, true) => "flux_xsk_meta",
            (true, true) => "flux_xsk_meta_frags",
        };
        let responder = !filter.neighbours.is_empty();
        for mut p in open.progs_mut() {
            let keep = p.name() == prog_name || (responder && p.name() == RESPONDER_PROG);
            p.set_autoload(keep);
            if rx_metadata && p.name() == prog_name {
                // The metadata kfuncs are resolved against the device's driver at load.
                p.set_ifindex(ifindex);
                // (libbpf adds BPF_F_XDP_HAS_FRAGS for `xdp.frags` at load as well.)
                let frag_flag = if frags {
                    libbpf_sys::BPF_F_XDP_HAS_FRAGS
                } else {
                    0
                };
                p.set_flags(libbpf_sys::BPF_F_XDP_DEV_BOUND_ONLY | frag_flag);
            }
        }
        let obj = open.load().map_err(|e| {
            // Surface missing privileges as the typed permission error.
            if e.kind() == libbpf_rs::ErrorKind::PermissionDenied {
                Error::kernel(Stage::Load, std::io::Error::from_raw_os_error(libc::EPERM))
            } else if rx_metadata {
                rx_metadata_refused(ifname, &e)
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
            rx_metadata,
        };
        prog.id = prog
            .with_prog_fd(sys::prog_id)?
            .map_err(|e| Error::kernel(Stage::Load, e))?;
        let nd_mac = neighbour_mac(ifname, &filter.neighbours)?;
        prog.set_config(filter, drop_every_other, queues, nd_mac)?;
        Ok(prog)
    }

    pub(super) fn map(&self, name: &str) -> Result<libbpf_rs::Map<'_>> {
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
        let bytes = config_bytes(f, drop_every_other, queues, nd_mac);
        self.map("flux_cfg")?
            .update(&0u32.to_ne_bytes(), &bytes, MapFlags::ANY)
            .map_err(|e| Error::Bpf {
                stage: Stage::MapUpdate,
                source: e,
            })
    }

    pub(super) fn with_prog_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Result<R> {
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
            c.meta_missing += r.meta_missing;
        }
        Ok(c)
    }

    /// This is the RX-metadata variant ([`XdpProgram::load_rx_metadata`]).
    pub fn rx_metadata(&self) -> bool {
        self.rx_metadata
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

impl Drop for XdpProgram {
    fn drop(&mut self) {
        self.detach_responder();
        self.detach_xdp();
        // A link detaches when its fd closes, right here.
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CountersRaw {
    redirected: u64,
    passed: u64,
    filtered: u64,
    dropped: u64,
    nd_requests: u64,
    meta_missing: u64,
}

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
        meta_missing: word(5),
    }
}

/// The typed refusal of a device-bound load of the RX-metadata variant.
fn rx_metadata_refused(ifname: &str, e: &libbpf_rs::Error) -> Error {
    let release = sys::kernel_release();
    let old = release.1.is_none_or(|v| v < (6, 3));
    Error::Unsupported {
        feature: Feature::RxMetadata,
        ifname: ifname.to_string(),
        needs: "Linux 6.3 or later (XDP metadata kfuncs; the VLAN tag needs 6.8) and a device that accepts device-bound XDP programs",
        found: if old {
            format!("Linux {}", release.0)
        } else if e.kind() == libbpf_rs::ErrorKind::Unsupported {
            format!(
                "Linux {}, and the device cannot bind XDP programs (no native XDP in its driver): {e}",
                release.0
            )
        } else {
            format!("Linux {}, and the device-bound load failed: {e}", release.0)
        },
    }
}
