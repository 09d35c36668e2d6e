use std::time::Duration;

use supervisor::{Backoff, Group, Signal, Supervisor};
use tokio::time::Instant;

use crate::support::{Cmd, Remote, shut_down, tree};

#[tokio::test(start_paused = true)]
async fn backoff_grows_with_repeated_failures_and_resets_after_healthy() {
    let one = Remote::silent();
    let o = one.clone();
    let sup = Supervisor::new(tree(move |ctx| ctx.run("one", o.runnable())));
    sup.settled().await;
    for _ in 0..5 {
        one.send(Cmd::Fail("still broken"));
        sup.settled().await;
    }
    let starts = one.start_times();
    assert_eq!(starts.len(), 6);
    let delays: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Un-jittered: 500 ms × 1.5ⁿ; jitter moves each by up to ±50 %.
    for (n, delay) in delays.iter().enumerate() {
        let base = 0.5 * 1.5f64.powi(n as i32);
        let secs = delay.as_secs_f64();
        assert!(
            secs >= base * 0.5 && secs <= base * 1.5,
            "restart {} after {delay:?}, expected {base}s ± 50 %",
            n + 1
        );
    }
    assert!(
        delays[4] >= Duration::from_secs(1),
        "5th restart after {:?}",
        delays[4]
    );

    one.send(Cmd::Signal(Signal::Healthy));
    sup.settled().await;
    let failed_at = Instant::now();
    one.send(Cmd::Fail("broken again"));
    sup.settled().await;
    let after_reset = one.start_times()[6] - failed_at;
    assert!(
        after_reset >= Duration::from_millis(100) && after_reset <= Duration::from_secs(1),
        "restart after a reset took {after_reset:?}"
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn the_builder_and_groups_set_the_backoff() {
    let (by_builder, by_group) = (Remote::healthy(), Remote::healthy());
    let (a, b) = (by_builder.clone(), by_group.clone());
    let sup = Supervisor::builder()
        .backoff(Backoff::constant(Duration::from_secs(2)))
        .start(tree(move |ctx| {
            ctx.run("by_builder", a.runnable())?;
            ctx.run_group(
                Group::new()
                    .add("by_group", b.runnable())
                    .backoff(Backoff::constant(Duration::from_secs(7))),
            )
        }));
    sup.settled().await;
    let t0 = Instant::now();
    by_builder.send(Cmd::Fail("x"));
    by_group.send(Cmd::Fail("y"));
    sup.settled().await;
    assert_eq!(by_builder.start_times()[1] - t0, Duration::from_secs(2));
    assert_eq!(by_group.start_times()[1] - t0, Duration::from_secs(7));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn zero_backoff_restarts_at_once() {
    let one = Remote::healthy();
    let o = one.clone();
    let sup = Supervisor::builder()
        .backoff(Backoff::none())
        .start(tree(move |ctx| ctx.run("one", o.runnable())));
    sup.settled().await;
    let t0 = Instant::now();
    for _ in 0..100 {
        one.send(Cmd::Fail("again"));
        sup.settled().await;
    }
    assert_eq!(one.starts(), 101);
    assert_eq!(Instant::now(), t0);
    shut_down(sup).await;
}
