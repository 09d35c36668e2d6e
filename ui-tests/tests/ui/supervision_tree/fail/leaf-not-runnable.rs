use supervisor::supervision_tree;

supervision_tree! {
    fn tree() {
        answer: 42,
    }
}

fn main() {}
