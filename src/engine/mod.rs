//! Engine mode: a managed loop with one batch callback.
//!
//! The engine owns the four-ring choreography — keep FILL topped up, reap COMPLETION
//! before reserving TX, kick TX when the kernel asks, recycle frames without copies —
//! and hands the callback a [`Batch`] of received packets. Each packet is a mutable
//! byte slice borrowed for the batch, with a [`Verdict`]: drop (back to FILL, the
//! default), transmit in place (zero-copy), or forward to another port sharing the
//! UMEM. The callback can also allocate fresh frames to send, so a generator is a few
//! lines.
//!
//! ```no_run
//! use fluxcapacitor::engine::{Engine, Verdict};
//! # fn main() -> Result<(), fluxcapacitor::Error> {
//! let engine = Engine::builder("veth0").build()?;
//! let stop = engine.stop_handle();
//! stop.stop_on_signals()?; // Ctrl-C / SIGTERM stop the engine cleanly
//! engine.run(|batch| {
//!     for mut pkt in batch.iter_mut() {
//!         let data = pkt.data_mut();
//!         if data.len() >= 12 {
//!             // Swap MACs and send the frame back out, without copying it.
//!             let (dst, src) = data[..12].split_at_mut(6);
//!             dst.swap_with_slice(src);
//!             pkt.set_verdict(Verdict::Tx);
//!         }
//!     }
//! })?;
//! # Ok(()) }
//! ```
//!
//! One worker thread runs per queue (or one for a group of ports sharing a UMEM);
//! the callback is shared by all workers (`Fn + Sync`), or made per worker with
//! [`Engine::run_with`]. Steady state allocates nothing on the heap.

mod batch;
mod config;
mod stats;
mod stop;
mod worker;

use std::fmt;
#[cfg(target_os = "linux")]
use std::sync::Arc;

pub use batch::{Batch, PacketMut, TxFrame, Verdict};
pub use config::{BusyPoll, EngineBuilder, EngineConfig, Idle, Queues};
pub use stats::{Counters, EngineStats, QueueSnapshot, QueueStats};
pub use stop::StopHandle;

use crate::error::{Error, Result, Stage};
use crate::umem::FrameCounts;
use worker::Worker;

/// What a finished run left behind, per worker.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Frame census per worker after the drain (`user`, `tx`, `completion` are 0
    /// when everything came back).
    pub frames: Vec<FrameCounts>,
    /// Final counters per queue/port.
    pub queues: Vec<QueueSnapshot>,
}

/// A set of workers ready to run.
pub struct Engine {
    workers: Vec<Worker>,
    stop: StopHandle,
    stats: EngineStats,
    #[cfg(target_os = "linux")]
    _programs: Vec<Arc<crate::xdp::XdpProgram>>,
    #[cfg(not(target_os = "linux"))]
    _programs: Vec<()>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The handle that stops [`run`](Self::run).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Live counters, readable from any thread while the engine runs.
    pub fn stats(&self) -> EngineStats {
        self.stats.clone()
    }

    /// What set-up did, per port (XDP mode, zero-copy and why).
    pub fn reports(&self) -> Vec<crate::flux::SetupReport> {
        self.workers.iter().flat_map(|w| w.reports()).collect()
    }

    /// Runs `callback` on every batch, on every worker, until stopped. Returns what
    /// was left behind once TX has drained.
    ///
    /// # Errors
    /// [`Error::CallbackPanicked`] when the callback panicked (the engine stopped
    /// cleanly: frames recovered, program detached when the engine is dropped), or a
    /// kernel error from the data path.
    pub fn run<F>(self, callback: F) -> Result<RunReport>
    where
        F: Fn(&mut Batch<'_>) + Sync,
    {
        self.run_with(|_| |b: &mut Batch<'_>| callback(b))
    }

    /// Like [`run`](Self::run), with a callback made per worker by `factory(index)`,
    /// so that each worker can keep mutable state without locks.
    pub fn run_with<M, C>(self, factory: M) -> Result<RunReport>
    where
        M: Fn(usize) -> C + Sync,
        C: FnMut(&mut Batch<'_>),
    {
        let Engine {
            mut workers,
            stop,
            stats,
            _programs,
        } = self;
        let single = workers.len() == 1;
        std::thread::scope(|s| {
            if single {
                // One worker runs on the caller's thread.
                if let Some(w) = workers.first_mut() {
                    w.run(factory(0), &stop);
                }
            } else {
                for (i, w) in workers.iter_mut().enumerate() {
                    let (stop, factory) = (&stop, &factory);
                    let spawned = std::thread::Builder::new()
                        .name(format!("flux-worker-{i}"))
                        .spawn_scoped(s, move || w.run(factory(i), stop));
                    if let Err(e) = spawned {
                        stop.fail(Error::kernel(Stage::Runtime, e));
                    }
                }
            }
        });
        let frames: Vec<FrameCounts> = workers.iter_mut().map(|w| w.frame_counts()).collect();
        stats.set_final_frames(frames.clone());
        let report = RunReport {
            frames,
            queues: workers
                .iter()
                .flat_map(|w| w.stat_handles())
                .map(|h| h.snapshot())
                .collect(),
        };
        drop(workers);
        drop(_programs);
        match stop.take_error() {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}
