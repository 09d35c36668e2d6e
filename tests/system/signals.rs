use supervisor::{Cancelled, Context, Group, NodeState, Signal, Supervisor};
use tracing::Level;

use crate::support::{Cmd, Recorder, Remote, capture, shut_down, tree};

/// Runs `misbehaving` next to a well-behaved sibling and returns the first failure logged
/// for it, after checking that it died and that the sibling was cancelled and restarted.
async fn first_failure(
    misbehaving: impl supervisor::Runnable,
    expected_history: &[NodeState],
) -> String {
    let (logs, _guard) = capture();
    let recorder = Recorder::default();
    let sibling = Remote::healthy();
    let s = sibling.clone();
    let misbehaving = std::sync::Arc::new(misbehaving);
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(move |ctx| {
            let m = misbehaving.clone();
            ctx.run_group(
                Group::new()
                    .add("bad", move |ctx: Context| m(ctx))
                    .add("sibling", s.runnable()),
            )
        }));
    recorder.wait_for("root.bad", NodeState::Dead).await;
    recorder
        .wait_for_nth("root.sibling", NodeState::Healthy, 2)
        .await;
    let history = recorder.history("root.bad");
    assert_eq!(&history[..expected_history.len()], expected_history);
    assert!(sibling.starts() >= 2, "the sibling was restarted");
    shut_down(sup).await;
    logs.records()
        .into_iter()
        .find(|r| r.target == "supervisor" && r.level == Level::ERROR)
        // The crash report's headline.
        .map(|r| r.message.lines().next().unwrap_or_default().to_owned())
        .expect("a failure was logged")
}

use NodeState::{Dead, Healthy, New};

#[tokio::test(start_paused = true)]
async fn healthy_twice_fails_the_node() {
    let msg = first_failure(
        |ctx: Context| async move {
            ctx.signal(Signal::Healthy);
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        },
        &[New, Healthy, Dead],
    )
    .await;
    assert_eq!(
        msg,
        "root.bad failed: signalled Healthy while HEALTHY: illegal (Healthy is allowed only from NEW)"
    );
}

#[tokio::test(start_paused = true)]
async fn done_before_healthy_fails_the_node() {
    let msg = first_failure(
        |ctx: Context| async move {
            ctx.signal(Signal::Done);
            Ok(())
        },
        &[New, Dead],
    )
    .await;
    assert_eq!(
        msg,
        "root.bad failed: signalled Done while NEW: illegal (Done is allowed only from HEALTHY)"
    );
}

#[tokio::test(start_paused = true)]
async fn done_twice_fails_the_node() {
    let msg = first_failure(
        |ctx: Context| async move {
            ctx.signal(Signal::Healthy);
            ctx.signal(Signal::Done);
            ctx.signal(Signal::Done);
            Ok(())
        },
        &[New, Healthy, NodeState::Done, Dead],
    )
    .await;
    assert!(msg.contains("signalled Done while DONE: illegal"), "{msg}");
}

#[tokio::test(start_paused = true)]
async fn returning_ok_while_healthy_is_a_failure() {
    let msg = first_failure(
        |ctx: Context| async move {
            ctx.signal(Signal::Healthy);
            Ok(())
        },
        &[New, Healthy, Dead],
    )
    .await;
    assert!(
        msg.starts_with("root.bad failed: returned Ok while HEALTHY"),
        "{msg}"
    );
}

#[tokio::test(start_paused = true)]
async fn returning_ok_while_new_is_a_failure() {
    let msg = first_failure(|_ctx: Context| async { Ok(()) }, &[New, Dead]).await;
    assert!(
        msg.starts_with("root.bad failed: returned Ok while NEW"),
        "{msg}"
    );
}

#[tokio::test(start_paused = true)]
async fn returning_an_error_is_a_failure_with_its_message() {
    let msg = first_failure(
        |_ctx: Context| async { Err("disk on fire".into()) },
        &[New, Dead],
    )
    .await;
    assert_eq!(msg, "root.bad failed: returned error: disk on fire");
}

#[tokio::test(start_paused = true)]
async fn the_cancellation_error_after_cancel_ends_canceled_and_others_end_dead() {
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(|ctx| {
            ctx.run("polite", |ctx: Context| async move {
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                Err(Cancelled.into())
            })?;
            ctx.run("grumpy", |ctx: Context| async move {
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                Err("shutting down badly".into())
            })?;
            ctx.run("done", |ctx: Context| async move {
                ctx.signal(Signal::Healthy);
                ctx.signal(Signal::Done);
                ctx.cancelled().await;
                Ok(())
            })
        }));
    sup.settled().await;
    let probe = sup.clone();
    sup.cancel();
    sup.wait().await;
    let states = probe.states();
    assert_eq!(states["root.polite"], NodeState::Canceled);
    assert_eq!(states["root.grumpy"], NodeState::Dead);
    // Signalled Done, then returned Ok: Done, even though it was cancelled meanwhile.
    assert_eq!(states["root.done"], NodeState::Done);
}

#[tokio::test(start_paused = true)]
async fn an_illegal_signal_fails_a_node_that_keeps_running() {
    let bad = Remote::healthy().ignoring_cancel();
    let recorder = Recorder::default();
    let b = bad.clone();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(move |ctx| ctx.run("bad", b.runnable())));
    sup.settled().await;
    bad.send(Cmd::Signal(Signal::Healthy));
    recorder.wait_for("root.bad", NodeState::Dead).await;
    assert!(bad.context().is_cancelled());
    assert!(sup.live_runnables().contains(&"root.bad".to_owned()));
    // Whatever it returns now, it stays Dead, and is then restarted.
    bad.send(Cmd::Return);
    sup.settled().await;
    assert_eq!(bad.starts(), 2);
    assert_eq!(
        recorder.history("root.bad"),
        [New, Healthy, Dead, New, Healthy]
    );
    shut_down(sup).await;
}

/// A real SIGTERM, sent to this test process: the handler is installed when
/// `shutdown_signal` is called, so a signal sent right after is not lost, and does not kill
/// the process.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_becomes_a_graceful_shutdown() {
    use rustix::process::{Signal as Raw, getpid, kill_process};
    use supervisor::{Ended, ShutdownSignal, shutdown_signal};

    let sup = Supervisor::new(|ctx: supervisor::Context| async move {
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    });
    let stop = shutdown_signal();
    kill_process(getpid(), Raw::TERM).unwrap();
    assert_eq!(stop.await, ShutdownSignal::Terminate);
    sup.cancel();
    assert_eq!(sup.wait().await, Ended::Cancelled);
}
