use supervisor::supervision_tree;

supervision_tree! {
    async fn tree() {
    }
}

fn main() {}
