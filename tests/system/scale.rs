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
