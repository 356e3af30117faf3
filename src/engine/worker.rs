//! One worker: a loop over its ports, the batch callback, verdicts, idle strategy.

#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::{Batch, Verdict};
use super::stats::{Counters, QueueStats, StatHandle};
use super::{EngineConfig, Idle, StopHandle};
use crate::driver::{self, KickPolicy, TxUse};
use crate::error::{Error, Result, Stage};
use crate::flux::{Flux, SetupReport};
#[cfg(target_os = "linux")]
use crate::sys;
use crate::sys::XdpDesc;
use crate::umem::{FrameCounts, FramePool, RingTotals, Umem};

/// One socket served by a worker.
pub(crate) struct Port {
    flux: Flux,
    stats: Arc<QueueStats>,
    local: Counters,
    /// A multi-buffer socket (`XDP_USE_SG`): packets may span several descriptors.
    sg: bool,
}

impl Port {
    pub(crate) fn from_flux(flux: Flux) -> Port {
        Port {
            sg: flux.report().multi_buffer,
            flux,
            stats: Arc::new(QueueStats::default()),
            local: Counters::default(),
        }
    }

    /// Frames lent to the kernel: put on FILL and not yet taken off RX.
    #[inline]
    fn lent(&self) -> u64 {
        let r = &self.flux.rings;
        let given = r.fill.as_ref().map_or(0, |f| f.produced());
        let taken = r.rx.as_ref().map_or(0, |x| x.consumed());
        given.saturating_sub(taken)
    }
}

pub(crate) struct Worker {
    ports: Vec<Port>,
    pool: Arc<FramePool>,
    umem: Arc<Umem>,
    cfg: EngineConfig,
    index: usize,
    /// Per-turn scratch, allocated once: the RX batch, where its packets start (when
    /// one spans several descriptors), its verdicts, fresh TX frames, frames going
    /// back to FILL, and frames staged for each port's TX.
    rx: Vec<XdpDesc>,
    starts: Vec<u32>,
    verdicts: Vec<Verdict>,
    fresh: Vec<(XdpDesc, u16)>,
    to_fill: Vec<u64>,
    out: Vec<Vec<XdpDesc>>,
    #[cfg(target_os = "linux")]
    pollfds: Vec<libc::pollfd>,
    fill_target: u32,
    /// Some port's device has no descriptor for poll(2): wait on the device.
    device_wait: bool,
    /// When the current run of empty turns started.
    idle_since: Instant,
}

/// Descriptors one multi-buffer packet may add beyond a batch (copy mode allows 18
/// per packet): scratch is sized for it so that receiving one never allocates.
const FRAG_SLACK: usize = 64;
/// How long after the last packet an idle worker naps instead of blocking.
const NAP_WINDOW: Duration = Duration::from_millis(1);
/// One nap (plus the thread's timer slack, 50 µs by default).
const NAP: Duration = Duration::from_micros(100);
/// TX kicks per port and turn: up to 4 while the kernel keeps taking descriptors
/// (see [`driver::kick`]).
const KICKS: KickPolicy = KickPolicy {
    max_kicks: 4,
    max_stalls: 1,
    always: false,
};

impl Worker {
    pub(crate) fn new(
        ports: Vec<Port>,
        pool: Arc<FramePool>,
        index: usize,
        cfg: &EngineConfig,
        #[cfg_attr(not(target_os = "linux"), allow(unused_variables))] stop: &StopHandle,
    ) -> Result<Worker> {
        let umem = ports[0].flux.umem.clone();
        let batch = cfg.batch_size as usize;
        let nports = ports.len();
        #[cfg(not(target_os = "linux"))]
        if cfg.busy_poll.is_some() || !cfg.pin.is_empty() {
            return Err(crate::error::ConfigError::Conflict(
                "busy polling and CPU pinning need Linux",
            )
            .into());
        }
        #[cfg(target_os = "linux")]
        if let Some(bp) = cfg.busy_poll {
            // Busy polling is a socket option: devices that are no kernel socket
            // (the simulated one) have no NAPI to drive.
            for fd in ports.iter().filter_map(|p| p.flux.device.socket()) {
                for (name, v) in [
                    (sys::SO_PREFER_BUSY_POLL, 1),
                    (sys::SO_BUSY_POLL, bp.usecs as libc::c_int),
                    (sys::SO_BUSY_POLL_BUDGET, bp.budget as libc::c_int),
                ] {
                    sys::setsockopt_int(fd, name, v).map_err(|e| Error::Kernel {
                        stage: Stage::SocketOption,
                        hint: Some("the kernel refused busy polling (SO_PREFER_BUSY_POLL / SO_BUSY_POLL / SO_BUSY_POLL_BUDGET need CAP_NET_ADMIN and a kernel ≥ 5.11)"),
                        source: e,
                    })?;
                }
            }
        }
        #[cfg(target_os = "linux")]
        let mut pollfds: Vec<libc::pollfd> = ports
            .iter()
            .map(|p| libc::pollfd {
                // A negative fd is skipped by poll(2): devices without one are
                // waited on through `Device::poll` instead (see `idle`).
                fd: p.flux.device.poll_fd().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // Readable once a port's device fails (never drained: a failure is final).
        #[cfg(target_os = "linux")]
        pollfds.extend(
            ports
                .iter()
                .filter_map(|p| p.flux.watch())
                .map(|w| libc::pollfd {
                    fd: w.event_fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }),
        );
        #[cfg(target_os = "linux")]
        pollfds.push(libc::pollfd {
            fd: stop.event_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // Frames kept on the FILL side: all the pool can spare, leaving room for TX
        // when the callback generates traffic.
        let total = pool.total();
        let fill_size = ports
            .iter()
            .filter_map(|p| p.flux.rings.fill.as_ref().map(|f| f.size()))
            .min()
            .unwrap_or(0);
        let rx_size = ports
            .iter()
            .filter_map(|p| p.flux.rings.rx.as_ref().map(|r| r.size()))
            .min()
            .unwrap_or(0);
        let tx_size = ports
            .iter()
            .filter_map(|p| p.flux.rings.tx.as_ref().map(|t| t.size()))
            .min()
            .unwrap_or(0);
        let per_port = total / nports.max(1) as u32;
        // A generator (called every turn) sends fresh frames; otherwise TX carries
        // received ones.
        let tx_use = match (tx_size, cfg.always_call) {
            (0, _) => TxUse::None,
            (tx_size, true) => TxUse::Generate { tx_size },
            (_, false) => TxUse::Forward {
                batch: cfg.batch_size,
            },
        };
        let fill_target = driver::lend_target(per_port, fill_size, rx_size, tx_use);
        let mut w = Worker {
            ports,
            pool,
            umem,
            cfg: cfg.clone(),
            index,
            rx: Vec::with_capacity(batch + FRAG_SLACK),
            starts: Vec::with_capacity(batch),
            verdicts: Vec::with_capacity(batch),
            fresh: Vec::with_capacity(batch),
            to_fill: Vec::with_capacity(batch + FRAG_SLACK),
            out: (0..nports)
                .map(|_| Vec::with_capacity(batch * 2 + FRAG_SLACK))
                .collect(),
            #[cfg(target_os = "linux")]
            pollfds,
            fill_target,
            device_wait: true,
            idle_since: Instant::now(),
        };
        #[cfg(target_os = "linux")]
        {
            w.device_wait = w.ports.iter().any(|p| p.flux.device.poll_fd().is_none());
        }
        // FILL is loaded now, not when the loop starts: the sockets are registered
        // already, and a packet finding FILL empty would be dropped.
        for p in 0..w.ports.len() {
            w.refill(p);
        }
        Ok(w)
    }

    pub(crate) fn stat_handles(&self) -> Vec<StatHandle> {
        self.ports
            .iter()
            .map(|p| StatHandle {
                ifname: p.flux.report().ifname.clone(),
                queue: p.flux.report().queue,
                worker: self.index,
                stats: p.stats.clone(),
                device: p.flux.device.clone(),
                #[cfg(target_os = "linux")]
                watch: p.flux.watch().cloned(),
            })
            .collect()
    }

    pub(crate) fn reports(&self) -> Vec<SetupReport> {
        self.ports.iter().map(|p| p.flux.report().clone()).collect()
    }

    pub(crate) fn frame_counts(&mut self) -> FrameCounts {
        let mut rings = RingTotals::default();
        for p in &mut self.ports {
            rings += p.flux.ring_totals();
        }
        FrameCounts::of(self.pool.total(), self.pool.len(), rings)
    }

    /// The loop. Returns when stopped (by the handle, a callback panic or an error),
    /// after draining TX.
    pub(crate) fn run<C: FnMut(&mut Batch<'_>)>(&mut self, mut callback: C, stop: &StopHandle) {
        #[cfg(target_os = "linux")]
        if !self.cfg.pin.is_empty() {
            let cpu = self.cfg.pin[self.index % self.cfg.pin.len()];
            if let Err(e) = sys::pin_current_thread(cpu) {
                stop.fail(Error::Kernel {
                    stage: Stage::SocketOption,
                    hint: Some("CPU pinning failed: is that CPU online and allowed?"),
                    source: e,
                });
                return;
            }
        }
        let mut empty_turns = 0u32;
        while !stop.is_stopped() {
            // The device watch: one relaxed load per port and turn.
            if let Err(e) = self.check_devices() {
                stop.fail(e);
                break;
            }
            let mut work = false;
            for p in 0..self.ports.len() {
                work |= self.reap(p) > 0;
                self.refill(p);
                match self.rx_turn(p, &mut callback) {
                    Ok(w) => work |= w,
                    Err(e) => {
                        stop.fail(e);
                        break;
                    }
                }
            }
            match self.flush_tx() {
                Ok(w) => work |= w,
                Err(e) => stop.fail(e),
            }
            for p in &mut self.ports {
                p.local.turns += 1;
                p.stats.publish(&p.local);
            }
            if work {
                empty_turns = 0;
                continue;
            }
            empty_turns = empty_turns.saturating_add(1);
            self.idle(empty_turns, stop);
        }
        self.drain();
        for p in &mut self.ports {
            p.stats.publish(&p.local);
        }
    }

    /// The first failed device among the ports, as the error that names it.
    #[inline]
    fn check_devices(&self) -> Result<()> {
        #[cfg(target_os = "linux")]
        for p in &self.ports {
            if let Some(w) = p.flux.watch() {
                w.check()?;
            }
        }
        Ok(())
    }

    fn idle(&mut self, empty_turns: u32, stop: &StopHandle) {
        match self.cfg.idle {
            Idle::Spin => std::hint::spin_loop(),
            Idle::SpinThenSleep { spins, sleep } => {
                if empty_turns > spins {
                    std::thread::sleep(sleep);
                } else {
                    std::hint::spin_loop();
                }
            }
            Idle::SpinThenPoll { spins } => {
                if empty_turns == 1 {
                    self.idle_since = Instant::now();
                }
                if empty_turns <= spins || self.cfg.always_call {
                    std::hint::spin_loop();
                    return;
                }
                // Traffic seen within NAP_WINDOW: a gap between the kernel's bursts,
                // not idleness. Nap on a timer instead of blocking in poll(): a
                // sleeper on the socket makes every kernel flush pay a wake-up (an
                // IPI) on the receive CPU, the bottleneck, and short frequent
                // wake-ups contend for the ring cache lines. The rings buffer the
                // nap (veth, 64 B: 4.4 -> 5.6 Mpps, 35 -> 19 ns/pkt of worker CPU).
                if self.idle_since.elapsed() < NAP_WINDOW {
                    std::thread::sleep(NAP);
                    return;
                }
                if stop.is_stopped() {
                    return;
                }
                if self.device_wait {
                    // A device without a descriptor to poll(2) on (the simulated one,
                    // or no poll(2) here): wait on the device itself, a little at a
                    // time so that a stop is seen promptly.
                    if let Some(p) = self.ports.iter_mut().find(|p| p.flux.rings.rx.is_some()) {
                        p.local.polls += 1;
                        let _ = p
                            .flux
                            .device
                            .poll(true, false, Some(Duration::from_millis(5)));
                    } else {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    return;
                }
                #[cfg(target_os = "linux")]
                self.poll_sockets(stop);
            }
        }
    }

    /// Blocks in poll(2) on every port's socket and the stop eventfd.
    #[cfg(target_os = "linux")]
    fn poll_sockets(&mut self, stop: &StopHandle) {
        for (i, p) in self.ports.iter_mut().enumerate() {
            p.local.polls += 1;
            // Wait for RX; ports without RX only for the stop event.
            self.pollfds[i].events = if p.flux.rings.rx.is_some() {
                libc::POLLIN
            } else {
                0
            };
            self.pollfds[i].revents = 0;
        }
        if let Some(ev) = self.pollfds.last_mut() {
            ev.revents = 0;
        }
        if stop.is_stopped() {
            return;
        }
        if let Err(e) = sys::poll_many(&mut self.pollfds, None) {
            stop.fail(Error::kernel(Stage::Wakeup, e));
            return;
        }
        for (i, p) in self.ports.iter().enumerate() {
            if self.pollfds[i].revents & (libc::POLLERR | libc::POLLHUP) == 0 {
                continue;
            }
            // The kernel unbound the socket: its device left. The watch names the
            // event (deleted, or moved) in a moment; without a watch, say so here.
            match p.flux.watch() {
                Some(_) => std::thread::sleep(Duration::from_millis(1)),
                None => stop.fail(Error::Device(crate::watch::DeviceError {
                    ifname: p.flux.report().ifname.clone(),
                    ifindex: p.flux.report().ifindex,
                    event: crate::watch::DeviceEvent::Removed,
                })),
            }
        }
    }

    /// Completed TX frames back to the pool.
    fn reap(&mut self, p: usize) -> u32 {
        match self.ports[p].flux.rings.completion.as_mut() {
            Some(c) => driver::reap(c, &self.pool),
            None => 0,
        }
    }

    /// Tops FILL up from the pool to the target.
    fn refill(&mut self, p: usize) {
        let port = &mut self.ports[p];
        let lent = port.lent();
        let Some(fill) = port.flux.rings.fill.as_mut() else {
            return;
        };
        let min = self.cfg.batch_size.min(self.fill_target).max(1);
        let r = driver::refill(
            fill,
            lent,
            self.fill_target as u64,
            min,
            &self.pool,
            &port.flux.device,
        );
        port.local.rx_wakeups += r.woke as u64;
    }

    /// One RX batch on port `p`: peek, callback, verdicts. Returns whether anything
    /// happened.
    fn rx_turn<C: FnMut(&mut Batch<'_>)>(&mut self, p: usize, callback: &mut C) -> Result<bool> {
        let batch = self.cfg.batch_size;
        let nports = self.ports.len() as u16;
        self.rx.clear();
        self.starts.clear();
        let mut multi = false;
        {
            let port = &mut self.ports[p];
            if let Some(rx) = port.flux.rings.rx.as_mut() {
                let rxv = &mut self.rx;
                let n = driver::take_rx(rx, batch, port.sg, |d| {
                    multi |= d.continues();
                    rxv.push(d)
                });
                if n == 0 && self.cfg.busy_poll.is_some() {
                    // Busy polling: this syscall runs the driver's NAPI here.
                    port.local.rx_wakeups += 1;
                    let _ = port.flux.device.wake_rx();
                }
            }
        }
        let n = if multi {
            self.mark_packets(p)
        } else {
            self.rx.len()
        };
        if n == 0 && !self.cfg.always_call {
            return Ok(false);
        }
        self.verdicts.clear();
        self.verdicts.resize(n, Verdict::Drop);
        self.fresh.clear();
        let queue = self.ports[p].flux.report().queue;
        let port = &mut self.ports[p];
        port.local.rx_packets += n as u64;
        port.local.rx_bytes += self.rx.iter().map(|d| d.len as u64).sum::<u64>();
        port.local.batches += 1;
        let panicked = {
            let mut b = Batch {
                umem: &self.umem,
                descs: &mut self.rx,
                starts: &self.starts,
                verdicts: &mut self.verdicts,
                pool: &self.pool,
                fresh: &mut self.fresh,
                fresh_cap: batch as usize,
                port: p as u16,
                ports: nports,
                worker: self.index,
                queue,
            };
            catch_unwind(AssertUnwindSafe(|| callback(&mut b))).err()
        };
        if let Some(payload) = panicked {
            // Everything received goes back to FILL; fresh frames go back to the pool.
            self.verdicts.iter_mut().for_each(|v| *v = Verdict::Drop);
            for (d, _) in self.fresh.drain(..) {
                self.pool.free(self.umem.chunk_of(d.addr));
            }
            self.apply_verdicts(p);
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            return Err(Error::CallbackPanicked {
                worker: self.index,
                message,
            });
        }
        let fresh = self.fresh.len();
        self.apply_verdicts(p);
        Ok(n > 0 || fresh > 0)
    }

    /// Notes where each packet of a batch with multi-buffer packets starts; returns
    /// how many packets it holds.
    #[cold]
    fn mark_packets(&mut self, p: usize) -> usize {
        let mut at_start = true;
        let mut multi = 0u64;
        for (i, d) in self.rx.iter().enumerate() {
            if at_start {
                self.starts.push(i as u32);
                multi += d.continues() as u64;
            }
            at_start = !d.continues();
        }
        self.ports[p].local.rx_multi_buffer += multi;
        self.starts.len()
    }

    fn apply_verdicts(&mut self, p: usize) {
        if !self.starts.is_empty() {
            return self.apply_packet_verdicts(p);
        }
        let nports = self.out.len();
        self.to_fill.clear();
        {
            let local = &mut self.ports[p].local;
            for (d, v) in self.rx.iter().zip(self.verdicts.iter()) {
                match *v {
                    Verdict::Drop => {
                        local.verdict_drop += 1;
                        self.to_fill.push(self.umem.chunk_of(d.addr));
                    }
                    Verdict::Tx => {
                        local.verdict_tx += 1;
                        self.out[p].push(*d);
                    }
                    Verdict::Forward(q) if (q as usize) < nports => {
                        local.verdict_forward += 1;
                        self.out[q as usize].push(*d);
                    }
                    Verdict::Forward(_) => {
                        local.verdict_drop += 1;
                        self.to_fill.push(self.umem.chunk_of(d.addr));
                    }
                }
            }
            local.fresh_tx += self.fresh.len() as u64;
        }
        for (d, q) in self.fresh.drain(..) {
            self.out[(q as usize).min(nports - 1)].push(d);
        }
        // Dropped frames go straight back to FILL: no trip through the pool.
        let fill = self.ports[p].flux.rings.fill.as_mut();
        driver::recycle(fill, &self.to_fill, &self.pool);
    }

    /// [`Worker::apply_verdicts`] for a batch with multi-buffer packets: a verdict
    /// moves every fragment of its packet. A port that is no multi-buffer socket
    /// cannot send one (the kernel would refuse its descriptors): such packets are
    /// dropped and counted in `tx_not_multi_buffer`.
    #[cold]
    fn apply_packet_verdicts(&mut self, p: usize) {
        let nports = self.out.len();
        self.to_fill.clear();
        let total = self.rx.len();
        for (i, v) in self.verdicts.iter().enumerate() {
            let start = self.starts[i] as usize;
            let end = self.starts.get(i + 1).map_or(total, |&e| e as usize);
            let frags = &self.rx[start..end];
            let to = match *v {
                Verdict::Drop => None,
                Verdict::Tx => Some(p),
                Verdict::Forward(q) if (q as usize) < nports => Some(q as usize),
                Verdict::Forward(_) => None,
            };
            let sendable = to.is_some_and(|q| frags.len() == 1 || self.ports[q].sg);
            let local = &mut self.ports[p].local;
            match to {
                Some(q) if sendable => {
                    match *v {
                        Verdict::Tx => local.verdict_tx += 1,
                        _ => local.verdict_forward += 1,
                    }
                    self.out[q].extend_from_slice(frags);
                }
                other => {
                    local.verdict_drop += 1;
                    local.tx_not_multi_buffer += other.is_some() as u64;
                    let umem = &self.umem;
                    self.to_fill
                        .extend(frags.iter().map(|d| umem.chunk_of(d.addr)));
                }
            }
        }
        self.ports[p].local.fresh_tx += self.fresh.len() as u64;
        for (d, q) in self.fresh.drain(..) {
            self.out[(q as usize).min(nports - 1)].push(d);
        }
        let fill = self.ports[p].flux.rings.fill.as_mut();
        driver::recycle(fill, &self.to_fill, &self.pool);
    }

    /// Puts staged frames on each port's TX and kicks where the kernel asks.
    fn flush_tx(&mut self) -> Result<bool> {
        let mut work = false;
        for q in 0..self.ports.len() {
            if !self.out[q].is_empty() {
                work = true;
                self.push_tx(q);
            }
            let port = &mut self.ports[q];
            if let Some(tx) = port.flux.rings.tx.as_ref() {
                if tx.pending() > 0 {
                    work = true;
                    let k = driver::kick(tx, &port.flux.device, KICKS, || {})
                        .map_err(|e| Error::kernel(Stage::Wakeup, e))?;
                    port.local.tx_kicks += k.kicks as u64;
                    port.local.device_drops += k.device_drops;
                }
            }
        }
        Ok(work)
    }

    fn push_tx(&mut self, q: usize) {
        let mut pushed = 0usize;
        for attempt in 0..2 {
            let port = &mut self.ports[q];
            let Some(tx) = port.flux.rings.tx.as_mut() else {
                break;
            };
            let n = driver::push_tx(tx, &self.out[q][pushed..]);
            pushed += n.descs as usize;
            port.local.tx_packets += n.packets as u64;
            port.local.tx_bytes += n.bytes;
            if pushed == self.out[q].len() || attempt == 1 {
                break;
            }
            // TX full: let the kernel work, take back what it finished, try once more.
            port.local.tx_kicks += 1;
            let _ = port.flux.device.kick_tx();
            self.reap(q);
        }
        let rest = &self.out[q][pushed..];
        if !rest.is_empty() {
            self.ports[q].local.tx_ring_full += rest.len() as u64;
            self.pool.free_batch(rest.iter().map(|d| d.addr));
        }
        self.out[q].clear();
    }

    /// At stop: push out what TX holds and take every completion back.
    fn drain(&mut self) {
        let _ = driver::drain(
            self.cfg.drain_timeout,
            || -> std::result::Result<u64, ()> {
                let mut in_flight = 0u64;
                for q in 0..self.ports.len() {
                    self.reap(q);
                    let port = &mut self.ports[q];
                    let t = port.flux.ring_totals();
                    in_flight += t.tx_given.saturating_sub(t.comp_seen - t.comp_ready);
                    if let Some(tx) = port.flux.rings.tx.as_ref() {
                        if let Ok(k) = driver::kick(tx, &port.flux.device, KickPolicy::ONCE, || {})
                        {
                            port.local.tx_kicks += k.kicks as u64;
                        }
                    }
                }
                Ok(in_flight)
            },
            || {
                std::thread::sleep(Duration::from_micros(100));
                Ok(())
            },
        );
    }
}
