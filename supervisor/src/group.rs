//! A set of children started together and restarted together.

use std::fmt;
use std::sync::Arc;

use crate::backoff::Backoff;
use crate::policy::{GroupPolicy, Intensity, Spec, Strategy};
use crate::runnable::{DynRunnable, Runnable};

/// Children of one node that live and die together: when any member fails, every member is
/// cancelled, and each is started again once it (and everything below it) has returned —
/// OTP's `one_for_all`, scoped to the group. Members of different
/// groups of the same parent are independent (`one_for_one` between groups).
///
/// A group can instead restart only the failed member and those added after it
/// ([`Strategy::RestForOne`]), limit its restarts ([`intensity`](Group::intensity)), stop
/// its members one at a time ([`ordered_shutdown`](Group::ordered_shutdown)), and say how
/// each member is supervised ([`add_with`](Group::add_with) and a [`Spec`]).
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
    pub(crate) members: Vec<Member>,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) policy: GroupPolicy,
}

/// A member as the tree is given it: `ctx.run` makes one on the stack, with a borrowed name.
pub(crate) struct Member<S = String> {
    pub(crate) name: S,
    pub(crate) runnable: Arc<dyn DynRunnable>,
    /// `None`: the group's defaults.
    pub(crate) spec: Option<Spec>,
}

impl<S: Clone> Clone for Member<S> {
    fn clone(&self) -> Self {
        Member {
            name: self.name.clone(),
            runnable: self.runnable.clone(),
            spec: self.spec.clone(),
        }
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Self {
        Group::default()
    }

    /// Adds a member named `name`. Names are checked when the group is run.
    pub fn add<R: Runnable>(mut self, name: &str, runnable: R) -> Self {
        self.members.push(Member {
            name: name.to_owned(),
            runnable: Arc::new(runnable),
            spec: None,
        });
        self
    }

    /// Adds a member named `name`, supervised as `spec` says. Names and specs are checked
    /// when the group is run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor::{Context, Group, Restart, Shutdown, Signal, Spec, Strategy};
    ///
    /// async fn serve(ctx: Context) -> supervisor::Result {
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.cancelled().await;
    ///     Ok(())
    /// }
    ///
    /// async fn parent(ctx: Context) -> supervisor::Result {
    ///     ctx.run_group(
    ///         Group::new()
    ///             .add("connection", serve)
    ///             .add_with("session", serve, Spec::new().restart(Restart::Transient))
    ///             .add_with("audit", serve, Spec::new().shutdown(Shutdown::Infinity))
    ///             .strategy(Strategy::RestForOne),
    ///     )?;
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.signal(Signal::Done);
    ///     Ok(())
    /// }
    /// # let _ = parent;
    /// ```
    pub fn add_with<R: Runnable>(mut self, name: &str, runnable: R, spec: Spec) -> Self {
        self.members.push(Member {
            name: name.to_owned(),
            runnable: Arc::new(runnable),
            spec: Some(spec),
        });
        self
    }

    /// Which members restart when one fails; default [`Strategy::OneForAll`].
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.policy.strategy = strategy;
        self
    }

    /// How many restarts the group may have within a period before its parent fails,
    /// instead of the builder's ([`Builder::intensity`](crate::Builder::intensity), by
    /// default no limit). See [`Intensity`].
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.policy.intensity = Some(intensity);
        self
    }

    /// Stops the members one at a time, in reverse add order, each waited for (or aborted
    /// as its [`Shutdown`](crate::Shutdown) says) before the next is cancelled — when the
    /// group restarts, when its parent is cancelled, and when the whole tree shuts down.
    /// For a member that must still reach the ones added before it while it drains (a
    /// writer and its database connection). Without it, all are cancelled at once.
    ///
    /// Each member of an ordered group has a cancellation of its own rather than a child of
    /// its parent's, and the supervisor watches the parent's with one task per group.
    pub fn ordered_shutdown(mut self) -> Self {
        self.policy.ordered_shutdown = true;
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
        self.members.iter().map(|m| m.name.as_str())
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("members", &self.names().collect::<Vec<_>>())
            .field("backoff", &self.backoff)
            .field("strategy", &self.policy.strategy)
            .field("intensity", &self.policy.intensity)
            .field("ordered_shutdown", &self.policy.ordered_shutdown)
            .finish()
    }
}
