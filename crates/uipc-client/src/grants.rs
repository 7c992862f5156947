//! The grants of state pages a client holds, by object (the data plane's
//! "Grants"): one generic cache for the kinds whose fast paths keep a page
//! per object (`msg_fast`'s queues by id, `mq_fast`'s descriptions by
//! handle).
//!
//! A grant is used only while it is current (same process, connection
//! generation and credentials: the [`Key`]; and whatever the kind checks
//! on its page). A refusal is remembered for [`RETRY_REFUSED`] calls, so a
//! caller without permission does not ask at every call.
//!
//! The grant a thread used last is also kept in a thread-local slot and
//! taken from there while it is current, by the same test: a repeated call
//! on one object ([`Grants::with`]) touches no lock and no shared
//! reference count (the table's `RwLock`, `HashMap` and `Arc` were 14% of
//! an uncontended `semop`).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use uipc_sys::state_page::{DAMAGED, REMOVED, SLEEPERS};

use crate::sem_fast::{Key, RETRY_REFUSED};

/// A held grant: whether it may still be used by `holder`.
pub(crate) trait Grant {
    /// Whether the grant is current for `holder` (its key, and the page's
    /// permission version and flags as the kind checks them).
    fn current(&self, holder: Key) -> bool;
}

/// One object's grant, or the memory of a refusal.
#[derive(Debug)]
enum Entry<H> {
    Held(Arc<H>),
    Refused { holder: Key, calls: AtomicU32 },
}

/// An object's key as one word, for the thread-local slot.
pub(crate) trait GrantKey: Hash + Eq + Copy {
    /// The key as a word (distinct keys, distinct words).
    fn word(self) -> u64;
}

impl GrantKey for i32 {
    fn word(self) -> u64 {
        u64::from(self.cast_unsigned())
    }
}

impl GrantKey for u64 {
    fn word(self) -> u64 {
        self
    }
}

/// The grants of a client, by object.
#[derive(Debug)]
pub(crate) struct Grants<K, H> {
    map: RwLock<HashMap<K, Entry<H>>>,
    /// This table among all (tables are shared by a client's clones, and
    /// never two with one number).
    table: u64,
    /// Advanced by [`forget`](Self::forget): a thread's slot taken before
    /// is no longer used.
    epoch: AtomicU64,
}

/// The grant this thread used last: of which table, epoch and object.
struct Last {
    table: u64,
    epoch: u64,
    key: u64,
    held: Arc<dyn Any + Send + Sync>,
}

thread_local! {
    static LAST: RefCell<Option<Last>> = const { RefCell::new(None) };
}

impl<K, H> Default for Grants<K, H> {
    fn default() -> Self {
        static TABLES: AtomicU64 = AtomicU64::new(0);
        Grants {
            map: RwLock::new(HashMap::new()),
            table: TABLES.fetch_add(1, Ordering::Relaxed),
            epoch: AtomicU64::new(0),
        }
    }
}

impl<K: GrantKey, H: Grant + Send + Sync + 'static> Grants<K, H> {
    /// Runs `f` with the current grant of `k` for `holder` (as
    /// [`get`](Self::get) finds it, asking with `ask`); `None` if the
    /// daemon must serve the call. From the thread's slot, nothing shared
    /// is written.
    pub(crate) fn with<T>(
        &self,
        k: K,
        holder: Key,
        ask: impl FnOnce() -> Option<Arc<H>>,
        f: impl FnOnce(&H) -> Option<T>,
    ) -> Option<T> {
        let f = Cell::new(Some(f));
        if let Some(answer) = self.last_used(k, holder, |h, _| f.take().and_then(|f| f(h))) {
            return answer;
        }
        let h = self.get(k, holder, ask)?;
        f.take().and_then(|f| f(&h))
    }

    /// The current grant of `k` for `holder`: the thread's last one if it
    /// is that, else the table's, asking (`ask`) for one if there is none
    /// or a stale one; `None` if the daemon must serve the call.
    pub(crate) fn get(&self, k: K, holder: Key, ask: impl FnOnce() -> Option<Arc<H>>) -> Option<Arc<H>> {
        if let Some(Some(h)) = self.last_used(k, holder, |_, any| Arc::clone(any).downcast::<H>().ok()) {
            return Some(h);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let h = self.in_table(k, holder, ask)?;
        let _ = LAST.try_with(|last| {
            // A signal handler's call inside ours finds the slot borrowed.
            if let Ok(mut last) = last.try_borrow_mut() {
                let held: Arc<dyn Any + Send + Sync> = Arc::clone(&h) as _;
                *last = Some(Last { table: self.table, epoch, key: k.word(), held });
            }
        });
        Some(h)
    }

    /// `f` of the thread's last grant, if it is `k`'s of this table and
    /// current for `holder`.
    fn last_used<T>(&self, k: K, holder: Key, f: impl FnOnce(&H, &Arc<dyn Any + Send + Sync>) -> T) -> Option<T> {
        let epoch = self.epoch.load(Ordering::Acquire);
        LAST.try_with(|last| {
            let last = last.try_borrow().ok()?;
            let last = last.as_ref().filter(|l| l.table == self.table && l.epoch == epoch && l.key == k.word())?;
            let h = last.held.downcast_ref::<H>().filter(|h| h.current(holder))?;
            Some(f(h, &last.held))
        })
        .ok()
        .flatten()
    }

    /// The table's current grant of `k` for `holder`, asked for if need be.
    fn in_table(&self, k: K, holder: Key, ask: impl FnOnce() -> Option<Arc<H>>) -> Option<Arc<H>> {
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            match map.get(&k) {
                Some(Entry::Held(h)) if h.current(holder) => return Some(Arc::clone(h)),
                Some(Entry::Refused { holder: was, calls })
                    if *was == holder && calls.fetch_add(1, Ordering::Relaxed) < RETRY_REFUSED =>
                {
                    return None;
                }
                _ => {}
            }
        }
        let held = ask();
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        match &held {
            Some(h) => map.insert(k, Entry::Held(Arc::clone(h))),
            None => map.insert(k, Entry::Refused { holder, calls: AtomicU32::new(0) }),
        };
        held
    }

    /// Drops the grant of `k` (its object is closed), here and in every
    /// thread's slot.
    pub(crate) fn forget(&self, k: K) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).remove(&k);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// How long a call that would sleep watches the page before it goes to
/// the daemon to sleep.
pub(crate) const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// How many times [`watch`] reads the page between two yields of the CPU.
const POLLS_PER_YIELD: u32 = 64;

/// A call that would sleep first watches its object's page for up to
/// [`SPIN`] (yielding the CPU): a partner running on another CPU usually
/// answers sooner than a round trip to the daemon takes. The caller is not
/// yet a sleeper while it watches (as if its call came that much later);
/// then it goes to the daemon and sleeps there as always. `held` gives the
/// current grant, `version` and `flags` read its page without the lock,
/// `op` is the fast attempt (`None`: the daemon's).
pub(crate) fn watch<H, T>(
    held: impl Fn() -> Option<Arc<H>>,
    version: impl Fn(&H) -> u64,
    flags: impl Fn(&H) -> u32,
    mut op: impl FnMut(&H) -> Option<T>,
) -> Option<T> {
    // Read at the first wait: most calls need none.
    let mut deadline = None;
    loop {
        let h = held()?;
        let seen = version(&h);
        if let Some(r) = op(&h) {
            return Some(r);
        }
        if flags(&h) & (SLEEPERS | REMOVED | DAMAGED) != 0 {
            return None;
        }
        let deadline = *deadline.get_or_insert_with(|| std::time::Instant::now() + SPIN);
        let mut polls = 0u32;
        while version(&h) == seen {
            polls += 1;
            if !polls.is_multiple_of(POLLS_PER_YIELD) {
                // A partner on another CPU answers within these polls;
                // one on this CPU needs the yield.
                std::hint::spin_loop();
                continue;
            }
            if std::time::Instant::now() >= deadline || flags(&h) != 0 {
                return None;
            }
            std::thread::yield_now();
        }
    }
}
