//! Internet checksum helpers (RFC 1071 sums, RFC 1624 incremental updates).
//!
//! The functions work on *sums* — the folded 16-bit one's-complement sum of
//! big-endian 16-bit words — and on *checksums*, which are the one's
//! complement (`!`) of a sum. A region whose checksum field is correct sums
//! to `0xffff`.
//!
//! ```
//! # use fluxcapacitor::proto::checksum;
//! // The example from RFC 1071 section 3.
//! let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
//! assert_eq!(checksum::sum(&data), 0xddf2);
//! assert_eq!(checksum::checksum(&data), !0xddf2);
//!
//! // Changing one word and updating the checksum incrementally gives the
//! // same result as computing it again.
//! let old = checksum::checksum(&data);
//! let mut changed = data;
//! changed[2..4].copy_from_slice(&0x1234u16.to_be_bytes());
//! assert_eq!(
//!     checksum::incremental_update16(old, 0xf203, 0x1234),
//!     checksum::checksum(&changed)
//! );
//! ```

use etherparse::IpNumber;

/// One's-complement addition of two 16-bit values (end-around carry).
#[inline(always)]
pub fn add(a: u16, b: u16) -> u16 {
    let (s, carry) = a.overflowing_add(b);
    // No overflow possible: when `carry` is set, `s <= 0xfffe`.
    s.wrapping_add(u16::from(carry))
}

/// One's-complement addition on 64 bits (end-around carry).
#[inline(always)]
fn add64(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(u64::from(carry))
}

/// Folds a 64-bit one's-complement accumulator down to 16 bits.
#[inline(always)]
fn fold(acc: u64) -> u16 {
    // Adding the high part to the low part keeps the one's-complement value;
    // the sum never overflows and shrinks until it fits in 16 bits.
    let mut a = acc;
    while a > 0xffff {
        a = (a >> 16).wrapping_add(a & 0xffff);
    }
    (a & 0xffff) as u16
}

/// Folded one's-complement sum of `data` taken as big-endian 16-bit words;
/// an odd trailing byte is padded with a zero byte.
///
/// The result is `0` only when every byte is zero.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        if let Some(w) = c.first_chunk::<8>() {
            acc = add64(acc, u64::from_be_bytes(*w));
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(rest) {
            *d = *s;
        }
        acc = add64(acc, u64::from_be_bytes(w));
    }
    fold(acc)
}

/// `initial` plus the sum of `data` (see [`sum`]); `data` is taken to start
/// on a 16-bit word boundary.
#[inline]
pub fn sum_with(initial: u16, data: &[u8]) -> u16 {
    add(initial, sum(data))
}

/// The Internet checksum of `data`: `!sum(data)`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Turns a sum into the value to store in a checksum field: `!sum`.
#[inline(always)]
pub fn finish(sum: u16) -> u16 {
    !sum
}

/// Whether a region that includes its own checksum field is correct, i.e.
/// its sum (plus `initial`, e.g. a pseudo-header sum) is `0xffff`.
#[inline]
pub fn verify(initial: u16, data: &[u8]) -> bool {
    sum_with(initial, data) == 0xffff
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered data
/// changed from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
///
/// `old` and `new` may also be *sums* of several words (see
/// [`incremental_update_bytes`]).
#[inline(always)]
pub fn incremental_update16(checksum: u16, old: u16, new: u16) -> u16 {
    !add(add(!checksum, !old), new)
}

/// [`incremental_update16`] for a 32-bit field (two 16-bit words).
#[inline(always)]
pub fn incremental_update32(checksum: u16, old: u32, new: u32) -> u16 {
    let fold32 = |v: u32| add((v >> 16) as u16, (v & 0xffff) as u16);
    incremental_update16(checksum, fold32(old), fold32(new))
}

/// [`incremental_update16`] for a field of any (even, word-aligned) size,
/// e.g. a 16-byte IPv6 address.
#[inline]
pub fn incremental_update_bytes(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    incremental_update16(checksum, sum(old), sum(new))
}

/// Sum of the IPv4 pseudo header used by UDP and TCP (RFC 768, RFC 9293):
/// source, destination, zero + protocol, and the transport length.
#[inline]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], protocol: IpNumber, len: u16) -> u16 {
    let mut acc = add(sum(&src), sum(&dst));
    acc = add(acc, u16::from(protocol.0));
    add(acc, len)
}

/// Sum of the IPv6 pseudo header used by UDP, TCP and ICMPv6 (RFC 8200
/// section 8.1): source, destination, the 32-bit upper-layer length and
/// the next header value.
#[inline]
pub fn pseudo_header_v6(src: [u8; 16], dst: [u8; 16], next_header: IpNumber, len: u32) -> u16 {
    let mut acc = add(sum(&src), sum(&dst));
    acc = add(acc, (len >> 16) as u16);
    acc = add(acc, (len & 0xffff) as u16);
    add(acc, u16::from(next_header.0))
}

/// What the checksum field of a UDP datagram or TCP segment holds, as far as
/// it was looked at.
///
/// [`classify`] (and the views' `checksum_state*` methods) decide from the
/// header alone, in constant time: [`Zero`](Self::Zero),
/// [`Partial`](Self::Partial) or [`Unverified`](Self::Unverified).
/// [`classify_verified`] (the views' `verify*` methods) also sums the
/// payload and never answers `Unverified`.
///
/// A *partial* checksum is what a sender that offloads checksumming
/// (`CHECKSUM_PARTIAL`: veth peers, containers, virtio guests) leaves in the
/// field: the folded pseudo-header sum, not yet complemented, with the
/// payload still to be added by the device that transmits it. Over AF_XDP no
/// device does, so a frame received this way and sent back out as it is
/// reaches its receiver with a wrong checksum; it must be *completed* (the
/// full checksum computed) first. The edits in [`crate::proto::edit`] do
/// that themselves.
///
/// The field alone cannot tell a partial sum from a full checksum that
/// happens to have the same value (one case in 65,536 of valid checksums):
/// [`classify_verified`] answers `Verified` for those, and completing one
/// writes the same value back, so no harm is done either way. It also means
/// that a corrupted datagram whose field happens to equal its pseudo-header
/// sum is indistinguishable from an offloaded one — the same trust the
/// kernel gives a `CHECKSUM_PARTIAL` packet from a local sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumState {
    /// The field is a checksum and it is right (payload read).
    Verified,
    /// The field holds the folded pseudo-header sum: the sender left the
    /// checksum to an offload. Complete it before sending the data on.
    Partial,
    /// UDP over IPv4 with a zero field: the sender sent no checksum (RFC 768).
    Zero,
    /// The field is wrong: neither a checksum that verifies nor a partial
    /// sum, or zero where zero is not allowed (TCP, UDP over IPv6).
    Bad,
    /// Not zero and not the pseudo-header sum; the payload was not read, so
    /// whether it is right is not known. Ask again with [`classify_verified`].
    Unverified,
}

impl ChecksumState {
    /// Whether a receiver accepts the field as it is (`Verified` or `Zero`).
    #[inline]
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self, ChecksumState::Verified | ChecksumState::Zero)
    }
}

/// One's-complement equality: `0x0000` and `0xffff` are both zero.
#[inline(always)]
fn same_sum(a: u16, b: u16) -> bool {
    let canon = |v: u16| if v == 0 { 0xffff } else { v };
    canon(a) == canon(b)
}

/// What a zero checksum field means for a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZeroField {
    /// UDP over IPv4: zero means "no checksum" (RFC 768).
    NoChecksum,
    /// UDP over IPv6: zero is not allowed (RFC 8200 section 8.1; a computed
    /// zero is sent as `0xffff`).
    Invalid,
    /// TCP: zero is an ordinary checksum value.
    Value,
}

/// Cheap classification of a UDP or TCP checksum `field` from the header
/// alone: a zero field is `Zero` or `Bad` as `zero` says (or looked at like
/// any other value for [`ZeroField::Value`]); a field equal to
/// `pseudo_header_sum` is `Partial`; anything else `Unverified`. Constant
/// time; the payload is not read.
#[inline]
pub fn classify(field: u16, pseudo_header_sum: u16, zero: ZeroField) -> ChecksumState {
    match (field, zero) {
        (0, ZeroField::NoChecksum) => return ChecksumState::Zero,
        (0, ZeroField::Invalid) => return ChecksumState::Bad,
        _ => {}
    }
    if same_sum(field, pseudo_header_sum) {
        ChecksumState::Partial
    } else {
        ChecksumState::Unverified
    }
}

/// Full classification of the UDP datagram or TCP segment `segment` (whose
/// checksum field is `field`): like [`classify`], but `Verified` when the
/// sum over the pseudo header and all of `segment` checks out, and `Bad`
/// instead of `Unverified`.
#[inline]
pub fn classify_verified(
    field: u16,
    pseudo_header_sum: u16,
    zero: ZeroField,
    segment: &[u8],
) -> ChecksumState {
    match classify(field, pseudo_header_sum, zero) {
        s @ (ChecksumState::Zero | ChecksumState::Bad) => s,
        s => {
            if verify(pseudo_header_sum, segment) {
                ChecksumState::Verified
            } else if s == ChecksumState::Partial {
                ChecksumState::Partial
            } else {
                ChecksumState::Bad
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain RFC 1071 reference: 16-bit words into a u32 with folding.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in data.chunks(2) {
            let hi = u32::from(c[0]);
            let lo = u32::from(*c.get(1).unwrap_or(&0));
            acc += (hi << 8) | lo;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
    }

    #[test]
    fn matches_reference_on_various_lengths() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(sum(&data[..n]), reference_sum(&data[..n]), "len {n}");
        }
        assert_eq!(sum(&[0xff; 64]), 0xffff);
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0; 9]), 0);
    }

    #[test]
    fn incremental_matches_full() {
        let mut data = [
            0x45u8, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 0x40, 0x11, 0, 0, 10, 0, 0, 1,
        ];
        let hc = checksum(&data);
        data[8] = 0x3f;
        let hc2 = incremental_update16(hc, 0x4011, 0x3f11);
        assert_eq!(hc2, checksum(&data));
        let old = [10u8, 0, 0, 1];
        data[12..16].copy_from_slice(&[192, 168, 7, 9]);
        let hc3 = incremental_update32(hc2, u32::from_be_bytes(old), 0xc0a8_0709);
        assert_eq!(hc3, checksum(&data));
        assert_eq!(incremental_update_bytes(hc2, &old, &[192, 168, 7, 9]), hc3);
    }

    #[test]
    fn pseudo_headers() {
        let v4 = pseudo_header_v4([1, 2, 3, 4], [5, 6, 7, 8], IpNumber::UDP, 12);
        assert_eq!(v4, reference_sum(&[1, 2, 3, 4, 5, 6, 7, 8, 0, 17, 0, 12]));
        let mut v6b = vec![];
        v6b.extend_from_slice(&[1u8; 16]);
        v6b.extend_from_slice(&[2u8; 16]);
        v6b.extend_from_slice(&70000u32.to_be_bytes());
        v6b.extend_from_slice(&[0, 0, 0, 58]);
        let v6 = pseudo_header_v6([1; 16], [2; 16], IpNumber::IPV6_ICMP, 70000);
        assert_eq!(v6, reference_sum(&v6b));
    }
}
