use supervisor::supervision_tree;

supervision_tree! {
    fn tree() {
        #[max_children = 0]
        dynamic conns,
    }
}

fn main() {}
