//! The device watch: notices, off the data path, when the interface or the program
//! under a running socket changes — deleted, moved to another network namespace,
//! down, our XDP program detached or replaced, an MTU a frame can no longer hold, the
//! bound queue gone — and tells every user of that socket (engine, system, async,
//! raw) within a fraction of a second.
//!
//! One thread per process (`flux-watch`) serves every socket. It sleeps in `poll(2)`
//! on each namespace's rtnetlink notification socket (`RTMGRP_LINK`), so a deletion
//! or a move is seen at once, and wakes every 200 ms to re-read each watched
//! link (`RTM_GETLINK`: flags, MTU, the XDP program ids) and, for queues above 0, the
//! channel count — program changes raise no notification. Sockets are made in the
//! namespace of the thread that built the `Flux`, so the thread needs no `setns`.
//!
//! The data path pays one relaxed atomic load per loop turn.
//! A failure is final: it is published once, wakes every waiter (an eventfd that is
//! never drained, and the async wakers), and the watch stops looking at that socket.
//!
//! The event types are portable; the watching itself is Linux-only.

use std::fmt;

#[cfg(target_os = "linux")]
mod thread;
#[cfg(target_os = "linux")]
pub(crate) use thread::*;

/// What happened to the device under a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// The interface was deleted (or left this namespace without saying where).
    Removed,
    /// The interface was moved to another network namespace.
    MovedNamespace {
        /// The new namespace's id as seen from the old one.
        netnsid: i32,
    },
    /// The link went down: set down (`admin`), or it lost carrier (the peer of a
    /// veth went down, a cable was pulled).
    Down {
        /// `IFF_UP` was cleared; otherwise the carrier was lost.
        admin: bool,
    },
    /// Our XDP program is no longer attached (detached by another process).
    ProgramDetached,
    /// Another XDP program was attached in place of ours.
    ProgramReplaced {
        /// Its id.
        id: u32,
        /// Its name.
        name: String,
    },
    /// The MTU grew past what one frame holds, and multi-buffer is off: larger
    /// packets would be dropped.
    MtuTooLarge {
        /// The new MTU.
        mtu: u32,
        /// The largest packet a frame holds (Ethernet header included).
        max_packet: u32,
    },
    /// The bound queue no longer exists (the channel count was lowered).
    QueueGone {
        /// The bound queue.
        queue: u32,
        /// Active rx queues now.
        queues: u32,
    },
}

impl fmt::Display for DeviceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceEvent::Removed => write!(
                f,
                "the interface was deleted (or left this network namespace); the socket can receive nothing more — build it again once the interface is back"
            ),
            DeviceEvent::MovedNamespace { netnsid } => write!(
                f,
                "the interface was moved to another network namespace (netnsid {netnsid}); build the socket in that namespace"
            ),
            DeviceEvent::Down { admin: true } => write!(
                f,
                "the link was set down; no packets flow until it is up (set LinkDown::Wait to ride out link flaps)"
            ),
            DeviceEvent::Down { admin: false } => write!(
                f,
                "the link lost carrier (peer or cable down); no packets flow until it returns (set LinkDown::Wait to ride out link flaps)"
            ),
            DeviceEvent::ProgramDetached => write!(
                f,
                "our XDP program was detached by someone else; packets now go to the kernel stack, not to this socket"
            ),
            DeviceEvent::ProgramReplaced { id, name } => write!(
                f,
                "our XDP program was replaced by program {name:?} (id {id}); packets no longer reach this socket"
            ),
            DeviceEvent::MtuTooLarge { mtu, max_packet } => write!(
                f,
                "the MTU is now {mtu}: packets of up to {} bytes exceed the {max_packet} a frame holds and would be dropped; use larger frames, multi_buffer(true), or lower the MTU",
                mtu + ETH_HLEN
            ),
            DeviceEvent::QueueGone { queue, queues } => write!(
                f,
                "queue {queue} no longer exists ({queues} active rx queue(s) now)"
            ),
        }
    }
}

/// The error of a socket whose device changed under it: which interface, and what
/// happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ifname}: {event}")]
pub struct DeviceError {
    /// The interface as the socket was built on.
    pub ifname: String,
    /// Its index.
    pub ifindex: u32,
    /// What happened.
    pub event: DeviceEvent,
}

/// The device under a socket, as last seen by the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceStatus {
    /// As at set-up.
    Ok,
    /// The link is down and the socket waits for it ([`LinkDown::Wait`]).
    Down,
    /// Something happened that the socket cannot outlive; final.
    Failed(DeviceError),
    /// Not watched (a simulated device, or `watch_device(false)`).
    Unwatched,
}

/// What a socket does when its link goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkDown {
    /// Fail with [`DeviceEvent::Down`], like every other device change: the
    /// default, so that a socket never idles silently on a dead link.
    #[default]
    Fail,
    /// Keep the socket and wait: traffic resumes when the link comes back
    /// (the socket stays bound and the program attached across a flap).
    /// [`DeviceStatus::Down`] tells while it is down.
    Wait,
}

/// Ethernet header bytes on top of the MTU.
const ETH_HLEN: u32 = 14;
