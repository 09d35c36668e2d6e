use supervisor::{NodeState, Supervisor};

use crate::support::{serve, shut_down, tree};

#[tokio::test]
async fn ten_thousand_runnables_start_and_shut_down_with_no_task_left() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let sup = Supervisor::new(tree(|ctx| {
        for i in 0..10_000 {
            ctx.run(&format!("n{i}"), serve)?;
        }
        Ok(())
    }));
    sup.settled().await;
    let states = sup.states();
    assert_eq!(states.len(), 10_001);
    assert!(
        states
            .iter()
            .filter(|(dn, _)| *dn != "root")
            .all(|(_, &s)| s == NodeState::Healthy)
    );
    assert_eq!(sup.live_runnables().len(), 10_000);
    assert_eq!(metrics.num_alive_tasks(), before + 10_000);
    shut_down(sup).await;
    assert_eq!(metrics.num_alive_tasks(), before);
}

/// Beyond its first few, the children a runnable starts in one poll have their tasks
/// spawned together when that poll returns (so that, on a multi-thread runtime, the
/// parent's use of the tree and the children's are not interleaved child by child).
#[tokio::test]
async fn a_runnables_starts_are_spawned_when_its_poll_returns() {
    use std::sync::{Arc, Mutex};

    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let sup = Supervisor::new(move |ctx: supervisor::Context| {
        let s = s.clone();
        async move {
            let tasks = tokio::runtime::Handle::current().metrics();
            let before = tasks.num_alive_tasks();
            for i in 0..20 {
                ctx.run(&format!("n{i}"), serve)?;
            }
            s.lock().unwrap().push(tasks.num_alive_tasks() - before);
            tokio::task::yield_now().await;
            s.lock().unwrap().push(tasks.num_alive_tasks() - before);
            ctx.signal(supervisor::Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        }
    });
    sup.settled().await;
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen[0] <= 4 && seen[1] == 20,
        "at most the first four tasks within the poll that started them, all twenty once \
         it returned: {seen:?}"
    );
    assert_eq!(sup.states().len(), 21);
    assert!(sup.states().values().all(|s| *s == NodeState::Healthy));
    shut_down(sup).await;
}
