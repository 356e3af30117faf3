//! The network interface under a socket: looked up by name, its active queues and
//! its MTU — each with the typed error a user needs. What its driver offers is
//! [`crate::features`].

use crate::error::{Error, Result, Stage};
use crate::sys;

/// The index of interface `ifname` in the calling thread's network namespace.
///
/// # Errors
/// [`Error::InterfaceNotFound`] when there is none; [`Error::Kernel`] (stage
/// `Lookup`) when the lookup itself fails.
pub(crate) fn index(ifname: &str) -> Result<u32> {
    sys::if_nametoindex(ifname)
        .map_err(|e| Error::kernel(Stage::Lookup, e))?
        .ok_or_else(|| Error::InterfaceNotFound(ifname.to_string()))
}

/// Active (rx, tx) queue counts: ethtool, else sysfs, else 1.
pub(crate) fn queue_counts(ifname: &str) -> (u32, u32) {
    if let Ok(Some((rx, tx))) = sys::ethtool_channels(ifname) {
        if rx > 0 {
            return (rx, tx.max(1));
        }
    }
    let count = |prefix: &str| {
        std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .count() as u32
            })
            .unwrap_or(0)
            .max(1)
    };
    (count("rx-"), count("tx-"))
}

/// The MTU of `ifindex`, if it can be read.
pub(crate) fn mtu(ifindex: u32) -> Option<u32> {
    sys::netlink::link_mtu(ifindex).ok().flatten()
}
