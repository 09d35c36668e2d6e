use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use supervisor::{Context, NodeState, Runnable, Signal, Supervisor};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use crate::support::{Cmd, Remote, serve, shut_down, state, tree};

#[tokio::test(start_paused = true)]
async fn a_runnable_waiting_on_its_own_timer_is_settled() {
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run("sleeper", |ctx: Context| async move {
            ctx.signal(Signal::Healthy);
            loop {
                tokio::select! {
                    () = ctx.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(3600)) => {}
                }
            }
        })
    }));
    let t0 = Instant::now();
    sup.settled().await;
    assert_eq!(
        Instant::now(),
        t0,
        "settled without waiting for the runnable's timer"
    );
    assert_eq!(state(&sup, "root.sleeper"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_pending_restart_is_work_left_to_do() {
    let one = Remote::healthy();
    let o = one.clone();
    let sup = Supervisor::new(tree(move |ctx| ctx.run("one", o.runnable())));
    sup.settled().await;
    let t0 = Instant::now();
    one.send(Cmd::Fail("x"));
    sup.settled().await;
    assert!(Instant::now() - t0 >= Duration::from_millis(250));
    assert_eq!(state(&sup, "root.one"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn settled_is_immediate_on_an_idle_tree_and_repeatable() {
    let sup = Supervisor::new(tree(|ctx| ctx.run("a", serve)));
    sup.settled().await;
    sup.settled().await;
    assert_eq!(state(&sup, "root.a"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn settled_waits_for_work_passed_between_runnables() {
    let (to_a, from_test) = mpsc::unbounded_channel::<u32>();
    let (to_b, from_a) = mpsc::unbounded_channel::<u32>();
    let (from_test, from_a) = (
        Arc::new(Mutex::new(from_test)),
        Arc::new(Mutex::new(from_a)),
    );
    let seen = Arc::new(AtomicU32::new(0));
    let s = seen.clone();
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run("a", forward(from_test.clone(), Some(to_b.clone()), None))?;
        ctx.run("b", forward(from_a.clone(), None, Some(s.clone())))
    }));
    sup.settled().await;
    for v in 1..=3 {
        to_a.send(v).unwrap();
        sup.settled().await;
        assert_eq!(seen.load(Ordering::SeqCst), v + 1);
    }
    shut_down(sup).await;
}

/// Receives numbers, yields, then passes each on plus one, or records it.
fn forward(
    rx: Arc<Mutex<mpsc::UnboundedReceiver<u32>>>,
    tx: Option<mpsc::UnboundedSender<u32>>,
    record: Option<Arc<AtomicU32>>,
) -> impl Runnable {
    move |ctx: Context| {
        let (rx, tx, record) = (rx.clone(), tx.clone(), record.clone());
        async move {
            ctx.signal(Signal::Healthy);
            let mut rx = rx.lock().await;
            loop {
                tokio::select! {
                    () = ctx.cancelled() => return Ok(()),
                    Some(v) = rx.recv() => {
                        tokio::task::yield_now().await;
                        if let Some(tx) = &tx {
                            tx.send(v + 1)?;
                        }
                        if let Some(record) = &record {
                            record.store(v, Ordering::SeqCst);
                        }
                    }
                }
            }
        }
    }
}
