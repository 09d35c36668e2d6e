use supervisor::runnable;

#[runnable]
async fn parent() -> supervisor::Result {
    Ok(())
}

fn main() {}
