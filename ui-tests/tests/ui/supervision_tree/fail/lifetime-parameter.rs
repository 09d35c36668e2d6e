use supervisor::supervision_tree;

async fn serve(ctx: supervisor::Context) -> supervisor::Result {
    ctx.cancelled().await;
    Ok(())
}

supervision_tree! {
    fn borrowed<'a>(name: &'a str) {
        a: serve,
    }
}

fn main() {
    let _ = borrowed("x");
}
