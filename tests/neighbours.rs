//! The embedded object's neighbour responder, run with `BPF_PROG_TEST_RUN` on
//! frames built with etherparse: the XDP program (both variants, `xdp` and
//! `xdp.frags`) hands ARP requests and Neighbor Solicitations for a served address
//! to the kernel path untouched, and the `flux_nd` TC program turns them into the
//! exact reply etherparse builds and redirects it out; everything else is left to
//! the steering rules, untouched. The end-to-end behaviour with stock clients is in
//! tests/stock_clients.rs.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::icmpv6::NeighborAdvertisementHeader;
use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, Icmpv6Type, LinkExtHeader, PacketBuilder,
};
use fluxcapacitor::xdp::XdpProgram;
use fluxcapacitor::{Neighbours, SteeringFilter};
use proptest::prelude::*;

const XDP_PASS: u32 = 2;
const TC_ACT_OK: u32 = 0;
const TC_ACT_REDIRECT: u32 = 7;

const MAC: [u8; 6] = [0x02, 0xf1, 0x0c, 0, 0, 1];
const PEER_MAC: [u8; 6] = [0x02, 0xf1, 0x0c, 0, 0, 2];
const V4: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 1);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 2);
const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0xc8, 0, 0, 0, 1);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0xc8, 0, 0, 0, 2);

fn load(filter: &SteeringFilter, frags: bool) -> XdpProgram {
    XdpProgram::load("lo", 1, 1, frags, filter, false).expect("load the embedded program")
}

fn responder(v4: &[Ipv4Addr], v6: &[Ipv6Addr], mac: [u8; 6]) -> SteeringFilter {
    SteeringFilter {
        neighbours: Neighbours {
            ipv4: v4.to_vec(),
            ipv6: v6.to_vec(),
            mac: Some(mac),
        },
        ..Default::default()
    }
}

fn arp(op: ArpOperation, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let dst = if op == ArpOperation::REQUEST {
        [0xff; 6]
    } else {
        tha
    };
    let mut v = Vec::new();
    PacketBuilder::ethernet2(sha, dst)
        .arp(
            ArpPacket::new(
                ArpHardwareId::ETHERNET,
                EtherType::IPV4,
                op,
                &sha,
                &spa.octets(),
                &tha,
                &tpa.octets(),
            )
            .unwrap(),
        )
        .write(&mut v)
        .unwrap();
    v
}

/// The reply the responder must send for an ARP request from (sha, spa).
fn arp_reply(mac: [u8; 6], ip: Ipv4Addr, sha: [u8; 6], spa: Ipv4Addr) -> Vec<u8> {
    let mut v = arp(ArpOperation::REPLY, mac, ip, sha, spa);
    // Ethernet: to the requester, from us.
    v[0..6].copy_from_slice(&sha);
    v[6..12].copy_from_slice(&mac);
    v
}

/// Solicited-node multicast address and MAC of `target`.
fn solicited_node(target: Ipv6Addr) -> (Ipv6Addr, [u8; 6]) {
    let t = target.octets();
    let a = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let o = a.octets();
    (a, [0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A Neighbor Solicitation for `target` from (mac, src), with the source
/// link-layer address option or without.
fn ns(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr, slla: bool, hop: u8) -> Vec<u8> {
    let (dst, dst_mac) = solicited_node(target);
    let mut body = target.octets().to_vec();
    if slla {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&mac);
    }
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac, dst_mac)
        .ipv6(src.octets(), dst.octets(), hop)
        .icmpv6(Icmpv6Type::NeighborSolicitation)
        .write(&mut v, &body)
        .unwrap();
    v
}

/// The advertisement the responder must send for a solicitation from (mac, src).
fn na(our_mac: [u8; 6], target: Ipv6Addr, to_mac: [u8; 6], to: Ipv6Addr) -> Vec<u8> {
    let mut body = target.octets().to_vec();
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&our_mac);
    let mut v = Vec::new();
    PacketBuilder::ethernet2(our_mac, to_mac)
        .ipv6(target.octets(), to.octets(), 255)
        .icmpv6(Icmpv6Type::NeighborAdvertisement(
            NeighborAdvertisementHeader {
                router: false,
                solicited: true,
                r#override: true,
            },
        ))
        .write(&mut v, &body)
        .unwrap();
    v
}

/// Runs `frame` through both halves: the XDP program passes it on untouched (and
/// counts it), the TC program answers it with `want`.
fn assert_answer(p: &mut XdpProgram, frame: &[u8], want: &[u8]) {
    let before = p.counters(0).unwrap();
    let (act, out) = p.test_run(frame).expect("XDP test run");
    assert_eq!((act, out.as_slice()), (XDP_PASS, frame), "XDP half");
    let after = p.counters(0).unwrap();
    assert_eq!(after.nd_requests, before.nd_requests + 1, "{after:?}");
    assert_eq!(after.passed, before.passed, "counted as passed: {after:?}");
    let (act, out) = p.test_run_responder(frame).expect("TC test run");
    assert_eq!(act, TC_ACT_REDIRECT, "not answered: {frame:02x?}");
    assert_eq!(out, want, "wrong answer");
}

/// Runs `frame` through the TC half; asserts it was not answered or changed.
fn assert_left_alone(p: &mut XdpProgram, frame: &[u8], what: &str) {
    let (act, out) = p.test_run_responder(frame).expect("TC test run");
    assert_eq!(act, TC_ACT_OK, "{what}: answered");
    assert_eq!(out, frame, "{what}: changed");
}

#[test]
fn arp_requests_for_served_addresses_are_answered_in_both_variants() {
    if common::skip_without_root() {
        return;
    }
    let other = Ipv4Addr::new(198, 18, 200, 9);
    for frags in [false, true] {
        let mut p = load(&responder(&[other, V4], &[], MAC), frags);
        for ip in [V4, other] {
            let req = arp(ArpOperation::REQUEST, PEER_MAC, PEER_V4, [0; 6], ip);
            assert_answer(&mut p, &req, &arp_reply(MAC, ip, PEER_MAC, PEER_V4));
        }
        assert_eq!(p.neighbour_replies().unwrap(), 2);
        let not = [
            (
                arp(
                    ArpOperation::REQUEST,
                    PEER_MAC,
                    PEER_V4,
                    [0; 6],
                    Ipv4Addr::new(198, 18, 200, 3),
                ),
                "request for another address",
            ),
            (
                arp(ArpOperation::REPLY, PEER_MAC, PEER_V4, MAC, V4),
                "a reply",
            ),
            (
                arp(ArpOperation::REQUEST, PEER_MAC, V4, [0; 6], V4),
                "a gratuitous request",
            ),
        ];
        for (f, what) in &not {
            assert_left_alone(&mut p, f, what);
        }
        // A tagged request is steered, not answered.
        let mut tagged = Vec::new();
        PacketBuilder::ethernet2(PEER_MAC, [0xff; 6])
            .single_vlan(etherparse::VlanId::try_new(5).unwrap())
            .arp(
                ArpPacket::new(
                    ArpHardwareId::ETHERNET,
                    EtherType::IPV4,
                    ArpOperation::REQUEST,
                    &PEER_MAC,
                    &PEER_V4.octets(),
                    &[0; 6],
                    &V4.octets(),
                )
                .unwrap(),
            )
            .write(&mut tagged)
            .unwrap();
        assert_left_alone(&mut p, &tagged, "a VLAN-tagged request");
    }
}

#[test]
fn neighbor_solicitations_for_served_addresses_get_advertisements() {
    if common::skip_without_root() {
        return;
    }
    let other = Ipv6Addr::new(0x2001, 2, 0, 0xc8, 0, 0, 0, 0x99);
    for frags in [false, true] {
        let mut p = load(&responder(&[], &[V6, other], MAC), frags);
        for target in [V6, other] {
            for slla in [true, false] {
                let s = ns(PEER_MAC, PEER_V6, target, slla, 255);
                assert_answer(&mut p, &s, &na(MAC, target, PEER_MAC, PEER_V6));
            }
        }
        // A link-local soliciting address, as a kernel uses for its first probe.
        let ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xf1, 0xcff, 0xfe00, 2);
        assert_answer(
            &mut p,
            &ns(PEER_MAC, ll, V6, true, 255),
            &na(MAC, V6, PEER_MAC, ll),
        );
        assert_eq!(p.neighbour_replies().unwrap(), 5);

        let mut bad_sum = ns(PEER_MAC, PEER_V6, V6, true, 255);
        bad_sum[14 + 40 + 2] ^= 0x40;
        let mut long = ns(PEER_MAC, PEER_V6, V6, true, 255);
        long.extend_from_slice(&[0; 8]); // trailing bytes after the IPv6 packet
        let not = [
            (
                ns(
                    PEER_MAC,
                    PEER_V6,
                    Ipv6Addr::new(0x2001, 2, 0, 0xc8, 0, 0, 0, 3),
                    true,
                    255,
                ),
                "solicitation for another address",
            ),
            (ns(PEER_MAC, PEER_V6, V6, true, 64), "hop limit not 255"),
            (
                ns(PEER_MAC, Ipv6Addr::UNSPECIFIED, V6, false, 255),
                "a DAD probe",
            ),
            (bad_sum, "a wrong checksum"),
            (long, "bytes after the packet"),
        ];
        for (f, what) in &not {
            assert_left_alone(&mut p, f, what);
        }
    }
}

#[test]
fn without_a_responder_neighbour_traffic_is_steered_as_before() {
    if common::skip_without_root() {
        return;
    }
    let req = arp(ArpOperation::REQUEST, PEER_MAC, PEER_V4, [0; 6], V4);
    let sol = ns(PEER_MAC, PEER_V6, V6, true, 255);
    // Empty rules: everything goes to the socket (XDP_PASS here, as no socket is
    // registered in a test run), unchanged.
    let mut p = load(&SteeringFilter::default(), false);
    for f in [&req, &sol, &req] {
        assert_eq!(p.test_run(f).unwrap(), (XDP_PASS, f.to_vec()));
    }
    let c = p.counters(0).unwrap();
    assert_eq!((c.passed, c.filtered, c.nd_requests), (3, 0, 0), "{c:?}");
    // An address rule redirects the ARP for that address (counted as "passed" for
    // want of a socket) and filters the rest.
    let mut p = load(
        &SteeringFilter {
            dst_ipv4: Some(V4),
            ..Default::default()
        },
        false,
    );
    assert_eq!(p.test_run(&req).unwrap(), (XDP_PASS, req.clone()));
    let c = p.counters(0).unwrap();
    assert_eq!((c.passed, c.filtered), (1, 0), "{c:?}");
}

#[test]
fn an_address_rule_of_one_family_filters_the_other_family() {
    if common::skip_without_root() {
        return;
    }
    let udp4 = {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(PEER_MAC, MAC)
            .ipv4(PEER_V4.octets(), V4.octets(), 64)
            .udp(40000, 7)
            .write(&mut v, b"x")
            .unwrap();
        v
    };
    let udp6 = {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(PEER_MAC, MAC)
            .ipv6(PEER_V6.octets(), V6.octets(), 64)
            .udp(40000, 7)
            .write(&mut v, b"x")
            .unwrap();
        v
    };
    let cases = [
        (Some(V4), None, (1, 1)),
        (None, Some(V6), (1, 1)),
        (Some(V4), Some(V6), (2, 0)),
    ];
    for (v4, v6, want) in cases {
        let mut p = load(&SteeringFilter::serving(v4, v6), false);
        p.test_run(&udp4).unwrap();
        p.test_run(&udp6).unwrap();
        let c = p.counters(0).unwrap();
        assert_eq!((c.passed, c.filtered), want, "rules {v4:?} {v6:?}: {c:?}");
    }
}

#[test]
fn the_interface_mac_is_the_default() {
    if common::skip_without_root() {
        return;
    }
    let pair = common::VethPair::new(common::VethOpts::default());
    let f = SteeringFilter::serving(Some(pair.host_ip), None);
    let mut p = XdpProgram::load(&pair.host, pair.host_ifindex, 1, false, &f, false).unwrap();
    let req = arp(
        ArpOperation::REQUEST,
        PEER_MAC,
        PEER_V4,
        [0; 6],
        pair.host_ip,
    );
    assert_answer(
        &mut p,
        &req,
        &arp_reply(pair.host_mac, pair.host_ip, PEER_MAC, PEER_V4),
    );
}

fn v6_addr() -> impl Strategy<Value = Ipv6Addr> {
    // Global unicast addresses of 2001:2::/48 with any interface part.
    any::<[u8; 16]>().prop_map(|mut a| {
        a[..6].copy_from_slice(&[0x20, 0x01, 0, 2, 0, 0]);
        Ipv6Addr::from(a)
    })
}

fn unicast_mac() -> impl Strategy<Value = [u8; 6]> {
    any::<[u8; 6]>().prop_map(|mut m| {
        m[0] &= 0xfe;
        m
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any served address, any MAC, any requester: the answer is byte for byte
    /// what etherparse builds (checksum included).
    #[test]
    fn answers_equal_etherparse(
        mac in unicast_mac(),
        peer_mac in unicast_mac(),
        v4 in any::<[u8; 4]>(),
        peer_v4 in any::<[u8; 4]>(),
        v6 in v6_addr(),
        peer_v6 in v6_addr(),
        slla in any::<bool>(),
        frags in any::<bool>(),
    ) {
        if common::skip_without_root() {
            return Ok(());
        }
        let (v4, peer_v4) = (Ipv4Addr::from(v4), Ipv4Addr::from(peer_v4));
        prop_assume!(v4 != peer_v4 && v6 != peer_v6);
        let mut p = load(&responder(&[v4], &[v6], mac), frags);
        let req = arp(ArpOperation::REQUEST, peer_mac, peer_v4, [0; 6], v4);
        assert_answer(&mut p, &req, &arp_reply(mac, v4, peer_mac, peer_v4));
        let s = ns(peer_mac, peer_v6, v6, slla, 255);
        prop_assert_eq!(p.test_run(&s).unwrap(), (XDP_PASS, s.clone()));
        let (act, out) = p.test_run_responder(&s).unwrap();
        prop_assert_eq!(act, TC_ACT_REDIRECT);
        prop_assert_eq!(&out, &na(mac, v6, peer_mac, peer_v6));
        // etherparse agrees that it is a valid advertisement.
        let h = etherparse::PacketHeaders::from_ethernet_slice(&out).unwrap();
        prop_assert!(h.link_exts.iter().all(|e| !matches!(e, LinkExtHeader::Vlan(_))));
        let Some(etherparse::TransportHeader::Icmpv6(i)) = h.transport else { panic!() };
        let Some(etherparse::NetHeaders::Ipv6(ip, _)) = h.net else { panic!() };
        prop_assert_eq!(
            i.checksum,
            i.icmp_type.calc_checksum(ip.source, ip.destination, h.payload.slice()).unwrap()
        );
    }
}
