use supervisor::{Context, Signal, testing};

#[supervisor::test(start_paused = true)]
async fn as_the_root(ctx: Context) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    Ok(())
}

#[supervisor::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_harness() -> supervisor::Result {
    let h = testing::harness(|ctx: Context| async move {
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    });
    h.finish().await;
    Ok(())
}

fn main() {}
