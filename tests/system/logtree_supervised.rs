//! The log tree inside a running supervisor: `tracing` routing, sub-loggers, the
//! supervisor's own messages.

use std::io::Write;

use supervisor::logtree::{LogEntry, LogTree, ReadOptions, Severity};
use supervisor::{Context, NameUse, RunError, Signal, Supervisor};
use tracing::Instrument;

use crate::support::{Cmd, Remote, capture, serve, shut_down, texts, tree};

fn entries(tree: &LogTree, dn: &str) -> Vec<LogEntry> {
    tree.read(dn, ReadOptions::new().backlog_all())
        .unwrap()
        .backlog
}

async fn nested(depth: u32) {
    if depth == 0 {
        tracing::info!(port = 53, proto = "udp", "listening");
    } else {
        Box::pin(nested(depth - 1)).await;
    }
}

/// Logs every level, and from nested calls and a spawned task, then waits.
async fn chatty(ctx: Context) -> supervisor::Result {
    tracing::error!("an error");
    tracing::warn!("a warning");
    tracing::info!("some info");
    tracing::debug!("a debug line");
    tracing::trace!("a trace line");
    nested(3).await;
    let spawned = tokio::spawn(
        async { tracing::info!("from a spawned task") }.instrument(ctx.span().clone()),
    );
    spawned.await?;
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn tracing_events_in_a_runnable_land_at_its_dn_without_setup() {
    let sup = Supervisor::new(tree(|ctx| ctx.run("chatty", chatty)));
    sup.settled().await;
    let log = sup.log_tree();
    assert_eq!(
        texts(&log, "root.chatty"),
        [
            "an error",
            "a warning",
            "some info",
            "listening port=53 proto=udp",
            "from a spawned task"
        ]
    );
    let severities: Vec<Severity> = entries(&log, "root.chatty")
        .iter()
        .map(|e| e.leveled().unwrap().severity())
        .collect();
    assert_eq!(
        &severities[..3],
        [Severity::Error, Severity::Warning, Severity::Info]
    );
    let first = &entries(&log, "root.chatty")[0];
    assert_eq!(first.leveled().unwrap().file(), "logtree_supervised.rs");
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_span_made_inside_a_runnable_carries_its_route_into_spawned_tasks() {
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run("maker", |ctx: Context| async move {
            // The application's own span, not the runnable's, attached to a spawned task.
            let span = tracing::info_span!("work", item = 7);
            tokio::spawn(async { tracing::info!("inside the user's span") }.instrument(span))
                .await?;
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        })
    }));
    sup.settled().await;
    assert_eq!(
        texts(&sup.log_tree(), "root.maker"),
        ["inside the user's span"]
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn debug_and_trace_are_recorded_at_verbosity_one_and_two() {
    let log = LogTree::new();
    log.set_verbosity("root.chatty", 2).unwrap();
    let sup = Supervisor::builder()
        .log_tree(log.clone())
        .start(tree(|ctx| ctx.run("chatty", chatty)));
    sup.settled().await;
    let got: Vec<(String, u32)> = entries(&log, "root.chatty")
        .iter()
        .map(|e| {
            let l = e.leveled().unwrap();
            (l.message().to_owned(), l.verbosity())
        })
        .filter(|(m, _)| m.starts_with('a'))
        .collect();
    assert_eq!(
        got,
        [
            ("an error".to_owned(), 0),
            ("a warning".to_owned(), 0),
            ("a debug line".to_owned(), 1),
            ("a trace line".to_owned(), 2),
        ]
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn two_supervisors_never_see_each_others_logs() {
    let named = |who: &'static str| {
        tree(move |ctx| {
            ctx.run("worker", move |ctx: Context| async move {
                tracing::info!("hello from {who}");
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                Ok(())
            })
        })
    };
    let (a, b) = (Supervisor::new(named("a")), Supervisor::new(named("b")));
    a.settled().await;
    b.settled().await;
    assert_eq!(texts(&a.log_tree(), "root.worker"), ["hello from a"]);
    assert_eq!(texts(&b.log_tree(), "root.worker"), ["hello from b"]);
    shut_down(a).await;
    shut_down(b).await;
}

#[tokio::test(start_paused = true)]
async fn the_applications_own_subscriber_keeps_working() {
    // A subscriber with the log tree's layer sees runnable events in their spans.
    let (captured, _guard) = capture();
    let sup = Supervisor::new(tree(|ctx| ctx.run("chatty", chatty)));
    sup.settled().await;
    let seen = captured
        .find("some info")
        .expect("the application's subscriber saw the event");
    assert_eq!(seen.dn.as_deref(), Some("root.chatty"));
    assert_eq!(texts(&sup.log_tree(), "root.chatty")[2], "some info");
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_without_the_layer_still_sees_runnable_events() {
    let (captured, _guard) = crate::support::capture_without_layer();
    let sup = Supervisor::new(tree(|ctx| ctx.run("chatty", chatty)));
    sup.settled().await;
    assert!(captured.records().iter().any(|r| r.message == "some info"));
    assert!(
        captured
            .records()
            .iter()
            .any(|r| r.message == "from a spawned task")
    );
    assert_eq!(texts(&sup.log_tree(), "root.chatty").len(), 5);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn supervisor_events_reach_a_subscriber_without_the_layer_whenever_it_appears() {
    // First with no subscriber at all: the supervisor's events have nobody to go to.
    let one = Remote::healthy();
    let o = one.clone();
    let sup = Supervisor::new(tree(move |ctx| ctx.run("one", o.runnable())));
    sup.settled().await;
    one.send(Cmd::Fail("unseen"));
    sup.settled().await;
    // Then an application subscriber arrives: it must see them from now on.
    let (captured, _guard) = crate::support::capture_without_layer();
    one.send(Cmd::Fail("seen"));
    sup.settled().await;
    assert!(
        captured.records().iter().any(|r| r.target == "supervisor"
            && r.message.lines().next() == Some("root.one failed: returned error: seen")),
        "{:?}",
        captured.records()
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn log_crate_records_reach_the_tree_through_the_tracing_bridge() {
    // What `tracing_subscriber::fmt().init()` does for an application.
    let _ = tracing_log::LogTracer::init();
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run("legacy", |ctx: Context| async move {
            log::warn!("from the log crate");
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        })
    }));
    sup.settled().await;
    let got = entries(&sup.log_tree(), "root.legacy");
    assert_eq!(got.len(), 1);
    let l = got[0].leveled().unwrap();
    assert_eq!(
        (l.severity(), l.message()),
        (Severity::Warning, "from the log crate")
    );
    assert_eq!(
        l.file(),
        "logtree_supervised.rs",
        "the record's own location"
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_sub_logger_logs_below_its_runnable_and_its_name_is_reserved() {
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run("foo", |ctx: Context| async move {
            let dut = ctx.sub_logger("dut")?;
            dut.info("hello from foo.dut");
            assert_eq!(dut.dn(), "root.foo.dut");
            // The same sub-logger again is fine; a child of that name is not.
            ctx.sub_logger("dut")?.info("again");
            assert_eq!(
                ctx.run("dut", serve),
                Err(RunError::NameTaken {
                    parent: "root.foo".into(),
                    name: "dut".into(),
                    by: NameUse::SubLogger,
                    wanted: NameUse::Child,
                })
            );
            // And the other order.
            ctx.run("child", serve)?;
            let err = ctx.sub_logger("child").unwrap_err();
            assert_eq!(
                err,
                RunError::NameTaken {
                    parent: "root.foo".into(),
                    name: "child".into(),
                    by: NameUse::Child,
                    wanted: NameUse::SubLogger,
                }
            );
            assert!(
                err.to_string()
                    .starts_with("`root.foo` cannot make sub-logger \"child\"")
            );
            assert!(matches!(
                ctx.sub_logger("Bad Name"),
                Err(RunError::InvalidName {
                    wanted: NameUse::SubLogger,
                    ..
                })
            ));
            ctx.signal(Signal::Healthy);
            // Sub-loggers can be made after Healthy too.
            ctx.must_sub_logger("late").info("late");
            ctx.cancelled().await;
            Ok(())
        })
    }));
    sup.settled().await;
    let log = sup.log_tree();
    assert_eq!(texts(&log, "root.foo.dut"), ["hello from foo.dut", "again"]);
    assert_eq!(texts(&log, "root.foo.late"), ["late"]);
    assert_eq!(sup.states()["root.foo"], supervisor::NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn must_sub_logger_with_a_bad_name_fails_the_runnable_with_the_reason() {
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run("foo", |ctx: Context| async move {
            ctx.must_sub_logger("Not.Valid").info("never");
            Ok(())
        })
    }));
    let log = sup.log_tree();
    let mut reader = log
        .read("root.foo", ReadOptions::new().backlog_all().stream())
        .unwrap();
    let first = match reader.backlog.first() {
        Some(e) => e.clone(),
        None => match reader.stream.as_mut().unwrap().next().await {
            Some(supervisor::logtree::Streamed::Entry(e)) => e,
            other => panic!("{other:?}"),
        },
    };
    let l = first.leveled().unwrap();
    assert_eq!(l.severity(), Severity::Error);
    assert!(
        l.message()
            .starts_with("panicked: `root.foo` cannot make sub-logger \"Not.Valid\""),
        "{}",
        l.message()
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn failures_and_restarts_are_logged_at_the_node_and_at_supervisor() {
    let one = Remote::healthy();
    let o = one.clone();
    let sup = Supervisor::new(tree(move |ctx| ctx.run("one", o.runnable())));
    sup.settled().await;
    one.send(Cmd::Fail("boom"));
    sup.settled().await;
    let log = sup.log_tree();
    let at_node = entries(&log, "root.one");
    assert_eq!(at_node.len(), 1);
    let l = at_node[0].leveled().unwrap();
    assert_eq!(
        (l.severity(), l.message()),
        (Severity::Error, "returned error: boom")
    );
    let sup_log = texts(&log, "supervisor");
    assert_eq!(sup_log[0], "starting root");
    // The crash report, headed by the failure.
    assert_eq!(
        sup_log[1].lines().next(),
        Some("root.one failed: returned error: boom")
    );
    assert!(
        sup_log[2].starts_with("restarting root.one after a backoff of "),
        "{sup_log:?}"
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn starts_are_logged_at_supervisor_verbosity_one() {
    let log = LogTree::new();
    log.set_verbosity("supervisor", 1).unwrap();
    let sup = Supervisor::builder()
        .log_tree(log.clone())
        .start(tree(|ctx| ctx.run("a", serve)));
    sup.settled().await;
    assert_eq!(
        texts(&log, "supervisor"),
        ["starting root", "starting root.a"]
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn the_raw_logger_of_a_context_writes_at_its_dn() {
    let sup = Supervisor::new(tree(|ctx| {
        ctx.run("proc", |ctx: Context| async move {
            let mut out = ctx.raw_logger();
            out.write_all(b"line one\nline two")?;
            drop(out);
            ctx.logger().info("leveled too");
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        })
    }));
    sup.settled().await;
    assert_eq!(
        texts(&sup.log_tree(), "root.proc"),
        ["line one", "line two", "leveled too"]
    );
    shut_down(sup).await;
}

/// Pins what `LogTreeLayer`'s documentation says about filters: a filter on the whole
/// subscriber (what `RUST_LOG=warn` does to `fmt().with_env_filter(..)`) filters the log
/// tree too; a filter on the application's own layer leaves the log tree everything.
#[tokio::test(start_paused = true)]
async fn a_global_filter_starves_the_log_tree_and_a_per_layer_filter_does_not() {
    use tracing_subscriber::filter::LevelFilter;

    for global in [true, false] {
        let (captured, _guard) = crate::support::capture_filtered(LevelFilter::WARN, global);
        let sup = Supervisor::new(tree(|ctx| ctx.run("chatty", chatty)));
        sup.settled().await;
        let in_tree = texts(&sup.log_tree(), "root.chatty");
        // The application's layer sees warnings and errors only, either way.
        assert!(captured.find("a warning").is_some());
        assert!(captured.find("some info").is_none());
        if global {
            assert_eq!(in_tree, ["an error", "a warning"]);
        } else {
            assert!(in_tree.contains(&"some info".to_owned()), "{in_tree:?}");
            assert!(in_tree.contains(&"from a spawned task".to_owned()));
        }
        shut_down(sup).await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_failure_notes_follow_the_trees_message_rules_in_the_backlog_and_the_stream() {
    // The notes are kept as the pieces they are made of (the DN, the reason): they must
    // still be trimmed and cut as every other message, and read the same everywhere.
    let log = LogTree::builder().max_message_bytes(24).build().unwrap();
    let mut said = log
        .read("", ReadOptions::new().stream().with_children())
        .unwrap();
    let sup = Supervisor::builder()
        .log_tree(log.clone())
        .start(tree(|ctx| {
            ctx.run("bad", |_ctx: Context| async {
                Err::<(), _>("boom\n\n".into())
            })
        }));
    let stream = said.stream.as_mut().unwrap();
    let mut streamed = Vec::new();
    while streamed.len() < 2 {
        if let Some(supervisor::logtree::Streamed::Entry(e)) = stream.next().await
            && e.leveled().is_some_and(|l| l.severity() == Severity::Error)
        {
            streamed.push(e);
        }
    }
    let at_node = &streamed[0];
    assert_eq!(at_node.dn(), "root.bad");
    assert_eq!(at_node.message(), "returned error: boom");
    assert_eq!(at_node.leveled().unwrap().original_len(), None);
    let at_supervisor = &streamed[1];
    assert_eq!(at_supervisor.dn(), "supervisor");
    assert_eq!(at_supervisor.message(), "root.bad failed: returne");
    // The whole crash report was longer than its headline.
    let headline = "root.bad failed: returned error: boom".len();
    assert!(at_supervisor.leveled().unwrap().original_len() > Some(headline));
    // The backlog holds the same entries, text for text.
    for e in &streamed {
        let kept = entries(&log, e.dn())
            .into_iter()
            .find(|k| k.seq() == e.seq())
            .expect("retained");
        assert_eq!(kept.to_string(), e.to_string());
    }
    shut_down(sup).await;
}

/// A library's DEBUG event inside a runnable is turned away while its DN's verbosity is 0
/// (before it is built), and recorded from the same callsite once the verbosity is raised:
/// raising it makes `tracing` ask the callsite's interest again.
#[tokio::test]
async fn a_debug_callsite_turned_away_is_recorded_once_the_verbosity_is_raised() {
    fn library_debug(n: u32) {
        tracing::debug!("a library's detail {n}");
    }
    let (done, mut logged) = tokio::sync::mpsc::unbounded_channel::<()>();
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let g = go.clone();
    let sup = Supervisor::new(tree(move |ctx| {
        let (g, done) = (g.clone(), done.clone());
        ctx.run("lib", move |ctx: Context| {
            let (g, done) = (g.clone(), done.clone());
            async move {
                ctx.signal(Signal::Healthy);
                for n in 0..2 {
                    g.notified().await;
                    library_debug(n);
                    let _ = done.send(());
                }
                ctx.cancelled().await;
                Ok(())
            }
        })
    }));
    sup.settled().await;
    go.notify_one();
    logged.recv().await.unwrap();
    sup.log_tree().set_verbosity("root.lib", 1).unwrap();
    go.notify_one();
    logged.recv().await.unwrap();
    assert_eq!(texts(&sup.log_tree(), "root.lib"), ["a library's detail 1"]);
    shut_down(sup).await;
}
