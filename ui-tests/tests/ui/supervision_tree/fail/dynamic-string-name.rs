use supervisor::supervision_tree;

supervision_tree! {
    fn tree() {
        dynamic "9p",
    }
}

fn main() {}
