//! In-place edits of whole frames.
//!
//! Every function parses the frame with [`Layers::parse`], checks that it is
//! of the right kind *before* changing anything, then edits the bytes in
//! place and keeps every checksum valid, incrementally where it can (RFC
//! 1624 eqn. 3). The payload never moves. On error the buffer is left as it
//! was.
//!
//! Checksum rules:
//!
//! * A UDP or TCP checksum that the sender left *partial* (the field holds
//!   the pseudo-header sum for an offload to finish, as veth peers,
//!   containers and virtio guests send it; see [`ChecksumState`]) is
//!   completed: every edit that touches a UDP or TCP frame — swaps, TTL,
//!   address and port rewrites, the UDP reply — computes the full checksum
//!   over the segment after the edit, so the frame can be sent as it is.
//!   Telling a partial field apart costs a pseudo-header sum, not a read of
//!   the payload.
//! * Any other field is updated incrementally (RFC 1624 eqn. 3), which keeps
//!   a right checksum right and a wrong one wrong by the same amount: a
//!   corrupted datagram is not made to look valid by an edit (a forwarder
//!   must not hide corruption). Use [`recompute_checksums`] to write fresh
//!   checksums whatever the input held, or [`complete_checksum`] to
//!   complete a partial one without any other change.
//! * A UDP checksum of 0 ("none", IPv4 only) stays 0; a computed UDP
//!   checksum of 0 is written as `0xffff`.
//! * [`swap_macs`] only looks at the Ethernet header and leaves the rest
//!   alone.

use core::net::IpAddr;

use etherparse::IpNumber;

use crate::proto::checksum::{self, ChecksumState};
use crate::proto::ethernet::{EthernetFrame, MacAddr};
use crate::proto::field;
use crate::proto::frame::{FrameMeta, Layers, NetKind, TransportKind};
use crate::proto::{icmpv4, icmpv6};
use crate::proto::{Layer, ProtoError};

fn meta(buf: &[u8]) -> Result<FrameMeta, ProtoError> {
    Layers::parse(buf).map(|l| l.meta())
}

fn ip_layer(m: &FrameMeta) -> Result<(), ProtoError> {
    match m.net {
        NetKind::Ipv4 | NetKind::Ipv6 => Ok(()),
        _ => Err(ProtoError::Missing {
            expected: Layer::Ip,
        }),
    }
}

fn ip_layer_name(m: &FrameMeta) -> Layer {
    match m.net {
        NetKind::Ipv6 => Layer::Ipv6,
        _ => Layer::Ipv4,
    }
}

/// Fails on a fragment of a protocol whose checksum covers the pseudo
/// header, as that checksum cannot be kept right from this fragment.
fn no_pseudo_header_fragment(m: &FrameMeta) -> Result<(), ProtoError> {
    match m.transport {
        TransportKind::Fragment(IpNumber::UDP | IpNumber::TCP | IpNumber::IPV6_ICMP) => {
            Err(ProtoError::Fragmented {
                layer: ip_layer_name(m),
            })
        }
        _ => Ok(()),
    }
}

/// UDP or TCP, not fragmented.
fn ports_layer(m: &FrameMeta) -> Result<(), ProtoError> {
    match m.transport {
        TransportKind::Udp | TransportKind::Tcp => Ok(()),
        TransportKind::Fragment(_) => Err(ProtoError::Fragmented {
            layer: ip_layer_name(m),
        }),
        _ => Err(ProtoError::Missing {
            expected: Layer::Transport,
        }),
    }
}

/// The IP addresses of the frame, for pseudo-header sums.
fn addrs(m: &FrameMeta, buf: &mut [u8]) -> Result<Option<Pseudo>, ProtoError> {
    Ok(match m.net {
        NetKind::Ipv4 => {
            let ip = m.ipv4_mut(buf)?;
            Some(Pseudo::V4(ip.src_addr(), ip.dst_addr()))
        }
        NetKind::Ipv6 => {
            let ip = m.ipv6_mut(buf)?;
            Some(Pseudo::V6(ip.src_addr(), ip.dst_addr()))
        }
        _ => None,
    })
}

/// The cheap checksum state of the UDP or TCP layer (`None` for anything
/// else): see [`ChecksumState`].
fn transport_state(m: &FrameMeta, buf: &mut [u8]) -> Result<Option<ChecksumState>, ProtoError> {
    let Some(p) = addrs(m, buf)? else {
        return Ok(None);
    };
    Ok(match (m.transport, p) {
        (TransportKind::Udp, Pseudo::V4(s, d)) => Some(m.udp_mut(buf)?.checksum_state_v4(s, d)),
        (TransportKind::Udp, Pseudo::V6(s, d)) => Some(m.udp_mut(buf)?.checksum_state_v6(s, d)),
        (TransportKind::Tcp, Pseudo::V4(s, d)) => Some(m.tcp_mut(buf)?.checksum_state_v4(s, d)),
        (TransportKind::Tcp, Pseudo::V6(s, d)) => Some(m.tcp_mut(buf)?.checksum_state_v6(s, d)),
        _ => None,
    })
}

/// Whether the UDP or TCP checksum is partial (look before editing: the
/// answer depends on the pseudo header). Reads the fields at the offsets
/// `m` (from a successful parse of `buf`) gives, with no second parse: this
/// runs on every edit.
fn is_partial(m: &FrameMeta, buf: &[u8]) -> Result<bool, ProtoError> {
    let (proto, field_at) = match m.transport {
        TransportKind::Udp => (IpNumber::UDP, 6),
        TransportKind::Tcp => (IpNumber::TCP, 16),
        _ => return Ok(false),
    };
    let t = m.transport_offset;
    let len = m.transport_len;
    let pseudo = match m.net {
        NetKind::Ipv4 => {
            let a = field::range(
                buf,
                m.net_offset.saturating_add(12),
                m.net_offset.saturating_add(20),
            );
            let len = u16::try_from(len).unwrap_or(u16::MAX);
            checksum::add(checksum::add(checksum::sum(a), u16::from(proto.0)), len)
        }
        NetKind::Ipv6 => {
            let a = field::range(
                buf,
                m.net_offset.saturating_add(8),
                m.net_offset.saturating_add(40),
            );
            let len = u32::try_from(len).unwrap_or(u32::MAX);
            let s = checksum::add(checksum::sum(a), (len >> 16) as u16);
            checksum::add(checksum::add(s, (len & 0xffff) as u16), u16::from(proto.0))
        }
        _ => return Ok(false),
    };
    let zero = match (m.transport, m.net) {
        (TransportKind::Udp, NetKind::Ipv4) => checksum::ZeroField::NoChecksum,
        (TransportKind::Udp, _) => checksum::ZeroField::Invalid,
        _ => checksum::ZeroField::Value,
    };
    let value = field::get_u16(buf, t.saturating_add(field_at));
    Ok(checksum::classify(value, pseudo, zero) == ChecksumState::Partial)
}

/// Computes the UDP or TCP checksum over the whole segment (a zero UDP
/// checksum on IPv4 stays zero).
fn fill_transport(m: &FrameMeta, buf: &mut [u8]) -> Result<(), ProtoError> {
    let Some(p) = addrs(m, buf)? else {
        return Ok(());
    };
    match (m.transport, p) {
        (TransportKind::Udp, Pseudo::V4(s, d)) => {
            let mut u = m.udp_mut(buf)?;
            if u.checksum() != 0 {
                u.fill_checksum_v4(s, d);
            }
        }
        (TransportKind::Udp, Pseudo::V6(s, d)) => m.udp_mut(buf)?.fill_checksum_v6(s, d),
        (TransportKind::Tcp, Pseudo::V4(s, d)) => m.tcp_mut(buf)?.fill_checksum_v4(s, d),
        (TransportKind::Tcp, Pseudo::V6(s, d)) => m.tcp_mut(buf)?.fill_checksum_v6(s, d),
        _ => {}
    }
    Ok(())
}

/// After an edit: completes a checksum that was partial before it.
#[inline]
fn complete_if(m: &FrameMeta, buf: &mut [u8], was_partial: bool) -> Result<(), ProtoError> {
    if was_partial {
        fill_transport(m, buf)?;
    }
    Ok(())
}

/// The cheap checksum state of the frame's UDP or TCP layer (`None` for any
/// other frame, fragments included): [`ChecksumState::Zero`],
/// [`ChecksumState::Partial`] or [`ChecksumState::Unverified`], from the
/// headers alone. [`Layers::checksum_state`](crate::proto::Layers::checksum_state)
/// gives the same from a parsed frame.
pub fn checksum_state(buf: &[u8]) -> Result<Option<ChecksumState>, ProtoError> {
    Ok(Layers::parse(buf)?.checksum_state())
}

/// Completes a partial UDP or TCP checksum in place (computes the full
/// checksum over the segment) and leaves any other frame unchanged. Returns
/// the cheap state the frame had before (`None` without UDP or TCP). For a
/// frame to be sent on as it was received, e.g. by a forwarder.
pub fn complete_checksum(buf: &mut [u8]) -> Result<Option<ChecksumState>, ProtoError> {
    let m = meta(buf)?;
    let state = transport_state(&m, buf)?;
    complete_if(&m, buf, state == Some(ChecksumState::Partial))?;
    Ok(state)
}

/// Swaps source and destination MAC addresses (only needs an Ethernet
/// header).
pub fn swap_macs(buf: &mut [u8]) -> Result<(), ProtoError> {
    EthernetFrame::new_checked(buf)?.swap_macs();
    Ok(())
}

/// Swaps source and destination IP addresses (IPv4 or IPv6). No checksum
/// changes (the header and pseudo-header sums do not depend on the order),
/// except that a partial UDP or TCP checksum is completed.
pub fn swap_ips(buf: &mut [u8]) -> Result<(), ProtoError> {
    let m = meta(buf)?;
    ip_layer(&m)?;
    let partial = is_partial(&m, buf)?;
    swap_ips_meta(&m, buf)?;
    complete_if(&m, buf, partial)
}

fn swap_ips_meta(m: &FrameMeta, buf: &mut [u8]) -> Result<(), ProtoError> {
    match m.net {
        NetKind::Ipv4 => m.ipv4_mut(buf)?.swap_addrs(),
        NetKind::Ipv6 => m.ipv6_mut(buf)?.swap_addrs(),
        _ => {}
    }
    Ok(())
}

/// Swaps source and destination ports (UDP or TCP; checksums unchanged,
/// except that a partial one is completed).
pub fn swap_ports(buf: &mut [u8]) -> Result<(), ProtoError> {
    let m = meta(buf)?;
    ports_layer(&m)?;
    let partial = is_partial(&m, buf)?;
    swap_ports_meta(&m, buf)?;
    complete_if(&m, buf, partial)
}

fn swap_ports_meta(m: &FrameMeta, buf: &mut [u8]) -> Result<(), ProtoError> {
    match m.transport {
        TransportKind::Udp => m.udp_mut(buf)?.swap_ports(),
        TransportKind::Tcp => m.tcp_mut(buf)?.swap_ports(),
        _ => {}
    }
    Ok(())
}

/// Sets the IPv4 TTL (header checksum updated incrementally) or the IPv6
/// hop limit; a partial UDP or TCP checksum is completed.
pub fn set_ttl(buf: &mut [u8], ttl: u8) -> Result<(), ProtoError> {
    let m = meta(buf)?;
    let partial = is_partial(&m, buf)?;
    match m.net {
        NetKind::Ipv4 => m.ipv4_mut(buf)?.set_ttl(ttl),
        NetKind::Ipv6 => m.ipv6_mut(buf)?.set_hop_limit(ttl),
        _ => {
            return Err(ProtoError::Missing {
                expected: Layer::Ip,
            })
        }
    }
    complete_if(&m, buf, partial)
}

#[derive(Clone, Copy)]
enum Which {
    Src,
    Dst,
}

/// Sets the source IP address. The IPv4 header checksum and the UDP, TCP
/// or ICMPv6 checksum (pseudo header) are updated incrementally; a partial
/// UDP or TCP checksum is completed instead.
///
/// Errors: [`ProtoError::AddressFamily`] when `addr` is not of the
/// packet's IP version; [`ProtoError::Fragmented`] for a fragment of UDP,
/// TCP or ICMPv6.
pub fn set_src_ip(buf: &mut [u8], addr: IpAddr) -> Result<(), ProtoError> {
    set_ip(buf, addr, Which::Src)
}

/// Sets the destination IP address; see [`set_src_ip`].
pub fn set_dst_ip(buf: &mut [u8], addr: IpAddr) -> Result<(), ProtoError> {
    set_ip(buf, addr, Which::Dst)
}

fn set_ip(buf: &mut [u8], addr: IpAddr, which: Which) -> Result<(), ProtoError> {
    let m = meta(buf)?;
    ip_layer(&m)?;
    no_pseudo_header_fragment(&m)?;
    let partial = is_partial(&m, buf)?;
    // (sum of the old address, sum of the new one)
    let (old, new) = match (m.net, addr) {
        (NetKind::Ipv4, IpAddr::V4(a)) => {
            let mut ip = m.ipv4_mut(buf)?;
            let old = match which {
                Which::Src => ip.src_addr(),
                Which::Dst => ip.dst_addr(),
            };
            match which {
                Which::Src => ip.set_src_addr(a),
                Which::Dst => ip.set_dst_addr(a),
            }
            (checksum::sum(&old.octets()), checksum::sum(&a.octets()))
        }
        (NetKind::Ipv6, IpAddr::V6(a)) => {
            let mut ip = m.ipv6_mut(buf)?;
            let old = match which {
                Which::Src => ip.src_addr(),
                Which::Dst => ip.dst_addr(),
            };
            match which {
                Which::Src => ip.set_src_addr(a),
                Which::Dst => ip.set_dst_addr(a),
            }
            (checksum::sum(&old.octets()), checksum::sum(&a.octets()))
        }
        _ => {
            return Err(ProtoError::AddressFamily {
                layer: ip_layer_name(&m),
            })
        }
    };
    match (m.transport, m.net) {
        _ if partial => fill_transport(&m, buf)?,
        (TransportKind::Udp, _) => m.udp_mut(buf)?.adjust_checksum(old, new),
        (TransportKind::Tcp, _) => m.tcp_mut(buf)?.adjust_checksum(old, new),
        (TransportKind::Icmpv6, NetKind::Ipv6) => m.icmpv6_mut(buf)?.adjust_checksum(old, new),
        _ => {}
    }
    Ok(())
}

/// Sets the source port (UDP or TCP), checksum updated incrementally
/// (a partial one is completed).
pub fn set_src_port(buf: &mut [u8], port: u16) -> Result<(), ProtoError> {
    let m = meta(buf)?;
    ports_layer(&m)?;
    let partial = is_partial(&m, buf)?;
    match m.transport {
        TransportKind::Udp => m.udp_mut(buf)?.set_src_port(port),
        TransportKind::Tcp => m.tcp_mut(buf)?.set_src_port(port),
        _ => {}
    }
    complete_if(&m, buf, partial)
}

/// Sets the destination port (UDP or TCP), checksum updated incrementally
/// (a partial one is completed).
pub fn set_dst_port(buf: &mut [u8], port: u16) -> Result<(), ProtoError> {
    let m = meta(buf)?;
    ports_layer(&m)?;
    let partial = is_partial(&m, buf)?;
    match m.transport {
        TransportKind::Udp => m.udp_mut(buf)?.set_dst_port(port),
        TransportKind::Tcp => m.tcp_mut(buf)?.set_dst_port(port),
        _ => {}
    }
    complete_if(&m, buf, partial)
}

/// Turns an ICMPv4 echo request (over IPv4) or an ICMPv6 echo request
/// (over IPv6) into its reply: swaps MACs and IPs, sets the reply type and
/// updates the checksum incrementally. TTL / hop limit are left alone.
pub fn icmp_echo_reply_in_place(buf: &mut [u8]) -> Result<(), ProtoError> {
    let m = meta(buf)?;
    match (m.net, m.transport) {
        (NetKind::Ipv4, TransportKind::Icmpv4) => {
            let t = m.icmpv4_mut(buf)?.msg_type();
            if t != icmpv4::TYPE_ECHO_REQUEST {
                return Err(ProtoError::WrongType {
                    layer: Layer::Icmpv4,
                    expected: icmpv4::TYPE_ECHO_REQUEST.into(),
                    found: t.into(),
                });
            }
            m.icmpv4_mut(buf)?.set_msg_type(icmpv4::TYPE_ECHO_REPLY);
        }
        (NetKind::Ipv6, TransportKind::Icmpv6) => {
            let t = m.icmpv6_mut(buf)?.msg_type();
            if t != icmpv6::TYPE_ECHO_REQUEST {
                return Err(ProtoError::WrongType {
                    layer: Layer::Icmpv6,
                    expected: icmpv6::TYPE_ECHO_REQUEST.into(),
                    found: t.into(),
                });
            }
            m.icmpv6_mut(buf)?.set_msg_type(icmpv6::TYPE_ECHO_REPLY);
        }
        (_, TransportKind::Fragment(_)) => {
            return Err(ProtoError::Fragmented {
                layer: ip_layer_name(&m),
            })
        }
        (NetKind::Ipv6, _) => {
            return Err(ProtoError::Missing {
                expected: Layer::Icmpv6,
            })
        }
        _ => {
            return Err(ProtoError::Missing {
                expected: Layer::Icmpv4,
            })
        }
    }
    swap_ips_meta(&m, buf)?;
    swap_macs(buf)
}

/// Turns an ARP request (Ethernet/IPv4) into the reply from `our_mac`:
/// ARP sender/target swapped with us as the sender of the asked-for IP,
/// operation set to reply, Ethernet destination set to the requester and
/// source to `our_mac`. Whether the asked-for IP is ours is the caller's
/// business.
pub fn arp_reply_in_place(buf: &mut [u8], our_mac: MacAddr) -> Result<(), ProtoError> {
    let m = meta(buf)?;
    if m.net != NetKind::Arp {
        return Err(ProtoError::Missing {
            expected: Layer::Arp,
        });
    }
    m.arp_mut(buf)?.make_reply(our_mac)?;
    let mut eth = EthernetFrame::new_checked(buf)?;
    let requester = eth.src();
    eth.set_dst(requester);
    eth.set_src(our_mac);
    Ok(())
}

/// Turns a UDP datagram (IPv4 or IPv6) into its reply to the sender:
/// swaps MACs, IPs and ports. A verified (or unverified) checksum is left
/// as it is — a swap does not change a one's-complement sum, so a right
/// checksum stays right and a wrong one stays wrong; a zero one (IPv4)
/// stays zero; a partial one (from an offloading sender, see
/// [`ChecksumState`]) is completed, so the reply is valid on the wire.
pub fn udp_reply_in_place(buf: &mut [u8]) -> Result<(), ProtoError> {
    let m = meta(buf)?;
    match m.transport {
        TransportKind::Udp => {}
        TransportKind::Fragment(_) => {
            return Err(ProtoError::Fragmented {
                layer: ip_layer_name(&m),
            })
        }
        _ => {
            return Err(ProtoError::Missing {
                expected: Layer::Udp,
            })
        }
    }
    let partial = is_partial(&m, buf)?;
    swap_ports_meta(&m, buf)?;
    swap_ips_meta(&m, buf)?;
    complete_if(&m, buf, partial)?;
    swap_macs(buf)
}

/// The largest UDP payload `buf` can carry for the UDP frame it holds,
/// limited by the buffer and by the 16-bit IP and UDP length fields.
pub fn max_udp_payload_len(buf: &[u8]) -> Result<usize, ProtoError> {
    let m = meta(buf)?;
    udp_limits(&m, buf.len())
}

fn udp_limits(m: &FrameMeta, buf_len: usize) -> Result<usize, ProtoError> {
    match m.transport {
        TransportKind::Udp => {}
        TransportKind::Fragment(_) => {
            return Err(ProtoError::Fragmented {
                layer: ip_layer_name(m),
            })
        }
        _ => {
            return Err(ProtoError::Missing {
                expected: Layer::Udp,
            })
        }
    }
    // Bytes before the UDP header that the IP length field counts.
    let counted = match m.net {
        NetKind::Ipv4 => m.transport_offset.saturating_sub(m.net_offset),
        _ => m
            .transport_offset
            .saturating_sub(m.net_offset)
            .saturating_sub(m.net_header_len),
    };
    let by_field = usize::from(u16::MAX)
        .saturating_sub(counted)
        .saturating_sub(8);
    let by_buf = buf_len.saturating_sub(m.payload_offset);
    Ok(by_field.min(by_buf))
}

/// Changes the UDP payload length in place to `new_len` bytes: sets the
/// IPv4 total length (header checksum updated) or IPv6 payload length, the
/// UDP length, and recomputes the UDP checksum over the new payload (a
/// zero UDP checksum on IPv4 stays zero). Write the new payload bytes at
/// [`FrameMeta::payload_offset`] first (they may go past the old end of
/// the frame as long as `buf` is long enough).
///
/// Returns the new frame length (Ethernet header through the end of the
/// UDP payload) — the number of bytes to transmit. Fails with
/// [`ProtoError::TooLarge`] when `buf` or the length fields cannot hold
/// `new_len` (see [`max_udp_payload_len`]), changing nothing.
///
/// A typical echo server: [`udp_reply_in_place`], write the answer into the
/// payload, then `set_udp_payload_len`.
pub fn set_udp_payload_len(buf: &mut [u8], new_len: usize) -> Result<usize, ProtoError> {
    let m = meta(buf)?;
    let max = udp_limits(&m, buf.len())?;
    if new_len > max {
        return Err(ProtoError::TooLarge {
            layer: Layer::Udp,
            value: new_len,
            max,
        });
    }
    let udp_len = new_len.saturating_add(8);
    let ip_counted = m.transport_offset.saturating_sub(m.net_offset);
    let frame_len = m.transport_offset.saturating_add(udp_len);
    let to_u16 = |v: usize| u16::try_from(v).unwrap_or(u16::MAX);
    match m.net {
        NetKind::Ipv4 => {
            let total = to_u16(ip_counted.saturating_add(udp_len));
            let mut ip = m.ipv4_mut(buf)?;
            ip.set_total_len(total);
        }
        NetKind::Ipv6 => {
            let payload = to_u16(
                ip_counted
                    .saturating_sub(m.net_header_len)
                    .saturating_add(udp_len),
            );
            m.ipv6_mut(buf)?.set_payload_len(payload);
        }
        _ => {}
    }
    // Re-parse with the new lengths (this also re-validates everything)
    // and write the UDP length and checksum.
    let net_len = match m.net {
        NetKind::Ipv4 | NetKind::Ipv6 => ip_counted.saturating_add(udp_len),
        _ => m.net_len,
    };
    let moved = FrameMeta {
        net_len,
        transport_len: udp_len,
        ..m
    };
    // The UDP view is checked against its old length field, so set it on
    // the raw bytes first.
    let udp_start = m.transport_offset;
    field::set_u16(buf, udp_start.saturating_add(4), to_u16(udp_len));
    let had_checksum = moved.udp_mut(buf)?.checksum() != 0;
    match m.net {
        NetKind::Ipv4 => {
            let (s, d) = {
                let ip = moved.ipv4_mut(buf)?;
                (ip.src_addr(), ip.dst_addr())
            };
            if had_checksum {
                moved.udp_mut(buf)?.fill_checksum_v4(s, d);
            }
        }
        NetKind::Ipv6 => {
            let (s, d) = {
                let ip = moved.ipv6_mut(buf)?;
                (ip.src_addr(), ip.dst_addr())
            };
            moved.udp_mut(buf)?.fill_checksum_v6(s, d);
        }
        _ => {}
    }
    Ok(frame_len)
}

/// Recomputes every checksum of the frame from scratch: IPv4 header, and
/// UDP, TCP, ICMPv4 or ICMPv6 (not for fragments). A zero UDP checksum on
/// IPv4 stays zero.
pub fn recompute_checksums(buf: &mut [u8]) -> Result<(), ProtoError> {
    let m = meta(buf)?;
    let pseudo = match m.net {
        NetKind::Ipv4 => {
            m.ipv4_mut(buf)?.fill_checksum();
            addrs(&m, buf)?
        }
        NetKind::Ipv6 => addrs(&m, buf)?,
        _ => return Ok(()),
    };
    match (m.transport, pseudo) {
        (TransportKind::Udp | TransportKind::Tcp, _) => fill_transport(&m, buf)?,
        (TransportKind::Icmpv4, _) => m.icmpv4_mut(buf)?.fill_checksum(),
        (TransportKind::Icmpv6, Some(Pseudo::V6(s, d))) => m.icmpv6_mut(buf)?.fill_checksum(s, d),
        _ => {}
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Pseudo {
    V4(core::net::Ipv4Addr, core::net::Ipv4Addr),
    V6(core::net::Ipv6Addr, core::net::Ipv6Addr),
}

/// Whether every checksum of the frame is right (IPv4 header; UDP — where
/// 0 on IPv4 counts as right —, TCP, ICMPv4, ICMPv6). A partial UDP or TCP
/// checksum is not right on the wire (see [`checksum_state`]). Layers without a
/// checksum, fragments and ICMPv6 over IPv4 count as right.
pub fn checksums_valid(buf: &[u8]) -> Result<bool, ProtoError> {
    let l = Layers::parse(buf)?;
    use crate::proto::frame::{Net, Transport};
    Ok(match (l.net, l.transport) {
        (Net::Ipv4(ip), t) => {
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            ip.verify_checksum()
                && match t {
                    Transport::Udp(u) => u.verify_checksum_v4(s, d),
                    Transport::Tcp(t) => t.verify_checksum(t.pseudo_header_sum_v4(s, d)),
                    Transport::Icmpv4(i) => i.verify_checksum(),
                    _ => true,
                }
        }
        (Net::Ipv6(ip), t) => {
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            match t {
                Transport::Udp(u) => u.verify_checksum_v6(s, d),
                Transport::Tcp(t) => t.verify_checksum(t.pseudo_header_sum_v6(s, d)),
                Transport::Icmpv4(i) => i.verify_checksum(),
                Transport::Icmpv6(i) => i.verify_checksum(s, d),
                _ => true,
            }
        }
        _ => true,
    })
}
