use supervisor::{Context, Signal, Supervisor, supervision_tree};

async fn serve(ctx: Context) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

supervision_tree! {
    /// The error is in the body; the uses below must not fail as well.
    fn broken(port: u16) {
        a: serve,
        b serve,
    }
}

fn main() {
    let _ = Supervisor::new(broken(7));
}
