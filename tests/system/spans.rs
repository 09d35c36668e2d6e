use supervisor::{Context, Signal, Supervisor};
use tracing::Level;

use crate::support::{Cmd, Remote, capture, shut_down, tree};

async fn nested_work() {
    tracing::info!(answer = 42, "from a nested async call");
}

#[tokio::test(start_paused = true)]
async fn a_runnable_runs_in_a_span_that_carries_its_dn() {
    let (logs, _guard) = capture();
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run("worker", |ctx: Context| async move {
            nested_work().await;
            assert_eq!(ctx.span().metadata().map(|m| m.name()), Some("runnable"));
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        })
    }));
    sup.settled().await;
    let record = logs
        .find("from a nested async call")
        .expect("the event was captured");
    assert_eq!(record.dn.as_deref(), Some("root.worker"));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_one_supervisor_event_for_other_subscribers() {
    let (logs, _guard) = capture();
    let one = Remote::healthy();
    let o = one.clone();
    let sup = Supervisor::new(tree(move |ctx| ctx.run("one", o.runnable())));
    sup.settled().await;
    one.send(Cmd::Fail("boom"));
    sup.settled().await;
    let failures: Vec<_> = logs
        .records()
        .into_iter()
        .filter(|r| r.level == Level::ERROR)
        .collect();
    assert_eq!(failures.len(), 1, "one event per failure: {failures:?}");
    let failure = &failures[0];
    assert_eq!(failure.target, "supervisor");
    assert_eq!(
        failure.message.lines().next(),
        Some("root.one failed: returned error: boom"),
        "headed by the failure: the crash report"
    );
    assert_eq!(failure.dn, None, "outside any runnable span");
    assert_eq!(failure.dn_field.as_deref(), Some("root.one"));
    assert!(logs.saw(
        "supervisor",
        Level::INFO,
        "restarting root.one after a backoff of"
    ));
    shut_down(sup).await;
}
