use supervisor::{Context, runnable};

struct Server;

impl Server {
    #[runnable]
    async fn serve(&self, ctx: Context) -> supervisor::Result {
        let _ = ctx;
        Ok(())
    }
}

fn main() {}
