//! The neighbour responder's TC half (`flux_nd`): attached to the interface's
//! ingress with the XDP program — a tcx link on 6.6 and later, else a `clsact`
//! filter — and detached with it.

use std::os::fd::{AsFd, BorrowedFd};

use libbpf_rs::{MapCore, MapFlags};

use super::program::TcAttachment;
use super::XdpProgram;
use crate::error::{Error, Result, Stage};
use crate::sys;

/// The name of the TC half of the neighbour responder in the embedded object.
pub(super) const RESPONDER_PROG: &str = "flux_nd";

impl XdpProgram {
    /// Attaches `flux_nd` to the interface's TC ingress: a tcx link, else a `clsact`
    /// filter.
    pub(super) fn attach_responder(&mut self) -> Result<()> {
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

    pub(super) fn detach_responder(&mut self) {
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

    /// Neighbour answers (ARP replies, Neighbor Advertisements) the responder sent,
    /// summed over CPUs (0 without [`Neighbours`](super::Neighbours)).
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
}

/// Handle and priority of the responder's `clsact` filter: uncommon values, so that a
/// user's own filters (which tools number from 1) are neither replaced nor removed.
const TC_HANDLE: u32 = 0xf1dd;
const TC_PRIORITY: u32 = 0xf1dd;

/// The `clsact` ingress filter of the responder (kernels without tcx).
fn tc_hook(prog: BorrowedFd<'_>, ifindex: u32) -> libbpf_rs::TcHook {
    let mut hook = libbpf_rs::TcHook::new(prog);
    hook.ifindex(ifindex as i32)
        .replace(true)
        .handle(TC_HANDLE)
        .priority(TC_PRIORITY)
        .attach_point(libbpf_rs::TC_INGRESS);
    hook
}
