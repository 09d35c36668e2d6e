//! Dynamic groups: children started at any time, one per connection, job or device
//! (DESIGN §15).

use std::fmt;
use std::sync::Arc;

use crate::error::{ConfigError, RunError};
use crate::policy::{Intensity, Spec};
use crate::runnable::{DynRunnable, Runnable};
use crate::shared::Shared;
use crate::tree::Key;

/// How a dynamic group supervises its children: for
/// [`Context::dynamic`](crate::Context::dynamic).
///
/// - [`child`](DynamicSpec::child): every child's [`Spec`]. A spec that sets no restart
///   kind makes [`Restart::Temporary`](crate::Restart::Temporary) children (a connection or
///   a job is not started again when it ends), unlike a static group's `Permanent`.
/// - [`max_children`](DynamicSpec::max_children): how many children the group may hold at
///   once, counting those waiting out a backoff; a start beyond it is
///   [`RunError::Full`]. No limit by default.
/// - [`intensity`](DynamicSpec::intensity): how many restarts of its children the group
///   allows within a period (the builder's intensity by default). Over it, the group's
///   parent fails, as it would for one of its static groups.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor::{DynamicSpec, Shutdown, Spec};
///
/// let spec = DynamicSpec::new()
///     .max_children(1024)
///     .child(Spec::new().shutdown(Shutdown::Timeout(Duration::from_secs(5))));
/// assert_eq!(spec.limit(), Some(1024));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use = "a dynamic spec does nothing until it is passed to `Context::dynamic`"]
pub struct DynamicSpec {
    max_children: Option<usize>,
    child: Spec,
    intensity: Option<Intensity>,
}

impl DynamicSpec {
    /// Temporary children with the builder's backoff and shutdown grace, and no limit.
    pub fn new() -> Self {
        DynamicSpec::default()
    }

    /// At most `max` children at once (at least 1: zero is refused when the group is
    /// made, as [`RunError::InvalidSpec`]).
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// How every child is supervised. Its restart kind defaults to `Temporary`.
    pub fn child(mut self, spec: Spec) -> Self {
        self.child = spec;
        self
    }

    /// The group's restart intensity, instead of the builder's.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = Some(intensity);
        self
    }

    /// Its limit of children, if it sets one.
    pub fn limit(&self) -> Option<usize> {
        self.max_children
    }

    /// The spec of its children.
    pub fn child_spec(&self) -> &Spec {
        &self.child
    }

    /// The intensity it sets, if any.
    pub fn restart_intensity(&self) -> Option<Intensity> {
        self.intensity
    }

    /// Whether every setting keeps its rule.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.max_children == Some(0) {
            return Err(ConfigError {
                setting: "dynamic group max_children",
                value: "0".into(),
                rule: "must be at least 1",
            });
        }
        self.child.check()
    }
}

/// The handle of a dynamic group, from [`Context::dynamic`](crate::Context::dynamic): it
/// starts children in the group from any task, at any time while the group's parent
/// incarnation lives.
///
/// The group is a node (`<parent>.<name>`) and each child a node below it, with everything
/// a child has: states, a log at its DN, metrics, status, restarts by its kind. Children
/// are independent (`one_for_one`): one's failure never touches its siblings. A child that
/// has finished — ended for good, its subtree returned — leaves the tree: its slot, its
/// name and its log are freed, and [`Metrics`](crate::Metrics) are told
/// ([`notify_node_removed`](crate::Metrics::notify_node_removed)). Children ended by the
/// tree's shutdown leave too: after [`wait`](crate::Supervisor::wait), `states()` shows the
/// group's node `Canceled` and none of its children.
///
/// The group belongs to its parent's incarnation. Once the parent is cancelled, `start`
/// returns [`RunError::Closed`]; once the parent has restarted (its dynamic children
/// cancelled and forgotten with it), the handle is stale and `start` returns
/// [`RunError::Stale`]. The new incarnation makes its group anew.
///
/// Cheap to clone (`Clone + Send + Sync`); `start` takes the tree's lock briefly and never
/// blocks on the group's children.
///
/// # Examples
///
/// ```
/// use supervisor::{Context, DynamicSpec, Signal};
///
/// async fn job(_ctx: Context) -> supervisor::Result {
///     tracing::info!("working"); // logged at root.jobs.c1, root.jobs.c2, …
///     Ok(())
/// }
///
/// async fn runner(ctx: Context) -> supervisor::Result {
///     let jobs = ctx.dynamic("jobs", DynamicSpec::new().max_children(64))?;
///     ctx.signal(Signal::Healthy);
///     for _ in 0..3 {
///         let dn = jobs.start(job)?;
///         tracing::info!("started {dn}");
///     }
///     ctx.cancelled().await;
///     Ok(())
/// }
/// # let _ = runner;
/// ```
#[derive(Clone)]
pub struct Dynamic {
    inner: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    /// The group node's incarnation, which lives as long as its parent's.
    key: Key,
    dn: Arc<str>,
}

impl Dynamic {
    pub(crate) fn new(shared: Arc<Shared>, key: Key, dn: Arc<str>) -> Self {
        Dynamic {
            inner: Arc::new(Handle { shared, key, dn }),
        }
    }

    /// The group's DN, e.g. `root.srv.conns`.
    pub fn dn(&self) -> &str {
        &self.inner.dn
    }

    /// Starts `runnable` as a child with an automatic name, `c<n>` (`c1`, `c2`, … in start
    /// order, passing over names taken by [`start_named`](Dynamic::start_named)), and
    /// returns its DN. As with [`Context::run`](crate::Context::run), past the first few
    /// children a runnable starts in one poll, their tasks are spawned when that poll
    /// returns (an accept loop draining a backlog starts them as it goes back to waiting).
    ///
    /// # Errors
    ///
    /// [`RunError::Full`] when the group holds its `max_children`, [`RunError::Closed`] once
    /// the group's parent is being cancelled, and [`RunError::Stale`] once it has restarted.
    pub fn start<R: Runnable>(&self, runnable: R) -> Result<String, RunError> {
        self.start_as(None, Arc::new(runnable))
    }

    /// Starts `runnable` as a child named `name` (a device's, a job's), and returns its DN.
    /// The name follows the rule of every child's, and is free again once the child has
    /// left the group.
    ///
    /// # Errors
    ///
    /// As [`start`](Dynamic::start), and [`RunError::InvalidName`] or
    /// [`RunError::NameTaken`] for a name that breaks the rule or that a child of the group
    /// has.
    pub fn start_named<R: Runnable>(&self, name: &str, runnable: R) -> Result<String, RunError> {
        self.start_as(Some(name), Arc::new(runnable))
    }

    fn start_as(
        &self,
        name: Option<&str>,
        runnable: Arc<dyn DynRunnable>,
    ) -> Result<String, RunError> {
        let shared = &self.inner.shared;
        let start = shared.in_tree(|tree| tree.start_dynamic(self.inner.key, name, &runnable));
        // The tree keeps its own reference: the runnable of a refused start is dropped here,
        // outside the lock.
        drop(runnable);
        let start = start.map_err(|e| e.named(self.dn()))?;
        let dn = start.dn.to_string();
        shared.spawn(start);
        Ok(dn)
    }

    /// How many children the group holds: running, or waiting out their backoff. Zero for a
    /// stale handle.
    pub fn len(&self) -> usize {
        self.inner.shared.tree().dynamic_len(self.inner.key)
    }

    /// Whether the group holds no children.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Dynamic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dynamic")
            .field("dn", &self.dn())
            .field("incarnation", &self.inner.key.incarnation)
            .finish()
    }
}
