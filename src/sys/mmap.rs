//! Memory mappings: the rings the kernel maps for a socket, and the UMEM's anonymous
//! region (a page-aligned heap allocation where there is no `mmap`).

/// Memory mappings (Unix).
#[cfg(unix)]
mod mem {
    use std::io;
    #[cfg(target_os = "linux")]
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::ptr::NonNull;

    /// An owned `mmap` region, unmapped on drop.
    #[derive(Debug)]
    pub struct Mmap {
        ptr: NonNull<u8>,
        len: usize,
    }

    // SAFETY: the region is plain memory; who may touch which bytes is governed by the
    // ring and frame ownership protocols built on top, not by the mapping itself.
    unsafe impl Send for Mmap {}
    // SAFETY: as above; `Mmap` itself exposes only the raw pointer.
    unsafe impl Sync for Mmap {}

    impl Mmap {
        /// Maps a ring of the XDP socket `fd` at page offset `pgoff`.
        #[cfg(target_os = "linux")]
        pub fn ring(fd: BorrowedFd<'_>, len: usize, pgoff: libc::off_t) -> io::Result<Self> {
            Self::map(
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        }

        /// Anonymous private memory (UMEM backing), optionally from huge pages.
        pub fn anonymous(len: usize, huge: bool) -> io::Result<Self> {
            #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
            let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            #[cfg(target_os = "linux")]
            {
                flags |= libc::MAP_POPULATE;
                if huge {
                    flags |= libc::MAP_HUGETLB;
                }
            }
            #[cfg(not(target_os = "linux"))]
            if huge {
                return Err(io::Error::from(io::ErrorKind::Unsupported));
            }
            Self::map(len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0)
        }

        fn map(len: usize, prot: i32, flags: i32, fd: i32, off: libc::off_t) -> io::Result<Self> {
            if len == 0 {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            }
            // SAFETY: a fresh mapping chosen by the kernel; arguments are checked by it.
            let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, off) };
            if p == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            NonNull::new(p.cast::<u8>())
                .map(|ptr| Mmap { ptr, len })
                .ok_or_else(|| io::Error::from(io::ErrorKind::Other))
        }

        /// Start of the mapping.
        pub fn as_ptr(&self) -> *mut u8 {
            self.ptr.as_ptr()
        }

        /// Length in bytes.
        pub fn len(&self) -> usize {
            self.len
        }
    }

    impl Drop for Mmap {
        fn drop(&mut self) {
            // SAFETY: we own the mapping and nothing refers to it once we are dropped.
            unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            }
        }
    }

    /// The system page size.
    pub fn page_size() -> usize {
        // SAFETY: sysconf has no preconditions.
        let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if v <= 0 {
            4096
        } else {
            v as usize
        }
    }
}
#[cfg(unix)]
pub use mem::*;

/// The page size assumed where there is no `sysconf` (the simulated device on Windows).
#[cfg(not(unix))]
pub fn page_size() -> usize {
    4096
}

/// Where there is no `mmap` (Windows), the UMEM of a simulated device is a
/// page-aligned, zeroed heap allocation with the same interface.
#[cfg(not(unix))]
#[derive(Debug)]
pub struct Mmap {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: plain memory; access is governed by the frame ownership protocol above it.
#[cfg(not(unix))]
unsafe impl Send for Mmap {}
// SAFETY: as above.
#[cfg(not(unix))]
unsafe impl Sync for Mmap {}

#[cfg(not(unix))]
impl Mmap {
    /// A zeroed, page-aligned region (huge pages are not available here).
    pub fn anonymous(len: usize, huge: bool) -> std::io::Result<Self> {
        if huge {
            return Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
        }
        let layout = std::alloc::Layout::from_size_align(len.max(1), page_size())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        std::ptr::NonNull::new(p)
            .map(|ptr| Mmap { ptr, layout })
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::OutOfMemory))
    }
    /// Start of the region.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }
}

#[cfg(not(unix))]
impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: allocated in `anonymous` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
