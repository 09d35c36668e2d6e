use supervisor::runnable;

#[runnable]
async fn parent(port: u16) -> supervisor::Result {
    let _ = port;
    Ok(())
}

fn main() {}
