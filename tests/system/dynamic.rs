//! Dynamic groups: children started at any time, each on its own, gone once finished
//! (DESIGN §15).

use std::sync::Arc;
use std::time::Duration;

use supervisor::{
    Backoff, Context, DynamicSpec, Ended, InMemoryMetrics, Intensity, NodeState, Restart, RunError,
    Signal, Spec, Supervisor,
};
use tokio::time::Instant;

use crate::support::{Cmd, Recorder, Remote, host, hosted, serve, shut_down, state, texts};

fn started(sup: &Supervisor) -> Vec<String> {
    let mut dns: Vec<String> = sup
        .states()
        .into_keys()
        .filter(|dn| dn.starts_with("root.conns."))
        .collect();
    dns.sort();
    dns
}

#[tokio::test(start_paused = true)]
async fn children_start_from_another_task_while_the_parent_is_healthy() {
    let (sup, _host, group) = hosted(DynamicSpec::new()).await;
    sup.settled().await;
    assert_eq!(state(&sup, "root"), NodeState::Healthy);
    assert_eq!(state(&sup, "root.conns"), NodeState::Healthy);
    assert_eq!(group.dn(), "root.conns");
    assert!(group.is_empty());

    // From a task of the test's own, as a request handler would.
    let g = group.clone();
    let dns = tokio::spawn(async move {
        let a = g.start(|ctx: Context| async move {
            tracing::info!("serving");
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        });
        let b = g.start_named("device_7", serve);
        (a.unwrap(), b.unwrap())
    })
    .await
    .unwrap();
    assert_eq!(
        dns,
        ("root.conns.c1".to_owned(), "root.conns.device_7".to_owned())
    );
    sup.settled().await;
    assert_eq!(group.len(), 2);
    assert_eq!(state(&sup, "root.conns.c1"), NodeState::Healthy);
    assert_eq!(state(&sup, "root.conns.device_7"), NodeState::Healthy);
    assert_eq!(texts(&sup.log_tree(), "root.conns.c1"), ["serving"]);
    let status = sup.status();
    let conns = status.get("root.conns").unwrap();
    let dynamic = conns.dynamic.as_ref().expect("a dynamic group");
    assert_eq!((dynamic.children, dynamic.kind), (2, Restart::Temporary));
    assert!(
        status
            .to_string()
            .contains("[dynamic: 2 children, temporary]")
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_one_child_leaves_its_siblings_alone_and_the_child_leaves() {
    let (root, mut host) = host(DynamicSpec::new());
    let recorder = Recorder::default();
    let sup = Supervisor::builder().metrics(recorder.clone()).start(root);
    let group = host.next().await;
    let children: Vec<Remote> = (0..3).map(|_| Remote::healthy()).collect();
    for child in &children {
        group.start(child.runnable()).unwrap();
    }
    sup.settled().await;
    children[1].send(Cmd::Panic("a bad request"));
    sup.settled().await;

    assert_eq!(started(&sup), ["root.conns.c1", "root.conns.c3"]);
    assert_eq!(group.len(), 2);
    for dn in ["root.conns.c1", "root.conns.c3"] {
        assert_eq!(recorder.history(dn), [NodeState::New, NodeState::Healthy]);
    }
    assert_eq!(
        recorder.history("root.conns.c2"),
        [NodeState::New, NodeState::Healthy, NodeState::Dead]
    );
    assert_eq!(recorder.removed(), ["root.conns.c2"]);
    assert_eq!(children.iter().map(Remote::starts).sum::<usize>(), 3);
    let said = texts(&sup.log_tree(), "supervisor").join("\n");
    assert!(
        said.contains("root.conns.c2 failed: panicked: a bad request"),
        "{said}"
    );
    assert!(said.contains("not restarting root.conns.c2: it is temporary"));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn transient_children_restart_after_a_failure_and_leave_after_a_normal_end() {
    let spec = DynamicSpec::new().child(
        Spec::new()
            .restart(Restart::Transient)
            .backoff(Backoff::constant(Duration::from_secs(1))),
    );
    let (root, mut host) = host(spec);
    let recorder = Recorder::default();
    let sup = Supervisor::builder().metrics(recorder.clone()).start(root);
    let group = host.next().await;
    let child = Remote::healthy();
    group.start(child.runnable()).unwrap();
    sup.settled().await;

    child.send(Cmd::Fail("lost the link"));
    recorder.wait_for("root.conns.c1", NodeState::Dead).await;
    // Waiting out its backoff, it still holds its place.
    assert_eq!(group.len(), 1);
    sup.settled().await;
    let starts = child.start_times();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1] - starts[0], Duration::from_secs(1));
    assert_eq!(state(&sup, "root.conns.c1"), NodeState::Healthy);

    child.finish();
    sup.settled().await;
    assert!(started(&sup).is_empty(), "{:?}", sup.states());
    assert!(group.is_empty());
    assert_eq!(recorder.removed(), ["root.conns.c1"]);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn permanent_children_restart_even_after_returning() {
    let spec = DynamicSpec::new().child(Spec::new().restart(Restart::Permanent));
    let (sup, _host, group) = hosted(spec).await;
    let child = Remote::healthy();
    let sibling = Remote::healthy();
    group.start(child.runnable()).unwrap();
    group.start(sibling.runnable()).unwrap();
    sup.settled().await;
    child.send(Cmd::Return);
    sup.settled().await;
    tokio::time::advance(Duration::from_secs(1)).await;
    sup.settled().await;
    assert_eq!(child.starts(), 2);
    assert_eq!(sibling.starts(), 1, "one_for_one among dynamic children");
    assert_eq!(state(&sup, "root.conns.c1"), NodeState::Healthy);
    assert_eq!(sup.status().get("root.conns.c1").unwrap().restarts, 1);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_full_group_refuses_a_start_until_a_child_leaves() {
    let spec = DynamicSpec::new()
        .max_children(2)
        .child(Spec::new().restart(Restart::Transient));
    let (root, mut host) = host(spec);
    let recorder = Recorder::default();
    let sup = Supervisor::builder().metrics(recorder.clone()).start(root);
    let group = host.next().await;
    let (a, b) = (Remote::healthy(), Remote::healthy());
    group.start(a.runnable()).unwrap();
    group.start(b.runnable()).unwrap();
    let full = group.start(serve).unwrap_err();
    assert_eq!(
        full,
        RunError::Full {
            group: "root.conns".into(),
            max_children: 2
        }
    );
    assert!(full.to_string().contains("max_children of 2"), "{full}");
    sup.settled().await;

    // A child waiting out its backoff still counts.
    a.send(Cmd::Fail("once"));
    recorder.wait_for("root.conns.c1", NodeState::Dead).await;
    assert_eq!(group.len(), 2);
    assert!(matches!(group.start(serve), Err(RunError::Full { .. })));
    sup.settled().await;
    assert_eq!(a.starts(), 2);

    // One that has finished does not.
    b.finish();
    sup.settled().await;
    assert_eq!(group.len(), 1);
    assert_eq!(group.start(serve).unwrap(), "root.conns.c3");
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_parent_restart_cancels_and_forgets_its_dynamic_children_and_stales_the_handle() {
    let (root, mut host) = host(DynamicSpec::new());
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .start(root);
    let old = host.next().await;
    let children: Vec<Remote> = (0..3).map(|_| Remote::healthy()).collect();
    for child in &children {
        old.start(child.runnable()).unwrap();
    }
    sup.settled().await;

    host.fail.notify_one();
    sup.settled().await;
    // Cancelled with the parent, and gone before it started again.
    assert_eq!(
        recorder.history("root"),
        [
            NodeState::New,
            NodeState::Healthy,
            NodeState::Dead,
            NodeState::New,
            NodeState::Healthy
        ]
    );
    assert!(started(&sup).is_empty(), "{:?}", sup.states());
    let mut removed = recorder.removed();
    removed.sort();
    assert_eq!(removed, ["root.conns.c1", "root.conns.c2", "root.conns.c3"]);
    for dn in removed {
        assert_eq!(recorder.history(&dn).last(), Some(&NodeState::Canceled));
    }
    assert_eq!(
        old.start(serve),
        Err(RunError::Stale {
            dn: "root.conns".into()
        })
    );
    assert_eq!(old.len(), 0);

    let new = host.next().await;
    assert_eq!(new.start(serve).unwrap(), "root.conns.c1", "a new group");
    sup.settled().await;
    assert_eq!(state(&sup, "root.conns.c1"), NodeState::Healthy);
    assert!(matches!(old.start(serve), Err(RunError::Stale { .. })));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_group_is_closed() {
    let (root, mut host) = host(DynamicSpec::new());
    let sup = Supervisor::builder()
        .shutdown_grace(Duration::from_secs(5))
        .start(root);
    let group = host.next().await;
    let slow = Remote::healthy().ignoring_cancel();
    group.start(slow.runnable()).unwrap();
    sup.settled().await;
    sup.cancel();
    let closed = group.start(serve).unwrap_err();
    assert_eq!(
        closed,
        RunError::Closed {
            group: "root.conns".into()
        }
    );
    assert!(closed.to_string().contains("being cancelled"), "{closed}");
    slow.send(Cmd::Return);
    assert_eq!(sup.wait().await, Ended::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_group_whose_parent_is_restarting_is_closed_and_then_stale() {
    let (root, mut host) = host(DynamicSpec::new());
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .shutdown_grace(Duration::from_secs(5))
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .start(root);
    let group = host.next().await;
    let slow = Remote::healthy().ignoring_cancel();
    group.start(slow.runnable()).unwrap();
    sup.settled().await;
    host.fail.notify_one();
    // The parent has failed; its restart waits for the slow child to return.
    recorder.wait_for("root", NodeState::Dead).await;
    assert!(matches!(group.start(serve), Err(RunError::Closed { .. })));
    assert_eq!(group.len(), 1, "the slow child is still there");
    slow.send(Cmd::Return);
    let new = host.next().await;
    assert!(matches!(group.start(serve), Err(RunError::Stale { .. })));
    assert_eq!(new.start(serve).unwrap(), "root.conns.c1");
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_children_shut_down_in_parallel_within_the_grace() {
    const N: usize = 10_000;
    let (root, mut host) = host(DynamicSpec::new());
    let grace = Duration::from_secs(3);
    let sup = Supervisor::builder().shutdown_grace(grace).start(root);
    let group = host.next().await;
    for i in 0..N {
        // Half return when cancelled; half ignore it and are aborted at the grace.
        let stubborn = i % 2 == 0;
        group
            .start(move |ctx: Context| async move {
                ctx.signal(Signal::Healthy);
                if stubborn {
                    std::future::pending::<()>().await;
                }
                ctx.cancelled().await;
                Ok(())
            })
            .unwrap();
    }
    sup.settled().await;
    assert_eq!(group.len(), N);
    let cancelled = Instant::now();
    sup.cancel();
    let probe = sup.clone();
    assert_eq!(sup.wait().await, Ended::Cancelled);
    assert_eq!(
        Instant::now() - cancelled,
        grace,
        "one grace for all of them"
    );
    assert!(probe.live_runnables().is_empty());
    // Finished, they have left the tree.
    assert_eq!(probe.states().len(), 2, "{:?}", probe.states().len());
}

#[tokio::test(start_paused = true)]
async fn churn_leaves_only_the_live_children_and_their_logs() {
    let (root, mut host) = host(DynamicSpec::new());
    let metrics = InMemoryMetrics::default();
    let registry = prometheus::Registry::new();
    let sup = Supervisor::builder()
        .metrics(metrics.clone())
        .metrics(supervisor::PrometheusMetrics::new(&registry).unwrap())
        .start(root);
    let group = host.next().await;
    let keep = Remote::healthy();
    group.start_named("keep", keep.runnable()).unwrap();
    sup.settled().await;
    let series = |registry: &prometheus::Registry| -> usize {
        registry.gather().iter().map(|f| f.get_metric().len()).sum()
    };
    let before = (
        sup.states().len(),
        sup.log_tree().usage().dns,
        metrics.dns().len(),
        series(&registry),
    );

    for round in 0..100 {
        for i in 0..100 {
            // Each logs, and one in ten fails: its failure is logged at `supervisor` only.
            group
                .start(move |ctx: Context| async move {
                    ctx.signal(Signal::Healthy);
                    tracing::info!("job {round}.{i}");
                    ctx.sub_logger("detail")?.info("more");
                    if i % 10 == 0 {
                        return Err("a bad job".into());
                    }
                    ctx.signal(Signal::Done);
                    Ok(())
                })
                .unwrap();
        }
        sup.settled().await;
    }
    assert_eq!(group.len(), 1);
    let after = (
        sup.states().len(),
        sup.log_tree().usage().dns,
        metrics.dns().len(),
        series(&registry),
    );
    assert_eq!(after, before);
    assert_eq!(state(&sup, "root.conns.keep"), NodeState::Healthy);
    let said = texts(&sup.log_tree(), "supervisor").join("\n");
    assert!(said.contains("root.conns.c9991 failed: returned error: a bad job"));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn names_follow_the_rule_and_are_free_again_once_a_child_left() {
    let (sup, _host, group) = hosted(DynamicSpec::new()).await;
    assert!(matches!(
        group.start_named("Bad-Name", serve),
        Err(RunError::InvalidName { .. })
    ));
    let c2 = Remote::healthy();
    assert_eq!(
        group.start_named("c2", c2.runnable()).unwrap(),
        "root.conns.c2"
    );
    assert!(matches!(
        group.start_named("c2", serve),
        Err(RunError::NameTaken { .. })
    ));
    assert_eq!(group.start(serve).unwrap(), "root.conns.c1");
    assert_eq!(
        group.start(serve).unwrap(),
        "root.conns.c3",
        "c2 is passed over"
    );
    sup.settled().await;
    c2.finish();
    sup.settled().await;
    assert_eq!(group.start_named("c2", serve).unwrap(), "root.conns.c2");
    assert_eq!(group.start(serve).unwrap(), "root.conns.c4");
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn over_its_intensity_a_dynamic_group_fails_its_parent() {
    let spec = DynamicSpec::new()
        .child(
            Spec::new()
                .restart(Restart::Permanent)
                .backoff(Backoff::constant(Duration::ZERO)),
        )
        .intensity(Intensity::new(2, Duration::from_secs(10)).unwrap());
    let (root, mut host) = host(spec);
    let sup = Supervisor::builder()
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .start(root);
    let group = host.next().await;
    let flaky = Remote::healthy();
    let calm = Remote::healthy();
    group.start(flaky.runnable()).unwrap();
    group.start(calm.runnable()).unwrap();
    sup.settled().await;
    for _ in 0..2 {
        flaky.send(Cmd::Fail("flaky"));
        sup.settled().await;
    }
    assert_eq!(flaky.starts(), 3);
    assert_eq!(
        sup.status()
            .get("root.conns")
            .unwrap()
            .dynamic
            .as_ref()
            .unwrap()
            .restarts_in_window,
        Some(2)
    );
    flaky.send(Cmd::Fail("flaky"));
    sup.settled().await;
    let status = sup.status();
    let root = status.get("root").unwrap();
    assert_eq!((root.state, root.restarts), (NodeState::Healthy, 1));
    assert_eq!(
        root.last_error.as_deref(),
        Some(
            "too many restarts: 3 within 10s, more than its intensity allows (2 in 10s); \
             last failure: root.conns.c1: returned error: flaky"
        )
    );
    assert_eq!((flaky.starts(), calm.starts()), (3, 1));
    let _new = host.next().await;
    assert!(
        started(&sup).is_empty(),
        "both were forgotten with the parent"
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn making_a_group_follows_the_rules_of_children() {
    // The checks run inside the root: a failed one panics, and the panic reaches `wait`.
    let sup = Supervisor::builder()
        .propagate_panics()
        .start(|ctx: Context| async move {
            ctx.run("worker", serve)?;
            assert!(matches!(
                ctx.dynamic("worker", DynamicSpec::new()),
                Err(RunError::NameTaken { .. })
            ));
            let zero = ctx.dynamic("zero", DynamicSpec::new().max_children(0));
            let Err(RunError::InvalidSpec { error, .. }) = zero else {
                panic!("{zero:?}")
            };
            assert!(error.to_string().contains("max_children"), "{error}");
            let _jobs = ctx.dynamic("jobs", DynamicSpec::new())?;
            ctx.signal(Signal::Healthy);
            let late = ctx.dynamic("late", DynamicSpec::new());
            assert!(matches!(late, Err(RunError::NotNew { .. })), "{late:?}");
            ctx.cancelled().await;
            Ok(())
        });
    sup.settled().await;
    assert_eq!(
        state(&sup, "root"),
        NodeState::Healthy,
        "no assertion failed"
    );
    assert_eq!(state(&sup, "root.jobs"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_child_with_children_of_its_own_leaves_once_its_subtree_has_returned() {
    let (sup, _host, group) = hosted(DynamicSpec::new()).await;
    let grandchild = Remote::healthy();
    let child = Remote::healthy().with_child("part", &grandchild);
    group.start(child.runnable()).unwrap();
    sup.settled().await;
    child.finish();
    sup.settled().await;
    // Done, but its child still runs: it holds its place.
    assert_eq!(state(&sup, "root.conns.c1"), NodeState::Done);
    assert_eq!(state(&sup, "root.conns.c1.part"), NodeState::Healthy);
    assert_eq!(group.len(), 1);
    grandchild.finish();
    sup.settled().await;
    assert!(started(&sup).is_empty(), "{:?}", sup.states());
    assert!(group.is_empty());
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_leaving_child_takes_the_logs_below_it_and_a_newcomer_keeps_its_own() {
    let (sup, _host, group) = hosted(DynamicSpec::new()).await;
    let log = sup.log_tree();
    let baseline = log.usage().dns;
    // It never logs itself; its static child does.
    group
        .start_named("job", |ctx: Context| async move {
            ctx.run("part", |ctx: Context| async move {
                tracing::info!("first");
                ctx.signal(Signal::Healthy);
                ctx.signal(Signal::Done);
                Ok(())
            })?;
            ctx.signal(Signal::Healthy);
            ctx.signal(Signal::Done);
            Ok(())
        })
        .unwrap();
    sup.settled().await;
    assert!(group.is_empty());
    assert!(texts(&log, "root.conns.job.part").is_empty());
    assert_eq!(log.usage().dns, baseline);

    // The same name again: what the newcomer logs is its own, and stays while it lives.
    let next = Remote::healthy();
    let n = next.clone();
    group
        .start_named("job", move |ctx: Context| {
            let n = n.clone();
            async move {
                tracing::info!("second");
                n.runnable()(ctx).await
            }
        })
        .unwrap();
    sup.settled().await;
    assert_eq!(texts(&log, "root.conns.job"), ["second"]);
    next.send(Cmd::Return);
    sup.settled().await;
    assert!(texts(&log, "root.conns.job").is_empty());
    shut_down(sup).await;
}

/// Panics when dropped: a runnable's captured state that misbehaves on its way out.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("a bad destructor");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_runnable_whose_drop_panics_leaves_without_hurting_its_neighbours() {
    let (sup, _host, group) = hosted(DynamicSpec::new()).await;
    let neighbour = Remote::healthy();
    group.start(neighbour.runnable()).unwrap();
    let baseline = sup.log_tree().usage().dns;
    let captured = Arc::new(PanicsOnDrop);
    group
        .start(move |_ctx: Context| {
            let _held = captured.clone();
            async { Ok(()) }
        })
        .unwrap();
    sup.settled().await;
    assert_eq!(started(&sup), ["root.conns.c1"]);
    assert_eq!(state(&sup, "root.conns.c1"), NodeState::Healthy);
    let said = texts(&sup.log_tree(), "supervisor").join("\n");
    assert!(
        said.contains(
            "the runnable of forgotten node root.conns.c2 panicked when dropped: a bad destructor"
        ),
        "{said}"
    );
    // Logged at `supervisor` (which had entries already), not at the DN that left.
    assert_eq!(sup.log_tree().usage().dns, baseline);
    shut_down(sup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_start_children_at_once_on_the_multi_thread_runtime() {
    const TASKS: usize = 8;
    const EACH: usize = 250;
    let (root, mut host) = host(DynamicSpec::new());
    let metrics = InMemoryMetrics::default();
    let sup = Supervisor::builder()
        .metrics(metrics.clone())
        .backoff(Backoff::constant(Duration::ZERO))
        .start(root);
    let group = host.next().await;
    let starters: Vec<_> = (0..TASKS)
        .map(|t| {
            let group = group.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    // A mix of ends: done, failed, panicked, and kept running.
                    let ending = (t + i) % 4;
                    group
                        .start(move |ctx: Context| async move {
                            ctx.signal(Signal::Healthy);
                            match ending {
                                0 => Ok(()),
                                1 => Err("failed".into()),
                                2 => panic!("panicked"),
                                _ => {
                                    ctx.cancelled().await;
                                    Ok(())
                                }
                            }
                        })
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for starter in starters {
        starter.await.unwrap();
    }
    sup.settled().await;
    let kept = TASKS * EACH / 4;
    assert_eq!(group.len(), kept);
    assert_eq!(sup.states().len(), kept + 2);
    assert_eq!(metrics.dns().len(), kept + 2);
    assert!(
        sup.states()
            .iter()
            .all(|(dn, s)| !dn.starts_with("root.conns.") || *s == NodeState::Healthy)
    );

    // The parent's restart takes every one of them with it.
    host.fail.notify_one();
    let new = host.next().await;
    sup.settled().await;
    assert!(matches!(group.start(serve), Err(RunError::Stale { .. })));
    assert!(new.is_empty());
    assert_eq!(sup.states().len(), 2);
    assert_eq!(metrics.dns().len(), 2);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_child_that_cancelled_itself_leaves_once_its_slow_subtree_has_returned() {
    let (root, mut host) = host(DynamicSpec::new());
    let recorder = Recorder::default();
    let sup = Supervisor::builder().metrics(recorder.clone()).start(root);
    let group = host.next().await;
    let slow = Remote::healthy().ignoring_cancel();
    let s = slow.clone();
    group
        .start(move |ctx: Context| {
            let s = s.clone();
            async move {
                // Never aborted: it returns when the test says.
                let patient = Spec::new().shutdown(supervisor::Shutdown::Infinity);
                ctx.run_with("part", s.runnable(), patient)?;
                ctx.signal(Signal::Healthy);
                // Stops itself (and so its subtree), and returns before its child does.
                ctx.cancellation_token().cancel();
                Ok(())
            }
        })
        .unwrap();
    // (Not `settled()`: an exit is owed by the child, which takes as long as it likes.)
    recorder
        .wait_for("root.conns.c1", NodeState::Canceled)
        .await;
    assert_eq!(group.len(), 1, "its child still runs");
    slow.send(Cmd::Return);
    sup.settled().await;
    assert!(group.is_empty());
    assert!(started(&sup).is_empty(), "{:?}", sup.states());
    shut_down(sup).await;
}
