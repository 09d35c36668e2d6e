use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use supervisor::{Context, InMemoryMetrics, NodeState, Signal, Supervisor};
use tokio::sync::Semaphore;

use crate::support::{Recorder, shut_down};

/// A gate a runnable waits at until the test lets it through, once per `open`.
#[derive(Clone)]
struct Gate(Arc<Semaphore>);

impl Gate {
    fn new() -> Self {
        Gate(Arc::new(Semaphore::new(0)))
    }

    fn open(&self) {
        self.0.add_permits(1);
    }

    /// Waits for the gate, or for cancellation: false if cancelled first.
    async fn pass(&self, ctx: &Context) -> bool {
        tokio::select! {
            permit = self.0.acquire() => {
                permit.expect("gate closed").forget();
                true
            }
            () = ctx.cancelled() => false,
        }
    }
}

/// The original's metrics scenario: root waits, then starts `one` and stays New; `one`
/// starts `two`, fails once, then becomes Healthy, then Done; `two` waits, then becomes
/// Healthy.
#[tokio::test(start_paused = true)]
async fn every_transition_is_reported_in_order() {
    let (root_gate, one_gate, two_gate) = (Gate::new(), Gate::new(), Gate::new());
    let crashed = Arc::new(AtomicBool::new(false));
    let recorder = Recorder::default();
    let memory = InMemoryMetrics::default();

    let two = {
        let gate = two_gate.clone();
        move |ctx: Context| {
            let gate = gate.clone();
            async move {
                if !gate.pass(&ctx).await {
                    return Ok(());
                }
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                Ok(())
            }
        }
    };
    let two = Arc::new(two);
    let one = {
        let gate = one_gate.clone();
        move |ctx: Context| {
            let (gate, crashed, two) = (gate.clone(), crashed.clone(), two.clone());
            async move {
                if !gate.pass(&ctx).await {
                    return Ok(());
                }
                ctx.run("two", move |ctx: Context| two(ctx))?;
                if !crashed.swap(true, Ordering::SeqCst) {
                    return Err("crash".into());
                }
                if !gate.pass(&ctx).await {
                    return Ok(());
                }
                ctx.signal(Signal::Healthy);
                if !gate.pass(&ctx).await {
                    return Ok(());
                }
                ctx.signal(Signal::Done);
                Ok(())
            }
        }
    };
    let one = Arc::new(one);
    let root_runnable = {
        let gate = root_gate.clone();
        move |ctx: Context| {
            let (gate, one) = (gate.clone(), one.clone());
            async move {
                if !gate.pass(&ctx).await {
                    return Ok(());
                }
                ctx.run("one", move |ctx: Context| one(ctx))?;
                ctx.cancelled().await;
                Ok(())
            }
        }
    };
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .metrics(memory.clone())
        .start(root_runnable);
    let latest = |dn: &str| memory.dns()[dn].state;
    use NodeState::*;

    sup.settled().await;
    assert_eq!(latest("root"), New);
    assert!(!memory.dns().contains_key("root.one"));

    // Root starts one, which waits.
    root_gate.open();
    sup.settled().await;
    assert_eq!((latest("root"), latest("root.one")), (New, New));

    // One starts two and crashes: one dies, two is cancelled; one restarts after its backoff
    // and waits again.
    one_gate.open();
    sup.settled().await;
    assert_eq!(recorder.history("root.one"), [New, Dead, New]);
    assert_eq!(recorder.history("root.one.two"), [New, Canceled]);
    assert_eq!(latest("root.one.two"), Canceled);

    // The new one starts a new two, which waits.
    one_gate.open();
    sup.settled().await;
    assert_eq!(latest("root.one"), New);
    assert_eq!(latest("root.one.two"), New);

    one_gate.open();
    sup.settled().await;
    assert_eq!(latest("root.one"), Healthy);

    two_gate.open();
    sup.settled().await;
    assert_eq!(latest("root.one.two"), Healthy);

    one_gate.open();
    sup.settled().await;
    assert_eq!(latest("root.one"), Done);
    assert_eq!(latest("root"), New, "root never signalled");

    assert_eq!(recorder.history("root"), [New]);
    assert_eq!(
        recorder.history("root.one"),
        [New, Dead, New, Healthy, Done]
    );
    assert_eq!(
        recorder.history("root.one.two"),
        [New, Canceled, New, Healthy]
    );
    let dns = memory.dns();
    assert!(dns["root"].transition <= dns["root.one"].transition);
    assert!(dns["root.one.two"].transition <= dns["root.one"].transition);
    shut_down(sup).await;
}

#[tokio::test(start_paused = true)]
async fn several_sinks_see_the_same_changes() {
    let (a, b) = (Recorder::default(), Recorder::default());
    let sup = Supervisor::builder()
        .metrics(a.clone())
        .metrics(b.clone())
        .start(crate::support::tree(|ctx| {
            ctx.run("x", crate::support::serve)
        }));
    sup.settled().await;
    sup.cancel();
    sup.wait().await;
    for dn in ["root", "root.x"] {
        assert_eq!(a.history(dn), b.history(dn));
    }
    assert_eq!(
        a.history("root.x"),
        [NodeState::New, NodeState::Healthy, NodeState::Canceled]
    );
}

#[tokio::test]
async fn in_memory_metrics_keep_the_wall_clock_time_of_each_transition() {
    let memory = InMemoryMetrics::default();
    let before = std::time::SystemTime::now();
    let sup = Supervisor::builder()
        .metrics(memory.clone())
        .start(|ctx: Context| async move {
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        });
    sup.settled().await;
    let after = std::time::SystemTime::now();
    let root = memory.dns()["root"];
    assert_eq!(root.state, NodeState::Healthy);
    assert!(before <= root.wall_time && root.wall_time <= after);
    shut_down(sup).await;
}
