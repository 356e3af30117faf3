//! The kernel ABI of XDP sockets (`<linux/if_xdp.h>`, `<linux/if_link.h>`,
//! `<linux/netdev.h>`) mirrored as `repr(C)` structs and constants, with
//! compile-time size and offset checks: a padded or short struct handed to
//! `setsockopt` gives EINVAL, or silently drops fields.
// Constants keep the kernel's names; see the headers for each.
#![allow(missing_docs)]
// Elsewhere only the descriptor and ring layout are used (the simulated device).
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::mem::{offset_of, size_of};

/// `AF_XDP` address family.
pub const AF_XDP: i32 = 44;
/// `SOL_XDP` socket option level.
pub const SOL_XDP: i32 = 283;

/// Socket options at `SOL_XDP`.
pub const XDP_MMAP_OFFSETS: i32 = 1;
pub const XDP_RX_RING: i32 = 2;
pub const XDP_TX_RING: i32 = 3;
pub const XDP_UMEM_REG: i32 = 4;
pub const XDP_UMEM_FILL_RING: i32 = 5;
pub const XDP_UMEM_COMPLETION_RING: i32 = 6;
pub const XDP_STATISTICS: i32 = 7;
pub const XDP_OPTIONS: i32 = 8;
/// Copy-mode TX descriptors handled per `sendto` (kernel ≥ 6.17; range 32..=TX size).
pub const XDP_MAX_TX_SKB_BUDGET: i32 = 9;

/// `sxdp_flags` bits for bind.
pub const XDP_SHARED_UMEM: u16 = 1 << 0;
pub const XDP_COPY: u16 = 1 << 1;
pub const XDP_ZEROCOPY: u16 = 1 << 2;
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
pub const XDP_USE_SG: u16 = 1 << 4;

/// `xdp_umem_reg.flags`.
pub const XDP_UMEM_UNALIGNED_CHUNK_FLAG: u32 = 1 << 0;
/// Ring `flags` word: the kernel wants a wake-up.
pub const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;
/// `xdp_options.flags`: the socket runs in zero-copy mode.
pub const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;
/// `xdp_desc.options`: more fragments of this packet follow.
pub const XDP_PKT_CONTD: u32 = 1 << 0;
/// `xdp_desc.options`: a `struct xsk_tx_metadata` lies in front of the packet.
pub const XDP_TX_METADATA: u32 = 1 << 1;
/// `xdp_umem_reg.flags`: `tx_metadata_len` is meant (kernels that know the flag
/// ignore the field without it).
pub const XDP_UMEM_TX_METADATA_LEN: u32 = 1 << 2;
/// `xsk_tx_metadata.flags`.
pub const XDP_TXMD_FLAGS_TIMESTAMP: u64 = 1 << 0;
pub const XDP_TXMD_FLAGS_CHECKSUM: u64 = 1 << 1;
pub const XDP_TXMD_FLAGS_LAUNCH_TIME: u64 = 1 << 2;
/// `sizeof(struct xsk_tx_metadata)`: flags, then the request (csum_start,
/// csum_offset, 4 bytes of padding, launch_time) or the completion (tx_timestamp).
pub const XSK_TX_METADATA_LEN: u32 = 24;

/// mmap page offsets of the four rings.
pub const XDP_PGOFF_RX_RING: i64 = 0;
pub const XDP_PGOFF_TX_RING: i64 = 0x8000_0000;
pub const XDP_UMEM_PGOFF_FILL_RING: i64 = 0x1_0000_0000;
pub const XDP_UMEM_PGOFF_COMPLETION_RING: i64 = 0x1_8000_0000;

/// Unaligned-chunk addresses carry the offset in the upper 16 bits.
pub const XSK_UNALIGNED_BUF_OFFSET_SHIFT: u32 = 48;
pub const XSK_UNALIGNED_BUF_ADDR_MASK: u64 = (1 << XSK_UNALIGNED_BUF_OFFSET_SHIFT) - 1;

/// The kernel reserves this much headroom in front of every received packet.
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// `XDP_FLAGS_*` for attaching programs.
pub const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1 << 0;
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
pub const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
pub const XDP_FLAGS_REPLACE: u32 = 1 << 4;

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SockaddrXdp {
    pub family: u16,
    pub flags: u16,
    pub ifindex: u32,
    pub queue_id: u32,
    pub shared_umem_fd: u32,
}

/// `struct xdp_ring_offset`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}

/// `struct xdp_umem_reg` (v3, with `tx_metadata_len` declared so there is no padding).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// `struct xdp_statistics` (v2: 48 bytes; v1 kernels return the first 24).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

/// `struct xdp_options`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpOptions {
    pub flags: u32,
}

/// `struct xdp_desc`: one RX or TX descriptor.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XdpDesc {
    /// UMEM address of the packet data.
    pub addr: u64,
    /// Length of the packet data.
    pub len: u32,
    /// Option bits (`XDP_PKT_CONTD`, TX metadata).
    pub options: u32,
}

impl XdpDesc {
    /// `options` bit `XDP_PKT_CONTD`: more fragments of this packet follow
    /// (multi-buffer).
    pub const CONTINUES: u32 = XDP_PKT_CONTD;

    /// More fragments of this packet follow in the next descriptors.
    #[inline]
    pub fn continues(&self) -> bool {
        self.options & XDP_PKT_CONTD != 0
    }
}

const _: () = {
    assert!(size_of::<SockaddrXdp>() == 16);
    assert!(offset_of!(SockaddrXdp, ifindex) == 4);
    assert!(offset_of!(SockaddrXdp, shared_umem_fd) == 12);
    assert!(size_of::<XdpRingOffset>() == 32);
    assert!(size_of::<XdpMmapOffsets>() == 128);
    assert!(offset_of!(XdpMmapOffsets, cr) == 96);
    assert!(size_of::<XdpUmemReg>() == 32);
    assert!(offset_of!(XdpUmemReg, tx_metadata_len) == 28);
    assert!(size_of::<XdpStatistics>() == 48);
    assert!(size_of::<XdpOptions>() == 4);
    assert!(size_of::<XdpDesc>() == 16);
    assert!(offset_of!(XdpDesc, options) == 12);
};

/// `SO_BUSY_POLL` (µs to busy-poll in blocking calls).
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub const SO_BUSY_POLL: i32 = 46;

/// `SO_PREFER_BUSY_POLL`.
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub const SO_PREFER_BUSY_POLL: i32 = 69;

/// `SO_BUSY_POLL_BUDGET`.
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub const SO_BUSY_POLL_BUDGET: i32 = 70;
