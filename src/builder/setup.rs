//! Set-up, step by step, each step calling the module that owns its concept: the
//! interface (`netdev`), the UMEM, the socket (create, bind, options), FILL, the
//! program (`xdp`), registration, the device watch. A step that fails returns the
//! typed error; what earlier steps made is dropped, so nothing is left behind.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;

use super::validate::Checked;
use super::FluxBuilder;
use crate::device::{Device, DeviceOps, KernelSocket};
use crate::error::{ConfigError, Error, Feature, Result, Stage};
use crate::features::{self, DeviceFeatures};
use crate::flux::{Attached, Flux, SetupReport};
use crate::netdev;
use crate::ring::Rings;
use crate::socket::{self, BindMode, BindParams};
use crate::umem::{FramePool, Umem};
use crate::watch::{self, WatchParams};
use crate::xdp::{self, AttachedMode, XdpProgram};

/// The interface as set-up found it.
struct Interface {
    ifindex: u32,
    rx_queues: u32,
    tx_queues: u32,
    /// What the kernel says the device offers (the netdev probe; never fails).
    features: DeviceFeatures,
}

/// The UMEM the socket uses: its own, or its owner's.
struct UmemChoice {
    umem: Arc<Umem>,
    /// The UMEM owner's device, when this socket shares one (`XDP_SHARED_UMEM`).
    owner: Option<Device>,
    /// Shared with a socket on the same interface and queue: no FILL/COMPLETION of
    /// its own.
    same_queue: bool,
}

/// Every step, in order.
pub(super) fn run(checked: Checked) -> Result<Flux> {
    let mut b = checked.into_inner();
    let iface = interface(&mut b)?;
    refuse_what_does_not_fit(&b, &iface)?;
    let u = umem(&b, &iface)?;
    let (sock, mut rings) = socket(&b, &iface, &u)?;
    let tx_budget = socket::set_tx_budget(sock.fd(), b.tx_budget)?;
    let zero_copy = sock
        .zero_copy()
        .map_err(|e| Error::kernel(Stage::Query, e))?;
    if zero_copy {
        u.umem.set_zero_copy();
    }
    let mut report = report(&b, &iface, &u, zero_copy, tx_budget);
    let pool = fill(&b, &u, &mut rings, &sock);
    let program = program(&mut b, &iface, &mut report)?;
    if b.rx_metadata {
        u.umem.set_rx_metadata();
        report.rx_metadata = true;
    }
    register(&b, program.as_ref(), &sock)?;
    report.zero_copy_reason =
        zero_copy_reason(zero_copy, b.bind_mode, report.xdp_mode, &iface.features);
    report.multi_buffer_reason =
        multi_buffer_reason(b.multi_buffer, zero_copy, report.xdp_mode, &iface.features);
    let watch = if b.watch {
        Some(watch::register(WatchParams {
            ifname: b.ifname.clone(),
            ifindex: iface.ifindex,
            queue: b.queue,
            program: program.as_ref().and_then(|p| p.mode().map(|m| (p.id(), m))),
            max_packet: (!b.multi_buffer && !b.drop_oversize).then(|| b.umem_max_packet()),
            link_down: b.link_down,
        })?)
    } else {
        None
    };
    Ok(Flux::new(
        (Device::new(sock), rings, u.umem, pool),
        Attached {
            report,
            program,
            user_map: b.user_map,
            watch,
        },
    ))
}

/// Looks the interface up, takes the owner's program for a sharer on the same
/// interface, and checks the queue.
fn interface(b: &mut FluxBuilder) -> Result<Interface> {
    let ifindex = netdev::index(&b.ifname)?;
    // A sharer on the owner's interface registers into the owner's program.
    if b.program.is_none() && b.load_xdp {
        if let Some(s) = b.shared.as_ref().filter(|s| s.ifindex == ifindex) {
            b.program = s.program.clone();
        }
    }
    let (rx_queues, tx_queues) = netdev::queue_counts(&b.ifname);
    if b.queue >= rx_queues {
        return Err(ConfigError::QueueOutOfRange {
            ifname: b.ifname.clone(),
            queue: b.queue,
            count: rx_queues,
        }
        .into());
    }
    let features = features::probe_for_setup(&b.ifname, ifindex);
    Ok(Interface {
        ifindex,
        rx_queues,
        tx_queues,
        features,
    })
}

/// Refuses, before any memory or socket is made, a program already on the interface
/// and an MTU a frame cannot hold.
fn refuse_what_does_not_fit(b: &FluxBuilder, iface: &Interface) -> Result<()> {
    if b.load_xdp && b.program.is_none() && !b.replace_program {
        if let Some(e) = xdp::existing_program(&b.ifname, iface.ifindex) {
            return Err(e);
        }
    }
    let max_packet = b.umem_max_packet();
    if !b.multi_buffer && !b.drop_oversize {
        if let Some(mtu) = netdev::mtu(iface.ifindex) {
            if mtu + 14 > max_packet {
                return Err(ConfigError::MtuTooLarge {
                    ifname: b.ifname.clone(),
                    mtu,
                    max_packet,
                }
                .into());
            }
        }
    }
    Ok(())
}

/// The socket's own UMEM, or the owner's.
fn umem(b: &FluxBuilder, iface: &Interface) -> Result<UmemChoice> {
    match &b.shared {
        Some(s) => {
            let same_queue = s.ifindex == iface.ifindex && s.queue == b.queue;
            if same_queue && b.explicit.fill_ring {
                return Err(ConfigError::SharedUmem(
                    "a socket on the owner's interface and queue uses the owner's FILL and COMPLETION rings; give it none (RingSizes { fill: 0, completion: 0, .. })",
                )
                .into());
            }
            Ok(UmemChoice {
                umem: s.umem.clone(),
                owner: Some(s.device.clone()),
                same_queue,
            })
        }
        None => {
            let umem = Umem::new(b.umem).map_err(|e| Error::kernel(Stage::UmemAlloc, e))?;
            if b.tx_metadata {
                // XDP_TXMD_FLAGS_LAUNCH_TIME is known from Linux 6.15.
                let launch = crate::sys::kernel_release().1.is_some_and(|v| v >= (6, 15));
                umem.set_tx_metadata(launch);
            }
            Ok(UmemChoice {
                umem: Arc::new(umem),
                owner: None,
                same_queue: false,
            })
        }
    }
}

/// Creates the socket and its rings and binds it to (interface, queue).
fn socket(b: &FluxBuilder, iface: &Interface, u: &UmemChoice) -> Result<(KernelSocket, Rings)> {
    let mut sizes = b.rings;
    if u.same_queue {
        // One FILL/COMPLETION pair per (device, queue): the owner's.
        sizes.fill = 0;
        sizes.completion = 0;
    }
    let (fd, rings) = socket::create(&u.umem, u.owner.is_none(), sizes).map_err(|e| match e {
        // Kernels before 6.8 know no `tx_metadata_len` (nor, before 6.11 and the
        // stable updates, its XDP_UMEM_TX_METADATA_LEN flag) and refuse it.
        Error::Kernel {
            stage: Stage::UmemRegister,
            ref source,
            ..
        } if b.tx_metadata && source.raw_os_error() == Some(libc::EINVAL) => Error::Unsupported {
            feature: Feature::TxMetadata,
            ifname: b.ifname.clone(),
            needs: "Linux 6.8 or later (AF_XDP TX metadata, tx_metadata_len with XDP_UMEM_TX_METADATA_LEN)",
            found: format!("Linux {}, which refused the registration: {source}", crate::sys::kernel_release().0),
        },
        other => other,
    })?;
    socket::bind(
        &fd,
        &BindParams {
            ifname: b.ifname.clone(),
            ifindex: iface.ifindex,
            queue: b.queue,
            mode: bind_mode(b.bind_mode, &iface.features),
            need_wakeup: b.need_wakeup,
            multi_buffer: b.multi_buffer,
            shared_with: u
                .owner
                .as_ref()
                .and_then(|d| d.socket())
                .map(|f| f.as_raw_fd()),
            busy_retry: b.busy_retry,
        },
    )?;
    Ok((KernelSocket(fd), rings))
}

/// The mode to bind with: `Auto` binds in copy mode at once where the probe says
/// the driver has no zero-copy, and otherwise lets the kernel try zero-copy first.
fn bind_mode(asked: BindMode, f: &DeviceFeatures) -> BindMode {
    match (asked, f.zero_copy()) {
        (BindMode::Auto, Some(false)) => BindMode::Copy,
        (m, _) => m,
    }
}

fn report(
    b: &FluxBuilder,
    iface: &Interface,
    u: &UmemChoice,
    zero_copy: bool,
    tx_budget: u32,
) -> SetupReport {
    SetupReport {
        ifname: b.ifname.clone(),
        ifindex: iface.ifindex,
        queue: b.queue,
        rx_queues: iface.rx_queues,
        tx_queues: iface.tx_queues,
        xdp_mode: None,
        link: false,
        attach_reason: String::new(),
        zero_copy,
        zero_copy_reason: String::new(),
        need_wakeup: b.need_wakeup,
        huge_pages: u.umem.huge_pages(),
        frame_size: u.umem.frame_size(),
        frame_count: u.umem.frame_count(),
        headroom: u.umem.headroom(),
        multi_buffer: b.multi_buffer,
        multi_buffer_reason: String::new(),
        tx_budget,
        shared_umem: u.owner.is_some(),
        xskmap_key: b.xskmap_key.unwrap_or(b.queue),
        features: Some(iface.features.clone()),
        rx_metadata: false,
        tx_metadata: u.umem.tx_metadata(),
    }
}

/// The frame pool, and FILL loaded before the socket is registered anywhere, so that
/// the first packet redirected to it finds a frame. A sharer's frames are the owner's.
fn fill(b: &FluxBuilder, u: &UmemChoice, rings: &mut Rings, sock: &KernelSocket) -> Arc<FramePool> {
    let pool = Arc::new(match u.owner {
        Some(_) => FramePool::empty(&u.umem),
        None => FramePool::new(&u.umem),
    });
    if b.prefill {
        if let Some(fill) = rings.fill.as_mut() {
            let n = crate::driver::prefill(u.umem.frame_count(), b.rings);
            fill.fill_from(&pool, n);
            if b.need_wakeup && fill.needs_wakeup() {
                let _ = sock.wake_rx();
            }
        }
    }
    pool
}

/// The program: one given (another socket's), the embedded one loaded and attached,
/// or none (`load_xdp(false)`).
fn program(
    b: &mut FluxBuilder,
    iface: &Interface,
    report: &mut SetupReport,
) -> Result<Option<Arc<XdpProgram>>> {
    if let Some(p) = b.program.take() {
        if p.ifindex() != iface.ifindex {
            return Err(ConfigError::Conflict("program() is attached to another interface").into());
        }
        if b.rx_metadata && !p.rx_metadata() {
            return Err(ConfigError::Conflict(
                "rx_metadata(true) with a shared program (program(), or a UMEM owner's on this interface) that is not the metadata variant",
            )
            .into());
        }
        // The metadata variant writes metadata for every socket it redirects to.
        b.rx_metadata |= p.rx_metadata();
        report.xdp_mode = p.mode();
        report.attach_reason = "shared program".into();
        return Ok(Some(p));
    }
    if !b.load_xdp {
        report.attach_reason = "load_xdp(false): no program loaded".into();
        return Ok(None);
    }
    let queues = iface.rx_queues.max(iface.tx_queues).max(b.queue + 1);
    let load = if b.rx_metadata {
        XdpProgram::load_rx_metadata
    } else {
        XdpProgram::load
    };
    let mut p = load(
        &b.ifname,
        iface.ifindex,
        queues,
        b.multi_buffer,
        &b.filter,
        b.drop_every_other,
    )?;
    let info = p.attach_probed(
        b.xdp_mode,
        b.xdp_attach,
        b.replace_program,
        Some(&iface.features),
    )?;
    report.xdp_mode = Some(info.mode);
    report.link = info.link;
    report.attach_reason = info.reason;
    Ok(Some(Arc::new(p)))
}

/// Puts the socket in the program's XSKMAP, and in the user's.
fn register(b: &FluxBuilder, program: Option<&Arc<XdpProgram>>, sock: &KernelSocket) -> Result<()> {
    if let Some(p) = program {
        p.register(b.xskmap_key.unwrap_or(b.queue), sock.fd())?;
    }
    if let Some(t) = &b.user_map {
        t.insert(sock.fd())?;
    }
    Ok(())
}

/// Why zero-copy is on or off, citing the probe.
fn zero_copy_reason(
    on: bool,
    mode: BindMode,
    xdp: Option<AttachedMode>,
    f: &DeviceFeatures,
) -> String {
    let probe = f.summary();
    if on {
        return format!("zero-copy: the driver supports it [{probe}]");
    }
    if mode == BindMode::Copy {
        return "copy mode requested".into();
    }
    if mode == BindMode::Auto && f.zero_copy() == Some(false) {
        return format!(
            "copy mode: the driver does not support AF_XDP zero-copy (no xsk-zerocopy), so BindMode::Auto bound with XDP_COPY [{probe}]"
        );
    }
    if xdp == Some(AttachedMode::Generic) {
        return format!(
            "copy mode: the program runs in generic (SKB) mode, which has no zero-copy [{probe}]"
        );
    }
    match f.zero_copy() {
        Some(true) => format!(
            "copy mode: the driver advertises xsk-zerocopy but the kernel bound in copy mode [{probe}]"
        ),
        // Unknown (no netdev family): the kernel tried zero-copy first and fell back,
        // which it does only where the driver does not support it.
        _ => format!(
            "copy mode: the driver does not support AF_XDP zero-copy (the kernel tried it first and bound in copy mode) [{probe}]"
        ),
    }
}

/// What multi-buffer does on this device, citing the probe.
fn multi_buffer_reason(
    on: bool,
    zero_copy: bool,
    xdp: Option<AttachedMode>,
    f: &DeviceFeatures,
) -> String {
    let probe = f.summary();
    if !on {
        return match f.rx_sg() {
            Some(true) => format!(
                "multi-buffer off: a packet must fit one frame (the driver advertises rx-sg: multi_buffer(true) would take larger ones) [{probe}]"
            ),
            _ => format!("multi-buffer off: a packet must fit one frame [{probe}]"),
        };
    }
    if zero_copy {
        return match f.xdp_zc_max_segs {
            Some(n) => format!(
                "multi-buffer in zero-copy: up to {n} fragment(s) per packet (xdp-zc-max-segs) [{probe}]"
            ),
            None => format!("multi-buffer in zero-copy (xdp-zc-max-segs not reported) [{probe}]"),
        };
    }
    match (xdp, f.rx_sg()) {
        (Some(AttachedMode::Generic), _) => format!(
            "multi-buffer: generic XDP hands over packets larger than a frame in fragments, whatever the driver advertises [{probe}]"
        ),
        (Some(AttachedMode::Native), Some(true)) => format!(
            "multi-buffer: the driver advertises rx-sg, so native XDP takes packets larger than a frame in fragments [{probe}]"
        ),
        (Some(AttachedMode::Native), Some(false)) => format!(
            "multi-buffer: the driver does not advertise rx-sg, so in native mode it hands over only packets that fit one buffer [{probe}]"
        ),
        _ => format!("multi-buffer (XDP_USE_SG) [{probe}]"),
    }
}

impl KernelSocket {
    /// The socket's descriptor.
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{ProbeStatus, XdpFeatures};

    fn answered(xdp: XdpFeatures, zc_segs: Option<u32>) -> DeviceFeatures {
        DeviceFeatures {
            ifname: "fx0".into(),
            ifindex: 7,
            kernel: "6.18.0".into(),
            status: ProbeStatus::Answered,
            xdp: Some(xdp),
            xdp_zc_max_segs: zc_segs,
            rx_metadata: None,
            xsk: None,
        }
    }

    fn absent() -> DeviceFeatures {
        DeviceFeatures {
            status: ProbeStatus::FamilyAbsent,
            xdp: None,
            kernel: "6.1.0".into(),
            ..answered(XdpFeatures::empty(), None)
        }
    }

    #[test]
    fn bind_auto_goes_copy_only_where_the_probe_says_no_zero_copy() {
        let veth = answered(XdpFeatures::BASIC | XdpFeatures::REDIRECT, None);
        let zc = answered(XdpFeatures::BASIC | XdpFeatures::XSK_ZEROCOPY, Some(4));
        assert_eq!(bind_mode(BindMode::Auto, &veth), BindMode::Copy);
        assert_eq!(bind_mode(BindMode::Auto, &zc), BindMode::Auto);
        assert_eq!(bind_mode(BindMode::Auto, &absent()), BindMode::Auto);
        // What the user asked for explicitly stays.
        assert_eq!(bind_mode(BindMode::ZeroCopy, &veth), BindMode::ZeroCopy);
        assert_eq!(bind_mode(BindMode::Copy, &zc), BindMode::Copy);
    }

    #[test]
    fn reasons_cite_the_probe() {
        let veth = answered(XdpFeatures::BASIC | XdpFeatures::RX_SG, None);
        let zc = answered(XdpFeatures::BASIC | XdpFeatures::XSK_ZEROCOPY, Some(4));
        let native = Some(AttachedMode::Native);
        let r = zero_copy_reason(false, BindMode::Auto, native, &veth);
        assert!(
            r.contains("no xsk-zerocopy") && r.contains(&veth.summary()),
            "{r}"
        );
        let r = zero_copy_reason(true, BindMode::Auto, native, &zc);
        assert!(
            r.starts_with("zero-copy") && r.contains("xsk-zerocopy"),
            "{r}"
        );
        let r = zero_copy_reason(false, BindMode::Auto, native, &zc);
        assert!(r.contains("advertises xsk-zerocopy but"), "{r}");
        let r = zero_copy_reason(false, BindMode::Auto, native, &absent());
        assert!(r.contains("netdev family absent, kernel < 6.3"), "{r}");
        let r = multi_buffer_reason(true, true, native, &zc);
        assert!(r.contains("up to 4 fragment(s)"), "{r}");
        let r = multi_buffer_reason(true, false, native, &veth);
        assert!(r.contains("advertises rx-sg"), "{r}");
        let no_sg = answered(XdpFeatures::BASIC, None);
        let r = multi_buffer_reason(true, false, native, &no_sg);
        assert!(r.contains("does not advertise rx-sg"), "{r}");
        let r = multi_buffer_reason(true, false, Some(AttachedMode::Generic), &no_sg);
        assert!(r.contains("generic XDP"), "{r}");
        let r = multi_buffer_reason(false, false, native, &veth);
        assert!(
            r.starts_with("multi-buffer off") && r.contains("rx-sg"),
            "{r}"
        );
        let r = multi_buffer_reason(true, false, native, &absent());
        assert!(r.contains("netdev family absent"), "{r}");
    }
}
