//! Writes the fuzzing seed corpus (run on demand):
//!
//! ```text
//! PROTO_SEED_DIR=fuzz/corpus cargo test write_fuzz_seeds -- --ignored
//! ```

use etherparse::{ArpHardwareId, ArpOperation, EtherType, PacketBuilder};

use super::util::{Kind, Spec};

/// A handful of valid frames covering every layer.
pub fn seed_frames() -> Vec<(&'static str, Vec<u8>)> {
    let arp = etherparse::ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation::REQUEST,
        &[2, 0, 0, 0, 0, 1],
        &[10, 0, 0, 1],
        &[0; 6],
        &[10, 0, 0, 2],
    )
    .unwrap();
    let mut arp_frame = vec![];
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [0xff; 6])
        .arp(arp)
        .write(&mut arp_frame)
        .unwrap();
    vec![
        ("udp4", Spec::default().build()),
        (
            "udp6_exts_vlan",
            Spec {
                v6: true,
                ipv6_exts: true,
                vlans: vec![42],
                ..Spec::default()
            }
            .build(),
        ),
        (
            "tcp4_options_qinq",
            Spec {
                vlans: vec![1, 2],
                ipv4_options: vec![1, 1, 1, 0],
                kind: Kind::Tcp {
                    options: vec![2, 4, 5, 0xb4, 1, 3, 3, 7],
                    flags: 3,
                },
                ..Spec::default()
            }
            .build(),
        ),
        (
            "icmp4_echo",
            Spec {
                kind: Kind::Icmp,
                ..Spec::default()
            }
            .build(),
        ),
        (
            "icmp6_echo",
            Spec {
                v6: true,
                kind: Kind::Icmp,
                ..Spec::default()
            }
            .build(),
        ),
        ("arp_request", arp_frame),
    ]
}

#[test]
fn seed_frames_parse() {
    for (name, f) in seed_frames() {
        assert!(crate::proto::Layers::parse(&f).is_ok(), "{name}");
    }
}

#[test]
#[ignore = "writes files; run with PROTO_SEED_DIR set"]
fn write_fuzz_seeds() {
    let Ok(dir) = std::env::var("PROTO_SEED_DIR") else {
        return;
    };
    for target in ["parse_frame", "edit_frame"] {
        let d = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&d).unwrap();
        for (name, f) in seed_frames() {
            std::fs::write(d.join(format!("{name}.bin")), &f).unwrap();
        }
    }
}
