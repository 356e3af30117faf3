//! What a device offers for XDP and AF_XDP, as the kernel says through the `netdev`
//! generic-netlink family (`dev-get`, Linux ≥ 6.3): [`probe`] an interface before
//! binding, and read why zero-copy or native XDP is (not) there.
//!
//! ```no_run
//! # fn main() -> Result<(), fluxcapacitor::Error> {
//! let f = fluxcapacitor::features::probe("eth0")?;
//! println!("{f}");                          // a table, one row per feature
//! if f.zero_copy() == Some(false) {
//!     println!("no AF_XDP zero-copy on eth0: BindMode::Auto binds in copy mode");
//! }
//! # Ok(()) }
//! ```
//!
//! `FluxBuilder::build` probes too and puts the answer in
//! [`SetupReport::features`](crate::SetupReport::features); `XdpMode::Auto` and
//! `BindMode::Auto` decide from it, and the report's reasons cite it. On a kernel
//! without the family (before 6.3) every feature reads as unknown and set-up tries
//! as it always did.

use std::fmt;

/// A set of feature bits of one `netdev` bitmask. Unknown bits (from a newer
/// kernel) are kept and shown in hex.
macro_rules! flag_set {
    (
        $(#[$m:meta])* $name:ident {
            $( $(#[$fm:meta])* $flag:ident = $bit:expr, $text:literal, $meaning:literal; )*
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name(u64);

        impl $name {
            $( $(#[$fm])* pub const $flag: $name = $name($bit); )*

            /// Every flag this crate knows, with its name in the kernel's netlink
            /// spec and what it means.
            pub const ALL: &'static [($name, &'static str, &'static str)] =
                &[ $( ($name($bit), $text, $meaning), )* ];

            /// The empty set.
            pub const fn empty() -> Self {
                $name(0)
            }
            /// From the kernel's bitmask, unknown bits included.
            pub const fn from_bits_retain(bits: u64) -> Self {
                $name(bits)
            }
            /// The kernel's bitmask.
            pub const fn bits(self) -> u64 {
                self.0
            }
            /// Every bit of `other` is set here.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
            /// No bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
            /// The kernel's names of the flags set (`"basic"`, `"rx-sg"`, …).
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::ALL
                    .iter()
                    .filter(move |(f, _, _)| self.contains(*f))
                    .map(|(_, n, _)| *n)
            }
            fn unknown_bits(self) -> u64 {
                Self::ALL.iter().fold(self.0, |b, (f, _, _)| b & !f.0)
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }

        /// The kernel's names, space-separated (`none` when empty).
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut first = true;
                for n in self.names() {
                    if !first {
                        f.write_str(" ")?;
                    }
                    f.write_str(n)?;
                    first = false;
                }
                let rest = self.unknown_bits();
                if rest != 0 {
                    if !first {
                        f.write_str(" ")?;
                    }
                    write!(f, "{rest:#x}")?;
                    first = false;
                }
                if first {
                    f.write_str("none")?;
                }
                Ok(())
            }
        }
    };
}

flag_set! {
    /// `xdp-features` (`NETDEV_XDP_ACT_*`): what the driver does for XDP.
    XdpFeatures {
        /// Native XDP: the driver runs programs (`XDP_ABORTED/DROP/PASS/TX`).
        BASIC = 1 << 0, "basic", "native XDP in the driver (XdpMode::Native)";
        /// `XDP_REDIRECT` from the driver (to an AF_XDP socket, another device).
        REDIRECT = 1 << 1, "redirect", "native XDP_REDIRECT, to AF_XDP sockets among others";
        /// `ndo_xdp_xmit`: other devices can redirect frames into this one.
        NDO_XMIT = 1 << 2, "ndo-xmit", "takes frames redirected from other devices";
        /// AF_XDP zero-copy.
        XSK_ZEROCOPY = 1 << 3, "xsk-zerocopy", "AF_XDP zero-copy (BindMode::ZeroCopy)";
        /// XDP offloaded to the NIC.
        HW_OFFLOAD = 1 << 4, "hw-offload", "XDP offloaded to the NIC";
        /// Non-linear (multi-buffer) packets in the driver's receive path.
        RX_SG = 1 << 5, "rx-sg", "native XDP sees packets larger than a page (multi_buffer)";
        /// Non-linear packets through `ndo_xdp_xmit`.
        NDO_XMIT_SG = 1 << 6, "ndo-xmit-sg", "takes redirected multi-buffer frames";
    }
}

flag_set! {
    /// `xdp-rx-metadata-features` (`NETDEV_XDP_RX_METADATA_*`): the receive metadata
    /// an XDP program can read through the metadata kfuncs.
    RxMetadataFeatures {
        /// `bpf_xdp_metadata_rx_timestamp()`.
        TIMESTAMP = 1 << 0, "timestamp", "RX timestamp (bpf_xdp_metadata_rx_timestamp)";
        /// `bpf_xdp_metadata_rx_hash()`.
        HASH = 1 << 1, "hash", "RX hash (bpf_xdp_metadata_rx_hash)";
        /// `bpf_xdp_metadata_rx_vlan_tag()`.
        VLAN_TAG = 1 << 2, "vlan-tag", "stripped VLAN tag (bpf_xdp_metadata_rx_vlan_tag)";
    }
}

flag_set! {
    /// `xsk-features` (`NETDEV_XSK_FLAGS_*`): what AF_XDP TX metadata can ask the
    /// driver for.
    XskFeatures {
        /// TX completion timestamps.
        TX_TIMESTAMP = 1 << 0, "tx-timestamp", "TX completion timestamps (TX metadata)";
        /// TX checksum offload.
        TX_CHECKSUM = 1 << 1, "tx-checksum", "TX checksum offload (TX metadata)";
        /// Launch time (FIFO).
        TX_LAUNCH_TIME_FIFO = 1 << 2, "tx-launch-time-fifo", "TX launch time (TX metadata)";
    }
}

/// Whether, and how, the kernel answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeStatus {
    /// The `netdev` family answered `dev-get`.
    Answered,
    /// This kernel has no `netdev` generic-netlink family (it came in Linux 6.3):
    /// every feature is unknown.
    FamilyAbsent,
    /// The query failed (the reason); set-up went on without it.
    Failed(String),
}

/// What a device offers, from the `netdev` family's `dev-get`. Each field is `None`
/// where the kernel did not say (no family, or an attribute this kernel does not
/// send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFeatures {
    /// Interface name.
    pub ifname: String,
    /// Interface index.
    pub ifindex: u32,
    /// The running kernel's release.
    pub kernel: String,
    /// Whether the kernel answered.
    pub status: ProbeStatus,
    /// `xdp-features` (Linux ≥ 6.3).
    pub xdp: Option<XdpFeatures>,
    /// `xdp-zc-max-segs`: fragments per packet in zero-copy; the kernel sends it
    /// only for devices with [`XdpFeatures::XSK_ZEROCOPY`] (Linux ≥ 6.6).
    pub xdp_zc_max_segs: Option<u32>,
    /// `xdp-rx-metadata-features` (sent by newer kernels than the family itself;
    /// `None` before).
    pub rx_metadata: Option<RxMetadataFeatures>,
    /// `xsk-features` (sent by newer kernels, with AF_XDP TX metadata; `None`
    /// before).
    pub xsk: Option<XskFeatures>,
}

impl DeviceFeatures {
    /// Nothing known, for `status`.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn unknown(ifname: &str, ifindex: u32, kernel: String, status: ProbeStatus) -> Self {
        DeviceFeatures {
            ifname: ifname.to_string(),
            ifindex,
            kernel,
            status,
            xdp: None,
            xdp_zc_max_segs: None,
            rx_metadata: None,
            xsk: None,
        }
    }

    /// The kernel answered.
    pub fn answered(&self) -> bool {
        self.status == ProbeStatus::Answered
    }

    fn xdp_has(&self, f: XdpFeatures) -> Option<bool> {
        self.xdp.map(|x| x.contains(f))
    }

    /// Native XDP (`basic`); `None`: unknown.
    pub fn native_xdp(&self) -> Option<bool> {
        self.xdp_has(XdpFeatures::BASIC)
    }

    /// AF_XDP zero-copy (`xsk-zerocopy`); `None`: unknown.
    pub fn zero_copy(&self) -> Option<bool> {
        self.xdp_has(XdpFeatures::XSK_ZEROCOPY)
    }

    /// Multi-buffer packets in native XDP (`rx-sg`); `None`: unknown.
    pub fn rx_sg(&self) -> Option<bool> {
        self.xdp_has(XdpFeatures::RX_SG)
    }

    /// Why nothing is known, when nothing is: "netdev family absent, kernel < 6.3"
    /// and the like.
    pub fn unknown_because(&self) -> Option<String> {
        match &self.status {
            ProbeStatus::Answered => None,
            ProbeStatus::FamilyAbsent => Some(format!(
                "netdev family absent, kernel < 6.3 (this is {})",
                self.kernel
            )),
            ProbeStatus::Failed(why) => Some(format!("netdev query failed: {why}")),
        }
    }

    /// One line for the set-up reasons: `probe: xdp-features basic redirect rx-sg`,
    /// or `probe: unknown (netdev family absent, kernel < 6.3 …)`.
    pub fn summary(&self) -> String {
        match (self.unknown_because(), self.xdp) {
            (Some(why), _) => format!("probe: unknown ({why})"),
            (None, Some(x)) => format!("probe: xdp-features {x}"),
            (None, None) => "probe: xdp-features not reported".into(),
        }
    }
}

impl DeviceFeatures {
    /// What set-up will do on this device, in sentences: the XDP mode
    /// `XdpMode::Auto` picks, whether `BindMode::Auto` tries zero-copy, what
    /// multi-buffer and redirects into the device can count on. The answer to "why
    /// no zero-copy" and "why do I see no packets".
    pub fn explain(&self) -> Vec<String> {
        let mut out = Vec::new();
        let unknown = self.unknown_because();
        out.push(match (self.native_xdp(), &unknown) {
            (Some(true), _) => "XdpMode::Auto attaches in native mode: the driver advertises basic XDP".into(),
            (Some(false), _) => "XdpMode::Auto attaches in generic (SKB) mode: the driver does not advertise native XDP (basic); XdpMode::Native would fail (a veth advertises it only while its peer has no more tx queues than it has rx queues)".into(),
            (None, Some(why)) => format!("XdpMode::Auto tries native, then generic: features unknown ({why})"),
            (None, None) => "XdpMode::Auto tries native, then generic: xdp-features not reported".into(),
        });
        out.push(match (self.zero_copy(), &unknown) {
            (Some(true), _) => format!(
                "BindMode::Auto tries zero-copy: the driver advertises xsk-zerocopy{}",
                self.xdp_zc_max_segs
                    .map(|n| format!(" (up to {n} fragment(s) per packet, xdp-zc-max-segs)"))
                    .unwrap_or_default()
            ),
            (Some(false), _) => "BindMode::Auto binds in copy mode: the driver does not advertise xsk-zerocopy; BindMode::ZeroCopy fails with ZeroCopyUnsupported".into(),
            (None, _) => "BindMode::Auto lets the kernel try zero-copy, then copy: xsk-zerocopy unknown".into(),
        });
        match self.rx_sg() {
            Some(true) => out.push("multi_buffer(true): native XDP takes packets larger than a frame, in fragments (rx-sg)".into()),
            Some(false) => out.push("no rx-sg: in native mode the driver hands XDP only packets that fit one buffer (a jumbo MTU may refuse the program); generic mode takes any size".into()),
            None => {}
        }
        if let Some(x) = self.xdp {
            out.push(if x.contains(XdpFeatures::NDO_XMIT) {
                "ndo-xmit: XDP programs on other devices can redirect frames into it".into()
            } else {
                "no ndo-xmit: frames redirected into it by another device's XDP program are dropped (a veth gains it when its peer has an XDP program or GRO on)".into()
            });
        }
        out
    }
}

/// A table: one row per feature, what the kernel says, and what it means for a
/// socket.
impl fmt::Display for DeviceFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} (ifindex {}), Linux {}: {}",
            self.ifname,
            self.ifindex,
            self.kernel,
            match self.unknown_because() {
                None => "netdev netlink family answered".to_string(),
                Some(why) => format!("unknown ({why})"),
            }
        )?;
        let unknown = |absent: &str| match self.unknown_because() {
            Some(_) => "unknown".to_string(),
            None => format!("unknown ({absent})"),
        };
        fn rows<T: Copy>(
            f: &mut fmt::Formatter<'_>,
            title: &str,
            value: Option<T>,
            all: &[(T, &str, &str)],
            has: impl Fn(T, T) -> bool,
            shown: impl Fn(T) -> String,
            unknown: &str,
        ) -> fmt::Result {
            match value {
                Some(v) => writeln!(f, "  {title:<26} {}", shown(v))?,
                None => writeln!(f, "  {title:<26} {unknown}")?,
            }
            for (flag, name, meaning) in all {
                let yes = match value {
                    Some(v) if has(v, *flag) => "yes",
                    Some(_) => "no",
                    None => "?",
                };
                writeln!(f, "    {name:<24} {yes:<4} {meaning}")?;
            }
            Ok(())
        }
        rows(
            f,
            "xdp-features",
            self.xdp,
            XdpFeatures::ALL,
            |v, x| v.contains(x),
            |v| v.to_string(),
            &unknown("not reported"),
        )?;
        let segs = match (self.xdp_zc_max_segs, self.zero_copy()) {
            (Some(n), _) => n.to_string(),
            (None, Some(false)) => "- (no zero-copy)".into(),
            (None, _) => unknown("not reported, kernel < 6.6"),
        };
        writeln!(f, "  {:<26} {segs}", "xdp-zc-max-segs")?;
        rows(
            f,
            "xdp-rx-metadata-features",
            self.rx_metadata,
            RxMetadataFeatures::ALL,
            |v, x| v.contains(x),
            |v| v.to_string(),
            &unknown("not reported by this kernel"),
        )?;
        rows(
            f,
            "xsk-features",
            self.xsk,
            XskFeatures::ALL,
            |v, x| v.contains(x),
            |v| v.to_string(),
            &unknown("not reported by this kernel"),
        )
    }
}

/// Probes interface `ifname` in the calling thread's network namespace.
///
/// Needs no privileges. On a kernel without the `netdev` family (before 6.3) this
/// succeeds with [`ProbeStatus::FamilyAbsent`] and every feature `None`.
///
/// # Errors
/// [`Error::InterfaceNotFound`](crate::Error::InterfaceNotFound) when there is no
/// such interface; [`Error::Kernel`](crate::Error::Kernel) (stage
/// [`Stage::Probe`](crate::Stage::Probe)) when the netlink query itself fails.
#[cfg(target_os = "linux")]
pub fn probe(ifname: &str) -> crate::Result<DeviceFeatures> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
        return Err(crate::ConfigError::InterfaceName(ifname.to_string()).into());
    }
    let ifindex = crate::netdev::index(ifname)?;
    probe_index(ifname, ifindex)
}

/// [`probe`] for an interface already looked up.
#[cfg(target_os = "linux")]
pub(crate) fn probe_index(ifname: &str, ifindex: u32) -> crate::Result<DeviceFeatures> {
    probe_through(crate::sys::genl::NETDEV_FAMILY_NAME, ifname, ifindex)
}

/// [`probe_index`] through the generic-netlink family named `family_name` (the
/// `netdev` family; another name in tests, for a kernel that lacks it).
#[cfg(target_os = "linux")]
fn probe_through(family_name: &str, ifname: &str, ifindex: u32) -> crate::Result<DeviceFeatures> {
    use crate::error::{Error, Stage};
    use crate::sys::genl::Genl;
    let kernel = crate::sys::kernel_release().0;
    let fail = |e| Error::kernel(Stage::Probe, e);
    let genl = Genl::open(std::time::Duration::from_secs(1)).map_err(fail)?;
    let Some(family) = genl.family(family_name).map_err(fail)? else {
        return Ok(DeviceFeatures::unknown(
            ifname,
            ifindex,
            kernel,
            ProbeStatus::FamilyAbsent,
        ));
    };
    let d = genl
        .netdev_dev_get(family, ifindex)
        .map_err(fail)?
        .ok_or_else(|| Error::InterfaceNotFound(ifname.to_string()))?;
    Ok(DeviceFeatures {
        ifname: ifname.to_string(),
        ifindex,
        kernel,
        status: ProbeStatus::Answered,
        xdp: d.xdp_features.map(XdpFeatures::from_bits_retain),
        xdp_zc_max_segs: d.xdp_zc_max_segs,
        rx_metadata: d
            .xdp_rx_metadata_features
            .map(RxMetadataFeatures::from_bits_retain),
        xsk: d.xsk_features.map(XskFeatures::from_bits_retain),
    })
}

/// For set-up: the probe, or (when the query failed) a [`ProbeStatus::Failed`]
/// answer that knows nothing. Never an error: set-up goes on without it.
#[cfg(target_os = "linux")]
pub(crate) fn probe_for_setup(ifname: &str, ifindex: u32) -> DeviceFeatures {
    probe_index(ifname, ifindex).unwrap_or_else(|e| {
        DeviceFeatures::unknown(
            ifname,
            ifindex,
            crate::sys::kernel_release().0,
            ProbeStatus::Failed(e.to_string()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn veth_like() -> DeviceFeatures {
        DeviceFeatures {
            ifname: "fx0".into(),
            ifindex: 7,
            kernel: "6.18.0".into(),
            status: ProbeStatus::Answered,
            xdp: Some(XdpFeatures::BASIC | XdpFeatures::REDIRECT | XdpFeatures::RX_SG),
            xdp_zc_max_segs: None,
            rx_metadata: Some(RxMetadataFeatures::from_bits_retain(7)),
            xsk: Some(XskFeatures::empty()),
        }
    }

    #[test]
    fn flags_name_themselves_as_the_kernel_spec_does() {
        let x = XdpFeatures::from_bits_retain(0x67);
        assert_eq!(x.to_string(), "basic redirect ndo-xmit rx-sg ndo-xmit-sg");
        assert!(x.contains(XdpFeatures::BASIC | XdpFeatures::RX_SG));
        assert!(!x.contains(XdpFeatures::XSK_ZEROCOPY));
        assert_eq!(XdpFeatures::empty().to_string(), "none");
        // Bits of a newer kernel are kept and shown.
        assert_eq!(
            XdpFeatures::from_bits_retain(0x81).to_string(),
            "basic 0x80"
        );
        assert_eq!(
            RxMetadataFeatures::from_bits_retain(7).to_string(),
            "timestamp hash vlan-tag"
        );
        assert_eq!(
            XskFeatures::from_bits_retain(7).to_string(),
            "tx-timestamp tx-checksum tx-launch-time-fifo"
        );
    }

    #[test]
    fn accessors_and_summary_follow_the_answer() {
        let f = veth_like();
        assert_eq!(f.native_xdp(), Some(true));
        assert_eq!(f.zero_copy(), Some(false));
        assert_eq!(f.rx_sg(), Some(true));
        assert_eq!(f.summary(), "probe: xdp-features basic redirect rx-sg");
        let old = DeviceFeatures::unknown("fx0", 7, "6.1.0".into(), ProbeStatus::FamilyAbsent);
        assert_eq!(old.native_xdp(), None);
        assert_eq!(old.zero_copy(), None);
        assert_eq!(
            old.summary(),
            "probe: unknown (netdev family absent, kernel < 6.3 (this is 6.1.0))"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_kernel_without_the_family_reads_as_unknown_not_as_an_error() {
        // The controller of the running kernel, asked for a family it does not have
        // (as a kernel before 6.3 has no `netdev`): the probe answers "unknown".
        let f = probe_through("fxnosuchfam", "lo", 1).expect("no error");
        assert_eq!(f.status, ProbeStatus::FamilyAbsent);
        assert_eq!(
            (f.xdp, f.xdp_zc_max_segs, f.rx_metadata, f.xsk),
            (None, None, None, None)
        );
        assert!(
            f.summary().contains("netdev family absent, kernel < 6.3"),
            "{}",
            f.summary()
        );
        assert!(
            f.explain()[0].contains("tries native, then generic"),
            "{:?}",
            f.explain()
        );
        // And the real family, on the loopback device (no privileges needed).
        let lo = probe("lo").expect("probe lo");
        assert_eq!(lo.ifindex, 1);
        if lo.answered() {
            assert_eq!(lo.native_xdp(), Some(false), "{lo}");
        }
    }

    #[test]
    fn the_table_has_a_row_per_feature() {
        let t = veth_like().to_string();
        assert!(t.starts_with("fx0 (ifindex 7), Linux 6.18.0: netdev netlink family answered"));
        for name in ["basic", "xsk-zerocopy", "rx-sg", "timestamp", "tx-checksum"] {
            assert!(t.contains(name), "{name} missing in\n{t}");
        }
        let row = |name: &str| {
            t.lines()
                .find(|l| l.trim_start().starts_with(&format!("{name} ")))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        };
        assert_eq!(row("basic").as_deref(), Some("yes"));
        assert_eq!(row("xsk-zerocopy").as_deref(), Some("no"));
        assert_eq!(row("hash").as_deref(), Some("yes"));
        assert_eq!(row("tx-timestamp").as_deref(), Some("no"));
        assert!(
            t.contains("xdp-zc-max-segs            - (no zero-copy)"),
            "{t}"
        );
        let old = DeviceFeatures::unknown("fx0", 7, "6.1.0".into(), ProbeStatus::FamilyAbsent)
            .to_string();
        assert!(
            old.contains("unknown (netdev family absent, kernel < 6.3"),
            "{old}"
        );
        assert!(
            old.lines().filter(|l| l.contains(" ? ")).count() >= 13,
            "{old}"
        );
    }
}
