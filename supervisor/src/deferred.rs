//! The starts a runnable asks for while it is being polled, spawned when its poll ends.
//!
//! A parent starting many children in one poll (a tree's root, a group of a thousand
//! members, an accept loop draining its backlog) would otherwise spawn each child as it
//! goes. On a multi-thread runtime another worker then steals and runs each child at once,
//! and the child's first steps (its `Healthy` signal above all) take the tree's lock while
//! the parent is taking it for the next child: the two workers pass the lock and the tree's
//! memory back and forth once a child. Past the poll's first [`EAGER`], held back until
//! the parent's poll returns (or until [`BATCH`] of them are held), the children are
//! spawned in one run, after the parent's use of the tree for all of them. (Held whole
//! rather than in batches of 64, W1's 10,000 children started in about 0.8× the time on
//! two workers: faster in 10 of 12 alternating `peers-bench` pairs. On a current-thread
//! runtime batches of 64 were faster, and are kept there.)
//!
//! Nothing waits for them meanwhile: a start is made in the tree (the child is `New`, its
//! name taken, its work counted for `settled`) when it is asked for; only its task is
//! spawned later, within the same poll of the same task. So a runnable that blocks its
//! thread until a child it has just started does something waits for good (blocking a
//! runtime's thread was already wrong: it stalls that worker's other tasks); `Context::run`
//! says to await instead. Starts asked for outside a runnable's poll (another thread, a
//! node's task, a `Supervisor` handle) are spawned at once.

use std::cell::RefCell;
use std::sync::Arc;

use crate::shared::Shared;
use crate::tree::Start;

/// The starts held back in the poll in progress, and how many it spawned at once before
/// holding any (at most [`EAGER`]).
#[derive(Default)]
struct Held {
    starts: Vec<(Arc<Shared>, Start)>,
    eager: usize,
    /// How many are held before they are spawned: set when the first is held, by the
    /// runtime it is for.
    batch: usize,
}

thread_local! {
    /// The starts held back on this thread, while a runnable is being polled on it.
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Holds back the starts asked for on this thread until dropped, when they are spawned.
/// Made around each poll of a runnable; nests (the outer poll's starts are kept apart).
pub(crate) struct Deferring {
    outer: Option<Held>,
}

impl Deferring {
    pub(crate) fn begin() -> Self {
        // Empty until a start is held: a poll that starts nothing allocates nothing.
        let outer = HELD.with(|held| held.replace(Some(Held::default())));
        Deferring { outer }
    }
}

impl Drop for Deferring {
    fn drop(&mut self) {
        let held = HELD.with(|held| held.replace(self.outer.take()));
        // Most polls hold nothing: no iterator to make and drop for them.
        if let Some(held) = held
            && !held.starts.is_empty()
        {
            for (shared, start) in held.starts {
                shared.spawn_now(start);
            }
        }
    }
}

/// The starts of a poll that are spawned at once, before any is held: a parent with a few
/// children (a deep tree's inner node, a small group) gains nothing from holding them, and
/// its children start sooner, on whichever worker is free.
const EAGER: usize = 4;

/// The most starts held back at once, on a multi-thread runtime: a poll starting more has
/// them spawned in batches of this many. The gain is in not running the children's first
/// steps on another worker while the parent is still starting their siblings, so the bound
/// is set by memory alone: a held start is 80 bytes, and this many are 1.25 MiB.
const BATCH: usize = 1 << 14;

/// The same on a current-thread runtime, where no child runs before the parent's poll ends
/// whatever is held: holding few keeps the starts in cache until they are spawned.
const BATCH_ONE_WORKER: usize = 64;

/// Keeps `start` for the end of the poll in progress on this thread, unless it is one of
/// the poll's first [`EAGER`]; gives it back (to be spawned now) if it is not kept.
pub(crate) fn hold(shared: &Arc<Shared>, start: Start) -> Option<Start> {
    let full = HELD.with(|held| match held.borrow_mut().as_mut() {
        Some(held) if held.eager >= EAGER => {
            if held.starts.is_empty() {
                held.batch = if shared.on_many_workers() {
                    BATCH
                } else {
                    BATCH_ONE_WORKER
                };
            }
            held.starts.push((shared.clone(), start));
            Ok((held.starts.len() >= held.batch).then(|| std::mem::take(&mut held.starts)))
        }
        Some(held) => {
            held.eager += 1;
            Err(start)
        }
        None => Err(start),
    });
    match full {
        Err(start) => Some(start),
        Ok(full) => {
            // Spawned outside the borrow: spawning runs no code of the user's, but it is
            // kept apart from the buffer all the same.
            for (shared, start) in full.into_iter().flatten() {
                shared.spawn_now(start);
            }
            None
        }
    }
}
