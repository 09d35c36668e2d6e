//! A reference model of a dynamic group (DESIGN §15), checked against the real supervisor on
//! generated sequences of starts, ends and parent failures (proptest), under paused time,
//! after every settled step.
//!
//! The model: each child has the group's kind. A failure (error or panic) restarts a
//! permanent or transient child and counts once in the group's window; a temporary one
//! leaves. `Ok` without `Done` restarts a permanent child (a failure) and is a normal end
//! for the others, which leave; `Done` then `Ok` is a normal end for every kind. Past the
//! group's intensity its parent fails instead. A parent's failure takes every child with
//! it: the old handle is stale, the new group starts naming from `c1` again, with an empty
//! window. A start beyond `max_children` is refused. Backoff is zero, so a restart is done
//! by the time the tree has settled.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use supervisor::{
    Backoff, Dynamic, DynamicSpec, Intensity, NodeState, Restart, RunError, Signal, Spec,
    Supervisor,
};

use crate::support::{Cmd, Remote, host};

#[derive(Clone, Copy, Debug)]
enum Op {
    Start,
    Fail(usize),
    Panic(usize),
    ReturnOk(usize),
    DoneThenOk(usize),
    ParentFails,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Start),
        2 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Panic),
        1 => any::<usize>().prop_map(Op::ReturnOk),
        1 => any::<usize>().prop_map(Op::DoneThenOk),
        1 => Just(Op::ParentFails),
    ]
}

fn kind() -> impl Strategy<Value = Restart> {
    prop_oneof![
        Just(Restart::Permanent),
        Just(Restart::Transient),
        Just(Restart::Temporary),
    ]
}

#[derive(Debug)]
struct Case {
    kind: Restart,
    max_children: Option<usize>,
    /// Restarts allowed within the hour (longer than any case), if limited.
    limit: Option<u32>,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        kind(),
        proptest::option::of(1..6usize),
        proptest::option::of(0..4u32),
        proptest::collection::vec(op(), 1..30),
    )
        .prop_map(|(kind, max_children, limit, ops)| Case {
            kind,
            max_children,
            limit,
            ops,
        })
}

/// The model's group: its children by name (their starts), the next automatic number, and
/// the restarts in its window.
#[derive(Default)]
struct Model {
    children: BTreeMap<String, usize>,
    next: usize,
    restarts: u32,
}

impl Model {
    fn fresh() -> Self {
        Model {
            next: 1,
            ..Model::default()
        }
    }
}

async fn check(case: Case) -> Result<(), TestCaseError> {
    let mut spec = DynamicSpec::new().child(Spec::new().restart(case.kind));
    if let Some(max) = case.max_children {
        spec = spec.max_children(max);
    }
    if let Some(limit) = case.limit {
        spec = spec.intensity(Intensity::new(limit, Duration::from_secs(3600)).unwrap());
    }
    let (root, mut host) = host(spec);
    let sup = Supervisor::builder()
        .backoff(Backoff::constant(Duration::ZERO))
        .start(root);
    let mut group: Dynamic = host.next().await;
    let mut remotes: BTreeMap<String, Remote> = BTreeMap::new();
    let mut model = Model::fresh();
    for op in case.ops {
        let live: Vec<String> = model.children.keys().cloned().collect();
        let pick = |i: usize| live.get(i % live.len().max(1)).cloned();
        // What the op does to the model; whether the parent fails.
        let mut parent_fails = false;
        match op {
            Op::Start => {
                let remote = Remote::healthy();
                let started = group.start(remote.runnable());
                if case
                    .max_children
                    .is_some_and(|max| model.children.len() >= max)
                {
                    prop_assert!(
                        matches!(started, Err(RunError::Full { .. })),
                        "{:?}",
                        started
                    );
                } else {
                    let name = format!("c{}", model.next);
                    model.next += 1;
                    prop_assert_eq!(started, Ok(format!("root.conns.{name}")));
                    model.children.insert(name.clone(), 1);
                    remotes.insert(name, remote);
                }
            }
            Op::Fail(i) | Op::Panic(i) | Op::ReturnOk(i) | Op::DoneThenOk(i) => {
                let Some(name) = pick(i) else { continue };
                let remote = &remotes[&name];
                let failed = match op {
                    Op::Fail(_) => {
                        remote.send(Cmd::Fail("failed"));
                        true
                    }
                    Op::Panic(_) => {
                        remote.send(Cmd::Panic("panicked"));
                        true
                    }
                    Op::ReturnOk(_) => {
                        remote.send(Cmd::Return);
                        case.kind == Restart::Permanent
                    }
                    _ => {
                        remote.send(Cmd::Signal(Signal::Done));
                        remote.send(Cmd::Return);
                        false
                    }
                };
                if failed && case.kind != Restart::Temporary {
                    model.restarts += 1;
                    if case.limit.is_some_and(|limit| model.restarts > limit) {
                        parent_fails = true;
                    } else if let Some(starts) = model.children.get_mut(&name) {
                        *starts += 1;
                    }
                } else {
                    model.children.remove(&name);
                }
            }
            Op::ParentFails => {
                host.fail.notify_one();
                parent_fails = true;
            }
        }
        sup.settled().await;
        if parent_fails {
            let old = group;
            // Paused time: an hour passes at once if the parent never comes back.
            let next = tokio::time::timeout(Duration::from_secs(3600), host.next()).await;
            prop_assert!(
                next.is_ok(),
                "the parent did not start again after {:?}",
                op
            );
            group = next.unwrap();
            sup.settled().await;
            let stale = old.start(serve);
            prop_assert!(matches!(stale, Err(RunError::Stale { .. })), "{:?}", stale);
            model = Model::fresh();
            remotes.clear();
        }

        let states = sup.states();
        let real: BTreeMap<&str, NodeState> = states
            .iter()
            .filter_map(|(dn, s)| Some((dn.strip_prefix("root.conns.")?, *s)))
            .collect();
        let expected: Vec<&str> = model.children.keys().map(String::as_str).collect();
        prop_assert_eq!(
            real.keys().copied().collect::<Vec<_>>(),
            expected,
            "after {:?}",
            op
        );
        prop_assert!(
            real.values().all(|&s| s == NodeState::Healthy),
            "{:?}",
            real
        );
        prop_assert_eq!(group.len(), model.children.len());
        for (name, &starts) in &model.children {
            prop_assert_eq!(remotes[name].starts(), starts, "starts of {}", name);
        }
        prop_assert_eq!(states.get("root"), Some(&NodeState::Healthy));
        let agrees = crate::support::readiness_agrees(&sup);
        prop_assert!(agrees.is_ok(), "after {:?}: {}", op, agrees.unwrap_err());
    }
    sup.cancel();
    let probe = sup.clone();
    sup.wait().await;
    prop_assert!(probe.live_runnables().is_empty());
    prop_assert_eq!(probe.states().len(), 2, "{:?}", probe.states());
    Ok(())
}

async fn serve(ctx: supervisor::Context) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_dynamic_group_follows_the_model(case in case()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(check(case))?;
    }
}
