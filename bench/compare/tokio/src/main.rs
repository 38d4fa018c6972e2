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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::{oneshot, Notify, Semaphore};
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
];

fn run(rt: &Runtime, workload: &str, duration: Duration) -> Res<Report> {
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
    match run(&rt, &workload, Duration::from_millis(duration_ms)) {
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
