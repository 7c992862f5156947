//! [`Tracked`]: a map that remembers which keys changed, so a durable host
//! records only the entries an event touched (`docs/architecture.md`,
//! "Surviving the daemon's own crash").

use std::collections::btree_map::{Entry, IterMut, ValuesMut};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

/// A `BTreeMap` whose every mutable access records the key it may change
/// (over-approximated: a mutable borrow that changes nothing still counts),
/// once tracking is on ([`track`](Tracked::track): only a host that takes
/// the changes turns it on, so nobody else pays or accumulates). Reads go
/// through `Deref`; there is no `DerefMut`, so no change escapes.
#[derive(Clone, Debug)]
pub(crate) struct Tracked<K, V> {
    map: BTreeMap<K, V>,
    dirty: Option<BTreeSet<K>>,
}

impl<K, V> Default for Tracked<K, V> {
    fn default() -> Self {
        Tracked { map: BTreeMap::new(), dirty: None }
    }
}

impl<K, V> Deref for Tracked<K, V> {
    type Target = BTreeMap<K, V>;

    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<K: Ord + Clone, V> Tracked<K, V> {
    /// A map of `map`'s entries, none of them changed, tracked.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn from_map(map: BTreeMap<K, V>) -> Self {
        Tracked { map, dirty: Some(BTreeSet::new()) }
    }

    /// Turns tracking on (from now on, changes are noted).
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn track(&mut self) {
        self.dirty.get_or_insert_with(BTreeSet::new);
    }

    fn note(&mut self, k: &K) {
        if let Some(d) = &mut self.dirty {
            d.insert(k.clone());
        }
    }

    fn note_all(&mut self) {
        if let Some(d) = &mut self.dirty {
            d.extend(self.map.keys().cloned());
        }
    }

    pub(crate) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        if !self.map.contains_key(k) {
            return None;
        }
        self.note(k);
        self.map.get_mut(k)
    }

    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.note(&k);
        self.map.insert(k, v)
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        let v = self.map.remove(k)?;
        self.note(k);
        Some(v)
    }

    pub(crate) fn entry(&mut self, k: K) -> Entry<'_, K, V> {
        self.note(&k);
        self.map.entry(k)
    }

    pub(crate) fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        self.note_all();
        self.map.iter_mut()
    }

    pub(crate) fn values_mut(&mut self) -> ValuesMut<'_, K, V> {
        self.note_all();
        self.map.values_mut()
    }

    pub(crate) fn retain(&mut self, f: impl FnMut(&K, &mut V) -> bool) {
        self.note_all();
        self.map.retain(f);
    }

    pub(crate) fn clear(&mut self) {
        self.note_all();
        self.map.clear();
    }

    /// The keys changed since the last call.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn take_dirty(&mut self) -> BTreeSet<K> {
        self.dirty.as_mut().map(std::mem::take).unwrap_or_default()
    }
}
