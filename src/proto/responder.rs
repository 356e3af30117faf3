//! Answering for an address in place: ARP requests for it and ICMP echo requests
//! to it, the two things a host that owns an IPv4 address must do.

use std::net::Ipv4Addr;

use crate::proto::edit;
use crate::proto::ethernet::MacAddr;
use crate::proto::{Layers, Net, Transport};

/// The identity to answer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Our MAC address.
    pub mac: MacAddr,
    /// Our IPv4 address.
    pub ipv4: Ipv4Addr,
}

/// What [`answer_in_place`] did to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The frame is now an ARP reply: send it back out.
    ArpReply,
    /// The frame is now an ICMP echo reply: send it back out.
    EchoReply,
    /// Not for us, or nothing to answer: the frame is unchanged.
    Ignore,
}

/// Turns an ARP request for `me.ipv4` into its reply, or an ICMPv4 echo request to
/// `me.ipv4` into its reply, in place. Anything else — including malformed input —
/// is left untouched and answered [`Answer::Ignore`]. Never panics.
pub fn answer_in_place(buf: &mut [u8], me: &Identity) -> Answer {
    let Ok(layers) = Layers::parse(buf) else {
        return Answer::Ignore;
    };
    match (layers.net, layers.transport) {
        (Net::Arp(arp), _) => {
            let is_request = arp.operation() == etherparse::ArpOperation::REQUEST;
            if is_request
                && arp.target_ip() == me.ipv4
                && edit::arp_reply_in_place(buf, me.mac).is_ok()
            {
                return Answer::ArpReply;
            }
            Answer::Ignore
        }
        (Net::Ipv4(ip), Transport::Icmpv4(icmp)) => {
            let is_echo =
                icmp.msg_type() == etherparse::icmpv4::TYPE_ECHO_REQUEST && icmp.code() == 0;
            if is_echo && ip.dst_addr() == me.ipv4 && edit::icmp_echo_reply_in_place(buf).is_ok() {
                return Answer::EchoReply;
            }
            Answer::Ignore
        }
        _ => Answer::Ignore,
    }
}
