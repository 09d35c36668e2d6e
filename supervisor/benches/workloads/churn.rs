//! W8 dynamic churn (DESIGN §15): children started and finished per second through one
//! dynamic group, beside a `JoinSet` floor, on the current-thread and the multi-thread
//! runtime; and the memory of a tree after a million churned children against before.
//!
//! Both sides start from one task, as an accept loop does, and keep at most [`IN_FLIGHT`]
//! children alive: a child hands its slot back when it ends. The child does nothing else,
//! so the ratio is the whole cost of a supervised child (a node, a name, a log DN, a task,
//! its leaving) against the floor's: a `JoinSet` task with a child token of the server's
//! (as every floor of this suite has one), reaped as it ends. A row beside gives the ratio
//! against bare `JoinSet` tasks, without the token.

use std::sync::Arc;
use std::time::Instant;

use supervisor::{Context, Dynamic, DynamicSpec, Signal, Supervisor};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Table, median, per_second, rss};

/// Children started per run.
const CHURN: usize = 100_000;
/// Children alive at once, at most.
const IN_FLIGHT: usize = 64;

/// A supervisor whose root holds the dynamic group `conns`, and the group's handle.
async fn group() -> (Supervisor, Dynamic) {
    let (tx, rx) = oneshot::channel();
    let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
    let sup = Supervisor::new(move |ctx: Context| {
        let tx = tx.clone();
        async move {
            let group = ctx.dynamic("conns", DynamicSpec::new())?;
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(group);
            }
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        }
    });
    let group = rx.await.expect("the root made its group");
    (sup, group)
}

/// Starts `n` children through `group`, at most [`IN_FLIGHT`] alive, and waits for the
/// last to end.
async fn churn(group: &Dynamic, n: usize) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    for _ in 0..n {
        slots.acquire().await.expect("open").forget();
        let slots = slots.clone();
        group
            .start(move |_ctx: Context| {
                let slots = slots.clone();
                async move {
                    slots.add_permits(1);
                    Ok(())
                }
            })
            .expect("started");
    }
    let _all = slots.acquire_many(IN_FLIGHT as u32).await.expect("open");
}

/// Children per second through one dynamic group.
async fn ours() -> f64 {
    let (sup, group) = group().await;
    let started = Instant::now();
    churn(&group, CHURN).await;
    let rate = CHURN as f64 / started.elapsed().as_secs_f64();
    sup.cancel();
    sup.wait().await;
    rate
}

/// Tasks per second through a `JoinSet`, reaped as they end, each with a child token of
/// the server's, as the other floors have: the least a hand-written server needs to shut
/// its connections down.
/// Without `tokens`, bare tasks: shown beside, for what a token costs.
async fn floor(tokens: bool) -> f64 {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let server = CancellationToken::new();
    let mut set = JoinSet::new();
    let started = Instant::now();
    for _ in 0..CHURN {
        slots.acquire().await.expect("open").forget();
        let slots = slots.clone();
        let token = tokens.then(|| server.child_token());
        set.spawn(async move {
            let _token = token;
            slots.add_permits(1);
        });
        while set.try_join_next().is_some() {}
    }
    while set.join_next().await.is_some() {}
    CHURN as f64 / started.elapsed().as_secs_f64()
}

/// W8 on the current-thread runtime and on the multi-thread one (of two workers), where the
/// loops run as tasks, as a server's accept loop does.
pub(crate) fn w8(
    current: &tokio::runtime::Runtime,
    multi: &tokio::runtime::Runtime,
    table: &mut Table,
) {
    for (flavour, rt) in [("current-thread", current), ("multi-thread", multi)] {
        let (mut o, mut f, mut bare) = (vec![], vec![], vec![]);
        for _ in 0..super::RUNS {
            o.push(rt.block_on(async { tokio::spawn(ours()).await.expect("ran") }));
            f.push(rt.block_on(async { tokio::spawn(floor(true)).await.expect("ran") }));
            bare.push(rt.block_on(async { tokio::spawn(floor(false)).await.expect("ran") }));
        }
        let (o, f, bare) = (median(o), median(f), median(bare));
        table.row(
            &format!("W8 dynamic churn, {flavour}"),
            per_second(o),
            per_second(f),
            f / o,
            "≤ 3×",
        );
        table.row(
            &format!("W8 dynamic churn, {flavour}, vs bare tasks"),
            per_second(o),
            per_second(bare),
            bare / o,
            "-",
        );
    }
    let (before, after) = memory_in_child(1_000_000).unzip();
    let shown = |b: Option<f64>| b.map_or_else(|| "-".to_owned(), |b| format!("{:.1} MB", b / 1e6));
    table.row(
        "W8 resident after 1M churned (vs before)",
        shown(after),
        shown(before),
        after.zip(before).map_or(f64::NAN, |(a, b)| a / b),
        "≤ 1.10×",
    );
}

/// [`resident_around`] in a fresh process of this benchmark.
fn memory_in_child(n: usize) -> Option<(f64, f64)> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .args(["--memory", "churn", &n.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut figures = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some((figures.next()??, figures.next()??))
}

/// The resident set of a process holding one dynamic group, before and after `n` churned
/// children. Before is after a warm-up of 10,000, so that the allocator's pools and the
/// tree's slots are at their steady size.
pub(crate) async fn resident_around(n: usize) -> Option<(f64, f64)> {
    let (sup, group) = group().await;
    churn(&group, 10_000).await;
    let before = rss();
    churn(&group, n).await;
    let after = rss();
    assert!(group.is_empty(), "every churned child has left");
    assert_eq!(
        sup.states().len(),
        2,
        "only the root and its group are left"
    );
    sup.cancel();
    sup.wait().await;
    Some((before? as f64, after? as f64))
}
