//! Readiness up the tree and watchdogs (DESIGN §16), under paused time: a timeout that
//! runs out proves that something did not happen, as paused time jumps to it only once
//! everything else is idle. The sleeps are inside runnables, as their work: the time that
//! passes between heartbeats, or while a node is New or Done, is what a test is about.

use std::time::Duration;

use supervisor::{
    Backoff, Context, DynamicSpec, NodeState, NotReady, Restart, RunError, Signal, Spec, Supervisor,
};

use crate::support::{
    Cmd, Recorder, Remote, hosted, readiness_agrees, serve, shut_down, state, tree,
};

/// Whether `ready()` resolves before an hour of paused time has passed.
async fn becomes_ready(sup: &Supervisor) -> bool {
    tokio::time::timeout(Duration::from_secs(3600), sup.ready())
        .await
        .is_ok()
}

#[tokio::test(start_paused = true)]
async fn a_node_that_never_signals_healthy_keeps_the_tree_unready() {
    let silent = Remote::silent();
    let s = silent.clone();
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run("web", serve)?;
        ctx.run("db", s.runnable())
    }));
    assert!(!becomes_ready(&sup).await);
    let health = sup.health();
    assert!(!health.is_ready());
    assert_eq!(
        health.get("root.db").unwrap().not_ready,
        Some(NotReady::Starting)
    );
    assert_eq!(
        health.get("root").unwrap().not_ready,
        Some(NotReady::Child {
            dn: "root.db".into()
        })
    );
    assert!(health.get("root.web").unwrap().ready);
    assert_eq!(health.summary(), "2/3 ready; root.db starting");
    readiness_agrees(&sup).unwrap();

    // Healthy at last: the tree is ready, and a waiter is told without a poll.
    let waiter = tokio::spawn({
        let sup = sup.clone();
        async move { sup.ready().await }
    });
    sup.settled().await;
    assert!(!waiter.is_finished());
    silent.send(Cmd::Signal(Signal::Healthy));
    waiter.await.unwrap();
    assert!(sup.health().is_ready());
    assert_eq!(sup.health().summary(), "3/3 ready");
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_makes_the_tree_unready_until_the_node_is_healthy_again() {
    let flaky = Remote::healthy();
    let f = flaky.clone();
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .backoff(Backoff::constant(Duration::from_secs(3)))
        .start(tree(move |ctx| ctx.run("flaky", f.runnable())));
    sup.ready().await;

    flaky.send(Cmd::Fail("lost the device"));
    // Not settled: the backoff has not run out yet.
    recorder.wait_for("root.flaky", NodeState::Dead).await;
    let health = sup.health();
    assert!(!health.is_ready());
    assert_eq!(
        health.get("root.flaky").unwrap().not_ready,
        Some(NotReady::Restarting {
            after: Duration::from_secs(3)
        })
    );
    assert_eq!(health.summary(), "1/2 ready; root.flaky restarting in 3.0s");
    let waited = tokio::time::Instant::now();
    sup.ready().await;
    assert_eq!(waited.elapsed(), Duration::from_secs(3));
    assert_eq!(flaky.starts(), 2);
    readiness_agrees(&sup).unwrap();
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn children_that_ignore_readiness_and_ended_temporary_children_do_not_gate_it() {
    let (warmer, once) = (Remote::silent(), Remote::healthy());
    let (w, o) = (warmer.clone(), once.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_with("warmer", w.runnable(), Spec::new().ignore_readiness())?;
        ctx.run_with(
            "once",
            o.runnable(),
            Spec::new().restart(Restart::Temporary),
        )?;
        ctx.run("web", serve)
    }));
    sup.ready().await;
    let health = sup.health();
    let warmer_health = health.get("root.warmer").unwrap();
    assert!(!warmer_health.ready && !warmer_health.counted);
    assert_eq!(health.checks().count(), 3, "root, once and web: {health}");

    // A temporary child that fails is never started again: it no longer gates readiness.
    once.send(Cmd::Fail("one-shot job failed"));
    sup.settled().await;
    assert_eq!(state(&sup, "root.once"), NodeState::Dead);
    assert!(sup.health().is_ready(), "{}", sup.health());
    assert_eq!(sup.health().checks().count(), 2);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn readiness_falls_the_moment_shutdown_begins() {
    let slow = Remote::healthy().ignoring_cancel();
    let s = slow.clone();
    let sup = Supervisor::new(tree(move |ctx| ctx.run("slow", s.runnable())));
    sup.ready().await;
    sup.cancel();
    // The node is still Healthy and running, but the tree is no longer ready.
    assert_eq!(state(&sup, "root.slow"), NodeState::Healthy);
    let health = sup.health();
    assert!(!health.is_ready());
    assert_eq!(
        health.get("root").unwrap().not_ready,
        Some(NotReady::ShuttingDown)
    );
    assert!(!health.get("root").unwrap().passes);
    assert_eq!(health.summary(), "stopping");
    // (The hour it waited has aborted the node long ago.)
    assert!(!becomes_ready(&sup).await);
    let probe = sup.clone();
    sup.wait().await;
    assert!(!probe.health().is_ready());
}

#[tokio::test(start_paused = true)]
async fn a_tree_that_finished_by_itself_is_not_ready() {
    let sup = Supervisor::new(tree(|_| Ok(())));
    let probe = sup.clone();
    sup.wait().await;
    assert_eq!(state(&probe, "root"), NodeState::Done);
    assert!(!probe.health().is_ready());
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_child_gates_readiness_unless_its_spec_says_otherwise() {
    let (sup, _host, group) = hosted(DynamicSpec::new()).await;
    assert!(sup.health().is_ready());
    let starting = Remote::silent();
    group.start_named("slow", starting.runnable()).unwrap();
    sup.settled().await;
    assert!(!sup.health().is_ready());
    readiness_agrees(&sup).unwrap();
    starting.send(Cmd::Return);
    sup.settled().await;
    assert!(sup.health().is_ready(), "{}", sup.health());
    shut_down(sup).await;

    let spec = DynamicSpec::new().child(Spec::new().ignore_readiness());
    let (sup, _host, group) = hosted(spec).await;
    group
        .start_named("slow", Remote::silent().runnable())
        .unwrap();
    sup.settled().await;
    assert!(sup.health().is_ready(), "{}", sup.health());
    shut_down(sup).await;
}

// ---- Watchdog ---------------------------------------------------------------------------

/// A runnable that signals Healthy, then heartbeats every `every` until `beats` heartbeats,
/// and then hangs (still awaiting, its thread free).
fn beating(every: Duration, beats: usize) -> impl supervisor::Runnable {
    move |ctx: Context| async move {
        ctx.signal(Signal::Healthy);
        for _ in 0..beats {
            tokio::time::sleep(every).await;
            ctx.heartbeat();
        }
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_missed_heartbeat_fails_the_node_and_it_restarts() {
    let period = Duration::from_secs(2);
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .backoff(Backoff::constant(Duration::from_secs(60)))
        .start(tree(move |ctx| {
            ctx.run_with(
                "poller",
                beating(Duration::from_secs(1), 10),
                Spec::new().watchdog(period),
            )
        }));
    sup.ready().await;
    let started = tokio::time::Instant::now();
    // Fed for ten seconds, then silent: it starves two seconds after its last heartbeat.
    recorder.wait_for("root.poller", NodeState::Dead).await;
    assert_eq!(started.elapsed(), Duration::from_secs(12));
    let status = sup.status();
    assert_eq!(
        status.get("root.poller").unwrap().last_error.as_deref(),
        Some("watchdog: no heartbeat for 2s")
    );
    assert!(!sup.health().is_ready());
    // Restarted after its backoff, by the ordinary rules.
    sup.ready().await;
    assert_eq!(sup.status().get("root.poller").unwrap().restarts, 1);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_watches_only_from_healthy_until_done() {
    // New for a minute with a one-second watchdog: not watched yet.
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run_with(
            "late",
            |ctx: Context| async move {
                // Heartbeats before Healthy do not start the watch.
                ctx.heartbeat();
                tokio::time::sleep(Duration::from_secs(60)).await;
                ctx.signal(Signal::Healthy);
                tokio::time::sleep(Duration::from_millis(500)).await;
                ctx.heartbeat();
                ctx.signal(Signal::Done);
                // Done: no longer watched, however long it takes to return.
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            },
            Spec::new().watchdog(Duration::from_secs(1)),
        )
    }));
    let probe = sup.clone();
    sup.wait().await;
    assert_eq!(state(&probe, "root.late"), NodeState::Done);
    assert_eq!(probe.status().get("root.late").unwrap().restarts, 0);
}

#[tokio::test(start_paused = true)]
async fn a_stale_context_cannot_feed_the_next_incarnation() {
    let period = Duration::from_secs(1);
    let stale = std::sync::Arc::new(std::sync::Mutex::new(None::<Context>));
    let kept = stale.clone();
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .backoff(Backoff::constant(Duration::from_secs(10)))
        .start(tree(move |ctx| {
            let kept = kept.clone();
            ctx.run_with(
                "node",
                move |ctx: Context| {
                    let kept = kept.clone();
                    async move {
                        ctx.signal(Signal::Healthy);
                        let first = kept.lock().unwrap().replace(ctx.clone()).is_none();
                        if first {
                            // The first incarnation fails at once, leaving its context
                            // behind in a task that keeps feeding it.
                            let old = ctx.clone();
                            tokio::spawn(async move {
                                loop {
                                    old.heartbeat();
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                            });
                            return Err("first start fails".into());
                        }
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                },
                Spec::new().watchdog(period),
            )
        }));
    // The second incarnation is fed only by the stale context: it starves.
    recorder.wait_for_nth("root.node", NodeState::Dead, 2).await;
    assert_eq!(
        sup.status().get("root.node").unwrap().last_error.as_deref(),
        Some("watchdog: no heartbeat for 1s")
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn watchdog_specs_that_break_their_rules_are_refused() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sup = Supervisor::new(tree(move |ctx| {
        let _ = tx.send(ctx.run_with("a", serve, Spec::new().watchdog(Duration::ZERO)));
        let _ = tx.send(ctx.run_with("b", serve, Spec::new().critical()));
        Ok(())
    }));
    let probe = sup.clone();
    sup.wait().await;
    assert_eq!(state(&probe, "root"), NodeState::Done);
    let zero = rx.recv().await.unwrap().unwrap_err();
    let lone = rx.recv().await.unwrap().unwrap_err();
    assert!(matches!(zero, RunError::InvalidSpec { .. }), "{zero}");
    assert!(matches!(lone, RunError::InvalidSpec { .. }), "{lone}");
    assert_eq!(
        zero.to_string(),
        "`root` cannot start child \"a\": invalid watchdog period \"0ns\": must be more than \
         zero"
    );
    assert!(
        lone.to_string()
            .contains("a critical child needs one (`Spec::watchdog`)"),
        "{lone}"
    );
}

// ---- systemd, through the process's environment -----------------------------------------

/// The datagrams the program `systemd-child` (`tests/bin`) sends, with `NOTIFY_SOCKET` set
/// to a socket bound here (or not set at all).
#[cfg(target_os = "linux")]
fn child_notifies(set: bool) -> Vec<String> {
    use std::os::unix::net::UnixDatagram;
    let path = std::env::temp_dir().join(format!(
        "supervisor-child-notify-{}-{set}.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_systemd-child"));
    child
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC");
    if set {
        child.env("NOTIFY_SOCKET", &path);
    }
    let status = child.status().unwrap();
    assert!(status.success(), "the child failed: {status}");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let _ = std::fs::remove_file(&path);
    received
}

#[cfg(target_os = "linux")]
#[test]
fn systemd_notify_reads_the_environment() {
    let received = child_notifies(true);
    assert_eq!(
        received,
        [
            "STATUS=1/2 ready; root.web starting",
            "READY=1",
            "STATUS=2/2 ready",
            "STOPPING=1"
        ]
    );
    // Without the variable the same program runs, and tells nobody anything.
    assert!(child_notifies(false).is_empty());
}
