//! Test bodies shared by the simulated device (`tests/sim.rs`) and a real veth pair
//! (`tests/fidelity.rs`): the same code and the same expectations, so the simulator
//! is held to what the kernel does.
#![allow(dead_code)]

use std::any::Any;
use std::time::{Duration, Instant};

use fluxcapacitor::{Error, Flux, XdpDesc, XskStats};

/// A sender and a receiver joined by a link (a veth pair or two simulated devices).
pub struct Link {
    /// Sends.
    pub tx: Flux,
    /// Receives.
    pub rx: Flux,
    /// Builds test frame `seq` of `len` bytes for this link.
    pub frame: Box<dyn Fn(u32, usize) -> Vec<u8>>,
    /// Whatever must live as long as the link (veth pair, devices).
    pub _keep: Box<dyn Any>,
}

const WAIT: Duration = Duration::from_secs(3);

fn stats(f: &Flux) -> XskStats {
    f.statistics().expect("statistics")
}

/// Puts `frames` on TX (validated); returns how many. No kick.
fn queue(flux: &mut Flux, frames: &[Vec<u8>]) -> usize {
    let mut raw = flux.raw();
    let off = raw.umem.data_offset() as u64;
    let mut descs = Vec::new();
    for f in frames {
        let Some(c) = raw.pool.alloc() else { break };
        // SAFETY: from the pool, on no ring.
        unsafe { raw.umem.slice_mut(c + off, f.len()) }
            .unwrap()
            .copy_from_slice(f);
        descs.push(XdpDesc {
            addr: c + off,
            len: f.len() as u32,
            options: 0,
        });
    }
    raw.send(&descs).expect("valid")
}

fn reap(flux: &mut Flux) -> u32 {
    let raw = flux.raw();
    let (pool, umem) = (raw.pool, raw.umem);
    raw.completion
        .map(|c| c.consume(u32::MAX, |a| pool.free(umem.chunk_of(a))))
        .unwrap_or(0)
}

fn kick_until_consumed(flux: &mut Flux) {
    let deadline = Instant::now() + WAIT;
    while flux.raw().tx.unwrap().pending() > 0 {
        assert!(Instant::now() < deadline, "TX not consumed");
        flux.device().kick_tx().unwrap();
    }
}

/// Takes what RX holds; refills FILL with it unless `refill` is false.
fn drain(flux: &mut Flux, refill: bool) -> Vec<Vec<u8>> {
    let raw = flux.raw();
    let (rx, umem) = (raw.rx.unwrap(), raw.umem);
    let mut out = Vec::new();
    let mut chunks = Vec::new();
    rx.consume(u32::MAX, |d| {
        // SAFETY: off RX; ours until it goes back below.
        out.push(
            unsafe { umem.slice(d.addr, d.len as usize) }
                .unwrap()
                .to_vec(),
        );
        chunks.push(umem.chunk_of(d.addr));
    });
    match (refill, raw.fill) {
        (true, Some(fill)) => {
            let mut r = fill.reserve(chunks.len() as u32);
            for c in chunks {
                r.push(c).unwrap();
            }
            r.commit();
        }
        _ => {
            for c in chunks {
                raw.pool.free(c);
            }
        }
    }
    out
}

fn receive(flux: &mut Flux, n: usize, refill: bool) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < n && Instant::now() < deadline {
        got.extend(drain(flux, refill));
    }
    got
}

/// Refused with a typed error before the ring; pushed unchecked, the kernel consumes
/// invalid descriptors, counts them, and never completes them.
pub fn invalid_descriptors(mut l: Link) {
    let umem_len = l.tx.umem().len();
    {
        let mut raw = l.tx.raw();
        let bad = XdpDesc {
            addr: umem_len,
            len: 64,
            options: 0,
        };
        assert!(matches!(raw.send(&[bad]), Err(Error::InvalidDescriptor(_))));
        assert_eq!(
            raw.tx.as_ref().unwrap().pending(),
            0,
            "refused before the ring"
        );
    }
    let before = stats(&l.tx).tx_invalid_descs;
    let f = (l.frame)(1, 64);
    {
        let raw = l.tx.raw();
        let off = raw.umem.data_offset() as u64;
        let mut r = raw.tx.unwrap().reserve(8);
        for i in 0..8 {
            let c = raw.pool.alloc().unwrap();
            // SAFETY: from the pool, on no ring.
            unsafe { raw.umem.slice_mut(c + off, f.len()) }
                .unwrap()
                .copy_from_slice(&f);
            let len = if i % 2 == 0 { f.len() as u32 } else { 9001 };
            r.push(XdpDesc {
                addr: c + off,
                len,
                options: 0,
            })
            .unwrap();
        }
        r.commit();
    }
    kick_until_consumed(&mut l.tx);
    // The valid half always completes. Kernel 6.18 in copy mode also completes the
    // invalid half (after counting it); older kernels never do. Either way the
    // frames come back and the census stays exact.
    let deadline = Instant::now() + WAIT;
    let mut completed = 0;
    while completed < 4 {
        assert!(Instant::now() < deadline, "completions");
        completed += reap(&mut l.tx);
    }
    std::thread::sleep(Duration::from_millis(50));
    completed += reap(&mut l.tx);
    assert!(completed == 4 || completed == 8, "completed {completed}");
    assert_eq!(stats(&l.tx).tx_invalid_descs - before, 4, "counted exactly");
    assert_eq!(
        receive(&mut l.rx, 4, true).len(),
        4,
        "the valid half arrived"
    );
    let c = l.tx.frame_counts();
    if completed == 4 {
        // Swallowed: the frames are still with the sender; say so.
        assert_eq!(c.tx, 4, "{c}");
        l.tx.raw().reconcile_invalid_tx(4);
        let c = l.tx.frame_counts();
        assert_eq!((c.tx, c.user), (0, 4), "{c}");
    } else {
        assert_eq!((c.tx, c.user), (0, 0), "{c}");
    }
}

/// FILL loaded once and never refilled: exactly what it held arrives, the rest is
/// dropped and counted.
pub fn fill_starvation(mut l: Link) {
    {
        let raw = l.rx.raw();
        let fill = raw.fill.unwrap();
        let mut r = fill.reserve(32);
        for _ in 0..32 {
            r.push(raw.pool.alloc().unwrap()).unwrap();
        }
        r.commit();
    }
    let before = stats(&l.rx);
    let frames: Vec<Vec<u8>> = (0..100).map(|i| (l.frame)(i, 64)).collect();
    let mut got = Vec::new();
    for chunk in frames.chunks(20) {
        queue(&mut l.tx, chunk);
        kick_until_consumed(&mut l.tx);
        reap(&mut l.tx);
        std::thread::sleep(Duration::from_millis(5));
        got.extend(drain(&mut l.rx, false));
    }
    std::thread::sleep(Duration::from_millis(50));
    got.extend(drain(&mut l.rx, false));
    let s = stats(&l.rx);
    assert_eq!(got.len(), 32);
    assert_eq!(s.rx_dropped - before.rx_dropped, 68, "{s:?}");
    assert!(
        s.rx_fill_ring_empty_descs > before.rx_fill_ring_empty_descs,
        "{s:?}"
    );
}

/// The receiver never releases RX: RX fills up and further packets are counted as
/// `rx_ring_full`.
pub fn rx_full(mut l: Link) {
    let size = l.rx.raw().rx.unwrap().size();
    let frames: Vec<Vec<u8>> = (0..(size * 4)).map(|i| (l.frame)(i, 64)).collect();
    for chunk in frames.chunks(32) {
        queue(&mut l.tx, chunk);
        kick_until_consumed(&mut l.tx);
        reap(&mut l.tx);
    }
    std::thread::sleep(Duration::from_millis(100));
    let s = stats(&l.rx);
    assert!(s.rx_ring_full > 0, "{s:?}");
    assert_eq!(l.rx.raw().rx.unwrap().available(u32::MAX), size, "RX full");
}

/// Copy-mode TX needs a kick: nothing leaves until then.
pub fn need_wakeup(mut l: Link) {
    let frames: Vec<Vec<u8>> = (0..10).map(|i| (l.frame)(i, 64)).collect();
    assert_eq!(queue(&mut l.tx, &frames), 10);
    assert!(l.tx.raw().tx.unwrap().needs_wakeup(), "TX asks for a kick");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        drain(&mut l.rx, true).is_empty(),
        "nothing left without a kick"
    );
    kick_until_consumed(&mut l.tx);
    assert_eq!(receive(&mut l.rx, 10, true).len(), 10);
}

/// One kick sends at most 32 descriptors (the kernel's copy-mode default).
pub fn tx_budget(mut l: Link) {
    let frames: Vec<Vec<u8>> = (0..100).map(|i| (l.frame)(i, 64)).collect();
    assert_eq!(queue(&mut l.tx, &frames), 100);
    l.tx.device().kick_tx().unwrap();
    // What one kick sent is what arrives. The TX consumer index the kernel publishes
    // lags on older kernels (6.1 and 6.12: it is written when the next kick peeks),
    // so the ring's pending count can only say "at least 68 left".
    let first = receive_quiet(&mut l.rx, Duration::from_millis(300));
    assert_eq!(first.len(), 32, "exactly 32 sent by one kick");
    assert!(l.tx.raw().tx.unwrap().pending() >= 68);
    kick_until_consumed(&mut l.tx);
    assert_eq!(receive(&mut l.rx, 68, true).len(), 68);
}

/// Takes what arrives until nothing has for `quiet`.
fn receive_quiet(flux: &mut Flux, quiet: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        let more = drain(flux, true);
        if !more.is_empty() {
            last = Instant::now();
        }
        got.extend(more);
    }
    got
}
