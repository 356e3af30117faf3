//! Generic netlink: resolving a family by name (`CTRL_CMD_GETFAMILY`) and the
//! `netdev` family's `dev-get` (Linux ≥ 6.3), which says what a device offers for
//! XDP and AF_XDP. Requests go through [`Netlink`](super::netlink::Netlink); the
//! replies are parsed from plain bytes, so the parsers are tested on fixtures.
//!
//! The wire format, from `include/uapi/linux/genetlink.h` and
//! `include/uapi/linux/netdev.h` (`Documentation/netlink/specs/netdev.yaml`): after
//! the netlink header a 4-byte `genlmsghdr` (cmd, version, reserved), then
//! attributes.

use std::io;
use std::time::Duration;

use super::netlink::{attr_u32, attrs, Netlink};

/// `GENL_ID_CTRL`: the controller family's fixed id.
const GENL_ID_CTRL: u16 = 0x10;
const GENL_HDRLEN: usize = 4;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const CTRL_ATTR_VERSION: u16 = 3;

/// The `netdev` family's name and the version its header says (`NETDEV_FAMILY_VERSION`).
pub const NETDEV_FAMILY_NAME: &str = "netdev";
const NETDEV_FAMILY_VERSION: u8 = 1;
const NETDEV_CMD_DEV_GET: u8 = 1;

const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_A_DEV_XDP_ZC_MAX_SEGS: u16 = 4;
const NETDEV_A_DEV_XDP_RX_METADATA_FEATURES: u16 = 5;
const NETDEV_A_DEV_XSK_FEATURES: u16 = 6;

/// A generic-netlink family as the controller describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The id to send its requests to (the netlink message type).
    pub id: u16,
    /// The family's version.
    pub version: u32,
}

/// One `dev-get` reply: each attribute `None` when the kernel did not send it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevAttrs {
    /// `ifindex`.
    pub ifindex: Option<u32>,
    /// `xdp-features` (`NETDEV_XDP_ACT_*`).
    pub xdp_features: Option<u64>,
    /// `xdp-zc-max-segs` (sent only for devices with zero-copy).
    pub xdp_zc_max_segs: Option<u32>,
    /// `xdp-rx-metadata-features` (`NETDEV_XDP_RX_METADATA_*`).
    pub xdp_rx_metadata_features: Option<u64>,
    /// `xsk-features` (`NETDEV_XSK_FLAGS_*`).
    pub xsk_features: Option<u64>,
}

/// A `u64` attribute value: 8 bytes (`nla_put_u64_64bit`), or 4 (a variable-width
/// `uint` sent small); `None` for any other length.
fn attr_u64(v: &[u8]) -> Option<u64> {
    match v.len() {
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(v);
            Some(u64::from_ne_bytes(b))
        }
        4 => Some(u64::from(attr_u32(v))),
        _ => None,
    }
}

/// A request payload: the generic header, then the attributes.
fn genl_payload(cmd: u8, version: u8, attributes: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = vec![cmd, version, 0, 0];
    for (ty, val) in attributes {
        let len = 4 + val.len();
        out.extend_from_slice(&(len as u16).to_ne_bytes());
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(val);
        out.resize((out.len() + 3) & !3, 0);
    }
    out
}

/// The attributes after the generic header of a reply body (empty when short).
fn genl_attrs(body: &[u8]) -> &[u8] {
    body.get(GENL_HDRLEN..).unwrap_or(&[])
}

/// Parses a controller reply (`CTRL_CMD_NEWFAMILY`) body.
pub fn parse_family(body: &[u8]) -> Option<Family> {
    let mut id = None;
    let mut version = 0;
    for (ty, val) in attrs(genl_attrs(body)) {
        match ty {
            CTRL_ATTR_FAMILY_ID if val.len() >= 2 => {
                id = Some(u16::from_ne_bytes([val[0], val[1]]))
            }
            CTRL_ATTR_VERSION => version = attr_u32(val),
            _ => {}
        }
    }
    id.map(|id| Family { id, version })
}

/// Parses a `dev-get` reply body. Attributes of unknown type (a newer kernel's)
/// are ignored, and so is a value of the wrong size (the attribute reads as absent).
pub fn parse_dev(body: &[u8]) -> DevAttrs {
    let mut d = DevAttrs::default();
    for (ty, val) in attrs(genl_attrs(body)) {
        match ty {
            NETDEV_A_DEV_IFINDEX if val.len() == 4 => d.ifindex = Some(attr_u32(val)),
            NETDEV_A_DEV_XDP_FEATURES => d.xdp_features = attr_u64(val),
            NETDEV_A_DEV_XDP_ZC_MAX_SEGS if val.len() == 4 => {
                d.xdp_zc_max_segs = Some(attr_u32(val))
            }
            NETDEV_A_DEV_XDP_RX_METADATA_FEATURES => d.xdp_rx_metadata_features = attr_u64(val),
            NETDEV_A_DEV_XSK_FEATURES => d.xsk_features = attr_u64(val),
            _ => {}
        }
    }
    d
}

/// A `NETLINK_GENERIC` request socket, in the calling thread's network namespace.
#[derive(Debug)]
pub struct Genl {
    nl: Netlink,
}

impl Genl {
    /// Opens the socket; replies that take longer than `timeout` fail with `TimedOut`.
    pub fn open(timeout: Duration) -> io::Result<Genl> {
        Ok(Genl {
            nl: Netlink::open(libc::NETLINK_GENERIC, 0, false, timeout)?,
        })
    }

    /// Resolves family `name`; `Ok(None)` when this kernel has no such family.
    pub fn family(&self, name: &str) -> io::Result<Option<Family>> {
        let mut cname = name.as_bytes().to_vec();
        cname.push(0);
        let req = genl_payload(CTRL_CMD_GETFAMILY, 1, &[(CTRL_ATTR_FAMILY_NAME, &cname)]);
        let mut out = None;
        match self.nl.request(GENL_ID_CTRL, 0, &req, |ty, body| {
            if ty == GENL_ID_CTRL {
                out = parse_family(body);
            }
        }) {
            Ok(()) => Ok(out),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `dev-get` for `ifindex` through the `netdev` family `family`; `Ok(None)` when
    /// there is no such device in this namespace.
    pub fn netdev_dev_get(&self, family: Family, ifindex: u32) -> io::Result<Option<DevAttrs>> {
        let idx = ifindex.to_ne_bytes();
        let req = genl_payload(
            NETDEV_CMD_DEV_GET,
            NETDEV_FAMILY_VERSION,
            &[(NETDEV_A_DEV_IFINDEX, &idx)],
        );
        let mut out = None;
        match self.nl.request(family.id, 0, &req, |ty, body| {
            if ty == family.id {
                out = Some(parse_dev(body));
            }
        }) {
            Ok(()) => Ok(out),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::netlink::put_attr;
    use super::*;

    /// A reply body as the kernel builds it: the generic header, then attributes.
    fn body(attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = vec![NETDEV_CMD_DEV_GET, NETDEV_FAMILY_VERSION, 0, 0];
        for (ty, val) in attributes {
            put_attr(&mut b, *ty, val);
        }
        b
    }

    #[test]
    fn a_full_dev_get_reply_parses() {
        // What net/core/netdev-genl.c sends for a zero-copy device: ifindex, the
        // three u64 bitmasks (each behind a pad attribute, type 2, when the u64
        // would be misaligned), and xdp-zc-max-segs.
        let b = body(&[
            (NETDEV_A_DEV_IFINDEX, &7u32.to_ne_bytes()),
            (2, &[]),
            (NETDEV_A_DEV_XDP_FEATURES, &0x2fu64.to_ne_bytes()),
            (2, &[]),
            (NETDEV_A_DEV_XDP_RX_METADATA_FEATURES, &7u64.to_ne_bytes()),
            (2, &[]),
            (NETDEV_A_DEV_XSK_FEATURES, &3u64.to_ne_bytes()),
            (NETDEV_A_DEV_XDP_ZC_MAX_SEGS, &5u32.to_ne_bytes()),
        ]);
        assert_eq!(
            parse_dev(&b),
            DevAttrs {
                ifindex: Some(7),
                xdp_features: Some(0x2f),
                xdp_zc_max_segs: Some(5),
                xdp_rx_metadata_features: Some(7),
                xsk_features: Some(3),
            }
        );
    }

    #[test]
    fn an_older_kernels_reply_leaves_the_newer_attributes_absent() {
        // 6.3..6.7: ifindex and xdp-features only (no metadata, no xsk features).
        let b = body(&[
            (NETDEV_A_DEV_IFINDEX, &3u32.to_ne_bytes()),
            (NETDEV_A_DEV_XDP_FEATURES, &0x67u64.to_ne_bytes()),
        ]);
        let d = parse_dev(&b);
        assert_eq!(d.ifindex, Some(3));
        assert_eq!(d.xdp_features, Some(0x67));
        assert_eq!(d.xdp_zc_max_segs, None);
        assert_eq!(d.xdp_rx_metadata_features, None);
        assert_eq!(d.xsk_features, None);
    }

    #[test]
    fn unknown_attributes_bad_sizes_and_garbage_do_not_break_the_parse() {
        let b = body(&[
            (NETDEV_A_DEV_IFINDEX, &3u32.to_ne_bytes()),
            (99, &[1, 2, 3, 4, 5, 6, 7, 8, 9]),
            (NETDEV_A_DEV_XSK_FEATURES, &[1, 2, 3]), // wrong size: absent
            (NETDEV_A_DEV_XDP_FEATURES, &1u32.to_ne_bytes()), // 4-byte uint
        ]);
        let d = parse_dev(&b);
        assert_eq!(
            (d.ifindex, d.xdp_features, d.xsk_features),
            (Some(3), Some(1), None)
        );
        // A truncated body, a lone header and nothing at all.
        assert_eq!(parse_dev(&b[..b.len() - 3]).xdp_features, None);
        assert_eq!(parse_dev(&b[..4]), DevAttrs::default());
        assert_eq!(parse_dev(&[]), DevAttrs::default());
        // An attribute length running past the end ends the walk.
        let mut bad = b.clone();
        bad[4] = 0xff;
        assert_eq!(parse_dev(&bad), DevAttrs::default());
    }

    #[test]
    fn controller_replies_parse() {
        let mut b = vec![1u8, 2, 0, 0]; // CTRL_CMD_NEWFAMILY, version 2
        put_attr(&mut b, CTRL_ATTR_FAMILY_NAME, b"netdev\0");
        put_attr(&mut b, CTRL_ATTR_FAMILY_ID, &0x1du16.to_ne_bytes());
        put_attr(&mut b, CTRL_ATTR_VERSION, &1u32.to_ne_bytes());
        assert_eq!(
            parse_family(&b),
            Some(Family {
                id: 0x1d,
                version: 1
            })
        );
        assert_eq!(parse_family(&b[..4]), None);
    }

    #[test]
    fn requests_are_laid_out_as_the_kernel_expects() {
        let req = genl_payload(
            CTRL_CMD_GETFAMILY,
            1,
            &[(CTRL_ATTR_FAMILY_NAME, b"netdev\0".as_slice())],
        );
        // genlmsghdr, then nla_len 11 / nla_type 2 / "netdev\0", padded to 4.
        let mut want = vec![3u8, 1, 0, 0];
        want.extend_from_slice(&11u16.to_ne_bytes());
        want.extend_from_slice(&2u16.to_ne_bytes());
        want.extend_from_slice(b"netdev\0\0");
        assert_eq!(req, want);
    }

    #[test]
    fn the_controller_resolves_itself_and_refuses_unknown_families() {
        // No privileges needed: the controller answers every process.
        let g = Genl::open(Duration::from_secs(1)).expect("genetlink socket");
        let ctrl = g.family("nlctrl").expect("GETFAMILY").expect("nlctrl");
        assert_eq!(ctrl.id, GENL_ID_CTRL);
        assert_eq!(g.family("fxnosuchfam").expect("GETFAMILY"), None);
    }
}
