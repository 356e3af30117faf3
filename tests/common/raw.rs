//! Raw-mode helpers shared by the kernel tests (`raw` feature): queue frames on TX from
//! the pool, kick until the kernel has taken them, reap completions.

use std::time::{Duration, Instant};

use fluxcapacitor::{Flux, XdpDesc};

/// Completed TX frames back to the pool; returns how many.
pub fn reap(flux: &mut Flux) -> u32 {
    let raw = flux.raw();
    let (pool, umem) = (raw.pool, raw.umem);
    match raw.completion {
        Some(c) => c.consume(u32::MAX, |a| pool.free(umem.chunk_of(a))),
        None => 0,
    }
}

/// Copies up to `frames.len()` frames into frames from the pool and queues them on TX
/// (validated by the library); returns how many were queued. Does not kick.
pub fn queue_tx(flux: &mut Flux, frames: &[Vec<u8>]) -> usize {
    let mut raw = flux.raw();
    let off = raw.umem.data_offset() as u64;
    let mut descs = Vec::with_capacity(frames.len());
    for f in frames {
        let Some(chunk) = raw.pool.alloc() else { break };
        // SAFETY: just taken from the pool: on no ring, no other view.
        unsafe { raw.umem.slice_mut(chunk + off, f.len()) }
            .expect("frame fits")
            .copy_from_slice(f);
        descs.push(XdpDesc {
            addr: chunk + off,
            len: f.len() as u32,
            options: 0,
        });
    }
    let n = raw.send(&descs).expect("valid descriptors");
    for d in &descs[n..] {
        raw.pool.free(raw.umem.chunk_of(d.addr));
    }
    n
}

/// Copy mode sends at most 32 descriptors per kick: kick until the kernel has taken
/// everything on TX (fails after 3 s).
pub fn kick_all(flux: &mut Flux) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let raw = flux.raw();
        let tx = raw.tx.expect("TX ring");
        if tx.pending() == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "TX not consumed");
        if tx.needs_wakeup() {
            raw.device.kick_tx().expect("kick");
        }
    }
}

/// Puts received frames (chunk addresses) back on FILL, as a raw-mode receiver that
/// keeps every frame on FILL or RX does. The kernel publishes a batch on RX a moment
/// before it publishes that it took the batch's frames off FILL (`xsk_flush`: RX
/// producer first, FILL consumer second), so right after a peek FILL can show fewer
/// free slots than RX returned: wait for them (bounded) rather than assume them.
pub fn return_to_fill(fill: &mut fluxcapacitor::ring::FillRing, chunks: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut done = 0;
    while done < chunks.len() {
        let mut r = fill.reserve((chunks.len() - done) as u32);
        for &c in &chunks[done..] {
            if r.push(c).is_err() {
                break;
            }
        }
        done += r.commit() as usize;
        assert!(
            done == chunks.len() || Instant::now() < deadline,
            "FILL never freed the slots of {} frames RX returned",
            chunks.len() - done
        );
        std::hint::spin_loop();
    }
}
