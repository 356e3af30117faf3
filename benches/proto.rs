//! ns per frame: our `Frame::parse` next to etherparse's
//! `SlicedPacket::from_ethernet` on the same frames.
//!
//! Short run: `cargo bench --bench proto -- --measurement-time 2 --warm-up-time 1`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use etherparse::{PacketBuilder, SlicedPacket, TcpOptionElement};
use fluxcapacitor::proto::{edit, Frame};

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
        g.bench_function("fluxcapacitor::proto::Frame::parse", |b| {
            b.iter(|| {
                let l = Frame::parse(black_box(frame)).unwrap();
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
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
