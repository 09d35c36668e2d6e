// `crate = "…"` names the runtime by another path: a re-export here.
mod reexport {
    pub use supervisor as sup;
}

use supervisor::{Context, Signal};

#[supervisor::runnable(crate = "crate::reexport::sup")]
async fn leaf(ctx: Context) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

supervisor::supervision_tree! {
    #![crate = "crate::reexport::sup"]
    fn tree() {
        leaf: leaf(),
    }
}

#[supervisor::test(crate = "crate::reexport::sup", start_paused = true)]
async fn runs(ctx: supervisor::Context) -> supervisor::Result {
    ctx.run("tree", tree())?;
    Ok(())
}

fn main() {
    let _ = tree();
}
