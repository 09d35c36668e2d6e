use supervisor::supervision_tree;

supervision_tree! {
    fn tree() {
        #[strategy = rest_for_one]
        dynamic conns,
    }
}

fn main() {}
