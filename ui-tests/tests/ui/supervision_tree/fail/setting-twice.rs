use supervisor::{Context, runnable, supervision_tree};

#[runnable]
async fn leaf(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

supervision_tree! {
    fn tree() {
        #[restart = transient]
        #[restart = temporary]
        a: leaf(),
    }
}

fn main() {}
