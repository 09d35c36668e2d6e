use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use supervisor::{CancellationToken, Context, Ended, NodeState, Signal, Supervisor};
use tokio::time::Instant;
use tracing::Level;

use crate::support::{Cmd, Recorder, Remote, capture, serve, shut_down, state, tree};

#[tokio::test(start_paused = true)]
async fn cancel_then_wait_resolves_once_every_runnable_returned() {
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run("a", serve)?;
        ctx.run("b", |ctx: Context| async move {
            ctx.run("c", serve)?;
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        })
    }));
    sup.settled().await;
    sup.cancel();
    let probe = sup.clone();
    assert_eq!(sup.wait().await, Ended::Cancelled);
    assert!(probe.live_runnables().is_empty());
    let states = probe.states();
    assert_eq!(states["root"], NodeState::Done);
    for dn in ["root.a", "root.b", "root.b.c"] {
        assert_eq!(states[dn], NodeState::Canceled, "{dn}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_runnable_ignoring_cancellation_is_aborted_after_the_grace_period() {
    let (logs, _guard) = capture();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let sup = Supervisor::new(tree(move |ctx| {
        let flag = flag.clone();
        ctx.run("stubborn", move |_ctx: Context| {
            let on_drop = SetOnDrop(flag.clone());
            async move {
                let _on_drop = on_drop;
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            }
        })?;
        ctx.run("polite", serve)
    }));
    sup.settled().await;
    let t0 = Instant::now();
    sup.cancel();
    let probe = sup.clone();
    assert_eq!(sup.wait().await, Ended::Cancelled);
    assert_eq!(Instant::now() - t0, Duration::from_secs(5));
    assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
    assert_eq!(state(&probe, "root.stubborn"), NodeState::Dead);
    assert_eq!(state(&probe, "root.polite"), NodeState::Canceled);
    assert!(logs.saw(
        "supervisor",
        Level::ERROR,
        "root.stubborn failed: aborted: did not return within the shutdown grace period (5s)"
    ));
}

#[tokio::test(start_paused = true)]
async fn the_grace_period_is_configurable() {
    let stubborn = Remote::healthy().ignoring_cancel();
    let s = stubborn.clone();
    let sup = Supervisor::builder()
        .shutdown_grace(Duration::from_millis(300))
        .start(tree(move |ctx| ctx.run("stubborn", s.runnable())));
    sup.settled().await;
    let t0 = Instant::now();
    sup.cancel();
    sup.wait().await;
    assert_eq!(Instant::now() - t0, Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn an_aborted_runnable_is_restarted_when_the_tree_is_not_shutting_down() {
    let stubborn = Remote::healthy().ignoring_cancel();
    let failing = Remote::healthy();
    let (s, f) = (stubborn.clone(), failing.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_group(
            supervisor::Group::new()
                .add("stubborn", s.runnable())
                .add("failing", f.runnable()),
        )
    }));
    sup.settled().await;
    failing.send(Cmd::Fail("x"));
    sup.settled().await;
    // Failing restarts after its backoff; stubborn is aborted after the grace period and
    // ends Dead, but as it was already cancelled, its abort does not restart failing again.
    assert_eq!((stubborn.starts(), failing.starts()), (2, 2));
    let history = sup.status();
    assert_eq!(
        history
            .get("root.stubborn")
            .and_then(|s| s.last_error.clone())
            .as_deref(),
        Some(
            "aborted: did not return within the shutdown grace period (5s) after its context was cancelled"
        )
    );
    assert_eq!(state(&sup, "root.stubborn"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_tree_that_finishes_by_itself_ends_finished() {
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run("worker", |ctx: Context| async move {
            ctx.signal(Signal::Healthy);
            ctx.signal(Signal::Done);
            Ok(())
        })
    }));
    let probe = sup.clone();
    assert_eq!(sup.wait().await, Ended::Finished);
    assert_eq!(state(&probe, "root.worker"), NodeState::Done);
    assert!(!probe.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn the_start_token_cancels_the_tree_and_not_the_reverse() {
    let token = CancellationToken::new();
    let sup = Supervisor::builder()
        .cancel_token(token.clone())
        .start(tree(|ctx| ctx.run("a", serve)));
    sup.settled().await;
    token.cancel();
    assert_eq!(sup.wait().await, Ended::Cancelled);

    let token = CancellationToken::new();
    let sup = Supervisor::builder()
        .cancel_token(token.clone())
        .start(tree(|ctx| ctx.run("a", serve)));
    sup.cancel();
    sup.wait().await;
    assert!(!token.is_cancelled());
}

/// A cancellation that lands in the poll that has just polled the runnable's
/// `ctx.cancelled()` (which, polled by its own task, waits on nothing of its own) still
/// reaches the runnable at once, not after the grace period.
#[tokio::test(start_paused = true)]
async fn a_cancellation_landing_after_the_runnable_was_polled_still_reaches_it() {
    let token = CancellationToken::new();
    let trigger = token.clone();
    let sup = Supervisor::builder()
        .cancel_token(token)
        .start(tree(move |ctx| {
            let trigger = trigger.clone();
            ctx.run("late", move |ctx: Context| {
                let trigger = trigger.clone();
                async move {
                    ctx.signal(Signal::Healthy);
                    let mut cancelled = std::pin::pin!(ctx.cancelled());
                    std::future::poll_fn(|cx| {
                        if cancelled.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(());
                        }
                        trigger.cancel();
                        Poll::Pending
                    })
                    .await;
                    Ok(())
                }
            })
        }));
    let t0 = Instant::now();
    let probe = sup.clone();
    assert_eq!(sup.wait().await, Ended::Cancelled);
    assert_eq!(
        Instant::now() - t0,
        Duration::ZERO,
        "no grace period waited"
    );
    assert_eq!(state(&probe, "root.late"), NodeState::Canceled);
}

/// `ctx.cancelled()` awaited in another task, from a clone of the context, is woken there:
/// it is waiting (polled, pending) in that task before the tree is cancelled.
#[tokio::test(start_paused = true)]
async fn a_context_cancelled_awaited_in_another_task_is_woken() {
    let (events, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let sup = Supervisor::new(tree(move |ctx| {
        let events = events.clone();
        ctx.run("a", move |ctx: Context| {
            let (events, watcher) = (events.clone(), ctx.clone());
            tokio::spawn(async move {
                let mut cancelled = std::pin::pin!(watcher.cancelled());
                let pending = std::future::poll_fn(|cx| {
                    Poll::Ready(cancelled.as_mut().poll(cx).is_pending())
                })
                .await;
                let _ = events.send(if pending { "waiting" } else { "not waiting" });
                cancelled.await;
                let _ = events.send("woken");
            });
            serve(ctx)
        })
    }));
    assert_eq!(seen.recv().await, Some("waiting"));
    sup.cancel();
    let woken = tokio::time::timeout(Duration::from_secs(1), seen.recv()).await;
    assert_eq!(woken, Ok(Some("woken")), "woken by the cancellation");
    sup.wait().await;
}

/// A tree given a builder's token that finishes by itself ends `Finished`: the watch of
/// the token ends with the tree, and `wait` does not wait for the token.
#[tokio::test(start_paused = true)]
async fn a_tree_with_a_start_token_that_finishes_by_itself_ends_finished() {
    let token = CancellationToken::new();
    let sup = Supervisor::builder()
        .cancel_token(token.clone())
        .start(tree(|ctx| {
            ctx.run("worker", |ctx: Context| async move {
                ctx.signal(Signal::Healthy);
                ctx.signal(Signal::Done);
                Ok(())
            })
        }));
    assert_eq!(sup.wait().await, Ended::Finished);
    assert!(!token.is_cancelled());
}

/// A node that returns right after the builder's token is cancelled, before the token's
/// watch has cancelled the tree, is `Canceled`, not failed, and nothing restarts; its
/// context saw the cancellation at once.
#[tokio::test(start_paused = true)]
async fn a_node_returning_as_the_start_token_is_cancelled_is_canceled() {
    let token = CancellationToken::new();
    let trigger = token.clone();
    let saw = Arc::new(AtomicBool::new(false));
    let seen = saw.clone();
    let sup = Supervisor::builder()
        .cancel_token(token)
        .start(tree(move |ctx| {
            let (trigger, seen) = (trigger.clone(), seen.clone());
            ctx.run("quitter", move |ctx: Context| {
                let (trigger, seen) = (trigger.clone(), seen.clone());
                async move {
                    ctx.signal(Signal::Healthy);
                    trigger.cancel();
                    seen.store(ctx.is_cancelled(), Ordering::SeqCst);
                    Ok(())
                }
            })
        }));
    let probe = sup.clone();
    assert_eq!(sup.wait().await, Ended::Cancelled);
    assert!(saw.load(Ordering::SeqCst), "the context saw it at once");
    assert_eq!(state(&probe, "root.quitter"), NodeState::Canceled);
    let logged = crate::support::texts(&probe.log_tree(), "supervisor");
    assert!(
        !logged
            .iter()
            .any(|m| m.contains("failed") || m.contains("restarting")),
        "{logged:?}"
    );
}

/// The handed-out token, cancelled by another task than the node's, cancels the node and
/// its subtree: the child is `Canceled`, and the node is restarted after its backoff, as
/// one that cancelled itself.
#[tokio::test(start_paused = true)]
async fn a_handed_out_token_cancelled_elsewhere_cancels_the_node_and_its_subtree() {
    let (tokens, mut handed) = tokio::sync::mpsc::unbounded_channel();
    let (sup, recorder) = crate::support::recorded(tree(move |ctx| {
        let tokens = tokens.clone();
        ctx.run("node", move |ctx: Context| {
            let tokens = tokens.clone();
            async move {
                ctx.run("child", serve)?;
                ctx.signal(Signal::Healthy);
                let _ = tokens.send(ctx.cancellation_token());
                ctx.cancelled().await;
                Ok(())
            }
        })
    }));
    let token = handed.recv().await.unwrap();
    sup.settled().await;
    let t0 = Instant::now();
    tokio::spawn(async move { token.cancel() }).await.unwrap();
    recorder.wait_for_nth("root.node", NodeState::New, 2).await;
    assert!(
        Instant::now() - t0 >= Duration::from_millis(250),
        "after a backoff"
    );
    assert_eq!(
        recorder.history("root.node.child")[..3],
        [NodeState::New, NodeState::Healthy, NodeState::Canceled]
    );
    assert!(recorder.history("root.node").contains(&NodeState::Canceled));
    // The new incarnation's token is its own, and live.
    let fresh = handed.recv().await.unwrap();
    assert!(!fresh.is_cancelled());
    shut_down(sup).await;
    assert!(fresh.is_cancelled(), "cancelled with the tree");
}

/// A child that cancels its parent's handed-out token and returns, before the parent's
/// task has told the tree, is `Canceled` with its parent's cancellation, not failed: the
/// subtree inherits it from the moment of the exit, as it did from a token tree.
#[tokio::test(start_paused = true)]
async fn a_child_returning_on_its_parents_cancelled_token_is_canceled() {
    let (sup, recorder) = crate::support::recorded(tree(move |ctx| {
        ctx.run("parent", move |ctx: Context| async move {
            let token = ctx.cancellation_token();
            ctx.run("child", move |ctx: Context| {
                let token = token.clone();
                async move {
                    ctx.signal(Signal::Healthy);
                    tokio::task::yield_now().await;
                    token.cancel();
                    Ok(())
                }
            })?;
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        })
    }));
    recorder
        .wait_for_nth("root.parent", NodeState::New, 2)
        .await;
    assert_eq!(
        recorder.history("root.parent.child")[..3],
        [NodeState::New, NodeState::Healthy, NodeState::Canceled]
    );
    let logged = crate::support::texts(&sup.log_tree(), "supervisor");
    assert!(!logged.iter().any(|m| m.contains("failed")), "{logged:?}");
    shut_down(sup).await;
}

/// A token asked for once the context is cancelled is born cancelled.
#[tokio::test(start_paused = true)]
async fn a_token_handed_out_after_the_cancellation_is_cancelled() {
    let (answers, mut answered) = tokio::sync::mpsc::unbounded_channel();
    let sup = Supervisor::new(tree(move |ctx| {
        let answers = answers.clone();
        ctx.run("late", move |ctx: Context| {
            let answers = answers.clone();
            async move {
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                let _ = answers.send(ctx.cancellation_token().is_cancelled());
                Ok(())
            }
        })
    }));
    sup.settled().await;
    sup.cancel();
    assert_eq!(answered.recv().await, Some(true));
    sup.wait().await;
}

#[tokio::test(start_paused = true)]
async fn a_pending_restart_does_not_outlive_cancel() {
    let one = Remote::healthy();
    let recorder = Recorder::default();
    let o = one.clone();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .backoff(supervisor::Backoff::constant(Duration::from_secs(3600)))
        .start(tree(move |ctx| ctx.run("one", o.runnable())));
    sup.settled().await;
    one.send(Cmd::Fail("x"));
    recorder.wait_for("root.one", NodeState::Dead).await;
    let t0 = Instant::now();
    sup.cancel();
    let probe = sup.clone();
    sup.wait().await;
    assert_eq!(Instant::now(), t0, "waited for nothing");
    assert_eq!(state(&probe, "root.one"), NodeState::Canceled);
    assert_eq!(one.starts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_the_supervisor_spawned_outlives_wait() {
    let alive = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = alive.clone();
    let sup = Supervisor::builder()
        .shutdown_grace(Duration::from_millis(50))
        .start(tree(move |ctx| {
            for i in 0..100 {
                let a = a.clone();
                // Half of them ignore cancellation and must be aborted.
                let stubborn = i % 2 == 0;
                ctx.run(&format!("n{i}"), move |ctx: Context| {
                    let guard = CountAlive::new(a.clone());
                    async move {
                        let _guard = guard;
                        ctx.signal(Signal::Healthy);
                        if stubborn {
                            std::future::pending::<()>().await;
                        }
                        ctx.cancelled().await;
                        Ok(())
                    }
                })?;
            }
            Ok(())
        }));
    sup.settled().await;
    assert_eq!(alive.load(Ordering::SeqCst), 100);
    shut_down(sup).await;
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "every runnable's future was dropped"
    );
}

#[test]
fn starting_outside_a_runtime_is_an_error() {
    let err = Supervisor::builder().try_start(serve).unwrap_err();
    assert_eq!(err, supervisor::StartError::NoRuntime);
    assert!(err.to_string().contains("inside a tokio runtime"), "{err}");
}

#[test]
fn starting_without_a_time_driver_is_an_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = runtime.block_on(async { Supervisor::builder().try_start(serve).unwrap_err() });
    assert_eq!(err, supervisor::StartError::NoTimeDriver);
    assert!(err.to_string().contains("enable_time()"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_metrics_sink_does_not_break_the_tree() {
    struct Panicky;
    impl supervisor::Metrics for Panicky {
        fn notify_node_state(&self, dn: &str, _state: NodeState) {
            if dn == "root.a" {
                panic!("sink bug");
            }
        }
    }
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(Panicky)
        .metrics(recorder.clone())
        .start(tree(|ctx| ctx.run("a", serve)));
    sup.settled().await;
    assert_eq!(state(&sup, "root.a"), NodeState::Healthy);
    assert_eq!(
        recorder.history("root.a"),
        [NodeState::New, NodeState::Healthy]
    );
    shut_down(sup).await;
}

#[test]
#[should_panic(expected = "must be started from inside a tokio runtime")]
fn new_outside_a_runtime_panics_with_a_clear_message() {
    let _ = Supervisor::new(serve);
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct CountAlive(Arc<std::sync::atomic::AtomicUsize>);

impl CountAlive {
    fn new(count: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        CountAlive(count)
    }
}

impl Drop for CountAlive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// On two workers, with children returning while others are still being woken by the
/// tree's cancellation, nothing is restarted and every child ends `Canceled`. (The tree's
/// side, marking everything in one pass before any wake, is pinned by the tree's unit test
/// `cancelling_the_tree_marks_what_inherits_and_not_ordered_members`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_returning_as_the_tree_is_cancelled_is_never_restarted() {
    for _ in 0..10 {
        let sup = Supervisor::new(tree(|ctx| {
            for i in 0..500 {
                ctx.run(&format!("n{i}"), serve)?;
            }
            Ok(())
        }));
        sup.settled().await;
        let log = sup.log_tree();
        sup.cancel();
        assert_eq!(sup.clone().wait().await, Ended::Cancelled);
        let said = crate::support::texts(&log, "supervisor");
        assert!(
            !said.iter().any(|m| m.contains("restarting")),
            "nothing restarts once the tree is cancelled: {said:?}"
        );
        assert!(
            sup.states()
                .iter()
                .filter(|(dn, _)| *dn != "root")
                .all(|(_, s)| *s == NodeState::Canceled),
            "{:?}",
            sup.states()
        );
    }
}
