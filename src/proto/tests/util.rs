//! Frame builders and etherparse-based checkers shared by the tests.

use etherparse::{
    IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6Header,
    Ipv6RawExtHeader, NetHeaders, PacketBuilder, PacketHeaders, TransportHeader, VlanId,
};

/// What kind of transport layer to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Udp,
    Tcp { options: Vec<u8>, flags: u8 },
    Icmp,
}

/// A description of a valid frame, built with etherparse's PacketBuilder.
#[derive(Debug, Clone)]
pub struct Spec {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// 0, 1 or 2 VLAN tags (ids).
    pub vlans: Vec<u16>,
    pub v6: bool,
    pub src4: [u8; 4],
    pub dst4: [u8; 4],
    pub src6: [u8; 16],
    pub dst6: [u8; 16],
    /// IPv4 options (multiple of 4, at most 40).
    pub ipv4_options: Vec<u8>,
    /// IPv6: add a hop-by-hop and a destination options header.
    pub ipv6_exts: bool,
    pub ttl: u8,
    pub kind: Kind,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub payload: Vec<u8>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            vlans: vec![],
            v6: false,
            src4: [10, 0, 0, 1],
            dst4: [10, 0, 0, 2],
            src6: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst6: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            ipv4_options: vec![],
            ipv6_exts: false,
            ttl: 64,
            kind: Kind::Udp,
            src_port: 40000,
            dst_port: 7,
            seq: 1,
            payload: b"hello".to_vec(),
        }
    }
}

impl Spec {
    pub fn build(&self) -> Vec<u8> {
        let ip = if self.v6 {
            let h = Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: 0,
                next_header: IpNumber::UDP,
                hop_limit: self.ttl,
                source: self.src6,
                destination: self.dst6,
            };
            let exts = if self.ipv6_exts {
                Ipv6Extensions {
                    hop_by_hop_options: Some(
                        Ipv6RawExtHeader::new_raw(IpNumber(0), &[1, 4, 0, 0, 0, 0]).unwrap(),
                    ),
                    destination_options: Some(
                        Ipv6RawExtHeader::new_raw(IpNumber(0), &[0; 14]).unwrap(),
                    ),
                    ..Default::default()
                }
            } else {
                Ipv6Extensions::default()
            };
            IpHeaders::Ipv6(h, exts)
        } else {
            let mut h = Ipv4Header::new(0, self.ttl, IpNumber::UDP, self.src4, self.dst4).unwrap();
            h.options = Ipv4Options::try_from(&self.ipv4_options[..]).unwrap();
            h.identification = 0xbeef;
            IpHeaders::Ipv4(h, Ipv4Extensions::default())
        };
        let eth = PacketBuilder::ethernet2(self.src_mac, self.dst_mac);
        let step = match self.vlans.as_slice() {
            [] => eth.ip(ip),
            [a] => eth.single_vlan(VlanId::try_new(*a).unwrap()).ip(ip),
            [a, b] => eth
                .double_vlan(VlanId::try_new(*a).unwrap(), VlanId::try_new(*b).unwrap())
                .ip(ip),
            _ => panic!("at most two VLAN tags"),
        };
        let mut out = vec![];
        match &self.kind {
            Kind::Udp => step
                .udp(self.src_port, self.dst_port)
                .write(&mut out, &self.payload)
                .unwrap(),
            Kind::Tcp { options, flags } => {
                let mut t = step
                    .tcp(self.src_port, self.dst_port, self.seq, 8192)
                    .options_raw(options)
                    .unwrap();
                if flags & 1 != 0 {
                    t = t.syn();
                }
                if flags & 2 != 0 {
                    t = t.ack(self.seq.wrapping_mul(7));
                }
                if flags & 4 != 0 {
                    t = t.psh();
                }
                if flags & 8 != 0 {
                    t = t.fin();
                }
                t.write(&mut out, &self.payload).unwrap()
            }
            Kind::Icmp if self.v6 => step
                .icmpv6_echo_request(self.src_port, self.dst_port)
                .write(&mut out, &self.payload)
                .unwrap(),
            Kind::Icmp => step
                .icmpv4_echo_request(self.src_port, self.dst_port)
                .write(&mut out, &self.payload)
                .unwrap(),
        }
        out
    }
}

/// Every checksum verified with etherparse's own calculators.
pub fn etherparse_checksums_ok(buf: &[u8]) -> bool {
    let h = PacketHeaders::from_ethernet_slice(buf).expect("etherparse parses the frame");
    let payload = h.payload.slice();
    match (&h.net, &h.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), t) => {
            ip.header_checksum == ip.calc_header_checksum()
                && match t {
                    Some(TransportHeader::Udp(u)) => {
                        u.checksum == 0 || u.checksum == u.calc_checksum_ipv4(ip, payload).unwrap()
                    }
                    Some(TransportHeader::Tcp(t)) => {
                        t.checksum == t.calc_checksum_ipv4(ip, payload).unwrap()
                    }
                    Some(TransportHeader::Icmpv4(i)) => {
                        i.checksum == i.icmp_type.calc_checksum(payload)
                    }
                    _ => true,
                }
        }
        (Some(NetHeaders::Ipv6(ip, _)), t) => match t {
            Some(TransportHeader::Udp(u)) => {
                u.checksum == u.calc_checksum_ipv6(ip, payload).unwrap()
            }
            Some(TransportHeader::Tcp(t)) => {
                t.checksum == t.calc_checksum_ipv6(ip, payload).unwrap()
            }
            Some(TransportHeader::Icmpv6(i)) => {
                i.checksum
                    == i.icmp_type
                        .calc_checksum(ip.source, ip.destination, payload)
                        .unwrap()
            }
            _ => true,
        },
        _ => true,
    }
}
