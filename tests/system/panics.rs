use supervisor::{Context, NodeState, Supervisor};
use tracing::Level;

use crate::support::{Cmd, Recorder, Remote, capture, shut_down, state, tree};

#[tokio::test(start_paused = true)]
async fn a_panic_is_a_failure() {
    let (logs, _guard) = capture();
    let (one, two) = (Remote::healthy(), Remote::healthy());
    let recorder = Recorder::default();
    let (a, b) = (one.clone(), two.clone());
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(move |ctx| {
            ctx.run_group(
                supervisor::Group::new()
                    .add("one", a.runnable())
                    .add("two", b.runnable()),
            )
        }));
    sup.settled().await;
    two.send(Cmd::Panic("oh no"));
    sup.settled().await;
    assert_eq!(recorder.history("root.two")[2], NodeState::Dead);
    assert_eq!((one.starts(), two.starts()), (2, 2));
    assert_eq!(state(&sup, "root.two"), NodeState::Healthy);
    assert!(logs.saw(
        "supervisor",
        Level::ERROR,
        "root.two failed: panicked: oh no"
    ));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_while_creating_the_future_is_a_failure_too() {
    let (logs, _guard) = capture();
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(|ctx| {
            ctx.run("eager", |ctx: Context| {
                if !ctx.is_cancelled() {
                    panic!("before the first await");
                }
                async { Ok(()) }
            })
        }));
    // It panics on every start, so the tree never settles: wait for the second failure.
    recorder
        .wait_for_nth("root.eager", NodeState::Dead, 2)
        .await;
    assert_eq!(state(&sup, "root"), NodeState::Done);
    assert!(logs.saw(
        "supervisor",
        Level::ERROR,
        "root.eager failed: panicked: before the first await"
    ));
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "propagated to the waiter")]
async fn propagated_panics_reach_the_waiter() {
    let one = Remote::healthy();
    let o = one.clone();
    let sup = Supervisor::builder()
        .propagate_panics()
        .start(tree(move |ctx| ctx.run("one", o.runnable())));
    sup.settled().await;
    one.send(Cmd::Panic("propagated to the waiter"));
    sup.wait().await;
}
