//! BPF and XDP through libbpf's thin wrappers: attach by link or netlink, query,
//! program and link ids, map updates.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::abi::*;

/// `BPF_LINK_CREATE` of `prog_fd` on `ifindex` for `attach_type`, with `flags`.
fn link_create(
    prog_fd: BorrowedFd<'_>,
    ifindex: u32,
    attach_type: libbpf_sys::bpf_attach_type,
    flags: u32,
) -> io::Result<OwnedFd> {
    // SAFETY: zero is a valid bit pattern for this plain-data opts struct.
    let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
    opts.sz = size_of::<libbpf_sys::bpf_link_create_opts>() as _;
    opts.flags = flags;
    // SAFETY: valid fds and a fully initialised opts struct; libbpf returns -errno.
    let fd = unsafe {
        libbpf_sys::bpf_link_create(
            prog_fd.as_raw_fd(),
            ifindex as libc::c_int,
            attach_type,
            &opts,
        )
    };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a fresh link fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_LINK_DETACH`: detaches the link's program now, whoever else still holds the
/// link fd (a child process between fork and exec does, for a moment).
pub fn link_detach(link_fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd; libbpf returns -errno.
    let ret = unsafe { libbpf_sys::bpf_link_detach(link_fd.as_raw_fd()) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    Ok(())
}

/// Attaches the TC program `prog_fd` to the ingress of `ifindex` as a tcx `bpf_link`
/// (kernel 6.6+; older kernels answer `EINVAL`). Closing the fd detaches it.
pub fn tcx_ingress_link_create(prog_fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<OwnedFd> {
    link_create(prog_fd, ifindex, libbpf_sys::BPF_TCX_INGRESS, 0)
}

/// Attaches `prog_fd` to `ifindex` as an XDP `bpf_link` with the given `XDP_FLAGS_*`
/// mode bits. The returned fd owns the link: closing it detaches the program.
pub fn xdp_link_create(prog_fd: BorrowedFd<'_>, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    link_create(prog_fd, ifindex, libbpf_sys::BPF_XDP, flags)
}

/// The XDP program attached to an interface, as `bpf_xdp_query` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpAttached {
    /// Program id.
    pub id: u32,
    /// Program name ("?" when it cannot be read).
    pub name: String,
    /// `XDP_ATTACHED_*` (1 native, 2 generic, 3 offloaded, 4 several).
    pub mode: u8,
}

/// The XDP program attached to `ifindex` in any mode, if one is.
pub fn xdp_query(ifindex: u32) -> io::Result<Option<XdpAttached>> {
    // SAFETY: zero is a valid bit pattern for this plain-data struct.
    let mut q: libbpf_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    q.sz = size_of::<libbpf_sys::bpf_xdp_query_opts>() as _;
    // SAFETY: `q` is a valid, sized opts struct.
    let ret = unsafe { libbpf_sys::bpf_xdp_query(ifindex as libc::c_int, 0, &mut q) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    let id = [q.prog_id, q.drv_prog_id, q.skb_prog_id, q.hw_prog_id]
        .into_iter()
        .find(|&i| i != 0);
    let Some(id) = id else { return Ok(None) };
    Ok(Some(XdpAttached {
        id,
        name: prog_name(id).unwrap_or_else(|_| "?".into()),
        mode: q.attach_mode,
    }))
}

/// The id of the loaded BPF program `prog`.
pub fn prog_id(prog: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: zero is valid for this plain-data struct.
    let mut info: libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` is writable for `len` bytes.
    let ret = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(prog.as_raw_fd(), &mut info, &mut len) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    Ok(info.id)
}

/// The id of the XDP `bpf_link` on `ifindex`, if one is there (walks the
/// system's links; needs CAP_SYS_ADMIN / CAP_BPF).
pub fn xdp_link_on(ifindex: u32) -> io::Result<Option<u32>> {
    let mut id = 0u32;
    loop {
        let mut next = 0u32;
        // SAFETY: `next` is a valid out pointer.
        let ret = unsafe { libbpf_sys::bpf_link_get_next_id(id, &mut next) };
        if ret < 0 {
            return match -ret {
                libc::ENOENT => Ok(None),
                errno => Err(io::Error::from_raw_os_error(errno)),
            };
        }
        id = next;
        // SAFETY: plain libbpf call returning an fd or -errno.
        let fd = unsafe { libbpf_sys::bpf_link_get_fd_by_id(id) };
        if fd < 0 {
            continue; // gone meanwhile
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: zero is valid for this plain-data struct.
        let mut info: libbpf_sys::bpf_link_info = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libbpf_sys::bpf_link_info>() as u32;
        // SAFETY: `info` is writable for `len` bytes.
        let ret =
            unsafe { libbpf_sys::bpf_link_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
        if ret < 0 || info.type_ != libbpf_sys::BPF_LINK_TYPE_XDP {
            continue;
        }
        // SAFETY: the kernel filled the `xdp` member for an XDP link.
        let link_ifindex = unsafe { info.__bindgen_anon_1.xdp.ifindex };
        if link_ifindex == ifindex {
            return Ok(Some(id));
        }
    }
}

/// Detaches the `bpf_link` with this id (`BPF_LINK_DETACH`): its program leaves
/// the interface although another process holds the link.
pub fn link_detach_by_id(id: u32) -> io::Result<()> {
    // SAFETY: plain libbpf call returning an fd or -errno.
    let fd = unsafe { libbpf_sys::bpf_link_get_fd_by_id(id) };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a valid link fd.
    let ret = unsafe { libbpf_sys::bpf_link_detach(fd.as_raw_fd()) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    Ok(())
}

/// Detaches the netlink-attached XDP program in mode `flags` from `ifindex`, but
/// only while it is still `expected` (`XDP_FLAGS_REPLACE`), so that a program
/// someone else attached meanwhile stays.
pub fn xdp_detach_expected(ifindex: u32, flags: u32, expected: BorrowedFd<'_>) -> io::Result<()> {
    let opts = libbpf_sys::bpf_xdp_attach_opts {
        sz: size_of::<libbpf_sys::bpf_xdp_attach_opts>() as _,
        old_prog_fd: expected.as_raw_fd(),
        ..Default::default()
    };
    // SAFETY: plain libbpf call with a sized opts struct.
    let ret = unsafe {
        libbpf_sys::bpf_xdp_detach(ifindex as libc::c_int, flags | XDP_FLAGS_REPLACE, &opts)
    };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    Ok(())
}

/// Detaches whatever program is attached to `ifindex` in mode `flags` by netlink,
/// while it is still program `id` (resolved to an fd for `XDP_FLAGS_REPLACE`).
pub fn xdp_detach_id(ifindex: u32, flags: u32, id: u32) -> io::Result<()> {
    // SAFETY: plain libbpf call returning an fd or -errno.
    let fd = unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    xdp_detach_expected(ifindex, flags, fd.as_fd())
}

/// The name of the BPF program with this id.
pub fn prog_name(id: u32) -> io::Result<String> {
    // SAFETY: plain libbpf call returning an fd or -errno.
    let fd = unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: zero is valid for this plain-data struct.
    let mut info: libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` is writable for `len` bytes.
    let ret = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    let name: Vec<u8> = info
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&name).into_owned())
}

/// Detaches whatever XDP program is attached to `ifindex` in the given mode through
/// netlink (the fallback path for kernels without XDP links).
pub fn xdp_netlink_attach(
    ifindex: u32,
    prog_fd: Option<BorrowedFd<'_>>,
    flags: u32,
) -> io::Result<()> {
    let fd = prog_fd.map(|f| f.as_raw_fd()).unwrap_or(-1);
    // SAFETY: plain libbpf call; a null opts pointer is allowed.
    let ret =
        unsafe { libbpf_sys::bpf_xdp_attach(ifindex as libc::c_int, fd, flags, std::ptr::null()) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    Ok(())
}

/// Writes `value_fd` at `key` into the BPF map `map_fd` (an XSKMAP owned by the user).
pub fn map_update_fd(map_fd: BorrowedFd<'_>, key: u32, value_fd: BorrowedFd<'_>) -> io::Result<()> {
    let k = key;
    let v = value_fd.as_raw_fd() as u32;
    // SAFETY: key and value point at live u32s, the sizes an XSKMAP uses.
    let ret = unsafe {
        libbpf_sys::bpf_map_update_elem(
            map_fd.as_raw_fd(),
            (&k as *const u32).cast(),
            (&v as *const u32).cast(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    Ok(())
}
