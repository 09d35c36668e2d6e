#[supervisor::test(flavor = "single_thread")]
async fn unknown_flavor() {}

#[supervisor::test(flavor = "multi_thread", worker_threads = 0)]
async fn no_workers() {}

#[supervisor::test(worker_threads = 2)]
async fn workers_need_multi_thread() {}

#[supervisor::test]
async fn too_many_parameters(ctx: supervisor::Context, other: u32) -> supervisor::Result {
    let _ = (ctx, other);
    Ok(())
}

fn main() {}
