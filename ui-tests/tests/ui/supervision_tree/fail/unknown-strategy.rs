use supervisor::{Context, runnable, supervision_tree};

#[runnable]
async fn leaf(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

supervision_tree! {
    fn tree() {
        #[strategy = one_for_one]
        group { a: leaf(), b: leaf() },
    }
}

fn main() {}
