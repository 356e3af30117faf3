//! The frame census: where every frame of a UMEM is — free, on FILL, on RX, held by
//! the application, on TX, on COMPLETION. One formula for every mode: the ring
//! totals of each socket ([`RingTotals`]), read straight from the rings by their
//! owner, or published through a [`Census`] when the rings live on several threads.

use std::fmt;
use std::ops::AddAssign;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ring::Rings;

/// Where every frame of a UMEM is, at one moment.
///
/// `free + fill + rx + user + tx + completion == total` always holds; tests assert it
/// after every scenario, and that `user`, `tx` and `completion` drain to zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameCounts {
    /// Frames in the UMEM.
    pub total: u32,
    /// In the allocator.
    pub free: u32,
    /// Given to the kernel on FILL and not yet seen on RX.
    pub fill: u32,
    /// Published on RX and not yet taken.
    pub rx: u32,
    /// Held by the application.
    pub user: u32,
    /// Submitted on TX and not yet completed.
    pub tx: u32,
    /// Published on COMPLETION and not yet reaped.
    pub completion: u32,
}

impl FrameCounts {
    /// The census of `total` frames, `free` of them in the pool, the rest placed as
    /// `rings` say; `user` is what is nowhere else.
    pub(crate) fn of(total: u32, free: u32, rings: RingTotals) -> FrameCounts {
        let fill = rings.fill_given.saturating_sub(rings.rx_seen);
        let tx = rings
            .tx_given
            .saturating_sub(rings.comp_seen + rings.tx_lost);
        let placed = free as u64 + fill + rings.rx_ready + tx + rings.comp_ready;
        FrameCounts {
            total,
            free,
            fill: fill as u32,
            rx: rings.rx_ready as u32,
            user: (total as u64).saturating_sub(placed) as u32,
            tx: tx as u32,
            completion: rings.comp_ready as u32,
        }
    }

    /// The places add up to the total.
    pub fn is_conserved(&self) -> bool {
        self.free as u64
            + self.fill as u64
            + self.rx as u64
            + self.user as u64
            + self.tx as u64
            + self.completion as u64
            == self.total as u64
    }
}

impl fmt::Display for FrameCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "total {} = free {} + fill {} + rx {} + user {} + tx {} + completion {}",
            self.total, self.free, self.fill, self.rx, self.user, self.tx, self.completion
        )
    }
}

/// What went through one socket's rings, as totals since it was made. Totals, not
/// places, so that sockets sharing a queue add up: a frame one of them put on FILL
/// may come back on another's RX.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RingTotals {
    /// Frames put on FILL.
    pub fill_given: u64,
    /// Frames seen on RX: taken, or ready to take.
    pub rx_seen: u64,
    /// Ready on RX, not taken.
    pub rx_ready: u64,
    /// Descriptors put on TX.
    pub tx_given: u64,
    /// Frames seen on COMPLETION: reaped, or ready to reap.
    pub comp_seen: u64,
    /// Ready on COMPLETION, not reaped.
    pub comp_ready: u64,
    /// Frames behind invalid TX descriptors the kernel swallowed without completing
    /// (raw mode reports them; see `RawParts::reconcile_invalid_tx`).
    pub tx_lost: u64,
}

impl RingTotals {
    /// Read from the rings themselves (their owner only: it refreshes their views of
    /// the kernel's indices).
    pub(crate) fn of(rings: &mut Rings, tx_lost: u64) -> RingTotals {
        let mut t = RingTotals {
            tx_lost,
            ..Default::default()
        };
        if let Some(f) = &rings.fill {
            t.fill_given = f.produced();
        }
        if let Some(r) = rings.rx.as_mut() {
            t.rx_ready = r.available(u32::MAX) as u64;
            t.rx_seen = r.consumed() + t.rx_ready;
        }
        if let Some(x) = &rings.tx {
            t.tx_given = x.produced();
        }
        if let Some(c) = rings.completion.as_mut() {
            t.comp_ready = c.available(u32::MAX) as u64;
            t.comp_seen = c.consumed() + t.comp_ready;
        }
        t
    }
}

impl AddAssign for RingTotals {
    fn add_assign(&mut self, o: RingTotals) {
        self.fill_given += o.fill_given;
        self.rx_seen += o.rx_seen;
        self.rx_ready += o.rx_ready;
        self.tx_given += o.tx_given;
        self.comp_seen += o.comp_seen;
        self.comp_ready += o.comp_ready;
        self.tx_lost += o.tx_lost;
    }
}

/// Ring totals published by the threads that own the rings (system mode: `Rx` owns
/// FILL and RX, `Tx` owns TX, COMPLETION is shared), for a census taken from any of
/// them. Relaxed stores by each ring's one owner: a census is a snapshot, exact when
/// no handle is inside a call.
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "system"), allow(dead_code))]
pub(crate) struct Census {
    fill_given: AtomicU64,
    rx_taken: AtomicU64,
    rx_ready: AtomicU64,
    tx_given: AtomicU64,
    comp_taken: AtomicU64,
    comp_ready: AtomicU64,
}

#[cfg_attr(not(feature = "system"), allow(dead_code))]
impl Census {
    /// FILL's total (its owner, after producing).
    #[inline]
    pub(crate) fn note_fill(&self, produced: u64) {
        self.fill_given.store(produced, Ordering::Relaxed);
    }
    /// RX's totals: taken, and (when known) ready.
    #[inline]
    pub(crate) fn note_rx(&self, taken: u64, ready: Option<u64>) {
        self.rx_taken.store(taken, Ordering::Relaxed);
        if let Some(r) = ready {
            self.rx_ready.store(r, Ordering::Relaxed);
        }
    }
    /// TX's total.
    #[inline]
    pub(crate) fn note_tx(&self, produced: u64) {
        self.tx_given.store(produced, Ordering::Relaxed);
    }
    /// COMPLETION's totals: reaped, and ready.
    #[inline]
    pub(crate) fn note_completion(&self, taken: u64, ready: u64) {
        self.comp_taken.store(taken, Ordering::Relaxed);
        self.comp_ready.store(ready, Ordering::Relaxed);
    }

    /// Frames given to TX and not reaped yet (on TX or COMPLETION).
    pub(crate) fn tx_in_flight(&self) -> u64 {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        load(&self.tx_given).saturating_sub(load(&self.comp_taken))
    }

    /// The totals as last published. A ready count can lag behind the taken one
    /// (published by different calls): it is capped by what can be there.
    pub(crate) fn totals(&self) -> RingTotals {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (given, taken) = (load(&self.fill_given), load(&self.rx_taken));
        let rx_ready = load(&self.rx_ready).min(given.saturating_sub(taken));
        let (tx, comp) = (load(&self.tx_given), load(&self.comp_taken));
        let comp_ready = load(&self.comp_ready).min(tx.saturating_sub(comp));
        RingTotals {
            fill_given: given,
            rx_seen: taken + rx_ready,
            rx_ready,
            tx_given: tx,
            comp_seen: comp + comp_ready,
            comp_ready,
            tx_lost: 0,
        }
    }
}
