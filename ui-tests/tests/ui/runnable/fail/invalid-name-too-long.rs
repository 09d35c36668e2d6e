use supervisor::{Context, runnable};

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    ctx.run("a_name_that_is_sixty_five_characters_long_which_is_one_too_many_x", parent())?;
    Ok(())
}

fn main() {}
