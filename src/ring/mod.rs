//! One generic single-producer / single-consumer ring, as the kernel lays out the four
//! AF_XDP rings: a free-running `u32` producer index, a free-running `u32` consumer
//! index, a flags word, and a power-of-two array of descriptors.
//!
//! Each side keeps *cached* copies of both indices and touches the shared ones only
//! when its cache runs out, so a batch costs one atomic load and one atomic store.
//! Indices wrap at `u32::MAX`; all arithmetic is `wrapping_*`.
//!
//! The memory comes either from the kernel (the `mmap`ed rings of an XDP socket) or
//! from the heap (an in-process pair used by the model tests, the simulated device,
//! and users who want to test ring logic without a kernel).
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Arc;

mod typed;
pub use typed::{CompletionRing, FillRing, Rings, RxRing, TxRing};

use crate::sys::XDP_RING_NEED_WAKEUP;
#[cfg(target_os = "linux")]
use crate::sys::{Mmap, XdpRingOffset};

/// Who owns the memory a ring lives in. Kept alive as long as the ring.
enum Backing {
    /// A ring of an XDP socket, mapped from the kernel.
    #[cfg(target_os = "linux")]
    Kernel(#[allow(dead_code)] Mmap),
    /// An in-process ring shared by a producer and a consumer.
    Heap(#[allow(dead_code)] Arc<dyn HeapStorage>),
}

trait HeapStorage: Send + Sync {}

/// Heap storage of one ring: the same fields the kernel maps, in one allocation.
struct HeapRing<T> {
    producer: AtomicU32,
    consumer: AtomicU32,
    flags: AtomicU32,
    descs: Box<[UnsafeCell<T>]>,
}

// SAFETY: the descriptor cells are only written by the single producer in slots the
// consumer cannot yet see, and only read by the single consumer in slots the producer
// has published (Release) and the consumer has observed (Acquire); the indices are atomics.
unsafe impl<T: Send> Sync for HeapRing<T> {}
impl<T: Send + 'static> HeapStorage for HeapRing<T> {}

/// Raw pointers into a ring's memory plus its geometry.
struct RingPtrs<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    size: u32,
    mask: u32,
    _backing: Backing,
    _t: PhantomData<T>,
}

// SAFETY: the pointers target memory owned by `_backing` (kernel mapping or Arc'd heap
// ring), which lives as long as `self`; each `RingPtrs` is used by exactly one side
// (producer or consumer), which is what the SPSC protocol requires.
unsafe impl<T: Send> Send for RingPtrs<T> {}

impl<T> RingPtrs<T> {
    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into live ring memory (see the Send impl), properly aligned.
        unsafe { self.producer.as_ref() }
    }
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.consumer.as_ref() }
    }
    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.flags.as_ref() }
    }
    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask < size`, so the offset stays inside the descriptor array.
        unsafe { self.descs.as_ptr().add((idx & self.mask) as usize) }
    }
}

/// Maps the kernel's ring layout out of a socket ring mapping.
#[cfg(target_os = "linux")]
///
/// # Safety
/// - `mem` MUST be the mapping of one XDP ring whose kernel offsets are `off`, and it
///   MUST hold `size` descriptors of type `T` at `off.desc`.
/// - `size` MUST be the power of two the ring was created with.
/// - Only one `Producer` or one `Consumer` may be made from one mapping.
unsafe fn kernel_ptrs<T>(mem: Mmap, off: &XdpRingOffset, size: u32) -> RingPtrs<T> {
    let base = mem.as_ptr();
    let at = |o: u64| {
        // SAFETY: the kernel guarantees these offsets lie within the mapping (so the
        // pointer is in bounds and non-null) and are aligned for their types.
        unsafe { NonNull::new_unchecked(base.add(o as usize)) }
    };
    RingPtrs {
        producer: at(off.producer).cast(),
        consumer: at(off.consumer).cast(),
        flags: at(off.flags).cast(),
        descs: at(off.desc).cast(),
        size,
        mask: size - 1,
        _backing: Backing::Kernel(mem),
        _t: PhantomData,
    }
}

fn heap_ptrs<T: Send + 'static>(ring: &Arc<HeapRing<T>>) -> RingPtrs<T> {
    let size = ring.descs.len() as u32;
    RingPtrs {
        producer: NonNull::from(&ring.producer),
        consumer: NonNull::from(&ring.consumer),
        flags: NonNull::from(&ring.flags),
        // `UnsafeCell<T>` has the same layout as `T`; the slice pointer carries
        // provenance over every element.
        descs: NonNull::from(&ring.descs[..]).cast(),
        size,
        mask: size - 1,
        _backing: Backing::Heap(ring.clone()),
        _t: PhantomData,
    }
}

/// Creates an in-process ring of `size` entries (a power of two, at least 1) whose
/// indices start at `start`, and returns its two ends.
///
/// The ends are `Send` and may live on different threads. Used by the model tests and
/// the simulated device; it behaves exactly like a kernel ring, flags word included.
///
/// # Panics
/// When `size` is not a power of two.
pub fn heap_pair<T: Copy + Default + Send + 'static>(
    size: u32,
    start: u32,
) -> (Producer<T>, Consumer<T>) {
    assert!(size.is_power_of_two(), "ring size must be a power of two");
    let ring = Arc::new(HeapRing {
        producer: AtomicU32::new(start),
        consumer: AtomicU32::new(start),
        flags: AtomicU32::new(0),
        descs: (0..size).map(|_| UnsafeCell::new(T::default())).collect(),
    });
    let p = Producer::new(heap_ptrs(&ring));
    let c = Consumer::new(heap_ptrs(&ring));
    (p, c)
}

/// The producing end of a ring (FILL and TX for user space).
pub struct Producer<T> {
    ring: RingPtrs<T>,
    /// Next index we will write.
    cached_prod: u32,
    /// Consumer index plus ring size: the first index we may not write.
    cached_cons: u32,
    /// Entries ever published through this end (the frame census counts with it).
    produced: u64,
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("size", &self.ring.size)
            .field("cached_prod", &self.cached_prod)
            .field("cached_cons", &self.cached_cons)
            .finish()
    }
}

impl<T: Copy> Producer<T> {
    fn new(ring: RingPtrs<T>) -> Self {
        // Relaxed: nothing has been exchanged through this ring yet.
        let prod = ring.producer().load(Ordering::Relaxed);
        let cons = ring.consumer().load(Ordering::Relaxed);
        let size = ring.size;
        Producer {
            ring,
            cached_prod: prod,
            cached_cons: cons.wrapping_add(size),
            produced: 0,
        }
    }

    /// Entries ever published through this end.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Ring capacity.
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// Free slots, refreshing the consumer index only if fewer than `want` are cached.
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        // Acquire pairs with the consumer's Release store of its index: once we see
        // the new index, the consumer has finished reading the slots we will reuse.
        let cons = self.ring.consumer().load(Ordering::Acquire);
        self.cached_cons = cons.wrapping_add(self.ring.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Entries published and not yet consumed, as seen now (a snapshot).
    pub fn pending(&self) -> u32 {
        // Relaxed: an advisory snapshot for statistics and accounting.
        let cons = self.ring.consumer().load(Ordering::Relaxed);
        self.cached_prod.wrapping_sub(cons)
    }

    /// Reserves up to `want` slots. The guard publishes what was pushed into it on
    /// [`Reservation::commit`]; dropping it publishes nothing.
    pub fn reserve(&mut self, want: u32) -> Reservation<'_, T> {
        let n = self.free(want).min(want);
        Reservation {
            ring: self,
            cap: n,
            len: 0,
        }
    }

    /// Pushes as many items from `items` as fit and publishes them; returns how many.
    pub fn produce_from(&mut self, items: &mut impl Iterator<Item = T>, max: u32) -> u32 {
        let mut r = self.reserve(max);
        while r.remaining() > 0 {
            match items.next() {
                Some(v) => {
                    // Cannot fail: `remaining() > 0`.
                    let _ = r.push(v);
                }
                None => break,
            }
        }
        r.commit()
    }

    /// The consumer asked to be woken (`XDP_RING_NEED_WAKEUP`).
    pub fn needs_wakeup(&self) -> bool {
        // The kernel clears the flag and re-checks the ring, or sets it and sleeps; a
        // full fence orders our earlier producer store before this load so that one of
        // the two sides always sees the other (no lost wake-up).
        fence(Ordering::SeqCst);
        self.ring.flags().load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }

    /// Sets or clears the need-wakeup flag (the kernel's role; used by the simulated device).
    pub fn set_needs_wakeup(&self, on: bool) {
        if on {
            self.ring
                .flags()
                .fetch_or(XDP_RING_NEED_WAKEUP, Ordering::SeqCst);
        } else {
            self.ring
                .flags()
                .fetch_and(!XDP_RING_NEED_WAKEUP, Ordering::SeqCst);
        }
    }
}

/// Slots reserved on a [`Producer`]; `#[must_use]`: dropping it publishes nothing.
#[must_use = "a reservation publishes nothing unless committed"]
pub struct Reservation<'a, T: Copy> {
    ring: &'a mut Producer<T>,
    cap: u32,
    len: u32,
}

impl<T: Copy> fmt::Debug for Reservation<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("cap", &self.cap)
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Copy> Reservation<'_, T> {
    /// Slots reserved.
    pub fn capacity(&self) -> u32 {
        self.cap
    }
    /// Slots still free in this reservation.
    pub fn remaining(&self) -> u32 {
        self.cap - self.len
    }
    /// Items pushed so far.
    pub fn len(&self) -> u32 {
        self.len
    }
    /// Nothing pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the next slot; gives the value back when the reservation is full.
    pub fn push(&mut self, v: T) -> Result<(), T> {
        if self.len >= self.cap {
            return Err(v);
        }
        let idx = self.ring.cached_prod.wrapping_add(self.len);
        // SAFETY: `idx` is within [cached_prod, cached_cons): a slot the consumer has
        // released (observed via Acquire in `free`) and cannot read until we publish.
        unsafe { self.ring.ring.slot(idx).write(v) };
        self.len += 1;
        Ok(())
    }

    /// Publishes the pushed items; returns how many.
    pub fn commit(self) -> u32 {
        let n = self.len;
        if n > 0 {
            self.ring.produced += n as u64;
            self.ring.cached_prod = self.ring.cached_prod.wrapping_add(n);
            // Release: the descriptor writes above happen-before the consumer's Acquire
            // load of this index.
            self.ring
                .ring
                .producer()
                .store(self.ring.cached_prod, Ordering::Release);
        }
        n
    }
}

/// The consuming end of a ring (RX and COMPLETION for user space).
pub struct Consumer<T> {
    ring: RingPtrs<T>,
    /// Last producer index seen.
    cached_prod: u32,
    /// Next index we will read.
    cached_cons: u32,
    /// Entries ever consumed through this end (the frame census counts with it).
    consumed: u64,
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("size", &self.ring.size)
            .field("cached_prod", &self.cached_prod)
            .field("cached_cons", &self.cached_cons)
            .finish()
    }
}

impl<T: Copy> Consumer<T> {
    fn new(ring: RingPtrs<T>) -> Self {
        // Relaxed: nothing has been exchanged through this ring yet.
        let prod = ring.producer().load(Ordering::Relaxed);
        let cons = ring.consumer().load(Ordering::Relaxed);
        Consumer {
            ring,
            cached_prod: prod,
            cached_cons: cons,
            consumed: 0,
        }
    }

    /// Entries ever consumed through this end.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Ring capacity.
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// Entries ready, refreshing the producer index only if fewer than `want` are cached.
    pub fn available(&mut self, want: u32) -> u32 {
        let n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n >= want {
            return n;
        }
        // Acquire pairs with the producer's Release store: the descriptors up to this
        // index are fully written before we read them.
        self.cached_prod = self.ring.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Peeks at up to `max` entries. [`Peek::release`] consumes them; dropping the
    /// guard leaves them on the ring.
    pub fn peek(&mut self, max: u32) -> Peek<'_, T> {
        let n = self.available(max).min(max);
        Peek { ring: self, len: n }
    }

    /// Consumes up to `max` entries, handing each to `f`; returns how many.
    pub fn consume(&mut self, max: u32, mut f: impl FnMut(T)) -> u32 {
        let p = self.peek(max);
        for i in 0..p.len() {
            f(p.read(i));
        }
        p.release()
    }

    /// The producer asked to be woken (`XDP_RING_NEED_WAKEUP`), e.g. the kernel's
    /// FILL-side flag seen from the RX path.
    pub fn needs_wakeup(&self) -> bool {
        fence(Ordering::SeqCst);
        self.ring.flags().load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }
}

/// Entries peeked on a [`Consumer`]; `#[must_use]`: dropping it consumes nothing.
#[must_use = "peeked entries stay on the ring unless released"]
pub struct Peek<'a, T: Copy> {
    ring: &'a mut Consumer<T>,
    len: u32,
}

impl<T: Copy> fmt::Debug for Peek<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peek").field("len", &self.len).finish()
    }
}

impl<T: Copy> Peek<'_, T> {
    /// Entries in this peek.
    pub fn len(&self) -> u32 {
        self.len
    }
    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entry `i` of the peek, or `None` past its end.
    #[inline]
    pub fn get(&self, i: u32) -> Option<T> {
        (i < self.len).then(|| self.read(i))
    }

    /// Every peeked entry, in order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len).map(|i| self.read(i))
    }

    /// Entry `i`. Only called with `i < len()`: `get` checks it, `iter` and
    /// `Consumer::consume` range over `0..len()`.
    #[inline]
    fn read(&self, i: u32) -> T {
        debug_assert!(i < self.len, "peek index out of range");
        let idx = self.ring.cached_cons.wrapping_add(i);
        // SAFETY: `i < len` (see above), so `idx` is within [cached_cons, cached_prod):
        // published by the producer (observed via Acquire) and not yet released back.
        unsafe { self.ring.ring.slot(idx).read() }
    }

    /// Consumes all peeked entries; returns how many.
    pub fn release(self) -> u32 {
        let n = self.len;
        self.release_n(n)
    }

    /// Consumes the first `n` peeked entries (at most `len()`); the rest stay.
    pub fn release_n(self, n: u32) -> u32 {
        let n = n.min(self.len);
        if n > 0 {
            self.ring.consumed += n as u64;
            self.ring.cached_cons = self.ring.cached_cons.wrapping_add(n);
            // Release: our reads of the slots happen-before the producer reuses them.
            self.ring
                .ring
                .consumer()
                .store(self.ring.cached_cons, Ordering::Release);
        }
        n
    }
}

/// Which kernel ring to map.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KernelRing {
    Fill,
    Completion,
    Rx,
    Tx,
}

#[cfg(target_os = "linux")]
impl KernelRing {
    fn pgoff(self) -> libc::off_t {
        match self {
            KernelRing::Fill => crate::sys::XDP_UMEM_PGOFF_FILL_RING,
            KernelRing::Completion => crate::sys::XDP_UMEM_PGOFF_COMPLETION_RING,
            KernelRing::Rx => crate::sys::XDP_PGOFF_RX_RING,
            KernelRing::Tx => crate::sys::XDP_PGOFF_TX_RING,
        }
    }
    fn offsets(self, o: &crate::sys::XdpMmapOffsets) -> &XdpRingOffset {
        match self {
            KernelRing::Fill => &o.fr,
            KernelRing::Completion => &o.cr,
            KernelRing::Rx => &o.rx,
            KernelRing::Tx => &o.tx,
        }
    }
    fn elem_size(self) -> usize {
        match self {
            KernelRing::Fill | KernelRing::Completion => std::mem::size_of::<u64>(),
            KernelRing::Rx | KernelRing::Tx => std::mem::size_of::<crate::sys::XdpDesc>(),
        }
    }
}

#[cfg(target_os = "linux")]
fn map_kernel<T>(
    fd: std::os::fd::BorrowedFd<'_>,
    which: KernelRing,
    offs: &crate::sys::XdpMmapOffsets,
    size: u32,
) -> std::io::Result<RingPtrs<T>> {
    assert_eq!(std::mem::size_of::<T>(), which.elem_size());
    if !size.is_power_of_two() {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    let off = which.offsets(offs);
    let len = off.desc as usize + size as usize * which.elem_size();
    let mem = Mmap::ring(fd, len, which.pgoff())?;
    // SAFETY: `mem` maps exactly this ring of this socket (its page offset), with the
    // kernel's offsets and the element type asserted above; `size` is the power of two
    // the ring was created with (the caller set it on this socket before mapping), and
    // the mapping is moved into the one ring end we return.
    Ok(unsafe { kernel_ptrs(mem, off, size) })
}

/// Maps the producer end (FILL or TX) of a socket's ring. `size` must be the size the
/// ring was created with on `fd`.
#[cfg(target_os = "linux")]
pub(crate) fn kernel_producer<T: Copy>(
    fd: std::os::fd::BorrowedFd<'_>,
    which: KernelRing,
    offs: &crate::sys::XdpMmapOffsets,
    size: u32,
) -> std::io::Result<Producer<T>> {
    debug_assert!(matches!(which, KernelRing::Fill | KernelRing::Tx));
    Ok(Producer::new(map_kernel(fd, which, offs, size)?))
}

/// Maps the consumer end (RX or COMPLETION) of a socket's ring; as [`kernel_producer`].
#[cfg(target_os = "linux")]
pub(crate) fn kernel_consumer<T: Copy>(
    fd: std::os::fd::BorrowedFd<'_>,
    which: KernelRing,
    offs: &crate::sys::XdpMmapOffsets,
    size: u32,
) -> std::io::Result<Consumer<T>> {
    debug_assert!(matches!(which, KernelRing::Rx | KernelRing::Completion));
    Ok(Consumer::new(map_kernel(fd, which, offs, size)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A tiny deterministic PRNG so the model test also runs under Miri.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u32) -> u32 {
            (self.next() % n as u64) as u32
        }
    }

    fn model_run(seed: u64, steps: usize) {
        let mut rng = Rng(seed | 1);
        let size = 1u32 << (1 + rng.below(6));
        let start = u32::MAX - rng.below(3 * size);
        let (mut p, mut c) = heap_pair::<u64>(size, start);
        let mut oracle = VecDeque::new();
        let mut next = 0u64;
        for _ in 0..steps {
            match rng.below(4) {
                0 | 1 => {
                    let want = rng.below(size + 2);
                    let mut r = p.reserve(want);
                    assert!(r.capacity() <= size - oracle.len() as u32);
                    let k = rng.below(r.capacity() + 1);
                    let mut pushed = Vec::new();
                    for _ in 0..k {
                        r.push(next).unwrap();
                        pushed.push(next);
                        next += 1;
                    }
                    if rng.below(5) == 0 {
                        drop(r); // roll back
                        next -= pushed.len() as u64;
                    } else {
                        assert_eq!(r.commit(), k);
                        oracle.extend(pushed);
                    }
                }
                _ => {
                    let max = rng.below(size + 2);
                    let peek = c.peek(max);
                    assert_eq!(peek.len(), (oracle.len() as u32).min(max));
                    for i in 0..peek.len() {
                        assert_eq!(peek.get(i), Some(oracle[i as usize]));
                    }
                    assert!(peek.get(peek.len()).is_none());
                    match rng.below(3) {
                        0 => drop(peek),
                        1 => {
                            let n = peek.release();
                            oracle.drain(..n as usize);
                        }
                        _ => {
                            let n = rng.below(peek.len() + 1);
                            let got = peek.release_n(n);
                            assert_eq!(got, n);
                            oracle.drain(..n as usize);
                        }
                    }
                }
            }
            assert_eq!(p.pending(), oracle.len() as u32);
            assert_eq!(p.free(size), size - oracle.len() as u32);
        }
    }

    #[test]
    fn ring_matches_fifo_oracle_across_index_wrap() {
        let (seeds, steps) = if cfg!(miri) { (4, 200) } else { (300, 2000) };
        for seed in 0..seeds {
            model_run(0x9e37_79b9_7f4a_7c15 ^ seed, steps);
        }
    }

    #[test]
    fn full_and_empty_edges() {
        let (mut p, mut c) = heap_pair::<u64>(4, u32::MAX - 1);
        assert_eq!(p.produce_from(&mut (0..10u64), 10), 4);
        assert_eq!(p.reserve(1).capacity(), 0);
        let mut got = Vec::new();
        assert_eq!(c.consume(10, |v| got.push(v)), 4);
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert_eq!(c.peek(1).len(), 0);
        assert_eq!(p.produce_from(&mut (4..6u64), 10), 2);
        assert_eq!(c.consume(10, |v| got.push(v)), 2);
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn threads_transfer_in_order() {
        let (mut p, mut c) = heap_pair::<u64>(64, u32::MAX - 100);
        let n = if cfg!(miri) { 500 } else { 200_000u64 };
        let t = std::thread::spawn(move || {
            let mut next = 0u64;
            while next < n {
                let mut r = p.reserve(16);
                while next < n && r.push(next).is_ok() {
                    next += 1;
                }
                r.commit();
                std::hint::spin_loop();
            }
        });
        let mut expect = 0u64;
        while expect < n {
            c.consume(32, |v| {
                assert_eq!(v, expect);
                expect += 1;
            });
            std::hint::spin_loop();
        }
        t.join().unwrap();
    }

    #[test]
    fn wakeup_flag_round_trip() {
        let (p, c) = heap_pair::<u64>(2, 0);
        assert!(!p.needs_wakeup());
        p.set_needs_wakeup(true);
        assert!(p.needs_wakeup() && c.needs_wakeup());
        p.set_needs_wakeup(false);
        assert!(!c.needs_wakeup());
    }
}
