//! System mode on tokio: [`AsyncRx`] / [`AsyncTx`] over `AsyncFd`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fluxcapacitor::Error> {
//! use fluxcapacitor::FluxBuilder;
//! let (mut rx, mut tx) = FluxBuilder::new("veth0").build()?.split_async()?;
//! loop {
//!     let mut frame = rx.recv().await?;
//!     if frame.len() >= 12 {
//!         let (dst, src) = frame[..12].split_at_mut(6);
//!         dst.swap_with_slice(src);
//!         if let Err(e) = tx.send(frame).await {
//!             eprintln!("not sent: {e}"); // the frame is recycled when `e` drops
//!         }
//!         tx.flush().await?;
//!     }
//! }
//! # }
//! ```
//!
//! Readiness is only a hint: AF_XDP wakes the socket per batch, not per packet, and
//! readiness is not ring state. Every poll looks at the ring first; readiness is
//! cleared only after the ring was found empty under it, so no packet is missed.
//!
//! **Cancel safety.** [`AsyncRx::recv`] and [`AsyncRx::recv_batch`] are cancel-safe:
//! a frame is taken off RX only in the poll that returns it, so a `recv` dropped
//! by `tokio::select!` or a timeout loses nothing. [`AsyncTx::send`] owns the frame
//! while it waits; cancelling it drops the frame, which returns to the pool (never
//! a leak, but the packet is not sent). Use [`AsyncTx::poll_send_ready`] +
//! [`Tx::try_send`](super::Tx::try_send) to keep the frame across cancellation.
//!
//! Both types are `Send` and work on the multi-threaded runtime. There is no
//! `Stream` impl (it would need `futures-core`); wrap [`AsyncRx::poll_recv`] in
//! your own if you want one. A runtime with IO enabled is required (tokio's
//! `AsyncFd` panics without one; [`AsyncRx::new`] returns an error outside any
//! runtime).

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;

use super::rx::Starving;
use super::{wakeup_error, Frame, Rx, SendError, SendFailure, Tx};
use crate::error::Result;
use crate::flux::Flux;
use crate::umem::FrameCounts;
use crate::{Error, Stage};

/// A duplicate of the socket fd, registered with tokio for one direction: two
/// registrations of one fd in one epoll would collide.
#[derive(Debug)]
struct SockFd(OwnedFd);

impl AsRawFd for SockFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn check_runtime() -> Result<()> {
    if ::tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::Kernel {
            stage: Stage::Runtime,
            hint: Some("create async handles inside a tokio runtime (with IO enabled)"),
            source: io::Error::other("no tokio runtime"),
        });
    }
    Ok(())
}

fn register(device: &crate::Device, interest: Interest) -> Result<AsyncFd<SockFd>> {
    check_runtime()?;
    let fd = device.async_fd().ok_or_else(|| Error::Kernel {
        stage: Stage::Runtime,
        hint: Some("this device has no descriptor for an async reactor"),
        source: io::Error::from(io::ErrorKind::Unsupported),
    })?;
    let dup = fd
        .try_clone_to_owned()
        .map_err(|e| Error::kernel(Stage::Runtime, e))?;
    // `with_interest` is deprecated because an arbitrary `AsRawFd` may return a
    // different or closed fd later; `SockFd` owns its fd and always returns it, which
    // is the contract the unsafe replacement asks for (and unsafe stays out of here).
    #[allow(deprecated)]
    let io = AsyncFd::with_interest(SockFd(dup), interest);
    io.map_err(|e| Error::kernel(Stage::Runtime, e))
}

impl Flux {
    /// Splits the socket into tokio handles; see [`Flux::split`] and [`split`].
    ///
    /// # Errors
    /// As [`split`].
    pub fn split_async(self) -> Result<(AsyncRx, AsyncTx)> {
        split(self)
    }
}

/// Splits `flux` into an [`AsyncRx`] and an [`AsyncTx`]. Call it inside a tokio
/// runtime with IO enabled.
///
/// # Errors
/// [`Error::Kernel`] (stage `Wakeup`) outside a runtime or when registering the
/// socket with tokio fails.
pub fn split(flux: Flux) -> Result<(AsyncRx, AsyncTx)> {
    let (rx, tx) = flux.split();
    Ok((AsyncRx::new(rx)?, AsyncTx::new(tx)?))
}

/// [`Rx`] on tokio. `Send`; receiving needs `&mut self`.
#[derive(Debug)]
pub struct AsyncRx {
    /// The socket registered with the runtime, once a mode that waits for tokio's
    /// readiness needs it (never with [`AsyncIdle::Napper`] on a kernel socket).
    io: Option<AsyncFd<SockFd>>,
    /// A duplicate of the socket fd for the napper's idle wait (kernel sockets).
    napper_fd: Option<super::napper::IdleFd>,
    rx: Rx,
    /// What an empty receive does right after traffic.
    idle: AsyncIdle,
    /// When the ring last went empty after traffic.
    last_traffic: Instant,
    had_traffic: bool,
}

/// Ring polls before an empty receive yields or waits for readiness.
const SPINS: u32 = 8;

/// What an empty [`AsyncRx`] receive does in the gaps of a packet stream (see
/// [`AsyncRx::set_idle`]). Outside the window after the last packet it always
/// waits for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncIdle {
    /// For `window` after the last packet, the task waits and the library's napper
    /// thread (one per process, asleep while nobody waits) wakes it after `nap` to
    /// look again — the engine's idle policy without blocking the executor thread:
    /// the rings buffer the nap, the receive CPU pays no wake-up per kernel flush.
    /// After the window it waits for readiness: no busy core when idle. The
    /// default, with a 1 ms window and 100 µs naps (as the engine).
    Napper {
        /// How long after the last packet.
        window: Duration,
        /// One nap.
        nap: Duration,
    },
    /// Wait for readiness as soon as the ring is empty: pure async, no busy
    /// core, no other thread. Under a steady stream every kernel flush then wakes
    /// the runtime (an inter-processor interrupt on the CPU that copies the
    /// packets, and a few packets per wake-up), which caps the rate.
    Readiness,
    /// For `window` after the last packet, yield to the scheduler and look again
    /// (like `SO_BUSY_POLL`): no wake-ups, but a busy core, and the constant ring
    /// polling contends with the kernel's writes.
    Yield {
        /// How long after the last packet.
        window: Duration,
    },
    /// For `window` after the last packet, put the thread to sleep for `nap`
    /// between looks: no wake-ups and little CPU, as the engine does. The nap
    /// *blocks the executor thread*: use it where the runtime (or worker) is
    /// dedicated to this socket, and keep `nap` well under the time the rings
    /// take to fill.
    Nap {
        /// How long after the last packet.
        window: Duration,
        /// One sleep.
        nap: Duration,
    },
}

impl Default for AsyncIdle {
    fn default() -> Self {
        AsyncIdle::Napper {
            window: Duration::from_millis(1),
            nap: Duration::from_micros(100),
        }
    }
}

impl AsyncRx {
    /// Registers `rx`'s socket (a duplicate fd) with the current runtime for reading.
    ///
    /// # Errors
    /// As [`split`].
    pub fn new(rx: Rx) -> Result<AsyncRx> {
        let napper_fd = match rx.device().socket() {
            Some(fd) => Some(super::napper::IdleFd::new(
                fd.try_clone_to_owned()
                    .map_err(|e| Error::kernel(Stage::Runtime, e))?,
            )),
            None => None,
        };
        // Register with the runtime now unless the default never needs it: the
        // runtime check (and its error) comes at construction either way.
        let io = if napper_fd.is_some() {
            check_runtime()?;
            None
        } else {
            Some(register(rx.device(), Interest::READABLE)?)
        };
        Ok(AsyncRx {
            io,
            napper_fd,
            rx,
            idle: AsyncIdle::default(),
            last_traffic: Instant::now(),
            had_traffic: false,
        })
    }

    /// What an empty receive does right after traffic (default
    /// [`AsyncIdle::Napper`], 1 ms window, 100 µs naps).
    pub fn set_idle(&mut self, idle: AsyncIdle) {
        self.idle = idle;
    }

    /// Polls for one packet; the building block of [`AsyncRx::recv`] (and of a
    /// `Stream`, if you want one). A frame leaves RX only when this returns it.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame>> {
        self.poll_with(cx, |rx| rx.take_one())
    }

    /// Polls for a batch: appends up to `max` packets to `out` once at least one is
    /// there; returns how many.
    pub fn poll_recv_batch(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Frame>,
        max: usize,
    ) -> Poll<Result<usize>> {
        self.poll_with(cx, |rx| match rx.take_batch(out, max) {
            0 => None,
            n => Some(n),
        })
    }

    fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut attempt: impl FnMut(&mut Rx) -> Option<T>,
    ) -> Poll<Result<T>> {
        loop {
            if let Err(e) = self.rx.check_device() {
                return Poll::Ready(Err(e));
            }
            for _ in 0..SPINS {
                if let Some(v) = attempt(&mut self.rx) {
                    self.had_traffic = true;
                    return Poll::Ready(Ok(v));
                }
                std::hint::spin_loop();
            }
            let window = match self.idle {
                AsyncIdle::Readiness => Duration::ZERO,
                AsyncIdle::Yield { window }
                | AsyncIdle::Nap { window, .. }
                | AsyncIdle::Napper { window, .. } => window,
            };
            if !window.is_zero() {
                if std::mem::take(&mut self.had_traffic) {
                    self.last_traffic = Instant::now();
                }
                if self.last_traffic.elapsed() < window {
                    match self.idle {
                        AsyncIdle::Nap { nap, .. } => {
                            std::thread::sleep(nap);
                            continue;
                        }
                        AsyncIdle::Napper { nap, .. }
                            if super::napper::wake_after(nap, cx.waker()) =>
                        {
                            return Poll::Pending;
                        }
                        _ => {
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                }
            }
            if self.rx.is_starving() {
                match self.rx.starving_step(cx.waker()) {
                    Starving::Retry => continue,
                    Starving::Soon => {
                        // Frames are completing on TX; nothing signals that: yield.
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Starving::Wait => return self.pending(cx),
                }
            }
            if let (AsyncIdle::Napper { .. }, Some(fd)) = (self.idle, &self.napper_fd) {
                // Idle: the napper sleeps on the socket for us (level-triggered: a
                // packet that landed since the last look wakes us at once).
                if fd.wake_when_readable(cx.waker()) {
                    return self.pending(cx);
                }
            }
            if self.io.is_none() {
                match register(self.rx.device(), Interest::READABLE) {
                    Ok(io) => self.io = Some(io),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            let Some(io) = self.io.as_ref() else {
                return self.pending(cx);
            };
            let mut guard = match io.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(wakeup_error(e))),
                Poll::Pending => return self.pending(cx),
            };
            // Readiness is a hint: look at the ring under it, and clear it only when
            // the ring is empty (a packet published after this check raises a new
            // event that `clear_ready` does not swallow).
            if let Some(v) = attempt(&mut self.rx) {
                return Poll::Ready(Ok(v));
            }
            guard.clear_ready();
        }
    }

    /// Pending, with the task woken also when the device fails (and ready with that
    /// failure if it happened meanwhile).
    fn pending<T>(&self, cx: &mut Context<'_>) -> Poll<Result<T>> {
        self.rx.register_device_waker(cx.waker());
        match self.rx.check_device() {
            Err(e) => Poll::Ready(Err(e)),
            Ok(()) => Poll::Pending,
        }
    }

    /// Waits for one packet. Cancel-safe.
    ///
    /// # Errors
    /// [`Error::Device`] once the device failed under the socket (a waiting
    /// receive resolves to it at once); [`Error::Kernel`] (stage `Wakeup`) when the
    /// reactor fails.
    pub async fn recv(&mut self) -> Result<Frame> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Waits for at least one packet and appends up to `max` to `out`; returns how
    /// many. Cancel-safe: `out` is touched only when this completes.
    ///
    /// # Errors
    /// As [`AsyncRx::recv`].
    pub async fn recv_batch(&mut self, out: &mut Vec<Frame>, max: usize) -> Result<usize> {
        poll_fn(|cx| self.poll_recv_batch(cx, out, max)).await
    }

    /// [`Rx::try_recv`].
    ///
    /// # Errors
    /// As [`Rx::try_recv`].
    pub fn try_recv(&mut self) -> Result<Option<Frame>> {
        self.rx.try_recv()
    }

    /// [`Rx::frame_counts`].
    pub fn frame_counts(&mut self) -> FrameCounts {
        self.rx.frame_counts()
    }

    /// The blocking handle inside.
    pub fn get_ref(&self) -> &Rx {
        &self.rx
    }

    /// The blocking handle inside, mutable.
    pub fn get_mut(&mut self) -> &mut Rx {
        &mut self.rx
    }

    /// Deregisters from tokio and returns the blocking handle.
    pub fn into_inner(self) -> Rx {
        self.rx
    }
}

/// [`Tx`] on tokio. `Send`; sending needs `&mut self`.
#[derive(Debug)]
pub struct AsyncTx {
    io: AsyncFd<SockFd>,
    tx: Tx,
}

impl AsyncTx {
    /// Registers `tx`'s socket (a duplicate fd) with the current runtime for writing.
    ///
    /// # Errors
    /// As [`split`].
    pub fn new(tx: Tx) -> Result<AsyncTx> {
        Ok(AsyncTx {
            io: register(tx.device(), Interest::WRITABLE)?,
            tx,
        })
    }

    /// Ready when TX has room for a frame. When TX is full it reaps COMPLETION and
    /// kicks the kernel; if that frees nothing it waits for `POLLOUT` (zero-copy:
    /// the driver signals when it takes frames) or, in copy mode, where only kicks
    /// move TX and nothing signals, yields to the scheduler and kicks again.
    ///
    /// # Errors
    /// [`Error::Device`] once the device failed; [`Error::Kernel`] (stage `Wakeup`)
    /// when a kick or the reactor fails.
    pub fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_room(cx).map_err(|f| match f {
            SendFailure::Device(d) => Error::Device(d),
            SendFailure::Kernel(e) => wakeup_error(e),
            other => Error::kernel(Stage::Wakeup, io::Error::other(format!("{other:?}"))),
        })
    }

    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), SendFailure>> {
        loop {
            if let Some(d) = self.tx.device_failure() {
                return Poll::Ready(Err(SendFailure::Device(d)));
            }
            if self.tx.make_room().map_err(SendFailure::Kernel)? {
                return Poll::Ready(Ok(()));
            }
            if !self.tx.report().zero_copy {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut guard = match self.io.poll_write_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(SendFailure::Kernel(e))),
                Poll::Pending => {
                    self.tx.register_device_waker(cx.waker());
                    if let Some(d) = self.tx.device_failure() {
                        return Poll::Ready(Err(SendFailure::Device(d)));
                    }
                    return Poll::Pending;
                }
            };
            if self.tx.make_room().map_err(SendFailure::Kernel)? {
                return Poll::Ready(Ok(()));
            }
            guard.clear_ready();
        }
    }

    /// Queues `frame`, waiting for room on TX (never spinning on a full ring).
    /// Cancelling drops the frame back into the pool.
    ///
    /// # Errors
    /// As [`Tx::try_send`], except `Full`; the frame comes back in the error.
    pub async fn send(&mut self, frame: Frame) -> std::result::Result<(), SendError> {
        let mut frame = frame;
        loop {
            match self.tx.try_send(frame) {
                Ok(()) => return Ok(()),
                Err(e) if matches!(e.reason(), SendFailure::Full) => frame = e.into_frame(),
                Err(e) => return Err(e),
            }
            if let Err(reason) = poll_fn(|cx| self.poll_room(cx)).await {
                return Err(SendError::new(frame, reason));
            }
        }
    }

    /// Queues all of `frames` (draining the vector), waiting for room as
    /// [`AsyncTx::send`] does; returns how many were queued. Stops at a frame that
    /// cannot be sent at all (left at the front of `frames`).
    ///
    /// # Errors
    /// [`Error::Kernel`] (stage `Wakeup`) when waiting fails.
    pub async fn send_batch(&mut self, frames: &mut Vec<Frame>) -> Result<usize> {
        let mut total = 0;
        while !frames.is_empty() {
            let n = self.tx.send_batch(frames);
            total += n;
            if frames.is_empty() {
                break;
            }
            if n == 0 && self.tx.make_room().map_err(wakeup_error)? {
                // Room, yet nothing went: the front frame is unsendable.
                break;
            }
            poll_fn(|cx| self.poll_send_ready(cx)).await?;
        }
        Ok(total)
    }

    /// Hands everything on TX to the kernel (kicking as often as needed, yielding
    /// between kicks the device refused).
    ///
    /// # Errors
    /// [`Error::Kernel`] (stage `Wakeup`) when a kick fails.
    pub async fn flush(&mut self) -> Result<()> {
        let mut stalls = 0u32;
        loop {
            let pending = self.tx.flush()?;
            if pending == 0 {
                return Ok(());
            }
            stalls += 1;
            if stalls > 1000 {
                // The device takes nothing (link down?): give up for now; frames stay
                // queued and go with the next kick.
                return Ok(());
            }
            ::tokio::task::yield_now().await;
        }
    }

    /// [`Tx::try_send`].
    ///
    /// # Errors
    /// As [`Tx::try_send`].
    pub fn try_send(&mut self, frame: Frame) -> std::result::Result<(), SendError> {
        self.tx.try_send(frame)
    }

    /// [`Tx::alloc`].
    pub fn alloc(&mut self) -> Option<Frame> {
        self.tx.alloc()
    }

    /// [`Tx::frame_counts`].
    pub fn frame_counts(&mut self) -> FrameCounts {
        self.tx.frame_counts()
    }

    /// The blocking handle inside.
    pub fn get_ref(&self) -> &Tx {
        &self.tx
    }

    /// The blocking handle inside, mutable.
    pub fn get_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// Deregisters from tokio and returns the blocking handle.
    pub fn into_inner(self) -> Tx {
        self.tx
    }
}
