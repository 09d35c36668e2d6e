use supervisor::supervision_tree;

supervision_tree! {
    fn method(self) {
    }
}

fn main() {}
