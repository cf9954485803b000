//! Taking a lock whose previous holder panicked.
//!
//! A std lock is "poisoned" when a thread panics while holding it, and every
//! later `lock()` returns an error instead of the guard. Recovering the guard
//! is right for every lock that goes through here, because the data under
//! them is valid after any panic of a holder: each critical section changes
//! it in single steps that leave it whole (a map entry inserted or removed,
//! a count raised, an `Option` taken, a flag set, a line appended to a
//! file), and the std collections stay consistent when a panic unwinds out
//! of them. So the value a panicked holder left is one the next holder could
//! have seen anyway, and treating poison as fatal would only turn one
//! panicked task into a server whose every later request, ack and shutdown
//! panics in turn.
//!
//! A lock guarding an invariant that spans several steps (the sink's
//! delivery mark, `sink::deliver`) must not come here: it handles poison
//! as the error it is.

use std::sync::{LockResult, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The guard, whether or not an earlier holder panicked.
pub fn recover<G>(result: LockResult<G>) -> G {
    result.unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Locks `mutex`, recovering the guard from a panicked holder.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    recover(mutex.lock())
}

/// Read-locks `lock`, recovering the guard from a panicked writer.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    recover(lock.read())
}

/// Write-locks `lock`, recovering the guard from a panicked holder.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    recover(lock.write())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, RwLock};

    use super::*;

    #[test]
    fn a_panicked_holder_leaves_the_value_usable() {
        let m = Arc::new(Mutex::new(vec![1]));
        let held = m.clone();
        let _ = std::thread::spawn(move || {
            let mut v = held.lock().unwrap();
            v.push(2);
            panic!("holder panics");
        })
        .join();
        assert!(m.is_poisoned());
        lock(&m).push(3);
        assert_eq!(*lock(&m), vec![1, 2, 3]);

        let rw = Arc::new(RwLock::new(0));
        let held = rw.clone();
        let _ = std::thread::spawn(move || {
            let mut v = held.write().unwrap();
            *v = 7;
            panic!("writer panics");
        })
        .join();
        assert!(rw.is_poisoned());
        *write(&rw) += 1;
        assert_eq!(*read(&rw), 8);
    }
}
