//! The free frames of a UMEM: one lock-free pool for every mode. The engine's
//! worker, a system-mode `Rx`/`Tx` pair and every `Frame` they hand out, and raw-mode
//! code all take frames from it and give them back.
//!
//! It is a Treiber stack over an index array instead of heap nodes: frame `i`'s
//! successor lives in `next[i]`, and the head word packs a 32-bit modification tag
//! with the top index so that a pop which raced with a pop-and-push of the same
//! frame (the ABA case) fails its compare-and-swap instead of corrupting the list.
//! No allocation, no lock, no `unsafe`: every slot is an atomic.
//!
//! Costs: [`Pool::push`] (a dropped frame) is one compare-and-swap plus one
//! counter update; [`Pool::push_chain`] (reaped completions) and [`Pool::pop_batch`]
//! (a FILL refill) are one compare-and-swap per batch plus a walk over the batch.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use crate::umem::Umem;

/// "No frame" in `next` and in the head's index half (indices are stored plus one).
const NIL: u32 = 0;

/// Free frames of one UMEM (or of a range of it): a lock-free stack, shared by
/// whoever takes and returns frames. Every frame is always in exactly one place —
/// here, on a ring, or held by the application — and
/// [`FrameCounts`](super::FrameCounts) is that census.
#[derive(Debug)]
pub struct FramePool {
    umem: Arc<Umem>,
    /// `tag << 32 | (index + 1)` of the top frame; index half `NIL` when empty.
    head: AtomicU64,
    /// `next[i]`: index + 1 of the frame below frame `i`, or `NIL`.
    next: Box<[AtomicU32]>,
    /// Frames on the stack (exact when no push or pop is in progress).
    len: AtomicU32,
    /// Frames this pool was created with.
    total: u32,
    /// `log2(frame_size)` when the frame size is a power of two.
    shift: Option<u32>,
    /// Wakes an `Rx` that found FILL empty and nothing to refill it with.
    pub(crate) waiter: Waiter,
}

impl FramePool {
    /// A pool holding every frame of `umem`.
    pub(crate) fn new(umem: &Arc<Umem>) -> FramePool {
        Self::with_range(umem, 0, umem.frame_count())
    }

    /// A pool holding frames `first..first + count` of `umem` (for splitting a UMEM
    /// between workers).
    pub(crate) fn with_range(umem: &Arc<Umem>, first: u32, count: u32) -> FramePool {
        let last = first.saturating_add(count).min(umem.frame_count());
        // Low addresses first out: pushed in reverse.
        let addrs: Vec<u64> = (first..last).rev().map(|i| umem.frame_addr(i)).collect();
        Self::holding(umem.clone(), addrs.into_iter(), last.saturating_sub(first))
    }

    /// An empty pool (a socket that shares another's UMEM and frames).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn empty(umem: &Arc<Umem>) -> FramePool {
        Self::holding(umem.clone(), std::iter::empty(), 0)
    }

    /// A pool holding `frames` (chunk addresses of `umem`), `total` of them.
    fn holding(umem: Arc<Umem>, frames: impl Iterator<Item = u64>, total: u32) -> FramePool {
        let fs = umem.frame_size();
        let pool = FramePool {
            next: (0..umem.frame_count())
                .map(|_| AtomicU32::new(NIL))
                .collect(),
            head: AtomicU64::new(0),
            len: AtomicU32::new(0),
            total,
            shift: fs.is_power_of_two().then(|| fs.trailing_zeros()),
            waiter: Waiter::default(),
            umem,
        };
        for chunk in frames {
            if let Some(i) = pool.index_of(chunk) {
                pool.push(i);
            }
        }
        pool
    }

    /// The UMEM the frames belong to.
    #[inline]
    #[cfg_attr(not(feature = "system"), allow(dead_code))]
    pub(crate) fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Frames this pool was created with.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Frames free now (a snapshot).
    #[inline]
    pub fn len(&self) -> u32 {
        self.len.load(Ordering::Relaxed)
    }

    /// No frame free now.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a free frame: its chunk address.
    #[inline]
    pub fn alloc(&self) -> Option<u64> {
        self.pop().map(|i| self.chunk(i))
    }

    /// Gives back the frame holding `addr` (any address inside its chunk). An
    /// address outside the UMEM is ignored.
    #[inline]
    pub fn free(&self, addr: u64) {
        if let Some(i) = self.index_of(addr) {
            self.push(i);
        }
    }

    /// Takes up to `max` frames with one compare-and-swap, handing each chunk address
    /// to `f`; returns how many.
    #[inline]
    pub(crate) fn alloc_batch(&self, max: u32, mut f: impl FnMut(u64)) -> u32 {
        self.pop_batch(max, |i| f(self.chunk(i)))
    }

    /// Gives back every frame of `addrs` with one compare-and-swap; returns how many.
    #[inline]
    pub(crate) fn free_batch(&self, addrs: impl IntoIterator<Item = u64>) -> u32 {
        let mut chain = self.chain();
        for a in addrs {
            chain.add(a);
        }
        chain.push()
    }

    /// A chain of frames to give back together: [`Chain::add`] each, then
    /// [`Chain::push`] (one compare-and-swap for all).
    #[inline]
    pub(crate) fn chain(&self) -> Chain<'_> {
        Chain {
            pool: self,
            top: None,
            bottom: 0,
            n: 0,
        }
    }

    /// The frame index of any address inside a chunk, if it is inside the UMEM.
    #[inline]
    pub(crate) fn index_of(&self, addr: u64) -> Option<u32> {
        let chunk = self.umem.chunk_of(addr);
        let i = match self.shift {
            Some(s) => chunk >> s,
            None => chunk / self.umem.frame_size() as u64,
        };
        (i < self.next.len() as u64).then_some(i as u32)
    }

    /// The chunk address of frame `i`.
    #[inline]
    pub(crate) fn chunk(&self, i: u32) -> u64 {
        self.umem.frame_addr(i)
    }

    /// Puts frame `i` on the stack.
    #[inline]
    pub(crate) fn push(&self, i: u32) {
        self.push_chain(i, i, 1);
    }

    /// Links frame `i` in front of `below` (a chain the caller is building and owns).
    #[inline]
    pub(crate) fn link(&self, i: u32, below: Option<u32>) {
        if let Some(slot) = self.next.get(i as usize) {
            // Relaxed: published by the Release half of the CAS in `push_chain`.
            slot.store(below.map_or(NIL, |b| b + 1), Ordering::Relaxed);
        }
    }

    /// Puts a chain the caller built with [`Pool::link`] (`top` … `bottom`, `n`
    /// frames) on the stack with one compare-and-swap.
    pub(crate) fn push_chain(&self, top: u32, bottom: u32, n: u32) {
        let Some(bottom_next) = self.next.get(bottom as usize) else {
            return;
        };
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            bottom_next.store(head as u32, Ordering::Relaxed);
            let new = ((tag_of(head).wrapping_add(1) as u64) << 32) | (top as u64 + 1);
            // SeqCst: Release publishes the `next` links written above to the popper's
            // Acquire load of the head; the total order with `Waiter::arm` makes sure
            // that either the waiting `Rx` sees these frames or we see its flag.
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        self.len.fetch_add(n, Ordering::Relaxed);
        self.waiter.notify();
    }

    /// Takes up to `max` frames off the stack with one compare-and-swap and hands
    /// each index to `f`; returns how many.
    pub(crate) fn pop_batch(&self, max: u32, mut f: impl FnMut(u32)) -> u32 {
        if max == 0 {
            return 0;
        }
        loop {
            // Acquire: every push is a read-modify-write of the head, so this load
            // synchronises with all of them and the `next` links they wrote.
            let head = self.head.load(Ordering::Acquire);
            let top = head as u32;
            if top == NIL {
                return 0;
            }
            // Walk down `max` frames. A concurrent pop/push may make us read stale
            // links; then the head's tag has changed and the CAS below fails.
            let mut n = 1;
            let mut cur = top;
            let mut ok = true;
            let below = loop {
                let Some(slot) = self.next.get(cur as usize - 1) else {
                    ok = false;
                    break NIL;
                };
                let nx = slot.load(Ordering::Relaxed);
                if n == max || nx == NIL {
                    break nx;
                }
                cur = nx;
                n += 1;
            };
            if !ok || below as usize > self.next.len() {
                std::hint::spin_loop();
                continue;
            }
            let new = ((tag_of(head).wrapping_add(1) as u64) << 32) | below as u64;
            if self
                .head
                .compare_exchange_weak(head, new, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                // The `n` frames from `top` are ours: nobody writes their links now.
                let mut cur = top;
                for _ in 0..n {
                    f(cur - 1);
                    cur = self.next[cur as usize - 1].load(Ordering::Relaxed);
                }
                self.len.fetch_sub(n, Ordering::Relaxed);
                return n;
            }
        }
    }

    /// Takes one frame off the stack.
    #[inline]
    pub(crate) fn pop(&self) -> Option<u32> {
        let mut got = None;
        self.pop_batch(1, |i| got = Some(i));
        got
    }
}

/// Frames on their way back to a pool (see [`FramePool::chain`]); dropping it
/// without [`Chain::push`] would lose them, so it must be used.
#[must_use = "the frames return to the pool only on push()"]
#[derive(Debug)]
pub(crate) struct Chain<'a> {
    pool: &'a FramePool,
    top: Option<u32>,
    bottom: u32,
    n: u32,
}

impl Chain<'_> {
    /// Adds the frame holding `addr` (addresses outside the UMEM are ignored).
    #[inline]
    pub(crate) fn add(&mut self, addr: u64) {
        if let Some(i) = self.pool.index_of(addr) {
            self.pool.link(i, self.top);
            if self.top.is_none() {
                self.bottom = i;
            }
            self.top = Some(i);
            self.n += 1;
        }
    }

    /// Puts every added frame back on the pool; returns how many.
    #[inline]
    pub(crate) fn push(self) -> u32 {
        if let Some(t) = self.top {
            self.pool.push_chain(t, self.bottom, self.n);
        }
        self.n
    }
}

#[inline]
fn tag_of(head: u64) -> u32 {
    (head >> 32) as u32
}

/// A one-slot waker for an `Rx` waiting for frames to come back to the pool.
///
/// Only touched when FILL has run dry (every frame is held by the application or on
/// TX): the fast path of a push is one load of `armed`.
#[derive(Debug, Default)]
pub(crate) struct Waiter {
    armed: AtomicBool,
    slot: Mutex<Option<Waker>>,
}

#[cfg_attr(not(feature = "system"), allow(dead_code))]
impl Waiter {
    /// Registers `waker` to be woken by the next push. The caller re-checks the pool
    /// afterwards (the SeqCst store orders this against a push's CAS).
    pub(crate) fn arm(&self, waker: &Waker) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
        drop(slot);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Forgets a registration that is no longer needed.
    pub(crate) fn disarm(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            *slot = None;
        }
    }

    #[inline]
    fn notify(&self) {
        // SeqCst: pairs with the store in `arm` (see `push_chain`).
        if self.armed.load(Ordering::SeqCst) && self.armed.swap(false, Ordering::SeqCst) {
            let w = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(w) = w {
                w.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::umem::UmemConfig;

    fn pool(frames: u32) -> FramePool {
        let umem = Arc::new(
            Umem::new(UmemConfig {
                frame_size: 2048,
                frame_count: frames,
                ..Default::default()
            })
            .unwrap(),
        );
        FramePool::new(&umem)
    }

    #[test]
    fn push_pop_batch_and_chain_keep_every_frame() {
        let p = pool(64);
        assert_eq!(p.len(), 64);
        let mut got = Vec::new();
        assert_eq!(p.pop_batch(10, |i| got.push(i)), 10);
        assert_eq!(p.len(), 54);
        // Build a chain of the 10 and push it back in one go.
        let mut top: Option<u32> = None;
        let bottom = got[0];
        for &i in &got {
            p.link(i, top);
            top = Some(i);
        }
        p.push_chain(top.unwrap(), bottom, got.len() as u32);
        assert_eq!(p.len(), 64);
        let mut all = Vec::new();
        assert_eq!(p.pop_batch(1000, |i| all.push(i)), 64);
        all.sort_unstable();
        assert_eq!(all, (0..64).collect::<Vec<_>>());
        assert_eq!(p.pop(), None);
        assert_eq!(p.index_of(p.chunk(7) + 300), Some(7));
        assert_eq!(p.index_of(u64::MAX >> 20), None);
    }

    #[test]
    fn concurrent_push_pop_loses_and_duplicates_nothing() {
        let p = Arc::new(pool(256));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for round in 0..20_000u32 {
                        if (round + t) % 3 == 0 {
                            p.pop_batch(1 + round % 7, |i| held.push(i));
                        } else if let Some(i) = p.pop() {
                            held.push(i);
                        }
                        while held.len() > 4 {
                            let i = held.pop().unwrap();
                            p.push(i);
                        }
                    }
                    for i in held {
                        p.push(i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut all = Vec::new();
        p.pop_batch(u32::MAX, |i| all.push(i));
        all.sort_unstable();
        assert_eq!(all, (0..256).collect::<Vec<_>>());
    }
}
