//! A program for `health::systemd_notify_reads_the_environment`, which runs it with
//! `NOTIFY_SOCKET` set (or not): a tree with `systemd_notify()` gets ready, and is cancelled.
//! A program of its own, as a test cannot set the environment of the process it runs in
//! while other threads read it.

use supervisor::{Context, Signal, Supervisor};

async fn serve(ctx: Context) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sup = Supervisor::builder()
        .systemd_notify()
        .start(|ctx: Context| async move {
            ctx.run("web", serve)?;
            serve(ctx).await
        });
    sup.ready().await;
    sup.settled().await;
    sup.cancel();
    sup.wait().await;
}
