//! [`Frame`]: one UMEM frame owned by the application.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::error::DescError;
use crate::sys::XdpDesc;
use crate::umem::FramePool;

/// One packet buffer (a UMEM chunk) owned by the application.
///
/// A `Frame` comes from [`Rx`](super::Rx) (a received packet) or from
/// [`Tx::alloc`](super::Tx::alloc) (an empty buffer to fill). It dereferences to its
/// packet bytes, mutably, and knows the room around them. Hand it to
/// [`Tx::try_send`](super::Tx::try_send) to transmit it without a copy; drop it and
/// it goes back to the shared pool by itself (the next receive puts it on FILL).
///
/// A frame holds an [`Arc`] of its pool and UMEM, so the memory stays valid even when
/// the [`Rx`](super::Rx) / [`Tx`](super::Tx) handles (and the socket) are gone.
///
/// **Threads**: `Send` and `Sync`; move it to any thread. **Costs**: reading or
/// writing its bytes is a plain slice access; dropping it is one compare-and-swap
/// on the pool (no lock, no system call) plus an `Arc` decrement.
///
/// Use after return is impossible: sending moves the frame, and borrowed bytes
/// cannot outlive it.
///
/// **Multi-buffer packets**: on a socket built with
/// [`multi_buffer(true)`](crate::FluxBuilder::multi_buffer) a packet longer than a
/// frame arrives in several frames and is still one `Frame`: its bytes
/// ([`Frame::data`], `Deref`) are the first fragment, which holds the headers;
/// [`Frame::frags`] gives every fragment, [`Frame::contiguous`] the whole packet in
/// one slice (a copy). Sending it sends every fragment without a copy; dropping it
/// frees them all. [`Frame::append`] builds such a packet for sending. Receiving one
/// allocates the fragment list (one small allocation); a packet in one frame never
/// does.
///
/// ```compile_fail
/// # fn demo(rx: &mut fluxcapacitor::system::Rx, tx: &mut fluxcapacitor::system::Tx) {
/// let frame = rx.try_recv().unwrap().unwrap();
/// tx.try_send(frame).unwrap();
/// let first = frame[0]; // error: `frame` was moved into the TX ring
/// # }
/// ```
///
/// ```compile_fail
/// # fn demo(rx: &mut fluxcapacitor::system::Rx) {
/// let bytes: &[u8] = {
///     let frame = rx.try_recv().unwrap().unwrap();
///     &frame[..] // error: `frame` is dropped (back in the pool) while borrowed
/// };
/// # }
/// ```
pub struct Frame {
    /// `None` only between handing the frame to a ring and dropping the husk.
    pool: Option<Arc<FramePool>>,
    /// Frame (chunk) index in the UMEM.
    index: u32,
    /// Start of the packet data within the chunk.
    off: u32,
    /// Packet length.
    len: u32,
    /// The fragments after the first of a multi-buffer packet (`None`: one frame).
    rest: Option<Box<[Frag]>>,
    /// TX metadata requests written in front of the packet (`XDP_TXMD_FLAGS_*`);
    /// 0: none, the descriptor carries no `XDP_TX_METADATA`.
    txmd: u8,
}

/// A fragment after the first of a multi-buffer [`Frame`]: its frame (chunk index),
/// where its data starts in the chunk, and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frag {
    pub index: u32,
    pub off: u32,
    pub len: u32,
}

impl Frame {
    #[inline]
    pub(crate) fn new(pool: Arc<FramePool>, index: u32, off: u32, len: u32) -> Frame {
        Frame {
            pool: Some(pool),
            index,
            off,
            len,
            rest: None,
            txmd: 0,
        }
    }

    /// A multi-buffer frame: `index`/`off`/`len` for its first fragment, `rest` the
    /// others (non-empty).
    pub(crate) fn with_frags(
        pool: Arc<FramePool>,
        index: u32,
        off: u32,
        len: u32,
        rest: Box<[Frag]>,
    ) -> Frame {
        Frame {
            pool: Some(pool),
            index,
            off,
            len,
            rest: (!rest.is_empty()).then_some(rest),
            txmd: 0,
        }
    }

    /// Length in bytes (of a multi-buffer packet: of its first fragment; see
    /// [`Frame::packet_len`]).
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Length of the whole packet, every fragment.
    pub fn packet_len(&self) -> usize {
        self.len as usize
            + self
                .rest_frags()
                .iter()
                .map(|f| f.len as usize)
                .sum::<usize>()
    }

    /// Frames the packet spans (1 unless it is a multi-buffer packet).
    #[inline]
    pub fn frag_count(&self) -> usize {
        1 + self.rest_frags().len()
    }

    /// The packet spans several frames.
    #[inline]
    pub fn is_multi_buffer(&self) -> bool {
        self.rest.is_some()
    }

    #[inline]
    fn rest_frags(&self) -> &[Frag] {
        self.rest.as_deref().unwrap_or_default()
    }

    /// Fragment `i`'s bytes (0 is [`Frame::data`]).
    pub fn frag(&self, i: usize) -> Option<&[u8]> {
        if i == 0 {
            return Some(self.data());
        }
        let f = self.rest_frags().get(i - 1)?;
        let p = self.pool.as_ref()?;
        let chunk = p.umem().owned_chunk_ref(p.chunk(f.index));
        chunk.get(f.off as usize..(f.off + f.len) as usize)
    }

    /// Fragment `i`'s bytes, mutable.
    pub fn frag_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        if i == 0 {
            return Some(self.data_mut());
        }
        let f = *self.rest_frags().get(i - 1)?;
        let p = self.pool.as_ref()?;
        // The fragment's frame is ours alone, like the first; `&mut self` excludes
        // any other view.
        let chunk = p.umem().owned_chunk(p.chunk(f.index));
        chunk.get_mut(f.off as usize..(f.off + f.len) as usize)
    }

    /// Every fragment's bytes, in order (one slice for a packet in one frame).
    pub fn frags(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.frag_count()).filter_map(move |i| self.frag(i))
    }

    /// The whole packet as one slice: borrowed for a packet in one frame, a copy of
    /// its fragments for a multi-buffer one.
    pub fn contiguous(&self) -> Cow<'_, [u8]> {
        if self.rest.is_none() {
            return Cow::Borrowed(self.data());
        }
        let mut v = Vec::with_capacity(self.packet_len());
        self.frags().for_each(|f| v.extend_from_slice(f));
        Cow::Owned(v)
    }

    /// Appends `next` (and its fragments) to this packet as its next fragment(s),
    /// making a multi-buffer packet to send on a socket built with
    /// `multi_buffer(true)`: for example fresh frames from
    /// [`Tx::alloc`](super::Tx::alloc), each filled and sized. `next` keeps its
    /// headroom unused.
    ///
    /// # Errors
    /// `next` back when it belongs to another pool (another UMEM), or is empty (the
    /// kernel refuses a zero-length fragment).
    pub fn append(&mut self, next: Frame) -> Result<(), Frame> {
        match (&self.pool, &next.pool) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) && next.len > 0 => {}
            _ => return Err(next),
        }
        let mut next = std::mem::ManuallyDrop::new(next);
        let mut v: Vec<Frag> = self.rest.take().map(Vec::from).unwrap_or_default();
        v.push(Frag {
            index: next.index,
            off: next.off,
            len: next.len,
        });
        v.extend_from_slice(next.rest_frags());
        // `next`'s frames now belong to `self`; release its pool reference and list.
        drop(next.pool.take());
        drop(next.rest.take());
        self.rest = Some(v.into_boxed_slice());
        Ok(())
    }

    /// The packet is empty (a fresh frame from [`Tx::alloc`](super::Tx::alloc)).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the chunk in front of the packet, free to grow it at the front
    /// (see [`Frame::grow_head`]). Includes the kernel's 256-byte XDP headroom and the
    /// configured user headroom.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.off as usize
    }

    /// Bytes of the chunk behind the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.chunk_size()
            .saturating_sub(self.off as usize + self.len as usize)
    }

    /// Largest length the packet can have without moving its start
    /// (`len + tailroom`).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.chunk_size().saturating_sub(self.off as usize)
    }

    /// Sets the packet length (to fill a fresh frame, or to trim/extend a received
    /// one; new bytes hold whatever the buffer held before).
    ///
    /// # Errors
    /// [`DescError::Length`] when `len` exceeds [`Frame::capacity`].
    pub fn set_len(&mut self, len: usize) -> Result<(), DescError> {
        if len > self.capacity() {
            return Err(DescError::Length {
                len: len.min(u32::MAX as usize) as u32,
                max: self.capacity() as u32,
            });
        }
        self.len = len as u32;
        Ok(())
    }

    /// Moves the packet start `n` bytes to the front (into the headroom), for
    /// prepending a header; the new bytes are the old headroom's content.
    ///
    /// # Errors
    /// [`DescError::Length`] when the headroom is smaller than `n`.
    pub fn grow_head(&mut self, n: usize) -> Result<(), DescError> {
        if n > self.off as usize {
            return Err(DescError::Length {
                len: n.min(u32::MAX as usize) as u32,
                max: self.off,
            });
        }
        self.move_tx_metadata(self.off as usize - n);
        self.off -= n as u32;
        self.len += n as u32;
        Ok(())
    }

    /// Drops `n` bytes from the front of the packet (stripping a header).
    ///
    /// # Errors
    /// [`DescError::Length`] when the packet is shorter than `n`.
    pub fn shrink_head(&mut self, n: usize) -> Result<(), DescError> {
        if n > self.len as usize {
            return Err(DescError::Length {
                len: n.min(u32::MAX as usize) as u32,
                max: self.len,
            });
        }
        self.move_tx_metadata(self.off as usize + n);
        self.off += n as u32;
        self.len -= n as u32;
        Ok(())
    }

    /// Keeps TX metadata requests in front of the packet when its start moves to
    /// `to`; with no room for them there, they are dropped.
    fn move_tx_metadata(&mut self, to: usize) {
        if self.txmd == 0 {
            return;
        }
        let from = self.off as usize;
        if !crate::meta::tx::relocate(self.chunk_mut(), from, to) {
            self.txmd = 0;
        }
    }

    /// The TX metadata area in front of the packet, zeroed on the first request.
    fn tx_meta_area(
        &mut self,
        flag: u64,
    ) -> Result<&mut [u8; crate::meta::TX_META_LEN], DescError> {
        if !self.pool.as_ref().is_some_and(|p| p.umem().tx_metadata()) {
            return Err(DescError::NoTxMetadata);
        }
        let (off, fresh) = (self.off as usize, self.txmd == 0);
        // Checked first, so that a refused request leaves no flag behind.
        crate::meta::tx::area(self.chunk_mut(), off, fresh)?;
        self.txmd |= flag as u8;
        crate::meta::tx::area(self.chunk_mut(), off, false)
    }

    /// Asks for checksum offload on send (TX metadata,
    /// [`FluxBuilder::tx_metadata`](crate::FluxBuilder::tx_metadata)): the device
    /// (in copy mode, the kernel's `CHECKSUM_PARTIAL` handling) sums the packet from
    /// byte `start` to its end and stores the folded complement at `start + offset`.
    /// The field must hold the pseudo-header sum already, as for any checksum
    /// offload (e.g. for UDP over IPv4: `start` = 34, `offset` = 6, the field the
    /// folded sum of addresses, protocol and UDP length). Make the requests once the
    /// packet's length and start are final.
    ///
    /// # Errors
    /// [`DescError::NoTxMetadata`] without TX metadata; [`DescError::TxMetadata`]
    /// when the checksum field lies past the packet or there is no room in front.
    pub fn request_tx_checksum(&mut self, start: u16, offset: u16) -> Result<(), DescError> {
        if start as usize + offset as usize + 2 > self.len as usize {
            return Err(DescError::TxMetadata(
                "the checksum field lies past the packet end",
            ));
        }
        let m = self.tx_meta_area(crate::sys::XDP_TXMD_FLAGS_CHECKSUM)?;
        crate::meta::tx::checksum(m, start, offset);
        Ok(())
    }

    /// Asks for a completion timestamp of this packet (TX metadata), taken with
    /// [`Tx::take_tx_timestamps`](super::Tx::take_tx_timestamps) once it completed.
    ///
    /// # Errors
    /// As [`Frame::request_tx_checksum`].
    pub fn request_tx_timestamp(&mut self) -> Result<(), DescError> {
        let m = self.tx_meta_area(crate::sys::XDP_TXMD_FLAGS_TIMESTAMP)?;
        crate::meta::tx::timestamp(m);
        Ok(())
    }

    /// Asks for the packet to leave at `ns` (TX metadata, Linux ≥ 6.15; the
    /// device's clock). Only devices that implement launch time in zero-copy mode
    /// honour it; in copy mode the kernel only sets the skb's delivery time, which
    /// AF_XDP's direct transmit (no qdisc) leaves to the driver, and most ignore it.
    ///
    /// # Errors
    /// As [`Frame::request_tx_checksum`]; [`DescError::Unsupported`] with
    /// [`Feature::TxLaunchTime`](crate::Feature::TxLaunchTime) before Linux 6.15
    /// (whose kernels refuse the flag, and in copy mode would stall TX on the
    /// packet).
    pub fn set_tx_launch_time(&mut self, ns: u64) -> Result<(), DescError> {
        if self
            .pool
            .as_ref()
            .is_some_and(|p| p.umem().tx_metadata() && !p.umem().tx_launch_time())
        {
            return Err(DescError::Unsupported {
                feature: crate::Feature::TxLaunchTime,
                needs: "Linux 6.15 or later (XDP_TXMD_FLAGS_LAUNCH_TIME)",
            });
        }
        let m = self.tx_meta_area(crate::sys::XDP_TXMD_FLAGS_LAUNCH_TIME)?;
        crate::meta::tx::launch_time(m, ns);
        Ok(())
    }

    /// The TX metadata requests, if any, fit the packet as it is now.
    #[inline]
    pub(crate) fn tx_metadata_fits(&self) -> bool {
        if self.txmd as u64 & crate::sys::XDP_TXMD_FLAGS_CHECKSUM == 0 {
            return true;
        }
        let Some(p) = self.pool.as_ref() else {
            return false;
        };
        let chunk = p.umem().owned_chunk_ref(p.chunk(self.index));
        let off = self.off as usize;
        chunk
            .get(off.saturating_sub(crate::meta::TX_META_LEN)..off)
            .is_some_and(|m| crate::meta::tx::fits(m, self.len as usize))
    }

    /// A completion timestamp was asked for.
    #[inline]
    pub(crate) fn wants_tx_timestamp(&self) -> bool {
        self.txmd as u64 & crate::sys::XDP_TXMD_FLAGS_TIMESTAMP != 0
    }

    /// The packet bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let chunk = match &self.pool {
            Some(p) => p.umem().owned_chunk_ref(p.chunk(self.index)),
            None => &[],
        };
        let start = (self.off as usize).min(chunk.len());
        let end = (start + self.len as usize).min(chunk.len());
        &chunk[start..end]
    }

    /// The packet's RX metadata (timestamp, RSS hash, VLAN tag), on a socket built
    /// with [`rx_metadata(true)`](crate::FluxBuilder::rx_metadata); `None` otherwise,
    /// without reading anything. Meaningful for a received frame only (in front of
    /// a frame from [`Tx::alloc`](super::Tx::alloc) is whatever the frame last held),
    /// and before the packet start moves ([`Frame::grow_head`]): the metadata lies
    /// right in front of the packet as received.
    #[inline]
    pub fn rx_metadata(&self) -> Option<crate::meta::RxMetadata> {
        let p = self.pool.as_ref()?;
        let umem = p.umem();
        if !umem.rx_metadata() {
            return None;
        }
        umem.rx_meta_in(umem.owned_chunk_ref(p.chunk(self.index)), self.off as usize)
    }

    /// The device's receive timestamp of the packet, ns (see [`Frame::rx_metadata`]).
    #[inline]
    pub fn rx_timestamp(&self) -> Option<u64> {
        self.rx_metadata()?.timestamp
    }

    /// The packet's RSS hash and what it covers (see [`Frame::rx_metadata`]).
    #[inline]
    pub fn rx_hash(&self) -> Option<(u32, crate::meta::RssHashType)> {
        self.rx_metadata()?.hash
    }

    /// The VLAN tag the device stripped from the packet (see [`Frame::rx_metadata`]).
    #[inline]
    pub fn vlan(&self) -> Option<crate::meta::VlanTag> {
        self.rx_metadata()?.vlan
    }

    /// Parses the frame into its protocol layers, without copying (`proto` feature).
    #[cfg(feature = "proto")]
    pub fn parse(&self) -> Result<crate::proto::Layers<'_>, crate::proto::ProtoError> {
        crate::proto::Layers::parse(self.data())
    }

    /// The packet bytes, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (start, len) = (self.off as usize, self.len as usize);
        let chunk = self.chunk_mut();
        let start = start.min(chunk.len());
        let end = (start + len).min(chunk.len());
        &mut chunk[start..end]
    }

    /// Everything from the packet start to the end of the chunk (`capacity()`
    /// bytes): write a new packet here, then [`Frame::set_len`].
    #[inline]
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        let start = self.off as usize;
        let chunk = self.chunk_mut();
        let start = start.min(chunk.len());
        &mut chunk[start..]
    }

    /// The whole chunk and the packet's offset in it (for moving the data start
    /// and the bytes together).
    pub fn chunk_mut(&mut self) -> &mut [u8] {
        match &self.pool {
            // The frame is ours alone (it is on no ring and only this value names
            // its chunk), and `&mut self` excludes any other view.
            Some(p) => p.umem().owned_chunk(p.chunk(self.index)),
            None => &mut [],
        }
    }

    /// The UMEM address of the packet data (what a TX descriptor carries).
    #[inline]
    pub fn addr(&self) -> u64 {
        match &self.pool {
            Some(p) => p.chunk(self.index) + self.off as u64,
            None => 0,
        }
    }

    #[inline]
    fn chunk_size(&self) -> usize {
        self.pool
            .as_ref()
            .map_or(0, |p| p.umem().frame_size() as usize)
    }

    /// Whether this frame belongs to `pool`.
    #[inline]
    pub(crate) fn is_of(&self, pool: &Arc<FramePool>) -> bool {
        self.pool.as_ref().is_some_and(|p| Arc::ptr_eq(p, pool))
    }

    /// The TX descriptor of this frame (of a multi-buffer packet: of its first
    /// fragment, with [`XdpDesc::CONTINUES`]).
    #[inline]
    pub(crate) fn desc(&self) -> XdpDesc {
        XdpDesc {
            addr: self.addr(),
            len: self.len,
            options: if self.rest.is_some() {
                XdpDesc::CONTINUES
            } else {
                0
            } | if self.txmd != 0 {
                crate::sys::XDP_TX_METADATA
            } else {
                0
            },
        }
    }

    /// The TX descriptors of the fragments after the first, in order: every one but
    /// the last with [`XdpDesc::CONTINUES`].
    pub(crate) fn rest_descs(&self) -> impl Iterator<Item = XdpDesc> + '_ {
        let rest = self.rest_frags();
        let pool = self.pool.as_ref();
        rest.iter().enumerate().map(move |(i, f)| XdpDesc {
            addr: pool.map_or(0, |p| p.chunk(f.index)) + f.off as u64,
            len: f.len,
            options: if i + 1 < rest.len() {
                XdpDesc::CONTINUES
            } else {
                0
            },
        })
    }

    /// Gives up ownership: the frame (every fragment) is now on a ring (the
    /// kernel's) and must not return to the pool when this value drops.
    #[inline]
    pub(crate) fn into_ring(mut self) {
        self.pool = None;
    }
}

impl Drop for Frame {
    #[inline]
    fn drop(&mut self) {
        if let Some(p) = self.pool.take() {
            p.push(self.index);
            for f in self.rest_frags() {
                p.push(f.index);
            }
        }
    }
}

impl Deref for Frame {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.data()
    }
}

impl DerefMut for Frame {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl AsMut<[u8]> for Frame {
    fn as_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("addr", &format_args!("{:#x}", self.addr()))
            .field("len", &self.len)
            .field("headroom", &self.off)
            .field("frags", &self.frag_count())
            .finish()
    }
}
