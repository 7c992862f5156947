//! The grants of state pages a client holds, by object (the data plane's
//! "Grants"): one generic cache for the kinds whose fast paths keep a page
//! per object (`msg_fast`'s queues by id, `mq_fast`'s descriptions by
//! handle).
//!
//! A grant is used only while it is current (same process, connection
//! generation and credentials: the [`Key`]; and whatever the kind checks
//! on its page). A refusal is remembered for [`RETRY_REFUSED`] calls, so a
//! caller without permission does not ask at every call.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU32, Ordering};
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

/// The grants of a client, by object.
#[derive(Debug)]
pub(crate) struct Grants<K, H> {
    map: RwLock<HashMap<K, Entry<H>>>,
}

impl<K, H> Default for Grants<K, H> {
    fn default() -> Self {
        Grants { map: RwLock::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq + Copy, H: Grant> Grants<K, H> {
    /// The current grant of `k` for `holder`, asking (`ask`) for one if
    /// there is none or a stale one; `None` if the daemon must serve the
    /// call.
    pub(crate) fn get(&self, k: K, holder: Key, ask: impl FnOnce() -> Option<Arc<H>>) -> Option<Arc<H>> {
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

    /// Drops the grant of `k` (its object is closed).
    pub(crate) fn forget(&self, k: K) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).remove(&k);
    }
}

/// How long a call that would sleep watches the page before it goes to
/// the daemon to sleep.
pub(crate) const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

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
    let deadline = std::time::Instant::now() + SPIN;
    loop {
        let h = held()?;
        let seen = version(&h);
        if let Some(r) = op(&h) {
            return Some(r);
        }
        if flags(&h) & (SLEEPERS | REMOVED | DAMAGED) != 0 {
            return None;
        }
        while version(&h) == seen {
            if std::time::Instant::now() >= deadline || flags(&h) != 0 {
                return None;
            }
            std::thread::yield_now();
        }
    }
}
