use std::time::Duration;

use supervisor::{Context, Group, NodeState, Signal, Supervisor};
use tokio::time::Instant;

use crate::support::{Cmd, Recorder, Remote, shut_down, state, tree};

#[tokio::test(start_paused = true)]
async fn a_parent_failing_during_a_child_backoff_drops_the_pending_restart() {
    let child = Remote::healthy();
    let parent = Remote::healthy().with_child("child", &child);
    let recorder = Recorder::default();
    let p = parent.clone();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(move |ctx| ctx.run("parent", p.runnable())));
    sup.settled().await;

    child.send(Cmd::Fail("child broke"));
    recorder
        .wait_for("root.parent.child", NodeState::Dead)
        .await;
    // The child now waits for its backoff (at least 250 ms); its parent fails meanwhile.
    let failed_at = Instant::now();
    parent.send(Cmd::Fail("parent broke"));
    recorder.wait_for("root.parent", NodeState::Dead).await;
    assert_eq!(
        recorder.history("root.parent.child").last(),
        Some(&NodeState::Canceled),
        "the pending restart is recorded as cancelled"
    );
    sup.settled().await;

    let back = parent.start_times()[1] - failed_at;
    assert!(back < Duration::from_secs(1), "parent back after {back:?}");
    assert_eq!((parent.starts(), child.starts()), (2, 2));
    assert_eq!(
        recorder.history("root.parent.child"),
        [
            NodeState::New,
            NodeState::Healthy,
            NodeState::Dead,
            NodeState::Canceled,
            NodeState::New,
            NodeState::Healthy
        ]
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_done_node_is_restartable_only_once_it_has_returned() {
    let one = Remote::healthy().ignoring_cancel();
    let two = Remote::healthy();
    let recorder = Recorder::default();
    let (a, b) = (one.clone(), two.clone());
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(move |ctx| {
            ctx.run_group(
                Group::new()
                    .add("one", a.runnable())
                    .add("two", b.runnable()),
            )
        }));
    sup.settled().await;
    one.send(Cmd::Signal(Signal::Done));
    recorder.wait_for("root.one", NodeState::Done).await;

    two.send(Cmd::Fail("two broke"));
    // Two is restarted after its backoff; one, still running though Done, must not be.
    recorder
        .wait_for_nth("root.two", NodeState::Healthy, 2)
        .await;
    assert_eq!(one.starts(), 1);
    assert!(sup.live_runnables().contains(&"root.one".to_owned()));

    one.send(Cmd::Return);
    sup.settled().await;
    assert_eq!(one.starts(), 2);
    assert_eq!(state(&sup, "root.one"), NodeState::Healthy);
    assert_eq!(
        recorder.history("root.one"),
        [
            NodeState::New,
            NodeState::Healthy,
            NodeState::Done,
            NodeState::New,
            NodeState::Healthy
        ]
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_done_node_is_restarted_when_a_group_sibling_dies() {
    let (one, two) = (Remote::healthy(), Remote::healthy());
    let (a, b) = (one.clone(), two.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add("one", a.runnable())
                .add("two", b.runnable()),
        )
    }));
    sup.settled().await;
    one.send(Cmd::Signal(Signal::Done));
    one.send(Cmd::Return);
    sup.settled().await;
    assert_eq!(state(&sup, "root.one"), NodeState::Done);
    assert!(!sup.live_runnables().contains(&"root.one".to_owned()));

    two.send(Cmd::Fail("two broke"));
    sup.settled().await;
    assert_eq!((one.starts(), two.starts()), (2, 2));
    assert_eq!(state(&sup, "root.one"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_done_node_stays_done_when_nothing_related_fails() {
    let (one, other) = (Remote::healthy(), Remote::healthy());
    let (a, b) = (one.clone(), other.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run("one", a.runnable())?;
        ctx.run("other", b.runnable())
    }));
    sup.settled().await;
    one.send(Cmd::Signal(Signal::Done));
    one.send(Cmd::Return);
    other.send(Cmd::Fail("unrelated"));
    sup.settled().await;
    assert_eq!(state(&sup, "root.one"), NodeState::Done);
    assert_eq!((one.starts(), other.starts()), (1, 2));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn the_root_restarts_like_any_node() {
    let root = Remote::healthy();
    let sup = Supervisor::new(root.runnable());
    sup.settled().await;
    root.send(Cmd::Fail("root broke"));
    sup.settled().await;
    assert_eq!(root.starts(), 2);
    assert_eq!(state(&sup, "root"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn children_are_forgotten_and_started_anew_when_their_parent_restarts() {
    let child = Remote::healthy();
    let parent = Remote::healthy().with_child("child", &child);
    let p = parent.clone();
    let sup = Supervisor::new(tree(move |ctx| ctx.run("parent", p.runnable())));
    sup.settled().await;
    let first = child.context();
    parent.send(Cmd::Fail("parent broke"));
    sup.settled().await;
    assert_eq!(child.starts(), 2);
    assert!(first.is_cancelled());
    assert_ne!(format!("{first:?}"), format!("{:?}", child.context()));
    assert_eq!(state(&sup, "root.parent.child"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_node_restarts_without_backoff() {
    let (one, two) = (Remote::healthy(), Remote::healthy());
    let (a, b) = (one.clone(), two.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add("one", a.runnable())
                .add("two", b.runnable()),
        )
    }));
    sup.settled().await;
    let before = Instant::now();
    two.send(Cmd::Fail("two broke"));
    sup.settled().await;
    // One was cancelled, not failed: back at once. Two waited for its backoff.
    assert_eq!(one.start_times()[1], before);
    assert!(two.start_times()[1] - before >= Duration::from_millis(250));
    shut_down(sup).await;
}

/// A node restarted at once runs its next incarnation in the task of the last one (no
/// spawn), but a crash loop still yields: each restart takes a unit of tokio's task budget
/// (128 per poll), so a neighbour on the same current-thread runtime is polled between
/// bursts of a few budgets' worth of restarts (tokio's deferred wakes may run the loop
/// twice in a row), not thousands.
#[tokio::test]
async fn a_crash_loop_restarted_in_its_own_task_yields_to_its_neighbours() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let crashes = Arc::new(AtomicUsize::new(0));
    let (report, reported) = tokio::sync::oneshot::channel::<usize>();
    let report = Arc::new(std::sync::Mutex::new(Some(report)));
    let (c, n) = (crashes.clone(), crashes.clone());
    let sup = Supervisor::builder()
        .backoff(supervisor::Backoff::none())
        .intensity(supervisor::Intensity::new(u32::MAX, Duration::from_secs(3600)).unwrap())
        .start(tree(move |ctx| {
            let c = c.clone();
            ctx.run("crash", move |_ctx| {
                c.fetch_add(1, Ordering::Relaxed);
                async { Err("crash".into()) }
            })?;
            let n = n.clone();
            let report = report.clone();
            ctx.run("neighbour", move |ctx| {
                let (n, report) = (n.clone(), report.clone());
                async move {
                    ctx.signal(Signal::Healthy);
                    let mut widest = 0;
                    let mut last = n.load(Ordering::Relaxed);
                    while last < 2_000 {
                        tokio::task::yield_now().await;
                        let now = n.load(Ordering::Relaxed);
                        widest = widest.max(now - last);
                        last = now;
                    }
                    if let Some(report) = report.lock().unwrap().take() {
                        let _ = report.send(widest);
                    }
                    ctx.cancelled().await;
                    Ok(())
                }
            })
        }));
    let widest = reported
        .await
        .expect("the neighbour ran beside the crash loop");
    assert!(
        (1..=4 * 128).contains(&widest),
        "{widest} restarts between two polls of the neighbour"
    );
    shut_down(sup).await;
}

/// A node restarted at once in its own task is not polled again by the wake that
/// cancelling its ended incarnation sends (to the task's watch of that incarnation's
/// token): the next incarnation is polled once, and then only when something it waits on
/// fires.
#[tokio::test(start_paused = true)]
async fn a_restarted_incarnation_is_not_polled_again_by_its_predecessors_end() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Poll;

    let starts = Arc::new(AtomicUsize::new(0));
    let polls = Arc::new(AtomicUsize::new(0));
    let fail = Arc::new(tokio::sync::Notify::new());
    let (s, p, f) = (starts.clone(), polls.clone(), fail.clone());
    let sup = Supervisor::builder()
        .backoff(supervisor::Backoff::none())
        .start(tree(move |ctx| {
            let (s, p, f) = (s.clone(), p.clone(), f.clone());
            ctx.run("node", move |ctx: Context| {
                let first = s.fetch_add(1, Ordering::SeqCst) == 0;
                let (p, f) = (p.clone(), f.clone());
                async move {
                    ctx.signal(Signal::Healthy);
                    if first {
                        f.notified().await;
                        return Err("failed on command".into());
                    }
                    let counting = std::future::poll_fn(|_| {
                        p.fetch_add(1, Ordering::SeqCst);
                        Poll::<()>::Pending
                    });
                    tokio::select! {
                        () = counting => {}
                        () = ctx.cancelled() => {}
                    }
                    Ok(())
                }
            })
        }));
    sup.settled().await;
    fail.notify_one();
    sup.settled().await;
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    assert_eq!(
        polls.load(Ordering::SeqCst),
        1,
        "polled once after its start"
    );
    shut_down(sup).await;
}

/// A crash loop runs its incarnations in one task, several in a poll, under a routing
/// entered once for the poll: each one's `tracing` events still land at the node's DN,
/// under every kind of application subscriber (none, one with the log tree's layer, one
/// without it), and the routing ends with the poll. (Every incarnation of a node routes to
/// the same DN, so this pins what a user sees, not which incarnation the route names.)
#[tokio::test(start_paused = true)]
async fn the_incarnations_of_a_crash_loop_each_log_at_their_dn() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    for subscriber in ["none", "with the layer", "without the layer"] {
        let _guard = match subscriber {
            "none" => None,
            "with the layer" => Some(crate::support::capture().1),
            _ => Some(crate::support::capture_without_layer().1),
        };
        let attempts = Arc::new(AtomicUsize::new(0));
        let a = attempts.clone();
        let sup = Supervisor::builder()
            .backoff(supervisor::Backoff::none())
            .start(tree(move |ctx| {
                let a = a.clone();
                ctx.run("crash", move |ctx: Context| {
                    let n = a.fetch_add(1, Ordering::Relaxed);
                    async move {
                        tracing::info!("attempt {n}");
                        if n < 5 {
                            return Err("crash".into());
                        }
                        ctx.signal(Signal::Healthy);
                        ctx.cancelled().await;
                        Ok(())
                    }
                })
            }));
        sup.settled().await;
        tracing::info!("outside any runnable");
        let said: Vec<String> = crate::support::texts(&sup.log_tree(), "root.crash")
            .into_iter()
            .filter(|m| !m.starts_with("returned error"))
            .collect();
        let expected: Vec<String> = (0..=5).map(|n| format!("attempt {n}")).collect();
        assert_eq!(said, expected, "with {subscriber}");
        let everywhere = sup
            .log_tree()
            .read(
                "",
                supervisor::logtree::ReadOptions::new()
                    .backlog_all()
                    .with_children(),
            )
            .unwrap()
            .backlog;
        assert!(
            !everywhere
                .iter()
                .any(|e| e.message() == "outside any runnable"),
            "with {subscriber}: the routing ended with the poll"
        );
        shut_down(sup).await;
    }
}
