//! The UMEM: the packet memory shared with the kernel, its geometry, and the frame
//! allocator.
//!
//! The region is page aligned (anonymous `mmap`, optionally from huge pages) and cut
//! into `frame_count` chunks of `frame_size` bytes. The kernel writes a received packet
//! at `chunk + 256 + headroom` ([`Umem::data_offset`]); we place transmitted packets at
//! the same offset so a received frame can be sent back as it is.
//!
//! The bytes in front of the packet hold its metadata when asked for: the RX
//! metadata the program's metadata variant writes ([`crate::meta::RX_META_LEN`]
//! bytes right before a received packet) lies in the kernel's 256 bytes of
//! headroom, and so do the TX metadata requests ([`crate::meta::TX_META_LEN`] bytes
//! right before a packet to send, with `tx_metadata_len` registered): neither
//! changes where packets start or how long they can be.
//!
//! Every frame is always in exactly one place: free (in the [`FramePool`]), on FILL,
//! on RX, held by the user, on TX, or on COMPLETION. [`FrameCounts`] is that census
//! (`census.rs`); the pool is `pool.rs`.
#![allow(unsafe_code)]

mod census;
mod pool;

#[cfg(feature = "system")]
pub(crate) use census::Census;
pub use census::FrameCounts;
pub(crate) use census::RingTotals;
pub use pool::FramePool;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::DescError;
use crate::sys::{
    self, Mmap, XDP_PACKET_HEADROOM, XSK_TX_METADATA_LEN, XSK_UNALIGNED_BUF_ADDR_MASK,
    XSK_UNALIGNED_BUF_OFFSET_SHIFT,
};

/// Geometry of a UMEM, validated by the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Bytes per frame (chunk).
    pub frame_size: u32,
    /// Number of frames.
    pub frame_count: u32,
    /// Extra headroom in front of each received packet, beyond the kernel's 256.
    pub headroom: u32,
    /// Unaligned chunk mode (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`).
    pub unaligned: bool,
    /// Back the region with huge pages (falls back to normal pages if none are free).
    pub huge_pages: bool,
}

impl Default for UmemConfig {
    fn default() -> Self {
        UmemConfig {
            frame_size: 4096,
            frame_count: 4096,
            headroom: 0,
            unaligned: false,
            huge_pages: false,
        }
    }
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// The registered packet memory.
pub struct Umem {
    mem: Mmap,
    cfg: UmemConfig,
    huge: bool,
    id: u32,
    /// Some socket uses this UMEM in zero-copy mode (page contiguity then matters
    /// for unaligned descriptors).
    zero_copy: std::sync::atomic::AtomicBool,
    /// The system page size, read once (it is consulted per TX descriptor).
    page: u64,
    /// Packets received into this UMEM carry RX metadata in front of them (the
    /// metadata variant of the program redirects to a socket on it).
    rx_meta: std::sync::atomic::AtomicBool,
    /// Registered with `tx_metadata_len` ([`XSK_TX_METADATA_LEN`] bytes in front of
    /// every TX packet, used when its descriptor says `XDP_TX_METADATA`). Set before
    /// registration only.
    tx_meta: std::sync::atomic::AtomicBool,
    /// The kernel takes launch-time requests (Linux ≥ 6.15; older ones refuse the
    /// unknown flag, which stalls copy-mode TX on that descriptor).
    tx_launch_time: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Umem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Umem")
            .field("id", &self.id)
            .field("len", &self.mem.len())
            .field("cfg", &self.cfg)
            .field("huge_pages", &self.huge)
            .finish()
    }
}

impl Umem {
    /// Allocates the region. Huge pages are tried first when asked for; if none are
    /// available the region comes from normal pages and [`Umem::huge_pages`] says so.
    pub fn new(cfg: UmemConfig) -> io::Result<Umem> {
        let len = cfg.frame_size as usize * cfg.frame_count as usize;
        let page = sys::page_size();
        let len = len.div_ceil(page) * page;
        let (mem, huge) = if cfg.huge_pages {
            const HUGE: usize = 2 << 20;
            match Mmap::anonymous(len.div_ceil(HUGE) * HUGE, true) {
                Ok(m) => (m, true),
                Err(_) => (Mmap::anonymous(len, false)?, false),
            }
        } else {
            (Mmap::anonymous(len, false)?, false)
        };
        Ok(Umem {
            mem,
            cfg,
            huge,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            zero_copy: std::sync::atomic::AtomicBool::new(false),
            page: page as u64,
            rx_meta: std::sync::atomic::AtomicBool::new(false),
            tx_meta: std::sync::atomic::AtomicBool::new(false),
            tx_launch_time: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The geometry.
    pub fn config(&self) -> &UmemConfig {
        &self.cfg
    }
    /// Bytes per frame.
    pub fn frame_size(&self) -> u32 {
        self.cfg.frame_size
    }
    /// Number of frames.
    pub fn frame_count(&self) -> u32 {
        self.cfg.frame_count
    }
    /// User headroom (beyond the kernel's 256 bytes).
    pub fn headroom(&self) -> u32 {
        self.cfg.headroom
    }
    /// The region is backed by huge pages.
    pub fn huge_pages(&self) -> bool {
        self.huge
    }
    /// Bytes registered with the kernel (frames × frame size).
    pub fn len(&self) -> u64 {
        self.cfg.frame_size as u64 * self.cfg.frame_count as u64
    }
    /// Never true: a UMEM has at least one frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Marks the UMEM as used by a zero-copy socket.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn set_zero_copy(&self) {
        self.zero_copy.store(true, Ordering::Relaxed);
    }

    /// Packets received into this UMEM carry RX metadata from now on.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn set_rx_metadata(&self) {
        self.rx_meta.store(true, Ordering::Relaxed);
    }

    /// Packets received into this UMEM carry RX metadata
    /// ([`FluxBuilder::rx_metadata`](crate::FluxBuilder::rx_metadata)).
    #[inline]
    pub fn rx_metadata(&self) -> bool {
        self.rx_meta.load(Ordering::Relaxed)
    }

    /// The RX metadata in front of the received packet at `off` in `chunk` (a
    /// chunk of this UMEM); `None` at once when RX metadata is off.
    #[inline]
    #[cfg_attr(not(any(feature = "engine", feature = "system")), allow(dead_code))]
    pub(crate) fn rx_meta_in(&self, chunk: &[u8], off: usize) -> Option<crate::meta::RxMetadata> {
        if !self.rx_metadata() {
            return None;
        }
        crate::meta::RxMetadata::in_front(chunk, off)
    }

    /// Registers this UMEM with TX metadata (before the registration only);
    /// `launch_time`: the kernel knows launch-time requests.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn set_tx_metadata(&self, launch_time: bool) {
        self.tx_meta.store(true, Ordering::Relaxed);
        self.tx_launch_time.store(launch_time, Ordering::Relaxed);
    }

    /// Launch-time requests can be made (TX metadata on Linux ≥ 6.15).
    #[inline]
    #[cfg_attr(not(feature = "system"), allow(dead_code))]
    pub(crate) fn tx_launch_time(&self) -> bool {
        self.tx_launch_time.load(Ordering::Relaxed)
    }

    /// This UMEM carries TX metadata in front of TX packets
    /// ([`FluxBuilder::tx_metadata`](crate::FluxBuilder::tx_metadata)).
    #[inline]
    pub fn tx_metadata(&self) -> bool {
        self.tx_meta.load(Ordering::Relaxed)
    }

    /// The completion timestamp the kernel wrote into the TX metadata of the
    /// completed packet at `addr` (a descriptor address), if one was requested; the
    /// request is cleared, so a later send of the frame without one reads none.
    ///
    /// Crate contract: the frame at `addr` was just taken off COMPLETION and is on
    /// no ring, with no other view of it live.
    #[cfg_attr(not(feature = "system"), allow(dead_code))]
    pub(crate) fn take_tx_timestamp(&self, addr: u64) -> Option<u64> {
        let at = self.flat(addr).checked_sub(XSK_TX_METADATA_LEN as u64)?;
        if at < self.chunk_of(addr) {
            return None;
        }
        // SAFETY: exclusive ownership per the crate contract; bounds checked by
        // `slice_mut_flat`.
        let m = unsafe { self.slice_mut_flat(at, XSK_TX_METADATA_LEN as usize) }?;
        let word = |m: &[u8], i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&m[i..i + 8]);
            u64::from_ne_bytes(b)
        };
        let flags = word(m, 0);
        m[..8].fill(0);
        (flags & sys::XDP_TXMD_FLAGS_TIMESTAMP != 0).then(|| word(m, 8))
    }

    /// A process-unique id, used to tell UMEMs apart.
    pub fn id(&self) -> u32 {
        self.id
    }
    /// Offset of packet data within a frame: `256 + headroom`.
    pub fn data_offset(&self) -> u32 {
        XDP_PACKET_HEADROOM + self.cfg.headroom
    }
    /// Largest packet a frame carries.
    pub fn max_data_len(&self) -> u32 {
        self.cfg.frame_size - self.data_offset()
    }
    /// Start address of the region, for `XDP_UMEM_REG`.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn base_ptr(&self) -> *mut u8 {
        self.mem.as_ptr()
    }

    /// Address of frame `i`'s chunk.
    pub fn frame_addr(&self, i: u32) -> u64 {
        i as u64 * self.cfg.frame_size as u64
    }

    /// The chunk address a descriptor address belongs to (what goes back on FILL).
    #[inline]
    pub fn chunk_of(&self, addr: u64) -> u64 {
        if self.cfg.unaligned {
            let base = addr & XSK_UNALIGNED_BUF_ADDR_MASK;
            let off = addr >> XSK_UNALIGNED_BUF_OFFSET_SHIFT;
            let a = base + off;
            a - a % self.cfg.frame_size as u64
        } else {
            addr & !(self.cfg.frame_size as u64 - 1)
        }
    }

    /// The flat byte offset a descriptor address points at (unaligned mode folds the
    /// offset in the upper 16 bits back in).
    #[inline]
    pub fn flat(&self, addr: u64) -> u64 {
        if self.cfg.unaligned {
            (addr & XSK_UNALIGNED_BUF_ADDR_MASK) + (addr >> XSK_UNALIGNED_BUF_OFFSET_SHIFT)
        } else {
            addr
        }
    }

    /// Checks a TX descriptor the way the kernel does, so that a descriptor the kernel
    /// would silently swallow is refused here instead.
    pub fn check_tx(&self, addr: u64, len: u32, options: u32) -> Result<(), DescError> {
        let max = self.cfg.frame_size;
        let known = if self.tx_metadata() {
            sys::XDP_PKT_CONTD | sys::XDP_TX_METADATA
        } else {
            sys::XDP_PKT_CONTD
        };
        if options & !known != 0 {
            return Err(DescError::Options(options));
        }
        if len == 0 || len > max {
            return Err(DescError::Length { len, max });
        }
        let flat = self.flat(addr);
        let end = flat.checked_add(len as u64);
        if !self.cfg.unaligned && addr > XSK_UNALIGNED_BUF_ADDR_MASK {
            return Err(DescError::OutOfBounds {
                addr,
                len,
                umem_len: self.len(),
            });
        }
        match end {
            Some(e) if e <= self.len() => {}
            _ => {
                return Err(DescError::OutOfBounds {
                    addr,
                    len,
                    umem_len: self.len(),
                })
            }
        }
        if self.cfg.unaligned {
            // Copy mode copies through the kernel's view of the region, so a buffer may
            // cross a page. In zero-copy mode the device DMAs to the pages, which need
            // not be physically contiguous: the kernel refuses crossings of
            // non-contiguous pages, and we cannot tell which those are, so we refuse
            // every page crossing there (huge pages excepted).
            let page = self.page;
            let zc = self.zero_copy.load(Ordering::Relaxed);
            if zc && !self.huge && flat / page != (flat + len as u64 - 1) / page {
                return Err(DescError::CrossesPage { addr, len });
            }
        } else {
            let chunk = self.cfg.frame_size as u64;
            if flat / chunk != (flat + len as u64 - 1) / chunk {
                return Err(DescError::CrossesChunk {
                    addr,
                    len,
                    chunk: self.cfg.frame_size,
                });
            }
        }
        Ok(())
    }

    fn check_range(&self, addr: u64, len: usize) -> Option<usize> {
        let flat = self.flat(addr);
        let end = flat.checked_add(len as u64)?;
        (end <= self.mem.len() as u64).then_some(flat as usize)
    }

    /// Bytes of the frame at `addr`.
    ///
    /// Returns `None` when the range is outside the UMEM.
    ///
    /// # Safety
    /// The caller MUST own the frame: it is on no ring and no one else holds a
    /// mutable view of it for the lifetime of the returned slice.
    #[inline]
    pub unsafe fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let off = self.check_range(addr, len)?;
        // SAFETY: in bounds (checked); exclusive use guaranteed by the caller.
        Some(unsafe { std::slice::from_raw_parts(self.mem.as_ptr().add(off), len) })
    }

    /// Mutable bytes of the frame at `addr`.
    ///
    /// Returns `None` when the range is outside the UMEM.
    ///
    /// # Safety
    /// The caller MUST own the frame exclusively (on no ring, no other view) for the
    /// lifetime of the returned slice.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let off = self.check_range(addr, len)?;
        // SAFETY: in bounds (checked); exclusive use guaranteed by the caller.
        Some(unsafe { std::slice::from_raw_parts_mut(self.mem.as_ptr().add(off), len) })
    }
}

impl Umem {
    /// The whole chunk holding `addr`, for a frame the crate holds exclusively.
    ///
    /// Crate contract (not expressible in types, hence crate-private): the frame is
    /// the crate's alone right now — just taken off RX or out of a [`FramePool`], on
    /// no ring — and no other view of the chunk is live while this one is (the engine
    /// hands out one per descriptor of a batch, whose chunks are distinct; system mode
    /// ties it to a borrow of the owning `Frame`). The frame goes back on a ring only
    /// after the view is gone. Out-of-range addresses give an empty slice.
    #[allow(clippy::mut_from_ref)]
    #[cfg_attr(not(any(feature = "engine", feature = "system")), allow(dead_code))]
    pub(crate) fn owned_chunk(&self, addr: u64) -> &mut [u8] {
        let chunk = self.chunk_of(addr);
        let len = (self.cfg.frame_size as u64).min(self.len().saturating_sub(chunk)) as usize;
        // SAFETY: exclusive ownership per the crate contract; bounds checked by
        // `slice_mut` (the chunk address is flat in both chunk modes).
        unsafe { self.slice_mut_flat(chunk, len) }.unwrap_or_default()
    }

    /// Read-only view of the whole chunk holding `addr`, for a frame the crate holds
    /// exclusively (same crate contract as [`Umem::owned_chunk`]); the caller also
    /// guarantees that no mutable view of the chunk is live while this one is (system
    /// mode ties both to borrows of the owning `Frame`). Out-of-range addresses give
    /// an empty slice.
    #[cfg_attr(not(any(feature = "engine", feature = "system")), allow(dead_code))]
    pub(crate) fn owned_chunk_ref(&self, addr: u64) -> &[u8] {
        let chunk = self.chunk_of(addr);
        let len = (self.cfg.frame_size as u64).min(self.len().saturating_sub(chunk)) as usize;
        // SAFETY: exclusive ownership and no live mutable view per the crate contract;
        // bounds checked by `slice` (a chunk address is flat in both chunk modes).
        unsafe { self.slice(chunk, len) }.unwrap_or_default()
    }

    /// Offset of `addr`'s data within its chunk.
    #[inline]
    pub fn offset_in_chunk(&self, addr: u64) -> u32 {
        (self.flat(addr) - self.chunk_of(addr)) as u32
    }

    /// Like `slice_mut`, for an address that is already flat (no unaligned offset bits).
    ///
    /// # Safety
    /// As [`Umem::slice_mut`].
    #[allow(clippy::mut_from_ref)]
    #[cfg_attr(not(any(feature = "engine", feature = "system")), allow(dead_code))]
    unsafe fn slice_mut_flat(&self, flat: u64, len: usize) -> Option<&mut [u8]> {
        let end = flat.checked_add(len as u64)?;
        if end > self.mem.len() as u64 {
            return None;
        }
        // SAFETY: in bounds (checked); exclusive use guaranteed by the caller.
        Some(unsafe { std::slice::from_raw_parts_mut(self.mem.as_ptr().add(flat as usize), len) })
    }

    /// Bytes from `addr` to the end of its chunk.
    #[inline]
    pub fn room(&self, addr: u64) -> usize {
        let flat = self.flat(addr);
        let chunk = self.chunk_of(addr);
        (chunk + self.cfg.frame_size as u64).saturating_sub(flat) as usize
    }

    /// No two descriptors share a chunk (a debug check; allocation-free so that the
    /// zero-allocation guarantee holds in debug builds too).
    #[cfg_attr(not(feature = "engine"), allow(dead_code))]
    pub(crate) fn distinct_chunks(&self, descs: &[crate::sys::XdpDesc]) -> bool {
        descs.iter().enumerate().all(|(i, a)| {
            let ca = self.chunk_of(a.addr);
            descs[i + 1..].iter().all(|b| self.chunk_of(b.addr) != ca)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn umem() -> Umem {
        Umem::new(UmemConfig {
            frame_size: 2048,
            frame_count: 4,
            ..UmemConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn tx_metadata_option_only_with_tx_metadata() {
        let u = umem();
        let addr = u.data_offset() as u64;
        assert_eq!(
            u.check_tx(addr, 60, sys::XDP_TX_METADATA),
            Err(DescError::Options(sys::XDP_TX_METADATA))
        );
        u.set_tx_metadata(true);
        assert_eq!(u.check_tx(addr, 60, sys::XDP_TX_METADATA), Ok(()));
        assert!(u.check_tx(addr, 60, 1 << 2).is_err());
    }

    #[test]
    fn completion_timestamp_read_once_and_only_when_asked() {
        let u = umem();
        u.set_tx_metadata(true);
        let addr = 2048 + u.data_offset() as u64;
        let m = u.owned_chunk(addr);
        let off = u.offset_in_chunk(addr) as usize;
        let area = crate::meta::tx::area(m, off, true).unwrap();
        crate::meta::tx::timestamp(area);
        // The kernel's completion write: the timestamp over the request.
        area[8..16].copy_from_slice(&1234u64.to_ne_bytes());
        assert_eq!(u.take_tx_timestamp(addr), Some(1234));
        assert_eq!(u.take_tx_timestamp(addr), None, "the request is cleared");
        // At the very start of a chunk there is no room in front: nothing is read.
        assert_eq!(u.take_tx_timestamp(2048), None);
    }

    #[test]
    fn tx_requests_layout() {
        let mut m = [0xffu8; crate::meta::TX_META_LEN];
        let mut chunk = [0u8; 64];
        assert!(crate::meta::tx::area(&mut chunk, 10, true).is_err());
        let a = crate::meta::tx::area(&mut chunk, 40, true).unwrap();
        crate::meta::tx::checksum(a, 34, 6);
        crate::meta::tx::launch_time(a, 7);
        m.copy_from_slice(a);
        let flags = u64::from_ne_bytes(m[..8].try_into().unwrap());
        assert_eq!(
            flags,
            sys::XDP_TXMD_FLAGS_CHECKSUM | sys::XDP_TXMD_FLAGS_LAUNCH_TIME
        );
        assert_eq!(u16::from_ne_bytes([m[8], m[9]]), 34);
        assert_eq!(u16::from_ne_bytes([m[10], m[11]]), 6);
        assert_eq!(u64::from_ne_bytes(m[16..24].try_into().unwrap()), 7);
        assert!(crate::meta::tx::relocate(&mut chunk, 40, 30));
        assert_eq!(&chunk[6..30], &m[..]);
        assert!(!crate::meta::tx::relocate(&mut chunk, 30, 20));
    }
}
