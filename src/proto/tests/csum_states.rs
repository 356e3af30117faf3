//! Property tests for the checksum states (verified, partial, zero, bad):
//! the classification agrees with a naive model built on etherparse's own
//! checksum calculators, and every edit leaves a checksum that is right on
//! the wire from a verified, partial or zero input and stays wrong by the
//! same amount from a bad one.

use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use proptest::prelude::*;

use super::props::{apply_and_check, op, spec, Op};
use super::util::{etherparse_checksums_ok, Kind};
use crate::proto::{checksum, edit, ChecksumState, Layers};

/// The state a test puts into the UDP/TCP checksum field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Put {
    Verified,
    Partial,
    Zero,
    Bad(u16),
}

fn put() -> impl Strategy<Value = Put> {
    prop_oneof![
        Just(Put::Verified),
        Just(Put::Partial),
        Just(Put::Zero),
        any::<u16>().prop_map(Put::Bad),
    ]
}

/// Naive model of a frame's UDP/TCP checksum, from etherparse: (offset of
/// the checksum field, the field, the right checksum, the folded
/// pseudo-header sum — computed word by word here, not with our helpers —,
/// whether zero means "none").
struct Model {
    field_at: usize,
    field: u16,
    right: u16,
    pseudo: u16,
    zero_is_none: bool,
}

fn naive_fold(words: impl IntoIterator<Item = u32>) -> u16 {
    let mut acc: u64 = words.into_iter().map(u64::from).sum();
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn words(b: &[u8]) -> Vec<u32> {
    b.chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .collect()
}

fn model(buf: &[u8]) -> Option<Model> {
    let h = PacketHeaders::from_ethernet_slice(buf).ok()?;
    let payload = h.payload.slice();
    let m = Layers::parse(buf).ok()?.meta();
    let l4_len = (m.transport_len) as u32;
    let (src, dst, v4): (Vec<u8>, Vec<u8>, bool) = match h.net.as_ref()? {
        NetHeaders::Ipv4(ip, _) => (ip.source.to_vec(), ip.destination.to_vec(), true),
        NetHeaders::Ipv6(ip, _) => (ip.source.to_vec(), ip.destination.to_vec(), false),
        NetHeaders::Arp(_) => return None,
    };
    let (field, right, proto, zero_is_none) = match (h.net.as_ref()?, h.transport.as_ref()?) {
        (NetHeaders::Ipv4(ip, _), TransportHeader::Udp(u)) => (
            u.checksum,
            u.calc_checksum_ipv4(ip, payload).ok()?,
            17,
            true,
        ),
        (NetHeaders::Ipv6(ip, _), TransportHeader::Udp(u)) => (
            u.checksum,
            u.calc_checksum_ipv6(ip, payload).ok()?,
            17,
            false,
        ),
        (NetHeaders::Ipv4(ip, _), TransportHeader::Tcp(t)) => (
            t.checksum,
            t.calc_checksum_ipv4(ip, payload).ok()?,
            6,
            false,
        ),
        (NetHeaders::Ipv6(ip, _), TransportHeader::Tcp(t)) => (
            t.checksum,
            t.calc_checksum_ipv6(ip, payload).ok()?,
            6,
            false,
        ),
        _ => return None,
    };
    let mut w = words(&src);
    w.extend(words(&dst));
    if v4 {
        w.extend([proto, l4_len]);
    } else {
        w.extend([l4_len >> 16, l4_len & 0xffff, proto]);
    }
    let field_at = m.transport_offset + if proto == 17 { 6 } else { 16 };
    Some(Model {
        field_at,
        field,
        right,
        pseudo: naive_fold(w),
        zero_is_none,
    })
}

/// One's-complement equality (0 and 0xffff are the same number).
fn same(a: u16, b: u16) -> bool {
    a == b || (a | b == 0xffff && (a == 0 || b == 0))
}

/// How far the field is from the right checksum: `field - right` in one's
/// complement. RFC 1624 updates keep this constant.
fn error_of(m: &Model) -> u16 {
    checksum::add(m.field, !m.right)
}

/// Writes `put` into the frame's checksum field; `None` when the state does
/// not apply (zero over IPv6 or TCP; a "bad" value that is in fact right,
/// partial or zero).
fn apply_put(buf: &mut [u8], put: Put) -> Option<Put> {
    let m = model(buf)?;
    let value = match put {
        Put::Verified => m.right,
        Put::Partial => m.pseudo,
        Put::Zero if m.zero_is_none => 0,
        Put::Zero => return None,
        Put::Bad(v) => {
            if same(v, m.right) || same(v, m.pseudo) || v == 0 {
                return None;
            }
            v
        }
    };
    buf[m.field_at..m.field_at + 2].copy_from_slice(&value.to_be_bytes());
    Some(put)
}

fn udp_or_tcp() -> impl Strategy<Value = super::util::Spec> {
    spec().prop_filter("UDP or TCP", |s| !matches!(s.kind, Kind::Icmp))
}

/// Ops that leave the UDP/TCP checksum to the incremental rules (the
/// length change computes afresh; the MAC swap looks at Ethernet only).
fn incremental(op: &Op) -> bool {
    !matches!(op, Op::UdpLen(_) | Op::SwapMacs | Op::EchoReply)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The cheap classification and the full one agree with the model.
    #[test]
    fn states_are_classified(spec in udp_or_tcp(), put in put()) {
        let mut buf = spec.build();
        prop_assume!(apply_put(&mut buf, put).is_some());
        let m = model(&buf).unwrap();
        let l = Layers::parse(&buf).unwrap();
        let cheap = l.checksum_state().unwrap();
        let full = l.verify_checksum().unwrap();
        prop_assert_eq!(edit::checksum_state(&buf).unwrap(), Some(cheap));
        // A right checksum that equals the pseudo-header sum is "partial" to
        // the cheap look and verified to the full one.
        let right_is_partial = same(m.right, m.pseudo);
        match put {
            Put::Verified => {
                let want = if right_is_partial { ChecksumState::Partial } else { ChecksumState::Unverified };
                prop_assert_eq!(cheap, want);
                prop_assert_eq!(full, ChecksumState::Verified);
                prop_assert!(etherparse_checksums_ok(&buf));
            }
            Put::Partial => {
                prop_assert_eq!(cheap, ChecksumState::Partial);
                let want = if right_is_partial { ChecksumState::Verified } else { ChecksumState::Partial };
                prop_assert_eq!(full, want);
            }
            Put::Zero => {
                prop_assert_eq!(cheap, ChecksumState::Zero);
                prop_assert_eq!(full, ChecksumState::Zero);
                prop_assert!(full.is_valid_on_wire());
            }
            Put::Bad(_) => {
                prop_assert_eq!(cheap, ChecksumState::Unverified);
                prop_assert_eq!(full, ChecksumState::Bad);
                prop_assert!(!edit::checksums_valid(&buf).unwrap());
            }
        }
    }

    /// A zero UDP checksum over IPv6 is bad to both looks.
    #[test]
    fn zero_over_ipv6_is_bad(mut spec in udp_or_tcp()) {
        spec.v6 = true;
        spec.kind = Kind::Udp;
        let mut buf = spec.build();
        let m = model(&buf).unwrap();
        buf[m.field_at..m.field_at + 2].copy_from_slice(&[0, 0]);
        let l = Layers::parse(&buf).unwrap();
        prop_assert_eq!(l.checksum_state(), Some(ChecksumState::Bad));
        prop_assert_eq!(l.verify_checksum(), Some(ChecksumState::Bad));
    }

    /// After any sequence of edits: from a verified or partial input the
    /// checksum is right (and equals a full recompute); from zero it stays
    /// zero; from a bad one it is off by exactly as much as before.
    #[test]
    fn edits_from_every_state(spec in udp_or_tcp(), put in put(), ops in proptest::collection::vec(op(), 1..6)) {
        let mut buf = spec.build();
        prop_assume!(apply_put(&mut buf, put).is_some());
        let before = model(&buf).unwrap();
        let err = error_of(&before);
        let mut touched = false;
        let mut recomputed = false;
        for op in &ops {
            if apply_and_check(&mut buf, op) {
                touched |= incremental(op);
                recomputed |= matches!(op, Op::UdpLen(_));
            }
        }
        let after = model(&buf).unwrap();
        match put {
            Put::Verified => {
                prop_assert!(etherparse_checksums_ok(&buf));
                let mut again = buf.clone();
                edit::recompute_checksums(&mut again).unwrap();
                prop_assert_eq!(again, buf);
            }
            Put::Partial if touched || recomputed => {
                prop_assert!(etherparse_checksums_ok(&buf), "partial not completed: {:?}", ops);
                prop_assert!(edit::checksums_valid(&buf).unwrap());
                let l = Layers::parse(&buf).unwrap();
                prop_assert_eq!(l.verify_checksum(), Some(ChecksumState::Verified));
            }
            Put::Partial => {
                // Nothing touched the transport: the field is still partial.
                prop_assert_eq!(after.field, after.pseudo);
            }
            Put::Zero => prop_assert_eq!(after.field, 0),
            Put::Bad(_) if recomputed => prop_assert!(etherparse_checksums_ok(&buf)),
            Put::Bad(_) => {
                prop_assert!(same(error_of(&after), err), "error changed: {:?}", ops);
                prop_assert!(!etherparse_checksums_ok(&buf));
            }
        }
    }

    /// `complete_checksum` completes a partial checksum and leaves every
    /// other state as it was.
    #[test]
    fn complete_checksum_only_touches_partial(spec in udp_or_tcp(), put in put()) {
        let mut buf = spec.build();
        prop_assume!(apply_put(&mut buf, put).is_some());
        let orig = buf.clone();
        let state = edit::complete_checksum(&mut buf).unwrap();
        match put {
            Put::Partial => {
                prop_assert_eq!(state, Some(ChecksumState::Partial));
                prop_assert!(etherparse_checksums_ok(&buf));
            }
            _ if state == Some(ChecksumState::Partial) => {
                // A right checksum that happens to equal the partial sum.
                prop_assert_eq!(put, Put::Verified);
                prop_assert_eq!(buf, orig);
            }
            _ => prop_assert_eq!(buf, orig),
        }
    }
}

/// The one partial frame every veth peer sends: a hand-made check that the
/// UDP reply of a partial datagram is valid, incremental rules aside.
#[test]
fn udp_reply_completes_a_partial_checksum() {
    for v6 in [false, true] {
        let mut buf = super::util::Spec {
            v6,
            ..Default::default()
        }
        .build();
        let m = model(&buf).unwrap();
        buf[m.field_at..m.field_at + 2].copy_from_slice(&m.pseudo.to_be_bytes());
        assert!(!edit::checksums_valid(&buf).unwrap());
        edit::udp_reply_in_place(&mut buf).unwrap();
        assert!(etherparse_checksums_ok(&buf), "v6 {v6}");
        assert_eq!(
            Layers::parse(&buf).unwrap().verify_checksum(),
            Some(ChecksumState::Verified)
        );
    }
}
