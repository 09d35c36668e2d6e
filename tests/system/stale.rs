use supervisor::{NodeState, RunError, Signal, Supervisor};

use crate::support::{Cmd, Recorder, Remote, serve, shut_down, state, tree};

#[tokio::test(start_paused = true)]
async fn a_stale_context_cannot_touch_the_new_incarnation() {
    let one = Remote::silent();
    let recorder = Recorder::default();
    let o = one.clone();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(move |ctx| ctx.run("one", o.runnable())));
    sup.settled().await;
    let stale = one.context();
    one.send(Cmd::Fail("restart me"));
    sup.settled().await;
    assert_eq!(one.starts(), 2);
    assert_eq!(state(&sup, "root.one"), NodeState::New);

    assert!(stale.is_cancelled());
    stale.cancelled().await;
    assert_eq!(stale.dn(), "root.one");
    assert_eq!(
        stale.run("child", serve),
        Err(RunError::Stale {
            dn: "root.one".into()
        })
    );
    stale.signal(Signal::Healthy);
    stale.signal(Signal::Done);
    sup.settled().await;
    // The new incarnation is untouched: still New, no child, no failure.
    assert_eq!(state(&sup, "root.one"), NodeState::New);
    assert!(!sup.states().contains_key("root.one.child"));
    assert_eq!(one.starts(), 2);
    assert_eq!(
        recorder.history("root.one"),
        [NodeState::New, NodeState::Dead, NodeState::New]
    );

    // The current context still works.
    one.send(Cmd::Signal(Signal::Healthy));
    sup.settled().await;
    assert_eq!(state(&sup, "root.one"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_context_of_a_forgotten_node_is_stale() {
    let child = Remote::healthy();
    let parent = Remote::healthy().with_child("child", &child);
    let p = parent.clone();
    let sup = Supervisor::new(tree(move |ctx| ctx.run("parent", p.runnable())));
    sup.settled().await;
    let stale = child.context();
    parent.send(Cmd::Fail("forget the children"));
    sup.settled().await;
    assert!(matches!(stale.run("x", serve), Err(RunError::Stale { .. })));
    stale.signal(Signal::Done);
    sup.settled().await;
    assert_eq!(state(&sup, "root.parent.child"), NodeState::Healthy);
    shut_down(sup).await;
}
