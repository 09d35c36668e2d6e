//! The supervisor's workloads W1–W9 (and W4b, a restart's cost under an intensity window),
//! each beside its floor: the least a hand-written tokio
//! program needs for the same job (`tokio::spawn`, a child `CancellationToken` and one
//! notification per task, no tree bookkeeping). Prints a table of medians and ratios.
//!
//! ```text
//! cargo bench --bench workloads                        # about a minute
//! SUPERVISOR_BENCH_FULL=1 cargo bench --bench workloads   # adds W7 at 1,000,000 runnables
//! SUPERVISOR_BENCH_ONLY=w1,w6 cargo bench --bench workloads   # only these (w7 is w1+w6 large)
//! ```
//!
//! Every workload runs on tokio's current-thread runtime, which measures the work itself
//! (driven by `block_on`, as the reference figures were taken), and then on a multi-thread
//! runtime of two workers, which users run (`#[tokio::main]`), driven from a task spawned on
//! it, which competes for the workers as an application's code does: one table each. W8
//! (dynamic churn, in `workloads/churn.rs`) has a table of its own with both runtimes, and
//! W9 (parallel restarts, in `workloads/parallel.rs`) one with multi-thread runtimes of one
//! worker and of two.
//!
//! Memory is the growth of the resident set while the runnables are alive, divided by their
//! number, each measured in a fresh process of this benchmark (Linux; `-` elsewhere), so that
//! memory freed by an earlier measurement does not flatter a later one.

// A benchmark may stop at the first broken assumption; the rule against `unwrap` guards the
// supervisor's own code paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use supervisor::logtree::{LogTree, ReadOptions};
use supervisor::{Backoff, Context, Group, Intensity, Runnable, Signal, Supervisor};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

const RUNS: usize = 5;

#[path = "workloads/churn.rs"]
mod churn;
#[path = "workloads/parallel.rs"]
mod parallel;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let multi = |workers| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A child process measuring memory: `workloads --memory <ours|floor|churn> <n> [--multi]`.
    if let Some(i) = args.iter().position(|a| a == "--memory") {
        let (which, n) = (args[i + 1].clone(), args[i + 2].parse().expect("a count"));
        let rt = if args.iter().any(|a| a == "--multi") {
            multi(2)
        } else {
            current
        };
        let printed = rt.block_on(async move {
            tokio::spawn(async move { memory(&which, n).await })
                .await
                .expect("measured")
        });
        println!("{printed}");
        return;
    }
    let full = std::env::var_os("SUPERVISOR_BENCH_FULL").is_some();
    let only = std::env::var("SUPERVISOR_BENCH_ONLY").unwrap_or_default();
    let run = |w: &str| only.is_empty() || only.split(',').any(|o| o.trim() == w);
    let multi = multi(2);
    // On the current-thread runtime the workloads are driven by `block_on`, as their
    // reference figures were taken. On the multi-thread one they run in a task of their own,
    // as an application's code does (and as `peers-bench` drives every peer): that task
    // competes for the workers with the runnables.
    let tables = [
        (
            "current-thread runtime",
            current.block_on(workloads(only.clone(), full, false)),
        ),
        (
            "multi-thread runtime, 2 workers",
            multi.block_on(async {
                tokio::spawn(workloads(only.clone(), full, true))
                    .await
                    .expect("ran")
            }),
        ),
    ];
    for (flavour, table) in tables {
        if !table.rows.is_empty() {
            println!("\n{flavour}:\n");
            table.print();
        }
    }
    if run("w8") {
        // Outside both runtimes: it drives each of them itself.
        let mut table = Table::default();
        churn::w8(&current, &multi, &mut table);
        println!("\nW8, on both runtimes:\n");
        table.print();
    }
    if run("w9") {
        // Outside both runtimes: it makes its own, of one worker and of two.
        let mut table = Table::default();
        parallel::w9(&mut table);
        println!("\nW9, on multi-thread runtimes of 1 and 2 workers:\n");
        table.print();
    }
}

/// The workloads `only` names (all if empty) on the runtime this runs on.
async fn workloads(only: String, full: bool, multi: bool) -> Table {
    let run = |w: &str| only.is_empty() || only.split(',').any(|o| o.trim() == w);
    let mut table = Table {
        multi,
        ..Table::default()
    };
    if run("w1") {
        w1(&mut table, 10_000).await;
    }
    if run("w2") {
        w2(&mut table).await;
    }
    if run("w3") {
        w3(&mut table).await;
    }
    if run("w4") {
        w4(&mut table).await;
    }
    if run("w4b") {
        w4b(&mut table).await;
    }
    if run("w5") {
        w5(&mut table).await;
    }
    if run("w6") {
        w6(&mut table, 10_000).await;
    }
    if run("w7") {
        for n in [100_000usize].into_iter().chain(full.then_some(1_000_000)) {
            w1(&mut table, n).await;
            w6(&mut table, n).await;
        }
        table.growth_rows();
    }
    table
}

/// What a memory-measuring child process prints: bytes per runnable for `ours` and
/// `floor`, the resident sets around `n` churned children for `churn`.
async fn memory(which: &str, n: usize) -> String {
    match which {
        "churn" => {
            let around = churn::resident_around(n).await;
            let (before, after) = around.unwrap_or((f64::NAN, f64::NAN));
            format!("{before} {after}")
        }
        "ours" => {
            let (sup, _, mem) = flat_start(n).await;
            sup.cancel();
            sup.wait().await;
            mem.unwrap_or(f64::NAN).to_string()
        }
        _ => {
            let (root, tracker, _, mem) = floor_start(n).await;
            root.cancel();
            tracker.close();
            tracker.wait().await;
            mem.unwrap_or(f64::NAN).to_string()
        }
    }
}

// ---------------------------------------------------------------------------------------
// Measuring

#[derive(Default)]
struct Table {
    /// Measured on the multi-thread runtime: memory is then measured on it too.
    multi: bool,
    rows: Vec<[String; 5]>,
    /// Per-runnable medians of W1/W6/W7: (what, runnables, ours, floor), for W7's growth.
    per_runnable: Vec<(&'static str, usize, f64, f64)>,
}

impl Table {
    fn row(&mut self, name: &str, ours: String, floor: String, ratio: f64, target: &str) {
        self.rows.push([
            name.to_owned(),
            ours,
            floor,
            format!("{ratio:.2}×"),
            target.to_owned(),
        ]);
    }

    /// W7's linearity: the per-runnable time at each large size against that at 10,000,
    /// for the supervisor and, for comparison (caches stop holding the working set), for
    /// the floor. The target is on the supervisor's growth, so the ratio column repeats it.
    fn growth_rows(&mut self) {
        let rows: Vec<_> = self
            .per_runnable
            .iter()
            .filter(|(_, n, ..)| *n > 10_000)
            .filter_map(|&(what, n, o, f)| {
                let &(_, _, o0, f0) = self
                    .per_runnable
                    .iter()
                    .find(|(w, n0, ..)| *w == what && *n0 == 10_000)?;
                Some((what, n, o / o0, f / f0))
            })
            .collect();
        for (what, n, ours, floor) in rows {
            self.row(
                &format!("W7 {what} per runnable, {}k vs 10k", n / 1000),
                format!("{ours:.2}×"),
                format!("{floor:.2}×"),
                ours,
                "≤ 1.5×",
            );
        }
    }

    fn print(&self) {
        let head = ["workload", "supervisor", "floor", "ratio", "target"];
        let widths: Vec<usize> = (0..5)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([head[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: [&str; 5]| {
            let cells: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(head);
        let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("|-{}-|", dashes.join("-|-"));
        for r in &self.rows {
            line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
        }
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[i]
}

fn ms(secs: f64) -> String {
    format!("{:.2} ms", secs * 1e3)
}

/// A rate, in thousands a second.
fn per_second(rate: f64) -> String {
    format!("{:.0} k/s", rate / 1e3)
}

fn us(secs: f64) -> String {
    format!("{:.2} µs", secs * 1e6)
}

/// Resident set size in bytes, if the platform tells.
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn bytes_per(before: Option<usize>, after: Option<usize>, n: usize) -> Option<f64> {
    Some(after?.saturating_sub(before?) as f64 / n as f64)
}

fn mem(b: Option<f64>) -> String {
    b.map_or_else(|| "-".to_owned(), |b| format!("{b:.0} B"))
}

/// Counts arrivals and wakes the waiter at `n`.
#[derive(Clone)]
struct Countdown {
    seen: Arc<AtomicUsize>,
    done: Arc<Notify>,
    n: usize,
}

impl Countdown {
    fn new(n: usize) -> Self {
        Countdown {
            seen: Arc::new(AtomicUsize::new(0)),
            done: Arc::new(Notify::new()),
            n,
        }
    }

    fn arrive(&self) {
        if self.seen.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.done.notify_one();
        }
    }

    fn seen(&self) -> usize {
        self.seen.load(Ordering::Acquire)
    }

    async fn wait(&self) {
        if self.seen() < self.n {
            self.done.notified().await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// W1 flat spawn, W6 shutdown, W7 scale

fn healthy_leaf(count: Countdown) -> impl Runnable {
    move |ctx: Context| {
        let count = count.clone();
        async move {
            ctx.signal(Signal::Healthy);
            count.arrive();
            ctx.cancelled().await;
            Ok(())
        }
    }
}

/// A root starting one child per name. The names are made beforehand: real trees name
/// their runnables with literals, so formatting names is no part of the supervisor's cost.
fn flat_root(names: Arc<[String]>, count: Countdown) -> impl Runnable {
    let leaf = Arc::new(healthy_leaf(count));
    move |ctx: Context| {
        let (leaf, names) = (leaf.clone(), names.clone());
        async move {
            for name in names.iter() {
                let leaf = leaf.clone();
                ctx.run(name, move |c| leaf(c))?;
            }
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        }
    }
}

/// Starts `n` flat children and waits until all are Healthy; returns the supervisor, the
/// time it took and the memory per child.
async fn flat_start(n: usize) -> (Supervisor, f64, Option<f64>) {
    let count = Countdown::new(n);
    let names: Arc<[String]> = (0..n).map(|i| format!("n{i}")).collect();
    let before = rss();
    let started = Instant::now();
    let sup = Supervisor::new(flat_root(names, count.clone()));
    count.wait().await;
    let took = started.elapsed().as_secs_f64();
    (sup, took, bytes_per(before, rss(), n))
}

/// The floor of W1/W6: `n` tasks with child tokens, each notifying once started.
async fn floor_start(
    n: usize,
) -> (
    CancellationToken,
    tokio_util::task::TaskTracker,
    f64,
    Option<f64>,
) {
    let count = Countdown::new(n);
    let root = CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    let before = rss();
    let started = Instant::now();
    for _ in 0..n {
        let token = root.child_token();
        let count = count.clone();
        tracker.spawn(async move {
            count.arrive();
            token.cancelled().await;
        });
    }
    count.wait().await;
    let took = started.elapsed().as_secs_f64();
    (root, tracker, took, bytes_per(before, rss(), n))
}

/// Memory per runnable measured in a fresh process of this benchmark, on the multi-thread
/// runtime if `multi`.
fn memory_in_child(which: &str, n: usize, multi: bool) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let mut args = vec!["--memory".to_owned(), which.to_owned(), n.to_string()];
    if multi {
        args.push("--multi".to_owned());
    }
    let out = std::process::Command::new(exe).args(args).output().ok()?;
    let per: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    per.is_finite().then_some(per)
}

async fn w1(table: &mut Table, n: usize) {
    let (mut ours, mut floor, mut ours_mem, mut floor_mem) = (vec![], vec![], vec![], vec![]);
    for run in 0..RUNS {
        let (sup, took, _) = flat_start(n).await;
        ours.push(took);
        sup.cancel();
        sup.wait().await;
        let (root, tracker, took, _) = floor_start(n).await;
        floor.push(took);
        root.cancel();
        tracker.close();
        tracker.wait().await;
        if run < 3 {
            ours_mem.extend(memory_in_child("ours", n, table.multi));
            floor_mem.extend(memory_in_child("floor", n, table.multi));
        }
    }
    let name = per_runnable_row(table, ("W1 flat spawn", "W7 spawn"), n, ours, floor);
    let (om, fm) = (
        (!ours_mem.is_empty()).then(|| median(ours_mem)),
        (!floor_mem.is_empty()).then(|| median(floor_mem)),
    );
    let ratio = match (om, fm) {
        (Some(o), Some(f)) if f > 0.0 => o / f,
        _ => f64::NAN,
    };
    table.row(
        &format!("{name} memory/runnable"),
        mem(om),
        mem(fm),
        ratio,
        "≤ 2×",
    );
}

async fn w6(table: &mut Table, n: usize) {
    let (mut ours, mut floor) = (vec![], vec![]);
    for _ in 0..RUNS {
        let (sup, _, _) = flat_start(n).await;
        let started = Instant::now();
        sup.cancel();
        sup.wait().await;
        ours.push(started.elapsed().as_secs_f64());
        let (root, tracker, _, _) = floor_start(n).await;
        let started = Instant::now();
        root.cancel();
        tracker.close();
        tracker.wait().await;
        floor.push(started.elapsed().as_secs_f64());
    }
    per_runnable_row(table, ("W6 shutdown", "W7 shutdown"), n, ours, floor);
}

/// A row of times over `n` runnables, named as the 10k workload or its W7 scale-up; returns
/// the name.
fn per_runnable_row(
    table: &mut Table,
    (base, scaled): (&str, &'static str),
    n: usize,
    ours: Vec<f64>,
    floor: Vec<f64>,
) -> String {
    let (o, f) = (median(ours), median(floor));
    let what = scaled.trim_start_matches("W7 ");
    table
        .per_runnable
        .push((what, n, o / n as f64, f / n as f64));
    let name = if n == 10_000 {
        format!("{base} 10k")
    } else {
        format!("{scaled} {}k", n / 1000)
    };
    table.row(
        &name,
        format!("{} ({:.2} µs/each)", ms(o), o * 1e6 / n as f64),
        ms(f),
        o / f,
        "≤ 2×",
    );
    name
}

// ---------------------------------------------------------------------------------------
// W2 deep tree

fn binary_node(depth: u32, count: Countdown) -> impl Runnable {
    move |ctx: Context| {
        let count = count.clone();
        async move {
            if depth > 1 {
                ctx.run_group(
                    Group::new()
                        .add("a", binary_node(depth - 1, count.clone()))
                        .add("b", binary_node(depth - 1, count.clone())),
                )?;
            }
            ctx.signal(Signal::Healthy);
            count.arrive();
            ctx.cancelled().await;
            Ok(())
        }
    }
}

fn floor_node(
    depth: u32,
    token: CancellationToken,
    count: Countdown,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if depth > 1 {
            for _ in 0..2 {
                tokio::spawn(floor_node(depth - 1, token.child_token(), count.clone()));
            }
        }
        count.arrive();
        token.cancelled().await;
    })
}

async fn w2(table: &mut Table) {
    const DEPTH: u32 = 13; // 8,191 nodes: the root and 12 levels below it
    let n = (1usize << DEPTH) - 1;
    let (mut ours, mut floor) = (vec![], vec![]);
    for _ in 0..RUNS {
        let count = Countdown::new(n);
        let started = Instant::now();
        let sup = Supervisor::new(binary_node(DEPTH, count.clone()));
        count.wait().await;
        ours.push(started.elapsed().as_secs_f64());
        sup.cancel();
        sup.wait().await;

        let count = Countdown::new(n);
        let root = CancellationToken::new();
        let started = Instant::now();
        tokio::spawn(floor_node(DEPTH, root.child_token(), count.clone()));
        count.wait().await;
        floor.push(started.elapsed().as_secs_f64());
        root.cancel();
    }
    let (o, f) = (median(ours), median(floor));
    table.row("W2 deep tree 8,191", ms(o), ms(f), o / f, "≤ 2×");
}

// ---------------------------------------------------------------------------------------
// W3 sibling restart latency

async fn w3(table: &mut Table) {
    const ROUNDS: usize = 1000;
    // `a` fails when told; `b` reports when it (re)starts.
    let (fail_tx, fail_rx) = mpsc::unbounded_channel::<()>();
    let fail_rx = Arc::new(tokio::sync::Mutex::new(fail_rx));
    let (start_tx, mut start_rx) = mpsc::unbounded_channel::<Instant>();
    let failed_at = Arc::new(Mutex::new(Instant::now()));
    let a = {
        let (fail_rx, failed_at) = (fail_rx.clone(), failed_at.clone());
        move |ctx: Context| {
            let (fail_rx, failed_at) = (fail_rx.clone(), failed_at.clone());
            async move {
                ctx.signal(Signal::Healthy);
                let mut rx = fail_rx.lock().await;
                tokio::select! {
                    () = ctx.cancelled() => Ok(()),
                    _ = rx.recv() => {
                        *failed_at.lock().unwrap() = Instant::now();
                        Err("told to fail".into())
                    }
                }
            }
        }
    };
    let a = Arc::new(a);
    let b = move |ctx: Context| {
        let start_tx = start_tx.clone();
        async move {
            let _ = start_tx.send(Instant::now());
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        }
    };
    let b = Arc::new(b);
    let sup = Supervisor::builder()
        .backoff(Backoff::none())
        .start(move |ctx: Context| {
            let (a, b) = (a.clone(), b.clone());
            async move {
                ctx.run_group(Group::new().add("a", move |c| a(c)).add("b", move |c| b(c)))?;
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                Ok(())
            }
        });
    start_rx.recv().await;
    let mut ours = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        sup.settled().await;
        fail_tx.send(()).expect("a listens");
        let restarted = start_rx.recv().await.expect("b restarts");
        let failed = *failed_at.lock().unwrap();
        ours.push(restarted.duration_since(failed).as_secs_f64());
    }
    sup.cancel();
    sup.wait().await;

    // Floor: a hand-written loop that, when `a` fails, cancels `b`, waits for it and
    // starts both again.
    let mut floor = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let token = CancellationToken::new();
        let (a_done, a_fails) = oneshot::channel::<Instant>();
        let b_token = token.child_token();
        let b = tokio::spawn(async move { b_token.cancelled().await });
        let a = tokio::spawn(async move {
            let _ = a_done.send(Instant::now());
        });
        let failed = a_fails.await.expect("a fails");
        let _ = a.await;
        token.cancel();
        let _ = b.await;
        let (started_tx, started) = oneshot::channel();
        tokio::spawn(async move {
            let _ = started_tx.send(Instant::now());
        });
        let restarted = started.await.expect("b restarts");
        floor.push(restarted.duration_since(failed).as_secs_f64());
    }
    let o_median = median(ours.clone());
    let o_p99 = percentile(&mut ours, 0.99);
    let f_median = median(floor.clone());
    let f_p99 = percentile(&mut floor, 0.99);
    table.row(
        "W3 sibling restart, median",
        us(o_median),
        us(f_median),
        o_median / f_median,
        "≤ 8 µs",
    );
    table.row(
        "W3 sibling restart, p99",
        us(o_p99),
        us(f_p99),
        o_p99 / f_p99,
        "≤ 50 µs",
    );
}

// ---------------------------------------------------------------------------------------
// W4 restart throughput

const RESTARTS: usize = 200_000;

/// Restarts per second of a child that fails at once, forever, with no backoff: in a group
/// of its own, with `intensity` if given.
async fn restart_rate(intensity: Option<Intensity>) -> f64 {
    let count = Countdown::new(RESTARTS);
    let c = count.clone();
    let started = Instant::now();
    let sup = Supervisor::builder()
        .backoff(Backoff::none())
        .start(move |ctx: Context| {
            let c = c.clone();
            async move {
                match intensity {
                    None => ctx.run("crash", crash(c))?,
                    Some(i) => ctx.run_group(Group::new().add("crash", crash(c)).intensity(i))?,
                }
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                Ok(())
            }
        });
    rate_until_counted(sup, &count, started).await
}

/// A runnable that fails at once, counted by `count` each time it starts.
fn crash(count: Countdown) -> impl Runnable {
    move |_ctx: Context| {
        let count = count.clone();
        async move {
            count.arrive();
            Err("crash".into())
        }
    }
}

/// The rate of `count`'s arrivals since `started`, once all have arrived; then shuts `sup`
/// down.
async fn rate_until_counted(sup: Supervisor, count: &Countdown, started: Instant) -> f64 {
    count.wait().await;
    let rate = count.n as f64 / started.elapsed().as_secs_f64();
    sup.cancel();
    sup.wait().await;
    rate
}

async fn w4(table: &mut Table) {
    let (mut ours, mut floor) = (vec![], vec![]);
    for _ in 0..RUNS {
        ours.push(restart_rate(None).await);

        let started = Instant::now();
        for _ in 0..RESTARTS {
            let failed: supervisor::Result = tokio::spawn(async { Err("crash".into()) })
                .await
                .expect("joined");
            std::hint::black_box(failed.is_err());
        }
        floor.push(RESTARTS as f64 / started.elapsed().as_secs_f64());
    }
    let (o, f) = (median(ours), median(floor));
    table.row(
        "W4 restart throughput",
        per_second(o),
        per_second(f),
        f / o,
        "≥ 500 k/s",
    );
}

/// W4b: the same child under an intensity window that never trips (at most 1,000 restarts
/// in 100 µs, where it manages fewer than 100), against W4's unlimited child, measured
/// alternately in the same runs: what keeping the window costs a restart.
async fn w4b(table: &mut Table) {
    let window = Intensity::new(1_000, std::time::Duration::from_micros(100)).unwrap();
    let (mut limited, mut unlimited) = (vec![], vec![]);
    for _ in 0..RUNS {
        limited.push(restart_rate(Some(window)).await);
        unlimited.push(restart_rate(None).await);
    }
    let (l, u) = (median(limited), median(unlimited));
    table.row(
        "W4b restarts under an intensity (vs W4's)",
        per_second(l),
        per_second(u),
        u / l,
        "≈ 1×",
    );
}

// ---------------------------------------------------------------------------------------
// W5 log ingest

async fn w5(table: &mut Table) {
    const LINES: usize = 1_000_000;
    for via_tracing in [false, true] {
        let (mut ours, mut floor) = (vec![], vec![]);
        let mut retained = 0;
        for _ in 0..RUNS {
            let log = LogTree::new();
            let (done_tx, done) = oneshot::channel::<f64>();
            let done_tx = Arc::new(Mutex::new(Some(done_tx)));
            let sup = Supervisor::builder()
                .log_tree(log.clone())
                .start(move |ctx: Context| {
                    let done_tx = done_tx.clone();
                    async move {
                        let logger = ctx.logger();
                        let started = Instant::now();
                        for i in 0..LINES {
                            if via_tracing {
                                tracing::info!("processed item {i}");
                            } else {
                                logger.info(format_args!("processed item {i}"));
                            }
                        }
                        let took = started.elapsed().as_secs_f64();
                        if let Some(tx) = done_tx.lock().unwrap().take() {
                            let _ = tx.send(took);
                        }
                        ctx.signal(Signal::Healthy);
                        ctx.cancelled().await;
                        Ok(())
                    }
                });
            let took = done.await.expect("logged");
            ours.push(LINES as f64 / took);
            retained = log
                .read("root", ReadOptions::new().backlog_all())
                .map_or(0, |r| r.backlog.len());
            sup.cancel();
            sup.wait().await;

            // Floor: format each line and keep the newest 8192 in memory.
            let started = Instant::now();
            let mut kept = std::collections::VecDeque::with_capacity(8192);
            for i in 0..LINES {
                if kept.len() == 8192 {
                    kept.pop_front();
                }
                kept.push_back(format!("processed item {i}"));
            }
            std::hint::black_box(&kept);
            floor.push(LINES as f64 / started.elapsed().as_secs_f64());
        }
        let (o, f) = (median(ours), median(floor));
        let (name, target) = if via_tracing {
            ("W5 log ingest via tracing", "≥ 1 M/s")
        } else {
            ("W5 log ingest via Logger", "≥ 2 M/s")
        };
        table.row(
            &format!("{name} ({retained} kept)"),
            format!("{:.2} M/s", o / 1e6),
            format!("{:.2} M/s", f / 1e6),
            f / o,
            target,
        );
    }
}
