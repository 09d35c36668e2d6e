//! An operator's controls (DESIGN §18): restart now, stop and hold, start (release); their
//! errors; a hold through the group's restarts and its end with the parent's incarnation;
//! and the races, under paused time.

use std::time::Duration;

use supervisor::{
    Backoff, Context, ControlError, Group, Intensity, NodeState, Restart, Shutdown, Signal, Spec,
    Supervisor,
};
use tokio::time::Instant;

use crate::support::{Cmd, Remote, shut_down, state, texts, tree};

/// A root with the group `a`, `b` (one for all, at most 0 restarts in a minute: any
/// failure escalates), and a backoff of 10 s.
fn pair(a: &Remote, b: &Remote) -> Supervisor {
    let (a, b) = (a.clone(), b.clone());
    Supervisor::builder()
        .backoff(Backoff::constant(Duration::from_secs(10)))
        .start(move |ctx: Context| {
            let (a, b) = (a.clone(), b.clone());
            async move {
                ctx.run_group(
                    Group::new()
                        .add("a", a.runnable())
                        .add("b", b.runnable())
                        .intensity(Intensity::new(0, Duration::from_secs(60)).unwrap()),
                )?;
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                Ok(())
            }
        })
}

fn said(sup: &Supervisor) -> Vec<String> {
    texts(&sup.log_tree(), "supervisor")
}

#[tokio::test(start_paused = true)]
async fn a_restart_is_at_once_alone_and_counts_in_no_intensity() {
    let (a, b) = (Remote::healthy(), Remote::healthy());
    let sup = pair(&a, &b);
    sup.settled().await;
    let before = Instant::now();
    for round in 1..=3 {
        sup.restart("root.a").unwrap();
        sup.settled().await;
        assert_eq!(a.starts(), 1 + round);
    }
    assert_eq!(Instant::now(), before, "no backoff");
    assert_eq!(
        b.starts(),
        1,
        "its sibling is left alone, though the group is one for all"
    );
    assert_eq!(state(&sup, "root"), NodeState::Healthy, "no escalation");
    assert_eq!(sup.status().get("root.a").unwrap().restarts, 3);
    assert!(sup.crash_reports().is_empty(), "no failure");
    assert!(
        said(&sup).iter().any(|l| l
            == "Supervisor::restart asked to restart root.a: stopping it, to start again at once once it has returned"),
        "{:?}",
        said(&sup)
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_cuts_a_backoff_short_and_runs_an_ended_node_again() {
    let flaky = Remote::healthy();
    let f = flaky.clone();
    let sup = Supervisor::builder()
        .backoff(Backoff::constant(Duration::from_secs(30)))
        .start(tree(move |ctx| {
            ctx.run("flaky", f.runnable())?;
            ctx.run_with(
                "once",
                |ctx: Context| async move {
                    ctx.signal(Signal::Healthy);
                    ctx.signal(Signal::Done);
                    Ok(())
                },
                Spec::new().restart(Restart::Temporary),
            )
        }));
    let mut events = sup.events();
    sup.settled().await;
    flaky.send(Cmd::Fail("boom"));
    // Told of the death, before the paused clock can run on to the backoff's end.
    crate::crash::died(&mut events, "root.flaky").await;
    let before = Instant::now();
    sup.restart("root.flaky").unwrap();
    sup.settled().await;
    assert_eq!(flaky.starts(), 2);
    assert!(
        Instant::now() - before < Duration::from_secs(30),
        "not after its backoff"
    );
    assert_eq!(state(&sup, "root.flaky"), NodeState::Healthy);

    assert_eq!(state(&sup, "root.once"), NodeState::Done);
    sup.restart("root.once").unwrap();
    sup.settled().await;
    assert_eq!(sup.status().get("root.once").unwrap().restarts, 1);
    assert_eq!(state(&sup, "root.once"), NodeState::Done, "ran again");
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_held_node_stays_down_through_its_groups_restarts_until_released() {
    let (a, b) = (Remote::healthy(), Remote::healthy());
    let (ra, rb) = (a.clone(), b.clone());
    let sup = Supervisor::builder()
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .start(tree(move |ctx| {
            ctx.run_group(Group::new().add("a", ra.runnable()).add("b", rb.runnable()))
        }));
    let mut events = sup.events();
    sup.settled().await;
    sup.stop("root.a").unwrap();
    sup.settled().await;
    assert_eq!(state(&sup, "root.a"), NodeState::Canceled);
    assert_eq!(b.starts(), 1, "stopping one is no failure of the group");
    // Its group restarts twice around it.
    for n in 2..=3 {
        b.send(Cmd::Fail("b failed"));
        sup.settled().await;
        assert_eq!(b.starts(), n);
    }
    assert_eq!(a.starts(), 1, "held through its group's restarts");
    assert_eq!(state(&sup, "root.a"), NodeState::Canceled);
    assert!(!sup.health().is_ready(), "a held node is down, and says so");
    // Stopping it again changes nothing; starting it releases it.
    sup.stop("root.a").unwrap();
    sup.start("root.a").unwrap();
    sup.settled().await;
    assert_eq!(a.starts(), 2);
    assert_eq!(state(&sup, "root.a"), NodeState::Healthy);
    assert_eq!(
        sup.start("root.a"),
        Err(ControlError::NotHeld("root.a".into()))
    );
    let kinds: Vec<&'static str> = std::iter::from_fn(|| events.try_next())
        .filter_map(|item| match item {
            supervisor::Observed::Event(e) if &*e.dn == "root.a" => Some(e.kind.name()),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "started",
            "healthy",
            "held",
            "canceled",
            "released",
            "restart-scheduled",
            "started",
            "healthy"
        ]
    );
    let log = said(&sup);
    assert!(
        log.iter()
            .any(|l| l == "not restarting root.a: an operator holds it (until Supervisor::start)"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l == "Supervisor::stop asked to stop root.a: held: stopping it")
    );
    assert!(
        log.iter()
            .any(|l| l == "Supervisor::start asked to start root.a: released and started")
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_hold_is_forgotten_with_its_parents_incarnation() {
    let x = Remote::healthy();
    let mid = Remote::healthy().with_child("x", &x);
    let m = mid.clone();
    let sup = Supervisor::new(tree(move |ctx| ctx.run("mid", m.runnable())));
    sup.settled().await;
    sup.stop("root.mid.x").unwrap();
    sup.settled().await;
    assert_eq!(state(&sup, "root.mid.x"), NodeState::Canceled);
    sup.restart("root.mid").unwrap();
    sup.settled().await;
    assert_eq!(
        x.starts(),
        2,
        "a new incarnation of the parent starts its child anew"
    );
    assert_eq!(state(&sup, "root.mid.x"), NodeState::Healthy);
    assert_eq!(
        sup.start("root.mid.x"),
        Err(ControlError::NotHeld("root.mid.x".into()))
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn controls_are_refused_with_a_reason() {
    let (a, b) = (Remote::healthy(), Remote::healthy());
    let sup = pair(&a, &b);
    sup.settled().await;
    let unknown = sup.restart("root.nope").unwrap_err();
    assert_eq!(unknown, ControlError::UnknownDn("root.nope".into()));
    assert_eq!(unknown.to_string(), r#"no node has the DN "root.nope""#);
    assert_eq!(
        sup.stop("not a dn"),
        Err(ControlError::UnknownDn("not a dn".into()))
    );
    let root = sup.stop("root").unwrap_err();
    assert_eq!(root, ControlError::Root);
    assert!(root.to_string().contains("cancel the supervisor"), "{root}");
    assert_eq!(sup.restart("root"), Err(ControlError::Root));
    let not_held = sup.start("root.b").unwrap_err();
    assert_eq!(
        not_held.to_string(),
        "root.b is not held: only a node stopped by an operator can be started"
    );
    sup.cancel();
    for result in [
        sup.restart("root.a"),
        sup.stop("root.a"),
        sup.start("root.a"),
    ] {
        assert_eq!(result, Err(ControlError::ShuttingDown));
    }
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_stop_as_the_node_fails_holds_it_either_way() {
    // The failure first: its restart is pending its backoff when the stop comes.
    let (a, b) = (Remote::healthy(), Remote::healthy());
    let (ra, rb) = (a.clone(), b.clone());
    let sup = Supervisor::builder()
        .backoff(Backoff::constant(Duration::from_secs(5)))
        .start(tree(move |ctx| {
            ctx.run_group(Group::new().add("a", ra.runnable()).add("b", rb.runnable()))
        }));
    let mut events = sup.events();
    sup.settled().await;
    a.send(Cmd::Fail("boom"));
    crate::crash::died(&mut events, "root.a").await;
    sup.stop("root.a").unwrap();
    sup.settled().await;
    tokio::time::advance(Duration::from_secs(60)).await;
    sup.settled().await;
    assert_eq!(a.starts(), 1, "the pending restart was dropped");
    assert_eq!(state(&sup, "root.a"), NodeState::Dead);
    assert_eq!(b.starts(), 2, "its group's restart went ahead");
    sup.start("root.a").unwrap();
    sup.settled().await;
    assert_eq!(a.starts(), 2);
    shut_down(sup).await;

    // The stop first: the node fails on its way out, which is no new failure.
    let (a, b) = (Remote::healthy(), Remote::healthy());
    let (ra, rb) = (a.clone(), b.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add("a", ra.clone().ignoring_cancel().runnable())
                .add("b", rb.runnable()),
        )
    }));
    sup.settled().await;
    sup.stop("root.a").unwrap();
    a.send(Cmd::Fail("failed while stopping"));
    sup.settled().await;
    tokio::time::advance(Duration::from_secs(60)).await;
    sup.settled().await;
    assert_eq!(state(&sup, "root.a"), NodeState::Dead);
    assert_eq!(a.starts(), 1, "held");
    assert_eq!(
        b.starts(),
        1,
        "its failure on the way out restarts no sibling"
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_of_a_node_whose_parent_is_stopping_leaves_it_to_the_parent() {
    let x = Remote::healthy().ignoring_cancel();
    let x_runnable = x.runnable();
    let x_shared = std::sync::Arc::new(x_runnable);
    let sup = Supervisor::builder()
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .start(tree(move |ctx| {
            let x = x_shared.clone();
            ctx.run_with(
                "mid",
                move |ctx: Context| {
                    let x = x.clone();
                    async move {
                        ctx.run_with(
                            "x",
                            move |ctx: Context| x(ctx),
                            Spec::new().shutdown(Shutdown::Timeout(Duration::from_secs(3))),
                        )?;
                        ctx.signal(Signal::Healthy);
                        ctx.cancelled().await;
                        Ok(())
                    }
                },
                Spec::new(),
            )
        }));
    sup.settled().await;
    sup.restart("root.mid").unwrap();
    // `x` ignores its cancellation: `mid` waits for it, up to x's 3 s.
    sup.restart("root.mid.x").unwrap();
    sup.stop("root.mid.x").unwrap();
    sup.settled().await;
    assert_eq!(
        x.starts(),
        2,
        "aborted at its deadline, then started anew with its parent"
    );
    assert_eq!(
        state(&sup, "root.mid.x"),
        NodeState::Healthy,
        "the new incarnation holds nothing"
    );
    assert!(said(&sup).iter().any(|l| l
        == "Supervisor::restart asked to restart root.mid.x: nothing to do: its parent is stopping, and starts it again if it restarts"));
    shut_down(sup).await;
}
