use supervisor::supervision_tree;

supervision_tree! {
    fn tree() {
        42: something(),
    }
}

fn main() {}
