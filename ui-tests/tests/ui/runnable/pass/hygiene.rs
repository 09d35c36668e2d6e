//! The expansion names nothing through the user's scope: local modules called `core` and
//! `supervisor`, and no imports, change nothing.
#![deny(warnings)]

mod core {}
mod supervisor_user {
    mod supervisor {}

    #[::supervisor::runnable]
    pub async fn worker(ctx: ::supervisor::Context) -> ::supervisor::Result {
        ctx.signal(::supervisor::Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    }

    ::supervisor::supervision_tree! {
        pub fn tree(n: u32) {
            a: worker(),
            b { c: worker() },
        }
    }

    pub fn use_them() {
        let _ = (worker(), tree(1));
    }
}

fn main() {
    supervisor_user::use_them();
}
