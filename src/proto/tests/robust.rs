//! Nothing panics: every parser, accessor and edit on arbitrary bytes and
//! on arbitrary mutations of valid frames.

use core::net::{Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;

use super::props::spec;
use crate::proto::*;

fn touch_eth(v: &mut EthernetFrame<&mut [u8]>) {
    let _ = (
        v.dst(),
        v.src(),
        v.ethertype(),
        v.payload().len(),
        v.as_bytes().len(),
    );
    v.swap_macs();
    let d = v.dst();
    v.set_src(d);
    v.set_ethertype(EtherType::IPV4);
    let _ = v.payload_mut().len();
}

fn touch_vlan(v: &mut VlanPacket<&mut [u8]>) {
    let _ = (
        v.tci(),
        v.pcp(),
        v.dei(),
        v.vid(),
        v.ethertype(),
        v.payload().len(),
    );
    v.set_vid(4095);
    v.set_pcp(9);
    v.set_ethertype(EtherType::IPV6);
}

fn touch_arp(v: &mut ArpPacket<&mut [u8]>) {
    let _ = (
        v.hardware_type(),
        v.protocol_type(),
        v.hardware_len(),
        v.protocol_len(),
        v.operation(),
        v.sender_mac(),
        v.sender_ip(),
        v.target_mac(),
        v.target_ip(),
    );
    let _ = v.make_reply([1; 6]);
    v.set_target_ip(Ipv4Addr::LOCALHOST);
}

fn touch_ipv4(v: &mut Ipv4Packet<&mut [u8]>) {
    let _ = (
        v.version(),
        v.header_len(),
        v.dscp(),
        v.ecn(),
        v.total_len(),
        v.ident(),
        v.dont_fragment(),
        v.more_fragments(),
        v.frag_offset(),
        v.is_fragment(),
        v.ttl(),
        v.protocol(),
        v.checksum(),
        v.src_addr(),
        v.dst_addr(),
    );
    let _ = (
        v.options().len(),
        v.header().len(),
        v.payload().len(),
        v.upper_layer().len(),
    );
    let _ = (
        v.upper_layer_offset(),
        v.upper_layer_protocol(),
        v.verify_checksum(),
    );
    let _ = (
        v.compute_checksum(),
        v.pseudo_header_sum(u16::MAX),
        v.as_bytes().len(),
    );
    v.set_ttl(0);
    v.set_src_addr(Ipv4Addr::BROADCAST);
    v.set_dst_addr(Ipv4Addr::UNSPECIFIED);
    v.swap_addrs();
    v.set_ident(1);
    v.set_total_len(u16::MAX);
    v.fill_checksum();
    let _ = (v.payload_mut().len(), v.upper_layer_mut().len());
}

fn touch_ipv6(v: &mut Ipv6Packet<&mut [u8]>) {
    let _ = (
        v.version(),
        v.traffic_class(),
        v.flow_label(),
        v.payload_len(),
        v.total_len(),
        v.next_header(),
        v.hop_limit(),
        v.src_addr(),
        v.dst_addr(),
        v.is_fragment(),
    );
    let _ = (
        v.ext_headers().len(),
        v.payload().len(),
        v.upper_layer().len(),
    );
    let _ = (
        v.upper_layer_offset(),
        v.upper_layer_protocol(),
        v.pseudo_header_sum(u32::MAX),
    );
    let _ = v.as_bytes().len();
    v.set_hop_limit(0);
    v.set_src_addr(Ipv6Addr::LOCALHOST);
    v.set_dst_addr(Ipv6Addr::UNSPECIFIED);
    v.swap_addrs();
    v.set_payload_len(0);
    let _ = (v.payload_mut().len(), v.upper_layer_mut().len());
}

fn touch_udp(v: &mut UdpPacket<&mut [u8]>) {
    let (s, d) = (Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST);
    let (s6, d6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    let _ = (
        v.src_port(),
        v.dst_port(),
        v.len(),
        v.is_empty(),
        v.checksum(),
        v.payload().len(),
    );
    let _ = (
        v.verify_checksum_v4(s, d),
        v.verify_checksum_v6(s6, d6),
        v.compute_checksum(1),
    );
    let _ = v.as_bytes().len();
    v.set_src_port(0);
    v.set_dst_port(u16::MAX);
    v.swap_ports();
    v.adjust_checksum(0, u16::MAX);
    v.fill_checksum_v4(s, d);
    v.fill_checksum_v6(s6, d6);
    let _ = v.payload_mut().len();
}

fn touch_tcp(v: &mut TcpPacket<&mut [u8]>) {
    let (s, d) = (Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST);
    let (s6, d6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    let _ = (
        v.src_port(),
        v.dst_port(),
        v.seq_number(),
        v.ack_number(),
        v.header_len(),
        v.flags(),
        v.window(),
        v.checksum(),
        v.urgent_ptr(),
    );
    let _ = (
        v.options().len(),
        v.options_iter().count(),
        v.payload().len(),
    );
    let p = v.pseudo_header_sum_v4(s, d);
    let _ = (
        v.verify_checksum(p),
        v.compute_checksum(p),
        v.pseudo_header_sum_v6(s6, d6),
    );
    v.set_src_port(1);
    v.set_dst_port(2);
    v.swap_ports();
    v.set_seq_number(u32::MAX);
    v.set_ack_number(0);
    v.set_flags(TcpFlags(u16::MAX));
    v.set_window(5);
    v.fill_checksum_v4(s, d);
    v.fill_checksum_v6(s6, d6);
    let _ = v.payload_mut().len();
}

fn touch_icmpv4(v: &mut Icmpv4Packet<&mut [u8]>) {
    let _ = (
        v.msg_type(),
        v.code(),
        v.checksum(),
        v.rest_of_header(),
        v.echo_ident(),
    );
    let _ = (
        v.echo_seq(),
        v.payload().len(),
        v.compute_checksum(),
        v.verify_checksum(),
    );
    v.set_msg_type(0);
    v.set_type_code(3, 3);
    v.fill_checksum();
    let _ = v.payload_mut().len();
}

fn touch_icmpv6(v: &mut Icmpv6Packet<&mut [u8]>) {
    let (s, d) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    let _ = (
        v.msg_type(),
        v.code(),
        v.checksum(),
        v.rest_of_header(),
        v.echo_ident(),
    );
    let _ = (v.echo_seq(), v.payload().len(), v.verify_checksum(s, d));
    let _ = v.compute_checksum(v.pseudo_header_sum(s, d));
    v.set_msg_type(129);
    v.adjust_checksum(1, 2);
    v.fill_checksum(s, d);
    let _ = v.payload_mut().len();
}

type Edit = dyn Fn(&mut Vec<u8>);

/// Runs every parser, accessor and edit on `input`; must not panic.
pub fn exercise(input: &[u8]) {
    // Whole-frame parse and every view it gives.
    if let Ok(l) = Layers::parse(input) {
        let m = l.meta();
        let _ = (l.payload().len(), l.vlans.as_slice().len(), l.eth.src());
        let mut c = input.to_vec();
        if let Ok(mut v) = m.ipv4_mut(&mut c) {
            touch_ipv4(&mut v);
        }
        let mut c = input.to_vec();
        if let Ok(mut v) = m.ipv6_mut(&mut c) {
            touch_ipv6(&mut v);
        }
        let mut c = input.to_vec();
        if let Ok(mut v) = m.arp_mut(&mut c) {
            touch_arp(&mut v);
        }
        let mut c = input.to_vec();
        if let Ok(mut v) = m.udp_mut(&mut c) {
            touch_udp(&mut v);
        }
        let mut c = input.to_vec();
        if let Ok(mut v) = m.tcp_mut(&mut c) {
            touch_tcp(&mut v);
        }
        let mut c = input.to_vec();
        if let Ok(mut v) = m.icmpv4_mut(&mut c) {
            touch_icmpv4(&mut v);
        }
        let mut c = input.to_vec();
        if let Ok(mut v) = m.icmpv6_mut(&mut c) {
            touch_icmpv6(&mut v);
        }
        let _ = m.payload_mut(&mut c).len();
    }
    // Every view at a few plausible offsets.
    for off in [0usize, 14, 18, 22, 34, 38, 42, 54, 62] {
        let Some(rest) = input.get(off..) else { break };
        let mut c = rest.to_vec();
        if let Ok(mut v) = EthernetFrame::new_checked(&mut c[..]) {
            touch_eth(&mut v);
        }
        let mut c = rest.to_vec();
        if let Ok(mut v) = VlanPacket::new_checked(&mut c[..]) {
            touch_vlan(&mut v);
        }
        let mut c = rest.to_vec();
        if let Ok(mut v) = ArpPacket::new_checked(&mut c[..]) {
            touch_arp(&mut v);
        }
        let mut c = rest.to_vec();
        if let Ok(mut v) = Ipv4Packet::new_checked(&mut c[..]) {
            touch_ipv4(&mut v);
        }
        let mut c = rest.to_vec();
        if let Ok(mut v) = Ipv6Packet::new_checked(&mut c[..]) {
            touch_ipv6(&mut v);
        }
        let mut c = rest.to_vec();
        if let Ok(mut v) = UdpPacket::new_checked(&mut c[..]) {
            touch_udp(&mut v);
        }
        let mut c = rest.to_vec();
        if let Ok(mut v) = TcpPacket::new_checked(&mut c[..]) {
            touch_tcp(&mut v);
        }
        let mut c = rest.to_vec();
        if let Ok(mut v) = Icmpv4Packet::new_checked(&mut c[..]) {
            touch_icmpv4(&mut v);
        }
        let mut c = rest.to_vec();
        if let Ok(mut v) = Icmpv6Packet::new_checked(&mut c[..]) {
            touch_icmpv6(&mut v);
        }
    }
    // Every edit, each on a fresh copy, then all in a row on one copy.
    let mut all = input.to_vec();
    all.resize(input.len() + 64, 0);
    for i in 0..2 {
        let run = |f: &Edit| {
            let mut c = input.to_vec();
            f(&mut c);
        };
        let edits: [&Edit; 15] = [
            &|b| {
                let _ = edit::swap_macs(b);
            },
            &|b| {
                let _ = edit::swap_ips(b);
            },
            &|b| {
                let _ = edit::swap_ports(b);
            },
            &|b| {
                let _ = edit::set_ttl(b, 1);
            },
            &|b| {
                let _ = edit::set_src_ip(b, Ipv4Addr::new(1, 2, 3, 4).into());
            },
            &|b| {
                let _ = edit::set_dst_ip(b, Ipv6Addr::LOCALHOST.into());
            },
            &|b| {
                let _ = edit::set_src_port(b, 1);
            },
            &|b| {
                let _ = edit::set_dst_port(b, 2);
            },
            &|b| {
                let _ = edit::icmp_echo_reply_in_place(b);
            },
            &|b| {
                let _ = edit::arp_reply_in_place(b, [7; 6]);
            },
            &|b| {
                let _ = edit::udp_reply_in_place(b);
            },
            &|b| {
                let _ = edit::max_udp_payload_len(b);
            },
            &|b| {
                let n = 3 + b.len() % 50;
                let _ = edit::set_udp_payload_len(b, n);
            },
            &|b| {
                let _ = edit::recompute_checksums(b);
            },
            &|b| {
                let _ = edit::checksums_valid(b);
            },
        ];
        for e in edits {
            if i == 0 {
                run(e);
            } else {
                e(&mut all);
            }
        }
    }
    let _ = checksum::sum(input);
}

/// Mutations applied to a valid frame.
#[derive(Debug, Clone)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => vec(any::<u8>(), 0..20).prop_map(Mutation::Extend),
    ]
}

/// An Ethernet header with an interesting EtherType, then random bytes.
fn headed_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![
            0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x9100, 0x88e5,
        ]),
        vec(any::<u8>(), 0..120),
    )
        .prop_map(|(et, rest)| {
            let mut v = vec![0u8; 12];
            v.extend_from_slice(&et.to_be_bytes());
            // make IP versions plausible more often
            let mut rest = rest;
            if let Some(first) = rest.first_mut() {
                *first = match et {
                    0x0800 => 0x40 | (*first & 0x0f),
                    0x86dd => 0x60 | (*first & 0x0f),
                    _ => *first,
                };
            }
            v.extend_from_slice(&rest);
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        exercise(&bytes);
    }

    #[test]
    fn headed_bytes_never_panic(bytes in headed_bytes()) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(spec in spec(), muts in vec(mutation(), 1..6)) {
        let mut buf = spec.build();
        for m in muts {
            match m {
                Mutation::Set(i, b) => {
                    if !buf.is_empty() {
                        let i = i.index(buf.len());
                        buf[i] = b;
                    }
                }
                Mutation::Truncate(i) => {
                    let n = i.index(buf.len() + 1);
                    buf.truncate(n);
                }
                Mutation::Extend(v) => buf.extend_from_slice(&v),
            }
        }
        exercise(&buf);
    }
}
