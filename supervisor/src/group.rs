//! A set of children started together and restarted together.

use std::fmt;
use std::sync::Arc;

use crate::backoff::Backoff;
use crate::runnable::{DynRunnable, Runnable};

/// Children of one node that live and die together: when any member fails, every member is
/// cancelled, and each is started again once it (and everything below it) has returned —
/// OTP's `one_for_all`, scoped to the group. Members of different groups of the same parent
/// are independent (`one_for_one` between groups).
///
/// [`Context::run`](crate::Context::run) is a group of one. A group starts whole or not at
/// all: if any name is invalid or taken, nothing is started.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor::{Backoff, Context, Group, Signal};
///
/// async fn server(ctx: Context) -> supervisor::Result {
///     ctx.signal(Signal::Healthy);
///     ctx.cancelled().await;
///     Ok(())
/// }
///
/// async fn parent(ctx: Context) -> supervisor::Result {
///     ctx.run_group(
///         Group::new()
///             .add("listener", server)
///             .add("handler", server)
///             .backoff(Backoff::default().max(Duration::from_secs(5))),
///     )?;
///     ctx.signal(Signal::Healthy);
///     ctx.signal(Signal::Done);
///     Ok(())
/// }
/// # let _ = parent;
/// ```
#[derive(Clone, Default)]
#[must_use = "a group does nothing until it is passed to `Context::run_group`"]
pub struct Group {
    pub(crate) members: Vec<(String, Arc<dyn DynRunnable>)>,
    pub(crate) backoff: Option<Backoff>,
}

impl Group {
    /// An empty group.
    pub fn new() -> Self {
        Group::default()
    }

    /// Adds a member named `name`. Names are checked when the group is run.
    pub fn add<R: Runnable>(mut self, name: &str, runnable: R) -> Self {
        self.members.push((name.to_owned(), Arc::new(runnable)));
        self
    }

    /// Sets the restart backoff of this group's members, instead of the supervisor's
    /// default ([`Builder::backoff`](crate::Builder::backoff)).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// The members' names, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(name, _)| name.as_str())
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("members", &self.names().collect::<Vec<_>>())
            .field("backoff", &self.backoff)
            .finish()
    }
}
