//! A dynamic group declared in a tree: its handle is bound to its name for the entries
//! after it, nested structure nodes included.

use supervisor::{Context, Dynamic, Signal, runnable, supervision_tree};

#[runnable]
async fn accept(ctx: Context, conns: Dynamic) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    let _ = conns.start(|_ctx: Context| async { Ok(()) });
    ctx.cancelled().await;
    Ok(())
}

supervision_tree! {
    fn server() {
        /// One child per connection.
        #[max_children = 1024]
        #[restart = transient]
        #[shutdown = 5s]
        #[intensity(10, 1m)]
        dynamic conns,
        listener: accept(conns.clone()),
        admin {
            listener: accept(conns),
        },
        dynamic r#unused,
    }
}

fn main() {
    let _ = server();
}
