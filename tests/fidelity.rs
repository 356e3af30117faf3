#![cfg(all(feature = "raw", target_os = "linux"))]
//! The fidelity bodies (`tests/fidelity/bodies.rs`) on a real veth pair in generic
//! mode: the same code `tests/sim.rs` runs on the simulated device, so the two must
//! agree on invalid descriptors, FILL starvation, RX full, need_wakeup and the TX
//! budget.

#[path = "fidelity/bodies.rs"]
mod bodies;
mod common;

use std::net::SocketAddrV4;

use common::*;
use fluxcapacitor::{FluxBuilder, RingSizes, XdpMode};

fn veth_link(rx_rings: RingSizes, prefill: bool) -> bodies::Link {
    let pair = VethPair::new(VethOpts::default());
    let rx = FluxBuilder::new(&pair.host)
        .xdp_mode(XdpMode::Generic)
        .frame_size(2048)
        .ring_sizes(rx_rings)
        .prefill(prefill)
        .build()
        .expect("rx socket");
    let peer = pair.peer.clone();
    let tx = in_netns(&pair.ns, move || {
        FluxBuilder::new(peer)
            .load_xdp(false)
            .frame_size(2048)
            .prefill(false)
            .build()
            .expect("tx socket")
    });
    let (pm, hm, src, dst) = (
        pair.peer_mac,
        pair.host_mac,
        pair.peer_addr(9000),
        SocketAddrV4::new(pair.host_ip, 9001),
    );
    bodies::Link {
        tx,
        rx,
        frame: Box::new(move |seq, len| {
            build_udp_frame(pm, hm, src, dst, &seq_payload(seq, len.max(46) - 42))
        }),
        _keep: Box::new(pair),
    }
}

#[test]
fn fidelity_invalid_descriptors_on_veth() {
    if skip_without_root() {
        return;
    }
    bodies::invalid_descriptors(veth_link(RingSizes::default(), true));
}

#[test]
fn fidelity_fill_starvation_on_veth() {
    if skip_without_root() {
        return;
    }
    bodies::fill_starvation(veth_link(RingSizes::default(), false));
}

#[test]
fn fidelity_rx_full_on_veth() {
    if skip_without_root() {
        return;
    }
    bodies::rx_full(veth_link(
        RingSizes {
            fill: 1024,
            completion: 1024,
            rx: 64,
            tx: 1024,
        },
        true,
    ));
}

#[test]
fn fidelity_need_wakeup_on_veth() {
    if skip_without_root() {
        return;
    }
    bodies::need_wakeup(veth_link(RingSizes::default(), true));
}

#[test]
fn fidelity_tx_budget_on_veth() {
    if skip_without_root() {
        return;
    }
    bodies::tx_budget(veth_link(RingSizes::default(), true));
}
