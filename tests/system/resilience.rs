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
            let ping_rx = ping_rx.clone();
            ctx.run_group(
                Group::new()
                    .add("one", move |ctx: Context| {
                        let ping_rx = ping_rx.clone();
                        async move {
                            ctx.signal(Signal::Healthy);
                            let mut rx = ping_rx.lock().await;
                            loop {
                                tokio::select! {
                                    () = ctx.cancelled() => return Ok(()),
                                    Some(reply) = rx.recv() => { let _ = reply.send(()); }
                                }
                            }
                        }
                    })
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
    for round in 0..20 {
        let (reply_tx, reply_rx) = oneshot::channel();
        let answered = tokio::time::timeout(Duration::from_secs(2), async {
            ping_tx.send(reply_tx).await.expect("one is gone");
            reply_rx.await
        })
        .await;
        assert!(matches!(answered, Ok(Ok(()))), "round {round}: no answer");
    }
    let five_children = sup
        .states()
        .keys()
        .filter(|dn| dn.starts_with("root.five."))
        .count();
    assert!(five_children > 0);
    shut_down(sup).await;
}
