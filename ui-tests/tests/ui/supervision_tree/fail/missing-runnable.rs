use supervisor::supervision_tree;

supervision_tree! {
    fn tree() {
        lonely,
    }
}

fn main() {}
