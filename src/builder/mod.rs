//! `FluxBuilder`: every setting validated before any system call, then the whole
//! set-up in order: UMEM, socket, rings, bind, program, registration, FILL.

mod setup;
mod validate;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ConfigError, Error, Result, Stage};
use crate::flux::{Flux, XskMapTarget};
use crate::socket::{BindMode, RingSizes};
use crate::sys;
use crate::umem::{Umem, UmemConfig};
use crate::watch::LinkDown;
use crate::xdp::{SteeringFilter, XdpAttach, XdpMode, XdpProgram};

/// Smallest frame (chunk) the kernel accepts.
pub const MIN_FRAME_SIZE: u32 = 2048;
/// Room a frame must keep for a full 1500-byte-MTU Ethernet frame.
pub const MIN_PACKET_ROOM: u32 = 1514;
/// Largest ring the builder accepts (entries).
pub const MAX_RING_SIZE: u32 = 1 << 20;

/// Builds a [`Flux`]: one AF_XDP socket bound to one queue of one interface, with its
/// UMEM, rings and (by default) the embedded XDP program attached.
///
/// ```no_run
/// use fluxcapacitor::{FluxBuilder, XdpMode, BindMode};
/// # fn main() -> Result<(), fluxcapacitor::Error> {
/// let flux = FluxBuilder::new("veth0")
///     .queue(0)
///     .frame_count(4096)
///     .frame_size(2048)
///     .ring_size(1024)
///     .headroom(0)
///     .bind_mode(BindMode::Auto)
///     .xdp_mode(XdpMode::Auto)
///     .load_xdp(true)
///     .build()?;
/// println!("{}", flux.report());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FluxBuilder {
    pub(crate) ifname: String,
    pub(crate) queue: u32,
    pub(crate) umem: UmemConfig,
    pub(crate) rings: RingSizes,
    pub(crate) bind_mode: BindMode,
    pub(crate) xdp_mode: XdpMode,
    pub(crate) load_xdp: bool,
    pub(crate) need_wakeup: bool,
    pub(crate) multi_buffer: bool,
    pub(crate) filter: SteeringFilter,
    pub(crate) user_map: Option<XskMapTarget>,
    pub(crate) program: Option<Arc<XdpProgram>>,
    pub(crate) busy_retry: Duration,
    pub(crate) prefill: bool,
    pub(crate) drop_every_other: bool,
    pub(crate) shared: Option<SharedUmem>,
    pub(crate) tx_budget: Option<u32>,
    pub(crate) xskmap_key: Option<u32>,
    pub(crate) xdp_attach: XdpAttach,
    pub(crate) replace_program: bool,
    pub(crate) watch: bool,
    pub(crate) link_down: LinkDown,
    pub(crate) drop_oversize: bool,
    pub(crate) rx_metadata: bool,
    pub(crate) tx_metadata: bool,
    /// Settings given explicitly (a sharer must not set what the owner decides).
    pub(crate) explicit: Explicit,
}

/// Which UMEM-level settings the caller set explicitly.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Explicit {
    pub geometry: bool,
    pub bind_mode: bool,
    pub fill_ring: bool,
}

/// The UMEM and socket of another [`Flux`] to share (`XDP_SHARED_UMEM`).
#[derive(Debug, Clone)]
pub(crate) struct SharedUmem {
    pub umem: Arc<Umem>,
    /// The owner's device (kept alive while the sharer binds to its socket).
    pub device: crate::device::Device,
    pub ifindex: u32,
    pub queue: u32,
    pub program: Option<Arc<XdpProgram>>,
}

impl FluxBuilder {
    /// Starts a builder for interface `ifname`, queue 0, 4096 frames of 4096 bytes,
    /// 2048-entry rings, bind mode Auto, XDP mode Auto, need_wakeup on, program loaded.
    pub fn new(ifname: impl Into<String>) -> Self {
        FluxBuilder {
            ifname: ifname.into(),
            queue: 0,
            umem: UmemConfig::default(),
            rings: RingSizes::default(),
            bind_mode: BindMode::Auto,
            xdp_mode: XdpMode::Auto,
            load_xdp: true,
            need_wakeup: true,
            multi_buffer: false,
            filter: SteeringFilter::default(),
            user_map: None,
            program: None,
            busy_retry: Duration::from_millis(250),
            prefill: true,
            drop_every_other: false,
            shared: None,
            tx_budget: None,
            xskmap_key: None,
            xdp_attach: XdpAttach::Link,
            replace_program: false,
            watch: true,
            link_down: LinkDown::Fail,
            drop_oversize: false,
            rx_metadata: false,
            tx_metadata: false,
            explicit: Explicit::default(),
        }
    }

    /// The queue to bind to.
    pub fn queue(mut self, q: u32) -> Self {
        self.queue = q;
        self
    }
    /// Frames in the UMEM.
    pub fn frame_count(mut self, n: u32) -> Self {
        self.explicit.geometry = true;
        self.umem.frame_count = n;
        self
    }
    /// Bytes per frame: 2048..=page size; a power of two unless unaligned.
    pub fn frame_size(mut self, n: u32) -> Self {
        self.explicit.geometry = true;
        self.umem.frame_size = n;
        self
    }
    /// Extra headroom before received packets (beyond the kernel's 256 bytes).
    pub fn headroom(mut self, n: u32) -> Self {
        self.explicit.geometry = true;
        self.umem.headroom = n;
        self
    }
    /// Unaligned chunk mode: any frame size in range, `base + offset << 48` addresses.
    pub fn unaligned_chunks(mut self, on: bool) -> Self {
        self.explicit.geometry = true;
        self.umem.unaligned = on;
        self
    }
    /// Back the UMEM with huge pages when available (normal pages otherwise; the
    /// report says which).
    pub fn huge_pages(mut self, on: bool) -> Self {
        self.umem.huge_pages = on;
        self
    }
    /// Sets all four ring sizes.
    pub fn ring_size(mut self, n: u32) -> Self {
        self.rings = RingSizes {
            fill: n,
            completion: n,
            rx: n,
            tx: n,
        };
        self
    }
    /// Sets each ring's size; 0 for RX or TX leaves that ring out.
    pub fn ring_sizes(mut self, sizes: RingSizes) -> Self {
        self.explicit.fill_ring = sizes.fill > 0 || sizes.completion > 0;
        self.rings = sizes;
        self
    }
    /// Copy, zero-copy, or let the kernel choose.
    pub fn bind_mode(mut self, m: BindMode) -> Self {
        self.explicit.bind_mode = true;
        self.bind_mode = m;
        self
    }
    /// Native, generic, or native-else-generic.
    pub fn xdp_mode(mut self, m: XdpMode) -> Self {
        self.xdp_mode = m;
        self
    }
    /// Load and attach the embedded program (default). With `false`, register the
    /// socket into your own XSKMAP with [`register_into`](Self::register_into), or
    /// later with [`Flux::register_into`].
    pub fn load_xdp(mut self, on: bool) -> Self {
        self.load_xdp = on;
        self
    }
    /// Use `XDP_USE_NEED_WAKEUP` (default on): the kernel says when it needs a
    /// syscall, so a busy socket makes none.
    pub fn need_wakeup(mut self, on: bool) -> Self {
        self.need_wakeup = on;
        self
    }
    /// Multi-buffer (`XDP_USE_SG`): packets larger than a frame span several.
    pub fn multi_buffer(mut self, on: bool) -> Self {
        self.multi_buffer = on;
        self
    }
    /// Steering rules for the embedded program: only matching packets reach the
    /// socket; the rest go to the kernel stack.
    pub fn filter(mut self, f: SteeringFilter) -> Self {
        self.filter = f;
        self
    }
    /// With `load_xdp(false)`: register the socket at `key` in the XSKMAP `map`
    /// (any fd of a BPF XSKMAP, e.g. from `libbpf_rs::MapCore::as_fd`).
    pub fn register_into(mut self, map: impl AsFd, key: u32) -> Result<Self> {
        let fd: OwnedFd = map
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::kernel(Stage::MapUpdate, e))?;
        self.user_map = Some(XskMapTarget { map: fd, key });
        Ok(self)
    }
    /// Register into a program another [`Flux`] already attached to this interface
    /// (several queues, one program). See [`Flux::program`].
    pub fn program(mut self, p: Arc<XdpProgram>) -> Self {
        self.program = Some(p);
        self
    }
    /// How long to retry `EBUSY` at bind (the kernel releases a closed socket's queue
    /// in the background). Default 250 ms.
    pub fn busy_retry(mut self, d: Duration) -> Self {
        self.busy_retry = d;
        self
    }
    /// Put frames on FILL at set-up (default). Raw-mode users who manage FILL turn it off.
    pub fn prefill(mut self, on: bool) -> Self {
        self.prefill = on;
        self
    }
    /// Share the UMEM of `owner` (`XDP_SHARED_UMEM`): the frames of one region serve
    /// both sockets, so a frame received on one can be sent on the other without a
    /// copy. On the same interface and queue as the owner this socket has no FILL or
    /// COMPLETION ring of its own (it uses the owner's); elsewhere it gets its own.
    /// The new socket's [`Flux`] starts with no frames of its own: the owner's pool
    /// holds them all. Frame size, count, headroom and chunk mode come from the owner.
    pub fn shared_umem(mut self, owner: &Flux) -> Self {
        self.shared = Some(SharedUmem {
            umem: owner.umem().clone(),
            device: owner.device().clone(),
            ifindex: owner.report().ifindex,
            queue: owner.report().queue,
            program: owner.program().cloned(),
        });
        self
    }
    /// Register the socket at this XSKMAP key instead of its queue id (with a
    /// [`SteeringFilter::split_by_port`] filter: `queue + i * queues` receives
    /// `dst_ports[i]`).
    pub fn xskmap_key(mut self, key: u32) -> Self {
        self.xskmap_key = Some(key);
        self
    }
    /// Copy-mode TX descriptors the kernel handles per kick (`XDP_MAX_TX_SKB_BUDGET`,
    /// kernel ≥ 6.17, 32..=TX ring size; default 32). Older kernels keep 32 and the
    /// report says so.
    pub fn tx_budget(mut self, n: u32) -> Self {
        self.tx_budget = Some(n);
        self
    }
    /// Attach the embedded program with a `bpf_link` (default) or by netlink.
    pub fn xdp_attach(mut self, how: XdpAttach) -> Self {
        self.xdp_attach = how;
        self
    }
    /// Replace an XDP program already on the interface (another tool's, or ours left
    /// by a crashed netlink-mode run) instead of failing with
    /// [`Error::ProgramAlreadyAttached`]. Off by default: taking over an interface is
    /// never done silently.
    pub fn replace_program(mut self, on: bool) -> Self {
        self.replace_program = on;
        self
    }
    /// Watch the device while the socket lives (default on): deletion, a move to
    /// another namespace, link down, our program detached or replaced, an MTU or
    /// queue count that no longer fits end every receive and send with
    /// [`Error::Device`] within a fraction of a second (see [`crate::watch`]).
    pub fn watch_device(mut self, on: bool) -> Self {
        self.watch = on;
        self
    }
    /// What the socket does when its link goes down (default [`LinkDown::Fail`]).
    pub fn link_down(mut self, policy: LinkDown) -> Self {
        self.link_down = policy;
        self
    }
    /// Accept an interface whose MTU admits packets larger than a frame holds, without
    /// multi-buffer: the kernel drops those packets (counted in
    /// [`XskStats::rx_dropped`](crate::XskStats::rx_dropped)). Off by default: the
    /// build fails with [`ConfigError::MtuTooLarge`], and the device watch fails the
    /// socket when the MTU grows past a frame later.
    pub fn drop_oversize(mut self, on: bool) -> Self {
        self.drop_oversize = on;
        self
    }
    /// Per-packet RX metadata (off by default): the embedded program's metadata
    /// variant is loaded instead, device-bound, and writes each packet's receive
    /// timestamp, RSS hash and stripped VLAN tag (as far as the driver provides them)
    /// in front of it, read with [`Frame::rx_metadata`](crate::system::Frame::rx_metadata)
    /// / [`PacketMut::rx_metadata`](crate::engine::PacketMut::rx_metadata) and their
    /// `rx_timestamp`, `rx_hash`, `vlan` shortcuts (see [`crate::meta`]).
    ///
    /// Needs Linux 6.3 (6.8 for the VLAN tag) and native XDP: device-bound programs
    /// cannot run in generic mode, so [`XdpMode::Auto`] does not fall back to generic
    /// here. Otherwise [`build`](Self::build) fails with [`Error::Unsupported`]
    /// naming [`Feature::RxMetadata`](crate::Feature::RxMetadata) and the reason.
    /// Needs the embedded program (not `load_xdp(false)`). A socket registered into
    /// another's [`program`](Self::program) (or its UMEM owner's on the same
    /// interface) has metadata when that program is the metadata variant, whatever
    /// this says; asking for it with a plain program is a
    /// [`ConfigError::Conflict`].
    pub fn rx_metadata(mut self, on: bool) -> Self {
        self.rx_metadata = on;
        self
    }
    /// AF_XDP TX metadata (off by default): the UMEM is registered with
    /// `tx_metadata_len`, so that a frame to send can carry requests in the
    /// [`TX_META_LEN`](crate::meta::TX_META_LEN) bytes in front of it: checksum
    /// offload ([`Frame::request_tx_checksum`](crate::system::Frame::request_tx_checksum)),
    /// a completion timestamp ([`Frame::request_tx_timestamp`](crate::system::Frame::request_tx_timestamp),
    /// read with [`Tx::take_tx_timestamps`](crate::system::Tx::take_tx_timestamps)) and a
    /// launch time ([`Frame::set_tx_launch_time`](crate::system::Frame::set_tx_launch_time)).
    /// Frames sent without a request pay nothing.
    ///
    /// Needs Linux 6.8 (launch time 6.15); otherwise [`build`](Self::build) fails
    /// with [`Error::Unsupported`] naming [`Feature::TxMetadata`](crate::Feature::TxMetadata).
    /// A socket sharing a UMEM gets what the owner registered.
    pub fn tx_metadata(mut self, on: bool) -> Self {
        self.tx_metadata = on;
        self
    }
    /// Test hook of the embedded program: drop every other packet before redirecting.
    #[doc(hidden)]
    pub fn drop_every_other(mut self, on: bool) -> Self {
        self.drop_every_other = on;
        self
    }

    /// Checks every setting that can be checked without the kernel.
    ///
    /// # Errors
    /// The first rule broken, naming the field and the rule.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        validate::rules(self)
    }

    /// Validates, then sets everything up, step by step (see `setup.rs`). On error
    /// nothing is left behind.
    ///
    /// # Errors
    /// [`Error::Config`] for settings (before any system call);
    /// [`Error::InterfaceNotFound`]; [`Error::Permission`] without CAP_NET_RAW /
    /// CAP_BPF / CAP_NET_ADMIN; [`Error::MemlockLimit`]; [`Error::QueueBusy`];
    /// [`Error::ZeroCopyUnsupported`]; [`Error::NativeUnsupported`];
    /// [`Error::ProgramAlreadyAttached`]; [`Error::Device`]; otherwise
    /// [`Error::Kernel`] naming the stage.
    pub fn build(self) -> Result<Flux> {
        setup::run(validate::check(self)?)
    }
}

impl FluxBuilder {
    /// The largest packet one frame of this socket's UMEM holds.
    fn umem_max_packet(&self) -> u32 {
        let cfg = match &self.shared {
            Some(s) => *s.umem.config(),
            None => self.umem,
        };
        cfg.frame_size - sys::XDP_PACKET_HEADROOM - cfg.headroom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(b: FluxBuilder) -> std::result::Result<(), ConfigError> {
        b.validate()
    }

    #[test]
    fn validation_table() {
        let page = sys::page_size() as u32;
        let ok = || FluxBuilder::new("eth0");
        assert_eq!(check(ok()), Ok(()));
        type Case = (FluxBuilder, fn(&ConfigError) -> bool);
        let table: Vec<Case> = vec![
            (FluxBuilder::new(""), |e| {
                matches!(e, ConfigError::InterfaceName(_))
            }),
            (FluxBuilder::new("a-name-that-is-too-long"), |e| {
                matches!(e, ConfigError::InterfaceName(_))
            }),
            (FluxBuilder::new("bad/name"), |e| {
                matches!(e, ConfigError::InterfaceName(_))
            }),
            (ok().ring_size(0), |e| {
                matches!(e, ConfigError::RingSize { size: 0, .. })
            }),
            (ok().ring_size(1000), |e| {
                matches!(e, ConfigError::RingSize { size: 1000, .. })
            }),
            (ok().ring_size(1 << 21), |e| {
                matches!(e, ConfigError::RingSize { .. })
            }),
            (
                ok().ring_sizes(RingSizes {
                    fill: 64,
                    completion: 64,
                    rx: 0,
                    tx: 0,
                }),
                |e| matches!(e, ConfigError::Conflict(_)),
            ),
            (
                ok().ring_sizes(RingSizes {
                    fill: 0,
                    completion: 64,
                    rx: 64,
                    tx: 64,
                }),
                |e| matches!(e, ConfigError::RingSize { ring: "FILL", .. }),
            ),
            (ok().frame_size(1024), |e| {
                matches!(e, ConfigError::FrameSize { size: 1024, .. })
            }),
            (ok().frame_size(3000), |e| {
                matches!(e, ConfigError::FrameSize { size: 3000, .. })
            }),
            (ok().frame_size(page * 2), |e| {
                matches!(e, ConfigError::FrameSize { .. })
            }),
            (ok().frame_count(0), |e| {
                matches!(e, ConfigError::FrameCount { count: 0, .. })
            }),
            (ok().frame_count(u32::MAX), |e| {
                matches!(e, ConfigError::FrameCount { .. })
            }),
            (ok().frame_size(2048).headroom(300), |e| {
                matches!(
                    e,
                    ConfigError::Headroom {
                        headroom: 300,
                        max: 278,
                        ..
                    }
                )
            }),
            (ok().tx_budget(16), |e| {
                matches!(e, ConfigError::Conflict(_))
            }),
            (ok().ring_size(64).tx_budget(128), |e| {
                matches!(e, ConfigError::Conflict(_))
            }),
            (ok().load_xdp(false).drop_every_other(true), |e| {
                matches!(e, ConfigError::Conflict(_))
            }),
            (ok().load_xdp(false).rx_metadata(true), |e| {
                matches!(e, ConfigError::Conflict(_))
            }),
            (
                ok().filter(SteeringFilter {
                    dst_ports: (1..=9).collect(),
                    ..Default::default()
                }),
                |e| matches!(e, ConfigError::Conflict(_)),
            ),
        ];
        for (i, (b, want)) in table.into_iter().enumerate() {
            match check(b) {
                Err(e) => assert!(want(&e), "case {i}: unexpected error {e}"),
                Ok(()) => panic!("case {i}: accepted"),
            }
        }
        // Valid edge cases.
        assert_eq!(check(ok().frame_size(2048).headroom(278)), Ok(()));
        assert_eq!(check(ok().frame_size(3000).unaligned_chunks(true)), Ok(()));
        assert_eq!(
            check(ok().ring_sizes(RingSizes {
                fill: 64,
                completion: 64,
                rx: 64,
                tx: 0
            })),
            Ok(())
        );
        assert_eq!(check(ok().ring_size(64).tx_budget(64)), Ok(()));
    }

    #[test]
    fn errors_name_the_field_and_rule() {
        let e = check(FluxBuilder::new("eth0").ring_size(100)).unwrap_err();
        assert!(e.to_string().contains("power of two"), "{e}");
        let e = check(FluxBuilder::new("eth0").frame_size(2048).headroom(4000)).unwrap_err();
        assert!(e.to_string().contains("headroom 4000"), "{e}");
    }
}
