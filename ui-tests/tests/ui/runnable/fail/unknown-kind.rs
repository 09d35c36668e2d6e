use supervisor::{Context, Restart, Signal, Spec, runnable};

#[runnable]
async fn leaf(ctx: Context) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    // In a body the settings are code: the compiler checks them at the token.
    ctx.run_with("once", leaf(), Spec::new().restart(Restart::Transiet))?;
    ctx.signal(Signal::Healthy);
    ctx.signal(Signal::Done);
    Ok(())
}

fn main() {}
