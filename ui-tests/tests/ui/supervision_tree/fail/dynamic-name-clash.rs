use supervisor::{Context, Dynamic, runnable, supervision_tree};

#[runnable]
async fn accept(ctx: Context, conns: Dynamic) -> supervisor::Result {
    let _ = (ctx, conns);
    Ok(())
}

supervision_tree! {
    fn tree() {
        dynamic conns,
        conns: accept(conns),
        dynamic Bad,
    }
}

fn main() {}
