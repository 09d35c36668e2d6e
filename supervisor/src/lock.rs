//! Locking the supervisor's mutexes.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, also when a panic elsewhere poisoned it. No critical section runs user
/// code except metrics sinks, whose panics are caught, and each leaves its data consistent
/// before anything that could panic; so a poisoned lock is still safe to use, and a panic in
/// one part of a program does not take the supervisor down with it.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
