//! The batch a callback sees: received packets as mutable slices with verdicts, and
//! fresh frames to send.

use std::borrow::Cow;

use crate::error::DescError;
use crate::sys::XdpDesc;
use crate::umem::{FramePool, Umem};

/// What happens to a packet after the callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Give the frame back to FILL (the default).
    #[default]
    Drop,
    /// Send the frame out of the port it came in on, as it is now (zero-copy).
    Tx,
    /// Send the frame out of another port sharing the UMEM (zero-copy). An unknown
    /// port drops the packet.
    Forward(u16),
}

/// The packets of one RX batch on one port.
///
/// Borrowed for the callback only: nothing in it can outlive the call, so a frame
/// can never be used after the engine has given it back to the kernel.
///
/// On a multi-buffer socket ([`FluxBuilder::multi_buffer`](crate::FluxBuilder::multi_buffer))
/// a packet longer than a frame arrives in several frames and is still one
/// [`PacketMut`] with one verdict: see [`PacketMut::frags`].
#[derive(Debug)]
pub struct Batch<'a> {
    pub(crate) umem: &'a Umem,
    pub(crate) descs: &'a mut [XdpDesc],
    /// Where each packet starts in `descs` when some packet spans several; empty when
    /// every descriptor is a packet.
    pub(crate) starts: &'a [u32],
    pub(crate) verdicts: &'a mut [Verdict],
    pub(crate) pool: &'a FramePool,
    pub(crate) fresh: &'a mut Vec<(XdpDesc, u16)>,
    pub(crate) fresh_cap: usize,
    pub(crate) port: u16,
    pub(crate) ports: u16,
    pub(crate) worker: usize,
    pub(crate) queue: u32,
}

impl<'a> Batch<'a> {
    /// Packets in this batch.
    pub fn len(&self) -> usize {
        self.verdicts.len()
    }
    /// No packet (possible with `always_call`).
    pub fn is_empty(&self) -> bool {
        self.verdicts.is_empty()
    }
    /// The port the packets came in on (index in the engine's ports; 0 for a
    /// single-interface engine).
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Ports this worker serves.
    pub fn ports(&self) -> u16 {
        self.ports
    }
    /// The queue the packets came in on.
    pub fn queue(&self) -> u32 {
        self.queue
    }
    /// The worker running this callback.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Every packet, each a mutable view of its frame with its verdict.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = PacketMut<'_>> + '_ {
        debug_assert!(
            self.umem.distinct_chunks(self.descs),
            "two descriptors share a chunk"
        );
        PacketsMut {
            umem: self.umem,
            descs: &mut *self.descs,
            starts: self.starts,
            verdicts: self.verdicts.iter_mut(),
            next: 0,
            ports: self.ports,
        }
    }

    /// Packet `i`.
    pub fn packet(&mut self, i: usize) -> Option<PacketMut<'_>> {
        let (start, end) = if self.starts.is_empty() {
            (i, i + 1)
        } else {
            let s = *self.starts.get(i)? as usize;
            let e = self
                .starts
                .get(i + 1)
                .map_or(self.descs.len(), |&e| e as usize);
            (s, e)
        };
        let verdict = self.verdicts.get_mut(i)?;
        let (desc, rest) = self.descs.get_mut(start..end)?.split_first_mut()?;
        Some(PacketMut::new(self.umem, desc, rest, verdict, self.ports))
    }

    /// Sets every packet's verdict.
    pub fn set_all(&mut self, v: Verdict) {
        self.verdicts.iter_mut().for_each(|x| *x = v);
    }

    /// Fresh frames this turn can still send (bounded by free frames and the batch).
    pub fn tx_room(&self) -> usize {
        self.fresh_cap
            .saturating_sub(self.fresh.len())
            .min(self.pool.len() as usize)
    }

    /// A fresh frame to fill and send; `None` when no frame is free or this turn's
    /// quota (one batch) is used. Dropping it unsent returns it to the pool.
    pub fn alloc_tx(&mut self) -> Option<TxFrame<'_>> {
        if self.fresh.len() >= self.fresh_cap {
            return None;
        }
        let chunk = self.pool.alloc()?;
        let off = self.umem.data_offset() as usize;
        Some(TxFrame {
            buf: self.umem.owned_chunk(chunk),
            chunk,
            off,
            pool: self.pool,
            fresh: &mut *self.fresh,
            default_port: self.port,
            ports: self.ports,
            sent: false,
            csum: None,
        })
    }
}

/// The packets of a batch, in order (see [`Batch::iter_mut`]).
struct PacketsMut<'b> {
    umem: &'b Umem,
    /// The descriptors not handed out yet.
    descs: &'b mut [XdpDesc],
    starts: &'b [u32],
    verdicts: std::slice::IterMut<'b, Verdict>,
    /// Index of the next packet.
    next: usize,
    ports: u16,
}

impl<'b> Iterator for PacketsMut<'b> {
    type Item = PacketMut<'b>;

    #[inline]
    fn next(&mut self) -> Option<PacketMut<'b>> {
        let verdict = self.verdicts.next()?;
        let span = if self.starts.is_empty() {
            1
        } else {
            let i = self.next;
            let start = self.starts[i] as usize;
            self.starts
                .get(i + 1)
                .map_or(self.descs.len(), |&e| e as usize - start)
        };
        self.next += 1;
        let (pkt, rest) = std::mem::take(&mut self.descs).split_at_mut(span);
        self.descs = rest;
        let (desc, frags) = pkt.split_first_mut()?;
        Some(PacketMut::new(self.umem, desc, frags, verdict, self.ports))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.verdicts.size_hint()
    }
}

/// One received packet: its bytes, its room to grow, and its verdict.
///
/// A multi-buffer packet (longer than a frame, on a socket built with
/// [`multi_buffer(true)`](crate::FluxBuilder::multi_buffer)) spans several frames:
/// [`PacketMut::data`] and the editing methods work on its first fragment, which
/// holds the headers; [`PacketMut::frags`] gives every fragment,
/// [`PacketMut::contiguous`] the whole packet in one slice (a copy, only for such
/// packets). It is one packet all the same: one verdict sends every fragment (no
/// copy) or gives them all back.
#[derive(Debug)]
pub struct PacketMut<'a> {
    chunk: &'a mut [u8],
    off: usize,
    desc: &'a mut XdpDesc,
    /// The fragments after the first (empty for a packet in one frame).
    rest: &'a mut [XdpDesc],
    umem: &'a Umem,
    verdict: &'a mut Verdict,
    ports: u16,
}

impl<'a> PacketMut<'a> {
    #[inline]
    fn new(
        umem: &'a Umem,
        desc: &'a mut XdpDesc,
        rest: &'a mut [XdpDesc],
        verdict: &'a mut Verdict,
        ports: u16,
    ) -> PacketMut<'a> {
        PacketMut {
            off: umem.offset_in_chunk(desc.addr) as usize,
            chunk: umem.owned_chunk(desc.addr),
            desc,
            rest,
            umem,
            verdict,
            ports,
        }
    }
}

impl PacketMut<'_> {
    /// Length in bytes (of a multi-buffer packet: of its first fragment; see
    /// [`PacketMut::packet_len`]).
    pub fn len(&self) -> usize {
        self.desc.len as usize
    }
    /// Zero length.
    pub fn is_empty(&self) -> bool {
        self.desc.len == 0
    }
    /// Length of the whole packet, every fragment.
    pub fn packet_len(&self) -> usize {
        self.desc.len as usize + self.rest.iter().map(|d| d.len as usize).sum::<usize>()
    }
    /// Frames the packet spans (1 unless it is a multi-buffer packet).
    pub fn frag_count(&self) -> usize {
        1 + self.rest.len()
    }
    /// The packet spans several frames.
    pub fn is_multi_buffer(&self) -> bool {
        !self.rest.is_empty()
    }
    /// Fragment `i`'s bytes (0 is [`PacketMut::data`]).
    pub fn frag(&self, i: usize) -> Option<&[u8]> {
        match i {
            0 => Some(self.data()),
            _ => {
                let d = self.rest.get(i - 1)?;
                // The fragment's frame is this batch's alone until the callback
                // returns, and `&self` excludes a mutable view of it.
                let off = self.umem.offset_in_chunk(d.addr) as usize;
                self.umem
                    .owned_chunk_ref(d.addr)
                    .get(off..off + d.len as usize)
            }
        }
    }
    /// Fragment `i`'s bytes, mutable.
    pub fn frag_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        match i {
            0 => Some(self.data_mut()),
            _ => {
                let d = self.rest.get(i - 1)?;
                // As in `frag`; `&mut self` makes this the only view.
                let off = self.umem.offset_in_chunk(d.addr) as usize;
                self.umem
                    .owned_chunk(d.addr)
                    .get_mut(off..off + d.len as usize)
            }
        }
    }
    /// Every fragment's bytes, in order (one slice for a packet in one frame).
    pub fn frags(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.frag_count()).filter_map(move |i| self.frag(i))
    }
    /// The whole packet as one slice: borrowed for a packet in one frame, a copy of
    /// its fragments for a multi-buffer one.
    pub fn contiguous(&self) -> Cow<'_, [u8]> {
        if self.rest.is_empty() {
            return Cow::Borrowed(self.data());
        }
        let mut v = Vec::with_capacity(self.packet_len());
        self.frags().for_each(|f| v.extend_from_slice(f));
        Cow::Owned(v)
    }
    /// The packet's bytes (of a multi-buffer packet: its first fragment).
    pub fn data(&self) -> &[u8] {
        let end = (self.off + self.desc.len as usize).min(self.chunk.len());
        self.chunk.get(self.off..end).unwrap_or_default()
    }
    /// The packet's bytes, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = (self.off + self.desc.len as usize).min(self.chunk.len());
        self.chunk.get_mut(self.off..end).unwrap_or_default()
    }
    /// Bytes free in front of the packet (for pushing headers).
    pub fn headroom(&self) -> usize {
        self.off
    }
    /// Largest length the packet can grow to without moving its start.
    pub fn capacity(&self) -> usize {
        self.chunk.len().saturating_sub(self.off)
    }
    /// Changes the length (e.g. to send a shorter or longer reply in place).
    pub fn set_len(&mut self, len: usize) -> Result<(), DescError> {
        let max = self.capacity();
        if len == 0 || len > max {
            return Err(DescError::Length {
                len: len as u32,
                max: max as u32,
            });
        }
        if self.desc.options & crate::sys::XDP_TX_METADATA != 0 {
            let m = self
                .chunk
                .get(self.off.saturating_sub(crate::meta::TX_META_LEN)..self.off);
            if !m.is_some_and(|m| crate::meta::tx::fits(m, len)) {
                return Err(DescError::TxMetadata(
                    "the packet would end before the field of its checksum request",
                ));
            }
        }
        self.desc.len = len as u32;
        Ok(())
    }
    /// Moves the packet's start `n` bytes earlier (into the headroom), growing it;
    /// the new bytes are whatever the frame held there.
    pub fn push_head(&mut self, n: usize) -> Result<(), DescError> {
        if n > self.off {
            return Err(DescError::Length {
                len: n as u32,
                max: self.off as u32,
            });
        }
        self.move_tx_metadata(self.off - n);
        self.off -= n;
        self.desc.addr -= n as u64;
        self.desc.len += n as u32;
        Ok(())
    }
    /// Drops the first `n` bytes (e.g. to strip a header).
    pub fn pull_head(&mut self, n: usize) -> Result<(), DescError> {
        if n >= self.desc.len as usize {
            return Err(DescError::Length {
                len: n as u32,
                max: self.desc.len.saturating_sub(1),
            });
        }
        if self.desc.options & crate::sys::XDP_TX_METADATA != 0 {
            let m = self
                .chunk
                .get(self.off.saturating_sub(crate::meta::TX_META_LEN)..self.off);
            if !m.is_some_and(|m| crate::meta::tx::fits(m, self.desc.len as usize - n)) {
                return Err(DescError::TxMetadata(
                    "the packet would end before the field of its checksum request",
                ));
            }
        }
        self.move_tx_metadata(self.off + n);
        self.off += n;
        self.desc.addr += n as u64;
        self.desc.len -= n as u32;
        Ok(())
    }
    fn move_tx_metadata(&mut self, to: usize) {
        if self.desc.options & crate::sys::XDP_TX_METADATA != 0
            && !crate::meta::tx::relocate(self.chunk, self.off, to)
        {
            self.desc.options &= !crate::sys::XDP_TX_METADATA;
        }
    }
    /// Asks for checksum offload when this packet is sent ([`Verdict::Tx`] or
    /// [`Verdict::Forward`]), on ports built with
    /// [`tx_metadata(true)`](crate::FluxBuilder::tx_metadata): the sum from byte
    /// `start` to the end goes, folded and complemented, into the 16 bits at
    /// `start + offset`, which must hold the pseudo-header sum (see
    /// [`Frame::request_tx_checksum`](crate::system::Frame::request_tx_checksum)).
    /// The request stays with the packet if its start moves; a dropped packet
    /// ignores it.
    ///
    /// # Errors
    /// [`DescError::NoTxMetadata`] without TX metadata; [`DescError::TxMetadata`]
    /// when the field lies past the packet or there is no room in front of it.
    pub fn request_tx_checksum(&mut self, start: u16, offset: u16) -> Result<(), DescError> {
        if !self.umem.tx_metadata() {
            return Err(DescError::NoTxMetadata);
        }
        if start as usize + offset as usize + 2 > self.desc.len as usize {
            return Err(DescError::TxMetadata(
                "the checksum field lies past the packet end",
            ));
        }
        let fresh = self.desc.options & crate::sys::XDP_TX_METADATA == 0;
        let m = crate::meta::tx::area(self.chunk, self.off, fresh)?;
        crate::meta::tx::checksum(m, start, offset);
        self.desc.options |= crate::sys::XDP_TX_METADATA;
        Ok(())
    }
    /// The packet's RX metadata (timestamp, RSS hash, VLAN tag), on ports built
    /// with [`rx_metadata(true)`](crate::FluxBuilder::rx_metadata); `None` otherwise,
    /// without reading anything. Read it before [`PacketMut::push_head`]: the
    /// metadata lies right in front of the packet as received.
    #[inline]
    pub fn rx_metadata(&self) -> Option<crate::meta::RxMetadata> {
        self.umem.rx_meta_in(self.chunk, self.off)
    }
    /// The device's receive timestamp, ns (see [`PacketMut::rx_metadata`]).
    #[inline]
    pub fn rx_timestamp(&self) -> Option<u64> {
        self.rx_metadata()?.timestamp
    }
    /// The RSS hash and what it covers (see [`PacketMut::rx_metadata`]).
    #[inline]
    pub fn rx_hash(&self) -> Option<(u32, crate::meta::RssHashType)> {
        self.rx_metadata()?.hash
    }
    /// The VLAN tag the device stripped (see [`PacketMut::rx_metadata`]).
    #[inline]
    pub fn vlan(&self) -> Option<crate::meta::VlanTag> {
        self.rx_metadata()?.vlan
    }
    /// Parses the packet into its protocol layers, without copying (`proto` feature).
    #[cfg(feature = "proto")]
    pub fn parse(&self) -> Result<crate::proto::Layers<'_>, crate::proto::ProtoError> {
        crate::proto::Layers::parse(self.data())
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Verdict {
        *self.verdict
    }
    /// Sets the verdict.
    pub fn set_verdict(&mut self, v: Verdict) {
        *self.verdict = v;
    }
    /// Send this frame back out of its port.
    pub fn transmit(&mut self) {
        *self.verdict = Verdict::Tx;
    }
    /// Send this frame out of `port`; returns false (and drops) for an unknown port.
    pub fn forward(&mut self, port: u16) -> bool {
        if port < self.ports {
            *self.verdict = Verdict::Forward(port);
            true
        } else {
            *self.verdict = Verdict::Drop;
            false
        }
    }
    /// Give the frame back to FILL (the default).
    pub fn drop_packet(&mut self) {
        *self.verdict = Verdict::Drop;
    }
}

/// A fresh frame from the pool, to fill and send.
#[derive(Debug)]
pub struct TxFrame<'a> {
    buf: &'a mut [u8],
    chunk: u64,
    off: usize,
    pool: &'a FramePool,
    fresh: &'a mut Vec<(XdpDesc, u16)>,
    default_port: u16,
    ports: u16,
    sent: bool,
    /// A checksum request (start, offset), written at send.
    csum: Option<(u16, u16)>,
}

impl TxFrame<'_> {
    /// The bytes available for the packet.
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.off..).unwrap_or_default()
    }
    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.len().saturating_sub(self.off)
    }
    /// Asks for checksum offload when this frame is sent, on ports built with
    /// [`tx_metadata(true)`](crate::FluxBuilder::tx_metadata) (see
    /// [`PacketMut::request_tx_checksum`]); checked against the length at send.
    ///
    /// # Errors
    /// [`DescError::NoTxMetadata`] without TX metadata.
    pub fn request_tx_checksum(&mut self, start: u16, offset: u16) -> Result<(), DescError> {
        if !self.pool.umem().tx_metadata() {
            return Err(DescError::NoTxMetadata);
        }
        self.csum = Some((start, offset));
        Ok(())
    }
    /// Sends the first `len` bytes of the buffer on the batch's port.
    pub fn send(self, len: usize) -> Result<(), DescError> {
        let p = self.default_port;
        self.send_to(p, len)
    }
    /// Sends the first `len` bytes on `port`.
    pub fn send_to(mut self, port: u16, len: usize) -> Result<(), DescError> {
        let max = self.capacity();
        if len == 0 || len > max {
            return Err(DescError::Length {
                len: len as u32,
                max: max as u32,
            });
        }
        if port >= self.ports {
            return Err(DescError::Options(port as u32));
        }
        let mut options = 0;
        if let Some((start, offset)) = self.csum {
            if start as usize + offset as usize + 2 > len {
                return Err(DescError::TxMetadata(
                    "the checksum field lies past the packet end",
                ));
            }
            let m = crate::meta::tx::area(self.buf, self.off, true)?;
            crate::meta::tx::checksum(m, start, offset);
            options = crate::sys::XDP_TX_METADATA;
        }
        self.fresh.push((
            XdpDesc {
                addr: self.chunk + self.off as u64,
                len: len as u32,
                options,
            },
            port,
        ));
        self.sent = true;
        Ok(())
    }
}

impl Drop for TxFrame<'_> {
    fn drop(&mut self) {
        if !self.sent {
            self.pool.free(self.chunk);
        }
    }
}
