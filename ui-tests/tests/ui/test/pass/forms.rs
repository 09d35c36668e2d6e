// Paths are written out: trybuild builds this without `--test`, where the test functions
// (and so anything only they use) are compiled out.

#[supervisor::test(start_paused = true)]
async fn as_the_root(ctx: supervisor::Context) -> supervisor::Result {
    ctx.signal(supervisor::Signal::Healthy);
    Ok(())
}

#[supervisor::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_harness() -> supervisor::Result {
    use supervisor::{Context, Signal, testing};
    let h = testing::harness(|ctx: Context| async move {
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    });
    h.finish().await;
    Ok(())
}

fn main() {}
