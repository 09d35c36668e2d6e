use supervisor::{Context, runnable, supervision_tree};

#[runnable]
async fn leaf(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

supervision_tree! {
    fn tree() {
        #[max_children = 4]
        a: leaf(),
    }
}

fn main() {}
