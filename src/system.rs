//! System mode: `Rx` / `Tx` handles with owned frames (blocking), and with the
//! `async` feature the same on tokio.
