//! The napper: one process-wide thread that waits on behalf of async receivers
//! ([`AsyncRx`](super::tokio::AsyncRx) with [`AsyncIdle::Napper`](super::tokio::AsyncIdle)),
//! so that a tokio task waiting for packets neither blocks its executor thread (a
//! `thread::sleep` would) nor has the runtime woken by every kernel flush.
//!
//! Why a thread: an AF_XDP socket registered with the runtime's epoll sits on the
//! socket's wait queue for as long as it is registered, so every flush of a packet
//! batch (`sock_def_readable`) wakes a parked runtime — an inter-processor interrupt
//! on the CPU that copies the packets, the bottleneck, and a few packets per
//! wake-up. A receiver in the gaps of a stream instead asks for a wake-up after a
//! short nap (the rings buffer it; tokio's timer, at 1 ms, is too coarse), and a
//! receiver that has gone idle asks to be woken when its socket turns readable:
//! only then does anybody sleep on the socket. The thread sleeps in `ppoll(2)` on
//! those sockets and its own eventfd: no busy core, no timer when nothing waits.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::sys;

/// Wake-ups within this much of each other are served by one.
const COALESCE: Duration = Duration::from_micros(20);

#[derive(Default)]
struct State {
    /// Wakers to wake at a time.
    naps: Vec<(Instant, Waker)>,
    /// Wakers to wake when their socket turns readable (or fails).
    idle: Vec<(Arc<OwnedFd>, Waker)>,
    /// When the thread's current wait ends (`None`: it waits for its eventfd).
    sleeping_until: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    /// Interrupts the thread's wait when the set of waiters changes.
    event: OwnedFd,
}

static NAPPER: OnceLock<Option<&'static Shared>> = OnceLock::new();

fn shared() -> Option<&'static Shared> {
    *NAPPER.get_or_init(|| {
        let event = sys::eventfd().ok()?;
        let s: &'static Shared = Box::leak(Box::new(Shared {
            state: Mutex::new(State::default()),
            event,
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
    let Ok(mut st) = s.state.lock() else {
        return false;
    };
    let at = Instant::now() + nap;
    if let Some(e) = st.naps.iter_mut().find(|(_, w)| w.will_wake(waker)) {
        e.0 = e.0.min(at);
    } else {
        st.naps.push((at, waker.clone()));
    }
    // Interrupt the wait only if it would end too late for this nap.
    let late = st.sleeping_until.is_none_or(|u| u > at + COALESCE);
    drop(st);
    if late {
        let _ = sys::eventfd_signal(s.event.as_fd());
    }
    true
}

/// A receiver's duplicate of its socket fd for idle waits; dropping it withdraws
/// every wait on it (and the napper lets go of its reference at once).
#[derive(Debug)]
pub(crate) struct IdleFd(Arc<OwnedFd>);

impl IdleFd {
    pub(crate) fn new(fd: OwnedFd) -> IdleFd {
        IdleFd(Arc::new(fd))
    }

    /// Wakes `waker` once the socket is readable (or in error). Returns false
    /// where no napper thread could be started.
    pub(crate) fn wake_when_readable(&self, waker: &Waker) -> bool {
        wake_when_readable(&self.0, waker)
    }
}

impl Drop for IdleFd {
    fn drop(&mut self) {
        forget(&self.0);
    }
}

/// Wakes `waker` once `fd` is readable (or in error). Returns false where no
/// napper thread could be started.
fn wake_when_readable(fd: &Arc<OwnedFd>, waker: &Waker) -> bool {
    let Some(s) = shared() else {
        return false;
    };
    let Ok(mut st) = s.state.lock() else {
        return false;
    };
    if let Some(e) = st
        .idle
        .iter_mut()
        .find(|(f, _)| f.as_raw_fd() == fd.as_raw_fd())
    {
        e.1.clone_from(waker);
    } else {
        st.idle.push((fd.clone(), waker.clone()));
    }
    drop(st);
    let _ = sys::eventfd_signal(s.event.as_fd());
    true
}

/// Forgets every wait on `fd` (its receiver is going away) and interrupts the
/// thread's wait, so that its reference to the fd goes too.
fn forget(fd: &Arc<OwnedFd>) {
    if let Some(Some(s)) = NAPPER.get() {
        if let Ok(mut st) = s.state.lock() {
            st.idle.retain(|(f, _)| !Arc::ptr_eq(f, fd));
        }
        let _ = sys::eventfd_signal(s.event.as_fd());
    }
}

fn run(s: &'static Shared) {
    let mut ready: Vec<Waker> = Vec::with_capacity(16);
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(8);
    let mut polled: Vec<Arc<OwnedFd>> = Vec::with_capacity(8);
    loop {
        let timeout = {
            let Ok(mut st) = s.state.lock() else { return };
            let now = Instant::now();
            let horizon = now + COALESCE;
            let mut i = 0;
            while i < st.naps.len() {
                if st.naps[i].0 <= horizon {
                    ready.push(st.naps.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
            let first = st.naps.iter().map(|(at, _)| *at).min();
            st.sleeping_until = first;
            fds.clear();
            polled.clear();
            fds.push(libc::pollfd {
                fd: s.event.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            for (f, _) in &st.idle {
                fds.push(libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                // Held until the wait is over: the fd cannot close under ppoll.
                polled.push(f.clone());
            }
            first.map(|f| f.saturating_duration_since(now))
        };
        for w in ready.drain(..) {
            w.wake();
        }
        if sys::ppoll_many(&mut fds, timeout).is_err() {
            // Nothing sensible to wait on: serve the naps by the clock alone.
            std::thread::sleep(Duration::from_micros(100));
        }
        if fds[0].revents != 0 {
            let _ = sys::eventfd_drain(s.event.as_fd());
        }
        if fds[1..].iter().any(|p| p.revents != 0) {
            let Ok(mut st) = s.state.lock() else { return };
            for (p, f) in fds[1..].iter().zip(&polled) {
                if p.revents == 0 {
                    continue;
                }
                if let Some(i) = st.idle.iter().position(|(g, _)| Arc::ptr_eq(g, f)) {
                    ready.push(st.idle.swap_remove(i).1);
                }
            }
            drop(st);
            for w in ready.drain(..) {
                w.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::task::Wake;

    struct Count(AtomicU32);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn wait_for(c: &Count, n: u32) {
        let t0 = Instant::now();
        while c.0.load(Ordering::SeqCst) < n {
            assert!(t0.elapsed() < Duration::from_secs(2), "never woken");
            std::thread::sleep(Duration::from_micros(50));
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
        wait_for(&c, 1);
        assert!(t0.elapsed() >= Duration::from_micros(180));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            c.0.load(Ordering::SeqCst),
            1,
            "merged registrations wake once"
        );
    }

    #[test]
    fn wakes_when_the_fd_turns_readable_and_not_before() {
        let fd = IdleFd::new(sys::eventfd().unwrap());
        let c = Arc::new(Count(AtomicU32::new(0)));
        let w = Waker::from(c.clone());
        assert!(fd.wake_when_readable(&w));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(c.0.load(Ordering::SeqCst), 0, "woken with nothing to read");
        sys::eventfd_signal(fd.0.as_fd()).unwrap();
        wait_for(&c, 1);
        // The registration is gone once served.
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        drop(fd);
    }
}
