//! The ring driver: the four-ring choreography every mode shares — how many frames
//! to lend the kernel, refilling FILL, reaping COMPLETION, kicking TX until the kernel
//! stops taking descriptors, draining at the end. The engine and system modes are
//! thin layers over these functions (verdicts and batches there, owned frames here).

/// How many of a UMEM's `frames` belong on FILL: all FILL can hold, except that with a
/// TX ring half the frames (at most a TX ring's worth) stay free for sending.
pub(crate) fn fill_share(frames: u32, fill_size: u32, tx_size: u32) -> u32 {
    let for_tx = if tx_size > 0 {
        (frames / 2).min(tx_size)
    } else {
        0
    };
    (frames - for_tx).min(fill_size)
}
