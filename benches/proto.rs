//! ns per frame: our `Layers::parse` next to etherparse's
//! `SlicedPacket::from_ethernet` on the same frames.
//!
//! Short run: `cargo bench --bench proto -- --measurement-time 2 --warm-up-time 1`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use etherparse::{PacketBuilder, SlicedPacket, TcpOptionElement};
use fluxcapacitor::proto::{edit, ChecksumState, Layers, Net, Transport};

fn udp_frame(total: usize) -> Vec<u8> {
    let payload = vec![0x5au8; total - 14 - 20 - 8];
    let mut v = Vec::with_capacity(total);
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(40000, 7)
        .write(&mut v, &payload)
        .unwrap();
    assert_eq!(v.len(), total);
    v
}

fn tcp_frame() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(443, 50000, 0x1122_3344, 65535)
        .ack(0x5566_7788)
        .psh()
        .options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(0x0102_0304, 0x0506_0708),
        ])
        .unwrap()
        .write(&mut v, &[0x42; 200])
        .unwrap();
    v
}

fn bench_parse(c: &mut Criterion) {
    let frames = [
        ("udp4_64B", udp_frame(64)),
        ("udp4_1514B", udp_frame(1514)),
        ("tcp4_opts_266B", tcp_frame()),
    ];
    for (name, frame) in &frames {
        let mut g = c.benchmark_group(format!("parse/{name}"));
        g.bench_function("fluxcapacitor::proto::Layers::parse", |b| {
            b.iter(|| {
                let l = Layers::parse(black_box(frame)).unwrap();
                black_box(l);
            })
        });
        g.bench_function("etherparse::SlicedPacket::from_ethernet", |b| {
            b.iter(|| {
                let s = SlicedPacket::from_ethernet(black_box(frame)).unwrap();
                black_box(s);
            })
        });
        g.finish();
    }
    let mut g = c.benchmark_group("edit/udp4_64B");
    let mut frame = udp_frame(64);
    g.bench_function("udp_reply_in_place", |b| {
        b.iter(|| edit::udp_reply_in_place(black_box(&mut frame)).unwrap())
    });
    g.finish();

    // What an echo pays for a datagram from an offloading sender (veth peer,
    // container, virtio guest): the reply completes the partial checksum,
    // reading the payload. Each iteration starts from a fresh copy, so both
    // rows include the same copy.
    for total in [64usize, 1514] {
        let full = udp_frame(total);
        let partial = partial_udp(&full);
        let mut g = c.benchmark_group(format!("edit/udp4_{total}B_reply_from_copy"));
        let mut work = full.clone();
        g.bench_function("verified input (incremental)", |b| {
            b.iter(|| {
                work.copy_from_slice(black_box(&full));
                edit::udp_reply_in_place(&mut work).unwrap()
            })
        });
        g.bench_function("partial input (completed)", |b| {
            b.iter(|| {
                work.copy_from_slice(black_box(&partial));
                edit::udp_reply_in_place(&mut work).unwrap()
            })
        });
        g.finish();
        let mut g = c.benchmark_group(format!("checksum_state/udp4_{total}B"));
        g.bench_function("Layers::checksum_state (headers only)", |b| {
            b.iter(|| Layers::parse(black_box(&partial)).unwrap().checksum_state())
        });
        g.bench_function("Layers::verify_checksum (reads the payload)", |b| {
            b.iter(|| Layers::parse(black_box(&full)).unwrap().verify_checksum())
        });
        g.finish();
    }
}

/// `frame` with its UDP checksum field replaced by the pseudo-header sum, as
/// a sender that offloads the checksum leaves it.
fn partial_udp(frame: &[u8]) -> Vec<u8> {
    let mut v = frame.to_vec();
    let l = Layers::parse(frame).unwrap();
    let (Net::Ipv4(ip), Transport::Udp(u)) = (l.net, l.transport) else {
        panic!("not UDP over IPv4")
    };
    let p = u.pseudo_header_sum_v4(ip.src_addr(), ip.dst_addr());
    let at = l.meta().transport_offset + 6;
    v[at..at + 2].copy_from_slice(&p.to_be_bytes());
    assert_eq!(
        Layers::parse(&v).unwrap().checksum_state(),
        Some(ChecksumState::Partial)
    );
    v
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
