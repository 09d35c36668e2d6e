#[supervisor::test]
#[tokio::test]
async fn twice() {}

#[supervisor::test]
#[test]
async fn with_std_test() {}

fn main() {}
