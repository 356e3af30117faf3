//! Live per-queue counters of a running engine.
//!
//! Each counter has exactly one writer (its worker), which publishes its local
//! totals with plain `Relaxed` stores once per loop turn: no atomic read-modify-write
//! on the data path. Readers on other threads see values at most one turn old.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::device::{Device, XskStats};
use crate::umem::FrameCounts;

macro_rules! counters {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {
        /// Counters of one queue (port) as plain numbers.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[$m])* pub $name: u64,)*
        }

        /// The shared, atomically published form of [`Counters`].
        #[derive(Debug, Default)]
        pub struct QueueStats {
            $($name: AtomicU64,)*
        }

        impl QueueStats {
            /// Publishes `c` (called by the owning worker only).
            pub(crate) fn publish(&self, c: &Counters) {
                // Relaxed: independent statistics, no data is published with them.
                $(self.$name.store(c.$name, Ordering::Relaxed);)*
            }
            /// Reads the counters.
            pub fn load(&self) -> Counters {
                Counters { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Packets received.
    rx_packets,
    /// Bytes received.
    rx_bytes,
    /// Packets put on TX (in-place verdicts, forwards arriving here, fresh frames).
    tx_packets,
    /// Bytes put on TX.
    tx_bytes,
    /// Packets the callback dropped (returned to FILL).
    verdict_drop,
    /// Packets the callback sent back out in place.
    verdict_tx,
    /// Packets the callback forwarded to another port.
    verdict_forward,
    /// Fresh frames the callback sent.
    fresh_tx,
    /// Frames dropped because TX stayed full.
    tx_ring_full,
    /// TX kicks (`sendto` syscalls).
    tx_kicks,
    /// RX/FILL wake-ups (`recvfrom` syscalls, busy-poll included).
    rx_wakeups,
    /// Blocking waits (`poll` syscalls).
    polls,
    /// Callback invocations.
    batches,
    /// Loop turns.
    turns,
    /// Frames the device dropped on transmit (copy mode `EBUSY`).
    device_drops,
    /// Multi-buffer packets received (each spanning several frames; counted in
    /// `rx_packets` too).
    rx_multi_buffer,
    /// Multi-buffer packets dropped because the port they were sent to is no
    /// multi-buffer socket (counted in `verdict_drop` too).
    tx_not_multi_buffer,
}

/// Counters of one queue plus the kernel's `XDP_STATISTICS`, at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Interface.
    pub ifname: String,
    /// Queue.
    pub queue: u32,
    /// Worker serving it.
    pub worker: usize,
    /// Engine counters.
    pub counters: Counters,
    /// Kernel counters (`None` if they could not be read).
    pub kernel: Option<XskStats>,
}

impl fmt::Display for QueueSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        write!(
            f,
            "{}:{} rx {} tx {} drop {} fwd {} kicks {} polls {} batches {} ({:.1} pkts each) turns {}",
            self.ifname,
            self.queue,
            c.rx_packets,
            c.tx_packets,
            c.verdict_drop,
            c.verdict_forward,
            c.tx_kicks,
            c.polls,
            c.batches,
            c.rx_packets as f64 / c.batches.max(1) as f64,
            c.turns
        )?;
        if let Some(k) = &self.kernel {
            write!(
                f,
                " | kernel rx_dropped {} rx_ring_full {} fill_empty {} tx_invalid {}",
                k.rx_dropped, k.rx_ring_full, k.rx_fill_ring_empty_descs, k.tx_invalid_descs
            )?;
        }
        Ok(())
    }
}

/// Where a queue's counters live, and how to read the kernel's.
#[derive(Debug, Clone)]
pub(crate) struct StatHandle {
    pub ifname: String,
    pub queue: u32,
    pub worker: usize,
    pub stats: Arc<QueueStats>,
    pub device: Device,
    #[cfg(target_os = "linux")]
    pub watch: Option<Arc<crate::watch::Watch>>,
}

impl StatHandle {
    pub(crate) fn snapshot(&self) -> QueueSnapshot {
        QueueSnapshot {
            ifname: self.ifname.clone(),
            queue: self.queue,
            worker: self.worker,
            counters: self.stats.load(),
            kernel: self.device.statistics().ok(),
        }
    }
}

/// Live statistics of an engine; clone it freely and read it from any thread.
#[derive(Debug, Clone)]
pub struct EngineStats {
    handles: Arc<Vec<StatHandle>>,
    /// The frame census of every worker once `run` has ended.
    finished: Arc<Mutex<Option<Vec<FrameCounts>>>>,
}

impl EngineStats {
    pub(crate) fn new(handles: Vec<StatHandle>) -> EngineStats {
        EngineStats {
            handles: Arc::new(handles),
            finished: Arc::new(Mutex::new(None)),
        }
    }

    pub(crate) fn set_final_frames(&self, frames: Vec<FrameCounts>) {
        *self.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some(frames);
    }

    /// Where every frame of each worker was when [`Engine::run`](super::Engine::run)
    /// ended — also when it ended with an error (a device that went away, a
    /// panicking callback), when there is no [`RunReport`](super::RunReport).
    /// `None` while it runs.
    pub fn final_frames(&self) -> Option<Vec<FrameCounts>> {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The device under each queue (port), as the watch last saw it: a link that is
    /// down and waited for ([`LinkDown::Wait`](crate::LinkDown::Wait)) shows here.
    pub fn device_status(&self) -> Vec<crate::DeviceStatus> {
        self.handles
            .iter()
            .map(|_h| {
                #[cfg(target_os = "linux")]
                if let Some(w) = &_h.watch {
                    return w.status();
                }
                crate::DeviceStatus::Unwatched
            })
            .collect()
    }

    /// Every queue's counters now.
    pub fn snapshot(&self) -> Vec<QueueSnapshot> {
        self.handles.iter().map(|h| h.snapshot()).collect()
    }

    /// The engine counters summed over all queues (no kernel statistics).
    pub fn total(&self) -> Counters {
        let mut t = Counters::default();
        for h in self.handles.iter() {
            let c = h.stats.load();
            t.rx_packets += c.rx_packets;
            t.rx_bytes += c.rx_bytes;
            t.tx_packets += c.tx_packets;
            t.tx_bytes += c.tx_bytes;
            t.verdict_drop += c.verdict_drop;
            t.verdict_tx += c.verdict_tx;
            t.verdict_forward += c.verdict_forward;
            t.fresh_tx += c.fresh_tx;
            t.tx_ring_full += c.tx_ring_full;
            t.tx_kicks += c.tx_kicks;
            t.rx_wakeups += c.rx_wakeups;
            t.polls += c.polls;
            t.batches += c.batches;
            t.turns += c.turns;
            t.device_drops += c.device_drops;
        }
        t
    }
}
