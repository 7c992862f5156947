//! [`Tracked`]: a map that remembers which keys changed, so a durable host
//! records only the entries an event touched (`docs/architecture.md`,
//! "Surviving the daemon's own crash").

use std::collections::btree_map::{Entry, IterMut, ValuesMut};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

/// A `BTreeMap` whose every mutable access records the key it may change
/// (over-approximated: a mutable borrow that changes nothing still counts).
/// Reads go through `Deref`; there is no `DerefMut`, so no change escapes.
#[derive(Clone, Debug)]
pub(crate) struct Tracked<K, V> {
    map: BTreeMap<K, V>,
    dirty: BTreeSet<K>,
}

impl<K, V> Default for Tracked<K, V> {
    fn default() -> Self {
        Tracked { map: BTreeMap::new(), dirty: BTreeSet::new() }
    }
}

impl<K, V> Deref for Tracked<K, V> {
    type Target = BTreeMap<K, V>;

    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<K: Ord + Clone, V> Tracked<K, V> {
    /// A map of `map`'s entries, none of them changed.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn from_map(map: BTreeMap<K, V>) -> Self {
        Tracked { map, dirty: BTreeSet::new() }
    }

    pub(crate) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let v = self.map.get_mut(k)?;
        self.dirty.insert(k.clone());
        Some(v)
    }

    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.dirty.insert(k.clone());
        self.map.insert(k, v)
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        let v = self.map.remove(k)?;
        self.dirty.insert(k.clone());
        Some(v)
    }

    pub(crate) fn entry(&mut self, k: K) -> Entry<'_, K, V> {
        self.dirty.insert(k.clone());
        self.map.entry(k)
    }

    pub(crate) fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        self.dirty.extend(self.map.keys().cloned());
        self.map.iter_mut()
    }

    pub(crate) fn values_mut(&mut self) -> ValuesMut<'_, K, V> {
        self.dirty.extend(self.map.keys().cloned());
        self.map.values_mut()
    }

    pub(crate) fn retain(&mut self, f: impl FnMut(&K, &mut V) -> bool) {
        self.dirty.extend(self.map.keys().cloned());
        self.map.retain(f);
    }

    pub(crate) fn clear(&mut self) {
        self.dirty.extend(self.map.keys().cloned());
        self.map.clear();
    }

    /// The keys changed since the last call.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn take_dirty(&mut self) -> BTreeSet<K> {
        std::mem::take(&mut self.dirty)
    }
}
