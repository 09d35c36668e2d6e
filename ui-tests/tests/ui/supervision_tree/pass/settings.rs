use supervisor::registry::{self, ChildKind};
use supervisor::{Context, Restart, Shutdown, Strategy, runnable, supervision_tree};

#[runnable]
async fn leaf(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

supervision_tree! {
    fn tree() {
        /// A doc comment on an entry is fine.
        #[restart = transient]
        #[shutdown = 1.5s]
        #[intensity(3, 5m)]
        once: leaf(),
        #[strategy = rest_for_one]
        #[ordered_shutdown]
        #[intensity(0, 10s)]
        group {
            #[shutdown = brutal] conn: leaf(),
            #[restart = temporary] #[shutdown = infinity] session: leaf(),
        },
        #[shutdown = 250ms]
        node { inner: leaf() },
    }
}

fn main() {
    let _ = tree();
    let declared = registry::find("tree").unwrap();
    let c = &declared.contents;
    assert_eq!(c.children[0].restart, Restart::Transient);
    assert_eq!(
        c.children[0].shutdown,
        Some(Shutdown::Timeout(std::time::Duration::from_millis(1500)))
    );
    assert_eq!(c.groups[0].intensity.unwrap().max_restarts(), 3);
    assert_eq!(c.groups[1].strategy, Strategy::RestForOne);
    assert!(c.groups[1].ordered_shutdown);
    assert_eq!(c.children[2].restart, Restart::Temporary);
    assert!(matches!(c.children[3].kind, ChildKind::Structure(_)));
}
