//! Fault injection at scale: 10,000 runnables in groups of 4 under 100 parents, hit by
//! random failures, panics, illegal signals and runnables that hang past the grace period.
//! Paused time: backoff and grace periods pass without waiting, deterministically.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use supervisor::logtree::ReadOptions;
use supervisor::{Context, Ended, Group, NodeState, Signal, Supervisor};
use tokio::sync::mpsc;

const PARENTS: usize = 100;
const GROUPS: usize = 25; // of 4: 100 children per parent, 10,000 in all
const MEMBERS: usize = 4;

#[derive(Clone, Copy, Debug)]
enum Fault {
    Fail,
    Panic,
    SignalWrongly,
    HangPastGrace,
}

/// Registry of the current incarnation's command channel, per member.
type Controls = Arc<std::sync::Mutex<Vec<Option<mpsc::UnboundedSender<Fault>>>>>;

fn member(index: usize, controls: Controls) -> impl supervisor::Runnable {
    move |ctx: Context| {
        let controls = controls.clone();
        async move {
            let (tx, mut rx) = mpsc::unbounded_channel();
            controls.lock().unwrap()[index] = Some(tx);
            ctx.signal(Signal::Healthy);
            tracing::debug!("member {index} up");
            let fault = tokio::select! {
                () = ctx.cancelled() => return Ok(()),
                f = rx.recv() => f,
            };
            match fault {
                Some(Fault::Fail) | None => Err("injected failure".into()),
                Some(Fault::Panic) => panic!("injected panic"),
                Some(Fault::SignalWrongly) => {
                    ctx.signal(Signal::Healthy);
                    ctx.cancelled().await;
                    Ok(())
                }
                Some(Fault::HangPastGrace) => {
                    ctx.logger().warning("hanging on purpose");
                    std::future::pending().await
                }
            }
        }
    }
}

fn tree(controls: Controls) -> impl supervisor::Runnable {
    move |ctx: Context| {
        let controls = controls.clone();
        async move {
            for p in 0..PARENTS {
                let controls = controls.clone();
                ctx.run(&format!("p{p}"), move |ctx: Context| {
                    let controls = controls.clone();
                    async move {
                        for g in 0..GROUPS {
                            let mut group = Group::new();
                            for m in 0..MEMBERS {
                                let index = (p * GROUPS + g) * MEMBERS + m;
                                group = group
                                    .add(&format!("g{g}m{m}"), member(index, controls.clone()));
                            }
                            ctx.run_group(group)?;
                        }
                        ctx.signal(Signal::Healthy);
                        ctx.cancelled().await;
                        Ok(())
                    }
                })?;
            }
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        }
    }
}

/// A tiny deterministic generator, so that a failing storm can be replayed.
struct Lcg(AtomicU64);

impl Lcg {
    fn next(&self, bound: usize) -> usize {
        let x = self
            .0
            .load(Ordering::Relaxed)
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0.store(x, Ordering::Relaxed);
        ((x >> 33) as usize) % bound
    }
}

fn unhealthy(sup: &Supervisor) -> Vec<(String, NodeState)> {
    sup.states()
        .into_iter()
        .filter(|(_, s)| *s != NodeState::Healthy)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_storm_of_faults_leaves_every_group_healthy_and_nothing_grown() {
    let n = PARENTS * GROUPS * MEMBERS;
    let controls: Controls = Arc::new(std::sync::Mutex::new(vec![None; n]));
    let tasks = tokio::runtime::Handle::current().metrics();
    let tasks_before = tasks.num_alive_tasks();
    let sup = Supervisor::builder()
        .shutdown_grace(Duration::from_secs(1))
        .start(tree(controls.clone()));
    sup.settled().await;
    assert!(unhealthy(&sup).is_empty());
    let nodes_before = sup.states().len();
    assert_eq!(nodes_before, 1 + PARENTS + n);
    let tasks_up = tasks.num_alive_tasks();
    assert_eq!(tasks_up, tasks_before + nodes_before);

    let rng = Lcg(AtomicU64::new(7));
    let faults = [
        Fault::Fail,
        Fault::Panic,
        Fault::SignalWrongly,
        Fault::HangPastGrace,
    ];
    let mut injected = 0;
    for _round in 0..20 {
        for _ in 0..50 {
            let index = rng.next(n);
            let fault = faults[rng.next(faults.len())];
            let sent = controls.lock().unwrap()[index]
                .clone()
                .is_some_and(|tx| tx.send(fault).is_ok());
            if sent {
                injected += 1;
            }
        }
        sup.settled().await;
        let unhealthy = unhealthy(&sup);
        assert!(unhealthy.is_empty(), "not healthy again: {unhealthy:?}");
    }
    assert!(injected >= 900, "{injected} faults injected");
    // Nothing grew: the same nodes, the same tasks, the log tree within its bounds.
    assert_eq!(sup.states().len(), nodes_before);
    assert_eq!(tasks.num_alive_tasks(), tasks_up);
    let usage = sup.log_tree().usage();
    assert!(usage.bytes <= 64 << 20, "{usage:?}");
    let failures = sup
        .log_tree()
        .read("supervisor", ReadOptions::new().backlog_all())
        .unwrap()
        .backlog
        .len();
    assert!(failures > 0 && failures <= 8192, "{failures}");

    // Shutdown under load: 200 more runnables hang, then the tree is cancelled. Everything
    // is gone after exactly the grace period (1 s here): the hanging ones are aborted then,
    // the others return at once.
    for _ in 0..200 {
        let index = rng.next(n);
        if let Some(tx) = controls.lock().unwrap()[index].clone() {
            let _ = tx.send(Fault::HangPastGrace);
        }
    }
    // The hanging runnables have taken their command and wait: the tree is settled.
    sup.settled().await;
    let started = tokio::time::Instant::now();
    sup.cancel();
    let probe = sup.clone();
    assert_eq!(sup.wait().await, Ended::Cancelled);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "aborted after the grace period"
    );
    assert!(probe.live_runnables().is_empty());
    assert_eq!(tasks.num_alive_tasks(), tasks_before, "no task left");
}
