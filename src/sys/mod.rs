//! Everything that touches the kernel directly, one concept per file, each call a
//! thin checked wrapper returning `io::Result`: no policy, no retries. Crate-private:
//! the modes build their typed, safe surface on top.
#![allow(unsafe_code)]

pub(crate) mod abi;
#[cfg(target_os = "linux")]
pub(crate) mod bpf;
#[cfg(target_os = "linux")]
pub(crate) mod genl;
pub(crate) mod mmap;
#[cfg(target_os = "linux")]
pub(crate) mod netdev;
#[cfg(target_os = "linux")]
pub(crate) mod netlink;
#[cfg(target_os = "linux")]
pub(crate) mod syscall;

pub(crate) use abi::*;
#[cfg(target_os = "linux")]
pub(crate) use bpf::*;
pub(crate) use mmap::*;
#[cfg(target_os = "linux")]
pub(crate) use netdev::*;
#[cfg(target_os = "linux")]
pub(crate) use syscall::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn abi_sizes_match_the_kernel_headers() {
        assert_eq!(size_of::<SockaddrXdp>(), 16);
        assert_eq!(size_of::<XdpMmapOffsets>(), 128);
        assert_eq!(size_of::<XdpUmemReg>(), 32);
        assert_eq!(size_of::<XdpStatistics>(), 48);
        assert_eq!(size_of::<XdpDesc>(), 16);
        assert_eq!(offset_of!(XdpMmapOffsets, tx), 32);
        assert_eq!(offset_of!(XdpMmapOffsets, fr), 64);
        assert_eq!(offset_of!(XdpStatistics, rx_ring_full), 24);
        assert_eq!(offset_of!(XdpUmemReg, chunk_size), 16);
    }
}
