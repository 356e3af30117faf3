//! Stopping a running engine: a clonable handle, signals, and the first error.

#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[cfg(target_os = "linux")]
use crate::error::Stage;
use crate::error::{Error, Result};
#[cfg(target_os = "linux")]
use crate::sys;

/// A clonable, thread-safe handle that stops a running [`Engine`](super::Engine).
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
    pub(crate) fn new() -> Result<StopHandle> {
        #[cfg(target_os = "linux")]
        let event = sys::eventfd().map_err(|e| Error::kernel(Stage::Runtime, e))?;
        Ok(StopHandle(Arc::new(StopInner {
            stopped: AtomicBool::new(false),
            #[cfg(target_os = "linux")]
            event,
            error: Mutex::new(None),
        })))
    }

    /// Asks every worker to stop; [`Engine::run`](super::Engine::run) returns once they have drained.
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

    pub(crate) fn take_error(&self) -> Option<Error> {
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
            Error::kernel(Stage::Signal, std::io::Error::from_raw_os_error(e as i32))
        })?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("flux-signals".into())
            .spawn(move || {
                if set.wait().is_ok() {
                    me.stop();
                }
            })
            .map_err(|e| Error::kernel(Stage::Runtime, e))?;
        Ok(())
    }
}
