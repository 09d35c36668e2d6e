//! Crash reports (DESIGN §18): their fields, the last lines copied out of the log tree,
//! the ring's bound, one report for each kind of death, the ERROR entry at `supervisor`,
//! the JSON form and the metrics hook.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use supervisor::logtree::Severity;
use supervisor::{
    Backoff, Context, CrashReport, Death, Event, EventKind, Group, Intensity, NodeState, Observed,
    Restart, Shutdown, Signal, Spec, Supervisor,
};

use crate::support::{Cmd, Remote, shut_down, tree};

/// An error with a cause, as `thiserror` would make it.
#[derive(Debug)]
struct Connect(std::io::Error);

impl std::fmt::Display for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot reach the database")
    }
}

impl std::error::Error for Connect {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Logs `n` numbered lines, then fails with [`Connect`].
fn chatty(n: usize) -> impl supervisor::Runnable {
    move |ctx: Context| async move {
        ctx.run("pool", crate::support::serve)?;
        ctx.signal(Signal::Healthy);
        tokio::time::sleep(Duration::from_secs(3)).await;
        for i in 0..n {
            tracing::info!("line {i}");
        }
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        Err(Connect(refused).into())
    }
}

/// Waits for the first death of `dn` among `events`: its report.
pub async fn died(events: &mut supervisor::Events, dn: &str) -> Arc<CrashReport> {
    loop {
        match events.next().await.expect("the supervisor is gone") {
            Observed::Event(Event {
                kind: EventKind::Died(report),
                ..
            }) if report.dn() == dn => return report,
            _ => {}
        }
    }
}

fn only_report(sup: &Supervisor, dn: &str) -> Arc<CrashReport> {
    let reports: Vec<_> = sup
        .crash_reports()
        .into_iter()
        .filter(|r| r.dn() == dn)
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    reports[0].clone()
}

#[tokio::test(start_paused = true)]
async fn a_report_has_the_fields_and_exactly_the_newest_lines_in_order() {
    let sibling = Remote::healthy();
    let s = sibling.clone();
    let sup = Supervisor::builder()
        .backoff(Backoff::constant(Duration::from_secs(7)))
        .start(tree(move |ctx| {
            ctx.run_group(Group::new().add("db", chatty(60)).add("api", s.runnable()))
        }));
    let mut events = sup.events();
    let report = died(&mut events, "root.db").await;
    assert!(
        Arc::ptr_eq(&report, &only_report(&sup, "root.db")),
        "kept in the ring"
    );
    assert_eq!(report.death(), Death::Error);
    assert_eq!(
        report.reason(),
        "returned error: cannot reach the database: refused"
    );
    assert_eq!(report.state(), NodeState::Healthy, "died while Healthy");
    assert_eq!(report.lived(), Duration::from_secs(3));
    assert!(report.died() >= report.started());
    assert_eq!(report.restarts(), 0);
    assert_eq!(report.restarts_in_window(), None, "no intensity applies");
    assert_eq!(report.next_backoff(), Some(Duration::from_secs(7)));
    let peers = |p: &[supervisor::PeerState]| {
        p.iter()
            .map(|p| (p.dn.to_string(), p.state))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        peers(report.siblings()),
        [("root.api".to_owned(), NodeState::Healthy)],
        "as it was before the group's restart cancelled it"
    );
    assert_eq!(
        peers(report.children()),
        [("root.db.pool".to_owned(), NodeState::Healthy)]
    );
    let lines: Vec<&str> = report.last_lines().iter().map(|e| e.message()).collect();
    let expected: Vec<String> = (10..60).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected, "the newest 50, oldest first");
    assert!(report.last_lines().iter().all(|e| e.dn() == "root.db"));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn the_lines_copied_are_configurable_and_the_ring_keeps_the_newest() {
    let starts = Arc::new(AtomicUsize::new(0));
    let s = starts.clone();
    let sup = Supervisor::builder()
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .crash_report_lines(2)
        .crash_reports_kept(3)
        .start(tree(move |ctx| {
            let s = s.clone();
            ctx.run("flaky", move |_ctx: Context| {
                let n = s.fetch_add(1, Ordering::SeqCst);
                async move {
                    tracing::info!("start {n}");
                    tracing::warn!("about to fail {n}");
                    if n < 5 {
                        Err(format!("failure {n}").into())
                    } else {
                        std::future::pending().await
                    }
                }
            })
        }));
    while starts.load(Ordering::SeqCst) < 6 {
        sup.settled().await;
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    sup.settled().await;
    let reports = sup.crash_reports();
    let reasons: Vec<&str> = reports.iter().map(|r| r.reason()).collect();
    assert_eq!(
        reasons,
        [
            "returned error: failure 2",
            "returned error: failure 3",
            "returned error: failure 4"
        ],
        "the 3 newest, oldest first"
    );
    assert!(
        reports
            .windows(2)
            .all(|w| w[0].incarnation() < w[1].incarnation())
    );
    assert_eq!(reports[2].restarts(), 4);
    let last = &reports[2];
    let lines: Vec<(Severity, &str)> = last
        .last_lines()
        .iter()
        .map(|e| (e.leveled().unwrap().severity(), e.message()))
        .collect();
    assert_eq!(
        lines,
        [
            (Severity::Info, "start 4"),
            (Severity::Warning, "about to fail 4")
        ],
        "the node's own lines: the supervisor's failure lines at the DN are not copied"
    );
    shut_down(sup).await;
}

/// Runs `child` as `root.x` (with `spec`) beside a sibling that fails on command, and
/// returns the first report of `root.x`.
async fn death_of(
    child: impl supervisor::Runnable,
    spec: Spec,
    fail_sibling: bool,
) -> Arc<CrashReport> {
    let sibling = Remote::healthy();
    let s = sibling.clone();
    let child = Arc::new(child);
    let sup = Supervisor::new(tree(move |ctx| {
        let child = child.clone();
        ctx.run_group(
            Group::new()
                .add_with("x", move |ctx: Context| child(ctx), spec.clone())
                .add("sibling", s.runnable()),
        )
    }));
    let mut events = sup.events();
    if fail_sibling {
        sup.settled().await;
        sibling.send(Cmd::Fail("sibling failed"));
    }
    let report = died(&mut events, "root.x").await;
    shut_down(sup).await;
    report
}

#[tokio::test(start_paused = true)]
async fn each_kind_of_death_has_its_report() {
    // A panic.
    let report = death_of(
        |_ctx: Context| async { panic!("index out of bounds") },
        Spec::new(),
        false,
    )
    .await;
    assert_eq!(report.death(), Death::Panic);
    assert_eq!(report.reason(), "panicked: index out of bounds");
    assert_eq!(report.state(), NodeState::New);

    // An abort at the end of its shutdown grace: it ignores the cancellation its
    // sibling's failure brings.
    let report = death_of(
        |ctx: Context| async move {
            ctx.signal(Signal::Healthy);
            std::future::pending::<supervisor::Result>().await
        },
        Spec::new().shutdown(Shutdown::Timeout(Duration::from_secs(2))),
        true,
    )
    .await;
    assert_eq!(report.death(), Death::Aborted);
    assert!(
        report
            .reason()
            .starts_with("aborted: did not return within"),
        "{}",
        report.reason()
    );

    // A starved watchdog.
    let report = death_of(
        |ctx: Context| async move {
            ctx.signal(Signal::Healthy);
            std::future::pending::<supervisor::Result>().await
        },
        Spec::new().watchdog(Duration::from_secs(1)),
        false,
    )
    .await;
    assert_eq!(report.death(), Death::Watchdog);
    assert_eq!(report.reason(), "watchdog: no heartbeat for 1s");
    assert_eq!(report.lived(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn an_escalation_reports_the_child_then_the_parent_with_the_window() {
    let sup = Supervisor::builder()
        .backoff(Backoff::none())
        .start(tree(|ctx| {
            // Temporary, so that its own failure ends the story.
            let temporary = Spec::new().restart(Restart::Temporary);
            ctx.run_with(
                "mid",
                |ctx: Context| async move {
                    ctx.run_group(
                        Group::new()
                            .add("bad", |_ctx: Context| async { Err::<(), _>("no".into()) })
                            .intensity(Intensity::new(2, Duration::from_secs(10)).unwrap()),
                    )?;
                    ctx.signal(Signal::Healthy);
                    ctx.cancelled().await;
                    Ok(())
                },
                temporary,
            )
        }));
    sup.settled().await;
    let reports = sup.crash_reports();
    let first: Vec<(&str, Death)> = reports
        .iter()
        .take(4)
        .map(|r| (r.dn(), r.death()))
        .collect();
    assert_eq!(
        first,
        [
            ("root.mid.bad", Death::Error),
            ("root.mid.bad", Death::Error),
            ("root.mid.bad", Death::Error),
            ("root.mid", Death::Intensity),
        ]
    );
    let windows: Vec<Option<usize>> = reports
        .iter()
        .take(3)
        .map(|r| r.restarts_in_window().map(|(n, _)| n))
        .collect();
    assert_eq!(windows, [Some(1), Some(2), Some(3)]);
    assert_eq!(reports[1].next_backoff(), Some(Duration::ZERO));
    assert_eq!(
        reports[2].next_backoff(),
        None,
        "over the intensity: no restart"
    );
    let parent = &reports[3];
    assert!(
        parent
            .reason()
            .starts_with("too many restarts: 3 within 10s"),
        "{}",
        parent.reason()
    );
    assert_eq!(
        parent.children().iter().map(|c| &*c.dn).collect::<Vec<_>>(),
        ["root.mid.bad"]
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn the_report_is_one_error_entry_at_supervisor_and_reads_as_json() {
    let sup = Supervisor::builder()
        .crash_report_lines(3)
        .start(tree(|ctx| {
            ctx.run_with("db", chatty(2), Spec::new().restart(Restart::Temporary))
        }));
    let mut events = sup.events();
    let report = died(&mut events, "root.db").await;
    sup.settled().await;
    let log = sup.log_tree();
    let errors: Vec<_> = log
        .read(
            "supervisor",
            supervisor::logtree::ReadOptions::new().backlog_all(),
        )
        .unwrap()
        .backlog
        .into_iter()
        .filter(|e| e.leveled().is_some_and(|l| l.severity() == Severity::Error))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let text = errors[0].message();
    assert_eq!(text, report.to_string());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "root.db failed: returned error: cannot reach the database: refused"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim() == "Children: root.db.pool HEALTHY"),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.trim() == "Last 2 lines at root.db:"),
        "{text}"
    );
    assert!(lines[lines.len() - 1].ends_with("] line 1"), "{text}");

    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("JSON");
    assert_eq!(json["dn"], "root.db");
    assert_eq!(json["death"], "error");
    assert_eq!(json["state"], "HEALTHY");
    assert_eq!(json["incarnation"], report.incarnation());
    assert_eq!(json["lived_secs"], 3.0);
    assert_eq!(json["children"][0]["dn"], "root.db.pool");
    assert_eq!(json["last_lines"][1]["message"], "line 1");
    assert_eq!(json["last_lines"][1]["severity"], "INFO");
    assert!(json["died"].as_str().unwrap().ends_with('Z'));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn prometheus_counts_crashes_per_dn() {
    let registry = prometheus::Registry::new();
    let bad = Remote::healthy();
    let b = bad.clone();
    let sup = Supervisor::builder()
        .metrics(supervisor::PrometheusMetrics::new(&registry).unwrap())
        .start(tree(move |ctx| ctx.run("bad", b.runnable())));
    sup.settled().await;
    for _ in 0..2 {
        bad.send(Cmd::Fail("boom"));
        sup.settled().await;
        tokio::time::advance(Duration::from_secs(60)).await;
        sup.settled().await;
    }
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains(r#"supervisor_crashes_total{dn="root.bad"} 2"#),
        "{text}"
    );
    shut_down(sup).await;
}
