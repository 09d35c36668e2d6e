use std::time::Duration;

use supervisor::{Context, Group, Signal, Supervisor};
use tokio::sync::{mpsc, oneshot};

use crate::support::{serve, shut_down, tree};

/// A healthy runnable keeps answering while its neighbours signal wrongly, spin without
/// ever waiting, and start children without end. Real time on a multi-thread runtime, since
/// a spinning runnable never lets paused time advance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_runnable_keeps_answering_next_to_misbehaving_ones() {
    let (ping_tx, ping_rx) = mpsc::channel::<oneshot::Sender<()>>(1);
    let ping_rx = std::sync::Arc::new(tokio::sync::Mutex::new(ping_rx));
    let sup = Supervisor::builder()
        .shutdown_grace(Duration::from_millis(200))
        .start(tree(move |ctx| {
            ctx.run_group(
                Group::new()
                    .add("one", answering(ping_rx.clone()))
                    .add("one_sibling", serve),
            )?;
            // Signals Done without Healthy.
            ctx.run("two", |ctx: Context| async move {
                ctx.signal(Signal::Done);
                Ok(())
            })?;
            // Signals Healthy twice.
            ctx.run("three", |ctx: Context| async move {
                ctx.signal(Signal::Healthy);
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                Ok(())
            })?;
            // Spins, never waiting and ignoring cancellation.
            ctx.run("four", |_ctx: Context| async move {
                loop {
                    tokio::task::yield_now().await;
                }
            })?;
            // Starts children forever.
            ctx.run("five", |ctx: Context| async move {
                for i in 0u64.. {
                    ctx.run(&format!("r{i}"), serve)?;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok(())
            })
        }));
    answers(&ping_tx, Duration::from_secs(2)).await;
    let five_children = sup
        .states()
        .keys()
        .filter(|dn| dn.starts_with("root.five."))
        .count();
    assert!(five_children > 0);
    shut_down(sup).await;
}

/// A healthy runnable keeps answering within a bound while one neighbour logs as fast as it
/// can and another blocks its worker thread for long stretches. Two worker threads: the
/// blocked one loses its queue to the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_runnable_keeps_answering_next_to_a_flood_and_a_blocker() {
    const BOUND: Duration = Duration::from_secs(2);
    let (ping_tx, ping_rx) = mpsc::channel::<oneshot::Sender<()>>(1);
    let ping_rx = std::sync::Arc::new(tokio::sync::Mutex::new(ping_rx));
    let sup = Supervisor::builder()
        .shutdown_grace(Duration::from_millis(500))
        .start(tree(move |ctx| {
            ctx.run("healthy", answering(ping_rx.clone()))?;
            ctx.run("flood", |ctx: Context| async move {
                ctx.signal(Signal::Healthy);
                let mut n = 0u64;
                while !ctx.is_cancelled() {
                    tracing::info!(n, "flooding the log tree");
                    n += 1;
                    if n.is_multiple_of(1000) {
                        tokio::task::yield_now().await;
                    }
                }
                Ok(())
            })?;
            ctx.run("blocker", |ctx: Context| async move {
                ctx.signal(Signal::Healthy);
                while !ctx.is_cancelled() {
                    // Blocks the worker thread it runs on: a programming error.
                    std::thread::sleep(Duration::from_millis(100));
                    tokio::task::yield_now().await;
                }
                Ok(())
            })
        }));
    answers(&ping_tx, BOUND).await;
    let usage = sup.log_tree().usage();
    assert!(
        usage.entries <= 8192 + 64,
        "the flood is bounded by retention: {usage:?}"
    );
    shut_down(sup).await;
}

type Pings = std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<oneshot::Sender<()>>>>;

/// The healthy runnable: it answers every ping until cancelled.
fn answering(pings: Pings) -> impl supervisor::Runnable {
    move |ctx: Context| {
        let pings = pings.clone();
        async move {
            ctx.signal(Signal::Healthy);
            let mut rx = pings.lock().await;
            loop {
                tokio::select! {
                    () = ctx.cancelled() => return Ok(()),
                    Some(reply) = rx.recv() => { let _ = reply.send(()); }
                }
            }
        }
    }
}

/// Pings the healthy runnable 20 times; each answer must come within `bound`.
async fn answers(ping: &mpsc::Sender<oneshot::Sender<()>>, bound: Duration) {
    for round in 0..20 {
        let (reply_tx, reply_rx) = oneshot::channel();
        let answered = tokio::time::timeout(bound, async {
            ping.send(reply_tx)
                .await
                .expect("the healthy runnable is gone");
            reply_rx.await
        })
        .await;
        assert!(
            matches!(answered, Ok(Ok(()))),
            "round {round}: no answer within {bound:?}"
        );
    }
}
