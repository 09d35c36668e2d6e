use supervisor::{Context, runnable, supervision_tree};

#[runnable]
async fn leaf(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

supervision_tree! {
    fn tree() {
        audit: leaf(),
        sub_loggers [audit, access],
        net {
            sub_loggers [dns],
            dns: leaf(),
        },
    }
}

fn main() {}
