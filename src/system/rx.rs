//! [`Rx`]: the receiving half of a split socket.

use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use super::frame::Frag;
use super::{wakeup_error, Frame, Link, REFILL_BATCH, SPINS};
use crate::device::XskStats;
use crate::driver;
use crate::error::Result;
use crate::ring::{FillRing, RxRing};
use crate::umem::FrameCounts;
use crate::umem::FramePool;
use crate::{Error, ProgramCounters, SetupReport, Stage};

/// The receiving half of a split socket: owns RX and FILL.
///
/// Receives come in three forms: non-blocking ([`Rx::try_recv`],
/// [`Rx::recv_batch`]), blocking with a timeout ([`Rx::recv_timeout`],
/// [`Rx::recv_batch_timeout`]) and blocking ([`Rx::recv`]). Every call first puts
/// frames that came back to the pool on FILL (once at least 64 are due, or at
/// once when FILL ran dry), then takes packets off RX.
///
/// `Send` (move it to the receiving thread), not `Sync`.
#[derive(Debug)]
pub struct Rx {
    rx: Option<RxRing>,
    fill: Option<FillRing>,
    pool: Arc<FramePool>,
    link: Arc<Link>,
    fill_target: u64,
    refill_min: u64,
    /// A multi-buffer socket: a packet may span several descriptors.
    sg: bool,
    /// When the ring last went empty after traffic (napping vs. polling).
    last_traffic: Instant,
    /// A blocking receive found packets since `last_traffic` was set.
    had_traffic: bool,
}

/// Unparks a thread: the waker of a blocking `Rx` that waits for frames.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// What a starving `Rx` (FILL dry, nothing in the pool) should do next.
pub(crate) enum Starving {
    /// Frames came back: try again.
    Retry,
    /// Frames are on TX / COMPLETION: the kernel will hand them back soon; retry
    /// shortly (nothing signals completions).
    Soon,
    /// Every frame is with the application: the waker passed in is woken when one
    /// comes back.
    Wait,
}

impl Rx {
    pub(crate) fn new(
        link: Arc<Link>,
        pool: Arc<FramePool>,
        rx: Option<RxRing>,
        fill: Option<FillRing>,
        fill_target: u64,
    ) -> Rx {
        Rx {
            sg: link.report.multi_buffer,
            rx,
            fill,
            pool,
            link,
            refill_min: REFILL_BATCH.min(fill_target).max(1),
            fill_target,
            last_traffic: Instant::now(),
            had_traffic: false,
        }
    }

    /// Frames on FILL or RX (given to the kernel and not taken back yet).
    #[inline]
    fn outstanding(&self) -> u64 {
        let given = self.fill.as_ref().map_or(0, |f| f.produced());
        let taken = self.rx.as_ref().map_or(0, |r| r.consumed());
        given.saturating_sub(taken)
    }

    /// Puts pool frames on FILL when enough are due, waking the kernel if it asks.
    #[inline]
    fn refill(&mut self) {
        let lent = self.outstanding();
        let Some(fill) = self.fill.as_mut() else {
            return;
        };
        let r = driver::refill(
            fill,
            lent,
            self.fill_target,
            self.refill_min as u32,
            &self.pool,
            &self.link.device,
        );
        if r.frames > 0 {
            self.link.census.note_fill(fill.produced());
        }
    }

    #[inline]
    fn frame_of(&self, d: crate::XdpDesc) -> Option<Frame> {
        let i = self.pool.index_of(d.addr)?;
        let off = self.pool.umem().offset_in_chunk(d.addr);
        Some(Frame::new(self.pool.clone(), i, off, d.len))
    }

    /// Takes one packet if RX has one; never blocks. `Ok(None)`: nothing there now.
    ///
    /// # Errors
    /// [`Error::Device`] once the device failed under the socket (deleted, moved,
    /// down, program detached …; see [`crate::watch`]).
    #[inline]
    pub fn try_recv(&mut self) -> Result<Option<Frame>> {
        self.link.check_device()?;
        Ok(self.take_one())
    }

    /// One packet off RX, if there is one (no device check).
    #[inline]
    pub(crate) fn take_one(&mut self) -> Option<Frame> {
        self.refill();
        loop {
            let rx = self.rx.as_mut()?;
            let peek = rx.peek(1);
            let d = peek.get(0)?;
            if d.continues() {
                drop(peek);
                let mut one = Vec::with_capacity(1);
                self.take_multi(1, &mut one);
                return one.pop();
            }
            peek.release();
            self.link.census.note_rx(rx.consumed(), None);
            // A descriptor outside the UMEM cannot come from the kernel; skip it
            // rather than hand out a frame that is not ours.
            if let Some(f) = self.frame_of(d) {
                return Some(f);
            }
        }
    }

    /// Appends up to `max` received packets to `out` without blocking; returns how
    /// many. Reuse `out` across calls: no heap allocation in steady state.
    ///
    /// # Errors
    /// As [`Rx::try_recv`].
    pub fn recv_batch(&mut self, out: &mut Vec<Frame>, max: usize) -> Result<usize> {
        self.link.check_device()?;
        Ok(self.take_batch(out, max))
    }

    /// Up to `max` packets off RX into `out` (no device check).
    pub(crate) fn take_batch(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        self.refill();
        if self.sg {
            return self.take_multi(max.min(u32::MAX as usize) as u32, out);
        }
        let Some(rx) = self.rx.as_mut() else {
            return 0;
        };
        let max = max.min(u32::MAX as usize) as u32;
        let peek = rx.peek(max);
        let n = peek.len();
        out.reserve(n as usize);
        let before = out.len();
        let pool = &self.pool;
        for d in peek.iter() {
            if let Some(i) = pool.index_of(d.addr) {
                let off = pool.umem().offset_in_chunk(d.addr);
                out.push(Frame::new(pool.clone(), i, off, d.len));
            }
        }
        peek.release();
        self.link.census.note_rx(rx.consumed(), None);
        out.len() - before
    }

    /// Up to `max` whole packets off a multi-buffer socket's RX into `out`, each
    /// one `Frame` however many descriptors it spans; returns how many. The kernel
    /// publishes a packet's descriptors together, so a packet is either all there
    /// or not yet.
    #[cold]
    fn take_multi(&mut self, max: u32, out: &mut Vec<Frame>) -> usize {
        let Some(rx) = self.rx.as_mut() else {
            return 0;
        };
        let pool = &self.pool;
        let umem = pool.umem();
        let peek = rx.peek(u32::MAX);
        // Descriptors of the first `max` whole packets.
        let (mut n, mut packets) = (0u32, 0u32);
        for (i, d) in peek.iter().enumerate() {
            if packets >= max {
                break;
            }
            if !d.continues() {
                packets += 1;
                n = i as u32 + 1;
            }
        }
        let before = out.len();
        let mut head: Option<(u32, u32, u32)> = None;
        let mut rest: Vec<Frag> = Vec::new();
        for d in peek.iter().take(n as usize) {
            // A descriptor outside the UMEM cannot come from the kernel; skip it
            // rather than hand out a frame that is not ours.
            if let Some(i) = pool.index_of(d.addr) {
                let off = umem.offset_in_chunk(d.addr);
                match head {
                    None => head = Some((i, off, d.len)),
                    Some(_) => rest.push(Frag {
                        index: i,
                        off,
                        len: d.len,
                    }),
                }
            }
            if !d.continues() {
                if let Some((i, off, len)) = head.take() {
                    let rest = std::mem::take(&mut rest).into_boxed_slice();
                    out.push(Frame::with_frags(pool.clone(), i, off, len, rest));
                }
            }
        }
        peek.release_n(n);
        self.link.census.note_rx(rx.consumed(), None);
        out.len() - before
    }

    /// Waits up to `timeout` for a packet; `Ok(None)` on timeout.
    ///
    /// # Errors
    /// [`Error::Device`] once the device failed under the socket (the wait ends
    /// at once); [`Error::Kernel`] (stage `Wakeup`) when `poll(2)` fails.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Frame>> {
        let deadline = Instant::now().checked_add(timeout);
        self.wait(deadline, |rx| rx.take_one())
    }

    /// Waits for a packet, as long as it takes.
    ///
    /// # Errors
    /// As [`Rx::recv_timeout`].
    pub fn recv(&mut self) -> Result<Frame> {
        loop {
            if let Some(f) = self.wait(None, |rx| rx.take_one())? {
                return Ok(f);
            }
        }
    }

    /// Waits up to `timeout` for at least one packet, then appends up to `max` to
    /// `out`; returns how many (0 on timeout).
    ///
    /// # Errors
    /// As [`Rx::recv_timeout`].
    pub fn recv_batch_timeout(
        &mut self,
        out: &mut Vec<Frame>,
        max: usize,
        timeout: Duration,
    ) -> Result<usize> {
        let deadline = Instant::now().checked_add(timeout);
        Ok(self
            .wait(deadline, |rx| match rx.take_batch(out, max) {
                0 => None,
                n => Some(n),
            })?
            .unwrap_or(0))
    }

    /// Spin, then sleep in `poll(2)` (or park, when FILL ran dry) until `attempt`
    /// yields or `deadline` passes.
    fn wait<T>(
        &mut self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<Option<T>> {
        let mut spins = 0;
        loop {
            self.link.check_device()?;
            if let Some(v) = attempt(self) {
                self.had_traffic = true;
                return Ok(Some(v));
            }
            if std::mem::take(&mut self.had_traffic) {
                self.last_traffic = Instant::now();
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(l) if !l.is_zero() => Some(l),
                    _ => return Ok(None),
                },
                None => None,
            };
            if self.is_starving() {
                let me = Arc::new(Unpark(std::thread::current()));
                match self.starving_step(&Waker::from(me)) {
                    Starving::Retry => {}
                    Starving::Soon => std::thread::park_timeout(cap(left, 1)),
                    Starving::Wait => {
                        std::thread::park_timeout(cap(left, 100));
                        self.pool.waiter.disarm();
                    }
                }
                continue;
            }
            if self.rx.is_none() {
                // Nothing can ever arrive: sleep out the timeout.
                std::thread::sleep(cap(left, 100));
                continue;
            }
            if self.last_traffic.elapsed() < NAP_WINDOW {
                // A gap between the kernel's bursts, not idleness: nap on a timer.
                // A thread asleep on the socket makes every kernel flush pay a
                // wake-up on the CPU that copies the packets; the rings buffer
                // the nap.
                std::thread::sleep(left.map_or(NAP, |l| l.min(NAP)));
                continue;
            }
            self.link.poll(true, false, left).map_err(wakeup_error)?;
            spins = SPINS / 2;
        }
    }

    /// FILL ran dry and the pool had nothing for it: no packet can arrive until a
    /// frame comes back.
    #[inline]
    pub(crate) fn is_starving(&self) -> bool {
        self.fill.is_some() && self.fill_target > 0 && self.outstanding() == 0
    }

    /// One step out of starvation: reap COMPLETION (`Tx` may be idle), kick TX
    /// (frames may sit there unkicked), or register `waker` for the next frame the
    /// application drops.
    pub(crate) fn starving_step(&mut self, waker: &Waker) -> Starving {
        if self.link.reap(&self.pool) > 0 {
            return Starving::Retry;
        }
        if self.link.tx_in_flight() > 0 {
            let _ = self.link.device.kick_tx();
            return Starving::Soon;
        }
        self.pool.waiter.arm(waker);
        if !self.pool.is_empty() {
            self.pool.waiter.disarm();
            return Starving::Retry;
        }
        Starving::Wait
    }

    /// Where every frame of this socket is (see [`FrameCounts`]). Exact when
    /// neither handle is inside a call; `user` counts the frames the application
    /// holds.
    pub fn frame_counts(&mut self) -> FrameCounts {
        if let Some(rx) = self.rx.as_mut() {
            let ready = rx.available(u32::MAX) as u64;
            self.link.census.note_rx(rx.consumed(), Some(ready));
        }
        self.link.frame_counts(&self.pool)
    }

    /// Packets taken off RX so far.
    pub fn received(&self) -> u64 {
        self.rx.as_ref().map_or(0, |r| r.consumed())
    }

    /// Kernel statistics of the socket (`XDP_STATISTICS`).
    ///
    /// # Errors
    /// [`Error::Kernel`] (stage `Query`).
    pub fn statistics(&self) -> Result<XskStats> {
        self.link
            .device
            .statistics()
            .map_err(|e| Error::kernel(Stage::Query, e))
    }

    /// The embedded program's counters for this queue (`None` without a program).
    ///
    /// # Errors
    /// As [`Flux::program_counters`](crate::Flux::program_counters).
    pub fn program_counters(&self) -> Result<Option<ProgramCounters>> {
        self.link.program_counters()
    }

    /// What set-up did and why.
    pub fn report(&self) -> &SetupReport {
        &self.link.report
    }

    /// The device (kicks, wake-ups, statistics).
    pub fn device(&self) -> &crate::Device {
        &self.link.device
    }

    /// The device under the socket, as the watch last saw it (one atomic load).
    pub fn device_status(&self) -> crate::DeviceStatus {
        self.link.device_status()
    }

    /// `Err(Error::Device)` once the device failed.
    #[cfg(feature = "async")]
    pub(crate) fn check_device(&self) -> Result<()> {
        self.link.check_device()
    }

    /// Registers `waker` to be woken when the device fails.
    #[cfg(all(feature = "async", target_os = "linux"))]
    pub(crate) fn register_device_waker(&self, waker: &std::task::Waker) {
        self.link.register_device_waker(waker);
    }
}

/// How long after the last packet a blocking receive naps instead of polling.
const NAP_WINDOW: Duration = Duration::from_millis(1);
/// One nap.
const NAP: Duration = Duration::from_micros(100);

fn cap(left: Option<Duration>, ms: u64) -> Duration {
    let c = Duration::from_millis(ms);
    left.map_or(c, |l| l.min(c))
}
