//! Engine settings and the builder that sets up its sockets and workers.

use std::fmt;
#[cfg(target_os = "linux")]
use std::sync::Arc;
use std::time::Duration;

use super::stats::EngineStats;
use super::stop::StopHandle;
use super::worker::{Port, Worker};
use super::Engine;
#[cfg(target_os = "linux")]
use crate::builder::FluxBuilder;
use crate::error::{ConfigError, Result};
use crate::flux::Flux;
#[cfg(target_os = "linux")]
use crate::netdev::queue_counts;
#[cfg(target_os = "linux")]
use crate::umem::FramePool;

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
    /// that [`Verdict::Forward`](super::Verdict::Forward) moves a frame from one port to another without a
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
}
