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
    let within = spawned_within_the_poll(20).await;
    assert!(
        within <= 4,
        "at most the first four tasks within the poll that started them: {within}"
    );
}

/// Starts `n` children in one poll of the root: how many of their tasks were alive within
/// that poll. Checks that, once the poll has returned, every child has been spawned and is
/// `Healthy`.
async fn spawned_within_the_poll(n: usize) -> usize {
    use std::sync::{Arc, Mutex};

    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let sup = Supervisor::new(move |ctx: supervisor::Context| {
        let s = s.clone();
        async move {
            let tasks = tokio::runtime::Handle::current().metrics();
            let before = tasks.num_alive_tasks();
            for i in 0..n {
                ctx.run(&format!("n{i}"), serve)?;
            }
            *s.lock().unwrap() = Some(tasks.num_alive_tasks() - before);
            ctx.signal(supervisor::Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        }
    });
    sup.settled().await;
    assert_eq!(sup.states().len(), n + 1);
    assert!(sup.states().values().all(|s| *s == NodeState::Healthy));
    shut_down(sup).await;
    seen.lock().unwrap().expect("the root ran")
}

/// On a current-thread runtime, where no child runs before the parent's poll returns
/// anyway, a parent's starts are spawned in small batches as it goes.
#[tokio::test]
async fn on_one_worker_the_starts_of_a_poll_are_spawned_in_small_batches() {
    let within = spawned_within_the_poll(200).await;
    assert!(
        (5..200).contains(&within),
        "{within} of 200 spawned within the poll"
    );
}

/// On a multi-thread runtime a parent's starts are held until its poll returns, so that no
/// child's first steps take the tree from the parent while it starts their siblings; past
/// a batch (16,384 starts) they are spawned as it goes, which bounds what is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_many_workers_the_starts_of_a_poll_are_held_until_it_returns() {
    let within = spawned_within_the_poll(200).await;
    assert!(within <= 4, "{within} of 200 spawned within the poll");
    let within = spawned_within_the_poll(20_000).await;
    assert!(
        (16_384..20_000).contains(&within),
        "{within} of 20,000 spawned within the poll"
    );
}
