use supervisor::{Context, runnable, supervision_tree};

#[runnable]
async fn leaf(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

supervision_tree! {
    fn tree() {
        group {
            #[ordered_shutdown]
            a: leaf(),
            b: leaf(),
        },
    }
}

fn main() {}
