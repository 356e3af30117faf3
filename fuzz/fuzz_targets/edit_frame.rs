//! Applies every in-place edit to arbitrary input: each on a fresh copy,
//! then all in a row on one copy. Must never panic, and an edit that
//! succeeds on a frame whose checksums were right must leave them right.
#![no_main]

use libfuzzer_sys::fuzz_target;
use fluxcapacitor::proto::edit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

type Edit = fn(&mut Vec<u8>) -> bool;

fn edits() -> [Edit; 15] {
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
    ]
}

fuzz_target!(|data: &[u8]| {
    let valid_before = edit::checksums_valid(data) == Ok(true);
    for e in edits() {
        let mut c = data.to_vec();
        if e(&mut c) && valid_before {
            assert_eq!(
                edit::checksums_valid(&c),
                Ok(true),
                "an edit broke a checksum"
            );
        }
    }
    let mut all = data.to_vec();
    for e in edits() {
        let _ = e(&mut all);
    }
    let _ = edit::max_udp_payload_len(&all);
    let _ = edit::checksums_valid(&all);
});
