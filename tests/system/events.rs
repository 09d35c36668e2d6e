//! Lifecycle events (DESIGN §18): the exact sequences of a failure and restart and of a
//! shutdown, the bounded buffer's in-band gap, the JSON form, and the end of the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use supervisor::{
    Backoff, Context, Event, EventKind, Events, Group, Observed, Shutdown, Signal, Spec, Supervisor,
};

use crate::support::{Cmd, Remote, shut_down, tree};

/// `dn kind` for each event waiting, and `missed n` for a gap.
fn drain(events: &mut Events) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(item) = events.try_next() {
        seen.push(match item {
            Observed::Event(e) => line(&e),
            Observed::Missed(n) => format!("missed {n}"),
        });
    }
    seen
}

fn line(e: &Event) -> String {
    match &e.kind {
        EventKind::RestartScheduled { delay } => format!("{} restart after {delay:?}", e.dn),
        EventKind::Died(report) => format!("{} died: {}", e.dn, report.reason()),
        kind => format!("{} {}", e.dn, kind.name()),
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_and_its_restart_in_order() {
    let a = Remote::healthy();
    let b = Remote::healthy();
    let (ra, rb) = (a.runnable(), b.runnable());
    let runnables = Arc::new(std::sync::Mutex::new(Some((ra, rb))));
    let sup = Supervisor::builder()
        .backoff(Backoff::constant(Duration::from_secs(2)))
        .start(tree(move |ctx| {
            let (ra, rb) = runnables
                .lock()
                .unwrap()
                .take()
                .expect("the root starts once");
            ctx.run_group(Group::new().add("a", ra).add("b", rb))
        }));
    let mut events = sup.events();
    sup.settled().await;
    assert_eq!(
        drain(&mut events),
        [
            "root.a started",
            "root.b started",
            "root healthy",
            "root done",
            "root.a healthy",
            "root.b healthy",
        ]
    );
    a.send(Cmd::Fail("boom"));
    sup.settled().await;
    assert_eq!(
        drain(&mut events),
        [
            "root.a died: returned error: boom",
            // Its subtree has returned: its restart is due after its backoff.
            "root.a restart after 2s",
            // Its sibling is cancelled, returns, and starts again at once.
            "root.b canceled",
            "root.b restart after 0ns",
            "root.b started",
            "root.b healthy",
            // The failed one, once its backoff has passed.
            "root.a started",
            "root.a healthy",
        ]
    );
    let incarnations: Vec<u64> = sup
        .crash_reports()
        .iter()
        .map(|r| r.incarnation())
        .collect();
    assert_eq!(incarnations.len(), 1);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_in_order_with_an_abort() {
    let sup = Supervisor::new(|ctx: Context| async move {
        ctx.run_group(
            Group::new()
                .add("db", crate::support::serve)
                .add_with(
                    "stubborn",
                    |ctx: Context| async move {
                        ctx.signal(Signal::Healthy);
                        std::future::pending::<supervisor::Result>().await
                    },
                    Spec::new().shutdown(Shutdown::Timeout(Duration::from_secs(1))),
                )
                .ordered_shutdown(),
        )?;
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    });
    let mut events = sup.events();
    sup.settled().await;
    drain(&mut events);
    sup.cancel();
    let probe = sup.clone();
    sup.wait().await;
    let seen = drain(&mut events);
    assert_eq!(
        seen,
        [
            "root canceled",
            // In reverse order of start: the stubborn one is aborted at its deadline.
            "root.stubborn aborted",
            "root.stubborn died: aborted: did not return within the shutdown grace period (1s) after its context was cancelled",
            "root.db canceled",
        ]
    );
    drop(probe);
    assert!(
        events.next().await.is_none(),
        "the stream ends with the supervisor"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_falls_behind_is_told_how_many_it_missed() {
    const FAILURES: usize = 2_000;
    let starts = Arc::new(AtomicUsize::new(0));
    let s = starts.clone();
    let sup = Supervisor::builder()
        .backoff(Backoff::none())
        .crash_reports_kept(0)
        .start(tree(move |ctx| {
            let s = s.clone();
            ctx.run("flaky", move |ctx: Context| {
                let n = s.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < FAILURES {
                        return Err("again".into());
                    }
                    ctx.signal(Signal::Healthy);
                    ctx.cancelled().await;
                    Ok(())
                }
            })
        }));
    let mut events = sup.events();
    sup.settled().await;
    assert!(sup.crash_reports().is_empty(), "none kept");
    let mut kept = 0;
    let mut missed = 0;
    let mut last = 0;
    while let Some(item) = events.try_next() {
        match item {
            Observed::Event(e) => {
                assert_eq!(missed, 0, "nothing after the gap but what came after it");
                if &*e.dn == "root.flaky" {
                    assert!(e.incarnation >= last, "in order");
                    last = e.incarnation;
                }
                kept += 1;
            }
            Observed::Missed(n) => missed += n,
        }
    }
    // Each failure: died, restart scheduled, started; then the last start's healthy; and
    // the root's three before.
    let total = 3 * FAILURES + 1 + 3;
    assert_eq!(kept, 4096, "the buffer");
    assert_eq!(kept as u64 + missed, total as u64);
    // Once read, events flow again.
    sup.cancel();
    sup.settled().await;
    assert!(
        matches!(events.try_next(), Some(Observed::Event(e)) if matches!(e.kind, EventKind::Canceled))
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn an_event_reads_as_json() {
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run_with(
            "once",
            |_ctx: Context| async { Err::<(), _>("bad \"input\"".into()) },
            Spec::new().restart(supervisor::Restart::Temporary),
        )
    }));
    let mut events = sup.events();
    sup.settled().await;
    let died = std::iter::from_fn(|| events.try_next())
        .find_map(|item| match item {
            Observed::Event(e) if e.kind.name() == "died" => Some(e),
            _ => None,
        })
        .expect("a death");
    let json: serde_json::Value = serde_json::from_str(&died.to_json()).expect("JSON");
    assert_eq!(json["dn"], "root.once");
    assert_eq!(json["kind"], "died");
    assert_eq!(json["incarnation"], died.incarnation);
    assert_eq!(json["report"]["reason"], "returned error: bad \"input\"");
    shut_down(sup).await;
}
