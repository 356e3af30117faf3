//! Raw mode: the four rings, the frame pool and the UMEM, for people who drive the
//! rings themselves.
//!
//! Descriptors are plain numbers, so submitting them is safe: the kernel validates
//! them (and [`RawParts::send`] validates TX descriptors first, because the kernel
//! silently swallows bad ones). Touching frame bytes is `unsafe`, because only the
//! caller knows that a frame is not on a ring at that moment.
//!
//! ```no_run
//! # fn main() -> Result<(), fluxcapacitor::Error> {
//! let mut flux = fluxcapacitor::FluxBuilder::new("veth0").build()?;
//! let raw = flux.raw();
//! let rx = raw.rx.expect("RX ring");
//! let fill = raw.fill.expect("FILL ring");
//! let umem = raw.umem;
//! let peek = rx.peek(64);
//! let mut done = Vec::with_capacity(peek.len() as usize);
//! for desc in peek.iter() {
//!     // SAFETY: the frame came off RX and is not on any ring until we refill it.
//!     let bytes = unsafe { umem.slice(desc.addr, desc.len as usize) }.unwrap();
//!     println!("{} bytes, first {:02x?}", bytes.len(), &bytes[..6.min(bytes.len())]);
//!     done.push(umem.chunk_of(desc.addr));
//! }
//! peek.release();
//! // Back on FILL; what it cannot take yet waits in the pool for the next top-up.
//! let mut refill = fill.reserve(done.len() as u32);
//! for &chunk in &done {
//!     if refill.push(chunk).is_err() {
//!         raw.pool.free(chunk);
//!     }
//! }
//! refill.commit();
//! fill.fill_from(raw.pool, 64);
//! # Ok(()) }
//! ```
//!
//! The kernel publishes a batch on RX a moment before it publishes that it took the
//! batch's frames off FILL, so a receiver that keeps every frame on FILL or RX can
//! find FILL short of room for what RX just returned: never assume the room, keep
//! what does not fit (the pool) and top FILL up again later.

use crate::device::Device;
use crate::error::{ConfigError, DescError, Error, Result};
use crate::ring::{CompletionRing, FillRing, RxRing, TxRing};
use crate::sys::XdpDesc;
use crate::umem::{FramePool, Umem};

/// Mutable access to everything a ring driver needs, borrowed from a [`Flux`](crate::Flux).
#[derive(Debug)]
pub struct RawParts<'a> {
    /// FILL ring.
    pub fill: Option<&'a mut FillRing>,
    /// COMPLETION ring.
    pub completion: Option<&'a mut CompletionRing>,
    /// RX ring.
    pub rx: Option<&'a mut RxRing>,
    /// TX ring.
    pub tx: Option<&'a mut TxRing>,
    /// Free frames.
    pub pool: &'a FramePool,
    /// The UMEM.
    pub umem: &'a Umem,
    /// The device, for kicks, wake-ups and statistics.
    pub device: &'a Device,
    pub(crate) tx_lost: &'a mut u64,
}

impl RawParts<'_> {
    /// Validates `descs` as the kernel would and pushes them on TX; returns how many
    /// were queued (stopping at the first refused one or when TX is full). Kick with
    /// [`Device::kick_tx`] when [`TxRing::needs_wakeup`] says so.
    pub fn send(&mut self, descs: &[XdpDesc]) -> Result<usize> {
        let tx = self
            .tx
            .as_deref_mut()
            .ok_or(Error::Config(ConfigError::Conflict(
                "this socket was built without a TX ring",
            )))?;
        let mut r = tx.reserve(descs.len() as u32);
        let mut n = 0;
        for d in descs {
            if let Err(e) = self.umem.check_tx(d.addr, d.len, d.options) {
                r.commit();
                return Err(e.into());
            }
            if r.push(*d).is_err() {
                break;
            }
            n += 1;
        }
        r.commit();
        Ok(n)
    }

    /// Accounts for `frames` frames behind invalid TX descriptors pushed unchecked
    /// (through `tx.reserve`) that the kernel consumed and will never complete, and
    /// that the caller has taken back. Kernels differ here: some (6.18, in copy mode)
    /// put such descriptors on COMPLETION after counting them in `tx_invalid_descs`,
    /// older ones drop them silently; compare completions with `tx_invalid_descs`.
    /// Frames submitted through [`RawParts::send`] are validated first and never need this.
    pub fn reconcile_invalid_tx(&mut self, frames: u64) {
        *self.tx_lost += frames;
    }

    /// Checks one TX descriptor without queueing it.
    pub fn check(&self, desc: &XdpDesc) -> std::result::Result<(), DescError> {
        self.umem.check_tx(desc.addr, desc.len, desc.options)
    }
}

/// Reassembles multi-buffer packets (`XDP_USE_SG`) from RX descriptors: every
/// descriptor but a packet's last carries `XDP_PKT_CONTD`, and an RX batch may end in
/// the middle of a packet, so the fragments seen so far are kept until the rest comes.
#[derive(Debug, Default)]
pub struct PacketAssembler {
    frags: Vec<XdpDesc>,
}

impl PacketAssembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next RX descriptor. Returns the complete packet's fragments, in
    /// order, when `desc` is its last one; the slice is valid until the next call.
    pub fn push(&mut self, desc: XdpDesc) -> Option<&[XdpDesc]> {
        if self
            .frags
            .last()
            .is_some_and(|l| l.options & crate::sys::XDP_PKT_CONTD == 0)
        {
            self.frags.clear();
        }
        self.frags.push(desc);
        (desc.options & crate::sys::XDP_PKT_CONTD == 0).then_some(&self.frags[..])
    }

    /// Fragments of an unfinished packet held now.
    pub fn pending(&self) -> usize {
        match self.frags.last() {
            Some(l) if l.options & crate::sys::XDP_PKT_CONTD != 0 => self.frags.len(),
            _ => 0,
        }
    }
}
