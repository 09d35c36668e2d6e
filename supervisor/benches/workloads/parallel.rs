//! W9 parallel restarts (issue 14): independent subtrees failing at the same time, on a
//! multi-thread runtime of one worker and of two: restarts per second beside a floor of as
//! many independent hand-written crash loops, and how each scales from one worker to two.
//!
//! Each of [`SUBTREES`] children of the root (`s0`, `s1`, …) owns a child `crash` that
//! fails at once every time it starts, with no backoff and no restart limit: their restarts
//! concern nothing outside their own subtree, so nothing but the supervisor's own shared
//! state makes them wait for each other. The floor's loops share nothing but the counter:
//! `loop { tokio::spawn(async { Err(..) }).await }`, one task per loop.

use std::time::Instant;

use supervisor::{Backoff, Context, Signal, Supervisor};

use super::{Countdown, Table, crash, median, per_second, rate_until_counted};

/// Independent subtrees, each restarting its child as fast as it can.
const SUBTREES: usize = 8;
/// Restarts, over all subtrees, per run.
const RESTARTS: usize = 400_000;

pub(crate) fn w9(table: &mut Table) {
    let mut rates = Vec::new();
    for workers in [1, 2] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("runtime");
        let (mut o, mut f) = (vec![], vec![]);
        for _ in 0..super::RUNS {
            o.push(rt.block_on(async { tokio::spawn(ours()).await.expect("ran") }));
            f.push(rt.block_on(async { tokio::spawn(floor()).await.expect("ran") }));
        }
        let (o, f) = (median(o), median(f));
        let plural = if workers == 1 { "" } else { "s" };
        table.row(
            &format!("W9 parallel restarts, {SUBTREES} subtrees, {workers} worker{plural}"),
            per_second(o),
            per_second(f),
            f / o,
            "-",
        );
        rates.push((o, f));
    }
    let [(o1, f1), (o2, f2)] = rates[..] else {
        unreachable!("two worker counts")
    };
    table.row(
        "W9 scaling, 1 → 2 workers",
        format!("{:.2}×", o2 / o1),
        format!("{:.2}×", f2 / f1),
        (f2 / f1) / (o2 / o1),
        "-",
    );
}

/// Restarts per second over [`SUBTREES`] crash loops in a supervisor.
async fn ours() -> f64 {
    let count = Countdown::new(RESTARTS);
    let c = count.clone();
    let started = Instant::now();
    let sup = Supervisor::builder()
        .backoff(Backoff::none())
        .start(move |ctx: Context| {
            let c = c.clone();
            async move {
                for i in 0..SUBTREES {
                    let c = c.clone();
                    ctx.run(&format!("s{i}"), move |ctx: Context| {
                        let c = c.clone();
                        async move {
                            ctx.run("crash", crash(c))?;
                            ctx.signal(Signal::Healthy);
                            ctx.cancelled().await;
                            Ok(())
                        }
                    })?;
                }
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                Ok(())
            }
        });
    rate_until_counted(sup, &count, started).await
}

/// Restarts per second over [`SUBTREES`] bare tokio crash loops.
async fn floor() -> f64 {
    let count = Countdown::new(RESTARTS);
    let started = Instant::now();
    let loops: Vec<_> = (0..SUBTREES)
        .map(|_| {
            let count = count.clone();
            tokio::spawn(async move {
                while count.seen() < RESTARTS {
                    let c = count.clone();
                    let failed: supervisor::Result = tokio::spawn(async move {
                        c.arrive();
                        Err("crash".into())
                    })
                    .await
                    .expect("joined");
                    std::hint::black_box(failed.is_err());
                }
            })
        })
        .collect();
    count.wait().await;
    let rate = RESTARTS as f64 / started.elapsed().as_secs_f64();
    for crash_loop in loops {
        crash_loop.await.expect("ended");
    }
    rate
}
