//! The crate's one error type. Every setup failure names its stage, keeps the
//! kernel's `io::Error` as its source, and says the likely cause and fix.

use std::fmt;
use std::io;

/// Where in setup a kernel call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// `socket(AF_XDP)`.
    Socket,
    /// Allocating the UMEM region.
    UmemAlloc,
    /// `XDP_UMEM_REG`.
    UmemRegister,
    /// Setting a ring size.
    RingSize,
    /// `XDP_MMAP_OFFSETS` or mapping a ring.
    Mmap,
    /// `bind` of the socket to (interface, queue).
    Bind,
    /// Loading the XDP program into the kernel.
    Load,
    /// Attaching the XDP program to the interface.
    Attach,
    /// Updating the XSKMAP (or another map).
    MapUpdate,
    /// Reading statistics or options.
    Query,
    /// A socket option (busy polling and the like).
    SocketOption,
    /// Waking the kernel (`sendto`, `recvfrom`, `poll`).
    Wakeup,
    /// Watching the device (rtnetlink sockets, the watch thread).
    Monitor,
    /// Looking the interface up by name.
    Lookup,
    /// Asking the kernel what the device offers (the `netdev` netlink family).
    Probe,
    /// Blocking or waiting for signals (`stop_on_signals`).
    Signal,
    /// The runtime around the rings: worker threads, the stop eventfd, registering
    /// with an async reactor.
    Runtime,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Stage::Socket => "socket(AF_XDP)",
            Stage::UmemAlloc => "UMEM allocation",
            Stage::UmemRegister => "UMEM registration (XDP_UMEM_REG)",
            Stage::RingSize => "ring sizing",
            Stage::Mmap => "ring mmap",
            Stage::Bind => "bind",
            Stage::Load => "XDP program load",
            Stage::Attach => "XDP attach",
            Stage::MapUpdate => "BPF map update",
            Stage::Query => "query",
            Stage::SocketOption => "socket option",
            Stage::Wakeup => "wake-up",
            Stage::Monitor => "device watch",
            Stage::Lookup => "interface lookup",
            Stage::Probe => "device probe (netdev netlink)",
            Stage::Signal => "signal handling",
            Stage::Runtime => "runtime set-up",
        };
        f.write_str(s)
    }
}

/// Which builder setting was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A ring size must be a non-zero power of two.
    #[error("{ring} ring size {size} must be a non-zero power of two (e.g. 2048)")]
    RingSize {
        /// Which ring.
        ring: &'static str,
        /// The size given.
        size: u32,
    },
    /// Frame size outside 2048..=page size, or not a power of two in aligned mode.
    #[error("frame size {size} must be {min}..={max} and, unless unaligned chunks are on, a power of two")]
    FrameSize {
        /// The size given.
        size: u32,
        /// Smallest allowed.
        min: u32,
        /// Largest allowed (the page size).
        max: u32,
    },
    /// Frame count zero or too large.
    #[error("frame count {count} must be 1..={max}")]
    FrameCount {
        /// The count given.
        count: u32,
        /// Largest allowed.
        max: u32,
    },
    /// Headroom leaves too little room for a packet.
    #[error("headroom {headroom} is over the limit {max} for frame size {frame_size} (the kernel keeps 256 bytes and needs room for an MTU-sized packet)")]
    Headroom {
        /// The headroom given.
        headroom: u32,
        /// Largest allowed for this frame size.
        max: u32,
        /// The frame size.
        frame_size: u32,
    },
    /// Queue id not below the interface's active queue count.
    #[error("queue {queue} is out of range: {ifname} has {count} active rx queue(s) (0..{count})")]
    QueueOutOfRange {
        /// Interface.
        ifname: String,
        /// Queue asked for.
        queue: u32,
        /// Active queues.
        count: u32,
    },
    /// The interface name is empty or too long.
    #[error("interface name {0:?} is not valid (1..=15 bytes, no NUL)")]
    InterfaceName(String),
    /// Options that cannot go together.
    #[error("conflicting options: {0}")]
    Conflict(&'static str),
    /// Misuse of a shared UMEM (settings that belong to the owner).
    #[error("shared UMEM: {0}")]
    SharedUmem(&'static str),
    /// The interface's MTU needs larger packets than a frame holds, and multi-buffer
    /// is off: such packets would be dropped.
    #[error("{ifname} has MTU {mtu}: packets of up to {} bytes exceed the {max_packet} bytes a frame holds; use larger frames (frame_size), multi_buffer(true), or lower the MTU", mtu + 14)]
    MtuTooLarge {
        /// Interface.
        ifname: String,
        /// Its MTU.
        mtu: u32,
        /// The largest packet a frame holds (frame size − 256 − headroom).
        max_packet: u32,
    },
    /// More frames are needed than the UMEM holds.
    #[error("FILL ({fill}) and TX ({tx}) rings need more frames than the UMEM's {frames}")]
    TooFewFrames {
        /// FILL size.
        fill: u32,
        /// TX size.
        tx: u32,
        /// Frames in the UMEM.
        frames: u32,
    },
}

/// A capability of the kernel or the device that a setting asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Feature {
    /// Multi-buffer AF_XDP (`XDP_USE_SG`): packets larger than a frame.
    MultiBuffer,
    /// Zero-copy binding (`XDP_ZEROCOPY`).
    ZeroCopy,
    /// RX metadata through the XDP metadata kfuncs (timestamp, RSS hash, VLAN tag).
    RxMetadata,
    /// AF_XDP TX metadata (`tx_metadata_len`).
    TxMetadata,
    /// TX checksum offload requested through TX metadata.
    TxChecksum,
    /// TX completion timestamps through TX metadata.
    TxTimestamp,
    /// TX launch time through TX metadata.
    TxLaunchTime,
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Feature::MultiBuffer => "multi-buffer (XDP_USE_SG)",
            Feature::ZeroCopy => "zero-copy (XDP_ZEROCOPY)",
            Feature::RxMetadata => "RX metadata (XDP metadata kfuncs)",
            Feature::TxMetadata => "TX metadata (tx_metadata_len)",
            Feature::TxChecksum => "TX checksum offload",
            Feature::TxTimestamp => "TX completion timestamps",
            Feature::TxLaunchTime => "TX launch time",
        })
    }
}

/// Everything that can go wrong in fluxcapacitor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting was rejected before any system call.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),

    /// The interface does not exist (in this network namespace).
    #[error("interface {0:?} not found in this network namespace (check `ip link`, and that you run in the right namespace)")]
    InterfaceNotFound(String),

    /// Missing privileges for a step.
    #[error("{stage}: permission denied; {hint}")]
    Permission {
        /// The failed step.
        stage: Stage,
        /// What to grant.
        hint: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },

    /// The UMEM could not be pinned: the memlock limit is too low.
    #[error("UMEM registration: {bytes} bytes exceed the locked-memory limit ({limit}); raise it (`ulimit -l unlimited`, LimitMEMLOCK=infinity) or grant CAP_IPC_LOCK, or use fewer frames")]
    MemlockLimit {
        /// Bytes asked for.
        bytes: u64,
        /// The current limit, as text.
        limit: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },

    /// Another socket is bound to this (interface, queue), or was closed moments ago.
    #[error("queue {queue} of {ifname} is busy: another AF_XDP socket is bound to it (or one was closed in the last moments and the kernel is still releasing it); close it, use another queue, or share its UMEM")]
    QueueBusy {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },

    /// Zero-copy was required but the driver cannot do it.
    #[error("zero-copy is not supported by the driver of {ifname} (or not in this XDP mode); use BindMode::Auto or BindMode::Copy")]
    ZeroCopyUnsupported {
        /// Interface.
        ifname: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },

    /// A setting asks for something this kernel or device does not offer.
    #[error("{feature} is not available on {ifname}: it needs {needs}, and this is {found}")]
    Unsupported {
        /// What was asked for.
        feature: Feature,
        /// Interface.
        ifname: String,
        /// What it takes (a kernel version, a driver capability).
        needs: &'static str,
        /// What there is instead.
        found: String,
    },

    /// Native (driver) XDP was required but is not available.
    #[error(
        "native XDP is not supported on {ifname}: {reason}; use XdpMode::Auto or XdpMode::Generic"
    )]
    NativeUnsupported {
        /// Interface.
        ifname: String,
        /// Why, as far as the kernel says.
        reason: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },

    /// An XDP program is attached to the interface already: another tool's, or ours
    /// left behind by a run that attached by netlink and did not exit cleanly. The
    /// message says which, and the way out; `replace_program(true)` replaces it.
    #[error("{}", existing_program(ifname, name, *id, mode, *link, *ours))]
    ProgramAlreadyAttached {
        /// Interface.
        ifname: String,
        /// The program's name.
        name: String,
        /// The program's id.
        id: u32,
        /// How it runs: "native", "generic", "offloaded" or "several modes".
        mode: &'static str,
        /// Held by a `bpf_link` (of a running process) rather than attached by netlink.
        link: bool,
        /// It is fluxcapacitor's own program (by name).
        ours: bool,
    },

    /// A kernel call failed at a setup stage, for a reason not listed above.
    #[error("{stage} failed: {source}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Kernel {
        /// The failed step.
        stage: Stage,
        /// A likely cause, when known.
        hint: Option<&'static str>,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },

    /// libbpf reported an error while loading or handling the program.
    #[cfg(target_os = "linux")]
    #[error("{stage}: {source}")]
    Bpf {
        /// The failed step.
        stage: Stage,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },

    /// An engine callback panicked; the engine stopped cleanly.
    #[error("the engine callback panicked on worker {worker}: {message}")]
    CallbackPanicked {
        /// Worker index.
        worker: usize,
        /// The panic message.
        message: String,
    },

    /// A descriptor was refused before it reached the ring.
    #[error("invalid descriptor: {0}")]
    InvalidDescriptor(#[from] DescError),

    /// The device under the socket changed so that the socket cannot go on: the
    /// interface was deleted, moved or set down, our program was detached or
    /// replaced, the MTU or the queue count no longer fit. Names the interface and
    /// the event; see [`DeviceEvent`](crate::watch::DeviceEvent).
    #[error(transparent)]
    Device(#[from] crate::watch::DeviceError),
}

/// Why a TX descriptor was refused. The kernel would consume such a descriptor and
/// never complete it, losing the frame; we refuse it and the caller keeps the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DescError {
    /// Address plus length runs past the end of the UMEM.
    #[error("address {addr:#x} + length {len} runs past the UMEM end {umem_len:#x}")]
    OutOfBounds {
        /// Address.
        addr: u64,
        /// Length.
        len: u32,
        /// UMEM size.
        umem_len: u64,
    },
    /// The data would cross a chunk boundary (aligned mode).
    #[error("address {addr:#x} + length {len} crosses a {chunk}-byte chunk boundary")]
    CrossesChunk {
        /// Address.
        addr: u64,
        /// Length.
        len: u32,
        /// Chunk size.
        chunk: u32,
    },
    /// Zero length, or longer than a frame can carry.
    #[error("length {len} is not in 1..={max}")]
    Length {
        /// Length.
        len: u32,
        /// Largest allowed.
        max: u32,
    },
    /// Unaligned mode: the data crosses a page boundary of a non-contiguous UMEM.
    #[error("address {addr:#x} + length {len} crosses a page boundary in unaligned mode")]
    CrossesPage {
        /// Address.
        addr: u64,
        /// Length.
        len: u32,
    },
    /// Unknown option bits.
    #[error("unknown descriptor option bits {0:#x}")]
    Options(u32),
    /// A TX metadata request on a socket whose UMEM was registered without TX
    /// metadata ([`FluxBuilder::tx_metadata`](crate::FluxBuilder::tx_metadata)).
    #[error("TX metadata requested, but the UMEM has none (FluxBuilder::tx_metadata(true))")]
    NoTxMetadata,
    /// The packet start is too close to the frame start for the TX metadata in
    /// front of it, or a checksum request points past the packet.
    #[error("TX metadata request does not fit: {0}")]
    TxMetadata(&'static str),
    /// A TX metadata request this kernel does not know.
    #[error("{feature} is not available: it needs {needs}")]
    Unsupported {
        /// What was asked for.
        feature: Feature,
        /// What it takes.
        needs: &'static str,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn existing_program(
    ifname: &str,
    name: &str,
    id: u32,
    mode: &str,
    link: bool,
    ours: bool,
) -> String {
    let whose = if ours && !link {
        "fluxcapacitor's own program, left behind by a run that attached it by netlink (XdpAttach::Netlink) and did not exit cleanly"
    } else if ours {
        "fluxcapacitor's program of another running process"
    } else {
        "another tool's program"
    };
    let off = match mode {
        "generic" => "xdpgeneric off",
        "offloaded" => "xdpoffload off",
        _ => "xdpdrv off",
    };
    let way_out = if link {
        "it is held by a bpf_link of a running process: stop that process, or detach the link (`bpftool link show`, `bpftool link detach id <link>`)".to_string()
    } else {
        format!("detach it (`ip link set dev {ifname} {off}`)")
    };
    format!(
        "{ifname} already has XDP program {name:?} (id {id}, {mode}, {}): {whose}; {way_out}, replace it with replace_program(true), or register into its XSKMAP with load_xdp(false)",
        if link { "bpf_link" } else { "netlink" }
    )
}

impl Error {
    /// Maps an `io::Error` at `stage` to the most specific variant.
    pub(crate) fn kernel(stage: Stage, source: io::Error) -> Error {
        let errno = source.raw_os_error().unwrap_or(0);
        if errno == libc::EPERM || errno == libc::EACCES {
            let hint = match stage {
                Stage::Socket => "creating an AF_XDP socket needs CAP_NET_RAW (run as root or `setcap cap_net_raw,cap_net_admin,cap_bpf+ep`)",
                Stage::Load | Stage::MapUpdate => "loading BPF programs needs CAP_BPF (and CAP_NET_ADMIN for XDP); run as root or grant them",
                Stage::Attach => "attaching XDP needs CAP_NET_ADMIN (and CAP_BPF)",
                Stage::SocketOption => "this socket option needs CAP_NET_ADMIN",
                _ => "this needs CAP_NET_RAW / CAP_NET_ADMIN / CAP_BPF; run as root or grant them",
            };
            return Error::Permission {
                stage,
                hint,
                source,
            };
        }
        let hint = match (stage, errno) {
            (Stage::UmemRegister, libc::EINVAL) => {
                Some("the kernel rejected the UMEM geometry (frame size, headroom or flags)")
            }
            (Stage::Bind, libc::EINVAL) => Some("queue id out of range or incompatible flags"),
            (Stage::Bind, libc::ENODEV) => Some("the interface vanished"),
            (Stage::Attach, libc::ENOSPC) => Some(
                "veth in native mode needs at least as many rx queues as its peer has tx queues",
            ),
            (Stage::Attach, libc::E2BIG) => {
                Some("the MTU is too large for XDP without multi-buffer")
            }
            (_, libc::ENOMEM) => Some("out of memory or locked-memory limit"),
            _ => None,
        };
        Error::Kernel {
            stage,
            hint,
            source,
        }
    }

    /// The underlying OS error number, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        use std::error::Error as _;
        let mut src = self.source();
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<io::Error>() {
                return io.raw_os_error();
            }
            src = s.source();
        }
        None
    }
}
