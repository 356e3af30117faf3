//! System mode: a socket split into an [`Rx`] and a [`Tx`] handle that hand out
//! owned [`Frame`]s, with blocking calls; with the `async` feature the same handles
//! as tokio futures ([`tokio`]).
//!
//! ```no_run
//! # fn main() -> Result<(), fluxcapacitor::Error> {
//! use std::time::Duration;
//! use fluxcapacitor::FluxBuilder;
//!
//! let (mut rx, mut tx) = FluxBuilder::new("veth0").build()?.split();
//! while let Some(mut frame) = rx.recv_timeout(Duration::from_secs(1))? {
//!     if frame.len() >= 12 {
//!         // Swap the MACs and send the very same buffer back: no copy.
//!         let (dst, src) = frame[..12].split_at_mut(6);
//!         dst.swap_with_slice(src);
//!         if let Err(e) = tx.try_send(frame) {
//!             drop(e.into_frame()); // TX full: the frame comes back; drop = recycle
//!         }
//!     } // a frame dropped here returns to the pool by itself
//!     tx.flush()?;
//! }
//! # Ok(()) }
//! ```
//!
//! ## Ownership and threads
//!
//! | type | `Send` | `Sync` | why |
//! |------|--------|--------|-----|
//! | [`Rx`] | yes | no | owns RX and FILL (single-consumer / single-producer rings) |
//! | [`Tx`] | yes | no | owns TX; COMPLETION sits behind a mutex shared with `Rx` |
//! | [`Frame`] | yes | yes | owns one chunk; `&mut` for writes |
//! | `AsyncRx` / `AsyncTx` | yes | no | as `Rx` / `Tx` |
//!
//! `Rx` and `Tx` may live on different threads. The free frames are a lock-free
//! stack shared by both handles and every frame; each frame holds an `Arc` of it
//! (and of the UMEM), so the memory outlives the handles. The socket, its rings
//! and the XDP program go away when *both* handles are dropped; frames still held
//! then stay valid (and simply return to the orphaned pool when dropped).
//!
//! Where every frame is: free (pool), FILL, RX, application, TX, COMPLETION.
//! [`Rx::frame_counts`] / [`Tx::frame_counts`] give that census.
//!
//! ## Costs
//!
//! | operation | cost |
//! |-----------|------|
//! | [`Rx::try_recv`], [`Rx::recv_batch`] | ring reads; one FILL refill per 64 frames (one CAS on the pool); no system call unless the kernel asked for a FILL wake-up |
//! | [`Rx::recv_timeout`] / [`Rx::recv`] on an empty ring | 32 spins, then `poll(2)` |
//! | dropping a [`Frame`] | one CAS on the pool |
//! | [`Tx::try_send`] | a ring write; a `sendto(2)` kick per `tx_budget` (32) frames and COMPLETION reaped then (one lock, one CAS) |
//! | [`Tx::flush`] | kicks until the kernel has taken all of TX |
//! | [`Tx::alloc`] | one CAS on the pool |
//!
//! Frames dropped by the application go back to the pool; they return to FILL on
//! the `Rx` side's next receive. Copy-mode TX only moves inside a kick: call
//! [`Tx::flush`] after a burst of sends (every `tx_budget` sends kick by themselves).

mod frame;
mod rx;
mod tx;

// tokio glue: Linux only (it waits on the socket's descriptor with `AsyncFd`).
#[cfg(all(feature = "async", target_os = "linux"))]
mod napper;
#[cfg(all(feature = "async", target_os = "linux"))]
pub mod tokio;

use std::fmt;
use std::sync::{Arc, Mutex};

pub use frame::Frame;
pub use rx::Rx;
pub use tx::{SendError, SendFailure, Tx};

use crate::device::Device;
use crate::driver::{self, TxUse};
use crate::flux::{Flux, SetupReport};
use crate::ring::CompletionRing;
use crate::umem::{Census, FrameCounts, FramePool};

/// Frames handed to FILL per refill at least (unless FILL runs dry).
const REFILL_BATCH: u64 = 64;
/// Empty polls of the rings before a blocking call sleeps in `poll(2)`.
const SPINS: u32 = 32;

impl Flux {
    /// Splits the socket into its receiving and sending halves (system mode).
    ///
    /// The frames this `Flux` owns are in a pool shared by both handles. The frames
    /// lent to the kernel (FILL and RX) are kept at `min(FILL + RX size, frames -
    /// min(frames / 2, TX size))` (the rest is for [`Tx::alloc`]), the rule of the
    /// ring driver every mode shares.
    /// A socket that shares another's queue (no FILL ring of its own) receives
    /// into the owner's frames and has nothing to refill.
    pub fn split(self) -> (Rx, Tx) {
        split(self)
    }
}

/// Splits `flux` into an [`Rx`] and a [`Tx`]; see [`Flux::split`].
pub fn split(mut flux: Flux) -> (Rx, Tx) {
    let pool = flux.pool.clone();
    let total = pool.total();
    let fill = flux.rings.fill.take();
    let completion = flux.rings.completion.take();
    let rxr = flux.rings.rx.take();
    let txr = flux.rings.tx.take();
    let report = flux.report().clone();
    let tx = match txr.as_ref().map_or(0, |t| t.size()) {
        0 => TxUse::None,
        tx_size => TxUse::Generate { tx_size },
    };
    let fill_target = match (&fill, &rxr) {
        (Some(f), Some(r)) => driver::lend_target(total, f.size(), r.size(), tx) as u64,
        _ => 0,
    };
    let census = Census::default();
    if let Some(f) = &fill {
        census.note_fill(f.produced());
    }
    #[cfg(target_os = "linux")]
    let watch = flux.watch().cloned();
    let link = Arc::new(Link {
        device: flux.device.clone(),
        #[cfg(target_os = "linux")]
        watch,
        always_kick: !report.need_wakeup,
        report,
        completion: Mutex::new(completion),
        census,
        flux: Mutex::new(flux),
        tx_stamps: Mutex::new(TxStamps::default()),
    });
    let rx = Rx::new(link.clone(), pool.clone(), rxr, fill, fill_target);
    let tx = Tx::new(link, pool, txr);
    (rx, tx)
}

/// What both handles share: the socket (inside its `Flux`), COMPLETION, and the
/// counters each side publishes for the census.
pub(crate) struct Link {
    /// Program, socket and the rest of set-up; dropped with the last handle.
    /// Behind a mutex only to make `Link` `Sync`; never locked on the data path.
    flux: Mutex<Flux>,
    device: Device,
    /// The device watch (absent on a simulated device or with `watch_device(false)`).
    #[cfg(target_os = "linux")]
    watch: Option<Arc<crate::watch::Watch>>,
    report: SetupReport,
    /// Reaped by `Tx` (once per kick) and by a starving `Rx`.
    completion: Mutex<Option<CompletionRing>>,
    census: Census,
    /// Bound without need_wakeup: TX must be kicked every time.
    always_kick: bool,
    /// TX completion timestamps asked for and not yet taken (TX metadata only).
    tx_stamps: Mutex<TxStamps>,
}

/// Frames sent with a completion-timestamp request, and the timestamps of those
/// completed.
#[derive(Debug, Default)]
struct TxStamps {
    /// Descriptor addresses of packets on TX / COMPLETION with a request.
    pending: std::collections::HashSet<u64>,
    done: Vec<crate::meta::TxTimestamp>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("ifname", &self.report.ifname)
            .field("queue", &self.report.queue)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// `Err(Error::Device)` once the device failed; one relaxed load.
    #[inline]
    fn check_device(&self) -> crate::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(w) = &self.watch {
            return w.check();
        }
        Ok(())
    }

    /// The device failure, if there was one.
    #[inline]
    fn device_failure(&self) -> Option<crate::watch::DeviceError> {
        #[cfg(target_os = "linux")]
        if let Some(w) = self.watch.as_ref().filter(|w| w.failed()) {
            return w.error();
        }
        None
    }

    /// Wakes `waker` when the device fails.
    #[cfg(all(feature = "async", target_os = "linux"))]
    fn register_device_waker(&self, waker: &std::task::Waker) {
        if let Some(w) = &self.watch {
            w.register_waker(waker);
        }
    }

    /// The device as last seen.
    fn device_status(&self) -> crate::watch::DeviceStatus {
        #[cfg(target_os = "linux")]
        if let Some(w) = &self.watch {
            return w.status();
        }
        crate::watch::DeviceStatus::Unwatched
    }

    /// Waits on the socket for `rx` / `tx` readiness up to `timeout`, and wakes early
    /// when the device fails.
    fn poll(
        &self,
        rx: bool,
        tx: bool,
        timeout: Option<std::time::Duration>,
    ) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        if let (Some(w), Some(fd)) = (&self.watch, self.device.poll_fd()) {
            use std::os::fd::AsRawFd;
            let mut ev = 0;
            if rx {
                ev |= libc::POLLIN;
            }
            if tx {
                ev |= libc::POLLOUT;
            }
            let mut fds = [
                libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: ev,
                    revents: 0,
                },
                libc::pollfd {
                    fd: w.event_fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            crate::sys::poll_many(&mut fds, timeout)?;
            if fds[0].revents & (libc::POLLERR | libc::POLLHUP) != 0 && !w.failed() {
                // The socket lost its device; the watch names the event in a moment.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Ok(());
        }
        self.device.poll(rx, tx, timeout).map(drop)
    }

    /// Completed TX frames back to the pool (one lock, one CAS); returns how many.
    fn reap(&self, pool: &FramePool) -> u32 {
        let mut guard = self.completion.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = guard.as_mut() else {
            return 0;
        };
        let umem = pool.umem();
        if umem.tx_metadata() {
            let mut st = self.tx_stamps.lock().unwrap_or_else(|e| e.into_inner());
            if !st.pending.is_empty() {
                // Timestamps asked for: read each before its frame goes back.
                let st = &mut *st;
                let mut chain = pool.chain();
                let n = c.consume(u32::MAX, |addr| {
                    if st.pending.remove(&addr) {
                        if let Some(ns) = umem.take_tx_timestamp(addr) {
                            st.done.push(crate::meta::TxTimestamp { addr, ns });
                        }
                    }
                    chain.add(addr);
                });
                chain.push();
                self.census.note_completion(c.consumed(), 0);
                return n;
            }
        }
        let n = driver::reap(c, pool);
        self.census.note_completion(c.consumed(), 0);
        n
    }

    /// Notes that the packet at `addr` went on TX with a timestamp request.
    fn expect_tx_timestamp(&self, addr: u64) {
        let mut st = self.tx_stamps.lock().unwrap_or_else(|e| e.into_inner());
        st.pending.insert(addr);
    }

    /// Moves the completion timestamps gathered so far into `out`.
    fn take_tx_timestamps(&self, out: &mut Vec<crate::meta::TxTimestamp>) -> usize {
        let mut st = self.tx_stamps.lock().unwrap_or_else(|e| e.into_inner());
        let n = st.done.len();
        out.append(&mut st.done);
        n
    }

    /// TX frames in flight (on TX or COMPLETION), as last published.
    fn tx_in_flight(&self) -> u64 {
        self.census.tx_in_flight()
    }

    /// The census from the published counters, refreshing COMPLETION's.
    fn frame_counts(&self, pool: &FramePool) -> FrameCounts {
        {
            let mut guard = self.completion.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = guard.as_mut() {
                let ready = c.available(u32::MAX) as u64;
                self.census.note_completion(c.consumed(), ready);
            }
        }
        FrameCounts::of(pool.total(), pool.len(), self.census.totals())
    }

    fn program_counters(&self) -> crate::Result<Option<crate::ProgramCounters>> {
        self.flux
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .program_counters()
    }
}

// The thread-safety promises above, checked at compile time.
const _: () = {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    #[allow(dead_code)]
    fn check() {
        send::<Rx>();
        send::<Tx>();
        send::<Frame>();
        sync::<Frame>();
        send::<SendError>();
        #[cfg(all(feature = "async", target_os = "linux"))]
        {
            send::<tokio::AsyncRx>();
            send::<tokio::AsyncTx>();
        }
    }
};

/// Pins the calling thread to one CPU (for the thread that runs an [`Rx`] or [`Tx`]
/// loop; the engine pins its workers itself with `pin_cpus`).
///
/// # Errors
/// [`Error::Kernel`](crate::Error::Kernel) (stage `SocketOption`) when the CPU is
/// not online or not allowed.
#[cfg(target_os = "linux")]
pub fn pin_current_thread(cpu: usize) -> crate::Result<()> {
    crate::sys::pin_current_thread(cpu).map_err(|e| crate::Error::Kernel {
        stage: crate::Stage::SocketOption,
        hint: Some("CPU pinning failed: is that CPU online and allowed?"),
        source: e,
    })
}

fn wakeup_error(e: std::io::Error) -> crate::Error {
    crate::Error::kernel(crate::Stage::Wakeup, e)
}
