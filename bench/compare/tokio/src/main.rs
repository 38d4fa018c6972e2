//! Tokio side of Pulse's side-by-side comparison harness.
//!
//! Usage: tokio_compare <workload> [--workers N] [--duration-ms MS]
//!
//! Runs one workload (after one untimed warm-up for the throughput workloads),
//! verifies its result and prints exactly one line of JSON on stdout.
//! The workloads, their parameters and the output protocol are specified in
//! ../WORKLOADS.md; keep this file in step with it.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// Parameters (WORKLOADS.md, "Parameters")

const SPAWN_MANY: usize = 10_000;
const YIELD_TASKS: usize = 200;
const YIELDS_PER_TASK: usize = 1_000;
const PING_PONG_PAIRS: usize = 1_000;
const CHAIN_LEN: u32 = 1_000;
const SKYNET_LEAVES: u64 = 1_000_000;
const SKYNET_SUM: u64 = 499_999_500_000;
const FIB_N: u32 = 27;
const FIB_RESULT: u64 = 196_418;
const FIB_TASKS: u64 = 635_621; // 2 * fib(28) - 1 calls, one task each

const STARVE_HOGS: usize = 4;
const STARVE_PROBE_PERIOD: Duration = Duration::from_millis(1);
const STARVE_B_YIELD_EVERY: u64 = 5_000; // work units (~50 ms of CPU)
const STARVE_C_PERMITS: usize = 1_024;

// ---------------------------------------------------------------------------
// The work unit (WORKLOADS.md, "The work unit"): WU_ITERS rounds of the
// splitmix64 step, about 10 µs on the reference machine.

const WU_ITERS: u32 = 2_500;
const WU_SELFTEST_IN: u64 = 0;
const WU_SELFTEST_OUT: u64 = 0x3366_ae42_0491_b161;

#[inline(never)]
fn work_unit(mut x: u64) -> u64 {
    for _ in 0..WU_ITERS {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

// ---------------------------------------------------------------------------
// Output

/// A finished run, ready to be printed as one JSON line.
struct Report {
    elapsed: Duration,
    units: u64,
    check: String,
    /// Extra `"key":value` pairs (already formatted), for the starve workloads.
    extra: Vec<(&'static str, String)>,
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn print_ok(workload: &str, workers: usize, r: &Report) {
    let ns = r.elapsed.as_nanos() as u64;
    let per = if r.units > 0 {
        ns as f64 / r.units as f64
    } else {
        0.0
    };
    let mut line = format!(
        "{{\"runtime\":\"tokio\",\"workload\":{},\"workers\":{},\"ok\":true,\"elapsed_ns\":{},\"units\":{},\"ns_per_unit\":{:.3},\"check\":{}",
        json_str(workload),
        workers,
        ns,
        r.units,
        per,
        json_str(&r.check)
    );
    for (k, v) in &r.extra {
        line.push_str(&format!(",\"{}\":{}", k, v));
    }
    line.push('}');
    println!("{}", line);
}

fn print_err(workload: &str, workers: usize, msg: &str) {
    println!(
        "{{\"runtime\":\"tokio\",\"workload\":{},\"workers\":{},\"ok\":false,\"error\":{}}}",
        json_str(workload),
        workers,
        json_str(msg)
    );
}

type Res<T> = Result<T, String>;

fn expect_eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Res<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{}: got {:?}, want {:?}", what, got, want))
    }
}

/// Runs `body` as a root task inside the runtime and waits for it from the
/// main thread; returns the result and the wall time from spawn to join.
fn run_in_root_task<F, T>(rt: &Runtime, body: F) -> Res<(T, Duration)>
where
    F: Future<Output = Res<T>> + Send + 'static,
    T: Send + 'static,
{
    let start = Instant::now();
    let root = rt.spawn(body);
    let joined = rt.block_on(root);
    let elapsed = start.elapsed();
    match joined {
        Ok(Ok(v)) => Ok((v, elapsed)),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(format!("root task failed: {}", e)),
    }
}

// ---------------------------------------------------------------------------
// 1. spawn_many_remote_idle: spawn from outside the runtime, await all.

fn spawn_many_remote_idle(rt: &Runtime) -> Res<Report> {
    let start = Instant::now();
    let mut handles = Vec::with_capacity(SPAWN_MANY);
    for _ in 0..SPAWN_MANY {
        handles.push(rt.spawn(async {}));
    }
    let joined = rt.block_on(async move {
        let mut n = 0u64;
        for h in handles {
            h.await.map_err(|e| e.to_string())?;
            n += 1;
        }
        Ok::<u64, String>(n)
    });
    let elapsed = start.elapsed();
    let n = joined?;
    expect_eq("joined tasks", n, SPAWN_MANY as u64)?;
    Ok(Report {
        elapsed,
        units: SPAWN_MANY as u64,
        check: n.to_string(),
        extra: vec![],
    })
}

// ---------------------------------------------------------------------------
// 2. spawn_many_local: a task spawns 10,000 tasks; the last to finish signals.

fn spawn_many_local(rt: &Runtime) -> Res<Report> {
    let (rem, elapsed) = run_in_root_task(rt, async {
        let rem = Arc::new(AtomicUsize::new(SPAWN_MANY));
        let done = Arc::new(Notify::new());
        for _ in 0..SPAWN_MANY {
            let rem = rem.clone();
            let done = done.clone();
            tokio::spawn(async move {
                if rem.fetch_sub(1, Ordering::AcqRel) == 1 {
                    done.notify_one();
                }
            });
        }
        done.notified().await;
        Ok(rem.load(Ordering::Acquire))
    })?;
    expect_eq("remaining counter", rem, 0)?;
    Ok(Report {
        elapsed,
        units: SPAWN_MANY as u64,
        check: SPAWN_MANY.to_string(),
        extra: vec![],
    })
}

// ---------------------------------------------------------------------------
// 3. yield_many: 200 tasks x 1,000 yields.

fn yield_many(rt: &Runtime) -> Res<Report> {
    let (total, elapsed) = run_in_root_task(rt, async {
        let mut handles = Vec::with_capacity(YIELD_TASKS);
        for _ in 0..YIELD_TASKS {
            handles.push(tokio::spawn(async {
                let mut n = 0u64;
                for _ in 0..YIELDS_PER_TASK {
                    tokio::task::yield_now().await;
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0u64;
        for h in handles {
            total += h.await.map_err(|e| e.to_string())?;
        }
        Ok(total)
    })?;
    let units = (YIELD_TASKS * YIELDS_PER_TASK) as u64;
    expect_eq("total yields", total, units)?;
    Ok(Report {
        elapsed,
        units,
        check: total.to_string(),
        extra: vec![],
    })
}

// ---------------------------------------------------------------------------
// 4. ping_pong: 1,000 pairs, one round trip each over two oneshot channels.

fn ping_pong(rt: &Runtime) -> Res<Report> {
    let ((rem, sum, bad), elapsed) = run_in_root_task(rt, async {
        let rem = Arc::new(AtomicUsize::new(PING_PONG_PAIRS));
        let sum = Arc::new(AtomicUsize::new(0));
        let bad = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        for i in 0..PING_PONG_PAIRS {
            let (rem, sum, bad, done) = (rem.clone(), sum.clone(), bad.clone(), done.clone());
            tokio::spawn(async move {
                let (ping_tx, ping_rx) = oneshot::channel::<usize>();
                let (pong_tx, pong_rx) = oneshot::channel::<usize>();
                tokio::spawn(async move {
                    let v = ping_rx.await.expect("ping sender dropped");
                    pong_tx.send(v + 1).expect("pong receiver dropped");
                });
                ping_tx.send(i).expect("ping receiver dropped");
                match pong_rx.await {
                    Ok(v) if v == i + 1 => {
                        sum.fetch_add(v, Ordering::Relaxed);
                    }
                    _ => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if rem.fetch_sub(1, Ordering::AcqRel) == 1 {
                    done.notify_one();
                }
            });
        }
        done.notified().await;
        Ok((
            rem.load(Ordering::Acquire),
            sum.load(Ordering::Relaxed),
            bad.load(Ordering::Relaxed),
        ))
    })?;
    expect_eq("remaining pairs", rem, 0)?;
    expect_eq("bad replies", bad, 0)?;
    let want = PING_PONG_PAIRS * (PING_PONG_PAIRS + 1) / 2;
    expect_eq("sum of replies", sum, want)?;
    Ok(Report {
        elapsed,
        units: PING_PONG_PAIRS as u64,
        check: sum.to_string(),
        extra: vec![],
    })
}

// ---------------------------------------------------------------------------
// 5. chained_spawn: task i spawns task i+1; task 1000 signals.

fn chain_link(i: u32, done: oneshot::Sender<u32>) {
    tokio::spawn(async move {
        if i == CHAIN_LEN {
            let _ = done.send(i);
        } else {
            chain_link(i + 1, done);
        }
    });
}

fn chained_spawn(rt: &Runtime) -> Res<Report> {
    let (last, elapsed) = run_in_root_task(rt, async {
        let (tx, rx) = oneshot::channel();
        chain_link(1, tx);
        rx.await.map_err(|e| e.to_string())
    })?;
    expect_eq("chain length", last, CHAIN_LEN)?;
    Ok(Report {
        elapsed,
        units: CHAIN_LEN as u64,
        check: last.to_string(),
        extra: vec![],
    })
}

// ---------------------------------------------------------------------------
// 6. skynet: 10-way fan-out, 1,000,000 leaves, every node a spawned task.

fn skynet(num: u64, size: u64) -> JoinHandle<u64> {
    tokio::spawn(async move {
        if size == 1 {
            return num;
        }
        let step = size / 10;
        let mut children = Vec::with_capacity(10);
        for i in 0..10 {
            children.push(skynet(num + i * step, step));
        }
        let mut sum = 0;
        for c in children {
            sum += c.await.expect("skynet child panicked");
        }
        sum
    })
}

fn skynet_workload(rt: &Runtime) -> Res<Report> {
    let (sum, elapsed) = run_in_root_task(rt, async {
        skynet(0, SKYNET_LEAVES).await.map_err(|e| e.to_string())
    })?;
    expect_eq("skynet sum", sum, SKYNET_SUM)?;
    Ok(Report {
        elapsed,
        units: SKYNET_LEAVES,
        check: sum.to_string(),
        extra: vec![],
    })
}

// ---------------------------------------------------------------------------
// 7. fib: fib(27), one spawned task per call.

fn fib(n: u32) -> JoinHandle<u64> {
    tokio::spawn(async move {
        if n < 2 {
            return n as u64;
        }
        let a = fib(n - 1);
        let b = fib(n - 2);
        a.await.expect("fib child panicked") + b.await.expect("fib child panicked")
    })
}

fn fib_workload(rt: &Runtime) -> Res<Report> {
    let (v, elapsed) = run_in_root_task(rt, async { fib(FIB_N).await.map_err(|e| e.to_string()) })?;
    expect_eq("fib(27)", v, FIB_RESULT)?;
    Ok(Report {
        elapsed,
        units: FIB_TASKS,
        check: v.to_string(),
        extra: vec![],
    })
}

// ---------------------------------------------------------------------------
// 8. starve_{none,A,B,C}: a 1 ms sleep loop probe next to 4 CPU hogs.

#[derive(Clone, Copy, PartialEq)]
enum Hog {
    None,
    A, // never awaits
    B, // yield_now() every STARVE_B_YIELD_EVERY work units
    C, // acquire + drop a Semaphore permit after every work unit
}

/// Nearest-rank q-per-mille percentile of sorted samples:
/// rank = ceil(q*n/1000) (integer arithmetic), clamped to [1, n].
fn percentile(sorted: &[u64], q: usize) -> u64 {
    let n = sorted.len();
    let rank = ((q * n + 999) / 1000).clamp(1, n);
    sorted[rank - 1]
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn hog_task(variant: Hog, seed: u64, deadline: Instant, sem: Arc<Semaphore>) -> BoxFut<(u64, u64)> {
    match variant {
        Hog::A => Box::pin(async move {
            let (mut x, mut units) = (seed, 0u64);
            while Instant::now() < deadline {
                x = work_unit(x);
                units += 1;
            }
            (units, x)
        }),
        Hog::B => Box::pin(async move {
            let (mut x, mut units) = (seed, 0u64);
            while Instant::now() < deadline {
                x = work_unit(x);
                units += 1;
                if units % STARVE_B_YIELD_EVERY == 0 {
                    tokio::task::yield_now().await;
                }
            }
            (units, x)
        }),
        Hog::C => Box::pin(async move {
            let (mut x, mut units) = (seed, 0u64);
            while Instant::now() < deadline {
                x = work_unit(x);
                units += 1;
                let permit = sem.acquire().await.expect("semaphore closed");
                drop(permit);
            }
            (units, x)
        }),
        Hog::None => unreachable!(),
    }
}

fn starve(rt: &Runtime, variant: Hog, duration: Duration) -> Res<Report> {
    expect_eq(
        "work unit self-test",
        work_unit(WU_SELFTEST_IN),
        WU_SELFTEST_OUT,
    )?;
    let ((mut lateness, hogs), elapsed) = run_in_root_task(rt, async move {
        let start = Instant::now();
        let deadline = start + duration;
        // Sample 0 is the probe's start delay (spawn -> first poll); then one
        // sample per 1 ms sleep, at least one sleep even if the probe first
        // runs after the deadline.
        let spawned = Instant::now();
        let probe = tokio::spawn(async move {
            let mut lateness = Vec::with_capacity(duration.as_millis() as usize + 16);
            lateness.push(Instant::now().saturating_duration_since(spawned).as_nanos() as u64);
            loop {
                let intended = Instant::now() + STARVE_PROBE_PERIOD;
                tokio::time::sleep(STARVE_PROBE_PERIOD).await;
                let woke = Instant::now();
                lateness.push(woke.saturating_duration_since(intended).as_nanos() as u64);
                if woke >= deadline {
                    break;
                }
            }
            lateness
        });
        let mut hogs = Vec::new();
        if variant != Hog::None {
            let sem = Arc::new(Semaphore::new(STARVE_C_PERMITS));
            for h in 0..STARVE_HOGS {
                hogs.push(tokio::spawn(hog_task(
                    variant,
                    h as u64 + 1,
                    deadline,
                    sem.clone(),
                )));
            }
        }
        let lateness = probe.await.map_err(|e| e.to_string())?;
        let mut results = Vec::with_capacity(hogs.len());
        for h in hogs {
            results.push(h.await.map_err(|e| e.to_string())?);
        }
        Ok((lateness, results))
    })?;
    if lateness.len() < 2 {
        return Err("probe recorded no wake-ups".into());
    }
    let wakeups = lateness.len() as u64 - 1; // sample 0 is the start delay
    let hog_units: u64 = hogs.iter().map(|&(u, _)| u).sum();
    let checksum = hogs.iter().fold(0u64, |acc, &(_, x)| acc ^ x);
    lateness.sort_unstable();
    let extra = vec![
        ("duration_ms", duration.as_millis().to_string()),
        ("hogs", hogs.len().to_string()),
        ("lateness_us_p50", us(percentile(&lateness, 500))),
        ("lateness_us_p99", us(percentile(&lateness, 990))),
        ("lateness_us_p999", us(percentile(&lateness, 999))),
        ("lateness_us_max", us(*lateness.last().unwrap())),
        ("wakeups", wakeups.to_string()),
        ("hog_units", hog_units.to_string()),
    ];
    Ok(Report {
        elapsed,
        units: wakeups,
        check: format!("{:016x}", checksum),
        extra,
    })
}


// ---------------------------------------------------------------------------
// 10. sync_*: Tokio's own benches/sync_mpsc.rs, sync_mpsc_oneshot.rs,
// sync_notify.rs and sync_semaphore.rs with their parameters, and
// TooManyCooks' channel benchmark (WORKLOADS.md, section 10). One run repeats
// the Tokio bench's iteration `*_ITERS` times inside the root task (Tokio's
// bench wraps each in `rt.block_on`); every iteration's result is checked.

const MPSC_SENDERS: u64 = 5;
const MPSC_PER_SENDER: u64 = 1_000;
const MPSC_MSGS: u64 = MPSC_SENDERS * MPSC_PER_SENDER; // 5,000 per iteration
const MPSC_CONTENTION_SUM: u64 = MPSC_SENDERS * (MPSC_PER_SENDER * (MPSC_PER_SENDER - 1) / 2);
const MPSC_UNCONTENDED_SUM: u64 = MPSC_MSGS * (MPSC_MSGS - 1) / 2;
const MPSC_BIG_CAPACITY: usize = 1_000_000;
const MPSC_SMALL_CAPACITY: usize = 100;
const MPSC_ITERS: u64 = 200;
const REQUEST_REPLY_PER_ITER: u64 = 1_000;
const REQUEST_REPLY_ITERS: u64 = 100;
const REQUEST_REPLY_CAPACITY: usize = 10;
const NOTIFY_WAITER_TASKS: usize = 100;
const NOTIFY_PER_ITER: u64 = 500;
const NOTIFY_ITERS: u64 = 200;
const SEM_ACQUIRES_PER_ITER: u64 = 6;
const SEM_UNCONTENDED_ITERS: u64 = 100_000;
const SEM_CONCURRENT_ITERS: u64 = 20_000;
const SEM_ENOUGH_PERMITS: usize = 10;
const SEM_SCARCE_PERMITS: usize = 5;
const TMC_ITEMS: u64 = 1_000_000;
const TMC_CAPACITY: usize = 1_024;
const TMC_SUM: u64 = TMC_ITEMS * (TMC_ITEMS - 1) / 2;

#[derive(Clone, Copy, PartialEq)]
enum Mpsc {
    BoundedBig,   // mpsc::channel(1_000_000)
    BoundedSmall, // mpsc::channel(100)
    Unbounded,    // mpsc::unbounded_channel()
}

/// Either kind of Tokio mpsc sender, so one body serves all three variants.
#[derive(Clone)]
enum AnySender {
    Bounded(mpsc::Sender<u64>),
    Unbounded(mpsc::UnboundedSender<u64>),
}

impl AnySender {
    async fn send(&self, v: u64) -> Res<()> {
        match self {
            AnySender::Bounded(tx) => tx.send(v).await.map_err(|_| "receiver gone".to_string()),
            AnySender::Unbounded(tx) => tx.send(v).map_err(|_| "receiver gone".to_string()),
        }
    }
}

enum AnyReceiver {
    Bounded(mpsc::Receiver<u64>),
    Unbounded(mpsc::UnboundedReceiver<u64>),
}

impl AnyReceiver {
    async fn recv(&mut self) -> Option<u64> {
        match self {
            AnyReceiver::Bounded(rx) => rx.recv().await,
            AnyReceiver::Unbounded(rx) => rx.recv().await,
        }
    }
    /// Receives exactly `n` values (none may be missing); returns their sum.
    async fn recv_sum(&mut self, n: u64) -> Res<u64> {
        let mut sum = 0u64;
        for i in 0..n {
            match self.recv().await {
                Some(v) => sum += v,
                None => return Err(format!("channel ended after {} values", i)),
            }
        }
        Ok(sum)
    }
}

fn make_mpsc(kind: Mpsc) -> (AnySender, AnyReceiver) {
    match kind {
        Mpsc::BoundedBig | Mpsc::BoundedSmall => {
            let cap = if kind == Mpsc::BoundedBig {
                MPSC_BIG_CAPACITY
            } else {
                MPSC_SMALL_CAPACITY
            };
            let (tx, rx) = mpsc::channel(cap);
            (AnySender::Bounded(tx), AnyReceiver::Bounded(rx))
        }
        Mpsc::Unbounded => {
            let (tx, rx) = mpsc::unbounded_channel();
            (AnySender::Unbounded(tx), AnyReceiver::Unbounded(rx))
        }
    }
}

// contention/{bounded,bounded_full,unbounded}: 5 spawned senders x 1,000
// values, received by the root task.
async fn mpsc_contention_body(kind: Mpsc) -> Res<u64> {
    for _ in 0..MPSC_ITERS {
        let (tx, mut rx) = make_mpsc(kind);
        for _ in 0..MPSC_SENDERS {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..MPSC_PER_SENDER {
                    tx.send(i).await.expect("receiver gone");
                }
            });
        }
        let sum = rx.recv_sum(MPSC_MSGS).await?;
        expect_eq("sum of one iteration's values", sum, MPSC_CONTENTION_SUM)?;
    }
    Ok(MPSC_CONTENTION_SUM)
}

// uncontented/{bounded,unbounded}: the root task sends 5,000 values, then
// receives them.
async fn mpsc_uncontended_body(kind: Mpsc) -> Res<u64> {
    for _ in 0..MPSC_ITERS {
        let (tx, mut rx) = make_mpsc(kind);
        for i in 0..MPSC_MSGS {
            tx.send(i).await?;
        }
        let sum = rx.recv_sum(MPSC_MSGS).await?;
        expect_eq("sum of one iteration's values", sum, MPSC_UNCONTENDED_SUM)?;
    }
    Ok(MPSC_UNCONTENDED_SUM)
}

fn sync_mpsc(rt: &Runtime, kind: Mpsc, contended: bool) -> Res<Report> {
    let (check, elapsed) = if contended {
        run_in_root_task(rt, mpsc_contention_body(kind))?
    } else {
        run_in_root_task(rt, mpsc_uncontended_body(kind))?
    };
    Ok(Report {
        elapsed,
        units: MPSC_ITERS * MPSC_MSGS,
        check: check.to_string(),
        extra: vec![],
    })
}

// request_reply (sync_mpsc_oneshot.rs): a server task answers requests that
// carry a oneshot sender; the root task does the round trips one by one.
// The server replies with its running request count, so every reply is
// checked.
fn sync_oneshot_request_reply(rt: &Runtime) -> Res<Report> {
    let (served, elapsed) = run_in_root_task(rt, async {
        let (tx, mut rx) = mpsc::channel::<oneshot::Sender<u64>>(REQUEST_REPLY_CAPACITY);
        let server = tokio::spawn(async move {
            let mut served = 0u64;
            while let Some(reply) = rx.recv().await {
                served += 1;
                let _ = reply.send(served);
            }
            served
        });
        let mut expected = 0u64;
        for _ in 0..REQUEST_REPLY_ITERS {
            for _ in 0..REQUEST_REPLY_PER_ITER {
                let (o_tx, o_rx) = oneshot::channel();
                tx.send(o_tx).await.map_err(|_| "server gone".to_string())?;
                expected += 1;
                let v = o_rx.await.map_err(|e| e.to_string())?;
                expect_eq("reply", v, expected)?;
            }
        }
        drop(tx); // the server's recv ends
        let served = server.await.map_err(|e| e.to_string())?;
        expect_eq("requests served", served, expected)?;
        Ok(served)
    })?;
    Ok(Report {
        elapsed,
        units: REQUEST_REPLY_ITERS * REQUEST_REPLY_PER_ITER,
        check: served.to_string(),
        extra: vec![],
    })
}

// sync_notify.rs: 100 waiter tasks loop on notified() and count; the main
// thread (outside the runtime, as in Tokio's bench) notifies in a busy loop
// until 500 notifications were counted since the iteration began.
struct NotifyShared {
    notify: Notify,
    counter: AtomicUsize,
    stop: AtomicBool,
    exited: AtomicUsize,
}

fn sync_notify(rt: &Runtime, all: bool) -> Res<Report> {
    let sh = Arc::new(NotifyShared {
        notify: Notify::new(),
        counter: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        exited: AtomicUsize::new(0),
    });
    let mut handles = Vec::with_capacity(NOTIFY_WAITER_TASKS);
    for _ in 0..NOTIFY_WAITER_TASKS {
        let sh = sh.clone();
        handles.push(rt.spawn(async move {
            let mut mine = 0u64;
            loop {
                sh.notify.notified().await;
                if sh.stop.load(Ordering::Acquire) {
                    break;
                }
                sh.counter.fetch_add(1, Ordering::Relaxed);
                mine += 1;
            }
            sh.exited.fetch_add(1, Ordering::Release);
            mine
        }));
    }
    let mut calls = 0u64;
    let start = Instant::now();
    for _ in 0..NOTIFY_ITERS {
        sh.counter.store(0, Ordering::Relaxed);
        loop {
            if all {
                sh.notify.notify_waiters();
            } else {
                sh.notify.notify_one();
            }
            calls += 1;
            if sh.counter.load(Ordering::Relaxed) as u64 >= NOTIFY_PER_ITER {
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    sh.stop.store(true, Ordering::Release);
    while sh.exited.load(Ordering::Acquire) < NOTIFY_WAITER_TASKS {
        sh.notify.notify_waiters();
    }
    let woken = rt.block_on(async move {
        let mut sum = 0u64;
        for h in handles {
            sum += h.await.map_err(|e| e.to_string())?;
        }
        Ok::<u64, String>(sum)
    })?;
    // Every iteration counted >= 500 since its start; notify_one wakes at
    // most one task per call (or stores one permit), notify_waiters every
    // waiter.
    let want = NOTIFY_ITERS * NOTIFY_PER_ITER;
    if woken < want {
        return Err(format!("wake-ups counted {} < {}", woken, want));
    }
    let bound = if all {
        calls * NOTIFY_WAITER_TASKS as u64
    } else {
        calls
    };
    if woken > bound {
        return Err(format!("wake-ups counted {} > possible {}", woken, bound));
    }
    Ok(Report {
        elapsed,
        units: want,
        check: woken.to_string(),
        extra: vec![],
    })
}

// sync_semaphore.rs uncontended: 6 sequential acquire + drop in one task,
// 10 permits.
fn sync_semaphore_uncontended(rt: &Runtime) -> Res<Report> {
    let (n, elapsed) = run_in_root_task(rt, async {
        let sem = Semaphore::new(SEM_ENOUGH_PERMITS);
        let mut n = 0u64;
        for _ in 0..SEM_UNCONTENDED_ITERS {
            for _ in 0..SEM_ACQUIRES_PER_ITER {
                let permit = sem.acquire().await.map_err(|e| e.to_string())?;
                drop(permit);
                n += 1;
            }
        }
        expect_eq("permits after the run", sem.available_permits(), SEM_ENOUGH_PERMITS)?;
        Ok(n)
    })?;
    expect_eq("acquires", n, SEM_UNCONTENDED_ITERS * SEM_ACQUIRES_PER_ITER)?;
    Ok(Report {
        elapsed,
        units: n,
        check: n.to_string(),
        extra: vec![],
    })
}

// uncontended_concurrent / contended_concurrent: 6 spawned tasks joined with
// try_join!, each acquiring and releasing once; 10 permits (enough) or 5 (one
// task waits). Each task counts the holders while it holds its permit, so a
// semaphore that let more than `permits` in would be caught.
struct SemShared {
    sem: Semaphore,
    permits: usize,
    holders: AtomicUsize,
    too_many: AtomicUsize,
}

async fn sem_acquire_once(sh: Arc<SemShared>) {
    let permit = sh.sem.acquire().await.expect("semaphore closed");
    if sh.holders.fetch_add(1, Ordering::Relaxed) + 1 > sh.permits {
        sh.too_many.fetch_add(1, Ordering::Relaxed);
    }
    sh.holders.fetch_sub(1, Ordering::Relaxed);
    drop(permit);
}

fn sync_semaphore_concurrent(rt: &Runtime, permits: usize) -> Res<Report> {
    let (n, elapsed) = run_in_root_task(rt, async move {
        let sh = Arc::new(SemShared {
            sem: Semaphore::new(permits),
            permits,
            holders: AtomicUsize::new(0),
            too_many: AtomicUsize::new(0),
        });
        let mut n = 0u64;
        for _ in 0..SEM_CONCURRENT_ITERS {
            tokio::try_join!(
                tokio::spawn(sem_acquire_once(sh.clone())),
                tokio::spawn(sem_acquire_once(sh.clone())),
                tokio::spawn(sem_acquire_once(sh.clone())),
                tokio::spawn(sem_acquire_once(sh.clone())),
                tokio::spawn(sem_acquire_once(sh.clone())),
                tokio::spawn(sem_acquire_once(sh.clone())),
            )
            .map_err(|e| e.to_string())?;
            n += SEM_ACQUIRES_PER_ITER;
        }
        expect_eq("holders above the permit count", sh.too_many.load(Ordering::Relaxed), 0)?;
        expect_eq("permits after the run", sh.sem.available_permits(), permits)?;
        Ok(n)
    })?;
    expect_eq("acquires", n, SEM_CONCURRENT_ITERS * SEM_ACQUIRES_PER_ITER)?;
    Ok(Report {
        elapsed,
        units: n,
        check: n.to_string(),
        extra: vec![],
    })
}

// TooManyCooks' channel benchmark at a size for 2 cores: 1,000,000 values
// through one bounded (1,024) channel; producers = consumers = workers.
// Tokio's mpsc has a single receiver, so the consumers share it behind a
// tokio::sync::Mutex (the tokio-only way to have several consumers).
fn sync_channel_tmc(rt: &Runtime, workers: usize) -> Res<Report> {
    let ((count, sum), elapsed) = run_in_root_task(rt, async move {
        let (tx, rx) = mpsc::channel::<u64>(TMC_CAPACITY);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let mut consumers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let rx = rx.clone();
            consumers.push(tokio::spawn(async move {
                let (mut count, mut sum) = (0u64, 0u64);
                loop {
                    let v = rx.lock().await.recv().await;
                    match v {
                        Some(v) => {
                            count += 1;
                            sum += v;
                        }
                        None => break,
                    }
                }
                (count, sum)
            }));
        }
        drop(rx);
        let n = workers as u64;
        let mut producers = Vec::with_capacity(workers);
        for p in 0..n {
            let tx = tx.clone();
            let (from, to) = (TMC_ITEMS * p / n, TMC_ITEMS * (p + 1) / n);
            producers.push(tokio::spawn(async move {
                for i in from..to {
                    tx.send(i).await.expect("receivers gone");
                }
            }));
        }
        drop(tx);
        for h in producers {
            h.await.map_err(|e| e.to_string())?;
        }
        let (mut count, mut sum) = (0u64, 0u64);
        for h in consumers {
            let (c, s) = h.await.map_err(|e| e.to_string())?;
            count += c;
            sum += s;
        }
        Ok((count, sum))
    })?;
    expect_eq("values received", count, TMC_ITEMS)?;
    expect_eq("sum of values", sum, TMC_SUM)?;
    Ok(Report {
        elapsed,
        units: TMC_ITEMS,
        check: sum.to_string(),
        extra: vec![],
    })
}

fn run_sync(rt: &Runtime, workload: &str, workers: usize) -> Res<Report> {
    match workload {
        "sync_mpsc_contention_bounded" => sync_mpsc(rt, Mpsc::BoundedBig, true),
        "sync_mpsc_contention_bounded_full" => sync_mpsc(rt, Mpsc::BoundedSmall, true),
        "sync_mpsc_contention_unbounded" => sync_mpsc(rt, Mpsc::Unbounded, true),
        "sync_mpsc_uncontended_bounded" => sync_mpsc(rt, Mpsc::BoundedBig, false),
        "sync_mpsc_uncontended_unbounded" => sync_mpsc(rt, Mpsc::Unbounded, false),
        "sync_oneshot_request_reply" => sync_oneshot_request_reply(rt),
        "sync_notify_one" => sync_notify(rt, false),
        "sync_notify_waiters" => sync_notify(rt, true),
        "sync_semaphore_uncontended" => sync_semaphore_uncontended(rt),
        "sync_semaphore_uncontended_concurrent" => sync_semaphore_concurrent(rt, SEM_ENOUGH_PERMITS),
        "sync_semaphore_contended_concurrent" => sync_semaphore_concurrent(rt, SEM_SCARCE_PERMITS),
        "sync_channel_tmc" => sync_channel_tmc(rt, workers),
        other => Err(format!("unknown workload {:?}", other)),
    }
}
// ---------------------------------------------------------------------------

const WORKLOADS: &[&str] = &[
    "spawn_many_remote_idle",
    "spawn_many_local",
    "yield_many",
    "ping_pong",
    "chained_spawn",
    "skynet",
    "fib",
    "starve_none",
    "starve_A",
    "starve_B",
    "starve_C",
    "sync_mpsc_contention_bounded",
    "sync_mpsc_contention_bounded_full",
    "sync_mpsc_contention_unbounded",
    "sync_mpsc_uncontended_bounded",
    "sync_mpsc_uncontended_unbounded",
    "sync_oneshot_request_reply",
    "sync_notify_one",
    "sync_notify_waiters",
    "sync_semaphore_uncontended",
    "sync_semaphore_uncontended_concurrent",
    "sync_semaphore_contended_concurrent",
    "sync_channel_tmc",
];

fn run(rt: &Runtime, workload: &str, duration: Duration, workers: usize) -> Res<Report> {
    if workload.starts_with("sync_") {
        run_sync(rt, workload, workers)?; // untimed warm-up, result checked too
        return run_sync(rt, workload, workers);
    }
    let throughput: fn(&Runtime) -> Res<Report> = match workload {
        "spawn_many_remote_idle" => spawn_many_remote_idle,
        "spawn_many_local" => spawn_many_local,
        "yield_many" => yield_many,
        "ping_pong" => ping_pong,
        "chained_spawn" => chained_spawn,
        "skynet" => skynet_workload,
        "fib" => fib_workload,
        "starve_none" => return starve(rt, Hog::None, duration),
        "starve_A" => return starve(rt, Hog::A, duration),
        "starve_B" => return starve(rt, Hog::B, duration),
        "starve_C" => return starve(rt, Hog::C, duration),
        other => return Err(format!("unknown workload {:?}", other)),
    };
    throughput(rt)?; // untimed warm-up, result checked too
    throughput(rt)
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: tokio_compare <workload> [--workers N] [--duration-ms MS]\nworkloads: {}",
        WORKLOADS.join(" ")
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut workload: Option<String> = None;
    let mut workers = 2usize;
    let mut duration_ms = 2000u64;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--workers" | "--duration-ms" if i + 1 < args.len() => {
                let v = match args[i + 1].parse::<u64>() {
                    Ok(v) if v > 0 => v,
                    _ => return usage(),
                };
                if args[i] == "--workers" {
                    workers = v as usize;
                } else {
                    duration_ms = v;
                }
                i += 2;
            }
            "-h" | "--help" => return usage(),
            a if !a.starts_with('-') && workload.is_none() => {
                workload = Some(a.to_string());
                i += 1;
            }
            _ => return usage(),
        }
    }
    let workload = match workload {
        Some(w) => w,
        None => return usage(),
    };
    if !WORKLOADS.contains(&workload.as_str()) {
        return usage();
    }

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            print_err(&workload, workers, &format!("building runtime: {}", e));
            return ExitCode::FAILURE;
        }
    };
    match run(&rt, &workload, Duration::from_millis(duration_ms), workers) {
        Ok(r) => {
            print_ok(&workload, workers, &r);
            // Do not wait for leftover tasks (there should be none).
            rt.shutdown_background();
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_err(&workload, workers, &e);
            rt.shutdown_background();
            ExitCode::FAILURE
        }
    }
}
