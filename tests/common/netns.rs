//! Running code inside a network namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

// ---------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------

/// Runs `f` on a fresh thread that first joins network namespace `ns`
/// (`setns(CLONE_NEWNET)` on `/var/run/netns/NS`), and returns its result.
/// `setns` only affects the calling thread, hence the thread. Panics in `f`
/// are propagated to the caller. Sockets created inside `f` stay bound to
/// `ns` and may be used from any thread afterwards.
pub fn in_netns<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let path = format!("/var/run/netns/{ns}");
    let handle = std::thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: valid fd for the duration of the call.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                panic!(
                    "setns({path}, CLONE_NEWNET): {}",
                    io::Error::last_os_error()
                );
            }
            drop(file);
            f()
        })
        .expect("spawn netns thread");
    match handle.join() {
        Ok(r) => r,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
