//! Queue counts of an interface, set with `ethtool -L` as a user would.

use std::process::Command;

/// Sets the active rx/tx queue counts of `ifname` (`ethtool -L`); panics with
/// ethtool's message when that fails.
pub fn set_channels(ifname: &str, rx: u32, tx: u32) {
    let out = Command::new("ethtool")
        .args(["-L", ifname, "rx", &rx.to_string(), "tx", &tx.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run ethtool: {e}"));
    assert!(
        out.status.success(),
        "ethtool -L {ifname} rx {rx} tx {tx}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
