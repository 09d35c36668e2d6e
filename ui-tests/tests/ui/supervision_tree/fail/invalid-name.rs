use supervisor::{Context, runnable, supervision_tree};

#[runnable]
async fn leaf(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

supervision_tree! {
    fn tree() {
        Net { dhcp: leaf() },
        "dns.server": leaf(),
    }
}

fn main() {}
