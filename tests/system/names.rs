use std::sync::{Arc, Mutex};

use supervisor::{Context, Group, NameUse, NodeState, RunError, Signal, Supervisor};

use crate::support::{serve, shut_down};

/// Runs `check` inside the root runnable while it is New, then lets the tree settle and
/// returns the supervisor for further checks.
async fn inside_root(
    check: impl Fn(&Context) + Send + Sync + 'static,
) -> (Supervisor, Arc<Mutex<bool>>) {
    let ran = Arc::new(Mutex::new(false));
    let flag = ran.clone();
    let check = Arc::new(check);
    let sup = Supervisor::new(move |ctx: Context| {
        let (check, flag) = (check.clone(), flag.clone());
        async move {
            check(&ctx);
            *flag.lock().unwrap() = true;
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        }
    });
    sup.settled().await;
    assert!(*ran.lock().unwrap(), "the check ran");
    (sup, ran)
}

#[tokio::test(start_paused = true)]
async fn invalid_names_are_refused_with_the_name_and_the_rule() {
    let long = "x".repeat(65);
    let bad: Vec<String> = [
        "",
        "Upper",
        "has.dot",
        "dash-ed",
        "sp ace",
        "é",
        "tab\t",
        "new\nline",
        "ü_ber",
        "a/b",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([long, "y".repeat(1 << 20)])
    .collect();
    let (sup, _) = inside_root(move |ctx| {
        for name in &bad {
            let err = ctx.run(name, serve).unwrap_err();
            assert_eq!(
                err,
                RunError::InvalidName {
                    parent: "root".into(),
                    name: name.clone(),
                    wanted: NameUse::Child,
                }
            );
            let msg = err.to_string();
            assert!(msg.contains("names match `^[a-z0-9_]{1,64}$`"), "{msg}");
            assert!(msg.starts_with("`root` cannot start child \""), "{msg}");
            assert!(msg.len() < 300, "a huge name is shortened in the message");
        }
    })
    .await;
    assert_eq!(sup.states().len(), 1, "nothing was started");
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn names_at_the_boundaries_are_accepted() {
    let longest = "z".repeat(64);
    let (sup, _) = inside_root(move |ctx| {
        for name in ["a", "0", "_", "snake_case_9", longest.as_str()] {
            ctx.run(name, serve).unwrap();
        }
    })
    .await;
    assert_eq!(
        sup.states()[&format!("root.{}", "z".repeat(64))],
        NodeState::Healthy
    );
    assert_eq!(sup.states().len(), 6);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn duplicate_children_are_refused() {
    let (sup, _) = inside_root(|ctx| {
        ctx.run("a", serve).unwrap();
        let taken = RunError::NameTaken {
            parent: "root".into(),
            name: "a".into(),
            by: NameUse::Child,
            wanted: NameUse::Child,
        };
        assert_eq!(ctx.run("a", serve), Err(taken.clone()));
        // Across groups too.
        assert_eq!(
            ctx.run_group(Group::new().add("b", serve).add("a", serve)),
            Err(taken)
        );
        // Within one group.
        assert_eq!(
            ctx.run_group(Group::new().add("c", serve).add("c", serve)),
            Err(RunError::NameTaken {
                parent: "root".into(),
                name: "c".into(),
                by: NameUse::Child,
                wanted: NameUse::Child,
            })
        );
        let msg = ctx.run("a", serve).unwrap_err().to_string();
        assert_eq!(
            msg,
            "`root` cannot start child \"a\": the name is already used by a child of `root` \
             (names are unique among a node's children and sub-loggers)"
        );
    })
    .await;
    // A refused group starts nothing: neither `b` nor the first `c`.
    assert_eq!(
        sup.states().keys().cloned().collect::<Vec<_>>(),
        ["root", "root.a"]
    );
    shut_down(sup).await;
}

/// Past a few children the names are found through an index, and past a few members a
/// group is checked for repeats with a set: the rules hold the same at every size.
#[tokio::test(start_paused = true)]
async fn names_stay_unique_among_many_children_and_in_large_groups() {
    let (sup, _) = inside_root(|ctx| {
        for i in 0..40 {
            ctx.run(&format!("c{i}"), serve).unwrap();
        }
        let lease = ctx.sub_logger("lease").unwrap();
        for name in ["c0", "c8", "c9", "c39", "lease"] {
            let err = ctx.run(name, serve).unwrap_err();
            assert!(
                matches!(err, RunError::NameTaken { name: ref n, .. } if n == name),
                "{name}: {err:?}"
            );
        }
        for name in ["c1", "c20"] {
            assert!(ctx.sub_logger(name).is_err(), "{name} is a child");
        }
        assert_eq!(ctx.sub_logger("lease").unwrap().dn(), lease.dn());
        // A large group whose last member repeats an earlier one starts nothing.
        let mut group = Group::new();
        for i in 0..30 {
            group = group.add(&format!("g{i}"), serve);
        }
        let err = ctx.run_group(group.add("g7", serve)).unwrap_err();
        assert!(matches!(err, RunError::NameTaken { ref name, .. } if name == "g7"));
        // A large group clashing with an existing child starts nothing either.
        let mut group = Group::new();
        for i in 0..30 {
            group = group.add(&format!("h{i}"), serve);
        }
        assert!(ctx.run_group(group.add("c33", serve)).is_err());
        ctx.run("c40", serve).unwrap();
    })
    .await;
    let states = sup.states();
    assert_eq!(states.len(), 1 + 41);
    assert!(
        states
            .keys()
            .all(|dn| dn == "root" || dn.starts_with("root.c"))
    );
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn an_invalid_member_refuses_the_whole_group() {
    let (sup, _) = inside_root(|ctx| {
        let err = ctx
            .run_group(Group::new().add("fine", serve).add("Not Fine", serve))
            .unwrap_err();
        assert!(matches!(err, RunError::InvalidName { ref name, .. } if name == "Not Fine"));
        // The good name is still free.
        ctx.run("fine", serve).unwrap();
    })
    .await;
    assert_eq!(sup.states().len(), 2);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn children_cannot_be_started_after_healthy() {
    let result = Arc::new(Mutex::new(None));
    let r = result.clone();
    let sup = Supervisor::new(move |ctx: Context| {
        let r = r.clone();
        async move {
            ctx.signal(Signal::Healthy);
            *r.lock().unwrap() = Some(ctx.run("late", serve));
            ctx.cancelled().await;
            Ok(())
        }
    });
    sup.settled().await;
    let err = result.lock().unwrap().take().unwrap().unwrap_err();
    assert_eq!(
        err,
        RunError::NotNew {
            parent: "root".into(),
            name: "late".into(),
            state: NodeState::Healthy
        }
    );
    assert_eq!(
        err.to_string(),
        "`root` cannot start child \"late\": children can only be started while the node is \
         NEW, and it is HEALTHY"
    );
    assert_eq!(sup.states().len(), 1);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn names_are_scoped_to_their_parent() {
    let (sup, _) = inside_root(|ctx| {
        ctx.run("a", |ctx: Context| async move {
            ctx.run("a", serve)?;
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        })
        .unwrap();
        ctx.run("b", |ctx: Context| async move {
            ctx.run("a", serve)?;
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        })
        .unwrap();
    })
    .await;
    for dn in ["root.a.a", "root.b.a"] {
        assert_eq!(sup.states()[dn], NodeState::Healthy);
    }
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn an_empty_group_is_fine() {
    let (sup, _) = inside_root(|ctx| ctx.run_group(Group::new()).unwrap()).await;
    assert_eq!(sup.states().len(), 1);
    shut_down(sup).await;
}
