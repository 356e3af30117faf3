//! Building and parsing the test's Ethernet/IPv4/UDP frames, checksums included.

use std::net::{Ipv4Addr, SocketAddrV4};

// ---------------------------------------------------------------------------
// Frame building / parsing
// ---------------------------------------------------------------------------

/// Adds `data` as big-endian 16-bit words to a ones-complement accumulator.
pub(crate) fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds the accumulator and returns the ones-complement checksum.
pub(crate) fn csum_finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Internet checksum (RFC 1071) of `data`.
pub fn ipv4_checksum(data: &[u8]) -> u16 {
    csum_finish(csum_add(0, data))
}

/// UDP checksum over the IPv4 pseudo header and `udp` (header with a zero
/// checksum field, plus payload). A result of 0 is sent as 0xffff.
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let mut sum = csum_add(0, &src.octets());
    sum = csum_add(sum, &dst.octets());
    sum += 17; // zero byte + protocol
    sum += udp.len() as u32;
    sum = csum_add(sum, udp);
    match csum_finish(sum) {
        0 => 0xffff,
        c => c,
    }
}

/// Builds an Ethernet II + IPv4 (no options, DF, TTL 64) + UDP frame with
/// correct IPv4 header and UDP checksums.
pub fn build_udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    assert!(ip_len <= 0xffff, "payload too large for one IPv4 packet");
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    // IPv4 header
    f.push(0x45); // version 4, IHL 5
    f.push(0); // DSCP/ECN
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&0u16.to_be_bytes()); // identification
    f.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
    f.push(64); // TTL
    f.push(17); // UDP
    f.extend_from_slice(&[0, 0]); // checksum placeholder
    f.extend_from_slice(&src.ip().octets());
    f.extend_from_slice(&dst.ip().octets());
    let ip_csum = ipv4_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&ip_csum.to_be_bytes());
    // UDP header + payload
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let udp_csum = udp_checksum(*src.ip(), *dst.ip(), &f[34..]);
    f[40..42].copy_from_slice(&udp_csum.to_be_bytes());
    f
}

/// Parses an Ethernet II/IPv4/UDP frame (no VLAN tag, unfragmented); returns
/// (source, destination, UDP payload). Checks ethertype 0x0800, version, IHL,
/// protocol 17 and the IPv4/UDP lengths; does not verify checksums.
pub fn parse_udp_frame(frame: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, &[u8])> {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let (version, ihl) = (ip[0] >> 4, usize::from(ip[0] & 0x0f) * 4);
    if version != 4 || ihl < 20 || ip.len() < ihl || ip[9] != 17 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if total < ihl + 8 || total > ip.len() || frag & 0x3fff != 0 {
        return None;
    }
    let udp = &ip[ihl..total];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 || udp_len > udp.len() {
        return None;
    }
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    Some((
        SocketAddrV4::new(src_ip, sport),
        SocketAddrV4::new(dst_ip, dport),
        &udp[8..udp_len],
    ))
}
