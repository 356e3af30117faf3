//! probe: what an interface offers for XDP and AF_XDP, as the kernel says through
//! the `netdev` netlink family — native XDP, zero-copy, multi-buffer, RX metadata,
//! TX metadata — and what set-up will do with it. The first answer to "why no
//! zero-copy" and "why do I see no packets". Needs no privileges.
//!
//! ```sh
//! cargo run --example probe -- eth0 [eth1 …]     # or: --iface eth0; no name: every interface
//! ```
//!
//! Exits with status 1 when an interface does not exist or cannot be probed.

use fluxcapacitor::features::probe;

const USAGE: &str = "probe [--iface] IF [IF …]   (no IF: every interface in this namespace)";

fn main() {
    let mut names: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("usage: {USAGE}");
                return;
            }
            "--iface" | "-i" => match args.next() {
                Some(n) => names.push(n),
                None => fail(&format!("--iface needs a name\nusage: {USAGE}")),
            },
            s if s.starts_with('-') => fail(&format!("unknown option {s}\nusage: {USAGE}")),
            s => names.push(s.to_string()),
        }
    }
    if names.is_empty() {
        names = all_interfaces();
    }
    let mut failed = false;
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            println!();
        }
        match probe(name) {
            Ok(f) => {
                print!("{f}");
                println!("  what set-up does here:");
                for line in f.explain() {
                    println!("    - {line}");
                }
            }
            Err(e) => {
                eprintln!("probe: {name}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

/// The interfaces of this namespace, by name, sorted.
fn all_interfaces() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn fail(msg: &str) -> ! {
    eprintln!("probe: {msg}");
    std::process::exit(2);
}
