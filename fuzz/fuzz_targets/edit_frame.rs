//! Applies every in-place edit to arbitrary input: each on a fresh copy,
//! then all in a row on one copy. Must never panic, and an edit that
//! succeeds on a frame whose checksums were right must leave them right.
#![no_main]

use libfuzzer_sys::fuzz_target;
use fluxcapacitor::proto::{edit, ChecksumState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

type Edit = fn(&mut Vec<u8>) -> bool;

fn edits() -> [Edit; 16] {
    [
        |b| edit::swap_macs(b).is_ok(),
        |b| edit::swap_ips(b).is_ok(),
        |b| edit::swap_ports(b).is_ok(),
        |b| edit::set_ttl(b, 1).is_ok(),
        |b| edit::set_src_ip(b, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))).is_ok(),
        |b| edit::set_dst_ip(b, IpAddr::V6(Ipv6Addr::LOCALHOST)).is_ok(),
        |b| {
            edit::set_src_ip(
                b,
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            )
            .is_ok()
        },
        |b| edit::set_dst_ip(b, IpAddr::V4(Ipv4Addr::BROADCAST)).is_ok(),
        |b| edit::set_src_port(b, 1).is_ok(),
        |b| edit::set_dst_port(b, 65535).is_ok(),
        |b| edit::icmp_echo_reply_in_place(b).is_ok(),
        |b| edit::arp_reply_in_place(b, [2, 0, 0, 0, 0, 9]).is_ok(),
        |b| edit::udp_reply_in_place(b).is_ok(),
        |b| {
            // Grow into spare room, then shrink.
            let n = b.len() % 97;
            b.resize(b.len() + 128, 0);
            match edit::set_udp_payload_len(b, n) {
                Ok(len) => {
                    b.truncate(len);
                    true
                }
                Err(_) => {
                    b.truncate(b.len() - 128);
                    false
                }
            }
        },
        |b| edit::recompute_checksums(b).is_ok(),
        |b| edit::complete_checksum(b).is_ok(),
    ]
}

fuzz_target!(|data: &[u8]| {
    let valid_before = edit::checksums_valid(data) == Ok(true);
    // A partial UDP/TCP checksum (left to an offload by the sender) with an
    // otherwise right frame: every edit that touches the transport must
    // complete it.
    let partial_before = edit::checksum_state(data) == Ok(Some(ChecksumState::Partial)) && {
        let mut c = data.to_vec();
        edit::complete_checksum(&mut c).is_ok() && edit::checksums_valid(&c) == Ok(true)
    };
    for (i, e) in edits().into_iter().enumerate() {
        let mut c = data.to_vec();
        let ok = e(&mut c);
        if ok && valid_before {
            assert_eq!(
                edit::checksums_valid(&c),
                Ok(true),
                "an edit broke a checksum"
            );
        }
        // Not the MAC swap (Ethernet only) and the ICMP/ARP replies (which
        // refuse UDP/TCP frames).
        if ok && partial_before && !matches!(i, 0 | 10 | 11) {
            assert_eq!(
                edit::checksums_valid(&c),
                Ok(true),
                "edit {i} left a partial checksum"
            );
        }
    }
    let _ = edit::checksum_state(data);
    let mut all = data.to_vec();
    for e in edits() {
        let _ = e(&mut all);
    }
    let _ = edit::max_udp_payload_len(&all);
    let _ = edit::checksums_valid(&all);
});
