//! [`Tx`]: the sending half of a split socket.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{wakeup_error, Frame, Link};
use crate::driver::{self, KickPolicy};
use crate::error::{DescError, Result};
use crate::ring::TxRing;
use crate::umem::FrameCounts;
use crate::umem::FramePool;
use crate::SetupReport;

/// Why a frame was not sent. The frame itself comes back in the [`SendError`].
#[derive(Debug)]
#[non_exhaustive]
pub enum SendFailure {
    /// TX is full and a kick did not free a slot (try again after
    /// [`Tx::flush`], or use [`Tx::send_timeout`]).
    Full,
    /// The timeout passed before TX had room.
    Timeout,
    /// The frame belongs to another socket's pool (another UMEM).
    ForeignFrame,
    /// The socket was built without a TX ring.
    NoTxRing,
    /// The kernel would refuse the descriptor (for example a zero length).
    Invalid(DescError),
    /// A multi-buffer frame on a socket built without
    /// [`multi_buffer(true)`](crate::FluxBuilder::multi_buffer), or one with more
    /// fragments than TX holds.
    NotMultiBuffer,
    /// Kicking or polling the socket failed.
    Kernel(io::Error),
    /// The device failed under the socket (deleted, moved, down, program
    /// detached …; see [`crate::watch`]).
    Device(crate::watch::DeviceError),
}

/// A frame that was not sent, and why. Nothing is lost: take the frame back with
/// [`SendError::into_frame`] (or drop the error to recycle it).
pub struct SendError {
    frame: Frame,
    reason: SendFailure,
}

impl SendError {
    pub(crate) fn new(frame: Frame, reason: SendFailure) -> SendError {
        SendError { frame, reason }
    }
    /// Why.
    pub fn reason(&self) -> &SendFailure {
        &self.reason
    }
    /// TX was full (or stayed full until the timeout).
    pub fn is_full(&self) -> bool {
        matches!(self.reason, SendFailure::Full | SendFailure::Timeout)
    }
    /// The frame, to retry or drop.
    pub fn into_frame(self) -> Frame {
        self.frame
    }
    /// The frame and the reason.
    pub fn into_parts(self) -> (Frame, SendFailure) {
        (self.frame, self.reason)
    }
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("reason", &self.reason)
            .field("frame", &self.frame)
            .finish()
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            SendFailure::Full => write!(f, "TX ring full"),
            SendFailure::Timeout => write!(f, "timed out waiting for room on TX"),
            SendFailure::ForeignFrame => write!(f, "frame belongs to another UMEM"),
            SendFailure::NoTxRing => write!(f, "socket has no TX ring"),
            SendFailure::Invalid(e) => write!(f, "invalid TX descriptor: {e}"),
            SendFailure::NotMultiBuffer => write!(
                f,
                "a multi-buffer frame needs a socket built with multi_buffer(true) and a TX ring that holds all its fragments"
            ),
            SendFailure::Kernel(e) => write!(f, "TX wake-up failed: {e}"),
            SendFailure::Device(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.reason {
            SendFailure::Invalid(e) => Some(e),
            SendFailure::Kernel(e) => Some(e),
            SendFailure::Device(e) => Some(e),
            _ => None,
        }
    }
}

/// Kicks a flush tolerates that take nothing off TX (the device is busy) before it
/// returns with descriptors still queued.
const FLUSH_STALLS: u32 = 4;

/// The sending half of a split socket: owns TX, reaps COMPLETION.
///
/// [`Tx::try_send`] puts a frame on TX (zero-copy: a received frame goes out as
/// it is); every `tx_budget` (32) queued frames, and in [`Tx::flush`], it kicks the
/// kernel (`sendto`) and takes completed frames back into the pool. In copy mode
/// the kernel transmits only inside a kick, at most `tx_budget` frames per kick:
/// call [`Tx::flush`] after a burst. Dropping the `Tx` flushes.
///
/// `Send` (move it to the sending thread), not `Sync`.
#[derive(Debug)]
pub struct Tx {
    tx: Option<TxRing>,
    pool: Arc<FramePool>,
    link: Arc<Link>,
    budget: u32,
    /// Frames queued since the last kick.
    unkicked: u32,
}

impl Tx {
    pub(crate) fn new(link: Arc<Link>, pool: Arc<FramePool>, tx: Option<TxRing>) -> Tx {
        let budget = link.report.tx_budget.max(1);
        if let Some(t) = &tx {
            link.census.note_tx(t.produced());
        }
        Tx {
            tx,
            pool,
            link,
            budget,
            unkicked: 0,
        }
    }

    /// A fresh frame to fill and send (length 0, headroom as configured): write
    /// into [`Frame::buffer_mut`], then [`Frame::set_len`]. `None` when every frame
    /// is in use (completed TX frames are reaped first).
    pub fn alloc(&mut self) -> Option<Frame> {
        let i = match self.pool.pop() {
            Some(i) => i,
            None => {
                self.link.reap(&self.pool);
                self.pool.pop()?
            }
        };
        let off = self.pool.umem().data_offset();
        Some(Frame::new(self.pool.clone(), i, off, 0))
    }

    /// Up to `n` fresh frames appended to `out` (one pool operation); returns how
    /// many.
    pub fn alloc_batch(&mut self, out: &mut Vec<Frame>, n: usize) -> usize {
        let n = n.min(u32::MAX as usize) as u32;
        let off = self.pool.umem().data_offset();
        let pool = &self.pool;
        let mut got = pool.pop_batch(n, |i| out.push(Frame::new(pool.clone(), i, off, 0)));
        if got < n {
            self.link.reap(&self.pool);
            let pool = &self.pool;
            got += pool.pop_batch(n - got, |i| out.push(Frame::new(pool.clone(), i, off, 0)));
        }
        got as usize
    }

    /// Reaps COMPLETION and kicks TX if the kernel asks; returns whether the kernel
    /// took anything off TX.
    fn kick(&mut self) -> io::Result<bool> {
        self.unkicked = 0;
        self.link.reap(&self.pool);
        let Some(tx) = self.tx.as_ref() else {
            return Ok(false);
        };
        let before = tx.pending();
        let policy = KickPolicy {
            always: self.link.always_kick,
            ..KickPolicy::ONCE
        };
        let k = driver::kick(tx, &self.link.device, policy, || {})?;
        Ok(k.pending < before)
    }

    /// Moves the TX completion timestamps of packets sent with
    /// [`Frame::request_tx_timestamp`] and completed since the last call into `out`
    /// (completions are taken in by every send, flush and drain); returns how many.
    /// Each names the packet by its [`Frame::addr`] at send time. In copy mode the
    /// kernel stamps the completion itself (`CLOCK_TAI`, when the packet's skb is
    /// freed); in zero-copy mode the driver writes the device's timestamp, where it
    /// can.
    pub fn take_tx_timestamps(&mut self, out: &mut Vec<crate::meta::TxTimestamp>) -> usize {
        self.link.reap(&self.pool);
        self.link.take_tx_timestamps(out)
    }

    /// Free TX slots, refreshed from the kernel.
    #[inline]
    fn room(&mut self) -> u32 {
        self.room_for(1)
    }

    /// Free TX slots, refreshed from the kernel if fewer than `want` are known.
    #[inline]
    fn room_for(&mut self, want: u32) -> u32 {
        self.tx.as_mut().map_or(0, |t| t.free(want))
    }

    fn check(&self, frame: &Frame) -> std::result::Result<(), SendFailure> {
        if let Some(e) = self.link.device_failure() {
            return Err(SendFailure::Device(e));
        }
        if self.tx.is_none() {
            return Err(SendFailure::NoTxRing);
        }
        if !frame.is_of(&self.pool) {
            return Err(SendFailure::ForeignFrame);
        }
        let d = frame.desc();
        let umem = self.pool.umem();
        umem.check_tx(d.addr, d.len, d.options)
            .map_err(SendFailure::Invalid)?;
        if !frame.tx_metadata_fits() {
            return Err(SendFailure::Invalid(DescError::TxMetadata(
                "the packet ends before the field of its checksum request",
            )));
        }
        if frame.is_multi_buffer() {
            let fits = self
                .tx
                .as_ref()
                .is_some_and(|t| frame.frag_count() <= t.size() as usize);
            if !self.link.report.multi_buffer || !fits {
                return Err(SendFailure::NotMultiBuffer);
            }
            for d in frame.rest_descs() {
                umem.check_tx(d.addr, d.len, d.options)
                    .map_err(SendFailure::Invalid)?;
            }
        }
        Ok(())
    }

    /// Pushes a checked frame on TX (room must be there), every fragment of it.
    #[inline]
    fn push(&mut self, frame: Frame) -> std::result::Result<(), Frame> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(frame);
        };
        let n = frame.frag_count() as u32;
        let mut r = tx.reserve(n);
        let desc = frame.desc();
        if r.capacity() < n || r.push(desc).is_err() {
            return Err(frame);
        }
        if frame.wants_tx_timestamp() {
            self.link.expect_tx_timestamp(desc.addr);
        }
        for d in frame.rest_descs() {
            // Cannot fail: `n` slots are reserved.
            let _ = r.push(d);
        }
        r.commit();
        frame.into_ring();
        self.link.census.note_tx(tx.produced());
        self.unkicked += n;
        if self.unkicked >= self.budget {
            // Errors surface from the next flush; the frame is queued either way.
            let _ = self.kick();
        }
        Ok(())
    }

    /// Queues `frame` on TX without waiting. When TX is full it reaps and kicks
    /// once; if that frees no slot the frame comes back in the error.
    ///
    /// # Errors
    /// [`SendError`] with the frame: [`SendFailure::Full`], `ForeignFrame`,
    /// `Invalid`, `NoTxRing`, or `Kernel` when the kick failed.
    pub fn try_send(&mut self, frame: Frame) -> std::result::Result<(), SendError> {
        if let Err(reason) = self.check(&frame) {
            return Err(SendError::new(frame, reason));
        }
        let need = frame.frag_count() as u32;
        if self.room_for(need) < need {
            if let Err(e) = self.kick() {
                return Err(SendError::new(frame, SendFailure::Kernel(e)));
            }
            if self.room_for(need) < need {
                return Err(SendError::new(frame, SendFailure::Full));
            }
        }
        self.push(frame)
            .map_err(|f| SendError::new(f, SendFailure::Full))
    }

    /// Queues `frame`, waiting up to `timeout` for room on TX (in `poll(2)` for
    /// `POLLOUT`, which in copy mode also makes the kernel transmit).
    ///
    /// # Errors
    /// As [`Tx::try_send`], with [`SendFailure::Timeout`] instead of `Full`.
    pub fn send_timeout(
        &mut self,
        frame: Frame,
        timeout: Duration,
    ) -> std::result::Result<(), SendError> {
        self.send_until(frame, Instant::now().checked_add(timeout))
    }

    /// Queues `frame`, waiting as long as it takes for room on TX.
    ///
    /// # Errors
    /// As [`Tx::try_send`], except `Full`.
    pub fn send(&mut self, frame: Frame) -> std::result::Result<(), SendError> {
        self.send_until(frame, None)
    }

    fn send_until(
        &mut self,
        mut frame: Frame,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), SendError> {
        loop {
            match self.try_send(frame) {
                Ok(()) => return Ok(()),
                Err(e) if matches!(e.reason, SendFailure::Full) => frame = e.into_frame(),
                Err(e) => return Err(e),
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(l) if !l.is_zero() => l,
                    _ => return Err(SendError::new(frame, SendFailure::Timeout)),
                },
                None => Duration::from_millis(1),
            };
            // 1 ms slices: copy-mode completions raise no event to wait for.
            let slice = left.min(Duration::from_millis(1));
            if let Err(e) = self.link.poll(false, true, Some(slice)) {
                return Err(SendError::new(frame, SendFailure::Kernel(e)));
            }
        }
    }

    /// Queues frames from the front of `frames` until TX is full (reaping and
    /// kicking once when it is), removes the queued ones from the vector and kicks;
    /// returns how many were queued. Stops early at a frame that cannot be sent at
    /// all (another UMEM, invalid length): [`Tx::try_send`] it to learn why.
    pub fn send_batch(&mut self, frames: &mut Vec<Frame>) -> usize {
        let mut total = 0;
        for attempt in 0..2 {
            total += self.push_front(frames);
            if frames.is_empty() || attempt == 1 || self.room() > 0 {
                break;
            }
            // TX full: let the kernel work, take back what it finished, once more.
            let _ = self.kick();
        }
        if self.unkicked > 0 {
            let _ = self.kick();
        }
        total
    }

    /// Pushes sendable frames from the front of `frames` while TX has room.
    fn push_front(&mut self, frames: &mut Vec<Frame>) -> usize {
        let pool = &self.pool;
        let sg = self.link.report.multi_buffer;
        let Some(tx) = self.tx.as_mut() else {
            return 0;
        };
        let want: usize = if sg {
            frames.iter().map(Frame::frag_count).sum()
        } else {
            frames.len()
        };
        let mut r = tx.reserve(want.min(u32::MAX as usize) as u32);
        let mut n = 0;
        let mut descs = 0u32;
        for f in frames.iter() {
            let d = f.desc();
            if !f.is_of(pool)
                || pool.umem().check_tx(d.addr, d.len, d.options).is_err()
                || !f.tx_metadata_fits()
            {
                break;
            }
            if f.is_multi_buffer() {
                // Whole or not at all; `Tx::try_send` says why one cannot go.
                let k = f.frag_count() as u32;
                if !sg
                    || r.remaining() < k
                    || f.rest_descs()
                        .any(|d| pool.umem().check_tx(d.addr, d.len, d.options).is_err())
                {
                    break;
                }
                let _ = r.push(d);
                f.rest_descs().for_each(|d| {
                    let _ = r.push(d);
                });
                descs += k;
            } else {
                if r.push(d).is_err() {
                    break;
                }
                descs += 1;
            }
            n += 1;
        }
        r.commit();
        self.link.census.note_tx(tx.produced());
        for f in frames.drain(..n) {
            if f.wants_tx_timestamp() {
                self.link.expect_tx_timestamp(f.addr());
            }
            f.into_ring();
        }
        self.unkicked = self.unkicked.saturating_add(descs);
        n
    }

    /// Kicks until the kernel has taken everything on TX, or stops taking it (the
    /// device is busy); reaps COMPLETION. Returns the descriptors still on TX
    /// (0: all handed to the kernel).
    ///
    /// # Errors
    /// [`Error::Device`](crate::Error::Device) once the device failed;
    /// [`Error::Kernel`](crate::Error::Kernel) (stage `Wakeup`) when a kick fails.
    pub fn flush(&mut self) -> Result<u32> {
        self.link.check_device()?;
        self.unkicked = 0;
        let Some(tx) = self.tx.as_ref() else {
            return Ok(0);
        };
        let (link, pool) = (&self.link, &self.pool);
        let policy = KickPolicy {
            max_kicks: u32::MAX,
            max_stalls: FLUSH_STALLS,
            always: link.always_kick,
        };
        let k = driver::kick(tx, &link.device, policy, || {
            link.reap(pool);
        })
        .map_err(wakeup_error)?;
        link.reap(pool);
        Ok(k.pending)
    }

    /// Flushes and waits up to `timeout` until every sent frame has completed
    /// (left TX and COMPLETION, back in the pool). Returns whether it did.
    ///
    /// # Errors
    /// As [`Tx::flush`].
    pub fn drain(&mut self, timeout: Duration) -> Result<bool> {
        let link = self.link.clone();
        driver::drain(
            timeout,
            || {
                self.flush()?;
                self.link.reap(&self.pool);
                Ok(self.in_flight())
            },
            || {
                // A wait for TX room, which in copy mode also transmits.
                link.poll(false, true, Some(Duration::from_micros(200)))
                    .map_err(wakeup_error)
            },
        )
    }

    /// Descriptors on TX not yet taken by the kernel.
    pub fn pending(&self) -> u32 {
        self.tx.as_ref().map_or(0, |t| t.pending())
    }

    /// Frames sent and not yet reaped (on TX or COMPLETION).
    pub fn in_flight(&self) -> u64 {
        self.link.tx_in_flight()
    }

    /// Frames queued on TX so far.
    pub fn sent(&self) -> u64 {
        self.tx.as_ref().map_or(0, |t| t.produced())
    }

    /// Free frames in the pool now (what [`Tx::alloc`] can hand out).
    pub fn free_frames(&self) -> u32 {
        self.pool.len()
    }

    /// Where every frame of this socket is (see [`FrameCounts`]). The split
    /// between FILL and RX is as of the `Rx` side's last call; every other number
    /// is exact when neither handle is inside a call.
    pub fn frame_counts(&mut self) -> FrameCounts {
        self.link.frame_counts(&self.pool)
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

    /// The device failure, if there was one.
    #[cfg(feature = "async")]
    pub(crate) fn device_failure(&self) -> Option<crate::watch::DeviceError> {
        self.link.device_failure()
    }

    /// Registers `waker` to be woken when the device fails.
    #[cfg(all(feature = "async", target_os = "linux"))]
    pub(crate) fn register_device_waker(&self, waker: &std::task::Waker) {
        self.link.register_device_waker(waker);
    }

    /// Makes room on TX: reap, kick. Returns `Ok(true)` when there is room.
    #[cfg(feature = "async")]
    pub(crate) fn make_room(&mut self) -> io::Result<bool> {
        if self.room() > 0 {
            return Ok(true);
        }
        self.kick()?;
        Ok(self.room() > 0)
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        // Frames queued but never kicked would sit on TX forever in copy mode.
        let _ = self.flush();
    }
}
