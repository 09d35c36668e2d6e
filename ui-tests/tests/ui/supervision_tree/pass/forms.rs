//! Every supported form of `supervision_tree!`.

use std::sync::Arc;

use supervisor::{Context, Runnable, Signal, runnable, supervision_tree};

#[runnable]
async fn leaf(ctx: Context, port: u16) -> supervisor::Result {
    let _ = port;
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

fn made_elsewhere() -> impl Runnable {
    |ctx: Context| async move {
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    }
}

supervision_tree! {
    /// Documented, public, with arguments.
    pub fn everything(base: u16, shared: Arc<String>) {
        plain: leaf(base),
        closure: |ctx: Context| async move {
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        },
        function: made_elsewhere(),
        net {
            group {
                dhcp: leaf(base + 1),
                dns: leaf(base + 2),
                nested { deeper: leaf(base + 3) },
            },
            sub_loggers [leases],
        },
        "9p": leaf(base + 4),
        "group" { inner: leaf(base + 5) },
        uses_shared: leaf(u16::try_from(shared.len()).unwrap_or(0)),
        sub_loggers [audit, "access_log"],
    }
}

supervision_tree! {
    fn empty() {}
}

fn main() {
    let _ = (everything(1, Arc::new(String::new())), empty());
}
