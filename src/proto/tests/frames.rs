//! Whole-frame unit tests on hand-built frames.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    ArpHardwareId, ArpOperation, EtherType, IpNumber, NetHeaders, PacketBuilder, PacketHeaders,
    TransportHeader,
};

use super::util::{etherparse_checksums_ok, Kind, Spec};
use crate::proto::edit;
use crate::proto::{Layer, Layers, Net, NetKind, ProtoError, Transport, TransportKind};

#[test]
fn udp_ipv4_plain() {
    let buf = Spec::default().build();
    let l = Layers::parse(&buf).unwrap();
    assert_eq!(l.eth.src(), [2, 0, 0, 0, 0, 1]);
    assert_eq!(l.eth.ethertype(), EtherType::IPV4);
    assert!(l.vlans.is_empty());
    let Net::Ipv4(ip) = l.net else { panic!() };
    assert_eq!(ip.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
    let Transport::Udp(u) = l.transport else {
        panic!()
    };
    assert_eq!((u.src_port(), u.dst_port()), (40000, 7));
    assert_eq!(l.payload(), b"hello");
    let m = l.meta();
    assert_eq!(m.net, NetKind::Ipv4);
    assert_eq!(m.transport, TransportKind::Udp);
    assert_eq!((m.net_offset, m.net_header_len, m.net_len), (14, 20, 33));
    assert_eq!((m.transport_offset, m.transport_len), (34, 13));
    assert_eq!((m.payload_offset, m.payload_len), (42, 5));
    assert_eq!(m.ip_proto, Some(IpNumber::UDP));
    assert!(edit::checksums_valid(&buf).unwrap());
}

#[test]
fn single_and_double_vlan() {
    for vlans in [vec![100], vec![10, 20]] {
        let buf = Spec {
            vlans: vlans.clone(),
            ..Spec::default()
        }
        .build();
        let l = Layers::parse(&buf).unwrap();
        let tags = l.vlans.as_slice();
        assert_eq!(tags.len(), vlans.len());
        for (t, id) in tags.iter().zip(&vlans) {
            assert_eq!(t.vid(), *id);
            assert_eq!(t.pcp(), 0);
            assert!(!t.dei());
        }
        if vlans.len() == 2 {
            assert_eq!(tags[0].tpid, EtherType::PROVIDER_BRIDGING);
            assert_eq!(tags[0].inner_ethertype, EtherType::VLAN_TAGGED_FRAME);
            assert_eq!(tags[1].offset, 18);
        } else {
            assert_eq!(tags[0].tpid, EtherType::VLAN_TAGGED_FRAME);
        }
        assert_eq!(l.meta().net_offset, 14 + 4 * vlans.len());
        assert_eq!(l.meta().ethertype, EtherType::IPV4);
        assert!(matches!(l.transport, Transport::Udp(_)));
    }
}

#[test]
fn too_many_vlan_tags_is_other() {
    // Four 802.1Q tags: etherparse (and we) stop after three.
    let mut buf = vec![0u8; 12];
    for _ in 0..4 {
        buf.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    }
    buf.extend_from_slice(&[0x08, 0x00]);
    buf.extend_from_slice(&[0; 30]);
    let l = Layers::parse(&buf).unwrap();
    assert_eq!(l.vlans.len(), 3);
    assert_eq!(l.net, Net::Other(EtherType::VLAN_TAGGED_FRAME));
    assert_eq!(l.transport, Transport::None);
}

#[test]
fn ipv4_options_and_tcp_options() {
    let spec = Spec {
        ipv4_options: vec![0x94, 4, 0, 0, 1, 1, 1, 0], // router alert, NOPs, EOL
        kind: Kind::Tcp {
            options: vec![2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1],
            flags: 3,
        },
        ..Spec::default()
    };
    let buf = spec.build();
    let l = Layers::parse(&buf).unwrap();
    let Net::Ipv4(ip) = l.net else { panic!() };
    assert_eq!(ip.header_len(), 28);
    assert_eq!(ip.options(), &spec.ipv4_options[..]);
    let Transport::Tcp(t) = l.transport else {
        panic!()
    };
    assert_eq!(t.header_len(), 32);
    assert_eq!(t.options(), &[2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1]);
    assert_eq!(t.options_iter().count(), 6);
    assert!(t
        .flags()
        .contains(crate::proto::TcpFlags::SYN | crate::proto::TcpFlags::ACK));
    assert_eq!(l.payload(), b"hello");
    assert_eq!(l.meta().payload_offset, 14 + 28 + 32);
    assert!(edit::checksums_valid(&buf).unwrap());
}

#[test]
fn ipv6_extension_headers() {
    let spec = Spec {
        v6: true,
        ipv6_exts: true,
        ..Spec::default()
    };
    let buf = spec.build();
    let l = Layers::parse(&buf).unwrap();
    let Net::Ipv6(ip) = l.net else { panic!() };
    assert_eq!(ip.next_header(), IpNumber::IPV6_HEADER_HOP_BY_HOP);
    assert_eq!(ip.ext_headers().len(), 24);
    assert_eq!(ip.upper_layer_protocol(), IpNumber::UDP);
    let m = l.meta();
    assert_eq!(m.transport_offset, 14 + 40 + 24);
    assert_eq!(l.payload(), b"hello");
    assert!(edit::checksums_valid(&buf).unwrap());
}

#[test]
fn icmp_echo_replies() {
    for v6 in [false, true] {
        let spec = Spec {
            v6,
            kind: Kind::Icmp,
            payload: b"abcdefgh".to_vec(),
            ..Spec::default()
        };
        let mut buf = spec.build();
        edit::icmp_echo_reply_in_place(&mut buf).unwrap();
        assert!(etherparse_checksums_ok(&buf));
        let h = PacketHeaders::from_ethernet_slice(&buf).unwrap();
        let eth = h.link.unwrap().ethernet2().unwrap();
        assert_eq!(eth.source, spec.dst_mac);
        assert_eq!(eth.destination, spec.src_mac);
        match (h.net.unwrap(), h.transport.unwrap()) {
            (NetHeaders::Ipv4(ip, _), TransportHeader::Icmpv4(i)) => {
                assert_eq!(ip.source, spec.dst4);
                assert_eq!(i.to_bytes()[0], 0);
            }
            (NetHeaders::Ipv6(ip, _), TransportHeader::Icmpv6(i)) => {
                assert_eq!(ip.source, spec.dst6);
                assert_eq!(i.icmp_type.type_u8(), 129);
            }
            _ => panic!(),
        }
        // A reply is not a request.
        assert!(matches!(
            edit::icmp_echo_reply_in_place(&mut buf),
            Err(ProtoError::WrongType { .. })
        ));
    }
    let mut udp = Spec::default().build();
    assert_eq!(
        edit::icmp_echo_reply_in_place(&mut udp),
        Err(ProtoError::Missing {
            expected: Layer::Icmpv4
        })
    );
}

fn arp_frame(op: ArpOperation) -> Vec<u8> {
    let arp = etherparse::ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        op,
        &[2, 0, 0, 0, 0, 1],
        &[10, 0, 0, 1],
        &[0; 6],
        &[10, 0, 0, 2],
    )
    .unwrap();
    let mut v = vec![];
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [0xff; 6])
        .arp(arp)
        .write(&mut v)
        .unwrap();
    v.resize(60, 0); // minimum frame size padding
    v
}

#[test]
fn arp_reply() {
    let mut buf = arp_frame(ArpOperation::REQUEST);
    let l = Layers::parse(&buf).unwrap();
    let Net::Arp(a) = l.net else { panic!() };
    assert_eq!(a.target_ip(), Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(l.transport, Transport::None);
    assert!(l.payload().is_empty());
    let ours = [2, 0, 0, 0, 0, 2];
    edit::arp_reply_in_place(&mut buf, ours).unwrap();
    let h = PacketHeaders::from_ethernet_slice(&buf).unwrap();
    let eth = h.link.unwrap().ethernet2().unwrap();
    assert_eq!(eth.source, ours);
    assert_eq!(eth.destination, [2, 0, 0, 0, 0, 1]);
    let Some(NetHeaders::Arp(arp)) = h.net else {
        panic!()
    };
    assert_eq!(arp.operation, ArpOperation::REPLY);
    assert_eq!(arp.sender_hw_addr(), &ours);
    assert_eq!(arp.sender_protocol_addr(), &[10, 0, 0, 2]);
    assert_eq!(arp.target_hw_addr(), &[2, 0, 0, 0, 0, 1]);
    assert_eq!(arp.target_protocol_addr(), &[10, 0, 0, 1]);
    // Not a request any more: nothing changes.
    let before = buf.clone();
    assert!(edit::arp_reply_in_place(&mut buf, [9; 6]).is_err());
    assert_eq!(before, buf);
    let mut udp = Spec::default().build();
    assert_eq!(
        edit::arp_reply_in_place(&mut udp, ours),
        Err(ProtoError::Missing {
            expected: Layer::Arp
        })
    );
}

#[test]
fn udp_reply_and_resize() {
    for v6 in [false, true] {
        for vlans in [vec![], vec![7], vec![1, 2]] {
            let spec = Spec {
                v6,
                vlans,
                ipv6_exts: v6,
                payload: b"question".to_vec(),
                ..Spec::default()
            };
            let mut buf = spec.build();
            let orig_len = buf.len();
            buf.resize(1600, 0xee);
            edit::udp_reply_in_place(&mut buf).unwrap();
            assert!(etherparse_checksums_ok(&buf));
            let m = Layers::parse(&buf).unwrap().meta();
            let max = edit::max_udp_payload_len(&buf).unwrap();
            assert_eq!(max, 1600 - m.payload_offset);
            // grow
            let answer = b"a considerably longer answer";
            buf[m.payload_offset..m.payload_offset + answer.len()].copy_from_slice(answer);
            let n = edit::set_udp_payload_len(&mut buf, answer.len()).unwrap();
            assert_eq!(n, m.payload_offset + answer.len());
            assert!(etherparse_checksums_ok(&buf[..n]));
            assert!(edit::checksums_valid(&buf[..n]).unwrap());
            let l = Layers::parse(&buf[..n]).unwrap();
            assert_eq!(l.payload(), answer);
            let Transport::Udp(u) = l.transport else {
                panic!()
            };
            assert_eq!((u.src_port(), u.dst_port()), (7, 40000));
            // shrink to nothing
            let n = edit::set_udp_payload_len(&mut buf, 0).unwrap();
            assert_eq!(n, m.payload_offset);
            assert!(etherparse_checksums_ok(&buf[..n]));
            // too large: nothing changes
            let before = buf.clone();
            assert!(matches!(
                edit::set_udp_payload_len(&mut buf, max + 1),
                Err(ProtoError::TooLarge { .. })
            ));
            assert_eq!(before, buf);
            assert!(orig_len > n);
        }
    }
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let mut buf = Spec::default().build();
    let m = Layers::parse(&buf).unwrap().meta();
    buf[m.transport_offset + 6] = 0;
    buf[m.transport_offset + 7] = 0;
    edit::set_src_ip(&mut buf, IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))).unwrap();
    edit::set_dst_port(&mut buf, 9).unwrap();
    edit::recompute_checksums(&mut buf).unwrap();
    edit::set_udp_payload_len(&mut buf, 2).unwrap();
    let l = Layers::parse(&buf).unwrap();
    let Transport::Udp(u) = l.transport else {
        panic!()
    };
    assert_eq!(u.checksum(), 0);
    assert!(edit::checksums_valid(&buf).unwrap());
}

#[test]
fn address_and_port_rewrites() {
    let cases = [
        Spec::default(),
        Spec {
            kind: Kind::Tcp {
                options: vec![],
                flags: 2,
            },
            ..Spec::default()
        },
        Spec {
            v6: true,
            ..Spec::default()
        },
        Spec {
            v6: true,
            kind: Kind::Icmp,
            ..Spec::default()
        },
        Spec {
            kind: Kind::Icmp,
            ..Spec::default()
        },
    ];
    for spec in cases {
        let mut buf = spec.build();
        let (a, b): (IpAddr, IpAddr) = if spec.v6 {
            (
                Ipv6Addr::new(0xfe80, 0, 0, 0, 1, 2, 3, 4).into(),
                Ipv6Addr::LOCALHOST.into(),
            )
        } else {
            (
                Ipv4Addr::new(192, 168, 9, 9).into(),
                Ipv4Addr::BROADCAST.into(),
            )
        };
        edit::set_src_ip(&mut buf, a).unwrap();
        edit::set_dst_ip(&mut buf, b).unwrap();
        edit::set_ttl(&mut buf, 1).unwrap();
        edit::swap_ips(&mut buf).unwrap();
        edit::swap_macs(&mut buf).unwrap();
        assert!(etherparse_checksums_ok(&buf), "{spec:?}");
        let l = Layers::parse(&buf).unwrap();
        match l.net {
            Net::Ipv4(ip) => {
                assert_eq!(IpAddr::V4(ip.dst_addr()), a);
                assert_eq!(IpAddr::V4(ip.src_addr()), b);
                assert_eq!(ip.ttl(), 1);
            }
            Net::Ipv6(ip) => {
                assert_eq!(IpAddr::V6(ip.dst_addr()), a);
                assert_eq!(ip.hop_limit(), 1);
            }
            _ => panic!(),
        }
        // wrong family
        let other: IpAddr = if spec.v6 {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        };
        let before = buf.clone();
        assert!(matches!(
            edit::set_src_ip(&mut buf, other),
            Err(ProtoError::AddressFamily { .. })
        ));
        assert_eq!(before, buf);
        // ports
        match spec.kind {
            Kind::Icmp => {
                assert!(edit::set_src_port(&mut buf, 1).is_err());
                assert!(edit::swap_ports(&mut buf).is_err());
            }
            _ => {
                edit::set_src_port(&mut buf, 1).unwrap();
                edit::set_dst_port(&mut buf, 65535).unwrap();
                edit::swap_ports(&mut buf).unwrap();
                assert!(etherparse_checksums_ok(&buf));
                let h = PacketHeaders::from_ethernet_slice(&buf).unwrap();
                match h.transport.unwrap() {
                    TransportHeader::Udp(u) => {
                        assert_eq!((u.source_port, u.destination_port), (65535, 1))
                    }
                    TransportHeader::Tcp(t) => {
                        assert_eq!((t.source_port, t.destination_port), (65535, 1))
                    }
                    _ => panic!(),
                }
            }
        }
        let full = {
            let mut c = buf.clone();
            edit::recompute_checksums(&mut c).unwrap();
            c
        };
        assert_eq!(full, buf, "incremental equals full recompute");
    }
}

#[test]
fn fragments_are_refused_for_transport_edits() {
    let mut buf = Spec::default().build();
    // set more-fragments
    buf[14 + 6] |= 0x20;
    edit::recompute_checksums(&mut buf).unwrap();
    let l = Layers::parse(&buf).unwrap();
    assert_eq!(l.transport, Transport::Fragment(IpNumber::UDP));
    assert_eq!(l.meta().transport, TransportKind::Fragment(IpNumber::UDP));
    let before = buf.clone();
    assert!(matches!(
        edit::udp_reply_in_place(&mut buf),
        Err(ProtoError::Fragmented { layer: Layer::Ipv4 })
    ));
    assert!(matches!(
        edit::swap_ports(&mut buf),
        Err(ProtoError::Fragmented { .. })
    ));
    assert!(matches!(
        edit::set_src_ip(&mut buf, Ipv4Addr::LOCALHOST.into()),
        Err(ProtoError::Fragmented { .. })
    ));
    assert_eq!(before, buf);
    // but IP-only edits work
    edit::set_ttl(&mut buf, 3).unwrap();
    edit::swap_ips(&mut buf).unwrap();
    assert!(edit::checksums_valid(&buf).unwrap());
}

#[test]
fn other_ethertype_and_protocol() {
    let mut buf = vec![0xffu8; 12];
    buf.extend_from_slice(&[0x88, 0xcc]); // LLDP
    buf.extend_from_slice(&[1, 2, 3]);
    let l = Layers::parse(&buf).unwrap();
    assert_eq!(l.net, Net::Other(EtherType(0x88cc)));
    assert_eq!(l.payload(), &[1, 2, 3]);
    assert_eq!(l.meta().payload_offset, 14);
    assert!(edit::swap_ips(&mut buf.clone()).is_err());
    edit::swap_macs(&mut buf).unwrap();

    // IPv4 carrying GRE (47)
    let mut v = vec![];
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 5)
        .write(&mut v, IpNumber(47), &[0, 0, 8, 0])
        .unwrap();
    let l = Layers::parse(&v).unwrap();
    assert_eq!(l.transport, Transport::Other(IpNumber(47)));
    assert_eq!(l.payload(), &[0, 0, 8, 0]);
    edit::set_src_ip(&mut v, Ipv4Addr::new(3, 3, 3, 3).into()).unwrap();
    assert!(edit::checksums_valid(&v).unwrap());
}

#[test]
fn lying_lengths_are_errors() {
    let good = Spec::default().build();
    // IPv4 total length beyond the frame
    let mut b = good.clone();
    b[16..18].copy_from_slice(&200u16.to_be_bytes());
    assert!(matches!(
        Layers::parse(&b),
        Err(ProtoError::Truncated {
            layer: Layer::Ipv4,
            ..
        })
    ));
    // IPv4 total length shorter than the header
    let mut b = good.clone();
    b[16..18].copy_from_slice(&10u16.to_be_bytes());
    assert!(matches!(
        Layers::parse(&b),
        Err(ProtoError::BadLength {
            layer: Layer::Ipv4,
            ..
        })
    ));
    // IHL too small
    let mut b = good.clone();
    b[14] = 0x43;
    assert!(matches!(
        Layers::parse(&b),
        Err(ProtoError::BadHeaderLen { .. })
    ));
    // UDP length beyond the IP payload
    let mut b = good.clone();
    b[38..40].copy_from_slice(&100u16.to_be_bytes());
    assert!(matches!(
        Layers::parse(&b),
        Err(ProtoError::Truncated {
            layer: Layer::Udp,
            ..
        })
    ));
    // UDP length below 8
    let mut b = good.clone();
    b[38..40].copy_from_slice(&3u16.to_be_bytes());
    assert!(matches!(
        Layers::parse(&b),
        Err(ProtoError::BadLength {
            layer: Layer::Udp,
            ..
        })
    ));
    // IPv6 payload length beyond the frame
    let mut b = Spec {
        v6: true,
        ..Spec::default()
    }
    .build();
    b[18..20].copy_from_slice(&999u16.to_be_bytes());
    assert!(matches!(
        Layers::parse(&b),
        Err(ProtoError::Truncated {
            layer: Layer::Ipv6,
            ..
        })
    ));
    // bad IPv6 extension chain: hop-by-hop after destination options
    let mut b = Spec {
        v6: true,
        ipv6_exts: true,
        ..Spec::default()
    }
    .build();
    b[14 + 6] = 60; // first header: destination options
    b[14 + 40] = 0; // next: hop-by-hop (not first)
    assert!(Layers::parse(&b).is_err());
    // truncated everywhere
    for n in 0..good.len() {
        assert!(Layers::parse(&good[..n]).is_err(), "len {n}");
    }
    // padding after the IP packet is fine and not part of it
    let mut b = good.clone();
    b.extend_from_slice(&[0; 20]);
    let l = Layers::parse(&b).unwrap();
    assert_eq!(l.payload(), b"hello");
    assert_eq!(l.meta().net_len, good.len() - 14);
}

#[test]
fn meta_views_are_checked() {
    let mut buf = Spec::default().build();
    let m = Layers::parse(&buf).unwrap().meta();
    assert!(m.ipv4_mut(&mut buf).is_ok());
    assert!(m.udp_mut(&mut buf).is_ok());
    assert!(m.tcp_mut(&mut buf).is_err() || m.transport != TransportKind::Tcp);
    assert!(m.ipv6_mut(&mut buf).is_err());
    assert!(m.arp_mut(&mut buf).is_err());
    // A different, shorter buffer: errors, no panic.
    let mut short = [0u8; 10];
    assert!(m.ipv4_mut(&mut short).is_err());
    assert!(m.udp_mut(&mut short).is_err());
    assert!(m.icmpv4_mut(&mut short).is_err());
    assert!(m.icmpv6_mut(&mut short).is_err());
    assert!(m.payload_mut(&mut short).is_empty());
    m.payload_mut(&mut buf).copy_from_slice(b"HELLO");
    edit::recompute_checksums(&mut buf).unwrap();
    assert_eq!(Layers::parse(&buf).unwrap().payload(), b"HELLO");
}
