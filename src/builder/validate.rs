//! Every setting checked without the kernel: the rules, and the checked settings that
//! set-up may rely on.

use super::{FluxBuilder, MAX_RING_SIZE, MIN_FRAME_SIZE, MIN_PACKET_ROOM};
use crate::error::ConfigError;
use crate::socket::BindMode;
use crate::sys;
use crate::xdp::{MAX_FILTER_PORTS, MAX_NEIGHBOUR_ADDRS};

/// Settings that passed [`check`]: the only way into set-up.
#[derive(Debug)]
pub(crate) struct Checked(FluxBuilder);

impl Checked {
    /// The settings.
    pub(crate) fn into_inner(self) -> FluxBuilder {
        self.0
    }
}

/// Checks every setting that can be checked without the kernel; each error names the
/// field and the rule.
pub(crate) fn check(b: FluxBuilder) -> Result<Checked, ConfigError> {
    rules(&b)?;
    Ok(Checked(b))
}

/// The rules, in order.
pub(crate) fn rules(b: &FluxBuilder) -> Result<(), ConfigError> {
    let name = &b.ifname;
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') || name.contains('/')
    {
        return Err(ConfigError::InterfaceName(name.clone()));
    }
    let sharer = b.shared.is_some();
    for (ring, size, optional) in [
        ("FILL", b.rings.fill, sharer),
        ("COMPLETION", b.rings.completion, sharer),
        ("RX", b.rings.rx, true),
        ("TX", b.rings.tx, true),
    ] {
        let ok = (optional && size == 0) || (size.is_power_of_two() && size <= MAX_RING_SIZE);
        if !ok {
            return Err(ConfigError::RingSize { ring, size });
        }
    }
    if b.rings.rx == 0 && b.rings.tx == 0 {
        return Err(ConfigError::Conflict(
            "at least one of the RX and TX rings is needed",
        ));
    }
    let page = sys::page_size() as u32;
    let fs = b.umem.frame_size;
    if fs < MIN_FRAME_SIZE || fs > page || (!b.umem.unaligned && !fs.is_power_of_two()) {
        return Err(ConfigError::FrameSize {
            size: fs,
            min: MIN_FRAME_SIZE,
            max: page,
        });
    }
    let max_frames = ((1u64 << 32) / fs as u64).min(u32::MAX as u64) as u32;
    if b.umem.frame_count == 0 || b.umem.frame_count > max_frames {
        return Err(ConfigError::FrameCount {
            count: b.umem.frame_count,
            max: max_frames,
        });
    }
    let max_headroom = fs - sys::XDP_PACKET_HEADROOM - MIN_PACKET_ROOM;
    if b.umem.headroom > max_headroom {
        return Err(ConfigError::Headroom {
            headroom: b.umem.headroom,
            max: max_headroom,
            frame_size: fs,
        });
    }
    if let Some(budget) = b.tx_budget {
        if b.rings.tx == 0 || budget < 32 || budget > b.rings.tx {
            return Err(ConfigError::Conflict(
                "tx_budget must be 32..=TX ring size, with a TX ring",
            ));
        }
    }
    if b.shared.is_some() {
        if b.multi_buffer {
            return Err(ConfigError::SharedUmem(
                "multi-buffer is chosen by the UMEM owner; set it there",
            ));
        }
        if b.explicit.bind_mode && b.bind_mode != BindMode::Auto {
            return Err(ConfigError::SharedUmem(
                    "a socket sharing a UMEM binds with XDP_SHARED_UMEM only; its copy/zero-copy mode is the owner's",
                ));
        }
        let owner = b.shared.as_ref().map(|s| *s.umem.config());
        let mine = b.umem;
        let differs = owner.is_some_and(|o| {
            o.frame_size != mine.frame_size
                || o.frame_count != mine.frame_count
                || o.headroom != mine.headroom
                || o.unaligned != mine.unaligned
        });
        if b.explicit.geometry && differs {
            return Err(ConfigError::SharedUmem(
                    "frame size, count, headroom and chunk mode belong to the UMEM owner (these differ from its own)",
                ));
        }
    }
    if b.filter.dst_ports.len() > MAX_FILTER_PORTS {
        return Err(ConfigError::Conflict(
            "the steering filter takes at most 8 ports",
        ));
    }
    let nd = &b.filter.neighbours;
    if nd.ipv4.len() > MAX_NEIGHBOUR_ADDRS || nd.ipv6.len() > MAX_NEIGHBOUR_ADDRS {
        return Err(ConfigError::Conflict(
            "the neighbour responder takes at most 4 addresses of each family",
        ));
    }
    if !b.load_xdp && !nd.is_empty() {
        return Err(ConfigError::Conflict(
            "the neighbour responder is part of the embedded program (load_xdp(true))",
        ));
    }
    if !b.load_xdp && (!b.filter.is_empty() || b.drop_every_other) {
        return Err(ConfigError::Conflict(
            "steering rules need the embedded program (load_xdp(true))",
        ));
    }
    if !b.load_xdp && b.rx_metadata {
        return Err(ConfigError::Conflict(
            "rx_metadata(true) needs the embedded program (load_xdp(true)), which writes the metadata",
        ));
    }
    if b.load_xdp && b.user_map.is_some() {
        return Err(ConfigError::Conflict(
            "register_into() is for load_xdp(false)",
        ));
    }
    if b.program.is_some() && !b.load_xdp {
        return Err(ConfigError::Conflict(
            "program() registers into the embedded program; keep load_xdp(true)",
        ));
    }
    Ok(())
}
