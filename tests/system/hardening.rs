//! Faults that once wedged a node or broke a promise of DESIGN.md (issue "Hardening"): user
//! code that panics where the supervisor formats or drops it, stale contexts during a
//! backoff, runnables that block past their grace, self-cancellation, and children started
//! from off the runtime.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use supervisor::{Cancelled, Context, Ended, NodeState, RunError, Signal, Supervisor};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::support::{Cmd, Recorder, Remote, serve, shut_down, state, texts, tree};

/// An error whose `Display` panics.
#[derive(Debug)]
struct UnprintableError;

impl fmt::Display for UnprintableError {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Display of UnprintableError")
    }
}

impl StdError for UnprintableError {}

/// An error whose `source()` panics.
#[derive(Debug)]
struct BadSourceError;

impl fmt::Display for BadSourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bad source")
    }
}

impl StdError for BadSourceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        panic!("source() of BadSourceError")
    }
}

/// An error (a cancellation, if `cancellation`) whose `Drop` panics.
#[derive(Debug)]
struct PanicsOnDrop {
    cancellation: Option<Cancelled>,
}

impl fmt::Display for PanicsOnDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("panics on drop")
    }
}

impl StdError for PanicsOnDrop {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cancellation.as_ref().map(|c| c as _)
    }
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("Drop of PanicsOnDrop")
    }
}

/// A runnable that fails with the error `make` returns on its first start, then serves.
fn fails_once_with(
    starts: Arc<AtomicUsize>,
    make: fn() -> supervisor::Error,
) -> impl supervisor::Runnable {
    move |ctx: Context| {
        let first = starts.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                return Err(make());
            }
            serve(ctx).await
        }
    }
}

async fn fails_and_recovers(make: fn() -> supervisor::Error, reason: &str) {
    let starts = Arc::new(AtomicUsize::new(0));
    let s = starts.clone();
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(move |ctx| {
            ctx.run("x", fails_once_with(s.clone(), make))
        }));
    sup.settled().await;
    assert_eq!(starts.load(Ordering::SeqCst), 2, "restarted once");
    assert_eq!(state(&sup, "root.x"), NodeState::Healthy);
    assert_eq!(
        recorder.history("root.x"),
        [
            NodeState::New,
            NodeState::Dead,
            NodeState::New,
            NodeState::Healthy
        ]
    );
    let logged = texts(&sup.log_tree(), "root.x");
    assert!(
        logged.iter().any(|m| m.contains(reason)),
        "{reason:?} not logged at root.x: {logged:?}"
    );
    let status = sup.status();
    let x = status.get("root.x").unwrap();
    assert!(x.last_error.as_deref().unwrap().contains(reason));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn an_error_whose_display_panics_fails_its_node_only() {
    fails_and_recovers(
        || UnprintableError.into(),
        "returned an error that panicked when formatted or inspected: Display of UnprintableError",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_error_whose_source_panics_fails_its_node_only() {
    fails_and_recovers(
        || BadSourceError.into(),
        "panicked when formatted or inspected: source() of BadSourceError",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_error_whose_drop_panics_fails_its_node_only() {
    fails_and_recovers(
        || PanicsOnDrop { cancellation: None }.into(),
        "returned error: panics on drop; then dropping the error panicked: Drop of PanicsOnDrop",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_error_whose_drop_panics_still_lets_the_tree_end() {
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run("x", |ctx: Context| async move {
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Err(PanicsOnDrop {
                cancellation: Some(Cancelled),
            }
            .into())
        })
    }));
    sup.settled().await;
    let handle = sup.clone();
    sup.cancel();
    assert_eq!(sup.wait().await, Ended::Cancelled);
    assert!(handle.live_runnables().is_empty());
    // The drop's panic is a failure of that node, said in its reason.
    assert_eq!(state(&handle, "root.x"), NodeState::Dead);
    let logged = texts(&handle.log_tree(), "root.x");
    assert!(
        logged.iter().any(
            |m| m.contains("returned the cancellation error; then dropping the error panicked")
        ),
        "{logged:?}"
    );
    handle.settled().await;
}

/// Captured by a child's runnable: the first one panics when dropped, which happens when the
/// child is forgotten by its parent's restart.
struct PanicsWhenForgotten;

static FORGOTTEN_DROPS: AtomicUsize = AtomicUsize::new(0);

impl Drop for PanicsWhenForgotten {
    fn drop(&mut self) {
        if FORGOTTEN_DROPS.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("Drop of PanicsWhenForgotten")
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_forgotten_runnable_whose_drop_panics_does_not_stop_the_restart() {
    let starts = Arc::new(AtomicUsize::new(0));
    let s = starts.clone();
    let sup = Supervisor::new(tree(move |ctx| {
        let s = s.clone();
        ctx.run("parent", move |ctx: Context| {
            let first = s.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                let state = PanicsWhenForgotten;
                ctx.run("child", move |ctx: Context| {
                    let _keep = &state;
                    serve(ctx)
                })?;
                if first {
                    return Err("restart the parent, forgetting its child".into());
                }
                serve(ctx).await
            }
        })
    }));
    sup.settled().await;
    assert_eq!(starts.load(Ordering::SeqCst), 2, "the parent came back");
    assert_eq!(state(&sup, "root.parent"), NodeState::Healthy);
    assert_eq!(state(&sup, "root.parent.child"), NodeState::Healthy);
    let logged = texts(&sup.log_tree(), "supervisor");
    assert!(
        logged.iter().any(|m| m.contains(
            "the runnable of forgotten node root.parent.child panicked when dropped: \
             Drop of PanicsWhenForgotten"
        )),
        "{logged:?}"
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_context_kept_through_the_backoff_is_stale() {
    let x = Remote::silent();
    let recorder = Recorder::default();
    let r = x.clone();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(move |ctx| ctx.run("x", r.runnable())));
    sup.settled().await;
    let old = x.context();
    x.send(Cmd::Fail("fail once"));
    // Dead, and its restart waits for the backoff: the old context must not act now.
    recorder.wait_for("root.x", NodeState::Dead).await;
    assert_eq!(
        old.sub_logger("y").map(|_| ()),
        Err(RunError::Stale {
            dn: "root.x".into()
        })
    );
    assert!(matches!(old.run("z", serve), Err(RunError::Stale { .. })));
    sup.settled().await;
    assert_eq!(x.starts(), 2);
    // The new incarnation has every name free.
    let new = x.context();
    assert_eq!(new.run("y", serve), Ok(()));
    assert_eq!(new.run("z", serve), Ok(()));
    sup.settled().await;
    assert_eq!(state(&sup, "root.x.y"), NodeState::Healthy);
    shut_down(sup).await;
}

/// Real time on purpose: the runnable blocks its thread, which tokio's paused clock would not
/// see pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runnable_blocking_past_its_grace_is_recorded_dead_and_logged() {
    let grace = Duration::from_millis(50);
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .shutdown_grace(grace)
        .metrics(recorder.clone())
        .start(tree(|ctx| {
            ctx.run("blocker", |ctx: Context| async move {
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                // The misbehaviour under test: it blocks its thread, past its grace.
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            })
        }));
    recorder.wait_for("root.blocker", NodeState::Healthy).await;
    let handle = sup.clone();
    sup.cancel();
    assert_overran(sup, &recorder).await;
    let at_supervisor = texts(&handle.log_tree(), "supervisor");
    assert!(
        at_supervisor
            .iter()
            .any(|m| m.starts_with("root.blocker failed: overran its shutdown grace period by")),
        "{at_supervisor:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_self_cancelling_runnable_waits_out_its_backoff() {
    let (started, mut starts) = mpsc::unbounded_channel();
    let sup = Supervisor::new(tree(move |ctx| {
        let started = started.clone();
        ctx.run("quitter", move |ctx: Context| {
            let _ = started.send(Instant::now());
            async move {
                ctx.signal(Signal::Healthy);
                ctx.cancellation_token().cancel();
                Ok(())
            }
        })
    }));
    let mut times = Vec::new();
    while times.len() < 6 {
        times.push(starts.recv().await.unwrap());
    }
    // The default backoff: 500 ms, ±50 %, reset by Healthy, so every gap is at least 250 ms.
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(250), "restarted after {gap:?}");
    }
    let logged = texts(&sup.log_tree(), "supervisor");
    assert!(
        logged
            .iter()
            .any(|m| m.starts_with("restarting root.quitter after a backoff of")),
        "{logged:?}"
    );
    sup.cancel();
    sup.wait().await;
}

#[tokio::test(start_paused = true)]
async fn children_started_from_a_plain_thread_run_on_the_supervisors_runtime() {
    let sup = Supervisor::new(|ctx: Context| async move {
        let c = ctx.clone();
        let started = std::thread::spawn(move || c.run("from_thread", serve))
            .join()
            .unwrap();
        started?;
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    });
    sup.settled().await;
    assert_eq!(state(&sup, "root.from_thread"), NodeState::Healthy);
    assert_eq!(sup.live_runnables(), ["root", "root.from_thread"]);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn children_started_from_another_runtime_run_on_the_supervisors_runtime() {
    let sup = Supervisor::new(|ctx: Context| async move {
        let c = ctx.clone();
        let started = std::thread::spawn(move || {
            let other = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let started = other.block_on(async { c.run("from_other", serve) });
            // Were the child on this runtime, it would die with it.
            drop(other);
            started
        })
        .join()
        .unwrap();
        started?;
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    });
    sup.settled().await;
    assert_eq!(state(&sup, "root.from_other"), NodeState::Healthy);
    shut_down(sup).await;
}

/// The cancellation arrives while the runnable is blocked in the middle of a poll: the
/// supervisor timed the cancel, so the late return is still told apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runnable_blocked_when_cancelled_and_returning_late_is_recorded_dead() {
    let grace = Duration::from_millis(50);
    let recorder = Recorder::default();
    let (blocking, blocked) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let ends = std::sync::Mutex::new(Some((blocking, released)));
    let sup = Supervisor::builder()
        .shutdown_grace(grace)
        .metrics(recorder.clone())
        .start(tree(move |ctx| {
            let ends = std::sync::Mutex::new(ends.lock().unwrap().take());
            ctx.run("blocker", move |ctx: Context| {
                let ends = ends.lock().unwrap().take();
                async move {
                    ctx.signal(Signal::Healthy);
                    if let Some((blocking, released)) = ends {
                        // Blocks this worker thread until the test has cancelled the tree...
                        let _ = blocking.send(());
                        let _ = released.recv();
                        // ...and then, the misbehaviour under test, past the grace.
                        std::thread::sleep(grace * 2);
                    }
                    Ok(())
                }
            })
        }));
    // Wait (off the runtime's threads) until the runnable is inside its blocking call.
    tokio::task::spawn_blocking(move || blocked.recv().unwrap())
        .await
        .unwrap();
    sup.cancel();
    release.send(()).unwrap();
    assert_overran(sup, &recorder).await;
}

/// Waits for `sup`, cancelled, and checks that `root.blocker` was recorded as overrunning
/// its grace: `Dead`, its metrics told so last, and the reason at its DN.
async fn assert_overran(sup: Supervisor, recorder: &Recorder) {
    let handle = sup.clone();
    assert_eq!(sup.wait().await, Ended::Cancelled);
    assert_eq!(state(&handle, "root.blocker"), NodeState::Dead);
    let logged = texts(&handle.log_tree(), "root.blocker");
    assert!(
        logged
            .iter()
            .any(|m| m.starts_with("overran its shutdown grace period by")),
        "{logged:?}"
    );
    assert_eq!(
        recorder.history("root.blocker").last(),
        Some(&NodeState::Dead)
    );
}
