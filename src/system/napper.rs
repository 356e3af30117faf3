//! The napper: one process-wide thread that wakes waiting async receivers after a
//! short nap, so that an [`AsyncRx`](super::tokio::AsyncRx) in the gaps of a packet
//! stream neither blocks its executor thread (a `thread::sleep` would) nor waits
//! for socket readiness (every kernel flush would then wake the runtime: an
//! inter-processor interrupt on the CPU that copies the packets, the bottleneck).
//! tokio's own timer has a 1 ms granularity, longer than the rings buffer at a few
//! Mpps, hence a thread of its own.
//!
//! The thread sleeps on a condition variable while nobody waits: no busy core, no
//! timer, when the receivers have gone idle (they then wait for readiness).

use std::sync::{Condvar, Mutex, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

struct Shared {
    /// Wakers with the time to wake them at.
    due: Mutex<Vec<(Instant, Waker)>>,
    /// Signalled when the list goes from empty to not empty.
    work: Condvar,
}

static NAPPER: OnceLock<Option<&'static Shared>> = OnceLock::new();

fn shared() -> Option<&'static Shared> {
    *NAPPER.get_or_init(|| {
        let s: &'static Shared = Box::leak(Box::new(Shared {
            due: Mutex::new(Vec::with_capacity(16)),
            work: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("flux-napper".into())
            .spawn(move || run(s))
            .ok()
            .map(|_| s)
    })
}

/// Wakes `waker` after `nap`. Returns false where no napper thread could be
/// started (the caller then yields instead).
pub(crate) fn wake_after(nap: Duration, waker: &Waker) -> bool {
    let Some(s) = shared() else {
        return false;
    };
    let Ok(mut due) = s.due.lock() else {
        return false;
    };
    let at = Instant::now() + nap;
    if let Some(e) = due.iter_mut().find(|(_, w)| w.will_wake(waker)) {
        // Already waiting: keep the earlier time.
        e.0 = e.0.min(at);
        return true;
    }
    let was_empty = due.is_empty();
    due.push((at, waker.clone()));
    drop(due);
    if was_empty {
        s.work.notify_one();
    }
    true
}

fn run(s: &'static Shared) {
    let mut ready: Vec<Waker> = Vec::with_capacity(16);
    loop {
        let Ok(mut due) = s.due.lock() else { return };
        while due.is_empty() {
            due = match s.work.wait(due) {
                Ok(g) => g,
                Err(_) => return,
            };
        }
        let now = Instant::now();
        let first = due.iter().map(|(at, _)| *at).min().unwrap_or(now);
        if first > now {
            drop(due);
            std::thread::sleep(first - now);
            continue;
        }
        // Wake everything due by now (and whatever is due within a sliver: one
        // sleep fewer for wakers registered moments apart).
        let horizon = now + Duration::from_micros(20);
        let mut i = 0;
        while i < due.len() {
            if due[i].0 <= horizon {
                ready.push(due.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        drop(due);
        for w in ready.drain(..) {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicU32);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_once_after_the_nap() {
        let c = Arc::new(Count(AtomicU32::new(0)));
        let w = Waker::from(c.clone());
        let t0 = Instant::now();
        assert!(wake_after(Duration::from_micros(200), &w));
        // A second registration of the same waker is merged.
        assert!(wake_after(Duration::from_micros(300), &w));
        while c.0.load(Ordering::SeqCst) == 0 {
            assert!(t0.elapsed() < Duration::from_secs(2), "never woken");
            std::thread::sleep(Duration::from_micros(50));
        }
        assert!(t0.elapsed() >= Duration::from_micros(180));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            c.0.load(Ordering::SeqCst),
            1,
            "merged registrations wake once"
        );
    }
}
