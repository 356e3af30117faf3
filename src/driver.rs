//! The ring driver: the four-ring choreography every mode shares — how many frames
//! to lend the kernel, refilling FILL, recycling received frames straight back to
//! FILL, reaping COMPLETION, queueing TX, kicking TX until the kernel stops taking
//! descriptors, draining at the end. The engine (batches and verdicts) and the system
//! mode (owned frames, handles on two threads) are thin layers over these functions,
//! so a change to, say, the kick loop is made once.
// Only the modes drive rings; a build with neither uses the set-up rules alone.
#![cfg_attr(not(any(feature = "engine", feature = "system")), allow(dead_code))]

use std::io;
use std::time::{Duration, Instant};

use crate::device::Device;
use crate::ring::{CompletionRing, FillRing, Peek, RxRing, TxRing};
use crate::sys::XdpDesc;
use crate::umem::FramePool;

/// What the frames sent on a socket's TX ring are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxUse {
    /// No TX ring: every frame can be lent to the kernel.
    None,
    /// Received frames sent back out (verdicts): a small reserve covers the rare
    /// fresh frame.
    #[cfg_attr(not(feature = "engine"), allow(dead_code))]
    Forward {
        /// Packets per batch.
        batch: u32,
    },
    /// Fresh frames from the pool (generators, `Tx::alloc`): half the frames, at most
    /// a TX ring's worth, stay free for sending.
    Generate {
        /// TX ring size.
        tx_size: u32,
    },
}

/// How many of `frames` to lend the kernel at once — on FILL or on RX, not yet taken
/// back. FILL and RX together can hold `fill_size + rx_size` frames, and lending all
/// of that lets the kernel buffer a whole ring's worth while the receiver sleeps or
/// is busy: lending only FILL's worth left half the UMEM idle and the kernel dropped
/// the rest as `rx_fill_ring_empty_descs` (engine rxdrop on veth, 64 B: 2.2 Mpps with
/// 16 M such drops in 3 s, against 4–4.8 Mpps lending FILL + RX). What is kept back
/// depends on what TX carries (see [`TxUse`]).
pub(crate) fn lend_target(frames: u32, fill_size: u32, rx_size: u32, tx: TxUse) -> u32 {
    let reserve = match tx {
        TxUse::None => 0,
        TxUse::Forward { batch } => batch.saturating_mul(2).min(frames / 4),
        TxUse::Generate { tx_size } => (frames / 2).min(tx_size),
    };
    (fill_size.saturating_add(rx_size)).min(frames - reserve)
}

/// Frames a new socket's FILL gets at set-up: what [`lend_target`] allows, as far
/// as FILL holds it, for a socket whose use of TX is not known yet (fresh frames
/// may be sent).
pub(crate) fn prefill(frames: u32, sizes: crate::socket::RingSizes) -> u32 {
    let tx = match sizes.tx {
        0 => TxUse::None,
        tx_size => TxUse::Generate { tx_size },
    };
    lend_target(frames, sizes.fill, sizes.rx, tx).min(sizes.fill)
}

/// What a refill did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Refilled {
    /// Frames put on FILL.
    pub frames: u32,
    /// The kernel asked for a wake-up and got one (`recvfrom`).
    pub woke: bool,
}

/// Tops FILL up from `pool` towards `target` frames lent (FILL plus RX: `lent` now),
/// once at least `min_batch` are due, or at once when nothing is lent; wakes the
/// kernel when it asks (the only system call of the receive path).
pub(crate) fn refill(
    fill: &mut FillRing,
    lent: u64,
    target: u64,
    min_batch: u32,
    pool: &FramePool,
    device: &Device,
) -> Refilled {
    let want = target.saturating_sub(lent);
    if want == 0 || (want < min_batch as u64 && lent > 0) {
        return Refilled::default();
    }
    let frames = fill.fill_from(pool, want.min(u32::MAX as u64) as u32);
    let woke = frames > 0 && fill.needs_wakeup();
    if woke {
        let _ = device.wake_rx();
    }
    Refilled { frames, woke }
}

/// Puts received frames (chunk addresses) straight back on FILL — no trip through
/// the pool; what FILL cannot take goes to `pool`. Returns how many went on FILL.
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub(crate) fn recycle(fill: Option<&mut FillRing>, chunks: &[u64], pool: &FramePool) -> u32 {
    let mut on_fill = 0;
    if let Some(fill) = fill {
        let mut r = fill.reserve(chunks.len() as u32);
        for &a in chunks {
            if r.push(a).is_err() {
                break;
            }
        }
        on_fill = r.commit();
    }
    pool.free_batch(chunks[on_fill as usize..].iter().copied());
    on_fill
}

/// Takes up to `max` descriptors off RX, handing each to `f`, and returns how many.
/// On a multi-buffer socket (`sg`) it takes whole packets only: the kernel publishes
/// a packet's descriptors together, but `max` may end in the middle of one, so the
/// take stops at the last packet end within `max` — or, when one packet alone is
/// longer than `max`, runs to that packet's end.
#[inline]
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub(crate) fn take_rx(rx: &mut RxRing, max: u32, sg: bool, mut f: impl FnMut(XdpDesc)) -> u32 {
    if !sg {
        return rx.consume(max, f);
    }
    let mut peek = rx.peek(max);
    let mut n = whole_packets(&peek);
    if n == 0 && !peek.is_empty() {
        drop(peek);
        peek = rx.peek(u32::MAX);
        // The first packet's end.
        n = peek
            .iter()
            .position(|d| !d.continues())
            .map_or(0, |i| i as u32 + 1);
    }
    for d in peek.iter().take(n as usize) {
        f(d);
    }
    peek.release_n(n)
}

/// Descriptors of `peek` up to and including the last that ends a packet.
#[inline]
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
fn whole_packets(peek: &Peek<'_, XdpDesc>) -> u32 {
    let mut n = peek.len();
    while n > 0 && peek.get(n - 1).is_some_and(|d| d.continues()) {
        n -= 1;
    }
    n
}

/// Takes every completed TX frame back into `pool` (one compare-and-swap); returns
/// how many.
pub(crate) fn reap(comp: &mut CompletionRing, pool: &FramePool) -> u32 {
    let mut chain = pool.chain();
    let n = comp.consume(u32::MAX, |addr| chain.add(addr));
    chain.push();
    n
}

/// What [`push_tx`] queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// Descriptors.
    pub descs: u32,
    /// Packets (a multi-buffer packet is several descriptors).
    pub packets: u32,
    /// Bytes.
    pub bytes: u64,
}

/// Queues descriptors on TX, as many whole packets as fit: a multi-buffer packet
/// (descriptors with [`XdpDesc::CONTINUES`] up to its last) goes on whole or not at
/// all, since the kernel would join a partial one to whatever comes next.
/// The descriptors must be valid (received frames, or checked with `Umem::check_tx`).
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub(crate) fn push_tx(tx: &mut TxRing, descs: &[XdpDesc]) -> Pushed {
    let mut r = tx.reserve(descs.len().min(u32::MAX as usize) as u32);
    let mut n = (r.capacity() as usize).min(descs.len());
    while n > 0 && descs[n - 1].continues() {
        n -= 1;
    }
    let mut p = Pushed::default();
    for d in &descs[..n] {
        if r.push(*d).is_err() {
            break;
        }
        p.bytes += d.len as u64;
        p.packets += !d.continues() as u32;
    }
    p.descs = r.commit();
    p
}

/// How hard [`kick`] tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KickPolicy {
    /// Kicks at most.
    pub max_kicks: u32,
    /// Kicks that take nothing off TX before giving up (the device is busy).
    pub max_stalls: u32,
    /// Kick although the kernel did not ask (bound without need_wakeup).
    pub always: bool,
}

impl KickPolicy {
    /// One kick, when the kernel asks for it.
    pub(crate) const ONCE: KickPolicy = KickPolicy {
        max_kicks: 1,
        max_stalls: 1,
        always: false,
    };
}

/// What [`kick`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Kicks {
    /// `sendto` calls made.
    pub kicks: u32,
    /// Frames the device dropped meanwhile (copy mode `EBUSY`).
    pub device_drops: u64,
    /// Descriptors still on TX afterwards.
    pub pending: u32,
}

/// Kicks TX while the kernel keeps taking descriptors, within `policy`, calling
/// `before_each` before every kick (system mode reaps COMPLETION there, so that a
/// full COMPLETION ring never stalls TX). In copy mode
/// one `sendto` transmits at most the socket's TX budget (32 descriptors by default)
/// and leaves the rest for the next kick, so a full RX batch (64) turned around
/// needs two; kicking once per turn made TX back up and drop (l2fwd at 1514 B: 0.73 →
/// 1.10 Mpps with up to 4 kicks a turn).
///
/// # Errors
/// A kick's error other than a transient refusal.
pub(crate) fn kick(
    tx: &TxRing,
    device: &Device,
    policy: KickPolicy,
    mut before_each: impl FnMut(),
) -> io::Result<Kicks> {
    let before = device.device_drops();
    let mut k = Kicks::default();
    let mut stalls = 0;
    loop {
        let pending = tx.pending();
        k.pending = pending;
        if pending == 0 || k.kicks >= policy.max_kicks || !(policy.always || tx.needs_wakeup()) {
            break;
        }
        before_each();
        k.kicks += 1;
        device.kick_tx()?;
        let left = tx.pending();
        k.pending = left;
        if left >= pending {
            stalls += 1;
            if stalls >= policy.max_stalls {
                break;
            }
        }
    }
    k.device_drops = device.device_drops() - before;
    Ok(k)
}

/// Repeats `step` — which pushes out and reaps what it can and says how many frames
/// are still in flight — until none are or `timeout` passes, with `pause` between
/// steps (a sleep, or a wait for TX room that in copy mode also transmits). Returns
/// whether everything came back.
///
/// # Errors
/// The first error of `step` or `pause`.
pub(crate) fn drain<E>(
    timeout: Duration,
    mut step: impl FnMut() -> Result<u64, E>,
    mut pause: impl FnMut() -> Result<(), E>,
) -> Result<bool, E> {
    let deadline = Instant::now() + timeout;
    loop {
        if step()? == 0 {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        pause()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::heap_pair;

    fn desc(addr: u64, continues: bool) -> XdpDesc {
        XdpDesc {
            addr,
            len: 100,
            options: if continues { XdpDesc::CONTINUES } else { 0 },
        }
    }

    #[test]
    fn rx_takes_whole_packets() {
        let (mut k, mut rx) = heap_pair::<XdpDesc>(16, 0);
        // Packets: [0 1] [2] [3 4 5] [6]
        let cont = [true, false, false, true, true, false, false];
        let mut r = k.reserve(7);
        for (i, &c) in cont.iter().enumerate() {
            r.push(desc(i as u64, c)).unwrap();
        }
        r.commit();
        let mut got = Vec::new();
        // A limit inside [3 4 5] stops after [2].
        assert_eq!(take_rx(&mut rx, 4, true, |d| got.push(d.addr)), 3);
        assert_eq!(got, [0, 1, 2]);
        // A limit shorter than the next packet takes that packet whole.
        got.clear();
        assert_eq!(take_rx(&mut rx, 1, true, |d| got.push(d.addr)), 3);
        assert_eq!(got, [3, 4, 5]);
        got.clear();
        assert_eq!(take_rx(&mut rx, 64, true, |d| got.push(d.addr)), 1);
        assert_eq!(got, [6]);
        // Without multi-buffer, the limit is the limit.
        let mut r = k.reserve(2);
        r.push(desc(7, true)).unwrap();
        r.push(desc(8, false)).unwrap();
        r.commit();
        assert_eq!(take_rx(&mut rx, 1, false, |_| {}), 1);
    }

    #[test]
    fn tx_queues_whole_packets_only() {
        let (mut tx, mut k) = heap_pair::<XdpDesc>(4, 0);
        // [0 1] [2] [3 4]: four slots take the first two packets, not half the third.
        let descs = [
            desc(0, true),
            desc(1, false),
            desc(2, false),
            desc(3, true),
            desc(4, false),
        ];
        let p = push_tx(&mut tx, &descs);
        assert_eq!((p.descs, p.packets, p.bytes), (3, 2, 300));
        assert_eq!(k.consume(16, |_| {}), 3);
        let p = push_tx(&mut tx, &descs[3..]);
        assert_eq!((p.descs, p.packets), (2, 1));
    }

    #[test]
    fn lending_keeps_what_tx_needs() {
        // Receive only: FILL + RX.
        assert_eq!(lend_target(4096, 2048, 2048, TxUse::None), 4096);
        assert_eq!(lend_target(1024, 2048, 2048, TxUse::None), 1024);
        // Forwarding received frames: a small reserve.
        assert_eq!(
            lend_target(4096, 2048, 2048, TxUse::Forward { batch: 64 }),
            3968
        );
        assert_eq!(
            lend_target(256, 2048, 2048, TxUse::Forward { batch: 64 }),
            192
        );
        // Generating: half, at most a TX ring's worth.
        assert_eq!(
            lend_target(4096, 2048, 2048, TxUse::Generate { tx_size: 2048 }),
            2048
        );
        assert_eq!(
            lend_target(8192, 2048, 2048, TxUse::Generate { tx_size: 1024 }),
            4096
        );
        assert_eq!(
            lend_target(100, 2048, 0, TxUse::Generate { tx_size: 2048 }),
            50
        );
    }
}
