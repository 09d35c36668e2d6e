//! Dynamic groups (DESIGN §15): a node whose children are started at any time, each
//! restarted alone by its kind, and gone from the tree once finished.
//!
//! The group is a node of its own below the parent that made it (in a group of one there),
//! running a task that only waits for its cancellation: it is `Healthy` from the start, and
//! ends `Canceled` with its parent. Its children are marked `dynamic`; each one's `group`
//! is its place among the group's children, so that leaving costs O(1) (a swap with the
//! last). A child *leaves* once it has finished — its subtree has returned and no restart of
//! it is pending or will come — and takes its subtree with it: slots, names, the metrics
//! sinks' series (told through [`Metrics::notify_node_removed`]) and, outside the lock,
//! their logs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::dynamic::DynamicSpec;
use crate::error::{NameUse, RunError, panic_message_dropped};
use crate::group::Member;
use crate::policy::{GroupPolicy, Intensity, Policy, Restart};
use crate::runnable::DynRunnable;
use crate::status::DynamicStatus;
use crate::{Context, NodeState};

#[cfg(doc)]
use crate::metrics::Metrics;

use super::group::Window;
use super::node::{Children, Pending, index_hash, name_hash, stale};
use super::{Effects, Key, NodeId, Note, Start, Told, Tree};

/// What a dynamic group's node holds beyond its children.
pub(super) struct DynamicGroup {
    /// Every child's, resolved once.
    pub(super) policy: Arc<Policy>,
    pub(super) max_children: Option<usize>,
    pub(super) intensity: Option<Intensity>,
    pub(super) window: Window,
    /// The number the next automatic name tries.
    pub(super) next_name: u64,
}

/// A group's own runnable: nothing to do but stay up until its parent stops.
async fn group_runnable(ctx: Context) -> crate::Result {
    ctx.cancelled().await;
    Ok(())
}

/// Appends `n` in decimal: names are made per start, where `write!` costs more than the
/// rest of the name.
fn push_number(to: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if let Ok(digits) = std::str::from_utf8(&digits[at..]) {
        to.push_str(digits);
    }
}

/// Children of a dynamic group with more room than this many times their number give the
/// room back, so that a burst does not hold its peak for good.
const SHRINK_AT: usize = 4;

impl Tree {
    /// Makes the dynamic group `name` below `key`, which must be New: a group of one of its
    /// children, whose member is the group's node. Returns the group node's task.
    pub(crate) fn run_dynamic(
        &mut self,
        key: Key,
        name: &str,
        spec: &DynamicSpec,
    ) -> Result<Start, RunError> {
        let Some(parent) = self.acting(key) else {
            return Err(stale());
        };
        if let Err(error) = spec.check() {
            return Err(RunError::InvalidSpec {
                parent: parent.dn.to_string(),
                name: name.to_owned(),
                error,
            });
        }
        let member = [Member {
            name,
            runnable: Arc::new(group_runnable) as Arc<dyn DynRunnable>,
            spec: None,
        }];
        let started = self.run_group(key, &member, None, GroupPolicy::default())?;
        let Some(start) = started.starts.into_iter().next() else {
            unreachable!("a group of one starts its member")
        };
        let child = Arc::new(spec.child_spec().resolve(
            &self.defaults.backoff,
            Restart::Temporary,
            &self.defaults,
        ));
        self.register_all |= child.shutdown != self.defaults.shutdown;
        self.dynamic = true;
        let id = start.key.id;
        self.node_mut(id).children = Some(Box::new(Children {
            dynamic: Some(Box::new(DynamicGroup {
                policy: child,
                max_children: spec.limit(),
                intensity: spec.restart_intensity(),
                window: Window::default(),
                next_name: 1,
            })),
            ..Children::default()
        }));
        self.set_state(id, NodeState::Healthy);
        Ok(start)
    }

    /// Starts `runnable` in the dynamic group `group`, named `name` or automatically.
    /// The tree takes its own reference to the runnable only if it starts.
    pub(crate) fn start_dynamic(
        &mut self,
        group: Key,
        name: Option<&str>,
        runnable: &Arc<dyn DynRunnable>,
    ) -> Result<Start, RunError> {
        let mut dn = std::mem::take(&mut self.scratch);
        let named = self.name_dynamic(group, name, &mut dn);
        let (policy, next, at) = match named {
            Ok(named) => named,
            Err(e) => {
                self.scratch = dn;
                return Err(e);
            }
        };
        let hash = name_hash(&dn[at..]);
        let mut children = self.node_mut(group.id).children.take().unwrap_or_default();
        if let Some(settings) = children.dynamic.as_deref_mut() {
            settings.next_name = next;
        }
        let place = children.ids.len();
        let id = self.insert(
            Arc::from(dn.as_str()),
            Some(group.id),
            place,
            runnable.clone(),
            policy,
            false,
        );
        self.scratch = dn;
        let child = self.node_mut(id);
        child.name_hash = hash;
        child.dynamic = true;
        self.add_child(&mut children, id);
        self.node_mut(group.id).children = Some(children);
        Ok(self.launch(id))
    }

    /// Checks that the dynamic group `group` may start a child now, and writes the child's
    /// DN into `dn`: `name`, or the next free automatic one. Returns the children's policy,
    /// the next automatic number, and where the name starts in `dn`.
    fn name_dynamic(
        &self,
        group: Key,
        name: Option<&str>,
        dn: &mut String,
    ) -> Result<(Arc<Policy>, u64, usize), RunError> {
        let Some(node) = self.acting(group) else {
            return Err(stale());
        };
        if !node.running || node.cancel.is_marked() {
            return Err(RunError::Closed {
                group: node.dn.to_string(),
            });
        }
        let Some((children, settings)) = node
            .children
            .as_deref()
            .and_then(|c| Some((c, c.dynamic.as_deref()?)))
        else {
            unreachable!("{} is not a dynamic group", node.dn)
        };
        if let Some(max) = settings.max_children
            && children.ids.len() >= max
        {
            return Err(RunError::Full {
                group: node.dn.to_string(),
                max_children: max,
            });
        }
        dn.clear();
        dn.push_str(&node.dn);
        dn.push('.');
        let at = dn.len();
        let mut next = settings.next_name;
        match name {
            Some(name) => {
                self.check_name(node, name, NameUse::Child)?;
                dn.push_str(name);
            }
            None => loop {
                dn.truncate(at);
                dn.push('c');
                push_number(dn, next);
                next += 1;
                if self.child_named(children, &dn[at..]).is_none() {
                    break;
                }
            },
        }
        Ok((settings.policy.clone(), next, at))
    }

    /// How many children the dynamic group `group` holds; 0 once the handle is stale.
    pub(crate) fn dynamic_len(&self, group: Key) -> usize {
        self.acting(group)
            .and_then(|n| n.children.as_deref())
            .map_or(0, |c| c.ids.len())
    }

    /// The settings and window of the dynamic group `id`, if it is one.
    pub(super) fn dynamic_group(&mut self, id: NodeId) -> Option<&mut DynamicGroup> {
        self.node_mut(id)
            .children
            .as_deref_mut()
            .and_then(|c| c.dynamic.as_deref_mut())
    }

    /// Lets every finished dynamic child on the way up from `from` (if it is still in the
    /// tree) leave: those whose subtree has wholly returned and that wait for no restart (or
    /// whose group is cancelled, so that none will come). Stops at the first node with
    /// something running; costs nothing in a tree without dynamic groups.
    pub(super) fn leave_finished(&mut self, from: Key, effects: &mut Effects) {
        if !self.dynamic || self.current(from).is_none() {
            return;
        }
        let mut cur = Some(from.id);
        while let Some(c) = cur {
            let node = self.node(c);
            if node.running_below > 0 {
                return;
            }
            cur = node.parent;
            let waits = node.pending != Pending::None || node.held;
            if node.dynamic && (!waits || self.parent_cancel(c).is_marked()) {
                self.leave(c, effects);
            }
        }
    }

    /// Takes the dynamic child `id`, finished, and its subtree out of the tree.
    pub(super) fn leave(&mut self, id: NodeId, effects: &mut Effects) {
        let node = self.node(id);
        debug_assert!(node.dynamic && node.running_below == 0);
        let (place, hash) = (node.group, node.name_hash);
        let Some(group) = node.parent else {
            unreachable!("a dynamic child has a parent")
        };
        let mut children = self.node_mut(group).children.take().unwrap_or_default();
        children.ids.swap_remove(place);
        if let Some(&moved) = children.ids.get(place) {
            self.node_mut(moved).group = place;
        }
        if !children.by_name.is_empty()
            && let Ok(entry) = children.by_name.find_entry(index_hash(hash), |&c| c == id)
        {
            entry.remove();
        }
        if children.ids.capacity() > 64 && children.ids.len() * SHRINK_AT < children.ids.capacity()
        {
            children.ids.shrink_to_fit();
            let rehash = |&c: &NodeId| index_hash(self.node(c).name_hash);
            children.by_name.shrink_to_fit(rehash);
        }
        self.node_mut(group).children = Some(children);
        let counted = self.node(id).counted();
        self.forget(id, effects);
        self.propagate_unready(Some(group), -counted);
    }

    /// Tells the metrics sinks that `dn` has left the tree for good; `forget_log` if it is
    /// the topmost node leaving and something was logged at or below it: that log goes,
    /// after the lock.
    pub(super) fn removed(&mut self, dn: &Arc<str>, forget_log: bool, effects: &mut Effects) {
        if forget_log {
            if effects.left.is_empty() {
                // Entries from here on are a newcomer's, under a name freed now.
                effects.left_before = self.log_tree.next_seq();
            }
            effects.left.push(dn.clone());
        }
        for m in &self.metrics {
            let told = catch_unwind(AssertUnwindSafe(|| m.notify_node_removed(dn)));
            if let Err(payload) = told {
                self.sink_panics.push(Note::SinkPanicked {
                    dn: dn.clone(),
                    told: Told::Removed,
                    message: panic_message_dropped(payload),
                });
            }
        }
    }

    /// A dynamic group's part of its node's status.
    pub(super) fn dynamic_status(&self, id: NodeId, now: u64) -> Option<DynamicStatus> {
        let children = self.node(id).children.as_deref()?;
        let settings = children.dynamic.as_deref()?;
        let intensity = settings.intensity.or(self.default_intensity);
        Some(DynamicStatus {
            children: children.ids.len(),
            max_children: settings.max_children,
            kind: settings.policy.restart,
            intensity,
            restarts_in_window: intensity.map(|i| settings.window.count(now, i.period())),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Context, Dynamic, DynamicSpec, Signal, Supervisor};

    #[test]
    fn the_handle_goes_anywhere() {
        fn anywhere<T: Clone + Send + Sync + 'static>() {}
        anywhere::<Dynamic>();
        anywhere::<DynamicSpec>();
    }

    /// The log tree's record of each DN a runnable logged at (its verbosity) is swept once
    /// nobody holds it: churned children that log leave no metadata piling up.
    #[tokio::test(start_paused = true)]
    async fn the_metadata_of_churned_children_does_not_pile_up() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let sup = Supervisor::new(move |ctx: Context| {
            let tx = tx.lock().ok().and_then(|mut t| t.take());
            async move {
                let group = ctx.dynamic("jobs", DynamicSpec::new())?;
                if let Some(tx) = tx {
                    let _ = tx.send(group);
                }
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                Ok(())
            }
        });
        let group = rx.await.expect("the group");
        for _ in 0..20 {
            for _ in 0..500 {
                group
                    .start(|ctx: Context| async move {
                        ctx.logger().info("a job");
                        Ok(())
                    })
                    .expect("started");
            }
            sup.settled().await;
        }
        let log = sup.log_tree();
        // At most what the last sweep left (the live DNs, doubled, or 1,024), however many
        // children came and went.
        assert!(log.indexed_dns() <= 2 * 1024, "{}", log.indexed_dns());
        assert_eq!(log.usage().dns, 1, "only `supervisor` has entries");
        sup.cancel();
        sup.wait().await;
    }
}
