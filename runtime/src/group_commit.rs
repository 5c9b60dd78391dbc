//! Group commit: writes that arrive while one is being made durable share the next
//! transaction, and so its one fsync.
//!
//! A status report is acknowledged only once it is on disk (`synchronous=FULL`), which
//! costs an fsync. In a boot storm hundreds of switches report at once, and one fsync
//! per report made the status store the runtime's slowest path. Here the first caller
//! becomes the leader and writes everything queued so far as one batch; callers that
//! arrive meanwhile wait, and when the batch is done the first of them leads the next
//! one with all that queued up behind it. No timer: an idle store writes a lone report
//! at once, and a busy one batches exactly as much as arrived during the last write.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A queue of items to be written in batches by whichever caller leads.
pub struct GroupCommit<T, R> {
    queue: Mutex<Queue<T, R>>,
}

struct Queue<T, R> {
    items: Vec<(T, Arc<Slot<R>>)>,
    /// A caller is writing a batch (or has been told to write the next one).
    leading: bool,
}

/// Where a waiting caller learns its outcome, or that it leads the next batch.
struct Slot<R> {
    state: Mutex<SlotState<R>>,
    ready: Condvar,
}

enum SlotState<R> {
    Waiting,
    Lead,
    Done(R),
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    // The state is consistent at every unlock, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<R> Slot<R> {
    fn set(&self, s: SlotState<R>) {
        *lock(&self.state) = s;
        self.ready.notify_one();
    }

    /// Block until the slot holds an outcome or the lead; take it.
    fn wait(&self) -> SlotState<R> {
        let mut s = lock(&self.state);
        while matches!(*s, SlotState::Waiting) {
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        std::mem::replace(&mut *s, SlotState::Waiting)
    }
}

impl<T, R> Default for GroupCommit<T, R> {
    fn default() -> Self {
        GroupCommit { queue: Mutex::new(Queue { items: Vec::new(), leading: false }) }
    }
}

impl<T, R> GroupCommit<T, R> {
    /// Write `item` in some batch and return its outcome. `write` gets a batch (in
    /// arrival order) and returns one outcome per item, in the same order; if it panics
    /// or returns the wrong count, every item of the batch gets `failed()`. Blocks the
    /// calling thread: call it where blocking is allowed.
    pub fn submit(&self, item: T, write: impl FnOnce(Vec<T>) -> Vec<R>, failed: impl Fn() -> R) -> R {
        let mine = Arc::new(Slot { state: Mutex::new(SlotState::Waiting), ready: Condvar::new() });
        let lead = {
            let mut q = lock(&self.queue);
            q.items.push((item, Arc::clone(&mine)));
            !std::mem::replace(&mut q.leading, true)
        };
        if !lead {
            match mine.wait() {
                SlotState::Done(r) => return r,
                // Handed the lead: this caller's item is still queued (the hand-over
                // picks the first queued item's caller), so the batch below holds it.
                SlotState::Lead | SlotState::Waiting => {}
            }
        }
        let (items, slots): (Vec<T>, Vec<Arc<Slot<R>>>) =
            std::mem::take(&mut lock(&self.queue).items).into_iter().unzip();
        let n = items.len();
        let outcomes = catch_unwind(AssertUnwindSafe(|| write(items))).ok().filter(|o| o.len() == n);
        {
            // Hand the lead on before waking anyone, under the queue's lock, so that an
            // item queued from now on either finds a leader or becomes one.
            let mut q = lock(&self.queue);
            match q.items.first() {
                Some((_, next)) => next.set(SlotState::Lead),
                None => q.leading = false,
            }
        }
        let outcomes: Vec<R> = outcomes.unwrap_or_else(|| (0..n).map(|_| failed()).collect());
        let mut own = None;
        for (slot, r) in slots.into_iter().zip(outcomes) {
            if Arc::ptr_eq(&slot, &mine) {
                own = Some(r);
            } else {
                slot.set(SlotState::Done(r));
            }
        }
        own.unwrap_or_else(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Callers arriving during a slow write share the next one, and each gets the
    /// outcome of its own item.
    #[test]
    fn concurrent_items_share_writes_and_get_their_own_outcome() {
        let gc = Arc::new(GroupCommit::<u32, u32>::default());
        let writes = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..32u32)
            .map(|i| {
                let (gc, writes) = (Arc::clone(&gc), Arc::clone(&writes));
                std::thread::spawn(move || {
                    let write = |batch: Vec<u32>| {
                        writes.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        batch.into_iter().map(|x| x * 10).collect()
                    };
                    (i, gc.submit(i, write, || u32::MAX))
                })
            })
            .collect();
        for t in threads {
            let (i, r) = t.join().unwrap();
            assert_eq!(r, i * 10, "item {i} got another item's outcome");
        }
        let n = writes.load(Ordering::SeqCst);
        assert!(n < 32 / 2, "32 items written in {n} writes: no batching");
        // Idle again: a lone item is written at once, by its own caller.
        assert_eq!(gc.submit(7, |b| b, || 0), 7);
    }

    /// A write that panics fails its batch, not the queue: the next item is written.
    #[test]
    fn a_panicking_write_fails_its_batch_only() {
        let gc = GroupCommit::<u32, Result<u32, ()>>::default();
        let r = gc.submit(1, |_| panic!("disk on fire"), || Err(()));
        assert_eq!(r, Err(()));
        let r = gc.submit(2, |_| Vec::new(), || Err(()));
        assert_eq!(r, Err(()), "a write returning too few outcomes fails its items");
        assert_eq!(gc.submit(3, |b| b.into_iter().map(Ok).collect(), || Err(())), Ok(3));
    }
}
