//! The generic System V registry (`struct ipc_ids`): keys, ids with sequence
//! numbers, cyclic slot allocation, and the `ipcget()` algorithm shared by
//! every mechanism (STYLE rule 1).
//!
//! # References
//! - <https://elixir.bootlin.com/linux/v6.12/source/ipc/util.c>: `ipc_idr_alloc()`,
//!   `ipc_addid()`, `ipc_rmid()`, `ipc_obtain_object_check()`, `ipcget_public()`.
//! - `lib/idr.c:idr_alloc_cyclic()`.

use std::collections::BTreeMap;

use uipc_abi::{Errno, IPCMNI, IPCMNI_SHIFT, IPC_CREAT, IPC_EXCL};

use crate::cred::Cred;
use crate::perm::{ipcperms, Access, IpcPerm};

/// A System V key (`key_t`); 0 is `IPC_PRIVATE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IpcKey(pub i32);

impl IpcKey {
    /// `IPC_PRIVATE`.
    pub const PRIVATE: IpcKey = IpcKey(0);

    /// Whether this is `IPC_PRIVATE`.
    pub fn is_private(self) -> bool {
        self.0 == 0
    }
}

/// A System V identifier: `seq << 15 | idx` (COM-ID-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IpcId(pub i32);

impl IpcId {
    fn new(seq: u16, idx: u32) -> IpcId {
        // seq ≤ 65534 and idx < 32768, so this fits in a non-negative i32.
        IpcId(i32::try_from((u32::from(seq) << IPCMNI_SHIFT) | idx).unwrap_or(i32::MAX))
    }

    /// The slot index: `id % 32768` (`ipcid_to_idx()`).
    pub fn idx(self) -> u32 {
        u32::try_from(self.0).unwrap_or(0) & (IPCMNI - 1)
    }

    /// The sequence part: `id >> 15` (`ipcid_to_seqx()`).
    pub fn seqx(self) -> u32 {
        u32::try_from(self.0).unwrap_or(0) >> IPCMNI_SHIFT
    }
}

/// The largest sequence number plus one: `INT_MAX >> 15` (`ipcid_seq_max()`).
const SEQ_MAX: u16 = 65535;
/// `ipc_min_cycle`: the cyclic allocator spans at least this many slots.
const MIN_CYCLE: u32 = 64;

/// A registered object: anything with an [`IpcPerm`].
pub trait IpcObject {
    /// The object's permissions.
    fn perm(&self) -> &IpcPerm;
    /// The object's permissions, mutably.
    fn perm_mut(&mut self) -> &mut IpcPerm;
}

/// The objects of one type in one namespace (`struct ipc_ids`).
#[derive(Debug)]
pub struct IpcIds<T> {
    pub(crate) slots: Vec<Option<T>>,
    pub(crate) keys: BTreeMap<IpcKey, u32>,
    pub(crate) in_use: u32,
    /// Highest index in use (`ids->max_idx`), -1 when empty.
    pub(crate) max_idx: i32,
    /// Where the cyclic search starts (`idr->idr_next`).
    pub(crate) idr_next: u32,
    /// The last index handed out (`ids->last_idx`): a new index at or below
    /// it means the allocator wrapped, and `seq` is bumped.
    pub(crate) last_idx: i64,
    pub(crate) seq: u16,
    /// `kernel.*_next_id` (COM-ID-6): -1, or the id the next creation asks for.
    pub next_id: i32,
    /// Slots changed since the host last took them (`image`): every
    /// mutable access, addition and removal, once tracking is on (`None`:
    /// off, for hosts that never take them).
    pub(crate) dirty: Option<std::collections::BTreeSet<u32>>,
}

impl<T> Default for IpcIds<T> {
    fn default() -> Self {
        IpcIds {
            slots: Vec::new(),
            keys: BTreeMap::new(),
            in_use: 0,
            max_idx: -1,
            idr_next: 0,
            last_idx: -1,
            seq: 0,
            next_id: -1,
            dirty: None,
        }
    }
}

impl<T: IpcObject> IpcIds<T> {
    /// Number of objects (`ids->in_use`).
    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    /// `ipc_get_maxidx()` — the highest slot index in use, or -1 when empty.
    pub fn max_idx(&self) -> i32 {
        if self.in_use == 0 {
            -1
        } else if self.in_use == IPCMNI {
            i32::try_from(IPCMNI - 1).unwrap_or(i32::MAX)
        } else {
            self.max_idx
        }
    }

    /// `ipc_findkey()` — the id of the object registered under `key`.
    pub fn find_key(&self, key: IpcKey) -> Option<IpcId> {
        let idx = *self.keys.get(&key)?;
        let obj = self.slot(idx)?;
        Some(IpcId::new(obj.perm().seq, idx))
    }

    fn slot(&self, idx: u32) -> Option<&T> {
        self.slots.get(usize::try_from(idx).ok()?)?.as_ref()
    }

    fn slot_mut(&mut self, idx: u32) -> Option<&mut T> {
        let obj = self.slots.get_mut(usize::try_from(idx).ok()?)?.as_mut()?;
        if let Some(d) = &mut self.dirty {
            d.insert(idx);
        }
        Some(obj)
    }

    fn check(&self, id: i32) -> Result<u32, Errno> {
        // COM-ID-5: a negative id, an empty slot or a stale seq is EINVAL, not EIDRM.
        let id = IpcId(id);
        if id.0 < 0 {
            return Err(Errno::EINVAL);
        }
        match self.slot(id.idx()) {
            Some(obj) if u32::from(obj.perm().seq) == id.seqx() => Ok(id.idx()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `ipc_obtain_object_check()` — the object named by a full id.
    ///
    /// # Errors
    /// `EINVAL` for a negative id, an empty slot, or a stale sequence number.
    pub fn obtain_check(&self, id: i32) -> Result<&T, Errno> {
        let idx = self.check(id)?;
        self.slot(idx).ok_or(Errno::EINVAL)
    }

    /// [`obtain_check`](Self::obtain_check), mutably.
    ///
    /// # Errors
    /// As [`obtain_check`](Self::obtain_check).
    pub fn obtain_check_mut(&mut self, id: i32) -> Result<&mut T, Errno> {
        let idx = self.check(id)?;
        self.slot_mut(idx).ok_or(Errno::EINVAL)
    }

    /// `ipc_obtain_object_idr()` — the object in slot `id & 0x7fff`, whatever
    /// its seq (the `*_STAT` commands, COM-CTL-2).
    ///
    /// # Errors
    /// `EINVAL` for a negative value or an empty slot.
    pub fn obtain_idx(&self, id: i32) -> Result<(IpcId, &T), Errno> {
        if id < 0 {
            return Err(Errno::EINVAL);
        }
        let idx = IpcId(id).idx();
        let obj = self.slot(idx).ok_or(Errno::EINVAL)?;
        Ok((IpcId::new(obj.perm().seq, idx), obj))
    }

    /// `ipc_addid()` — registers `obj`, giving it a slot, a seq and an id.
    ///
    /// # Errors
    /// `ENOSPC` when `limit` (capped at 32768) objects already exist or no
    /// slot is free.
    pub fn add(&mut self, mut obj: T, limit: u32) -> Result<IpcId, Errno> {
        let limit = limit.min(IPCMNI);
        // SPEC SHM-GET-6 / 1.2 step 3: the slot limit → ENOSPC.
        if self.in_use >= limit {
            return Err(Errno::ENOSPC);
        }
        let (idx, seq) = self.alloc_idx()?;
        obj.perm_mut().seq = seq;
        let key = obj.perm().key;
        let slot = usize::try_from(idx).map_err(|_| Errno::ENOSPC)?;
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, || None);
        }
        self.slots[slot] = Some(obj);
        if let Some(d) = &mut self.dirty {
            d.insert(idx);
        }
        if !key.is_private() {
            self.keys.insert(key, idx);
        }
        self.in_use += 1;
        self.max_idx = self.max_idx.max(i32::try_from(idx).unwrap_or(i32::MAX));
        Ok(IpcId::new(seq, idx))
    }

    fn is_free(&self, idx: u32) -> bool {
        self.slot(idx).is_none()
    }

    fn first_free(&self, from: u32, end: u32) -> Option<u32> {
        (from..end).find(|&i| self.is_free(i))
    }

    /// `ipc_idr_alloc()`: the slot index and seq for a new object.
    fn alloc_idx(&mut self) -> Result<(u32, u16), Errno> {
        let next_id = std::mem::replace(&mut self.next_id, -1);
        if next_id >= 0 {
            // COM-ID-6: idr_alloc(idx..) — the first free index at or above
            // the requested one; the seq is the requested one; the cyclic
            // cursor and last_idx are untouched.
            let want = IpcId(next_id);
            let idx = self.first_free(want.idx(), IPCMNI).ok_or(Errno::ENOSPC)?;
            let seq = u16::try_from(want.seqx()).map_err(|_| Errno::ENOSPC)?;
            return Ok((idx, seq));
        }
        // COM-ID-3: idr_alloc_cyclic(0, max_idx) from the cursor, wrapping once.
        let max_idx = (self.in_use * 3 / 2).clamp(MIN_CYCLE, IPCMNI);
        let idx = match self.first_free(self.idr_next, max_idx) {
            Some(i) => i,
            None if self.idr_next > 0 => self.first_free(0, max_idx).ok_or(Errno::ENOSPC)?,
            None => return Err(Errno::ENOSPC),
        };
        self.idr_next = idx + 1;
        if i64::from(idx) <= self.last_idx {
            // Wraps to 0 when it would reach INT_MAX >> 15 (COM-ID-2).
            self.seq = if self.seq + 1 == SEQ_MAX { 0 } else { self.seq + 1 };
        }
        self.last_idx = i64::from(idx);
        Ok((idx, self.seq))
    }

    /// `ipc_rmid()` — unregisters the object in `id`'s slot and returns it.
    pub fn remove(&mut self, id: IpcId) -> Option<T> {
        let idx = id.idx();
        let obj = self.slots.get_mut(usize::try_from(idx).ok()?)?.take()?;
        if let Some(d) = &mut self.dirty {
            d.insert(idx);
        }
        let key = obj.perm().key;
        if !key.is_private() && self.keys.get(&key) == Some(&idx) {
            self.keys.remove(&key);
        }
        self.in_use -= 1;
        if i32::try_from(idx).ok() == Some(self.max_idx) {
            self.max_idx = (0..idx).rev().find(|&i| !self.is_free(i)).map_or(-1, |i| i32::try_from(i).unwrap_or(-1));
        }
        Some(obj)
    }

    /// `ipc_set_key_private()` — the object keeps its id but is no longer
    /// found by key, and reports key 0.
    pub fn set_key_private(&mut self, id: IpcId) {
        let idx = id.idx();
        if let Some(obj) = self.slot_mut(idx) {
            let key = std::mem::replace(&mut obj.perm_mut().key, IpcKey::PRIVATE);
            if !key.is_private() && self.keys.get(&key) == Some(&idx) {
                self.keys.remove(&key);
            }
        }
    }

    /// Every object with its id, in slot order (the order of `/proc/sysvipc`).
    pub fn iter(&self) -> impl Iterator<Item = (IpcId, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, o)| {
            let o = o.as_ref()?;
            Some((IpcId::new(o.perm().seq, u32::try_from(i).ok()?), o))
        })
    }

    /// The ids of every object, in slot order.
    pub fn ids(&self) -> Vec<IpcId> {
        self.iter().map(|(id, _)| id).collect()
    }
}

/// The mechanism-specific hooks of `ipcget()` (`struct ipc_ops`).
pub trait IpcOps {
    /// The object type.
    type Object: IpcObject;
    /// What the `*get` call passes besides key and flags (shm: size; sem: nsems).
    type Params: Copy;

    /// The registry.
    fn ids(&self) -> &IpcIds<Self::Object>;

    /// `getnew`: validates and creates a new object (SPEC 1.2 step 3).
    ///
    /// # Errors
    /// The mechanism's creation errors.
    fn getnew(&mut self, cred: &Cred, key: IpcKey, flags: i32, params: Self::Params) -> Result<IpcId, Errno>;

    /// `more_checks`: the size/nsems check on an existing object.
    ///
    /// # Errors
    /// `EINVAL` when the request does not fit the existing object.
    fn more_checks(&self, obj: &Self::Object, params: Self::Params) -> Result<(), Errno>;
}

/// `ipcget()` — finds or creates an object, with the kernel's check order:
/// `IPC_PRIVATE` always creates; an absent key is `ENOENT` without
/// `IPC_CREAT`; an existing one is `EEXIST` with `IPC_CREAT|IPC_EXCL`, then
/// `more_checks`, then the permission check of the low 9 flag bits.
///
/// # Errors
/// `ENOENT`, `EEXIST`, `EACCES`, and whatever `getnew`/`more_checks` return.
///
/// # References
/// Mirrors `ipc/util.c:ipcget()`, `ipcget_new()`, `ipcget_public()`, `ipc_check_perms()`.
pub fn ipcget<O: IpcOps>(ops: &mut O, cred: &Cred, key: IpcKey, flags: i32, params: O::Params) -> Result<IpcId, Errno> {
    if key.is_private() {
        return ops.getnew(cred, key, flags, params);
    }
    let Some(id) = ops.ids().find_key(key) else {
        // "No entry for key exists and msgflg did not specify IPC_CREAT."
        if flags & IPC_CREAT == 0 {
            return Err(Errno::ENOENT);
        }
        return ops.getnew(cred, key, flags, params);
    };
    // "IPC_CREAT and IPC_EXCL were specified and the key exists."
    if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 {
        return Err(Errno::EEXIST);
    }
    let obj = ops.ids().obtain_check(id.0)?;
    ops.more_checks(obj, params)?;
    ipcperms(cred, obj.perm(), Access::from_get_flags(flags))?;
    Ok(id)
}
