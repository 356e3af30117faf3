//! The one error type of the `proto` module.

use etherparse::err::{self, LenError};
use etherparse::LenSource;

/// A protocol layer, used to say where an error was found.
///
/// This is our own enum (it never comes from the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layer {
    /// Ethernet II header.
    Ethernet,
    /// 802.1Q / 802.1ad VLAN tag.
    Vlan,
    /// MACsec header (recognised by etherparse, not handled further here).
    Macsec,
    /// ARP packet.
    Arp,
    /// IPv4 header and packet.
    Ipv4,
    /// IPsec authentication header (IPv4 or IPv6).
    IpAuth,
    /// IPv6 header and packet.
    Ipv6,
    /// IPv6 extension header.
    Ipv6Ext,
    /// ICMPv4 message.
    Icmpv4,
    /// ICMPv6 message.
    Icmpv6,
    /// UDP datagram.
    Udp,
    /// TCP segment.
    Tcp,
    /// Any IP layer (IPv4 or IPv6), where an operation needs one.
    Ip,
    /// A transport layer with ports (UDP or TCP), where an operation needs one.
    Transport,
    /// Anything else (e.g. IGMP).
    Other,
}

impl core::fmt::Display for Layer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = match self {
            Layer::Ethernet => "Ethernet",
            Layer::Vlan => "VLAN",
            Layer::Macsec => "MACsec",
            Layer::Arp => "ARP",
            Layer::Ipv4 => "IPv4",
            Layer::IpAuth => "IP authentication header",
            Layer::Ipv6 => "IPv6",
            Layer::Ipv6Ext => "IPv6 extension header",
            Layer::Icmpv4 => "ICMPv4",
            Layer::Icmpv6 => "ICMPv6",
            Layer::Udp => "UDP",
            Layer::Tcp => "TCP",
            Layer::Ip => "IP",
            Layer::Transport => "UDP/TCP",
            Layer::Other => "other protocol",
        };
        f.write_str(s)
    }
}

/// Everything that can go wrong when reading or editing a frame.
///
/// Malformed, truncated or lying input always gives one of these; no
/// function of the `proto` module panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The buffer ends before the layer does: either the frame is cut short
    /// or a length field claims more bytes than there are.
    #[error("{layer}: truncated, {required} bytes needed but only {available} present")]
    Truncated {
        /// Layer that was being read.
        layer: Layer,
        /// Bytes the layer needs (from the fixed header size or a length field).
        required: usize,
        /// Bytes that were available.
        available: usize,
    },
    /// A length field is smaller than the minimum it can be (IPv4 total
    /// length shorter than its header, UDP length below 8, an IPv6 payload
    /// length too short for its extension headers, ...).
    #[error("{layer}: length field value {value} is below the minimum of {min}")]
    BadLength {
        /// Layer whose length field is wrong.
        layer: Layer,
        /// The value found.
        value: usize,
        /// The smallest valid value.
        min: usize,
    },
    /// The IP version nibble does not match the header kind.
    #[error("{layer}: unexpected version number {version}")]
    BadVersion {
        /// Layer with the wrong version.
        layer: Layer,
        /// The version found.
        version: u8,
    },
    /// A header length field (IPv4 IHL, TCP data offset) is below 5 words.
    #[error("{layer}: header length field {value} is below the minimum of 5 (32-bit words)")]
    BadHeaderLen {
        /// Layer with the bad header length.
        layer: Layer,
        /// The value of the field (in 32-bit words).
        value: u8,
    },
    /// An extension header chain is invalid (hop-by-hop not first, an
    /// authentication header with a zero payload length, ...).
    #[error("{layer}: invalid extension header chain: {reason}")]
    BadExtension {
        /// Layer with the bad chain.
        layer: Layer,
        /// What is wrong.
        reason: &'static str,
    },
    /// Well-formed, but not something this module handles (e.g. ARP for a
    /// hardware type other than Ethernet, MACsec).
    #[error("{layer}: unsupported: {reason}")]
    Unsupported {
        /// Layer that is unsupported.
        layer: Layer,
        /// What is unsupported.
        reason: &'static str,
    },
    /// The frame does not contain the layer the operation needs (e.g. a
    /// port swap on an ARP frame).
    #[error("the frame has no {expected} layer")]
    Missing {
        /// The layer the operation needs.
        expected: Layer,
    },
    /// The message is not of the kind the operation needs (e.g. an echo
    /// reply asked for on something that is not an echo request).
    #[error("{layer}: message type {found} is not the expected {expected}")]
    WrongType {
        /// Layer of the message.
        layer: Layer,
        /// Type (or ARP operation) expected.
        expected: u16,
        /// Type (or ARP operation) found.
        found: u16,
    },
    /// The IP payload is a fragment, so the transport header cannot be
    /// reached or its checksum cannot be kept right.
    #[error("{layer}: payload is fragmented")]
    Fragmented {
        /// The IP layer that carries the fragment.
        layer: Layer,
    },
    /// An address of the wrong IP version was given.
    #[error("address family does not match the packet ({layer})")]
    AddressFamily {
        /// The IP layer of the packet.
        layer: Layer,
    },
    /// A value does not fit its field (e.g. a payload length that would make
    /// the IP or UDP length exceed 65535) or the buffer has no room for it.
    #[error("{layer}: value {value} exceeds the maximum of {max}")]
    TooLarge {
        /// Layer whose field would overflow.
        layer: Layer,
        /// The requested value.
        value: usize,
        /// The largest value that fits.
        max: usize,
    },
}

/// Maps etherparse's layer names onto ours.
pub(crate) fn map_layer(layer: err::Layer) -> Layer {
    use err::Layer as E;
    match layer {
        E::Ethernet2Header | E::EtherPayload | E::LinuxSllHeader => Layer::Ethernet,
        E::VlanHeader => Layer::Vlan,
        E::MacsecHeader | E::MacsecPacket => Layer::Macsec,
        E::Arp => Layer::Arp,
        E::Ipv4Header | E::Ipv4Packet | E::IpHeader => Layer::Ipv4,
        E::IpAuthHeader => Layer::IpAuth,
        E::Ipv6Header | E::Ipv6Packet => Layer::Ipv6,
        E::Ipv6ExtHeader
        | E::Ipv6HopByHopHeader
        | E::Ipv6DestOptionsHeader
        | E::Ipv6RouteHeader
        | E::Ipv6FragHeader => Layer::Ipv6Ext,
        E::UdpHeader | E::UdpPayload => Layer::Udp,
        E::TcpHeader => Layer::Tcp,
        E::Icmpv4 | E::Icmpv4Timestamp | E::Icmpv4TimestampReply => Layer::Icmpv4,
        E::Icmpv6 => Layer::Icmpv6,
        _ => Layer::Other,
    }
}

impl From<LenError> for ProtoError {
    fn from(e: LenError) -> Self {
        let layer = map_layer(e.layer);
        match e.len_source {
            // The buffer (or the ARP address lengths, which are checked
            // against the buffer) is too short.
            LenSource::Slice | LenSource::ArpAddrLengths => ProtoError::Truncated {
                layer,
                required: e.required_len,
                available: e.len,
            },
            // A length field of an enclosing header is too small.
            _ => ProtoError::BadLength {
                layer,
                value: e.len,
                min: e.required_len,
            },
        }
    }
}

impl From<err::ipv4::HeaderError> for ProtoError {
    fn from(e: err::ipv4::HeaderError) -> Self {
        use err::ipv4::HeaderError as E;
        match e {
            E::UnexpectedVersion { version_number } => ProtoError::BadVersion {
                layer: Layer::Ipv4,
                version: version_number,
            },
            E::HeaderLengthSmallerThanHeader { ihl } => ProtoError::BadHeaderLen {
                layer: Layer::Ipv4,
                value: ihl,
            },
        }
    }
}

impl From<err::ipv6::HeaderError> for ProtoError {
    fn from(e: err::ipv6::HeaderError) -> Self {
        use err::ipv6::HeaderError as E;
        match e {
            E::UnexpectedVersion { version_number } => ProtoError::BadVersion {
                layer: Layer::Ipv6,
                version: version_number,
            },
        }
    }
}

impl From<err::ip_auth::HeaderError> for ProtoError {
    fn from(e: err::ip_auth::HeaderError) -> Self {
        use err::ip_auth::HeaderError as E;
        match e {
            E::ZeroPayloadLen => ProtoError::BadExtension {
                layer: Layer::IpAuth,
                reason: "authentication header payload length is zero",
            },
        }
    }
}

impl From<err::ipv6_exts::HeaderError> for ProtoError {
    fn from(e: err::ipv6_exts::HeaderError) -> Self {
        use err::ipv6_exts::HeaderError as E;
        match e {
            E::HopByHopNotAtStart => ProtoError::BadExtension {
                layer: Layer::Ipv6Ext,
                reason: "hop-by-hop options header is not the first extension header",
            },
            E::IpAuth(a) => a.into(),
        }
    }
}

impl From<err::tcp::HeaderError> for ProtoError {
    fn from(e: err::tcp::HeaderError) -> Self {
        use err::tcp::HeaderError as E;
        match e {
            E::DataOffsetTooSmall { data_offset } => ProtoError::BadHeaderLen {
                layer: Layer::Tcp,
                value: data_offset,
            },
        }
    }
}

impl From<err::ipv4::SliceError> for ProtoError {
    fn from(e: err::ipv4::SliceError) -> Self {
        use err::ipv4::SliceError as E;
        match e {
            E::Len(l) => l.into(),
            E::Header(h) => h.into(),
            E::Exts(x) => x.into(),
        }
    }
}

impl From<err::ipv6::SliceError> for ProtoError {
    fn from(e: err::ipv6::SliceError) -> Self {
        use err::ipv6::SliceError as E;
        match e {
            E::Len(l) => l.into(),
            E::Header(h) => h.into(),
            E::Exts(x) => x.into(),
        }
    }
}

impl From<err::tcp::HeaderSliceError> for ProtoError {
    fn from(e: err::tcp::HeaderSliceError) -> Self {
        use err::tcp::HeaderSliceError as E;
        match e {
            E::Len(l) => l.into(),
            E::Content(c) => c.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_readable() {
        let e = ProtoError::Truncated {
            layer: Layer::Udp,
            required: 8,
            available: 3,
        };
        assert_eq!(
            e.to_string(),
            "UDP: truncated, 8 bytes needed but only 3 present"
        );
        let e = ProtoError::BadHeaderLen {
            layer: Layer::Ipv4,
            value: 3,
        };
        assert!(e.to_string().contains("IPv4"));
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(boxed.source().is_none());
    }

    #[test]
    fn len_error_mapping() {
        let e = LenError {
            required_len: 28,
            len: 20,
            len_source: LenSource::Ipv4HeaderTotalLen,
            layer: err::Layer::UdpHeader,
            layer_start_offset: 0,
        };
        assert_eq!(
            ProtoError::from(e),
            ProtoError::BadLength {
                layer: Layer::Udp,
                value: 20,
                min: 28
            }
        );
    }
}
