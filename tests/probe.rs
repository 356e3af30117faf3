#![cfg(target_os = "linux")]
//! The device probe on veth pairs (root): what `features::probe` reads from the
//! kernel's `netdev` netlink family equals what libbpf's own client of that family
//! (`bpf_xdp_query`) reads, follows the device as it changes (GRO on the peer, queue
//! counts), and agrees with what the kernel then does (native attach, zero-copy
//! bind); the set-up report carries it and the Auto modes decide from it; the
//! `probe` example prints it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use fluxcapacitor::features::{
    probe, DeviceFeatures, ProbeStatus, RxMetadataFeatures, XdpFeatures,
};
use fluxcapacitor::{AttachedMode, BindMode, Error, FluxBuilder, XdpMode};

/// What libbpf's `bpf_xdp_query` says about `ifindex` (in the calling thread's
/// namespace): the `xdp-features` bitmask and `xdp-zc-max-segs` (0 when absent).
/// libbpf sends its own `netdev` dev-get and parses the reply itself: a second,
/// independent reading of what the kernel says.
fn libbpf_query(ifindex: u32) -> (u64, u32) {
    // SAFETY: an all-zero bpf_xdp_query_opts is valid; `sz` is set below.
    let mut q: libbpf_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    q.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_query_opts>() as _;
    // SAFETY: `q` is a valid, sized opts struct that outlives the call.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut q) };
    assert_eq!(rc, 0, "bpf_xdp_query({ifindex}) failed: {rc}");
    (q.feature_flags, q.xdp_zc_max_segs)
}

/// Probes `ifname` and reads libbpf's answer, in namespace `ns` (None: this one).
fn both(ns: Option<&str>, ifname: &str, ifindex: u32) -> (DeviceFeatures, (u64, u32)) {
    let name = ifname.to_string();
    let run = move || {
        let f = probe(&name).unwrap_or_else(|e| panic!("probe({name}): {e}"));
        (f, libbpf_query(ifindex))
    };
    match ns {
        None => run(),
        Some(ns) => in_netns(ns, run),
    }
}

/// Asserts the probe equals libbpf's reading, and returns the xdp-features.
fn agree(ns: Option<&str>, ifname: &str, ifindex: u32) -> XdpFeatures {
    let (f, (flags, zc_segs)) = both(ns, ifname, ifindex);
    assert_eq!(f.status, ProbeStatus::Answered, "{f}");
    assert_eq!((f.ifname.as_str(), f.ifindex), (ifname, ifindex));
    let x = f
        .xdp
        .unwrap_or_else(|| panic!("no xdp-features on 6.3+:\n{f}"));
    assert_eq!(
        x.bits(),
        flags,
        "{ifname}: probe says {x}, libbpf says {}",
        XdpFeatures::from_bits_retain(flags)
    );
    assert_eq!(
        f.xdp_zc_max_segs.unwrap_or(0),
        zc_segs,
        "{ifname}: xdp-zc-max-segs"
    );
    // The kernel sends xdp-zc-max-segs exactly for zero-copy devices.
    assert_eq!(
        f.xdp_zc_max_segs.is_some(),
        x.contains(XdpFeatures::XSK_ZEROCOPY)
    );
    x
}

/// The running kernel's (major, minor).
fn kernel() -> (u32, u32) {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut it = rel.trim().split(|c: char| !c.is_ascii_digit());
    let mut num = || it.next().and_then(|s| s.parse().ok()).expect("version");
    (num(), num())
}

/// The `netdev` generic-netlink family came in Linux 6.3.
fn kernel_has_netdev_family() -> bool {
    kernel() >= (6, 3)
}

/// On a kernel without the family: the probe says so and knows nothing, libbpf
/// knows nothing either, and set-up goes on as it always did (native first), its
/// reasons saying the probe could not answer.
fn without_the_family_everything_is_unknown(pair: &VethPair) {
    let (f, (flags, segs)) = both(None, &pair.host, pair.host_ifindex);
    assert_eq!(f.status, ProbeStatus::FamilyAbsent, "{f}");
    assert_eq!(
        (f.xdp, f.xdp_zc_max_segs, f.rx_metadata, f.xsk),
        (None, None, None, None)
    );
    assert_eq!(
        (flags, segs),
        (0, 0),
        "libbpf read features without the family"
    );
    let summary = f.summary();
    assert!(
        summary.contains("netdev family absent, kernel < 6.3"),
        "{summary}"
    );
    assert!(
        f.to_string().contains("unknown (netdev family absent"),
        "{f}"
    );
    let flux = FluxBuilder::new(&pair.host).build().expect("auto build");
    let r = flux.report();
    assert_eq!(r.features.as_ref(), Some(&f), "{r}");
    assert_eq!(r.xdp_mode, Some(AttachedMode::Native), "{r}");
    for reason in [
        &r.attach_reason,
        &r.zero_copy_reason,
        &r.multi_buffer_reason,
    ] {
        assert!(reason.contains(&summary), "{reason}");
    }
}

fn ethtool(ns: Option<&str>, args: &[&str]) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ethtool"]);
            c
        }
        None => Command::new("ethtool"),
    };
    let out = cmd.args(args).output().expect("run ethtool");
    assert!(
        out.status.success(),
        "ethtool {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

#[test]
fn probe_agrees_with_libbpf_and_follows_the_device() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts {
        queues: 2,
        ..Default::default()
    });
    if !kernel_has_netdev_family() {
        return without_the_family_everything_is_unknown(&pair);
    }
    let ns = Some(pair.ns.as_str());
    let host = agree(None, &pair.host, pair.host_ifindex);
    let peer = agree(ns, &pair.peer, pair.peer_ifindex);
    // Equal queue counts: both ends can run native XDP.
    assert!(host.contains(XdpFeatures::BASIC), "host: {host}");
    assert!(peer.contains(XdpFeatures::BASIC), "peer: {peer}");

    // veth offers ndo_xdp_xmit to frames redirected into an end only when the
    // *other* end can take them (an XDP program or GRO there): turning GRO on at the
    // peer changes what the host end says, and both readings follow.
    let gro_before = host.contains(XdpFeatures::NDO_XMIT);
    ethtool(
        ns,
        &[
            "-K",
            &pair.peer,
            "gro",
            if gro_before { "off" } else { "on" },
        ],
    );
    let host2 = agree(None, &pair.host, pair.host_ifindex);
    assert_ne!(
        host2.contains(XdpFeatures::NDO_XMIT),
        gro_before,
        "GRO on the peer toggled, ndo-xmit of the host did not: {host} -> {host2}"
    );
    assert_eq!(
        host2.contains(XdpFeatures::NDO_XMIT_SG),
        host2.contains(XdpFeatures::NDO_XMIT)
    );

    // Fewer rx queues on the host than tx queues on its peer: the host can no longer
    // run native XDP, says so, and the kernel indeed refuses a native attach.
    set_channels(&pair.host, 1, 2);
    let host3 = agree(None, &pair.host, pair.host_ifindex);
    assert!(!host3.contains(XdpFeatures::BASIC), "host: {host3}");
    match FluxBuilder::new(&pair.host)
        .xdp_mode(XdpMode::Native)
        .build()
    {
        Err(Error::NativeUnsupported { ifname, .. }) => assert_eq!(ifname, pair.host),
        other => panic!(
            "the probe says no native XDP, yet native attach gave {:?}",
            other.map(|f| f.report().clone())
        ),
    }
    // And back.
    set_channels(&pair.host, 2, 2);
    let host4 = agree(None, &pair.host, pair.host_ifindex);
    assert!(host4.contains(XdpFeatures::BASIC), "host: {host4}");

    // What veth does not offer, the kernel refuses: no xsk-zerocopy, and a
    // zero-copy bind fails.
    assert!(!host4.contains(XdpFeatures::XSK_ZEROCOPY), "host: {host4}");
    match FluxBuilder::new(&pair.host)
        .bind_mode(BindMode::ZeroCopy)
        .build()
    {
        Err(Error::ZeroCopyUnsupported { .. }) => {}
        other => panic!(
            "no xsk-zerocopy, yet a zero-copy bind gave {:?}",
            other.map(|f| f.report().clone())
        ),
    }
}

#[test]
fn missing_interfaces_and_bad_names_are_typed_errors() {
    if skip_without_root() {
        return;
    }
    match probe("fxqnosuch0") {
        Err(Error::InterfaceNotFound(n)) => assert_eq!(n, "fxqnosuch0"),
        other => panic!("expected InterfaceNotFound, got {other:?}"),
    }
    for bad in ["", "a-name-far-too-long-for-ifnamsiz"] {
        match probe(bad) {
            Err(Error::Config(fluxcapacitor::ConfigError::InterfaceName(n))) => assert_eq!(n, bad),
            other => panic!("expected InterfaceName for {bad:?}, got {other:?}"),
        }
    }
}

#[test]
fn the_report_carries_the_probe_and_auto_modes_follow_it() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    if !kernel_has_netdev_family() {
        return without_the_family_everything_is_unknown(&pair);
    }
    let before = probe(&pair.host).expect("probe");
    assert_eq!(before.native_xdp(), Some(true), "{before}");
    let flux = FluxBuilder::new(&pair.host)
        .xdp_mode(XdpMode::Auto)
        .bind_mode(BindMode::Auto)
        .build()
        .expect("build");
    let r = flux.report().clone();
    // The report's features are the probe's (our own program on the host changes
    // what its peer says, not what the host says).
    assert_eq!(r.features.as_ref(), Some(&before), "{r}");
    assert_eq!(r.xdp_mode, Some(AttachedMode::Native), "{r}");
    let summary = before.summary();
    assert!(
        summary.starts_with("probe: xdp-features basic"),
        "{summary}"
    );
    assert!(
        r.attach_reason.contains("advertises basic XDP") && r.attach_reason.contains(&summary),
        "{}",
        r.attach_reason
    );
    assert!(!r.zero_copy);
    assert!(
        r.zero_copy_reason.contains("no xsk-zerocopy")
            && r.zero_copy_reason.contains("XDP_COPY")
            && r.zero_copy_reason.contains(&summary),
        "{}",
        r.zero_copy_reason
    );
    assert!(
        r.multi_buffer_reason.starts_with("multi-buffer off")
            && r.multi_buffer_reason.contains("rx-sg")
            && r.multi_buffer_reason.contains(&summary),
        "{}",
        r.multi_buffer_reason
    );
    assert!(r.to_string().contains(&summary), "{r}");
    drop(flux);

    // Multi-buffer in native mode on a driver that advertises rx-sg.
    if kernel_has_multi_buffer() {
        let flux = FluxBuilder::new(&pair.host)
            .multi_buffer(true)
            .frame_size(4096)
            .build()
            .expect("multi-buffer build");
        let r = flux.report();
        assert_eq!(r.xdp_mode, Some(AttachedMode::Native), "{r}");
        assert!(
            r.multi_buffer_reason.contains("advertises rx-sg")
                && r.multi_buffer_reason.contains(&summary),
            "{}",
            r.multi_buffer_reason
        );
        assert!(r.to_string().contains(&r.multi_buffer_reason), "{r}");
    }
}

#[test]
fn auto_picks_generic_where_the_probe_says_no_native_xdp() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts {
        queues: 2,
        ..Default::default()
    });
    // One rx queue on the host against two tx queues on its peer: veth withdraws
    // native XDP (and the kernel refuses a native attach, see above).
    set_channels(&pair.host, 1, 2);
    let f = probe(&pair.host).expect("probe");
    let mut flux = FluxBuilder::new(&pair.host).build().expect("auto build");
    let r = flux.report().clone();
    assert_eq!(r.xdp_mode, Some(AttachedMode::Generic), "{r}");
    if !kernel_has_netdev_family() {
        // Nothing known: native was tried, refused, and generic taken, as before.
        assert_eq!(f.native_xdp(), None, "{f}");
        assert!(
            r.attach_reason.contains("native XDP unavailable")
                && r.attach_reason.contains(&f.summary()),
            "{}",
            r.attach_reason
        );
        assert!(flux.frame_counts().is_conserved());
        return;
    }
    assert_eq!(f.native_xdp(), Some(false), "{f}");
    assert!(
        r.attach_reason
            .contains("auto: generic, the driver does not advertise native XDP")
            && r.attach_reason.contains(&f.summary()),
        "{}",
        r.attach_reason
    );
    // Went straight to generic: no native attempt failed on the way.
    assert!(
        !r.attach_reason.contains("unavailable"),
        "{}",
        r.attach_reason
    );
    assert!(
        r.zero_copy_reason.contains(&f.summary()),
        "{}",
        r.zero_copy_reason
    );
    assert!(flux.frame_counts().is_conserved());
}

/// The `probe` example: in the target directory of this test binary (`cargo test`
/// builds the examples), or of this checkout (a copy of the test binary run
/// elsewhere, as the kernel matrix does), else built now.
fn probe_example() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let profile_dir = exe.parent().and_then(|d| d.parent());
    let candidates: Vec<PathBuf> = profile_dir
        .map(|d| d.join("examples/probe"))
        .into_iter()
        .chain(["debug", "release"].map(|p| manifest.join("target").join(p).join("examples/probe")))
        .collect();
    if let Some(bin) = candidates.iter().find(|p| p.is_file()) {
        return bin.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["build", "--example", "probe"])
        .current_dir(&manifest)
        .output()
        .unwrap_or_else(|e| {
            panic!("the probe example is not built ({candidates:?}) and {cargo} cannot run: {e}")
        });
    assert!(
        out.status.success(),
        "cargo build --example probe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = manifest.join("target/debug/examples/probe");
    assert!(bin.is_file(), "{} not built", bin.display());
    bin
}

#[test]
fn the_probe_example_prints_the_table() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let f = probe(&pair.host).expect("probe");
    let bin = probe_example();
    let out = Command::new(&bin)
        .arg(&pair.host)
        .output()
        .expect("run probe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The table the library prints, then what set-up does there.
    assert!(text.starts_with(&f.to_string()), "{text}");
    for line in f.explain() {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    if kernel_has_netdev_family() {
        let x = f.xdp.expect("xdp-features");
        assert!(
            text.contains(&format!("xdp-features               {x}")),
            "{text}"
        );
        assert!(text.contains("BindMode::Auto binds in copy mode"), "{text}");
    } else {
        assert!(
            text.contains("netdev family absent, kernel < 6.3"),
            "{text}"
        );
        assert!(
            text.contains("BindMode::Auto lets the kernel try"),
            "{text}"
        );
    }
    // In the peer's namespace, through `ip netns exec`, and a missing interface.
    let out = Command::new("ip")
        .args(["netns", "exec", &pair.ns])
        .arg(&bin)
        .args(["--iface", &pair.peer, "lo"])
        .output()
        .expect("run probe in ns");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("{} (ifindex {})", pair.peer, pair.peer_ifindex)));
    assert!(text.contains("lo (ifindex 1)"), "{text}");
    let out = Command::new(&bin).arg("fxqnosuch0").output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

/// The device-bound program of `tests/bpf/rx_meta.bpf.c`.
static RX_META_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rx_meta.bpf.o"));

/// Which RX metadata the driver of `ifindex` implements, found by running the
/// metadata kfuncs on packets `send` makes arrive there: loaded bound to the device,
/// the verifier binds each kfunc to the driver's implementation, or to a stub
/// returning -EOPNOTSUPP where the driver has none. The other end's reading of the
/// same question the probe asks.
fn rx_metadata_by_kfuncs(ifindex: u32, send: impl Fn()) -> RxMetadataFeatures {
    use libbpf_rs::{MapCore, MapFlags, ObjectBuilder};
    let mut open = ObjectBuilder::default()
        .open_memory(RX_META_OBJ)
        .expect("open rx_meta.bpf.o");
    let mut prog = open
        .progs_mut()
        .find(|p| p.name() == "rx_meta_prog")
        .expect("rx_meta_prog");
    prog.set_ifindex(ifindex);
    prog.set_flags(libbpf_sys::BPF_F_XDP_DEV_BOUND_ONLY);
    let obj = open.load().expect("load the device-bound program");
    let prog = obj
        .progs_mut()
        .find(|p| p.name() == "rx_meta_prog")
        .expect("rx_meta_prog");
    let _link = prog
        .attach_xdp(ifindex as i32)
        .expect("attach the device-bound program");
    let map = obj
        .maps()
        .find(|m| m.name() == "rx_meta_results")
        .expect("rx_meta_results");
    let read = |k: u32| -> i64 {
        map.lookup(&k.to_ne_bytes(), MapFlags::ANY)
            .expect("lookup")
            .and_then(|v| v.get(..8).and_then(|b| b.try_into().ok()))
            .map(i64::from_ne_bytes)
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while read(0) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no packet reached the program"
        );
        send();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let eopnotsupp = -(libc::EOPNOTSUPP as i64);
    RxMetadataFeatures::ALL
        .iter()
        .zip(1u32..)
        .filter(|(_, key)| read(*key) != eopnotsupp)
        .fold(RxMetadataFeatures::empty(), |acc, ((f, _, _), _)| acc | *f)
}

/// A tap device (removed when dropped: it lives as long as its descriptor) and
/// a way to make frames arrive on it (writing them to the descriptor).
struct Tap {
    fd: std::fs::File,
    name: String,
}

impl Tap {
    fn new() -> Tap {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
        const IFF_TAP: libc::c_short = 0x0002;
        const IFF_NO_PI: libc::c_short = 0x1000;
        if !std::path::Path::new("/dev/net/tun").exists() {
            // A kernel with tun as a module that nothing has loaded yet.
            let _ = Command::new("modprobe").arg("tun").status();
        }
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .expect("open /dev/net/tun (modprobe tun)");
        let name = format!("fx{}t", common::veth::base36(std::process::id(), 5));
        // SAFETY: an all-zero ifreq is valid; name and flags are set below.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI;
        // SAFETY: TUNSETIFF reads and writes the ifreq, which outlives the call.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut ifr) };
        assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        let up = Command::new("ip")
            .args(["link", "set", "dev", &name, "up"])
            .status()
            .expect("ip link set up");
        assert!(up.success(), "ip link set dev {name} up");
        Tap { fd, name }
    }

    /// One frame arrives on the tap (a broadcast of the local experimental
    /// EtherType 0x88b5, which nothing answers).
    fn send(&self) {
        use std::io::Write;
        let mut frame = vec![0xffu8; 6];
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x88, 0xb5]);
        frame.resize(60, 0);
        let _ = (&self.fd).write(&frame);
    }
}

#[test]
fn rx_metadata_features_match_what_the_driver_kfuncs_do() {
    if skip_without_root() {
        return;
    }
    // veth implements the RX metadata kfuncs (drivers/net/veth.c); tun does not:
    // one device where the kernel should say yes, one where it should say no.
    let pair = VethPair::new(VethOpts::default());
    let f = probe(&pair.host).expect("probe");
    let Some(probed) = f.rx_metadata else {
        // Older kernels send no such attribute (and know fewer kfuncs); 6.8 and
        // later always send it.
        assert!(
            kernel() < (6, 8),
            "no xdp-rx-metadata-features on 6.8+:\n{f}"
        );
        return;
    };
    let by_kfuncs = rx_metadata_by_kfuncs(pair.host_ifindex, || {
        udp_send_from_ns(
            &pair.ns,
            pair.peer_addr(40100),
            pair.host_addr(40101),
            vec![vec![0u8; 32]],
            None,
        )
    });
    assert_eq!(
        probed, by_kfuncs,
        "{}: the probe says {probed}, the driver's kfuncs say {by_kfuncs}",
        pair.host
    );
    assert!(!probed.is_empty(), "{f}");

    let tap = Tap::new();
    let f = probe(&tap.name).expect("probe tap");
    let probed = f.rx_metadata.expect("xdp-rx-metadata-features");
    let ifindex = f.ifindex;
    let by_kfuncs = rx_metadata_by_kfuncs(ifindex, || tap.send());
    assert_eq!(
        probed, by_kfuncs,
        "{}: the probe says {probed}, the driver's kfuncs say {by_kfuncs}",
        tap.name
    );
    assert!(probed.is_empty(), "{f}");
}
