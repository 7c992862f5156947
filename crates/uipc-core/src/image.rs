//! A namespace's state as plain data, in parts, for a durable host
//! (`docs/architecture.md`, "Surviving the daemon's own crash").
//!
//! The state is cut into [`Part`]s: one [`Head`] (owner, limits, every
//! registry's counters and cursors, accounting), then one part per object
//! (segment, semaphore set, message queue, POSIX queue, POSIX shm object),
//! per undo record, open POSIX queue description, name and process
//! mapping table. The registries and maps remember which parts an
//! operation changed ([`IpcIds`]' dirty slots, [`Tracked`] maps), so a
//! host records after each event only the parts it changed
//! ([`IpcNamespace::take_changed_parts`]), each with
//! [`IpcNamespace::write_part`]; replaying the records (the last version
//! of each part wins) into an [`NsParts`] rebuilds the namespace
//! ([`NsParts::into_namespace`]). Sleepers are not parts: a host that
//! died lost its sleeping callers with their connections. A region is
//! recorded as the host serializes it (the daemon: its file's name) and
//! re-opened by the host at the end.
//!
//! [`Tracked`]: crate::tracked::Tracked

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cred::{Pid, Uid};
use crate::ids::{IpcId, IpcIds, IpcObject};
use crate::limits::Limits;
use crate::memory::Memory;
use crate::mm::Mm;
use crate::namespace::IpcNamespace;
use crate::perm::NamespaceOwner;
use crate::posix::mqueue::{MqDesc, MqDescId, MqQueue};
use crate::posix::names::PosixName;
use crate::posix::shm::PshmObject;
use crate::sysv::msg::MsgQueue;
use crate::sysv::sem::SemSet;
use crate::sysv::shm::ShmSegment;

/// One part of a namespace's state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Part {
    /// Owner, limits, counters and cursors ([`Head`]).
    Head,
    /// The segment in registry slot N.
    Shm(u32),
    /// The semaphore set in registry slot N.
    Sem(u32),
    /// The message queue in registry slot N.
    Msg(u32),
    /// The undo record of a process for a set.
    Undo(Pid, IpcId),
    /// A POSIX message queue, by inode.
    MqQueue(u64),
    /// An open POSIX message queue description.
    MqDesc(MqDescId),
    /// A name of the mqueue filesystem.
    MqName(PosixName),
    /// A POSIX shm object, by inode.
    Pshm(u64),
    /// A name of `/dev/shm`.
    PshmName(PosixName),
    /// A process's System V mappings.
    Mm(Pid),
}

/// A registry's counters and cursors (`struct ipc_ids` without its objects;
/// the key map is rebuilt from the objects).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct IdsMeta {
    in_use: u32,
    max_idx: i32,
    idr_next: u32,
    last_idx: i64,
    seq: u16,
    next_id: i32,
}

impl IdsMeta {
    fn of<T>(ids: &IpcIds<T>) -> IdsMeta {
        IdsMeta {
            in_use: ids.in_use,
            max_idx: ids.max_idx,
            idr_next: ids.idr_next,
            last_idx: ids.last_idx,
            seq: ids.seq,
            next_id: ids.next_id,
        }
    }

    /// The registry with `objects` in their slots.
    fn rebuild<T: IpcObject>(self, objects: BTreeMap<u32, T>) -> IpcIds<T> {
        let mut ids = IpcIds::<T>::default();
        let len = objects.keys().next_back().map_or(0, |&i| usize::try_from(i).unwrap_or(0) + 1);
        ids.slots.resize_with(len, || None);
        for (idx, obj) in objects {
            let key = obj.perm().key;
            if !key.is_private() {
                ids.keys.insert(key, idx);
            }
            if let Some(slot) = usize::try_from(idx).ok().and_then(|i| ids.slots.get_mut(i)) {
                *slot = Some(obj);
            }
        }
        ids.in_use = self.in_use;
        ids.max_idx = self.max_idx;
        ids.idr_next = self.idr_next;
        ids.last_idx = self.last_idx;
        ids.seq = self.seq;
        ids.next_id = self.next_id;
        ids
    }
}

/// Everything of a namespace that is not an object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Head {
    owner: NamespaceOwner,
    limits: Limits,
    next_attach: u64,
    shm_ids: IdsMeta,
    shm_tot: u64,
    shm_locked: BTreeMap<Uid, u64>,
    shm_perm_versions: u32,
    sem_ids: IdsMeta,
    sem_used: i64,
    sem_next_waiter: u64,
    sem_perm_versions: u32,
    msg_ids: IdsMeta,
    msg_total_msgs: u64,
    msg_total_bytes: u64,
    msg_perm_versions: u32,
    mq_next_inode: u64,
    mq_next_desc: u64,
    mq_count: i64,
    mq_charged: BTreeMap<Uid, u64>,
    pshm_next: u64,
}

impl<M: Memory> IpcNamespace<M> {
    fn head(&self) -> Head {
        Head {
            owner: self.owner,
            limits: self.limits.clone(),
            next_attach: self.next_attach,
            shm_ids: IdsMeta::of(&self.shm.ids),
            shm_tot: self.shm.tot,
            shm_locked: self.shm.locked.clone(),
            shm_perm_versions: self.shm.perm_versions,
            sem_ids: IdsMeta::of(&self.sem.ids),
            sem_used: self.sem.used_sems,
            sem_next_waiter: self.sem.next_waiter,
            sem_perm_versions: self.sem.perm_versions,
            msg_ids: IdsMeta::of(&self.msg.ids),
            msg_total_msgs: self.msg.total_msgs,
            msg_total_bytes: self.msg.total_bytes,
            msg_perm_versions: self.msg.perm_versions,
            mq_next_inode: self.mq.next_inode,
            mq_next_desc: self.mq.next_desc,
            mq_count: self.mq.count,
            mq_charged: self.mq.charged.clone(),
            pshm_next: self.pshm.next,
        }
    }

    /// Turns on the noting of changed parts (off by default: a host that
    /// never takes them neither pays for nor accumulates them). A
    /// namespace made by [`NsParts::into_namespace`] has it on.
    pub fn track_changes(&mut self) {
        for d in [&mut self.shm.ids.dirty, &mut self.sem.ids.dirty, &mut self.msg.ids.dirty] {
            d.get_or_insert_with(BTreeSet::new);
        }
        self.sem.undos.track();
        self.mq.queues.track();
        self.mq.descs.track();
        self.mq.names.entries.track();
        self.pshm.objects.track();
        self.pshm.names.entries.track();
        self.mms.track();
    }

    /// The parts changed since the last call (always [`Part::Head`]), if
    /// [`track_changes`](Self::track_changes) is on.
    pub fn take_changed_parts(&mut self) -> BTreeSet<Part> {
        let slots = |d: &mut Option<BTreeSet<u32>>| d.as_mut().map(std::mem::take).unwrap_or_default();
        let mut out = BTreeSet::from([Part::Head]);
        out.extend(slots(&mut self.shm.ids.dirty).into_iter().map(Part::Shm));
        out.extend(slots(&mut self.sem.ids.dirty).into_iter().map(Part::Sem));
        out.extend(slots(&mut self.msg.ids.dirty).into_iter().map(Part::Msg));
        out.extend(self.sem.undos.take_dirty().into_iter().map(|(p, i)| Part::Undo(p, i)));
        out.extend(self.mq.queues.take_dirty().into_iter().map(Part::MqQueue));
        out.extend(self.mq.descs.take_dirty().into_iter().map(Part::MqDesc));
        out.extend(self.mq.names.entries.take_dirty().into_iter().map(Part::MqName));
        out.extend(self.pshm.objects.take_dirty().into_iter().map(Part::Pshm));
        out.extend(self.pshm.names.entries.take_dirty().into_iter().map(Part::PshmName));
        out.extend(self.mms.take_dirty().into_iter().map(Part::Mm));
        out
    }

    /// Every part the namespace has now.
    pub fn parts(&self) -> Vec<Part> {
        let slots = |ids: Vec<IpcId>| ids.into_iter().map(|i| i.idx()).collect::<Vec<_>>();
        let mut out = vec![Part::Head];
        out.extend(slots(self.shm.ids.ids()).into_iter().map(Part::Shm));
        out.extend(slots(self.sem.ids.ids()).into_iter().map(Part::Sem));
        out.extend(slots(self.msg.ids.ids()).into_iter().map(Part::Msg));
        out.extend(self.sem.undos.keys().map(|&(p, i)| Part::Undo(p, i)));
        out.extend(self.mq.queues.keys().map(|&k| Part::MqQueue(k)));
        out.extend(self.mq.descs.keys().map(|&k| Part::MqDesc(k)));
        out.extend(self.mq.names.entries.keys().cloned().map(Part::MqName));
        out.extend(self.pshm.objects.keys().map(|&k| Part::Pshm(k)));
        out.extend(self.pshm.names.entries.keys().cloned().map(Part::PshmName));
        out.extend(self.mms.keys().map(|&p| Part::Mm(p)));
        out
    }

    /// Serializes part `part` as it is now: `Some(value)`, or `None` when
    /// it no longer exists (removed).
    ///
    /// # Errors
    /// The serializer's.
    pub fn write_part<S: Serializer>(&self, part: &Part, s: S) -> Result<S::Ok, S::Error>
    where
        M::Region: Serialize,
    {
        let slot = |idx: u32| usize::try_from(idx).ok();
        match part {
            Part::Head => Some(self.head()).serialize(s),
            Part::Shm(i) => slot(*i).and_then(|i| self.shm.ids.slots.get(i)?.as_ref()).serialize(s),
            Part::Sem(i) => slot(*i).and_then(|i| self.sem.ids.slots.get(i)?.as_ref()).serialize(s),
            Part::Msg(i) => slot(*i).and_then(|i| self.msg.ids.slots.get(i)?.as_ref()).serialize(s),
            Part::Undo(p, i) => self.sem.undos.get(&(*p, *i)).serialize(s),
            Part::MqQueue(k) => self.mq.queues.get(k).serialize(s),
            Part::MqDesc(k) => self.mq.descs.get(k).serialize(s),
            Part::MqName(n) => self.mq.names.entries.get(n).serialize(s),
            Part::Pshm(k) => self.pshm.objects.get(k).serialize(s),
            Part::PshmName(n) => self.pshm.names.entries.get(n).serialize(s),
            Part::Mm(p) => self.mms.get(p).serialize(s),
        }
    }
}

/// A namespace being rebuilt from its recorded parts; `R` is a region as
/// recorded.
pub struct NsParts<R> {
    head: Option<Head>,
    shm: BTreeMap<u32, ShmSegment<R>>,
    sem: BTreeMap<u32, SemSet>,
    msg: BTreeMap<u32, MsgQueue<R>>,
    undos: BTreeMap<(Pid, IpcId), Vec<i32>>,
    mq_queues: BTreeMap<u64, MqQueue>,
    mq_descs: BTreeMap<MqDescId, MqDesc>,
    mq_names: BTreeMap<PosixName, u64>,
    pshm: BTreeMap<u64, PshmObject<R>>,
    pshm_names: BTreeMap<PosixName, u64>,
    mms: BTreeMap<Pid, Mm>,
}

impl<R> Default for NsParts<R> {
    fn default() -> Self {
        NsParts {
            head: None,
            shm: BTreeMap::new(),
            sem: BTreeMap::new(),
            msg: BTreeMap::new(),
            undos: BTreeMap::new(),
            mq_queues: BTreeMap::new(),
            mq_descs: BTreeMap::new(),
            mq_names: BTreeMap::new(),
            pshm: BTreeMap::new(),
            pshm_names: BTreeMap::new(),
            mms: BTreeMap::new(),
        }
    }
}

/// Puts `value` (`None`: removed) at `k` of `map`.
fn put<K: Ord, V>(map: &mut BTreeMap<K, V>, k: K, value: Option<V>) {
    match value {
        Some(v) => map.insert(k, v),
        None => map.remove(&k),
    };
}

/// `m` with each value converted by `f`.
fn map_values<K: Ord, A, B, E>(m: BTreeMap<K, A>, mut f: impl FnMut(A) -> Result<B, E>) -> Result<BTreeMap<K, B>, E> {
    m.into_iter().map(|(k, v)| Ok((k, f(v)?))).collect()
}

/// Why recorded parts make no namespace.
#[derive(Debug)]
pub enum ImageError<E> {
    /// No [`Part::Head`] was recorded.
    NoHead,
    /// A region could not be re-opened.
    Region(E),
}

impl<R: DeserializeOwned> NsParts<R> {
    /// Takes the recorded value of `part` (what [`IpcNamespace::write_part`]
    /// wrote), replacing an earlier one.
    ///
    /// # Errors
    /// The deserializer's.
    pub fn put<'de, D: Deserializer<'de>>(&mut self, part: &Part, d: D) -> Result<(), D::Error> {
        match part {
            Part::Head => {
                if let Some(h) = Option::<Head>::deserialize(d)? {
                    self.head = Some(h);
                }
            }
            Part::Shm(i) => put(&mut self.shm, *i, Option::deserialize(d)?),
            Part::Sem(i) => put(&mut self.sem, *i, Option::deserialize(d)?),
            Part::Msg(i) => put(&mut self.msg, *i, Option::deserialize(d)?),
            Part::Undo(p, i) => put(&mut self.undos, (*p, *i), Option::deserialize(d)?),
            Part::MqQueue(k) => put(&mut self.mq_queues, *k, Option::deserialize(d)?),
            Part::MqDesc(k) => put(&mut self.mq_descs, *k, Option::deserialize(d)?),
            Part::MqName(n) => put(&mut self.mq_names, n.clone(), Option::deserialize(d)?),
            Part::Pshm(k) => put(&mut self.pshm, *k, Option::deserialize(d)?),
            Part::PshmName(n) => put(&mut self.pshm_names, n.clone(), Option::deserialize(d)?),
            Part::Mm(p) => put(&mut self.mms, *p, Option::deserialize(d)?),
        }
        Ok(())
    }

    /// The namespace again, on `memory`, each recorded region re-opened by
    /// `open`: ids, keys, sequence numbers, `*_next_id`, times, values,
    /// undo records, messages, names, mappings and `mq_notify`
    /// registrations as recorded (a `SIGEV_THREAD` one the host cannot
    /// tell any more it drops: `IpcNamespace::mq_drop_thread_registration`);
    /// no sleepers.
    ///
    /// # Errors
    /// [`ImageError`].
    pub fn into_namespace<M: Memory, E>(
        self,
        memory: M,
        mut open: impl FnMut(R) -> Result<M::Region, E>,
    ) -> Result<IpcNamespace<M>, ImageError<E>> {
        let h = self.head.ok_or(ImageError::NoHead)?;
        let mut ns = IpcNamespace::new(memory);
        ns.owner = h.owner;
        ns.limits = h.limits;
        ns.next_attach = h.next_attach;
        let shm = map_values(self.shm, |s| s.try_map_region(&mut open)).map_err(ImageError::Region)?;
        ns.shm.ids = h.shm_ids.rebuild(shm);
        ns.shm.tot = h.shm_tot;
        ns.shm.locked = h.shm_locked;
        ns.shm.perm_versions = h.shm_perm_versions;
        ns.shm.touch_all();
        ns.sem.ids = h.sem_ids.rebuild(self.sem);
        ns.sem.used_sems = h.sem_used;
        ns.sem.next_waiter = h.sem_next_waiter;
        ns.sem.perm_versions = h.sem_perm_versions;
        ns.sem.undos = crate::tracked::Tracked::from_map(self.undos);
        let msg = map_values(self.msg, |q| q.try_map_region(&mut open)).map_err(ImageError::Region)?;
        ns.msg.ids = h.msg_ids.rebuild(msg);
        ns.msg.total_msgs = h.msg_total_msgs;
        ns.msg.total_bytes = h.msg_total_bytes;
        ns.msg.perm_versions = h.msg_perm_versions;
        ns.mq.queues = crate::tracked::Tracked::from_map(self.mq_queues);
        ns.mq.descs = crate::tracked::Tracked::from_map(self.mq_descs);
        ns.mq.names.entries = crate::tracked::Tracked::from_map(self.mq_names);
        ns.mq.next_inode = h.mq_next_inode;
        ns.mq.next_desc = h.mq_next_desc;
        ns.mq.count = h.mq_count;
        ns.mq.charged = h.mq_charged;
        let pshm = map_values(self.pshm, |o| o.try_map_region(&mut open)).map_err(ImageError::Region)?;
        ns.pshm.objects = crate::tracked::Tracked::from_map(pshm);
        ns.pshm.names.entries = crate::tracked::Tracked::from_map(self.pshm_names);
        ns.pshm.next = h.pshm_next;
        ns.mms = crate::tracked::Tracked::from_map(self.mms);
        // Nothing is changed yet: the host records from here on.
        ns.track_changes();
        let _ = ns.take_changed_parts();
        Ok(ns)
    }
}
