//! Parses arbitrary bytes as an Ethernet frame and reads every field of
//! every layer found. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use fluxcapacitor::proto::{ArpPacket, EthernetFrame, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet, Layers, Net, TcpPacket, Transport, UdpPacket, VlanPacket};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

fn read_net(net: &Net<'_>) {
    match net {
        Net::Ipv4(ip) => {
            black_box((
                ip.version(),
                ip.header_len(),
                ip.dscp(),
                ip.ecn(),
                ip.total_len(),
                ip.ident(),
                ip.dont_fragment(),
                ip.more_fragments(),
                ip.frag_offset(),
                ip.ttl(),
                ip.protocol(),
                ip.checksum(),
                ip.src_addr(),
                ip.dst_addr(),
            ));
            black_box((
                ip.options(),
                ip.payload(),
                ip.upper_layer(),
                ip.verify_checksum(),
            ));
            black_box((
                ip.compute_checksum(),
                ip.pseudo_header_sum(8),
                ip.as_bytes(),
            ));
        }
        Net::Ipv6(ip) => {
            black_box((
                ip.version(),
                ip.traffic_class(),
                ip.flow_label(),
                ip.payload_len(),
                ip.total_len(),
                ip.next_header(),
                ip.hop_limit(),
                ip.src_addr(),
                ip.dst_addr(),
                ip.is_fragment(),
            ));
            black_box((
                ip.ext_headers(),
                ip.payload(),
                ip.upper_layer(),
                ip.pseudo_header_sum(8),
            ));
        }
        Net::Arp(a) => {
            black_box((
                a.hardware_type(),
                a.protocol_type(),
                a.operation(),
                a.sender_mac(),
                a.sender_ip(),
                a.target_mac(),
                a.target_ip(),
            ));
        }
        Net::Other(t) => {
            black_box(t);
        }
    }
}

fn read_transport(t: &Transport<'_>) {
    let (s, d) = (Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST);
    let (s6, d6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    match t {
        Transport::Udp(u) => {
            black_box((
                u.src_port(),
                u.dst_port(),
                u.len(),
                u.checksum(),
                u.payload(),
            ));
            black_box((u.verify_checksum_v4(s, d), u.verify_checksum_v6(s6, d6)));
        }
        Transport::Tcp(t) => {
            black_box((
                t.src_port(),
                t.dst_port(),
                t.seq_number(),
                t.ack_number(),
                t.flags(),
                t.window(),
                t.checksum(),
                t.urgent_ptr(),
                t.options(),
                t.payload(),
            ));
            for o in t.options_iter() {
                let _ = black_box(o);
            }
            black_box(t.verify_checksum(t.pseudo_header_sum_v4(s, d)));
        }
        Transport::Icmpv4(i) => {
            black_box((
                i.msg_type(),
                i.code(),
                i.checksum(),
                i.echo_ident(),
                i.echo_seq(),
            ));
            black_box((i.payload(), i.verify_checksum(), i.compute_checksum()));
        }
        Transport::Icmpv6(i) => {
            black_box((
                i.msg_type(),
                i.code(),
                i.checksum(),
                i.rest_of_header(),
                i.payload(),
            ));
            black_box(i.verify_checksum(s6, d6));
        }
        other => {
            black_box(other);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(l) = Layers::parse(data) {
        black_box((l.eth.src(), l.eth.dst(), l.eth.ethertype(), l.payload()));
        for v in l.vlans.as_slice() {
            black_box((v.vid(), v.pcp(), v.dei(), v.tpid, v.offset));
        }
        read_net(&l.net);
        read_transport(&l.transport);
        black_box(l.meta());
    }
    // Each view on its own, at every offset a header could start.
    for off in [0usize, 14, 18, 22, 34, 54] {
        let Some(rest) = data.get(off..) else { break };
        if let Ok(v) = EthernetFrame::new_checked(rest) {
            black_box((v.src(), v.ethertype(), v.payload()));
        }
        if let Ok(v) = VlanPacket::new_checked(rest) {
            black_box((v.vid(), v.ethertype(), v.payload()));
        }
        if let Ok(v) = ArpPacket::new_checked(rest) {
            read_net(&Net::Arp(v));
        }
        if let Ok(v) = Ipv4Packet::new_checked(rest) {
            read_net(&Net::Ipv4(v));
        }
        if let Ok(v) = Ipv6Packet::new_checked(rest) {
            read_net(&Net::Ipv6(v));
        }
        if let Ok(v) = UdpPacket::new_checked(rest) {
            read_transport(&Transport::Udp(v));
        }
        if let Ok(v) = TcpPacket::new_checked(rest) {
            read_transport(&Transport::Tcp(v));
        }
        if let Ok(v) = Icmpv4Packet::new_checked(rest) {
            read_transport(&Transport::Icmpv4(v));
        }
        if let Ok(v) = Icmpv6Packet::new_checked(rest) {
            read_transport(&Transport::Icmpv6(v));
        }
    }
});
