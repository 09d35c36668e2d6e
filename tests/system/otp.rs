//! OTP's restart policy (DESIGN §14), in scenarios after OTP's own `supervisor_SUITE`
//! (erlang/otp `lib/stdlib/test/supervisor_SUITE.erl`): restart kinds under one_for_all and
//! rest_for_one, intensity and escalation, the window's edge, shutdown policies and ordered
//! shutdown. All under paused time; the children report what they saw themselves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor::{
    Backoff, Context, Ended, Group, Intensity, NodeState, Restart, RunError, Runnable, Shutdown,
    Signal, Spec, StartError, Strategy, Supervisor,
};
use tokio::time::Instant;

use crate::support::{Cmd, DropTime, Remote, recorded, serve, shut_down, state, tree};

fn spec(kind: Restart) -> Spec {
    Spec::new().restart(kind)
}

fn intensity(max: u32, secs: u64) -> Intensity {
    Intensity::new(max, Duration::from_secs(secs)).unwrap()
}

// ---- Restart kinds ----------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn one_for_all_permanent_transient_temporary() {
    let (perm, trans, temp) = (Remote::healthy(), Remote::healthy(), Remote::healthy());
    let (p, tr, te) = (perm.clone(), trans.clone(), temp.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add("perm", p.runnable())
                .add_with("trans", tr.runnable(), spec(Restart::Transient))
                .add_with("temp", te.runnable(), spec(Restart::Temporary)),
        )
    }));
    sup.settled().await;

    // A transient child that returns Ok has ended normally: nothing restarts.
    trans.send(Cmd::Return);
    sup.settled().await;
    assert_eq!(state(&sup, "root.trans"), NodeState::Done);
    assert_eq!((perm.starts(), trans.starts(), temp.starts()), (1, 1, 1));

    // A permanent child's failure restarts the group: the Done transient one with it (a
    // kind decides what a node's own end means, not what a sibling's does), the temporary
    // one is cancelled and not started again.
    perm.send(Cmd::Fail("perm broke"));
    sup.settled().await;
    assert_eq!((perm.starts(), trans.starts(), temp.starts()), (2, 2, 1));
    assert_eq!(state(&sup, "root.temp"), NodeState::Canceled);
    assert_eq!(state(&sup, "root.trans"), NodeState::Healthy);

    // A transient child's failure is a failure.
    trans.send(Cmd::Fail("trans broke"));
    sup.settled().await;
    assert_eq!((perm.starts(), trans.starts()), (3, 3));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_temporary_child_is_never_restarted_and_cancels_no_sibling() {
    let (temp, sibling) = (Remote::healthy(), Remote::healthy());
    let (t, s) = (temp.clone(), sibling.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add_with("temp", t.runnable(), spec(Restart::Temporary))
                .add("sibling", s.runnable()),
        )
    }));
    sup.settled().await;
    temp.send(Cmd::Fail("temp broke"));
    sup.settled().await;
    assert_eq!(state(&sup, "root.temp"), NodeState::Dead);
    assert_eq!(state(&sup, "root.sibling"), NodeState::Healthy);
    assert_eq!((temp.starts(), sibling.starts()), (1, 1));
    let status = sup.status();
    assert_eq!(status.get("root.temp").unwrap().kind, Restart::Temporary);
    assert!(
        status.get("root.temp").unwrap().last_error.as_deref()
            == Some("returned error: temp broke")
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_temporary_child_ending_normally_is_done() {
    let temp = Remote::healthy();
    let t = temp.clone();
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_with("temp", t.runnable(), spec(Restart::Temporary))
    }));
    sup.settled().await;
    temp.send(Cmd::Return);
    // Everything is Done: the tree finishes by itself.
    assert_eq!(sup.clone().wait().await, Ended::Finished);
    assert_eq!(state(&sup, "root.temp"), NodeState::Done);
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let remotes: Vec<Remote> = (0..4).map(|_| Remote::healthy()).collect();
    let r = remotes.clone();
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add("one", r[0].runnable())
                .add("two", r[1].runnable())
                .add_with("three", r[2].runnable(), spec(Restart::Transient))
                .add_with("four", r[3].runnable(), spec(Restart::Temporary))
                .strategy(Strategy::RestForOne),
        )
    }));
    sup.settled().await;
    remotes[1].send(Cmd::Fail("two broke"));
    sup.settled().await;
    let starts: Vec<usize> = remotes.iter().map(Remote::starts).collect();
    // One keeps running; two and three restart (three whatever its kind); four is
    // temporary and stays down.
    assert_eq!(starts, [1, 2, 2, 1]);
    assert_eq!(state(&sup, "root.four"), NodeState::Canceled);

    // The last member's failure restarts only itself.
    remotes[2].send(Cmd::Fail("three broke"));
    sup.settled().await;
    let starts: Vec<usize> = remotes.iter().map(Remote::starts).collect();
    assert_eq!(starts, [1, 2, 3, 1]);
    let root = sup.status();
    assert_eq!(
        root.get("root").unwrap().groups[0].strategy,
        Strategy::RestForOne
    );
    shut_down(sup).await;
}

// ---- Intensity ----------------------------------------------------------------------------

/// `sup` below the root, whose group of one `child` has `limit`.
fn supervised(child: &Remote, limit: Intensity) -> impl Runnable {
    let child = child.clone();
    tree(move |ctx| {
        let child = child.clone();
        ctx.run(
            "sup",
            tree(move |ctx| {
                ctx.run_group(Group::new().add("child", child.runnable()).intensity(limit))
            }),
        )
    })
}

#[tokio::test(start_paused = true)]
async fn intensity_zero_escalates_on_the_first_failure() {
    let child = Remote::healthy();
    let (sup, recorder) = recorded(supervised(&child, intensity(0, 5)));
    sup.settled().await;
    child.send(Cmd::Fail("boom"));
    recorder.wait_for("root.sup", NodeState::Dead).await;
    let error = sup
        .status()
        .get("root.sup")
        .unwrap()
        .last_error
        .clone()
        .unwrap();
    assert_eq!(
        error,
        "too many restarts: 1 within 5s, more than its intensity allows (0 in 5s); last \
         failure: root.sup.child: returned error: boom"
    );
    // The ordinary rules then apply to the parent: its own group restarts it, and it starts
    // the child anew.
    sup.settled().await;
    assert_eq!(state(&sup, "root.sup"), NodeState::Done);
    assert_eq!(state(&sup, "root.sup.child"), NodeState::Healthy);
    assert_eq!(child.starts(), 2);
    shut_down(sup).await;
}

/// Two failures `apart`, under an intensity of 1 in 10 s, and no backoff: whether the
/// second escalates.
async fn second_failure_escalates(apart: Duration) -> bool {
    let child = Remote::healthy();
    let sup = Supervisor::builder()
        .backoff(Backoff::none())
        .start(supervised(&child, intensity(1, 10)));
    sup.settled().await;
    child.send(Cmd::Fail("first"));
    sup.settled().await;
    assert_eq!(child.starts(), 2);
    tokio::time::advance(apart).await;
    child.send(Cmd::Fail("second"));
    sup.settled().await;
    let escalated = sup.status().get("root.sup").unwrap().restarts == 1;
    shut_down(sup).await;
    escalated
}

#[tokio::test(start_paused = true)]
async fn a_restart_exactly_one_period_earlier_is_inside_the_window() {
    // OTP's window is closed at its old edge: the first restart, exactly 10 s before the
    // second, still counts, so the second is one too many.
    assert!(second_failure_escalates(Duration::from_secs(10)).await);
}

#[tokio::test(start_paused = true)]
async fn a_restart_just_over_one_period_earlier_has_left_the_window() {
    assert!(!second_failure_escalates(Duration::from_secs(10) + Duration::from_nanos(1)).await);
}

#[tokio::test(start_paused = true)]
async fn healthy_does_not_reset_the_window() {
    let child = Remote::healthy(); // signals Healthy on every start
    let sup = Supervisor::builder()
        .backoff(Backoff::none())
        .start(supervised(&child, intensity(2, 60)));
    sup.settled().await;
    for _ in 0..2 {
        child.send(Cmd::Fail("again"));
        sup.settled().await;
    }
    let status = sup.status();
    assert_eq!(status.get("root.sup").unwrap().restarts, 0);
    assert_eq!(
        status.get("root.sup").unwrap().groups[0].restarts_in_window,
        Some(2)
    );
    child.send(Cmd::Fail("third"));
    sup.settled().await;
    assert_eq!(
        sup.status().get("root.sup").unwrap().restarts,
        1,
        "escalated"
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn escalation_through_two_levels_gives_the_tree_up() {
    let leaf = Remote::healthy();
    let l = leaf.clone();
    let zero = intensity(0, 5);
    let sup = Supervisor::builder()
        .intensity(zero)
        .start(tree(move |ctx| {
            let l = l.clone();
            ctx.run("mid", tree(move |ctx| ctx.run("leaf", l.runnable())))
        }));
    sup.settled().await;
    leaf.send(Cmd::Fail("leaf broke"));
    let probe = sup.clone();
    let Ended::GaveUp { reason } = sup.wait().await else {
        panic!("the tree should have given up")
    };
    // The root's reason names its own window, and the chain of last failures below it.
    assert!(
        reason.starts_with("root: too many restarts: 1 within 5s"),
        "{reason}"
    );
    assert!(
        reason.contains("last failure: root: too many restarts"),
        "{reason}"
    );
    assert!(
        reason.contains("last failure: root.mid: too many restarts"),
        "{reason}"
    );
    assert!(
        reason.ends_with("root.mid.leaf: returned error: leaf broke"),
        "{reason}"
    );
    assert!(probe.live_runnables().is_empty());
    assert_eq!(state(&probe, "root"), NodeState::Dead);
}

#[tokio::test(start_paused = true)]
async fn a_temporary_child_failing_counts_toward_no_intensity() {
    let (temp, other) = (Remote::healthy(), Remote::healthy());
    let (t, o) = (temp.clone(), other.clone());
    let sup = Supervisor::builder()
        .intensity(intensity(0, 60))
        .start(tree(move |ctx| {
            ctx.run_with("temp", t.runnable(), spec(Restart::Temporary))?;
            ctx.run("other", o.runnable())
        }));
    sup.settled().await;
    temp.send(Cmd::Fail("temp broke"));
    sup.settled().await;
    assert!(!sup.is_cancelled(), "nothing escalated");
    assert_eq!(state(&sup, "root.other"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_temporary_root_that_fails_gives_up() {
    let sup = Supervisor::builder()
        .root_spec(spec(Restart::Temporary))
        .start(|_ctx: Context| async move { Err("no config".into()) });
    let ended = sup.wait().await;
    assert!(ended.is_failure(), "{ended:?}");
}

#[tokio::test(start_paused = true)]
async fn a_transient_root_that_returns_ok_finishes_the_tree() {
    let sup = Supervisor::builder()
        .root_spec(spec(Restart::Transient))
        .start(|_ctx: Context| async move { Ok(()) });
    assert_eq!(sup.wait().await, Ended::Finished);
}

// ---- Shutdown policies ------------------------------------------------------------------

/// Signals Healthy, then ignores its cancellation until dropped.
fn stubborn(dropped: DropTime) -> impl Runnable {
    move |ctx: Context| {
        let guard = dropped.guard();
        async move {
            let _guard = guard;
            ctx.signal(Signal::Healthy);
            std::future::pending::<()>().await;
            Ok(())
        }
    }
}

async fn dropped_after(shutdown: Shutdown) -> (Duration, NodeState) {
    let dropped = DropTime::default();
    let d = dropped.clone();
    let sup = Supervisor::builder()
        .shutdown_grace(Duration::from_secs(5))
        .start(tree(move |ctx| {
            ctx.run_with("c", stubborn(d.clone()), Spec::new().shutdown(shutdown))
        }));
    sup.settled().await;
    let cancelled = Instant::now();
    let probe = sup.clone();
    shut_down(sup).await;
    let at = dropped.at("the child");
    (at - cancelled, state(&probe, "root.c"))
}

#[tokio::test(start_paused = true)]
async fn brutal_drops_the_future_at_once_and_ends_canceled() {
    assert_eq!(
        dropped_after(Shutdown::Brutal).await,
        (Duration::ZERO, NodeState::Canceled)
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_per_child_replaces_the_grace_period() {
    assert_eq!(
        dropped_after(Shutdown::Timeout(Duration::from_millis(300))).await,
        (Duration::from_millis(300), NodeState::Dead)
    );
    // Without a spec, the builder's grace.
    assert_eq!(
        dropped_after(Shutdown::Timeout(Duration::from_secs(5))).await,
        (Duration::from_secs(5), NodeState::Dead)
    );
}

#[tokio::test(start_paused = true)]
async fn infinity_is_never_aborted() {
    let child = Remote::healthy().ignoring_cancel();
    let c = child.clone();
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_with("c", c.runnable(), Spec::new().shutdown(Shutdown::Infinity))
    }));
    sup.settled().await;
    sup.cancel();
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(sup.live_runnables(), ["root.c"]);
    child.send(Cmd::Return);
    let probe = sup.clone();
    assert_eq!(sup.wait().await, Ended::Cancelled);
    assert_eq!(state(&probe, "root.c"), NodeState::Canceled);
}

#[tokio::test(start_paused = true)]
async fn aborting_a_node_aborts_its_whole_subtree() {
    let dropped = DropTime::default();
    let d = dropped.clone();
    let parent = move |ctx: Context| {
        let d = d.clone();
        async move {
            // The child would wait forever; its parent's timeout takes it along.
            ctx.run_with(
                "child",
                stubborn(d),
                Spec::new().shutdown(Shutdown::Infinity),
            )?;
            ctx.signal(Signal::Healthy);
            std::future::pending::<()>().await;
            Ok(())
        }
    };
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_with(
            "parent",
            parent.clone(),
            Spec::new().shutdown(Shutdown::Timeout(Duration::from_secs(1))),
        )
    }));
    sup.settled().await;
    let cancelled = Instant::now();
    let probe = sup.clone();
    shut_down(sup).await;
    let at = dropped.at("the child");
    assert_eq!(at - cancelled, Duration::from_secs(1));
    let status = probe.status();
    let child = status.get("root.parent.child").unwrap();
    assert_eq!(child.state, NodeState::Dead);
    assert_eq!(
        child.last_error.as_deref(),
        Some(
            "aborted with its subtree: `root.parent` was aborted when its shutdown timeout \
             ran out"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_brutal_parent_takes_its_subtree_along_canceled() {
    let dropped = DropTime::default();
    let d = dropped.clone();
    let parent = move |ctx: Context| {
        let d = d.clone();
        async move {
            ctx.run("child", stubborn(d))?;
            ctx.signal(Signal::Healthy);
            std::future::pending::<()>().await;
            Ok(())
        }
    };
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_with(
            "parent",
            parent.clone(),
            Spec::new().shutdown(Shutdown::Brutal),
        )
    }));
    sup.settled().await;
    let cancelled = Instant::now();
    let probe = sup.clone();
    shut_down(sup).await;
    assert_eq!(dropped.at("the child") - cancelled, Duration::ZERO);
    assert_eq!(state(&probe, "root.parent.child"), NodeState::Canceled);
}

// ---- Ordered shutdown ---------------------------------------------------------------------

type Said = Arc<Mutex<Vec<String>>>;

/// Signals Healthy; once cancelled, says so, drains for `drain` (its own work, on the
/// clock), and says it returns. It checks that it is never cancelled before the members
/// added after it have returned.
fn member(name: &'static str, after: &'static [&'static str], said: Said) -> impl Runnable {
    move |ctx: Context| {
        let said = said.clone();
        async move {
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            {
                let mut said = said.lock().unwrap();
                for later in after {
                    assert!(
                        said.iter()
                            .rev()
                            .find(|s| s.starts_with(later))
                            .is_some_and(|s| s.ends_with("returned") || s.ends_with("restarted"))
                            || !said.iter().any(|s| s.starts_with(later)),
                        "{name} cancelled before {later} returned: {said:?}"
                    );
                }
                said.push(format!("{name} cancelled"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            said.lock().unwrap().push(format!("{name} returned"));
            Ok(())
        }
    }
}

fn ordered_group(said: &Said) -> Group {
    Group::new()
        .add("a", member("a", &["b", "c"], said.clone()))
        .add("b", member("b", &["c"], said.clone()))
        .add("c", member("c", &[], said.clone()))
        .ordered_shutdown()
}

#[tokio::test(start_paused = true)]
async fn ordered_shutdown_stops_members_in_reverse_on_cancel() {
    let said = Said::default();
    let s = said.clone();
    let sup = Supervisor::new(tree(move |ctx| ctx.run_group(ordered_group(&s))));
    sup.settled().await;
    let started = Instant::now();
    shut_down(sup).await;
    assert_eq!(
        *said.lock().unwrap(),
        [
            "c cancelled",
            "c returned",
            "b cancelled",
            "b returned",
            "a cancelled",
            "a returned"
        ]
    );
    // One at a time: the drains add up.
    assert_eq!(started.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn ordered_rest_for_one_stops_the_later_members_in_reverse() {
    let said = Said::default();
    let failing = Remote::healthy();
    let (s, f) = (said.clone(), failing.clone());
    let (sup, recorder) = recorded(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add("a", member("a", &["c", "d"], s.clone()))
                .add("b", f.runnable())
                .add("c", member("c", &["d"], s.clone()))
                .add("d", member("d", &[], s.clone()))
                .strategy(Strategy::RestForOne)
                .ordered_shutdown(),
        )
    }));
    sup.settled().await;
    failing.send(Cmd::Fail("b broke"));
    sup.settled().await;
    // `a`, added before `b`, keeps running; `d` then `c` stop in turn.
    assert_eq!(
        *said.lock().unwrap(),
        ["d cancelled", "d returned", "c cancelled", "c returned"]
    );
    assert_eq!(
        recorder.history("root.a"),
        [NodeState::New, NodeState::Healthy]
    );
    assert_eq!(failing.starts(), 2);
    for dn in ["root.b", "root.c", "root.d"] {
        assert_eq!(
            recorder.history(dn).last(),
            Some(&NodeState::Healthy),
            "{dn}"
        );
    }
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn an_ordered_one_for_all_group_stops_in_turn_and_starts_in_add_order() {
    let said = Said::default();
    let failing = Remote::healthy();
    let (s, f) = (said.clone(), failing.clone());
    let (sup, recorder) = recorded(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add("first", f.runnable())
                .add("b", member("b", &["c"], s.clone()))
                .add("c", member("c", &[], s.clone()))
                .ordered_shutdown(),
        )
    }));
    sup.settled().await;
    failing.send(Cmd::Fail("first broke"));
    sup.settled().await;
    assert_eq!(
        *said.lock().unwrap(),
        ["c cancelled", "c returned", "b cancelled", "b returned"]
    );
    assert_eq!(failing.starts(), 2);
    for dn in ["root.first", "root.b", "root.c"] {
        assert_eq!(state(&sup, dn), NodeState::Healthy, "{dn}");
    }
    // Started again together once the last has stopped: the others at once in add order,
    // the failed one after its backoff.
    assert_eq!(
        recorder.order(NodeState::New, 2),
        ["root.b", "root.c", "root.first"]
    );
    shut_down(sup).await;
}

// ---- Bad settings -----------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn bad_settings_are_clear_errors() {
    let err = Intensity::new(3, Duration::ZERO).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid intensity period \"0ns\": must be more than zero (max_restarts = 0 gives \
         up on the first failure)"
    );
    let sup = Supervisor::new(|ctx: Context| async move {
        let err = ctx
            .run_with(
                "c",
                serve,
                Spec::new().shutdown(Shutdown::Timeout(Duration::ZERO)),
            )
            .unwrap_err();
        assert!(matches!(&err, RunError::InvalidSpec { name, .. } if name == "c"));
        assert_eq!(
            err.to_string(),
            "`root` cannot start child \"c\": invalid shutdown timeout \"0ns\": must be more \
             than zero; a child dropped at once is `Shutdown::Brutal`"
        );
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    });
    sup.settled().await;
    assert_eq!(
        sup.states().len(),
        1,
        "nothing of the refused child was started"
    );
    shut_down(sup).await;

    let err = Supervisor::builder()
        .root_spec(Spec::new().shutdown(Shutdown::Timeout(Duration::ZERO)))
        .try_start(serve)
        .unwrap_err();
    assert!(matches!(err, StartError::InvalidSpec(_)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn settled_waits_for_an_ordered_group_to_stop_when_its_parent_fails() {
    let said = Said::default();
    let fail = Arc::new(tokio::sync::Notify::new());
    let (s, f) = (said.clone(), fail.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        let (s, f) = (s.clone(), f.clone());
        ctx.run("parent", move |ctx: Context| {
            let (s, f) = (s.clone(), f.clone());
            async move {
                ctx.run_group(
                    Group::new()
                        .add("a", member("a", &["b"], s.clone()))
                        .add("b", member("b", &[], s.clone()))
                        .ordered_shutdown(),
                )?;
                ctx.signal(Signal::Healthy);
                f.notified().await;
                Err("parent broke".into())
            }
        })
    }));
    sup.settled().await;
    fail.notify_one();
    // No sleep and no event wait: `settled` alone covers the watch's steps, the members'
    // drains, the parent's backoff and the fresh start.
    sup.settled().await;
    assert_eq!(
        *said.lock().unwrap(),
        ["b cancelled", "b returned", "a cancelled", "a returned"]
    );
    assert_eq!(sup.status().get("root.parent").unwrap().restarts, 1);
    for dn in ["root.parent", "root.parent.a", "root.parent.b"] {
        assert_eq!(state(&sup, dn), NodeState::Healthy, "{dn}");
    }
    shut_down(sup).await;
}
