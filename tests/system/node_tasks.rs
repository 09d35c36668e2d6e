//! `Context::spawn`: a task that belongs to its node (DESIGN §15).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor::{Context, Ended, Signal, Supervisor};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::support::{DropTime, serve, shut_down, texts};

#[tokio::test(start_paused = true)]
async fn a_nodes_task_logs_at_its_dn_and_counts_toward_settled() {
    let go = Arc::new(Notify::new());
    let g = go.clone();
    let sup = Supervisor::new(move |ctx: Context| {
        let g = g.clone();
        async move {
            ctx.run("worker", move |ctx: Context| {
                let g = g.clone();
                async move {
                    let handle = ctx.spawn(async move {
                        g.notified().await;
                        tracing::info!("from the worker's task");
                        7
                    });
                    ctx.signal(Signal::Healthy);
                    assert_eq!(handle.await.expect("it finished"), 7);
                    tracing::info!("the task said 7");
                    ctx.cancelled().await;
                    Ok(())
                }
            })?;
            serve(ctx).await
        }
    });
    sup.settled().await;
    go.notify_one();
    // The task's wake is the supervisor's work: settled waits for it, and for what follows.
    sup.settled().await;
    let logged = texts(&sup.log_tree(), "root.worker");
    assert_eq!(logged, ["from the worker's task", "the task said 7"]);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_nodes_task_is_aborted_its_grace_after_the_cancellation_and_wait_outlasts_it() {
    let dropped = DropTime::default();
    let (tx, rx) = oneshot::channel();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let d = dropped.clone();
    let sup = Supervisor::builder()
        .shutdown_grace(Duration::from_secs(2))
        .start(move |ctx: Context| {
            let (d, tx) = (d.clone(), tx.clone());
            async move {
                let guard = d.guard();
                // Ignores every cancellation: only the abort stops it.
                let handle = ctx.spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                });
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(handle);
                }
                serve(ctx).await
            }
        });
    let handle = rx.await.unwrap();
    sup.settled().await;
    let cancelled = Instant::now();
    sup.cancel();
    let probe = sup.clone();
    assert_eq!(sup.wait().await, Ended::Cancelled);
    let at = dropped.at("the task");
    assert_eq!(at - cancelled, Duration::from_secs(2));
    assert!(handle.await.unwrap_err().is_cancelled());
    assert!(probe.live_runnables().is_empty());
}

/// A node's runnable that spawns a task ignoring every cancellation, hands out its token
/// (before the spawn or after it), and returns: cancelling that token afterwards still
/// reaches the task, which is aborted its grace later.
async fn token_after_return(token_first: bool) {
    let dropped = DropTime::default();
    let (tx, rx) = oneshot::channel();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let d = dropped.clone();
    let sup = Supervisor::builder()
        .shutdown_grace(Duration::from_secs(2))
        .start(move |ctx: Context| {
            let (d, tx) = (d.clone(), tx.clone());
            async move {
                let early = token_first.then(|| ctx.cancellation_token());
                let guard = d.guard();
                let handle = ctx.spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                });
                // Let the task be polled (and wait) before the token exists.
                tokio::task::yield_now().await;
                let token = early.unwrap_or_else(|| ctx.cancellation_token());
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send((handle, token));
                }
                ctx.signal(Signal::Healthy);
                ctx.signal(Signal::Done);
                Ok(())
            }
        });
    let (handle, token) = rx.await.unwrap();
    sup.settled().await;
    assert!(!handle.is_finished());
    let cancelled = Instant::now();
    token.cancel();
    let aborted = handle.await.unwrap_err();
    assert!(aborted.is_cancelled());
    assert_eq!(dropped.at("the task") - cancelled, Duration::from_secs(2));
    sup.cancel();
    sup.wait().await;
}

#[tokio::test(start_paused = true)]
async fn a_token_handed_out_before_the_spawn_reaches_the_task_after_the_runnable_returned() {
    token_after_return(true).await;
}

#[tokio::test(start_paused = true)]
async fn a_token_handed_out_after_the_spawn_reaches_the_task_after_the_runnable_returned() {
    token_after_return(false).await;
}
