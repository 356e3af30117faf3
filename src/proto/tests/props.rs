//! Property tests against etherparse's owned parsing and checksum helpers.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{LinkExtHeader, NetHeaders, PacketHeaders, TransportHeader};
use proptest::collection::vec;
use proptest::prelude::*;

use super::util::{etherparse_checksums_ok, Kind, Spec};
use crate::proto::{checksum, edit, Layers, Net, Transport};

fn vlans() -> impl Strategy<Value = Vec<u16>> {
    prop_oneof![
        Just(vec![]),
        (0..4096u16).prop_map(|a| vec![a]),
        (0..4096u16, 0..4096u16).prop_map(|(a, b)| vec![a, b]),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Udp),
        (
            (0..=10usize).prop_flat_map(|n| vec(any::<u8>(), n * 4)),
            any::<u8>()
        )
            .prop_map(|(options, flags)| Kind::Tcp { options, flags }),
        Just(Kind::Icmp),
    ]
}

pub fn spec() -> impl Strategy<Value = Spec> {
    (
        (any::<[u8; 6]>(), any::<[u8; 6]>(), vlans(), any::<bool>()),
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
        ),
        (
            (0..=10usize).prop_flat_map(|n| vec(any::<u8>(), n * 4)),
            any::<bool>(),
            any::<u8>(),
            kind(),
        ),
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            vec(any::<u8>(), 0..200),
        ),
    )
        .prop_map(
            |(
                (src_mac, dst_mac, vlans, v6),
                (src4, dst4, src6, dst6),
                (ipv4_options, ipv6_exts, ttl, kind),
                (src_port, dst_port, seq, payload),
            )| Spec {
                src_mac,
                dst_mac,
                vlans,
                v6,
                src4,
                dst4,
                src6,
                dst6,
                ipv4_options,
                ipv6_exts,
                ttl,
                kind,
                src_port,
                dst_port,
                seq,
                payload,
            },
        )
}

/// Asserts that everything we read equals what etherparse reads.
fn assert_same_as_etherparse(buf: &[u8]) {
    let l = Layers::parse(buf).unwrap();
    let h = PacketHeaders::from_ethernet_slice(buf).unwrap();
    let eth = h.link.clone().unwrap().ethernet2().unwrap();
    assert_eq!(l.eth.src(), eth.source);
    assert_eq!(l.eth.dst(), eth.destination);
    assert_eq!(l.eth.ethertype(), eth.ether_type);
    assert_eq!(l.vlans.len(), h.link_exts.len());
    for (ours, theirs) in l.vlans.as_slice().iter().zip(&h.link_exts) {
        let LinkExtHeader::Vlan(v) = theirs else {
            panic!()
        };
        assert_eq!(ours.vid(), v.vlan_id.value());
        assert_eq!(ours.pcp(), v.pcp.value());
        assert_eq!(ours.dei(), v.drop_eligible_indicator);
        assert_eq!(ours.inner_ethertype, v.ether_type);
    }
    match (&l.net, h.net.as_ref().unwrap()) {
        (Net::Ipv4(ip), NetHeaders::Ipv4(e, _)) => {
            assert_eq!(ip.src_addr().octets(), e.source);
            assert_eq!(ip.dst_addr().octets(), e.destination);
            assert_eq!(ip.ttl(), e.time_to_live);
            assert_eq!(ip.protocol(), e.protocol);
            assert_eq!(ip.total_len(), e.total_len);
            assert_eq!(ip.ident(), e.identification);
            assert_eq!(ip.checksum(), e.header_checksum);
            assert_eq!(ip.options(), e.options.as_slice());
            assert_eq!(ip.dont_fragment(), e.dont_fragment);
            assert_eq!(ip.more_fragments(), e.more_fragments);
            assert_eq!(ip.frag_offset(), e.fragment_offset.value());
            assert_eq!(ip.dscp(), e.dscp.value());
            assert_eq!(ip.ecn(), e.ecn.value());
            assert_eq!(ip.header_len(), e.header_len());
        }
        (Net::Ipv6(ip), NetHeaders::Ipv6(e, x)) => {
            assert_eq!(ip.src_addr().octets(), e.source);
            assert_eq!(ip.dst_addr().octets(), e.destination);
            assert_eq!(ip.hop_limit(), e.hop_limit);
            assert_eq!(ip.next_header(), e.next_header);
            assert_eq!(ip.payload_len(), e.payload_length);
            assert_eq!(ip.flow_label(), e.flow_label.value());
            assert_eq!(ip.traffic_class(), e.traffic_class);
            assert_eq!(ip.ext_headers().len(), x.header_len());
        }
        (n, e) => panic!("{n:?} vs {e:?}"),
    }
    match (&l.transport, h.transport.as_ref().unwrap()) {
        (Transport::Udp(u), TransportHeader::Udp(e)) => {
            assert_eq!(u.src_port(), e.source_port);
            assert_eq!(u.dst_port(), e.destination_port);
            assert_eq!(u.len(), e.length);
            assert_eq!(u.checksum(), e.checksum);
        }
        (Transport::Tcp(t), TransportHeader::Tcp(e)) => {
            assert_eq!(t.src_port(), e.source_port);
            assert_eq!(t.dst_port(), e.destination_port);
            assert_eq!(t.seq_number(), e.sequence_number);
            assert_eq!(t.ack_number(), e.acknowledgment_number);
            assert_eq!(t.window(), e.window_size);
            assert_eq!(t.checksum(), e.checksum);
            assert_eq!(t.urgent_ptr(), e.urgent_pointer);
            assert_eq!(t.options(), e.options.as_slice());
            assert_eq!(t.header_len(), e.header_len());
            let f = t.flags();
            use crate::proto::TcpFlags as F;
            assert_eq!(f.contains(F::SYN), e.syn);
            assert_eq!(f.contains(F::ACK), e.ack);
            assert_eq!(f.contains(F::FIN), e.fin);
            assert_eq!(f.contains(F::PSH), e.psh);
            assert_eq!(f.contains(F::RST), e.rst);
            assert_eq!(f.contains(F::URG), e.urg);
            assert_eq!(f.contains(F::ECE), e.ece);
            assert_eq!(f.contains(F::CWR), e.cwr);
            assert_eq!(f.contains(F::NS), e.ns);
        }
        (Transport::Icmpv4(i), TransportHeader::Icmpv4(e)) => {
            assert_eq!(i.msg_type(), e.to_bytes()[0]);
            assert_eq!(i.code(), e.to_bytes()[1]);
            assert_eq!(i.checksum(), e.checksum);
        }
        (Transport::Icmpv6(i), TransportHeader::Icmpv6(e)) => {
            assert_eq!(i.msg_type(), e.icmp_type.type_u8());
            assert_eq!(i.code(), e.icmp_type.code_u8());
            assert_eq!(i.checksum(), e.checksum);
        }
        (t, e) => panic!("{t:?} vs {e:?}"),
    }
    assert_eq!(l.payload(), h.payload.slice());
    // Offsets agree with etherparse's slices.
    let s = etherparse::SlicedPacket::from_ethernet(buf).unwrap();
    let ip_payload = s.ip_payload().unwrap().payload;
    let m = l.meta();
    assert_eq!(
        &buf[m.transport_offset..m.transport_offset + ip_payload.len()],
        ip_payload
    );
    assert_eq!(
        m.transport_offset + ip_payload.len(),
        m.net_offset + m.net_len
    );
}

fn full_recompute(buf: &[u8]) -> Vec<u8> {
    let mut c = buf.to_vec();
    edit::recompute_checksums(&mut c).unwrap();
    c
}

/// After an edit: etherparse parses, checksums verify with etherparse's
/// calculators, ours agree, and the incremental result equals a full
/// recompute.
fn assert_checksums(buf: &[u8]) {
    assert!(etherparse_checksums_ok(buf));
    assert!(edit::checksums_valid(buf).unwrap());
    assert_eq!(full_recompute(buf), buf, "incremental == full recompute");
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    SwapMacs,
    SwapIps,
    SwapPorts,
    Ttl(u8),
    SrcIp([u8; 16]),
    DstIp([u8; 16]),
    SrcPort(u16),
    DstPort(u16),
    EchoReply,
    UdpReply,
    UdpLen(usize),
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::SwapMacs),
        Just(Op::SwapIps),
        Just(Op::SwapPorts),
        any::<u8>().prop_map(Op::Ttl),
        any::<[u8; 16]>().prop_map(Op::SrcIp),
        any::<[u8; 16]>().prop_map(Op::DstIp),
        any::<u16>().prop_map(Op::SrcPort),
        any::<u16>().prop_map(Op::DstPort),
        Just(Op::EchoReply),
        Just(Op::UdpReply),
        (0..300usize).prop_map(Op::UdpLen),
    ]
}

fn addr_for(buf: &[u8], raw: [u8; 16]) -> IpAddr {
    match Layers::parse(buf).unwrap().net {
        Net::Ipv6(_) => IpAddr::V6(Ipv6Addr::from(raw)),
        _ => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
    }
}

/// Applies `op`, checks the values etherparse reads back, returns whether
/// it applied.
pub(super) fn apply_and_check(buf: &mut Vec<u8>, op: &Op) -> bool {
    let orig = buf.clone();
    let before = PacketHeaders::from_ethernet_slice(&orig).unwrap();
    let (b_net, b_tr) = (
        before.net.clone().unwrap(),
        before.transport.clone().unwrap(),
    );
    let b_eth = before.link.clone().unwrap().ethernet2().unwrap();
    let res = match op {
        Op::SwapMacs => edit::swap_macs(buf),
        Op::SwapIps => edit::swap_ips(buf),
        Op::SwapPorts => edit::swap_ports(buf),
        Op::Ttl(t) => edit::set_ttl(buf, *t),
        Op::SrcIp(a) => edit::set_src_ip(buf, addr_for(&orig, *a)),
        Op::DstIp(a) => edit::set_dst_ip(buf, addr_for(&orig, *a)),
        Op::SrcPort(p) => edit::set_src_port(buf, *p),
        Op::DstPort(p) => edit::set_dst_port(buf, *p),
        Op::EchoReply => edit::icmp_echo_reply_in_place(buf),
        Op::UdpReply => edit::udp_reply_in_place(buf),
        Op::UdpLen(n) => {
            let m = Layers::parse(buf).unwrap().meta();
            buf.resize(m.payload_offset + 300, 0x5a);
            match edit::set_udp_payload_len(buf, *n) {
                Ok(len) => {
                    buf.truncate(len);
                    Ok(())
                }
                Err(e) => {
                    let old_end = m.transport_offset + m.transport_len;
                    buf.truncate(old_end.max(m.net_offset + m.net_len));
                    Err(e)
                }
            }
        }
    };
    if res.is_err() {
        return false;
    }
    let after = PacketHeaders::from_ethernet_slice(buf).unwrap();
    let (a_net, a_tr) = (after.net.clone().unwrap(), after.transport.clone().unwrap());
    let a_eth = after.link.clone().unwrap().ethernet2().unwrap();
    let ips = |n: &NetHeaders| -> ([u8; 16], [u8; 16]) {
        match n {
            NetHeaders::Ipv4(h, _) => {
                let mut s = [0; 16];
                let mut d = [0; 16];
                s[..4].copy_from_slice(&h.source);
                d[..4].copy_from_slice(&h.destination);
                (s, d)
            }
            NetHeaders::Ipv6(h, _) => (h.source, h.destination),
            NetHeaders::Arp(_) => panic!(),
        }
    };
    let ports = |t: &TransportHeader| -> Option<(u16, u16)> {
        match t {
            TransportHeader::Udp(u) => Some((u.source_port, u.destination_port)),
            TransportHeader::Tcp(t) => Some((t.source_port, t.destination_port)),
            _ => None,
        }
    };
    let v4 = matches!(b_net, NetHeaders::Ipv4(..));
    let mask = |a: [u8; 16]| {
        if v4 {
            let mut m = [0; 16];
            m[..4].copy_from_slice(&a[..4]);
            m
        } else {
            a
        }
    };
    let (bs, bd) = ips(&b_net);
    let (as_, ad) = ips(&a_net);
    match op {
        Op::SwapMacs => {
            assert_eq!(
                (a_eth.source, a_eth.destination),
                (b_eth.destination, b_eth.source)
            )
        }
        Op::SwapIps => assert_eq!((as_, ad), (bd, bs)),
        Op::SwapPorts => {
            let (s, d) = ports(&b_tr).unwrap();
            assert_eq!(ports(&a_tr), Some((d, s)));
        }
        Op::Ttl(t) => match &a_net {
            NetHeaders::Ipv4(h, _) => assert_eq!(h.time_to_live, *t),
            NetHeaders::Ipv6(h, _) => assert_eq!(h.hop_limit, *t),
            NetHeaders::Arp(_) => panic!(),
        },
        Op::SrcIp(a) => assert_eq!((as_, ad), (mask(*a), bd)),
        Op::DstIp(a) => assert_eq!((as_, ad), (bs, mask(*a))),
        Op::SrcPort(p) => assert_eq!(ports(&a_tr).unwrap().0, *p),
        Op::DstPort(p) => assert_eq!(ports(&a_tr).unwrap().1, *p),
        Op::EchoReply => {
            assert_eq!((as_, ad), (bd, bs));
            match &a_tr {
                TransportHeader::Icmpv4(i) => assert_eq!(i.to_bytes()[0], 0),
                TransportHeader::Icmpv6(i) => assert_eq!(i.icmp_type.type_u8(), 129),
                _ => panic!(),
            }
            assert_eq!(after.payload.slice(), before.payload.slice());
        }
        Op::UdpReply => {
            assert_eq!((as_, ad), (bd, bs));
            let (s, d) = ports(&b_tr).unwrap();
            assert_eq!(ports(&a_tr), Some((d, s)));
            assert_eq!(a_eth.source, b_eth.destination);
            assert_eq!(after.payload.slice(), before.payload.slice());
        }
        Op::UdpLen(n) => {
            assert_eq!(after.payload.slice().len(), *n);
            let keep = (*n).min(before.payload.slice().len());
            assert_eq!(
                &after.payload.slice()[..keep],
                &before.payload.slice()[..keep]
            );
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn reads_equal_etherparse(spec in spec()) {
        let buf = spec.build();
        assert_same_as_etherparse(&buf);
        // Ethernet padding after the packet changes nothing.
        let mut padded = buf.clone();
        padded.extend_from_slice(&[0xaa; 17]);
        assert_same_as_etherparse(&padded);
    }

    #[test]
    fn single_edit_reads_back_and_checksums_verify(spec in spec(), op in op()) {
        let mut buf = spec.build();
        let applied = apply_and_check(&mut buf, &op);
        // edits that apply to every IP frame must have applied
        if matches!(op, Op::SwapMacs | Op::SwapIps | Op::Ttl(_) | Op::SrcIp(_) | Op::DstIp(_)) {
            prop_assert!(applied);
        }
        if let (Op::UdpReply | Op::SwapPorts | Op::SrcPort(_), Kind::Udp) = (&op, &spec.kind) {
            prop_assert!(applied);
        }
        if let (Op::EchoReply, Kind::Icmp) = (&op, &spec.kind) {
            prop_assert!(applied);
        }
        assert_checksums(&buf);
        assert_same_as_etherparse(&buf);
    }

    #[test]
    fn edit_sequences_keep_checksums(spec in spec(), ops in vec(op(), 1..8), zero_udp in any::<bool>()) {
        let mut buf = spec.build();
        let zeroed = zero_udp && !spec.v6 && spec.kind == Kind::Udp;
        if zeroed {
            let m = Layers::parse(&buf).unwrap().meta();
            buf[m.transport_offset + 6] = 0;
            buf[m.transport_offset + 7] = 0;
        }
        for op in &ops {
            apply_and_check(&mut buf, op);
            assert_checksums(&buf);
        }
        if zeroed {
            let Transport::Udp(u) = Layers::parse(&buf).unwrap().transport else { panic!() };
            prop_assert_eq!(u.checksum(), 0);
        }
    }

    #[test]
    fn checksum_sum_matches_etherparse(data in vec(any::<u8>(), 0..600)) {
        // etherparse sums native-endian words: its result's native bytes
        // are the checksum's wire bytes.
        let theirs = etherparse::checksum::Sum16BitWords::new().add_slice(&data).ones_complement();
        prop_assert_eq!(checksum::checksum(&data), u16::from_be_bytes(theirs.to_ne_bytes()));
    }

    #[test]
    fn incremental_equals_full(mut data in vec(any::<u8>(), 2..200), idx in any::<prop::sample::Index>(), new in any::<u16>()) {
        // Keep one non-zero word so the all-zero corner case does not arise.
        data[0] |= 1;
        let words = data.len() / 2;
        let i = idx.index(words);
        let old = u16::from_be_bytes([data[2 * i], data[2 * i + 1]]);
        let before = checksum::checksum(&data);
        data[2 * i..2 * i + 2].copy_from_slice(&new.to_be_bytes());
        if data.iter().any(|b| *b != 0) {
            prop_assert_eq!(checksum::incremental_update16(before, old, new), checksum::checksum(&data));
        }
    }

    #[test]
    fn incremental32_and_bytes_equal_full(mut data in vec(any::<u8>(), 20..100), new in any::<[u8; 16]>()) {
        data[0] = 0x45;
        let before = checksum::checksum(&data);
        let old4: [u8; 4] = data[4..8].try_into().unwrap();
        data[4..8].copy_from_slice(&new[..4]);
        prop_assert_eq!(
            checksum::incremental_update32(before, u32::from_be_bytes(old4), u32::from_be_bytes(new[..4].try_into().unwrap())),
            checksum::checksum(&data)
        );
        let before = checksum::checksum(&data);
        let old16 = data[2..18].to_vec();
        data[2..18].copy_from_slice(&new);
        prop_assert_eq!(checksum::incremental_update_bytes(before, &old16, &new), checksum::checksum(&data));
    }
}
