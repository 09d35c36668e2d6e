use supervisor::{Context, runnable, supervision_tree};

#[runnable]
async fn leaf(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

supervision_tree! {
    fn tree() {
        #[shutdown = 0ms]
        a: leaf(),
    }
}

fn main() {}
