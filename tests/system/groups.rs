use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use supervisor::{Group, NodeState, Supervisor};

use crate::support::{Cmd, Remote, shut_down, spawns_more, state, tree};

#[tokio::test(start_paused = true)]
async fn a_group_of_two_starts() {
    let (one, two) = (Remote::healthy(), Remote::healthy());
    let (a, b) = (one.clone(), two.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add("one", a.runnable())
                .add("two", b.runnable()),
        )
    }));
    sup.settled().await;
    assert_eq!(state(&sup, "root"), NodeState::Done);
    assert_eq!(state(&sup, "root.one"), NodeState::Healthy);
    assert_eq!(state(&sup, "root.two"), NodeState::Healthy);
    assert_eq!((one.starts(), two.starts()), (1, 1));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_member_failure_restarts_its_sibling() {
    let (one, two) = (Remote::healthy(), Remote::healthy());
    let (a, b) = (one.clone(), two.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add("one", a.runnable())
                .add("two", b.runnable()),
        )
    }));
    sup.settled().await;
    two.send(Cmd::Fail("two broke"));
    sup.settled().await;
    assert_eq!((one.starts(), two.starts()), (2, 2));
    assert_eq!(state(&sup, "root.one"), NodeState::Healthy);
    assert_eq!(state(&sup, "root.two"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn separate_groups_are_independent() {
    let (one, two) = (Remote::healthy(), Remote::healthy());
    let (a, b) = (one.clone(), two.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run("one", a.runnable())?;
        ctx.run("two", b.runnable())
    }));
    sup.settled().await;
    two.send(Cmd::Fail("two broke"));
    sup.settled().await;
    assert_eq!((one.starts(), two.starts()), (1, 2));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_sibling_failure_restarts_a_whole_deep_branch() {
    let branch_starts = Arc::new(AtomicUsize::new(0));
    let sibling = Remote::healthy();
    let (starts, s) = (branch_starts.clone(), sibling.clone());
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add("one", spawns_more(5, starts.clone()))
                .add("sibling", s.runnable()),
        )
    }));
    sup.settled().await;
    let deepest = "root.one.r.r.r.r.r";
    assert_eq!(state(&sup, deepest), NodeState::Healthy);
    assert_eq!(branch_starts.load(Ordering::SeqCst), 6);
    for round in 1..=3 {
        sibling.send(Cmd::Fail("sibling broke"));
        sup.settled().await;
        assert_eq!(branch_starts.load(Ordering::SeqCst), 6 * (round + 1));
        assert_eq!(sibling.starts(), round + 1);
        assert_eq!(state(&sup, deepest), NodeState::Healthy);
        assert_eq!(sup.live_runnables().len(), 7, "{:?}", sup.live_runnables());
    }
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_multi_level_tree_starts() {
    let starts = Arc::new(AtomicUsize::new(0));
    let s = starts.clone();
    let sup = Supervisor::new(tree(move |ctx| {
        ctx.run_group(
            Group::new()
                .add("one", spawns_more(4, s.clone()))
                .add("two", spawns_more(4, s.clone())),
        )
    }));
    sup.settled().await;
    assert_eq!(starts.load(Ordering::SeqCst), 10);
    for dn in ["root.one.r.r.r.r", "root.two.r.r.r.r"] {
        assert_eq!(state(&sup, dn), NodeState::Healthy);
    }
    assert_eq!(sup.states().len(), 11);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_failure_deep_down_restarts_only_that_node() {
    let (parent, child) = (Remote::healthy(), Remote::healthy());
    let parent = parent.with_child("child", &child);
    let p = parent.clone();
    let sup = Supervisor::new(tree(move |ctx| ctx.run("parent", p.runnable())));
    sup.settled().await;
    child.send(Cmd::Fail("child broke"));
    sup.settled().await;
    assert_eq!((parent.starts(), child.starts()), (1, 2));
    assert_eq!(state(&sup, "root.parent.child"), NodeState::Healthy);
    shut_down(sup).await;
}
