//! ARP for Ethernet / IPv4 (RFC 826).

use core::net::Ipv4Addr;

use etherparse::{ArpHardwareId, ArpOperation, ArpPacketSlice, EtherType};

use crate::proto::ethernet::MacAddr;
use crate::proto::field;
use crate::proto::{Layer, ProtoError};

mod offs {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

/// A view of an ARP packet for Ethernet hardware addresses and IPv4
/// protocol addresses (the only kind used on Ethernet/IPv4 networks).
///
/// No accessor panics once [`ArpPacket::new_checked`] succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = 28;

    /// Wraps `buf` after checking its length (with etherparse) and that it
    /// is Ethernet/IPv4 ARP (hardware type 1, protocol 0x0800, address
    /// lengths 6 and 4); anything else is [`ProtoError::Unsupported`].
    pub fn new_checked(buf: T) -> Result<Self, ProtoError> {
        let s = ArpPacketSlice::from_slice(buf.as_ref())?;
        if s.hw_addr_type() != ArpHardwareId::ETHERNET
            || s.proto_addr_type() != EtherType::IPV4
            || s.hw_addr_size() != 6
            || s.proto_addr_size() != 4
        {
            return Err(ProtoError::Unsupported {
                layer: Layer::Arp,
                reason: "only Ethernet/IPv4 ARP is handled",
            });
        }
        Ok(Self { buf })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> ArpHardwareId {
        ArpHardwareId(field::get_u16(self.buf.as_ref(), offs::HTYPE))
    }

    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> EtherType {
        EtherType(field::get_u16(self.buf.as_ref(), offs::PTYPE))
    }

    /// Hardware address length (6).
    pub fn hardware_len(&self) -> u8 {
        field::get_u8(self.buf.as_ref(), offs::HLEN)
    }

    /// Protocol address length (4).
    pub fn protocol_len(&self) -> u8 {
        field::get_u8(self.buf.as_ref(), offs::PLEN)
    }

    /// Operation (1 = request, 2 = reply, anything else kept as is).
    #[inline]
    pub fn operation(&self) -> ArpOperation {
        ArpOperation(field::get_u16(self.buf.as_ref(), offs::OPER))
    }

    /// Sender hardware address.
    #[inline]
    pub fn sender_mac(&self) -> MacAddr {
        field::get(self.buf.as_ref(), offs::SHA)
    }

    /// Sender protocol address.
    #[inline]
    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(field::get::<4>(self.buf.as_ref(), offs::SPA))
    }

    /// Target hardware address.
    #[inline]
    pub fn target_mac(&self) -> MacAddr {
        field::get(self.buf.as_ref(), offs::THA)
    }

    /// Target protocol address.
    #[inline]
    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(field::get::<4>(self.buf.as_ref(), offs::TPA))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the operation.
    pub fn set_operation(&mut self, op: ArpOperation) {
        field::set_u16(self.buf.as_mut(), offs::OPER, op.0);
    }

    /// Sets the sender hardware address.
    pub fn set_sender_mac(&mut self, mac: MacAddr) {
        field::set(self.buf.as_mut(), offs::SHA, mac);
    }

    /// Sets the sender protocol address.
    pub fn set_sender_ip(&mut self, ip: Ipv4Addr) {
        field::set(self.buf.as_mut(), offs::SPA, ip.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_mac(&mut self, mac: MacAddr) {
        field::set(self.buf.as_mut(), offs::THA, mac);
    }

    /// Sets the target protocol address.
    pub fn set_target_ip(&mut self, ip: Ipv4Addr) {
        field::set(self.buf.as_mut(), offs::TPA, ip.octets());
    }

    /// Turns a request into the reply from `our_mac`: the sender becomes the
    /// target, we become the sender (with the IP address that was asked
    /// for), and the operation becomes [`ArpOperation::REPLY`].
    ///
    /// Returns [`ProtoError::WrongType`] (and changes nothing) when the
    /// packet is not a request.
    pub fn make_reply(&mut self, our_mac: MacAddr) -> Result<(), ProtoError> {
        let op = self.operation();
        if op != ArpOperation::REQUEST {
            return Err(ProtoError::WrongType {
                layer: Layer::Arp,
                expected: ArpOperation::REQUEST.0,
                found: op.0,
            });
        }
        let (sha, spa, tpa) = (self.sender_mac(), self.sender_ip(), self.target_ip());
        self.set_operation(ArpOperation::REPLY);
        self.set_target_mac(sha);
        self.set_target_ip(spa);
        self.set_sender_mac(our_mac);
        self.set_sender_ip(tpa);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{ArpHardwareId, EtherType};

    fn request() -> Vec<u8> {
        let p = etherparse::ArpPacket::new(
            ArpHardwareId::ETHERNET,
            EtherType::IPV4,
            ArpOperation::REQUEST,
            &[1, 2, 3, 4, 5, 6],
            &[10, 0, 0, 1],
            &[0; 6],
            &[10, 0, 0, 2],
        )
        .unwrap();
        p.to_bytes().to_vec()
    }

    #[test]
    fn read_and_reply() {
        let mut b = request();
        let mut a = ArpPacket::new_checked(&mut b[..]).unwrap();
        assert_eq!(a.hardware_type(), ArpHardwareId::ETHERNET);
        assert_eq!(a.protocol_type(), EtherType::IPV4);
        assert_eq!((a.hardware_len(), a.protocol_len()), (6, 4));
        assert_eq!(a.operation(), ArpOperation::REQUEST);
        assert_eq!(a.sender_mac(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(a.sender_ip(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(a.target_ip(), Ipv4Addr::new(10, 0, 0, 2));
        a.make_reply([9; 6]).unwrap();
        assert_eq!(
            a.make_reply([9; 6]).unwrap_err(),
            ProtoError::WrongType {
                layer: Layer::Arp,
                expected: 1,
                found: 2
            }
        );
        let s = ArpPacketSlice::from_slice(&b).unwrap();
        assert_eq!(s.operation(), ArpOperation::REPLY);
        assert_eq!(s.sender_hw_addr(), &[9; 6]);
        assert_eq!(s.sender_protocol_addr(), &[10, 0, 0, 2]);
        assert_eq!(s.target_hw_addr(), &[1, 2, 3, 4, 5, 6]);
        assert_eq!(s.target_protocol_addr(), &[10, 0, 0, 1]);
    }

    #[test]
    fn rejects_other_kinds() {
        let mut b = request();
        b[1] = 6; // IEEE 802 hardware type
        assert!(matches!(
            ArpPacket::new_checked(&b[..]),
            Err(ProtoError::Unsupported { .. })
        ));
        let b = request();
        assert!(matches!(
            ArpPacket::new_checked(&b[..27]),
            Err(ProtoError::Truncated { .. })
        ));
    }
}
