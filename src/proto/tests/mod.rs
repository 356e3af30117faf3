//! Cross-layer tests: unit tests on hand-built frames, property tests
//! against etherparse, robustness (no panic on any input), fuzz seeds.

mod csum_states;
mod frames;
mod props;
mod robust;
mod seeds;
mod util;
