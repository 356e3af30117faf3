#![cfg(feature = "async")]
//! System mode on tokio (`AsyncRx` / `AsyncTx`) on real veth pairs: 10k-frame
//! receive on the multi-threaded runtime with sends from another task, an echo
//! round trip with a real UDP client, cancelled receives under traffic, TX
//! backpressure, and drop order of handles, frames and runtime.

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::*;
use fluxcapacitor::system::tokio::{AsyncRx, AsyncTx};
use fluxcapacitor::system::{Frame, SendFailure};
use fluxcapacitor::{FluxBuilder, RingSizes, SteeringFilter};

const N: u32 = 10_000;
const PORT: u16 = 7300;

/// Swap MACs, IPs, ports of an IPv4/UDP frame (no IP options); checksums stay valid.
fn swap_udp(f: &mut [u8]) {
    let (dst, src) = f[..12].split_at_mut(6);
    dst.swap_with_slice(src);
    let (a, b) = f[26..34].split_at_mut(4);
    a.swap_with_slice(b);
    let (a, b) = f[34..38].split_at_mut(2);
    a.swap_with_slice(b);
}

/// Handles on the host end of `pair`, taking every packet and answering ARP for the
/// host end's address (the peer's kernel resolves it before sending).
fn split(host: &str, ip: std::net::Ipv4Addr) -> (AsyncRx, AsyncTx) {
    FluxBuilder::new(host)
        .frame_size(2048)
        .filter(SteeringFilter::default().answering([ip.into()]))
        // The kernel frees a closed socket's queue in the background; tests that
        // rebind at once wait for it (the default 250 ms is short on a busy box).
        .busy_retry(Duration::from_secs(3))
        .build()
        .expect("flux")
        .split_async()
        .expect("async handles")
}

async fn assert_at_rest(rx: &mut AsyncRx, tx: &mut AsyncTx, held: u32) {
    tx.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while tx.get_ref().in_flight() > 0 && Instant::now() < deadline {
        tx.get_mut().drain(Duration::from_millis(10)).unwrap();
        tokio::task::yield_now().await;
    }
    let c = rx.frame_counts();
    assert!(c.is_conserved(), "{c}");
    assert_eq!(
        (c.user, c.tx, c.completion),
        (held, 0, 0),
        "left behind: {c}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_receive_10k_verified_with_sends_from_another_task() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let cap = Capture::open(&pair.ns, &pair.peer);
    let (mut rx, mut tx) = split(&pair.host, pair.host_ip);
    let progress = Arc::new(AtomicU64::new(0));
    let p2 = progress.clone();
    let collector = std::thread::spawn(move || {
        cap.collect_counting(
            |f| parse_udp_frame(f).is_some_and(|(s, d, _)| s.port() == PORT && d.port() == 40100),
            N as usize,
            Duration::from_secs(5),
            &p2,
        )
    });
    let payloads: Vec<Vec<u8>> = (0..N)
        .map(|i| seq_payload(i, 64 + (i as usize % 900)))
        .collect();
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(40100), pair.host_addr(PORT));
    let p3 = progress.clone();
    let sender = std::thread::spawn(move || send_windowed(&ns, src, dst, payloads, 1, p3, 128));

    let (to_tx, mut from_rx) = tokio::sync::mpsc::unbounded_channel::<Frame>();
    let transmitter = tokio::spawn(async move {
        let mut sent = 0u32;
        while let Some(mut f) = from_rx.recv().await {
            swap_udp(&mut f);
            tx.send(f).await.expect("send");
            sent += 1;
            if from_rx.is_empty() {
                tx.flush().await.unwrap();
            }
        }
        tx.flush().await.unwrap();
        (tx, sent)
    });
    let mut seen = HashSet::new();
    let mut batch = Vec::with_capacity(64);
    while seen.len() < N as usize {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv_batch(&mut batch, 64)).await {
            Ok(r) => r.unwrap(),
            Err(_) => break,
        };
        for f in batch.drain(..) {
            let Some((_, d, payload)) = parse_udp_frame(&f) else {
                continue;
            };
            if d.port() != PORT {
                continue;
            }
            let seq = check_seq_payload(payload).expect("payload intact");
            assert!(seen.insert(seq), "duplicate {seq}");
            to_tx.send(f).unwrap();
        }
    }
    drop(to_tx);
    let (mut tx, sent) = transmitter.await.unwrap();
    tokio::task::spawn_blocking(move || sender.join().unwrap())
        .await
        .unwrap();
    let replies = tokio::task::spawn_blocking(move || collector.join().unwrap())
        .await
        .unwrap();
    assert_eq!(seen.len() as u32, N, "received {} of {N}", seen.len());
    assert_eq!(sent, N);
    let back: HashSet<u32> = replies
        .iter()
        .filter_map(|f| parse_udp_frame(f).and_then(|(_, _, p)| check_seq_payload(p)))
        .collect();
    assert_eq!(
        back.len() as u32,
        N,
        "peer got {} intact replies",
        back.len()
    );
    assert_at_rest(&mut rx, &mut tx, 0).await;
}

/// A plain client (default socket options: the veth peer leaves its UDP checksums
/// to an offload) against an echo built with `udp_reply_in_place`, which completes
/// them.
#[cfg(feature = "proto")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_echo_round_trip_with_a_real_udp_client() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let (mut rx, mut tx) = split(&pair.host, pair.host_ip);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut batch = Vec::new();
        let mut echoed = 0u64;
        loop {
            tokio::select! {
                r = rx.recv_batch(&mut batch, 32) => { r.unwrap(); }
                _ = &mut stop_rx => break,
            }
            for mut f in batch.drain(..) {
                if parse_udp_frame(&f).is_some_and(|(_, d, _)| d.port() == PORT) {
                    fluxcapacitor::proto::edit::udp_reply_in_place(&mut f).expect("a UDP frame");
                    tx.send(f).await.expect("send");
                    echoed += 1;
                }
            }
            tx.flush().await.unwrap();
        }
        (rx, tx, echoed)
    });
    const COUNT: u32 = 3000;
    let (host, peer, ns) = (pair.host_addr(PORT), pair.peer_addr(0), pair.ns.clone());
    let checked = tokio::task::spawn_blocking(move || {
        in_netns(&ns, move || {
            let sock = std::net::UdpSocket::bind(peer).unwrap();
            sock.connect(host).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 2048];
            let mut got = HashSet::new();
            let (mut next, window) = (0u32, 16u32);
            while (got.len() as u32) < COUNT {
                while next < COUNT && next - (got.len() as u32) < window {
                    let len = 4 + (next as usize * 53) % 1400;
                    sock.send(&seq_payload(next, len)).unwrap();
                    next += 1;
                }
                let n = match sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) => panic!("no reply after {} of {COUNT}: {e}", got.len()),
                };
                let seq = check_seq_payload(&buf[..n]).expect("reply intact");
                assert_eq!(n, 4 + (seq as usize * 53) % 1400, "reply length");
                assert!(got.insert(seq), "duplicate reply {seq}");
            }
            got.len() as u32
        })
    })
    .await
    .unwrap();
    let _ = stop_tx.send(());
    let (mut rx, mut tx, echoed) = server.await.unwrap();
    assert_eq!(checked, COUNT);
    assert_eq!(echoed, COUNT as u64);
    assert_at_rest(&mut rx, &mut tx, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_receives_lose_no_frame() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let (mut rx, mut tx) = split(&pair.host, pair.host_ip);
    let progress = Arc::new(AtomicU64::new(0));
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| seq_payload(i, 100)).collect();
    let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(40200), pair.host_addr(PORT));
    let p2 = progress.clone();
    let sender = std::thread::spawn(move || send_windowed(&ns, src, dst, payloads, 1, p2, 2));

    let mut seen = HashSet::new();
    let (mut cancelled, mut other) = (0u64, 0u64);
    let mut idle = Instant::now();
    let mut i = 0u64;
    while seen.len() < N as usize && idle.elapsed() < Duration::from_secs(5) {
        i += 1;
        // Cancel receives at every stage: after exactly one poll (readiness just
        // registered), after a yield lets the reactor run, after a timer tick.
        let got = match i % 3 {
            0 => {
                let mut fut = std::pin::pin!(rx.recv());
                std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => Poll::Ready(Some(v)),
                    Poll::Pending => Poll::Ready(None),
                })
                .await
            }
            1 => {
                tokio::select! {
                    biased;
                    f = rx.recv() => Some(f),
                    _ = tokio::task::yield_now() => None,
                }
            }
            _ => tokio::time::timeout(Duration::from_micros(200), rx.recv())
                .await
                .ok(),
        };
        let Some(f) = got else {
            cancelled += 1;
            continue;
        };
        let f = f.unwrap();
        idle = Instant::now();
        match parse_udp_frame(&f) {
            Some((_, d, p)) if d.port() == PORT => {
                let seq = check_seq_payload(p).expect("intact");
                assert!(seen.insert(seq), "duplicate {seq}");
                progress.fetch_add(1, Ordering::Release);
            }
            _ => other += 1,
        }
    }
    tokio::task::spawn_blocking(move || sender.join().unwrap())
        .await
        .unwrap();
    eprintln!(
        "{cancelled} receives cancelled, {} frames received",
        seen.len()
    );
    assert!(
        cancelled >= 1000,
        "only {cancelled} receives were cancelled"
    );
    assert_eq!(seen.len() as u32, N, "received {} of {N}", seen.len());
    // Nothing the kernel delivered was lost: everything the program redirected
    // was received (and the kernel dropped nothing on the way to RX).
    let stats = rx.get_ref().statistics().unwrap();
    let counters = rx.get_ref().program_counters().unwrap().expect("program");
    assert_eq!(stats.rx_dropped + stats.rx_ring_full, 0, "{stats:?}");
    assert_eq!(
        counters.redirected,
        seen.len() as u64 + other,
        "redirected vs received; {cancelled} cancelled"
    );
    assert_eq!(rx.get_ref().received(), counters.redirected);
    assert_at_rest(&mut rx, &mut tx, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_send_waits_on_full_tx_and_cancelling_it_leaks_nothing() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts {
        queues: 2,
        ..Default::default()
    });
    set_channels(&pair.host, 2, 1); // queue 1 cannot transmit for now
    let (mut rx, mut tx) = FluxBuilder::new(&pair.host)
        .queue(1)
        .load_xdp(false)
        .frame_size(2048)
        .frame_count(256)
        .ring_sizes(RingSizes {
            fill: 64,
            completion: 64,
            rx: 64,
            tx: 64,
        })
        .build()
        .expect("flux")
        .split_async()
        .expect("async");
    let frame = build_udp_frame(
        pair.host_mac,
        pair.peer_mac,
        pair.host_addr(PORT),
        pair.peer_addr(41100),
        &seq_payload(9, 100),
    );
    let fresh = |tx: &mut AsyncTx| {
        let mut f = tx.alloc().expect("free frame");
        f.buffer_mut()[..frame.len()].copy_from_slice(&frame);
        f.set_len(frame.len()).unwrap();
        f
    };
    for _ in 0..64 {
        let f = fresh(&mut tx);
        tx.send(f).await.expect("room");
    }
    let f = fresh(&mut tx);
    let err = tx.try_send(f).expect_err("full");
    assert!(matches!(err.reason(), SendFailure::Full));
    let f = err.into_frame();
    // A send that waits is cancelled by a timeout: its frame goes back to the pool.
    let waited = tokio::time::timeout(Duration::from_millis(50), tx.send(f)).await;
    assert!(waited.is_err(), "send must wait while TX is full");
    let c = rx.frame_counts();
    assert!(c.is_conserved(), "{c}");
    assert_eq!((c.tx, c.user), (64, 0), "{c}");
    // Room again: a waiting send completes by itself.
    let f = fresh(&mut tx);
    let waiter = tokio::spawn(async move {
        tx.send(f).await.expect("sent once room appears");
        tx
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    set_channels(&pair.host, 2, 2);
    let mut tx = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("send completed")
        .unwrap();
    assert_at_rest(&mut rx, &mut tx, 0).await;
}

/// The program is gone from `ifname` (allowing the kernel a moment).
fn detached_soon(ifname: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while xdp_attached(ifname) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn handles_frames_and_runtime_drop_in_every_order() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    // 0 = AsyncRx, 1 = AsyncTx, 2 = frames, 3 = runtime.
    let mut orders = Vec::new();
    for a in 0..4 {
        for b in 0..4 {
            for c in 0..4 {
                for d in 0..4 {
                    let o = [a, b, c, d];
                    if (0..4).all(|x| o.contains(&x)) {
                        orders.push(o);
                    }
                }
            }
        }
    }
    assert_eq!(orders.len(), 24);
    for order in orders {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let payloads: Vec<Vec<u8>> = (0..10).map(|i| seq_payload(i, 80)).collect();
        let (ns, src, dst) = (pair.ns.clone(), pair.peer_addr(42100), pair.host_addr(PORT));
        let (host, host_ip) = (pair.host.clone(), pair.host_ip);
        let (rx, tx, frames) = rt.block_on(async move {
            let (mut rx, mut tx) = split(&host, host_ip);
            let sender =
                std::thread::spawn(move || udp_send_from_ns(&ns, src, dst, payloads, None));
            let mut frames = Vec::new();
            while frames.len() < 3 {
                let f = tokio::time::timeout(Duration::from_secs(2), rx.recv())
                    .await
                    .expect("a packet")
                    .unwrap();
                frames.push(f);
            }
            frames.push(tx.alloc().unwrap());
            let mut queued = tx.alloc().unwrap();
            queued.set_len(60).unwrap();
            tx.try_send(queued).unwrap();
            // A pending receive is dropped along with everything else.
            let _ = tokio::time::timeout(Duration::from_millis(1), rx.recv()).await;
            sender.join().unwrap();
            (rx, tx, frames)
        });
        let (mut rx, mut tx, mut frames, mut rt) = (Some(rx), Some(tx), Some(frames), Some(rt));
        for what in order {
            match what {
                0 => drop(rx.take()),
                1 => drop(tx.take()),
                2 => {
                    for f in frames.as_mut().unwrap().iter_mut() {
                        let n = f.len().min(1);
                        f[..n].fill(2);
                    }
                    drop(frames.take())
                }
                _ => drop(rt.take()),
            }
        }
        assert!(
            detached_soon(&pair.host),
            "order {order:?}: program left attached"
        );
    }
}

/// The default idle (`AsyncIdle::Napper`) on a current-thread runtime: a receive
/// that waits through silences longer than the nap window (so the napper waits for
/// readiness on the socket for it) is woken by the next burst each time, and the
/// executor thread keeps running other tasks while it waits.
#[test]
fn idle_receives_wake_on_the_next_burst_without_blocking_the_runtime() {
    if skip_without_root() {
        return;
    }
    let pair = VethPair::new(VethOpts::default());
    let peer = pair.peer_addr(40300);
    let dst = pair.host_addr(PORT);
    let sock = in_netns(&pair.ns, move || std::net::UdpSocket::bind(peer).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut rx, _tx) = split(&pair.host, pair.host_ip);
        let ticks = Arc::new(AtomicU64::new(0));
        let t2 = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                t2.fetch_add(1, Ordering::Relaxed);
            }
        });
        const BURSTS: u32 = 5;
        const PER: u32 = 20;
        let sender = std::thread::spawn(move || {
            for b in 0..BURSTS {
                // Silence well past the 1 ms window: the receive is idle-waiting.
                std::thread::sleep(Duration::from_millis(60));
                for i in 0..PER {
                    sock.send_to(&seq_payload(b * PER + i, 100), dst).unwrap();
                }
            }
        });
        let mut seen = HashSet::new();
        while seen.len() < (BURSTS * PER) as usize {
            let f = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("a waiting receive is woken by the next burst")
                .unwrap();
            if let Some((_, d, p)) = parse_udp_frame(&f) {
                if d.port() == PORT {
                    seen.insert(check_seq_payload(p).expect("payload intact"));
                }
            }
        }
        sender.join().unwrap();
        // Five silences of 60 ms passed with the receive waiting: a blocked executor
        // thread would have run the 1 ms ticker a handful of times at most.
        let t = ticks.load(Ordering::Relaxed);
        assert!(
            t >= 100,
            "the ticker ran {t} times beside the waiting receive"
        );
        ticker.abort();
        let c = rx.frame_counts();
        assert!(c.is_conserved() && c.user == 0, "{c}");
    });
}
