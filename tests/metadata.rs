#![cfg(feature = "system")]
//! RX metadata (`FluxBuilder::rx_metadata`) on real veth pairs: the RSS hash per
//! flow, the receive timestamp, the VLAN tag a peer's VLAN sub-interface leaves in
//! the skb, metadata off by default, and the typed refusal in generic mode. Veth
//! implements the XDP metadata kfuncs for frames it receives as skbs (from a socket
//! in the peer namespace), in native mode. Each test makes its own namespace and
//! veth pair.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use fluxcapacitor::system::{Frame, Rx};
use fluxcapacitor::{Error, Feature, FluxBuilder, RssHashType, SteeringFilter, XdpMode};

const PORT: u16 = 7400;

/// RX metadata needs Linux 6.3 (device-bound programs and the metadata kfuncs).
/// Before, checks that `rx_metadata(true)` is the typed refusal and returns true:
/// the test ends there.
fn rx_metadata_refused_here() -> bool {
    if kernel_at_least(6, 3) {
        return false;
    }
    let pair = VethPair::new(VethOpts::default());
    match FluxBuilder::new(&pair.host)
        .xdp_mode(XdpMode::Native)
        .rx_metadata(true)
        .build()
    {
        Err(Error::Unsupported {
            feature: Feature::RxMetadata,
            ..
        }) => true,
        other => panic!("expected the typed RX metadata refusal before 6.3: {other:?}"),
    }
}

/// TX metadata needs Linux 6.8; before, checks the typed refusal (as above).
fn tx_metadata_refused_here() -> bool {
    if kernel_at_least(6, 8) {
        return false;
    }
    let pair = VethPair::new(VethOpts::default());
    match FluxBuilder::new(&pair.host).tx_metadata(true).build() {
        Err(Error::Unsupported {
            feature: Feature::TxMetadata,
            ..
        }) => true,
        other => panic!("expected the typed TX metadata refusal before 6.8: {other:?}"),
    }
}

fn meta_flux(pair: &VethPair) -> fluxcapacitor::Flux {
    FluxBuilder::new(&pair.host)
        .frame_size(2048)
        .xdp_mode(XdpMode::Native)
        .rx_metadata(true)
        .filter(SteeringFilter::default().answering([pair.host_ip.into()]))
        .build()
        .expect("rx_metadata(true) in native mode on a veth")
}

/// Receives until `want` frames matched `pred` (or 5 s of nothing).
fn collect(rx: &mut Rx, want: usize, mut pred: impl FnMut(&Frame) -> bool) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut idle = Instant::now();
    while out.len() < want && idle.elapsed() < Duration::from_secs(5) {
        if rx
            .recv_batch_timeout(&mut batch, 64, Duration::from_millis(100))
            .unwrap()
            == 0
        {
            continue;
        }
        idle = Instant::now();
        out.extend(batch.drain(..).filter(|f| pred(f)));
    }
    out
}

fn udp_to_port(f: &Frame) -> Option<u16> {
    parse_udp_frame(f)
        .filter(|(_, d, _)| d.port() == PORT)
        .map(|(s, _, _)| s.port())
}

#[test]
fn rx_hash_is_stable_per_flow_and_differs_across_flows() {
    if skip_without_root() {
        return;
    }
    if rx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let flux = meta_flux(&pair);
    assert!(flux.report().rx_metadata, "{}", flux.report());
    let program = flux.program().cloned().expect("the embedded program");
    assert!(program.rx_metadata());
    let (mut rx, _tx) = flux.split();
    const FLOWS: u16 = 6;
    const PER_FLOW: u32 = 20;
    for f in 0..FLOWS {
        let payloads = (0..PER_FLOW).map(|i| seq_payload(i, 64)).collect();
        let src = pair.peer_addr(41000 + f);
        udp_send_from_ns(&pair.ns, src, pair.host_addr(PORT), payloads, None);
    }
    let frames = collect(&mut rx, (FLOWS as u32 * PER_FLOW) as usize, |f| {
        udp_to_port(f).is_some()
    });
    assert_eq!(frames.len(), (FLOWS as u32 * PER_FLOW) as usize);
    let mut per_flow: HashMap<u16, Vec<u32>> = HashMap::new();
    for f in &frames {
        let (hash, ty) = f.rx_hash().expect("veth provides the hash of every skb");
        // The hash of a locally sent UDP datagram is the flow dissector's hash over
        // addresses and ports (`l4_hash`), which veth reports as XDP_RSS_TYPE_L4_ANY.
        assert_eq!(ty.bits(), RssHashType::L4, "hash type {ty:?}");
        per_flow
            .entry(udp_to_port(f).unwrap())
            .or_default()
            .push(hash);
    }
    assert_eq!(per_flow.len(), FLOWS as usize);
    let mut distinct = std::collections::HashSet::new();
    for (port, hashes) in &per_flow {
        assert!(
            hashes.iter().all(|h| *h == hashes[0]),
            "flow from port {port}: hash changed within the flow: {hashes:x?}"
        );
        assert_ne!(hashes[0], 0, "flow from port {port}: zero hash");
        distinct.insert(hashes[0]);
    }
    assert_eq!(
        distinct.len(),
        FLOWS as usize,
        "flows share a hash: {per_flow:x?}"
    );
    let c = program.counters(0).unwrap();
    assert_eq!(
        c.meta_missing, 0,
        "redirected without room for metadata: {c:?}"
    );
    assert!(c.redirected >= frames.len() as u64, "{c:?}");
}

#[test]
fn rx_timestamp_of_a_veth_is_none_and_vlan_absent_for_untagged_frames() {
    if skip_without_root() {
        return;
    }
    if rx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let (mut rx, _tx) = meta_flux(&pair).split();
    let payloads = (0..10).map(|i| seq_payload(i, 100)).collect();
    udp_send_from_ns(
        &pair.ns,
        pair.peer_addr(42000),
        pair.host_addr(PORT),
        payloads,
        None,
    );
    let frames = collect(&mut rx, 10, |f| udp_to_port(f).is_some());
    assert_eq!(frames.len(), 10);
    for f in &frames {
        let m = f.rx_metadata().expect("the program wrote metadata");
        // veth answers with the skb's hardware timestamp, which no device set for
        // a datagram sent from a socket: 0, which the program reports as none.
        assert_eq!(m.timestamp, None, "{m:?}");
        assert_eq!(f.rx_timestamp(), None);
        assert_eq!(f.vlan(), None, "untagged datagram with a VLAN tag: {m:?}");
        assert!(m.hash.is_some());
    }
}

/// The TC egress helper for the peer end (tests/bpf/peer_egress.bpf.c): tags one
/// flow with VLAN 42 in the skb, writes the skb's flow hash into another's payload.
const PEER_EGRESS_OBJ: &str = concat!(env!("OUT_DIR"), "/peer_egress.bpf.o");

fn peer_egress_program(pair: &VethPair) {
    let ns = pair.ns.as_str();
    common::cmd::ip(&[
        "netns", "exec", ns, "tc", "qdisc", "add", "dev", &pair.peer, "clsact",
    ]);
    common::cmd::ip(&[
        "netns",
        "exec",
        ns,
        "tc",
        "filter",
        "add",
        "dev",
        &pair.peer,
        "egress",
        "bpf",
        "da",
        "obj",
        PEER_EGRESS_OBJ,
        "sec",
        "tc",
    ]);
}

/// The hash the metadata reports is the skb's flow hash, read independently on the
/// sending side (the peer's TC egress program writes it into the payload).
#[test]
fn rx_hash_is_the_skb_flow_hash_seen_by_the_sender() {
    if skip_without_root() {
        return;
    }
    if rx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    peer_egress_program(&pair);
    let (mut rx, _tx) = meta_flux(&pair).split();
    let payloads = (0..5).map(|i| seq_payload(i, 64)).collect();
    udp_send_from_ns(
        &pair.ns,
        pair.peer_addr(44000),
        pair.host_addr(PORT),
        payloads,
        None,
    );
    let frames = collect(&mut rx, 5, |f| udp_to_port(f) == Some(44000));
    assert_eq!(frames.len(), 5);
    for f in &frames {
        let (_, _, payload) = parse_udp_frame(f).unwrap();
        let sender = u32::from_ne_bytes(payload[4..8].try_into().unwrap());
        let (hash, ty) = f.rx_hash().expect("hash");
        assert_ne!(sender, 0);
        assert_eq!(
            hash, sender,
            "metadata hash {hash:#x} ({ty:?}), sender's skb hash {sender:#x}"
        );
    }
}

/// The kernel here may have no 802.1Q support (`CONFIG_VLAN_8021Q`), so the tag is
/// put into the skb the way a VLAN device with TX VLAN offload (a veth's default)
/// does, by a TC egress program on the peer end (`bpf_skb_vlan_push`, which sets
/// the skb's VLAN fields and leaves the frame bytes untagged): the datagrams of one
/// flow, from a plain UDP socket, carry VLAN 42 priority 3.
#[test]
fn vlan_tag_the_peer_put_in_the_skb() {
    if skip_without_root() {
        return;
    }
    if rx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    peer_egress_program(&pair);
    let (mut rx, _tx) = meta_flux(&pair).split();
    let tagged = (0..5).map(|i| seq_payload(i, 64)).collect();
    udp_send_from_ns(
        &pair.ns,
        pair.peer_addr(43000),
        pair.host_addr(PORT),
        tagged,
        None,
    );
    let plain = (0..5).map(|i| seq_payload(i, 64)).collect();
    udp_send_from_ns(
        &pair.ns,
        pair.peer_addr(43001),
        pair.host_addr(PORT),
        plain,
        None,
    );
    let frames = collect(&mut rx, 10, |f| udp_to_port(f).is_some());
    assert_eq!(frames.len(), 10);
    for f in &frames {
        assert_eq!(
            &f[12..14],
            &[0x08, 0x00],
            "the tag is not in the frame bytes"
        );
        match udp_to_port(f) {
            Some(43000) => {
                let tag = f.vlan().expect("the VLAN tag of the skb");
                assert_eq!(
                    (tag.proto, tag.id(), tag.pcp(), tag.dei()),
                    (0x8100, 42, 3, false)
                );
            }
            _ => assert_eq!(f.vlan(), None),
        }
    }
}

#[test]
fn rx_metadata_off_reads_nothing() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let flux = FluxBuilder::new(&pair.host)
        .frame_size(2048)
        .filter(SteeringFilter::default().answering([pair.host_ip.into()]))
        .build()
        .unwrap();
    assert!(!flux.report().rx_metadata);
    let (mut rx, _tx) = flux.split();
    let payloads = (0..5).map(|i| seq_payload(i, 64)).collect();
    udp_send_from_ns(
        &pair.ns,
        pair.peer_addr(42100),
        pair.host_addr(PORT),
        payloads,
        None,
    );
    let frames = collect(&mut rx, 5, |f| udp_to_port(f).is_some());
    assert_eq!(frames.len(), 5);
    for f in &frames {
        assert_eq!(f.rx_metadata(), None);
        assert_eq!(f.rx_hash(), None);
    }
}

#[test]
fn generic_mode_refuses_rx_metadata_with_the_reason() {
    if skip_without_root() {
        return;
    }
    if rx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let e = FluxBuilder::new(&pair.host)
        .xdp_mode(XdpMode::Generic)
        .rx_metadata(true)
        .build()
        .expect_err("device-bound programs cannot run in generic mode");
    match &e {
        Error::Unsupported {
            feature,
            ifname,
            needs,
            ..
        } => {
            assert_eq!(*feature, Feature::RxMetadata);
            assert_eq!(ifname, &pair.host);
            assert!(needs.contains("native"), "{e}");
        }
        other => panic!("expected Unsupported, got {other}"),
    }
    // Nothing is left attached, and the plain program still builds.
    assert!(!xdp_attached(&pair.host));
    FluxBuilder::new(&pair.host)
        .xdp_mode(XdpMode::Generic)
        .build()
        .expect("the plain program in generic mode");
}

/// The engine's packet view reads the same metadata: per flow one hash, distinct
/// across flows.
#[cfg(feature = "engine")]
#[test]
fn engine_packets_carry_the_rx_hash() {
    use fluxcapacitor::engine::Engine;
    use std::sync::{Arc, Mutex};
    if skip_without_root() {
        return;
    }
    if rx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let ip = pair.host_ip;
    let engine = Engine::builder(&pair.host)
        .configure(move |b: FluxBuilder| {
            b.frame_size(2048)
                .xdp_mode(XdpMode::Native)
                .rx_metadata(true)
                .filter(SteeringFilter::default().answering([ip.into()]))
        })
        .build()
        .expect("engine with rx_metadata");
    let stop = engine.stop_handle();
    type Seen = Vec<(u16, Option<u32>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let seen2 = seen.clone();
    const FLOWS: u16 = 3;
    const PER_FLOW: usize = 10;
    let runner = std::thread::spawn(move || {
        engine.run(move |batch| {
            let mut s = seen2.lock().unwrap();
            for p in batch.iter_mut() {
                if let Some((src, dst, _)) = parse_udp_frame(p.data()) {
                    if dst.port() == PORT {
                        s.push((src.port(), p.rx_hash().map(|(h, _)| h)));
                    }
                }
            }
        })
    });
    for f in 0..FLOWS {
        let payloads = (0..PER_FLOW as u32).map(|i| seq_payload(i, 64)).collect();
        udp_send_from_ns(
            &pair.ns,
            pair.peer_addr(45000 + f),
            pair.host_addr(PORT),
            payloads,
            None,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < FLOWS as usize * PER_FLOW && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.stop();
    runner.join().unwrap().expect("engine run");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), FLOWS as usize * PER_FLOW);
    let mut by_flow: HashMap<u16, std::collections::HashSet<u32>> = HashMap::new();
    for (port, h) in seen.iter() {
        by_flow
            .entry(*port)
            .or_default()
            .insert(h.expect("every packet has a hash"));
    }
    assert_eq!(by_flow.len(), FLOWS as usize);
    assert!(by_flow.values().all(|h| h.len() == 1), "{by_flow:x?}");
    let all: std::collections::HashSet<u32> = by_flow.values().flatten().copied().collect();
    assert_eq!(all.len(), FLOWS as usize, "{by_flow:x?}");
}

// ---------------------------------------------------------------------------
// TX metadata (copy mode on a veth)
// ---------------------------------------------------------------------------

const TX_PORT: u16 = 7401;

fn tx_flux(pair: &VethPair) -> fluxcapacitor::Flux {
    let flux = FluxBuilder::new(&pair.host)
        .frame_size(2048)
        .tx_metadata(true)
        .filter(SteeringFilter::default().answering([pair.host_ip.into()]))
        .build()
        .expect("tx_metadata(true) on a veth");
    assert!(flux.report().tx_metadata, "{}", flux.report());
    flux
}

/// A UDP socket in the peer namespace at `pair.peer_addr(TX_PORT)`.
fn peer_socket(pair: &VethPair) -> std::net::UdpSocket {
    let addr = pair.peer_addr(TX_PORT);
    let s = in_netns(&pair.ns, move || {
        std::net::UdpSocket::bind(addr).expect("bind")
    });
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s
}

/// `UdpInCsumErrors` of the peer namespace.
fn peer_udp_csum_errors(pair: &VethPair) -> u64 {
    let snmp = in_netns(&pair.ns, || {
        std::fs::read_to_string("/proc/thread-self/net/snmp").expect("snmp")
    });
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    let (names, values) = (udp[0], udp[1]);
    let i = names
        .split_whitespace()
        .position(|n| n == "InCsumErrors")
        .expect("InCsumErrors");
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// A host→peer UDP frame whose UDP checksum field holds only the pseudo-header sum
/// (what a sender puts there for checksum offload).
fn partial_udp_frame(pair: &VethPair, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (pair.host_addr(TX_PORT), pair.peer_addr(TX_PORT));
    let mut f = build_udp_frame(pair.host_mac, pair.peer_mac, src, dst, payload);
    let mut sum: u32 = 17 + (8 + payload.len() as u32);
    for w in src
        .ip()
        .octets()
        .chunks(2)
        .chain(dst.ip().octets().chunks(2))
    {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[40..42].copy_from_slice(&(sum as u16).to_be_bytes());
    f
}

fn send_frame(
    tx: &mut fluxcapacitor::system::Tx,
    bytes: &[u8],
    prep: impl FnOnce(&mut Frame),
) -> u64 {
    let mut f = tx.alloc().expect("a free frame");
    f.buffer_mut()[..bytes.len()].copy_from_slice(bytes);
    f.set_len(bytes.len()).unwrap();
    prep(&mut f);
    let addr = f.addr();
    tx.send_timeout(f, Duration::from_secs(2)).expect("send");
    assert!(
        tx.drain(Duration::from_secs(2)).unwrap(),
        "TX did not drain"
    );
    addr
}

/// Copy mode turns a checksum request into a `CHECKSUM_PARTIAL` skb: the peer's
/// stack takes the datagram whose checksum field holds only the pseudo-header sum,
/// which without the request it counts as a checksum error and drops.
#[test]
fn tx_checksum_request_makes_a_partial_checksum_acceptable() {
    if skip_without_root() {
        return;
    }
    if tx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let (_rx, mut tx) = tx_flux(&pair).split();
    let sock = peer_socket(&pair);
    let mut buf = [0u8; 2048];

    // Without the request: a bad checksum to the peer.
    let errors0 = peer_udp_csum_errors(&pair);
    send_frame(&mut tx, &partial_udp_frame(&pair, b"no offload"), |_| {});
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "a bad checksum was accepted"
    );
    let errors1 = peer_udp_csum_errors(&pair);
    assert_eq!(
        errors1,
        errors0 + 1,
        "the peer did not count the bad checksum"
    );

    // With it: delivered, no new error.
    send_frame(&mut tx, &partial_udp_frame(&pair, b"offloaded"), |f| {
        f.request_tx_checksum(34, 6).expect("request");
    });
    let (n, from) = sock.recv_from(&mut buf).expect("the offloaded datagram");
    assert_eq!(&buf[..n], b"offloaded");
    assert_eq!(from, std::net::SocketAddr::V4(pair.host_addr(TX_PORT)));
    assert_eq!(peer_udp_csum_errors(&pair), errors1);

    // A frame of the same UMEM sent without requests afterwards is sent as it is
    // (its correct checksum verified by the peer).
    let (src, dst) = (pair.host_addr(TX_PORT), pair.peer_addr(TX_PORT));
    send_frame(
        &mut tx,
        &build_udp_frame(pair.host_mac, pair.peer_mac, src, dst, b"plain"),
        |_| {},
    );
    let (n, _) = sock.recv_from(&mut buf).expect("the plain datagram");
    assert_eq!(&buf[..n], b"plain");
    assert_eq!(peer_udp_csum_errors(&pair), errors1);
}

fn clock_tai_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_TAI, &mut ts) }, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A completion timestamp request comes back with the packet's address and a
/// `CLOCK_TAI` time between its send and now (copy mode: the kernel's own stamp).
#[test]
fn tx_completion_timestamp_in_copy_mode() {
    if skip_without_root() {
        return;
    }
    if tx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let (_rx, mut tx) = tx_flux(&pair).split();
    let sock = peer_socket(&pair);
    let (src, dst) = (pair.host_addr(TX_PORT), pair.peer_addr(TX_PORT));
    let frame = build_udp_frame(pair.host_mac, pair.peer_mac, src, dst, b"stamp me");
    let before = clock_tai_ns();
    let stamped = send_frame(&mut tx, &frame, |f| f.request_tx_timestamp().unwrap());
    let plain = send_frame(&mut tx, &frame, |_| {});
    let after = clock_tai_ns();
    let mut buf = [0u8; 64];
    for _ in 0..2 {
        sock.recv_from(&mut buf).expect("both datagrams arrive");
    }
    let mut stamps = Vec::new();
    tx.take_tx_timestamps(&mut stamps);
    assert_eq!(stamps.len(), 1, "{stamps:?} (plain frame at {plain:#x})");
    assert_eq!(stamps[0].addr, stamped);
    assert!(
        (before..=after).contains(&stamps[0].ns),
        "timestamp {} not in [{before}, {after}]",
        stamps[0].ns
    );
    let c = tx.frame_counts();
    assert!(c.is_conserved(), "{c}");
}

#[test]
fn tx_metadata_requests_are_refused_without_it() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let (_rx, mut tx) = FluxBuilder::new(&pair.host)
        .frame_size(2048)
        .build()
        .unwrap()
        .split();
    let mut f = tx.alloc().unwrap();
    f.set_len(60).unwrap();
    assert!(matches!(
        f.request_tx_checksum(34, 6),
        Err(fluxcapacitor::DescError::NoTxMetadata)
    ));
    assert!(matches!(
        f.request_tx_timestamp(),
        Err(fluxcapacitor::DescError::NoTxMetadata)
    ));
}

/// A checksum request whose field no longer lies in the packet (shortened after
/// the request) is refused at send, with the frame back: the kernel would refuse the
/// descriptor and copy mode would stall on it.
#[test]
fn tx_checksum_request_past_the_shortened_packet_is_refused_at_send() {
    if skip_without_root() {
        return;
    }
    if tx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let (_rx, mut tx) = tx_flux(&pair).split();
    let mut f = tx.alloc().unwrap();
    f.set_len(60).unwrap();
    assert!(matches!(
        f.request_tx_checksum(40, 20),
        Err(fluxcapacitor::DescError::TxMetadata(_))
    ));
    f.request_tx_checksum(34, 6).unwrap();
    f.set_len(38).unwrap();
    let e = tx.try_send(f).expect_err("the field lies past the end");
    assert!(
        matches!(
            e.reason(),
            fluxcapacitor::system::SendFailure::Invalid(fluxcapacitor::DescError::TxMetadata(_))
        ),
        "{e}"
    );
    let mut f = e.into_frame();
    f.set_len(60).unwrap();
    tx.try_send(f).expect("fits again");
    assert!(tx.drain(Duration::from_secs(2)).unwrap());
    let c = tx.frame_counts();
    assert!(c.is_conserved() && c.user == 0, "{c}");
}

/// Linux ≥ 6.15 takes a launch-time request in copy mode (it sets the skb's
/// delivery time; a veth sends at once): the packet is delivered, not refused.
#[test]
fn tx_launch_time_request_is_accepted_in_copy_mode() {
    if skip_without_root() {
        return;
    }
    if tx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let flux = tx_flux(&pair);
    let stats0 = flux.device().statistics().unwrap();
    let (_rx, mut tx) = flux.split();
    if !kernel_at_least(6, 15) {
        // No launch time in the TX metadata before 6.15: refused, typed, at once.
        let mut f = tx.alloc().expect("a free frame");
        f.set_len(60).unwrap();
        match f.set_tx_launch_time(clock_tai_ns()) {
            Err(fluxcapacitor::DescError::Unsupported {
                feature: Feature::TxLaunchTime,
                ..
            }) => return,
            other => panic!("expected the typed launch-time refusal before 6.15: {other:?}"),
        }
    }
    let sock = peer_socket(&pair);
    let (src, dst) = (pair.host_addr(TX_PORT), pair.peer_addr(TX_PORT));
    let frame = build_udp_frame(pair.host_mac, pair.peer_mac, src, dst, b"launch");
    send_frame(&mut tx, &frame, |f| {
        f.set_tx_launch_time(clock_tai_ns()).unwrap()
    });
    let mut buf = [0u8; 64];
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("the datagram with a launch time");
    assert_eq!(&buf[..n], b"launch");
    let stats = tx.device().statistics().unwrap();
    assert_eq!(stats.tx_invalid_descs, stats0.tx_invalid_descs);
}

/// The engine's in-place reply with a checksum request: the peer takes the reply
/// whose UDP checksum field holds only the pseudo-header sum; without the request
/// it counts a checksum error.
#[cfg(feature = "engine")]
#[test]
fn engine_reply_with_tx_checksum_request() {
    use fluxcapacitor::engine::Engine;
    if skip_without_root() {
        return;
    }
    if tx_metadata_refused_here() {
        return;
    }
    const ECHO: u16 = 7402;
    let pair = VethPair::new(VethOpts::default());
    let ip = pair.host_ip;
    let engine = Engine::builder(&pair.host)
        .configure(move |b: FluxBuilder| {
            b.frame_size(2048)
                .tx_metadata(true)
                .filter(SteeringFilter::default().answering([ip.into()]))
        })
        .build()
        .expect("engine with tx_metadata");
    let stop = engine.stop_handle();
    let runner = std::thread::spawn(move || {
        engine.run(|batch| {
            for mut p in batch.iter_mut() {
                let Some((_, d, payload)) = parse_udp_frame(p.data()) else {
                    continue;
                };
                if d.port() != ECHO || p.len() < 42 {
                    continue;
                }
                let offload = payload.first() == Some(&b'o');
                let f = p.data_mut();
                let (dst, src) = f[..12].split_at_mut(6);
                dst.swap_with_slice(src);
                let (a, b) = f[26..34].split_at_mut(4);
                a.swap_with_slice(b);
                let (a, b) = f[34..38].split_at_mut(2);
                a.swap_with_slice(b);
                // Only the pseudo-header sum (addresses, protocol, UDP length).
                let mut sum: u32 = 17 + u16::from_be_bytes([f[38], f[39]]) as u32;
                for w in f[26..34].chunks(2) {
                    sum += u16::from_be_bytes([w[0], w[1]]) as u32;
                }
                while sum > 0xffff {
                    sum = (sum & 0xffff) + (sum >> 16);
                }
                f[40..42].copy_from_slice(&(sum as u16).to_be_bytes());
                if offload {
                    p.request_tx_checksum(34, 6).expect("request");
                }
                p.transmit();
            }
        })
    });
    let sock = peer_socket(&pair);
    let mut buf = [0u8; 256];
    let errors0 = peer_udp_csum_errors(&pair);
    sock.send_to(b"no request", pair.host_addr(ECHO)).unwrap();
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "a bad checksum was accepted"
    );
    let errors1 = peer_udp_csum_errors(&pair);
    assert_eq!(errors1, errors0 + 1);
    sock.send_to(b"offload", pair.host_addr(ECHO)).unwrap();
    let (n, from) = sock.recv_from(&mut buf).expect("the reply with offload");
    assert_eq!(&buf[..n], b"offload");
    assert_eq!(from, std::net::SocketAddr::V4(pair.host_addr(ECHO)));
    assert_eq!(peer_udp_csum_errors(&pair), errors1);
    stop.stop();
    runner.join().unwrap().expect("engine run");
}

/// The async handles yield the same frames, metadata included.
#[cfg(feature = "async")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_frames_carry_the_rx_hash() {
    if skip_without_root() {
        return;
    }
    if rx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let (mut rx, _tx) = meta_flux(&pair).split_async().expect("async handles");
    let payloads = (0..5).map(|i| seq_payload(i, 64)).collect();
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(46000), pair.host_addr(PORT));
    std::thread::spawn(move || udp_send_from_ns(&ns, src, dst, payloads, None));
    let mut hashes = Vec::new();
    while hashes.len() < 5 {
        let f = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a frame within 5 s")
            .unwrap();
        if udp_to_port(&f) == Some(46000) {
            hashes.push(f.rx_hash().expect("hash").0);
        }
    }
    assert!(
        hashes.iter().all(|h| *h == hashes[0] && *h != 0),
        "{hashes:x?}"
    );
}

/// `XdpMode::Auto` does not fall back to generic for RX metadata: on a device
/// without native XDP (a namespace's loopback) the build is refused, typed (the
/// kernel already refuses to bind the program to such a device at load).
#[test]
fn auto_mode_without_native_xdp_refuses_rx_metadata() {
    if skip_without_root() {
        return;
    }
    if rx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let built = in_netns(&pair.ns, || {
        common::cmd::ip(&["link", "set", "lo", "up"]);
        let r = FluxBuilder::new("lo")
            .rx_metadata(true)
            .drop_oversize(true)
            .build();
        let attached = xdp_attached("lo");
        (r.map(|_| ()), attached)
    });
    match built {
        (
            Err(Error::Unsupported {
                feature: Feature::RxMetadata,
                found,
                ..
            }),
            false,
        ) => {
            assert!(found.contains("no native XDP"), "{found}");
        }
        (other, attached) => {
            panic!("expected a typed refusal, nothing attached: {other:?}, attached {attached}")
        }
    }
}

/// A socket registered into the metadata variant another socket attached gets
/// metadata too; asking for it with a plain program is a conflict.
#[test]
fn shared_program_decides_rx_metadata() {
    if skip_without_root() {
        return;
    }
    if rx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts {
        queues: 2,
        ..VethOpts::default()
    });
    let first = meta_flux(&pair);
    let program = first.program().cloned().unwrap();
    let second = FluxBuilder::new(&pair.host)
        .queue(1)
        .frame_size(2048)
        .program(program)
        .build()
        .expect("a second queue on the same program");
    assert!(second.report().rx_metadata, "{}", second.report());
    assert!(second.umem().rx_metadata());
    drop((first, second));

    let plain = FluxBuilder::new(&pair.host)
        .frame_size(2048)
        .build()
        .unwrap();
    let e = FluxBuilder::new(&pair.host)
        .queue(1)
        .frame_size(2048)
        .program(plain.program().cloned().unwrap())
        .rx_metadata(true)
        .build()
        .expect_err("rx_metadata(true) on a plain program");
    assert!(
        matches!(e, Error::Config(fluxcapacitor::ConfigError::Conflict(_))),
        "{e}"
    );
}

/// The multi-buffer variant: a 6000-byte datagram over MTU 9000 arrives in several
/// frames, and its first carries the metadata.
#[test]
fn rx_metadata_with_multi_buffer_packets() {
    if skip_without_root() {
        return;
    }
    if rx_metadata_refused_here() {
        return;
    }
    let pair = VethPair::new(VethOpts {
        mtu: Some(9000),
        ..VethOpts::default()
    });
    let built = FluxBuilder::new(&pair.host)
        .multi_buffer(true)
        .frame_size(4096)
        .xdp_mode(XdpMode::Native)
        .rx_metadata(true)
        .filter(SteeringFilter::default().answering([pair.host_ip.into()]))
        .build();
    if refused_multi_buffer(&built) {
        return;
    }
    let (mut rx, _tx) = built.expect("multi-buffer with RX metadata").split();
    let payloads = (0..3).map(|i| seq_payload(i, 6000)).collect();
    udp_send_from_ns(
        &pair.ns,
        pair.peer_addr(47000),
        pair.host_addr(PORT),
        payloads,
        None,
    );
    // The whole packet, for the UDP parser (the first fragment holds the headers).
    let frames = collect(&mut rx, 3, |f| {
        parse_udp_frame(&f.contiguous())
            .is_some_and(|(s, d, _)| s.port() == 47000 && d.port() == PORT)
    });
    assert_eq!(frames.len(), 3);
    for f in &frames {
        assert!(f.is_multi_buffer(), "{} bytes in one frame", f.packet_len());
        let (h, ty) = f.rx_hash().expect("hash on the first fragment");
        assert_eq!((h != 0, ty.bits()), (true, RssHashType::L4));
    }
    let h0 = frames[0].rx_hash().unwrap().0;
    assert!(frames.iter().all(|f| f.rx_hash().unwrap().0 == h0));
}
