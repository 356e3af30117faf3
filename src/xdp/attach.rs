//! Attaching the program — a `bpf_link`, else netlink — refusing or replacing a
//! program already on the interface, and detaching.

use std::os::fd::{AsFd, OwnedFd};

use super::program::Attachment;
use super::{AttachInfo, AttachedMode, XdpAttach, XdpMode, XdpProgram};
use crate::error::{Error, Feature, Result, Stage};
use crate::features::DeviceFeatures;
use crate::sys;

impl XdpProgram {
    /// Attaches to the interface by `how`, with the neighbour responder when the
    /// filter has [`Neighbours`](super::Neighbours). When another program is there it refuses, naming it
    /// ([`Error::ProgramAlreadyAttached`]), unless `replace`: then that program is
    /// detached first (its `bpf_link` detached, or its netlink attachment removed
    /// while it is still that program). `XdpMode::Auto` probes the device first
    /// ([`crate::features::probe`]) and decides from the answer, as set-up does.
    pub fn attach(&mut self, mode: XdpMode, how: XdpAttach, replace: bool) -> Result<AttachInfo> {
        let probe = (mode == XdpMode::Auto)
            .then(|| crate::features::probe_for_setup(&self.ifname, self.ifindex));
        self.attach_probed(mode, how, replace, probe.as_ref())
    }

    /// [`attach`](Self::attach), with `XdpMode::Auto` deciding from the device's
    /// probed features where the kernel answered: generic at once when the driver
    /// does not advertise native XDP, native first when it does (or when nothing is
    /// known); the reason cites the probe.
    pub(crate) fn attach_probed(
        &mut self,
        mode: XdpMode,
        how: XdpAttach,
        replace: bool,
        probe: Option<&DeviceFeatures>,
    ) -> Result<AttachInfo> {
        let mut replaced = None;
        if let Some(e) = existing_program(&self.ifname, self.ifindex) {
            if !replace {
                return Err(e);
            }
            replaced = Some(remove_existing(self.ifindex, e)?);
        }
        let mut info = if self.rx_metadata {
            self.attach_rx_metadata(mode, how, probe)?
        } else {
            self.attach_xdp(mode, how, probe)?
        };
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

    /// The RX-metadata variant is device-bound, and the kernel refuses device-bound
    /// programs in generic mode: native only, whatever `mode` says (Auto does not
    /// fall back), and a typed refusal where native is not possible.
    fn attach_rx_metadata(
        &mut self,
        mode: XdpMode,
        how: XdpAttach,
        probe: Option<&DeviceFeatures>,
    ) -> Result<AttachInfo> {
        let refused = |this: &Self, found: String| {
            Error::Unsupported {
            feature: Feature::RxMetadata,
            ifname: this.ifname.clone(),
            needs: "native (driver) XDP mode: device-bound programs, which the metadata kfuncs need, cannot run in generic mode",
            found,
        }
        };
        if mode == XdpMode::Generic {
            return Err(refused(self, "XdpMode::Generic requested".into()));
        }
        match self.attach_xdp(XdpMode::Native, how, probe) {
            Ok(mut info) => {
                info.reason = format!("{}; RX metadata: device-bound, native only", info.reason);
                Ok(info)
            }
            Err(Error::NativeUnsupported { reason, .. }) => {
                Err(refused(self, format!("native attach failed: {reason}")))
            }
            Err(Error::Kernel { source, .. }) => {
                Err(refused(self, format!("native attach failed: {source}")))
            }
            Err(other) => Err(other),
        }
    }

    pub(super) fn attach_xdp(
        &mut self,
        mode: XdpMode,
        how: XdpAttach,
        probe: Option<&DeviceFeatures>,
    ) -> Result<AttachInfo> {
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
            XdpMode::Auto => match probe.map(|p| (p.native_xdp(), p.summary())) {
                Some((Some(false), summary)) => (
                    sys::XDP_FLAGS_SKB_MODE,
                    AttachedMode::Generic,
                    format!("auto: generic, the driver does not advertise native XDP (basic) [{summary}]"),
                ),
                Some((Some(true), summary)) => (
                    sys::XDP_FLAGS_DRV_MODE,
                    AttachedMode::Native,
                    format!("auto: native, the driver advertises basic XDP [{summary}]"),
                ),
                Some((None, summary)) => (
                    sys::XDP_FLAGS_DRV_MODE,
                    AttachedMode::Native,
                    format!("auto: driver supports native XDP [{summary}]"),
                ),
                None => (
                    sys::XDP_FLAGS_DRV_MODE,
                    AttachedMode::Native,
                    "auto: driver supports native XDP".to_string(),
                ),
            },
        };
        let probe_note = probe.map(|p| {
            let s = p.summary();
            match p.native_xdp() {
                Some(true) => format!(" although the driver advertises basic XDP [{s}]"),
                _ => format!(" [{s}]"),
            }
        });
        let probe_note = probe_note.unwrap_or_default();
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
                            format!("auto: native XDP unavailable ({e}){probe_note}, using generic")
                        }
                        XdpAttach::Netlink => {
                            match self.netlink_attach(flags, AttachedMode::Native, reason.clone())
                            {
                                Ok(info) => return Ok(info),
                                Err(Error::Kernel { source, .. }) => format!(
                                    "auto: native XDP unavailable ({source}){probe_note}, using generic; netlink attach requested"
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
    pub(super) fn netlink_fallback(
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

    pub(super) fn netlink_attach(
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

    pub(super) fn detach_xdp(&mut self) {
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
}

/// The program attached to `ifindex`, if any, as the typed error that names it.
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
