//! Parsing a whole Ethernet frame into its layers in one call.

use etherparse::{EtherType, IpNumber};

use crate::proto::arp::ArpPacket;
use crate::proto::checksum::ChecksumState;
use crate::proto::ethernet::EthernetFrame;
use crate::proto::icmpv4::Icmpv4Packet;
use crate::proto::icmpv6::Icmpv6Packet;
use crate::proto::ipv4::Ipv4Packet;
use crate::proto::ipv6::Ipv6Packet;
use crate::proto::tcp::TcpPacket;
use crate::proto::udp::UdpPacket;
use crate::proto::vlan::{VlanPacket, VlanTag, VlanTags};
use crate::proto::{field, ProtoError};

/// The network layer of a parsed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net<'a> {
    /// An IPv4 packet.
    Ipv4(Ipv4Packet<&'a [u8]>),
    /// An IPv6 packet.
    Ipv6(Ipv6Packet<&'a [u8]>),
    /// An Ethernet/IPv4 ARP packet.
    Arp(ArpPacket<&'a [u8]>),
    /// Anything else, with its EtherType: unknown EtherTypes, ARP for other
    /// hardware or protocol types, MACsec, and frames with more VLAN tags
    /// than [`VlanTags::CAPACITY`] (the EtherType is then a TPID).
    Other(EtherType),
}

/// The transport layer of a parsed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// A UDP datagram.
    Udp(UdpPacket<&'a [u8]>),
    /// A TCP segment.
    Tcp(TcpPacket<&'a [u8]>),
    /// An ICMPv4 message.
    Icmpv4(Icmpv4Packet<&'a [u8]>),
    /// An ICMPv6 message.
    Icmpv6(Icmpv6Packet<&'a [u8]>),
    /// The IP payload is a fragment of this protocol (not parsed further).
    Fragment(IpNumber),
    /// Any other IP protocol (IGMP, GRE, ...).
    Other(IpNumber),
    /// There is no IP layer.
    None,
}

/// Which network layer a frame has (see [`Net`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetKind {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// Ethernet/IPv4 ARP.
    Arp,
    /// Anything else, with its EtherType.
    Other(EtherType),
}

/// Which transport layer a frame has (see [`Transport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// ICMPv4.
    Icmpv4,
    /// ICMPv6.
    Icmpv6,
    /// A fragment of this protocol.
    Fragment(IpNumber),
    /// Another IP protocol.
    Other(IpNumber),
    /// No IP layer.
    None,
}

/// Where each layer of a parsed frame is, with no borrow of the buffer:
/// keep it to make mutable views of the same buffer afterwards.
///
/// All offsets are from the start of the frame. Lengths are as the headers
/// give them (padding after the IP packet is not included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// VLAN tags, outermost first.
    pub vlans: VlanTags,
    /// EtherType after the VLAN tags.
    pub ethertype: EtherType,
    /// Kind of network layer.
    pub net: NetKind,
    /// Offset of the network layer.
    pub net_offset: usize,
    /// Length of the network header: IPv4 header with options, IPv6 fixed
    /// header (40), ARP packet (28), or 0.
    pub net_header_len: usize,
    /// Length of the network packet (IPv4 total length, 40 + IPv6 payload
    /// length, 28 for ARP, the rest of the frame otherwise).
    pub net_len: usize,
    /// Kind of transport layer.
    pub transport: TransportKind,
    /// IP number of the upper-layer data (after IPv4 authentication /
    /// IPv6 extension headers), `None` without IP.
    pub ip_proto: Option<IpNumber>,
    /// Offset of the upper-layer data (after IP extension headers); equal
    /// to the end of the network layer without IP.
    pub transport_offset: usize,
    /// Length of the upper-layer data (the UDP length for UDP).
    pub transport_len: usize,
    /// Offset of the application payload (after the UDP, TCP or 8-byte
    /// ICMP header; the start of the upper-layer data otherwise).
    pub payload_offset: usize,
    /// Length of the application payload.
    pub payload_len: usize,
}

/// The layers of a parsed frame: read-only views into the buffer, plus
/// their offsets ([`Layers::meta`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers<'a> {
    /// The Ethernet II header (the view covers the whole frame).
    pub eth: EthernetFrame<&'a [u8]>,
    /// VLAN tags, outermost first.
    pub vlans: VlanTags,
    /// The network layer.
    pub net: Net<'a>,
    /// The transport layer.
    pub transport: Transport<'a>,
    meta: FrameMeta,
    payload: &'a [u8],
}

impl<'a> Layers<'a> {
    /// Offsets and kinds of every layer, free of the buffer's borrow.
    #[inline]
    pub fn meta(&self) -> FrameMeta {
        self.meta
    }

    /// The application payload (see [`FrameMeta::payload_offset`]).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The checksum state of the UDP or TCP layer from the headers alone
    /// (constant time: a pseudo-header sum, the payload is not read):
    /// [`ChecksumState::Zero`] (UDP over IPv4), [`ChecksumState::Partial`],
    /// [`ChecksumState::Unverified`], or [`ChecksumState::Bad`] for a zero
    /// UDP checksum over IPv6. `None` without UDP or TCP (fragments too).
    pub fn checksum_state(&self) -> Option<ChecksumState> {
        match (self.net, self.transport) {
            (Net::Ipv4(ip), Transport::Udp(u)) => {
                Some(u.checksum_state_v4(ip.src_addr(), ip.dst_addr()))
            }
            (Net::Ipv6(ip), Transport::Udp(u)) => {
                Some(u.checksum_state_v6(ip.src_addr(), ip.dst_addr()))
            }
            (Net::Ipv4(ip), Transport::Tcp(t)) => {
                Some(t.checksum_state_v4(ip.src_addr(), ip.dst_addr()))
            }
            (Net::Ipv6(ip), Transport::Tcp(t)) => {
                Some(t.checksum_state_v6(ip.src_addr(), ip.dst_addr()))
            }
            _ => None,
        }
    }

    /// The checksum state of the UDP or TCP layer, reading the payload:
    /// never [`ChecksumState::Unverified`]. `None` without UDP or TCP.
    pub fn verify_checksum(&self) -> Option<ChecksumState> {
        match (self.net, self.transport) {
            (Net::Ipv4(ip), Transport::Udp(u)) => Some(u.verify_v4(ip.src_addr(), ip.dst_addr())),
            (Net::Ipv6(ip), Transport::Udp(u)) => Some(u.verify_v6(ip.src_addr(), ip.dst_addr())),
            (Net::Ipv4(ip), Transport::Tcp(t)) => Some(t.verify_v4(ip.src_addr(), ip.dst_addr())),
            (Net::Ipv6(ip), Transport::Tcp(t)) => Some(t.verify_v6(ip.src_addr(), ip.dst_addr())),
            _ => None,
        }
    }
}

const fn is_vlan_tpid(t: EtherType) -> bool {
    matches!(
        t,
        EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME
    )
}

impl<'a> Layers<'a> {
    /// Parses an Ethernet II frame (no FCS) into its layers without copying.
    ///
    /// Each layer is checked with etherparse's slicing (`Ethernet2Slice`,
    /// `SingleVlanSlice`, `ArpPacketSlice`, `Ipv4Slice`, `Ipv6Slice`,
    /// `UdpSlice`, `TcpSlice`, `Icmpv4Slice`, `Icmpv6Slice`) through the
    /// views' `new_checked`; the result holds views and offsets. It follows
    /// etherparse's `SlicedPacket::from_ethernet` with these differences:
    /// MACsec is not entered (`Net::Other`), ARP other than Ethernet/IPv4 is
    /// `Net::Other(EtherType::ARP)`, IGMP is `Transport::Other`, and a UDP
    /// length below 8 (0 included) is an error.
    ///
    /// ```
    /// # use fluxcapacitor::proto::{Layers, Net, Transport};
    /// # let mut buf = Vec::new();
    /// # etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
    /// #     .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
    /// #     .udp(1234, 7)
    /// #     .write(&mut buf, b"hi")
    /// #     .unwrap();
    /// let layers = Layers::parse(&buf)?;
    /// assert!(matches!(layers.net, Net::Ipv4(_)));
    /// if let Transport::Udp(udp) = layers.transport {
    ///     assert_eq!(udp.dst_port(), 7);
    ///     assert_eq!(udp.payload(), b"hi");
    /// }
    /// assert_eq!(layers.meta().payload_offset, 14 + 20 + 8);
    /// # Ok::<(), fluxcapacitor::proto::ProtoError>(())
    /// ```
    pub fn parse(buf: &'a [u8]) -> Result<Layers<'a>, ProtoError> {
        let eth = EthernetFrame::new_checked(buf)?;
        let mut ethertype = eth.ethertype();
        let mut off = EthernetFrame::<&[u8]>::HEADER_LEN;
        let mut vlans = VlanTags::default();
        let mut tpid_limit = false;
        while is_vlan_tpid(ethertype) {
            if vlans.is_full() {
                tpid_limit = true;
                break;
            }
            let v = VlanPacket::new_checked(buf.get(off..).unwrap_or(&[]))?;
            let inner = v.ethertype();
            vlans.push(VlanTag {
                tpid: ethertype,
                tci: v.tci(),
                inner_ethertype: inner,
                offset: off,
            });
            ethertype = inner;
            off = off.saturating_add(VlanPacket::<&[u8]>::HEADER_LEN);
        }

        let rest = buf.get(off..).unwrap_or(&[]);
        let mut meta = FrameMeta {
            vlans,
            ethertype,
            net: NetKind::Other(ethertype),
            net_offset: off,
            net_header_len: 0,
            net_len: rest.len(),
            transport: TransportKind::None,
            ip_proto: None,
            transport_offset: buf.len(),
            transport_len: 0,
            payload_offset: buf.len(),
            payload_len: 0,
        };

        // Network layer: (view, header len, packet len, upper offset, upper
        // protocol, fragmented).
        let (net, upper) = match ethertype {
            _ if tpid_limit => (Net::Other(ethertype), None),
            EtherType::IPV4 => {
                let ip = Ipv4Packet::new_checked(rest)?;
                meta.net = NetKind::Ipv4;
                meta.net_header_len = ip.header_len();
                meta.net_len = usize::from(ip.total_len());
                let upper = (
                    ip.upper_layer_offset(),
                    ip.upper_layer_protocol(),
                    ip.is_fragment(),
                );
                (Net::Ipv4(ip), Some(upper))
            }
            EtherType::IPV6 => {
                let ip = Ipv6Packet::new_checked(rest)?;
                meta.net = NetKind::Ipv6;
                meta.net_header_len = Ipv6Packet::<&[u8]>::HEADER_LEN;
                meta.net_len = ip.total_len();
                let upper = (
                    ip.upper_layer_offset(),
                    ip.upper_layer_protocol(),
                    ip.is_fragment(),
                );
                (Net::Ipv6(ip), Some(upper))
            }
            EtherType::ARP => match ArpPacket::new_checked(rest) {
                Ok(arp) => {
                    meta.net = NetKind::Arp;
                    meta.net_header_len = ArpPacket::<&[u8]>::LEN;
                    meta.net_len = ArpPacket::<&[u8]>::LEN;
                    (Net::Arp(arp), None)
                }
                Err(ProtoError::Unsupported { .. }) => (Net::Other(ethertype), None),
                Err(e) => return Err(e),
            },
            _ => (Net::Other(ethertype), None),
        };

        let net_end = off.saturating_add(meta.net_len);
        let mut payload = field::range(buf, off, net_end);
        let mut transport = Transport::None;
        if let Some((upper_off, proto, fragmented)) = upper {
            let t_off = off.saturating_add(upper_off);
            let data = field::range(buf, t_off, net_end);
            meta.ip_proto = Some(proto);
            meta.transport_offset = t_off;
            meta.transport_len = data.len();
            meta.payload_offset = t_off;
            meta.payload_len = data.len();
            payload = data;
            let mut header_len = 0;
            (transport, meta.transport) = if fragmented {
                (Transport::Fragment(proto), TransportKind::Fragment(proto))
            } else {
                match proto {
                    IpNumber::UDP => {
                        let u = UdpPacket::new_checked(data)?;
                        meta.transport_len = usize::from(u.len());
                        header_len = UdpPacket::<&[u8]>::HEADER_LEN;
                        (Transport::Udp(u), TransportKind::Udp)
                    }
                    IpNumber::TCP => {
                        let t = TcpPacket::new_checked(data)?;
                        header_len = t.header_len();
                        (Transport::Tcp(t), TransportKind::Tcp)
                    }
                    IpNumber::ICMP => {
                        let i = Icmpv4Packet::new_checked(data)?;
                        header_len = Icmpv4Packet::<&[u8]>::HEADER_LEN;
                        (Transport::Icmpv4(i), TransportKind::Icmpv4)
                    }
                    IpNumber::IPV6_ICMP => {
                        let i = Icmpv6Packet::new_checked(data)?;
                        header_len = Icmpv6Packet::<&[u8]>::HEADER_LEN;
                        (Transport::Icmpv6(i), TransportKind::Icmpv6)
                    }
                    p => (Transport::Other(p), TransportKind::Other(p)),
                }
            };
            if header_len > 0 {
                meta.payload_offset = t_off.saturating_add(header_len);
                payload = field::range(
                    buf,
                    meta.payload_offset,
                    t_off.saturating_add(meta.transport_len),
                );
                meta.payload_len = payload.len();
            }
        } else {
            meta.transport_offset = net_end;
            if let Net::Other(_) = net {
                // Unknown network layer: its bytes are the payload.
                meta.payload_offset = off;
                meta.payload_len = payload.len();
            } else {
                meta.payload_offset = net_end;
                payload = &[];
            }
        }

        Ok(Layers {
            eth,
            vlans,
            net,
            transport,
            meta,
            payload,
        })
    }
}

impl FrameMeta {
    fn sub<'b>(&self, buf: &'b mut [u8], start: usize, len: usize) -> &'b mut [u8] {
        field::range_mut(buf, start, start.saturating_add(len))
    }

    /// A checked mutable view of the IPv4 packet in `buf` (normally the
    /// buffer this was parsed from).
    pub fn ipv4_mut<'b>(&self, buf: &'b mut [u8]) -> Result<Ipv4Packet<&'b mut [u8]>, ProtoError> {
        Ipv4Packet::new_checked(self.sub(buf, self.net_offset, self.net_len))
    }

    /// A checked mutable view of the IPv6 packet in `buf`.
    pub fn ipv6_mut<'b>(&self, buf: &'b mut [u8]) -> Result<Ipv6Packet<&'b mut [u8]>, ProtoError> {
        Ipv6Packet::new_checked(self.sub(buf, self.net_offset, self.net_len))
    }

    /// A checked mutable view of the ARP packet in `buf`.
    pub fn arp_mut<'b>(&self, buf: &'b mut [u8]) -> Result<ArpPacket<&'b mut [u8]>, ProtoError> {
        ArpPacket::new_checked(self.sub(buf, self.net_offset, self.net_len))
    }

    /// A checked mutable view of the UDP datagram in `buf`.
    pub fn udp_mut<'b>(&self, buf: &'b mut [u8]) -> Result<UdpPacket<&'b mut [u8]>, ProtoError> {
        UdpPacket::new_checked(self.sub(buf, self.transport_offset, self.transport_len))
    }

    /// A checked mutable view of the TCP segment in `buf`.
    pub fn tcp_mut<'b>(&self, buf: &'b mut [u8]) -> Result<TcpPacket<&'b mut [u8]>, ProtoError> {
        TcpPacket::new_checked(self.sub(buf, self.transport_offset, self.transport_len))
    }

    /// A checked mutable view of the ICMPv4 message in `buf`.
    pub fn icmpv4_mut<'b>(
        &self,
        buf: &'b mut [u8],
    ) -> Result<Icmpv4Packet<&'b mut [u8]>, ProtoError> {
        Icmpv4Packet::new_checked(self.sub(buf, self.transport_offset, self.transport_len))
    }

    /// A checked mutable view of the ICMPv6 message in `buf`.
    pub fn icmpv6_mut<'b>(
        &self,
        buf: &'b mut [u8],
    ) -> Result<Icmpv6Packet<&'b mut [u8]>, ProtoError> {
        Icmpv6Packet::new_checked(self.sub(buf, self.transport_offset, self.transport_len))
    }

    /// The application payload in `buf`, mutable (empty if `buf` is too
    /// short).
    pub fn payload_mut<'b>(&self, buf: &'b mut [u8]) -> &'b mut [u8] {
        self.sub(buf, self.payload_offset, self.payload_len)
    }
}
