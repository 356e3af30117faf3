//! The four typed rings of an XDP socket over the one generic ring: FILL and TX are
//! producers (user space writes), RX and COMPLETION consumers. Aliases, not wrappers:
//! every ring has the same reservation and peek guards, and counts what went through
//! it for the frame census.

use super::{Consumer, Producer};
use crate::sys::abi::XdpDesc;

/// The FILL ring: frames handed to the kernel to receive into (chunk addresses).
pub type FillRing = Producer<u64>;
/// The TX ring: descriptors of packets to send.
pub type TxRing = Producer<XdpDesc>;
/// The COMPLETION ring: addresses of frames the kernel has finished sending.
pub type CompletionRing = Consumer<u64>;
/// The RX ring: descriptors of received packets.
pub type RxRing = Consumer<XdpDesc>;

impl Producer<u64> {
    /// Moves up to `n` frames from `pool` onto FILL (one pool operation); returns how
    /// many.
    pub fn fill_from(&mut self, pool: &crate::umem::FramePool, n: u32) -> u32 {
        let mut r = self.reserve(n);
        pool.alloc_batch(r.remaining(), |chunk| {
            // Cannot fail: at most `remaining()` frames are taken.
            let _ = r.push(chunk);
        });
        r.commit()
    }
}

/// A socket's rings, as created.
#[derive(Debug)]
pub struct Rings {
    /// FILL (absent on a sharer of another socket's queue).
    pub fill: Option<FillRing>,
    /// COMPLETION (as FILL).
    pub completion: Option<CompletionRing>,
    /// RX, if asked for.
    pub rx: Option<RxRing>,
    /// TX, if asked for.
    pub tx: Option<TxRing>,
}
