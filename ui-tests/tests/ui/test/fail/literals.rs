#[supervisor::test(flavor = 1)]
async fn flavor_not_a_string() {}

#[supervisor::test(flavor = "multi_thread", worker_threads = "2")]
async fn workers_not_a_number() {}

#[supervisor::test(start_paused = "yes")]
async fn paused_not_a_bool() {}

#[supervisor::test(start_paused = PAUSED)]
async fn paused_not_a_literal() {}

fn main() {}
