use supervisor::runnable;

#[runnable]
struct Worker;

fn main() {}
