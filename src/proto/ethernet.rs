//! Ethernet II frames.

use etherparse::{EtherType, Ethernet2Slice};

use crate::proto::field;
use crate::proto::ProtoError;

/// A 48-bit MAC address.
pub type MacAddr = [u8; 6];

mod offs {
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    pub const ETHERTYPE: usize = 12;
}

/// A view of an Ethernet II frame (without FCS): destination, source,
/// EtherType, payload.
///
/// Read accessors need `T: AsRef<[u8]>`, setters also `T: AsMut<[u8]>`.
/// No accessor panics once [`EthernetFrame::new_checked`] succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the Ethernet II header.
    pub const HEADER_LEN: usize = 14;

    /// Wraps `buf` after checking (with etherparse) that it holds at least
    /// an Ethernet II header.
    pub fn new_checked(buf: T) -> Result<Self, ProtoError> {
        Ethernet2Slice::from_slice_without_fcs(buf.as_ref())?;
        Ok(Self { buf })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The whole frame.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst(&self) -> MacAddr {
        field::get(self.buf.as_ref(), offs::DST)
    }

    /// Source MAC address.
    #[inline]
    pub fn src(&self) -> MacAddr {
        field::get(self.buf.as_ref(), offs::SRC)
    }

    /// The EtherType (may be a VLAN TPID when tags follow).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(field::get_u16(self.buf.as_ref(), offs::ETHERTYPE))
    }

    /// Everything after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(Self::HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst(&mut self, mac: MacAddr) {
        field::set(self.buf.as_mut(), offs::DST, mac);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src(&mut self, mac: MacAddr) {
        field::set(self.buf.as_mut(), offs::SRC, mac);
    }

    /// Sets the EtherType field.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        field::set_u16(self.buf.as_mut(), offs::ETHERTYPE, ethertype.0);
    }

    /// Swaps source and destination MAC addresses.
    #[inline]
    pub fn swap_macs(&mut self) {
        field::swap::<6>(self.buf.as_mut(), offs::DST, offs::SRC);
    }

    /// Mutable access to everything after the header.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buf
            .as_mut()
            .get_mut(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Layer, ProtoError};

    #[test]
    fn read_and_edit() {
        let mut b = [0u8; 20];
        b[..6].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        b[6..12].copy_from_slice(&[7, 8, 9, 10, 11, 12]);
        b[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut f = EthernetFrame::new_checked(&mut b[..]).unwrap();
        assert_eq!(f.dst(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(f.payload().len(), 6);
        f.swap_macs();
        assert_eq!(f.dst(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(f.src(), [1, 2, 3, 4, 5, 6]);
        f.set_ethertype(EtherType::IPV6);
        f.set_dst([0xff; 6]);
        f.set_src([0xaa; 6]);
        f.payload_mut()[0] = 9;
        assert_eq!(b[14], 9);
        assert_eq!(&b[12..14], &[0x86, 0xdd]);
        assert_eq!(&b[..6], &[0xff; 6]);
    }

    #[test]
    fn too_short() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]).unwrap_err(),
            ProtoError::Truncated {
                layer: Layer::Ethernet,
                required: 14,
                available: 13
            }
        );
        let f = EthernetFrame::new_checked(&[0u8; 14][..]).unwrap();
        assert!(f.payload().is_empty());
    }
}
