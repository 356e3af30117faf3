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
mod stats;
mod worker;

use std::fmt;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use batch::{Batch, PacketMut, TxFrame, Verdict};
pub use stats::{Counters, EngineStats, QueueSnapshot, QueueStats};

#[cfg(target_os = "linux")]
use crate::builder::{queue_counts, FluxBuilder};
use crate::error::{ConfigError, Error, Result, Stage};
use crate::flux::Flux;
#[cfg(target_os = "linux")]
use crate::sys;
use crate::umem::FrameCounts;
#[cfg(target_os = "linux")]
use crate::umem::FramePool;
use worker::{Port, Worker};

/// What to do when a loop turn found no work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Never sleep: lowest latency, one core at 100% (and starves a softirq that
    /// shares the core).
    Spin,
    /// Spin `spins` empty turns, then block in `poll()` until traffic (or stop). An
    /// idle engine costs no CPU; a busy one makes no syscalls. The default.
    SpinThenPoll {
        /// Empty turns before blocking.
        spins: u32,
    },
    /// Spin `spins` empty turns, then sleep `sleep` per empty turn.
    SpinThenSleep {
        /// Empty turns before sleeping.
        spins: u32,
        /// Sleep per empty turn after that.
        sleep: Duration,
    },
}

impl Default for Idle {
    fn default() -> Self {
        Idle::SpinThenPoll { spins: 32 }
    }
}

/// Kernel busy polling on the sockets (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`,
/// `SO_BUSY_POLL_BUDGET`). The engine then drives the driver's NAPI from its own
/// thread with a `recvfrom`/`sendto` per turn, which keeps working when it shares a
/// core with the softirq. Pair with `napi_defer_hard_irqs` / `gro_flush_timeout` on
/// the interface for best effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL` in microseconds.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET` (packets per busy-poll).
    pub budget: u32,
}

impl Default for BusyPoll {
    fn default() -> Self {
        BusyPoll {
            usecs: 20,
            budget: 64,
        }
    }
}

/// Which queues get a worker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Queues {
    /// Queue 0 only.
    #[default]
    First,
    /// Every active rx queue of the interface.
    All,
    /// These queues.
    List(Vec<u32>),
}

/// Engine settings shared by all workers.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Packets per batch (RX peek size), 1..=1024.
    pub batch_size: u32,
    /// Idle strategy.
    pub idle: Idle,
    /// Kernel busy polling, if wanted.
    pub busy_poll: Option<BusyPoll>,
    /// Pin worker `i` to CPU `pin[i % pin.len()]`.
    pub pin: Vec<usize>,
    /// Call the callback every turn even with no packet received (generators).
    pub always_call: bool,
    /// How long [`Engine::run`] waits at stop for TX completions.
    pub drain_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_size: 64,
            idle: Idle::default(),
            busy_poll: None,
            pin: Vec::new(),
            always_call: false,
            drain_timeout: Duration::from_secs(1),
        }
    }
}

/// Builds an [`Engine`] over one interface (one worker per queue) or over several
/// ports sharing one UMEM (one worker).
pub struct EngineBuilder {
    ifname: Option<String>,
    #[cfg(target_os = "linux")]
    ports: Vec<FluxBuilder>,
    /// Sockets made already (a simulated device, or built by hand): one worker each.
    fluxes: Vec<Flux>,
    queues: Queues,
    shared_umem: bool,
    #[cfg(target_os = "linux")]
    configure: Box<dyn Fn(FluxBuilder) -> FluxBuilder>,
    cfg: EngineConfig,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("ifname", &self.ifname)
            .field("fluxes", &self.fluxes.len())
            .field("queues", &self.queues)
            .field("shared_umem", &self.shared_umem)
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl EngineBuilder {
    /// Workers on the given queues (default: queue 0).
    pub fn queues(mut self, q: Queues) -> Self {
        self.queues = q;
        self
    }
    /// One UMEM for all queues, its frames split between the workers (default: one
    /// UMEM per queue).
    pub fn shared_umem(mut self, on: bool) -> Self {
        self.shared_umem = on;
        self
    }
    /// Adjusts every queue's [`FluxBuilder`] (frame size, ring sizes, modes…).
    #[cfg(target_os = "linux")]
    pub fn configure(mut self, f: impl Fn(FluxBuilder) -> FluxBuilder + 'static) -> Self {
        self.configure = Box::new(f);
        self
    }
    /// Packets per batch (default 64).
    pub fn batch_size(mut self, n: u32) -> Self {
        self.cfg.batch_size = n;
        self
    }
    /// Idle strategy (default: spin 32 empty turns, then `poll()`).
    pub fn idle(mut self, idle: Idle) -> Self {
        self.cfg.idle = idle;
        self
    }
    /// Kernel busy polling.
    pub fn busy_poll(mut self, b: Option<BusyPoll>) -> Self {
        self.cfg.busy_poll = b;
        self
    }
    /// Pin workers to CPUs (worker `i` to `cpus[i % len]`).
    pub fn pin_cpus(mut self, cpus: Vec<usize>) -> Self {
        self.cfg.pin = cpus;
        self
    }
    /// Call the callback every turn, even with no packet (traffic generators).
    pub fn always_call(mut self, on: bool) -> Self {
        self.cfg.always_call = on;
        self
    }
    /// All settings at once.
    pub fn config(mut self, cfg: EngineConfig) -> Self {
        self.cfg = cfg;
        self
    }

    /// Sets up every socket (and the program, once per interface).
    pub fn build(self) -> Result<Engine> {
        if self.cfg.batch_size == 0 || self.cfg.batch_size > 1024 {
            return Err(ConfigError::Conflict("batch_size must be 1..=1024").into());
        }
        let stop = StopHandle::new()?;
        let mut workers = Vec::new();
        #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
        let mut programs = Vec::new();
        if !self.fluxes.is_empty() {
            for (i, flux) in self.fluxes.into_iter().enumerate() {
                let pool = flux.pool.clone();
                workers.push(Worker::new(
                    vec![Port::from_flux(flux)],
                    pool,
                    i,
                    &self.cfg,
                    &stop,
                )?);
            }
        } else {
            #[cfg(target_os = "linux")]
            self.build_kernel(&stop, &mut workers, &mut programs)?;
        }
        let stats = EngineStats::new(workers.iter().flat_map(|w| w.stat_handles()).collect());
        Ok(Engine {
            workers,
            stop,
            stats,
            _programs: programs,
        })
    }

    #[cfg(target_os = "linux")]
    fn build_kernel(
        self,
        stop: &StopHandle,
        workers: &mut Vec<Worker>,
        programs: &mut Vec<Arc<crate::xdp::XdpProgram>>,
    ) -> Result<()> {
        if let Some(ifname) = self.ifname {
            let queues: Vec<u32> = match &self.queues {
                Queues::First => vec![0],
                Queues::All => (0..queue_counts(&ifname).0).collect(),
                Queues::List(l) if l.is_empty() => {
                    return Err(ConfigError::Conflict("Queues::List is empty").into())
                }
                Queues::List(l) => l.clone(),
            };
            let mut fluxes: Vec<Flux> = Vec::new();
            for &q in &queues {
                let mut b = (self.configure)(FluxBuilder::new(ifname.clone()))
                    .queue(q)
                    .prefill(false);
                if let Some(first) = fluxes.first() {
                    if let Some(p) = first.program() {
                        b = b.program(p.clone());
                    }
                    if self.shared_umem {
                        b = b.shared_umem(first);
                    }
                }
                fluxes.push(b.build()?);
            }
            if let Some(p) = fluxes.first().and_then(|f| f.program()) {
                programs.push(p.clone());
            }
            let n = fluxes.len() as u32;
            let total = fluxes[0].umem().frame_count();
            for (i, mut flux) in fluxes.into_iter().enumerate() {
                let pool = if self.shared_umem {
                    // Split the one region evenly between the workers.
                    let share = total / n;
                    Arc::new(FramePool::with_range(flux.umem(), i as u32 * share, share))
                } else {
                    flux.pool.clone()
                };
                // The socket's census counts from the pool its worker uses.
                flux.pool = pool.clone();
                workers.push(Worker::new(
                    vec![Port::from_flux(flux)],
                    pool,
                    i,
                    &self.cfg,
                    stop,
                )?);
            }
        } else {
            // Ports sharing one UMEM, served by one worker.
            let mut fluxes: Vec<Flux> = Vec::new();
            for b in self.ports {
                let mut b = (self.configure)(b).prefill(false);
                if let Some(first) = fluxes.first() {
                    b = b.shared_umem(first);
                }
                fluxes.push(b.build()?);
            }
            for f in &fluxes {
                if let Some(p) = f.program() {
                    programs.push(p.clone());
                }
            }
            let pool = fluxes[0].pool.clone();
            let ports = fluxes.into_iter().map(Port::from_flux).collect();
            workers.push(Worker::new(ports, pool, 0, &self.cfg, stop)?);
        }
        Ok(())
    }
}

/// A clonable, thread-safe handle that stops a running [`Engine`].
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<StopInner>);

#[derive(Debug)]
struct StopInner {
    stopped: AtomicBool,
    /// Written on stop so that workers blocked in `poll()` wake at once.
    #[cfg(target_os = "linux")]
    event: OwnedFd,
    error: Mutex<Option<Error>>,
}

impl StopHandle {
    fn new() -> Result<StopHandle> {
        #[cfg(target_os = "linux")]
        let event = sys::eventfd().map_err(|e| Error::kernel(Stage::Wakeup, e))?;
        Ok(StopHandle(Arc::new(StopInner {
            stopped: AtomicBool::new(false),
            #[cfg(target_os = "linux")]
            event,
            error: Mutex::new(None),
        })))
    }

    /// Asks every worker to stop; [`Engine::run`] returns once they have drained.
    pub fn stop(&self) {
        // Release: pairs with the workers' Acquire load; nothing else is published.
        self.0.stopped.store(true, Ordering::Release);
        #[cfg(target_os = "linux")]
        let _ = sys::eventfd_signal(self.0.event.as_fd());
    }

    /// Whether stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    #[cfg(target_os = "linux")]
    pub(crate) fn event_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.event.as_fd()
    }

    pub(crate) fn fail(&self, e: Error) {
        if let Ok(mut slot) = self.0.error.lock() {
            slot.get_or_insert(e);
        }
        self.stop();
    }

    fn take_error(&self) -> Option<Error> {
        self.0.error.lock().ok().and_then(|mut s| s.take())
    }

    /// Stops on SIGINT or SIGTERM: blocks both signals in the calling thread (call
    /// it from `main` before spawning threads, so every thread inherits the mask) and
    /// starts a thread that waits for them and calls [`stop`](Self::stop).
    #[cfg(target_os = "linux")]
    pub fn stop_on_signals(&self) -> Result<()> {
        use nix::sys::signal::{SigSet, Signal};
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        set.thread_block().map_err(|e| {
            Error::kernel(Stage::Wakeup, std::io::Error::from_raw_os_error(e as i32))
        })?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("flux-signals".into())
            .spawn(move || {
                if set.wait().is_ok() {
                    me.stop();
                }
            })
            .map_err(|e| Error::kernel(Stage::Wakeup, e))?;
        Ok(())
    }
}

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
    /// An engine over sockets made already — [simulated devices](crate::sim), or
    /// `Flux`es built by hand — one worker each. The callback code is the same as on
    /// a kernel interface: only this line changes.
    pub fn from_fluxes(fluxes: Vec<Flux>) -> EngineBuilder {
        EngineBuilder {
            ifname: None,
            #[cfg(target_os = "linux")]
            ports: Vec::new(),
            fluxes,
            queues: Queues::First,
            shared_umem: false,
            #[cfg(target_os = "linux")]
            configure: Box::new(|b| b),
            cfg: EngineConfig::default(),
        }
    }

    /// An engine on interface `ifname` (queue 0 unless [`EngineBuilder::queues`]).
    #[cfg(target_os = "linux")]
    pub fn builder(ifname: impl Into<String>) -> EngineBuilder {
        EngineBuilder {
            ifname: Some(ifname.into()),
            fluxes: Vec::new(),
            ports: Vec::new(),
            queues: Queues::First,
            shared_umem: false,
            configure: Box::new(|b| b),
            cfg: EngineConfig::default(),
        }
    }

    /// An engine over several ports that share one UMEM, served by one worker, so
    /// that [`Verdict::Forward`] moves a frame from one port to another without a
    /// copy. Port `i` is `ports[i]`.
    #[cfg(target_os = "linux")]
    pub fn with_ports(ports: Vec<FluxBuilder>) -> EngineBuilder {
        EngineBuilder {
            ifname: None,
            fluxes: Vec::new(),
            ports,
            queues: Queues::First,
            shared_umem: true,
            configure: Box::new(|b| b),
            cfg: EngineConfig::default(),
        }
    }

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
                        stop.fail(Error::kernel(Stage::Wakeup, e));
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
