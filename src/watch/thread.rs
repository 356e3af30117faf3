//! The watch thread and the registry of watched sockets (Linux).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{DeviceError, DeviceEvent, DeviceStatus, LinkDown, ETH_HLEN};
use crate::error::{Error, Result, Stage};
use crate::sys::{self, netlink};
use crate::xdp::AttachedMode;

/// How often every watched link is re-read (program changes raise no rtnetlink
/// notification; deletions and moves are seen at once).
pub(crate) const PERIOD: Duration = Duration::from_millis(200);

/// How long a link may be missing before it counts as deleted although no
/// notification said so (lost notifications).
const ANNOUNCE_GRACE: Duration = Duration::from_millis(300);

/// How often a missing link is looked at again while its notification is awaited.
const RECHECK: Duration = Duration::from_millis(10);

const OK: u8 = 0;
const DOWN: u8 = 1;
const FAILED: u8 = 2;

/// What a watched socket was set up with.
#[derive(Debug, Clone)]
pub(crate) struct WatchParams {
    pub ifname: String,
    pub ifindex: u32,
    pub queue: u32,
    /// Our program's id and mode, when we attached it.
    pub program: Option<(u32, AttachedMode)>,
    /// Largest packet a frame holds; `None` with multi-buffer.
    pub max_packet: Option<u32>,
    pub link_down: LinkDown,
}

/// The watch of one socket, shared by its handles.
#[derive(Debug)]
pub(crate) struct Watch {
    params: WatchParams,
    state: AtomicU8,
    failure: Mutex<Option<DeviceError>>,
    flaps: AtomicU64,
    /// Written once, at the failure; never drained, so every poller wakes.
    event: OwnedFd,
    wakers: Mutex<Vec<Waker>>,
}

impl Watch {
    /// Whether the device failed (one relaxed load: the data path's check).
    #[inline]
    pub(crate) fn failed(&self) -> bool {
        self.state.load(Ordering::Relaxed) == FAILED
    }

    /// The failure, if there was one.
    pub(crate) fn error(&self) -> Option<DeviceError> {
        // Acquire: pairs with the Release store in `fail`, after the failure was
        // written.
        if self.state.load(Ordering::Acquire) != FAILED {
            return None;
        }
        lock(&self.failure).clone()
    }

    /// `Err` with the failure, if there was one.
    #[inline]
    pub(crate) fn check(&self) -> Result<()> {
        if self.failed() {
            if let Some(e) = self.error() {
                return Err(Error::Device(e));
            }
        }
        Ok(())
    }

    /// The status, as last seen.
    pub(crate) fn status(&self) -> DeviceStatus {
        match self.state.load(Ordering::Acquire) {
            OK => DeviceStatus::Ok,
            DOWN => DeviceStatus::Down,
            _ => self.error().map_or(DeviceStatus::Ok, DeviceStatus::Failed),
        }
    }

    /// Times the link went down and came back up (with [`LinkDown::Wait`]).
    pub(crate) fn flaps(&self) -> u64 {
        self.flaps.load(Ordering::Relaxed)
    }

    /// Readable once the device failed (for `poll(2)` beside the socket).
    #[cfg_attr(not(any(feature = "engine", feature = "system")), allow(dead_code))]
    pub(crate) fn event_fd(&self) -> BorrowedFd<'_> {
        self.event.as_fd()
    }

    /// Wakes `waker` when the device fails (async waiters). Call before looking at
    /// [`Watch::failed`] again, so that a failure in between is not missed.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn register_waker(&self, waker: &Waker) {
        let mut w = lock(&self.wakers);
        if !w.iter().any(|x| x.will_wake(waker)) {
            w.push(waker.clone());
        }
    }

    fn fail(&self, event: DeviceEvent) {
        {
            let mut f = lock(&self.failure);
            if f.is_some() {
                return;
            }
            *f = Some(DeviceError {
                ifname: self.params.ifname.clone(),
                ifindex: self.params.ifindex,
                event,
            });
        }
        // Release: the failure above is visible to whoever sees FAILED.
        self.state.store(FAILED, Ordering::Release);
        let _ = sys::eventfd_signal(self.event.as_fd());
        for w in lock(&self.wakers).drain(..) {
            w.wake();
        }
    }

    fn set_down(&self, down: bool) {
        let (from, to) = if down { (OK, DOWN) } else { (DOWN, OK) };
        if self
            .state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            && !down
        {
            self.flaps.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registration: dropping it stops watching (and, with the last one, ends the
/// thread and closes its sockets before returning).
#[derive(Debug)]
pub(crate) struct Registration {
    watch: Arc<Watch>,
}

impl Registration {
    pub(crate) fn watch(&self) -> &Arc<Watch> {
        &self.watch
    }

    /// Looks at the device now, from the calling thread.
    pub(crate) fn check_now(&self) -> DeviceStatus {
        let mut reg = lock(&REGISTRY);
        for g in reg.groups.iter_mut() {
            if let Some(i) = g
                .slots
                .iter()
                .position(|s| Arc::ptr_eq(&s.watch, &self.watch))
            {
                let g = &mut *g;
                let (socks, slot) = (&g.socks, &mut g.slots[i]);
                slot.look(socks, None);
            }
        }
        drop(reg);
        self.watch.status()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let join = {
            let mut reg = lock(&REGISTRY);
            for g in reg.groups.iter_mut() {
                g.slots.retain(|s| !Arc::ptr_eq(&s.watch, &self.watch));
            }
            reg.groups.retain(|g| !g.slots.is_empty());
            if reg.groups.is_empty() {
                reg.stop_thread()
            } else {
                None
            }
        };
        if let Some(j) = join {
            let _ = j.join();
        }
    }
}

/// Starts watching a socket's device. Sockets are opened in the calling thread's
/// network namespace, which must be the one the interface was looked up in.
pub(crate) fn register(params: WatchParams) -> Result<Registration> {
    let ns = netns_id().map_err(|e| Error::kernel(Stage::Monitor, e))?;
    let watch = Arc::new(Watch {
        params,
        state: AtomicU8::new(OK),
        failure: Mutex::new(None),
        flaps: AtomicU64::new(0),
        event: sys::eventfd().map_err(|e| Error::kernel(Stage::Monitor, e))?,
        wakers: Mutex::new(Vec::new()),
    });
    let mut reg = lock(&REGISTRY);
    let gi = match reg.groups.iter().position(|g| g.ns == ns) {
        Some(i) => i,
        None => {
            let socks = NsSockets::open().map_err(|e| Error::kernel(Stage::Monitor, e))?;
            reg.groups.push(Group {
                ns,
                socks,
                slots: Vec::new(),
            });
            reg.groups.len() - 1
        }
    };
    let mut slot = Slot {
        watch: watch.clone(),
        was_up: false,
        left: None,
        missing_since: None,
    };
    // The first look: a device that does not fit fails the build, not the run.
    slot.look(&reg.groups[gi].socks, None);
    if let Some(e) = watch.error() {
        if reg.groups[gi].slots.is_empty() {
            reg.groups.remove(gi);
        }
        return Err(Error::Device(e));
    }
    reg.groups[gi].slots.push(slot);
    if reg.thread.is_none() {
        reg.start_thread()?;
    } else {
        // A new namespace's notification socket joins the thread's poll set.
        reg.kick();
    }
    Ok(Registration { watch })
}

/// The calling thread's network namespace, as (device, inode) of its nsfs file.
fn netns_id() -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((m.dev(), m.ino()))
}

/// The sockets that answer about one namespace.
#[derive(Debug)]
struct NsSockets {
    /// `RTMGRP_LINK` notifications, non-blocking.
    events: netlink::Netlink,
    /// `RTM_GETLINK` requests.
    query: netlink::Netlink,
    /// ethtool ioctls.
    ioctl: OwnedFd,
}

impl NsSockets {
    fn open() -> std::io::Result<NsSockets> {
        let timeout = Duration::from_secs(1);
        Ok(NsSockets {
            events: netlink::Netlink::open(
                libc::NETLINK_ROUTE,
                netlink::RTMGRP_LINK,
                true,
                timeout,
            )?,
            query: netlink::Netlink::open(libc::NETLINK_ROUTE, 0, false, timeout)?,
            ioctl: sys::ioctl_socket()?,
        })
    }
}

#[derive(Debug)]
struct Slot {
    watch: Arc<Watch>,
    /// The link was seen up with carrier (a later down is a change).
    was_up: bool,
    /// A notification said the link left: `Some(None)` deleted, `Some(Some(id))`
    /// moved to namespace `id`.
    left: Option<Option<i32>>,
    /// When the link was first found missing without a notification yet: the
    /// kernel unlists a device before it announces where it went.
    missing_since: Option<Instant>,
}

impl Slot {
    /// Reads the link (unless `info` came with a notification) and judges it.
    fn look(&mut self, socks: &NsSockets, info: Option<netlink::LinkInfo>) {
        if self.watch.failed() {
            return;
        }
        let p = &self.watch.params;
        let info = match info {
            Some(i) => Some(i),
            None => match netlink::get_link(&socks.query, p.ifindex) {
                Ok(i) => i,
                // A failed query says nothing about the device; look again later.
                Err(_) => return,
            },
        };
        let Some(info) = info else {
            let event = match self.left {
                Some(Some(netnsid)) => DeviceEvent::MovedNamespace { netnsid },
                Some(None) => DeviceEvent::Removed,
                None => {
                    // Gone, but not announced yet: the notification that says
                    // whether it was deleted or moved follows within milliseconds.
                    let since = *self.missing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < ANNOUNCE_GRACE {
                        return;
                    }
                    DeviceEvent::Removed
                }
            };
            return self.watch.fail(event);
        };
        self.missing_since = None;
        if let Some((ours, mode)) = p.program {
            let now = match mode {
                AttachedMode::Native => info.xdp.native(),
                AttachedMode::Generic => info.xdp.generic(),
            };
            if now == 0 {
                return self.watch.fail(DeviceEvent::ProgramDetached);
            }
            if now != ours {
                let name = sys::prog_name(now).unwrap_or_else(|_| "?".into());
                return self
                    .watch
                    .fail(DeviceEvent::ProgramReplaced { id: now, name });
            }
        }
        if let Some(max_packet) = p.max_packet {
            if info.mtu + ETH_HLEN > max_packet {
                return self.watch.fail(DeviceEvent::MtuTooLarge {
                    mtu: info.mtu,
                    max_packet,
                });
            }
        }
        if p.queue > 0 {
            if let Ok(Some((rx, _))) = sys::ethtool_channels_on(socks.ioctl.as_fd(), &info.name) {
                if rx > 0 && p.queue >= rx {
                    return self.watch.fail(DeviceEvent::QueueGone {
                        queue: p.queue,
                        queues: rx,
                    });
                }
            }
        }
        let up = info.flags & netlink::IFF_UP != 0 && info.flags & netlink::IFF_LOWER_UP != 0;
        if up {
            self.was_up = true;
            self.watch.set_down(false);
        } else if self.was_up {
            match p.link_down {
                LinkDown::Fail => {
                    let admin = info.flags & netlink::IFF_UP == 0;
                    self.watch.fail(DeviceEvent::Down { admin })
                }
                LinkDown::Wait => self.watch.set_down(true),
            }
        }
    }
}

#[derive(Debug)]
struct Group {
    ns: (u64, u64),
    socks: NsSockets,
    slots: Vec<Slot>,
}

#[derive(Debug)]
struct Thread {
    join: JoinHandle<()>,
    stop: Arc<AtomicBool>,
    control: Arc<OwnedFd>,
}

#[derive(Debug)]
struct Registry {
    groups: Vec<Group>,
    thread: Option<Thread>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    groups: Vec::new(),
    thread: None,
});

impl Registry {
    fn start_thread(&mut self) -> Result<()> {
        let control = Arc::new(sys::eventfd().map_err(|e| Error::kernel(Stage::Monitor, e))?);
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (control.clone(), stop.clone());
        // Signals belong to the application's threads (`stop_on_signals` waits for
        // SIGINT/SIGTERM with them blocked everywhere, but this thread may start
        // before the application blocks them): the thread starts with every signal
        // blocked, inherited from this one for the moment of the spawn.
        use nix::sys::signal::{SigSet, SigmaskHow};
        let mut old = SigSet::empty();
        let blocked = nix::sys::signal::pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::all()),
            Some(&mut old),
        );
        let spawned = std::thread::Builder::new()
            .name("flux-watch".into())
            .spawn(move || run(&c, &s));
        if blocked.is_ok() {
            let _ = old.thread_set_mask();
        }
        let join = spawned.map_err(|e| Error::kernel(Stage::Monitor, e))?;
        self.thread = Some(Thread {
            join,
            stop,
            control,
        });
        Ok(())
    }

    fn kick(&self) {
        if let Some(t) = &self.thread {
            let _ = sys::eventfd_signal(t.control.as_fd());
        }
    }

    fn stop_thread(&mut self) -> Option<JoinHandle<()>> {
        let t = self.thread.take()?;
        t.stop.store(true, Ordering::Release);
        let _ = sys::eventfd_signal(t.control.as_fd());
        Some(t.join)
    }
}

/// The watch thread: wait for notifications (or the period), then look.
fn run(control: &OwnedFd, stop: &AtomicBool) {
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_full = Instant::now();
    let mut missing;
    loop {
        fds.clear();
        fds.push(pollfd(control.as_raw_fd()));
        {
            let reg = lock(&REGISTRY);
            if stop.load(Ordering::Acquire) {
                return;
            }
            fds.extend(
                reg.groups
                    .iter()
                    .map(|g| pollfd(g.socks.events.as_fd().as_raw_fd())),
            );
            missing = reg
                .groups
                .iter()
                .any(|g| g.slots.iter().any(|s| s.missing_since.is_some()));
        }
        let mut wait = PERIOD.saturating_sub(last_full.elapsed());
        if missing {
            wait = wait.min(RECHECK);
        }
        let _ = sys::poll_many(&mut fds, Some(wait));
        let mut reg = lock(&REGISTRY);
        if stop.load(Ordering::Acquire) {
            return;
        }
        drain_eventfd(control);
        let full = last_full.elapsed() >= PERIOD;
        if full {
            last_full = Instant::now();
        }
        for g in reg.groups.iter_mut() {
            let touched = read_events(g, &mut buf);
            let Group { socks, slots, .. } = g;
            for s in slots.iter_mut() {
                if full || s.missing_since.is_some() || touched.contains(&s.watch.params.ifindex) {
                    s.look(socks, None);
                }
            }
        }
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn drain_eventfd(fd: &OwnedFd) {
    let mut b = [0u8; 8];
    let _ = nix::unistd::read(fd, &mut b);
}

/// Drains a group's notifications; returns the interfaces they were about. A move
/// away is remembered, so that the link's absence is reported as a move.
fn read_events(g: &mut Group, buf: &mut [u8]) -> Vec<u32> {
    let mut touched = Vec::new();
    loop {
        let n = match g.socks.events.recv(buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for (ty, _, body) in netlink::messages(&buf[..n]) {
            let ifindex = match netlink::link_event(ty, body) {
                Some(netlink::LinkEvent::Del {
                    ifindex,
                    new_netnsid,
                }) => {
                    for s in g
                        .slots
                        .iter_mut()
                        .filter(|s| s.watch.params.ifindex == ifindex)
                    {
                        s.left = Some(new_netnsid);
                    }
                    ifindex
                }
                Some(netlink::LinkEvent::New(info)) => info.ifindex,
                None => continue,
            };
            if !touched.contains(&ifindex) {
                touched.push(ifindex);
            }
        }
    }
    touched
}
