#[supervisor::test(flavor = "multi_thread", start_paused = true, timeout = 5)]
async fn paused_needs_current_thread() {}

fn main() {}
