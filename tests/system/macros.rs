//! Trees built with `#[runnable]` and `supervision_tree!`: the DNs that come up, the
//! arguments each start gets, and what the registry knows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use supervisor::registry::{self, ChildKind, DeclarationKind};
use supervisor::{Context, Group, NodeState, Signal, Supervisor, runnable, supervision_tree};

use crate::support::{Cmd, Remote, shut_down};

#[runnable]
async fn counted(ctx: Context, starts: Arc<AtomicUsize>, label: String) -> supervisor::Result {
    starts.fetch_add(1, Ordering::SeqCst);
    let log = ctx.sub_logger("events")?;
    log.info(&label);
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

#[runnable]
async fn pair(ctx: Context, starts: Arc<AtomicUsize>, remote: Remote) -> supervisor::Result {
    ctx.run_group(
        Group::new()
            .add("left", counted(starts.clone(), "left".into()))
            .add("right", remote.runnable()),
    )?;
    ctx.run("solo", counted(starts, "solo".into()))?;
    ctx.signal(Signal::Healthy);
    ctx.signal(Signal::Done);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_runnable_fn_starts_its_children_and_clones_its_arguments_per_start() {
    let starts = Arc::new(AtomicUsize::new(0));
    let remote = Remote::healthy();
    let sup = Supervisor::new(pair(starts.clone(), remote.clone()));
    sup.settled().await;
    let dns: Vec<String> = sup.states().into_keys().collect();
    assert_eq!(dns, ["root", "root.left", "root.right", "root.solo"]);
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    // A failure in the group restarts `left` (with a fresh clone of its label), not `solo`.
    remote.send(Cmd::Fail("right broke"));
    sup.settled().await;
    assert_eq!(starts.load(Ordering::SeqCst), 3);
    let log = sup.log_tree();
    let read = |dn: &str| {
        log.read(dn, supervisor::logtree::ReadOptions::new().backlog_all())
            .unwrap()
            .backlog
            .len()
    };
    assert_eq!(read("root.left.events"), 2);
    assert_eq!(read("root.solo.events"), 1);
    shut_down(sup).await;
}

#[runnable]
async fn generic<T: Clone + Send + Sync + std::fmt::Debug + 'static, const N: usize>(
    ctx: Context,
    value: T,
) -> supervisor::Result {
    ctx.logger().info(format_args!("{value:?} x{N}"));
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

#[runnable]
async fn with_impl_arg(
    ctx: Context,
    label: impl Into<String> + Clone + Send + Sync + 'static,
) -> supervisor::Result {
    ctx.logger().info(label.into());
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

supervision_tree! {
    /// The test tree.
    fn declared(starts: Arc<AtomicUsize>) {
        net {
            group {
                dhcp: counted(starts.clone(), "dhcp".into()),
                dns: counted(starts.clone(), "dns".into()),
            },
            sub_loggers [leases],
        },
        "9p": generic::<u8, 3>(7),
        labelled: with_impl_arg("x"),
        sub_loggers [audit],
    }
}

#[tokio::test(start_paused = true)]
async fn a_declared_tree_brings_up_exactly_its_dns() {
    let starts = Arc::new(AtomicUsize::new(0));
    let sup = Supervisor::new(declared(starts.clone()));
    sup.settled().await;
    let states = sup.states();
    let dns: Vec<&str> = states.keys().map(String::as_str).collect();
    assert_eq!(
        dns,
        [
            "root",
            "root.9p",
            "root.labelled",
            "root.net",
            "root.net.dhcp",
            "root.net.dns"
        ]
    );
    assert_eq!(states["root"], NodeState::Done);
    assert_eq!(states["root.net"], NodeState::Done);
    assert_eq!(states["root.net.dns"], NodeState::Healthy);
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    // Sub-loggers are reserved: a run-time child of that name would be refused.
    let log = sup.log_tree();
    let entry = &log
        .read(
            "root.9p",
            supervisor::logtree::ReadOptions::new().backlog_all(),
        )
        .unwrap()
        .backlog[0];
    assert_eq!(entry.leveled().unwrap().message(), "7 x3");
    shut_down(sup).await;
}

#[test]
fn the_registry_describes_runnables_and_trees() {
    let pair = registry::find("pair").expect("pair is registered");
    assert_eq!(pair.kind, DeclarationKind::Runnable);
    assert!(pair.module_path.ends_with("macros"), "{}", pair.module_path);
    assert!(pair.file.ends_with("macros.rs"));
    let children: Vec<(&str, u32)> = pair
        .contents
        .children
        .iter()
        .map(|c| (c.name, c.group))
        .collect();
    assert_eq!(children, [("left", 0), ("right", 0), ("solo", 1)]);
    match &pair.contents.children[0].kind {
        ChildKind::Runnable { expr, callee } => {
            assert_eq!(*expr, "counted(starts.clone(), \"left\".into())");
            assert_eq!(*callee, Some("counted"));
        }
        other => panic!("{other:?}"),
    }
    let counted = registry::find("counted").unwrap();
    assert_eq!(counted.contents.sub_loggers, ["events"]);

    let tree = registry::find("declared").unwrap();
    assert_eq!(tree.kind, DeclarationKind::Tree);
    assert_eq!(tree.contents.sub_loggers, ["audit"]);
    let printed = tree.topology().to_string();
    let expected = [
        "├── net",
        "│   ├── dhcp             counted(starts.clone(), \"dhcp\".into()) [group 0]",
        "│   │   └── events (sub-logger)",
        "│   ├── dns              counted(starts.clone(), \"dns\".into()) [group 0]",
        "│   │   └── events (sub-logger)",
        "│   └── leases (sub-logger)",
        "├── 9p               generic::<u8, 3>(7)",
        "├── labelled         with_impl_arg(\"x\")",
        "└── audit (sub-logger)",
    ];
    let body: Vec<&str> = printed.lines().skip(1).collect();
    assert_eq!(body, expected, "\n{printed}");
    assert!(printed.starts_with("declared (tree, "), "{printed}");
}

/// Code written with the macros is clean under strict lints.
mod lints {
    #![deny(warnings, unused_qualifications, dead_code, clippy::pedantic)]

    use supervisor::{Context, Signal, runnable, supervision_tree};

    #[runnable]
    pub(super) async fn strict(ctx: Context, name: String) -> supervisor::Result {
        ctx.logger().info(&name);
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    }

    supervision_tree! {
        pub(super) fn strict_tree(name: String) {
            one: strict(name.clone()),
            two { three: strict(name.clone()) },
        }
    }

    #[test]
    fn used() {
        let _ = strict_tree(String::new());
    }
}

/// Attributes of a `#[runnable] fn` go where they belong: `instrument` on the body (named
/// after the function, with `skip(ctx)` working), `doc` and `must_use` on the constructor.
/// A worker, documented.
#[runnable]
#[must_use = "start it"]
#[tracing::instrument(skip(ctx), fields(job = %job))]
async fn instrumented(ctx: Context, job: String) -> supervisor::Result {
    tracing::info!("working");
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn tracing_instrument_on_a_runnable_instruments_its_body() {
    let (captured, _guard) = crate::support::capture();
    let sup = Supervisor::new(crate::support::tree(|ctx| {
        ctx.run("worker", instrumented("nightly".into()))
    }));
    sup.settled().await;
    let working = captured.find("working").expect("the body's event was seen");
    assert_eq!(
        working.spans.first().map(String::as_str),
        Some("instrumented")
    );
    assert_eq!(working.dn.as_deref(), Some("root.worker"));
    assert_eq!(
        crate::support::texts(&sup.log_tree(), "root.worker"),
        ["working"]
    );
    shut_down(sup).await;
}

supervision_tree! {
    fn supervised_chain(conn: Remote, session: Remote, once: Remote) {
        #[restart = transient]
        once: once.runnable(),
        #[strategy = rest_for_one]
        #[intensity(1, 1h)]
        group {
            #[shutdown = 2s] conn: conn.runnable(),
            #[restart = temporary] session: session.runnable(),
        },
    }
}

#[tokio::test(start_paused = true)]
async fn a_tree_declares_how_its_children_are_supervised() {
    use supervisor::{Restart, Shutdown, Strategy};
    let (conn, session, once) = (Remote::healthy(), Remote::healthy(), Remote::healthy());
    let sup = Supervisor::new(supervised_chain(
        conn.clone(),
        session.clone(),
        once.clone(),
    ));
    sup.settled().await;

    // Transient: returning Ok is a normal end.
    once.send(Cmd::Return);
    sup.settled().await;
    assert_eq!(sup.states()["root.once"], NodeState::Done);

    // rest_for_one, with a temporary session: the connection's failure cancels the session,
    // which is not started again; a second failure within the hour is one too many.
    conn.send(Cmd::Fail("lost upstream"));
    sup.settled().await;
    assert_eq!((conn.starts(), session.starts()), (2, 1));
    assert_eq!(sup.states()["root.session"], NodeState::Canceled);
    conn.send(Cmd::Fail("lost upstream again"));
    sup.settled().await;
    let root = sup.status();
    let error = root
        .get("root")
        .unwrap()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(
        error.starts_with("too many restarts: 2 within 3600s"),
        "{error}"
    );

    let declared = registry::find("supervised_chain").unwrap();
    let c = &declared.contents;
    assert_eq!(c.children[0].restart, Restart::Transient);
    assert_eq!(c.groups[1].strategy, Strategy::RestForOne);
    assert_eq!(
        c.children[1].shutdown,
        Some(Shutdown::Timeout(std::time::Duration::from_secs(2)))
    );
    let printed = declared.topology().to_string();
    assert!(
        printed.contains("[group 1: rest_for_one, intensity 1 in 3600s] [temporary]"),
        "{printed}"
    );
    shut_down(sup).await;
}

#[runnable]
async fn acceptor(ctx: Context, jobs: supervisor::Dynamic, count: usize) -> supervisor::Result {
    for _ in 0..count {
        jobs.start(crate::support::serve)?;
    }
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

supervision_tree! {
    fn with_jobs() {
        #[max_children = 8]
        #[restart = transient]
        #[intensity(3, 10s)]
        dynamic jobs,
        front: acceptor(jobs.clone(), 2),
        back {
            more: acceptor(jobs, 1),
        },
    }
}

#[tokio::test(start_paused = true)]
async fn a_tree_declares_a_dynamic_group_and_hands_its_handle_to_the_entries_after_it() {
    let sup = Supervisor::new(with_jobs());
    sup.settled().await;
    let status = sup.status();
    let jobs = status.get("root.jobs").expect("the group");
    assert_eq!(jobs.state, NodeState::Healthy);
    let dynamic = jobs.dynamic.as_ref().expect("a dynamic group");
    assert_eq!(
        (dynamic.children, dynamic.max_children, dynamic.kind),
        (3, Some(8), supervisor::Restart::Transient)
    );
    assert_eq!(
        dynamic.intensity,
        Some(supervisor::Intensity::new(3, std::time::Duration::from_secs(10)).unwrap())
    );
    for dn in ["root.jobs.c1", "root.jobs.c2", "root.jobs.c3"] {
        assert_eq!(
            status.get(dn).map(|n| n.state),
            Some(NodeState::Healthy),
            "{dn}"
        );
    }

    let declared = registry::find("with_jobs").expect("registered");
    let first = &declared.contents.children[0];
    assert_eq!(first.name, "jobs");
    assert_eq!(first.restart, supervisor::Restart::Transient);
    assert!(matches!(
        first.kind,
        ChildKind::Dynamic {
            max_children: Some(8),
            intensity: Some(_)
        }
    ));
    let printed = declared.topology().to_string();
    assert!(
        printed.contains("jobs             (dynamic, at most 8, intensity 3 in 10s) [transient]"),
        "{printed}"
    );
    shut_down(sup).await;
}

#[runnable]
async fn body_with_a_dynamic_group(ctx: Context) -> supervisor::Result {
    let _conns = ctx.dynamic(
        "conns",
        supervisor::DynamicSpec::new()
            .max_children(16)
            .child(supervisor::Spec::new().restart(supervisor::Restart::Permanent)),
    )?;
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

#[test]
fn a_runnable_body_registers_its_literal_dynamic_group() {
    let declared = registry::find("body_with_a_dynamic_group").expect("registered");
    let conns = &declared.contents.children[0];
    assert_eq!(conns.name, "conns");
    assert_eq!(conns.restart, supervisor::Restart::Permanent);
    assert!(matches!(
        conns.kind,
        ChildKind::Dynamic {
            max_children: Some(16),
            intensity: None
        }
    ));
}
