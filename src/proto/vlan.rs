//! 802.1Q / 802.1ad VLAN tags.

use etherparse::{EtherType, SingleVlanSlice};

use crate::proto::field;
use crate::proto::ProtoError;

mod offs {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
}

/// A view of one VLAN tag as it follows a TPID (0x8100, 0x88a8 or 0x9100):
/// the 16-bit TCI, the inner EtherType, then the payload.
///
/// The TPID itself is the EtherType field of the header before the tag.
/// No accessor panics once [`VlanPacket::new_checked`] succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> VlanPacket<T> {
    /// Length of a tag after its TPID (TCI + EtherType).
    pub const HEADER_LEN: usize = 4;

    /// Wraps `buf` after checking (with etherparse) that it holds a tag.
    pub fn new_checked(buf: T) -> Result<Self, ProtoError> {
        SingleVlanSlice::from_slice(buf.as_ref())?;
        Ok(Self { buf })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Tag control information (PCP, DEI, VID).
    #[inline]
    pub fn tci(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::TCI)
    }

    /// Priority code point (0..=7).
    #[inline]
    pub fn pcp(&self) -> u8 {
        tci_pcp(self.tci())
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        tci_dei(self.tci())
    }

    /// VLAN identifier (0..=4095).
    #[inline]
    pub fn vid(&self) -> u16 {
        tci_vid(self.tci())
    }

    /// EtherType of what follows the tag.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(field::get_u16(self.buf.as_ref(), offs::ETHERTYPE))
    }

    /// Everything after the tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(Self::HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanPacket<T> {
    /// Sets the whole TCI.
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        field::set_u16(self.buf.as_mut(), offs::TCI, tci);
    }

    /// Sets the VLAN identifier (only the low 12 bits of `vid` are used).
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & 0xf000) | (vid & 0x0fff);
        self.set_tci(tci);
    }

    /// Sets the priority code point (only the low 3 bits of `pcp` are used).
    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(pcp & 7) << 13);
        self.set_tci(tci);
    }

    /// Sets the inner EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        field::set_u16(self.buf.as_mut(), offs::ETHERTYPE, ethertype.0);
    }
}

#[inline]
fn tci_pcp(tci: u16) -> u8 {
    ((tci >> 13) & 7) as u8
}
#[inline]
fn tci_dei(tci: u16) -> bool {
    tci & 0x1000 != 0
}
#[inline]
fn tci_vid(tci: u16) -> u16 {
    tci & 0x0fff
}

/// What [`Layers::parse`](crate::proto::Layers::parse) records about one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VlanTag {
    /// The TPID that announced the tag (0x8100, 0x88a8 or 0x9100).
    pub tpid: EtherType,
    /// Tag control information.
    pub tci: u16,
    /// EtherType that follows the tag.
    pub inner_ethertype: EtherType,
    /// Offset of the TCI in the frame.
    pub offset: usize,
}

impl VlanTag {
    /// Priority code point (0..=7).
    pub fn pcp(&self) -> u8 {
        tci_pcp(self.tci)
    }
    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        tci_dei(self.tci)
    }
    /// VLAN identifier (0..=4095).
    pub fn vid(&self) -> u16 {
        tci_vid(self.tci)
    }
}

/// The VLAN tags of a frame, outermost first (at most
/// [`VlanTags::CAPACITY`], like etherparse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VlanTags {
    tags: [VlanTag; 3],
    len: u8,
}

impl VlanTags {
    /// Most tags recorded.
    pub const CAPACITY: usize = 3;

    /// The tags, outermost first.
    pub fn as_slice(&self) -> &[VlanTag] {
        self.tags.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the frame is untagged.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The outermost tag.
    pub fn outer(&self) -> Option<&VlanTag> {
        self.as_slice().first()
    }

    /// The innermost tag.
    pub fn inner(&self) -> Option<&VlanTag> {
        self.as_slice().last()
    }

    /// Whether another tag fits.
    pub(crate) fn is_full(&self) -> bool {
        usize::from(self.len) >= Self::CAPACITY
    }

    /// Appends a tag; ignored when full.
    pub(crate) fn push(&mut self, tag: VlanTag) {
        if let Some(slot) = self.tags.get_mut(usize::from(self.len)) {
            *slot = tag;
            self.len = self.len.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let mut b = [0xa0u8, 0x2a, 0x08, 0x00, 0xde, 0xad];
        let mut v = VlanPacket::new_checked(&mut b[..]).unwrap();
        assert_eq!(v.pcp(), 5);
        assert!(!v.dei());
        assert_eq!(v.vid(), 0x02a);
        assert_eq!(v.ethertype(), EtherType::IPV4);
        assert_eq!(v.payload(), &[0xde, 0xad]);
        v.set_vid(0xfff);
        v.set_pcp(1);
        v.set_ethertype(EtherType::ARP);
        assert_eq!(v.tci(), 0x2fff);
        assert_eq!(&b[2..4], &[0x08, 0x06]);
        assert!(VlanPacket::new_checked(&[0u8; 3][..]).is_err());
    }

    #[test]
    fn tags_capacity() {
        let mut t = VlanTags::default();
        assert!(t.is_empty());
        for i in 0..5 {
            t.push(VlanTag {
                tci: i,
                ..VlanTag::default()
            });
        }
        assert_eq!(t.len(), 3);
        assert!(t.is_full());
        assert_eq!(t.outer().unwrap().tci, 0);
        assert_eq!(t.inner().unwrap().tci, 2);
    }
}
