//! System V semaphores: `semget`, `semop`/`semtimedop`, `semctl`, and
//! `SEM_UNDO` (SPEC section 3).
//!
//! Sleeping is model state ([`crate::wait`]): a semop that must wait is
//! queued exactly where `ipc/sem.c` queues it — a simple (one-op) decrement
//! on its semaphore's `pending_alter`, a wait-for-zero on its `pending_const`,
//! a complex (multi-op) array on the set's global lists, into which the
//! per-semaphore decrements are merged while complex ones wait — and whoever
//! changes the set re-examines the queues in the kernel's order and applies
//! each completable sleeper's operation on its behalf (hand-off).
//!
//! # Known missing features
//! - The undo list is per process: `CLONE_SYSVSEM` sharing between threads
//!   (applied when the last sharer exits) is not modelled.
//!
//! # References
//! - <https://elixir.bootlin.com/linux/v6.12/source/ipc/sem.c>
//! - semget(2), semop(2), semctl(2)

use std::collections::{BTreeMap, VecDeque};

use uipc_abi::{
    Errno, Sembuf, Semid64Ds, Seminfo, GETALL, GETNCNT, GETPID, GETVAL, GETZCNT, IPC_INFO, IPC_NOWAIT, IPC_RMID,
    IPC_SET, IPC_STAT, SEMAEM, SEMVMX, SEM_INFO, SEM_STAT, SEM_STAT_ANY, SEM_UNDO, SETALL, SETVAL,
};

use crate::cred::{Cred, Pid};
use crate::ids::{ipcget, IpcId, IpcIds, IpcKey, IpcObject, IpcOps};
use crate::limits::Limits;
use crate::memory::Memory;
use crate::namespace::IpcNamespace;
use crate::perm::{ipc_update_perm, ipcctl_obtain_check, ipcperms, Access, IpcPerm, PermUpdate};
use crate::time::Time;
use crate::wait::{Interrupt, Outcome, WaiterId, Wakeup};

/// `SEMMNS`, `SEMMNU`, `SEMMAP`: compile-time constants `IPC_INFO` reports.
const SEMMNS_CONST: i32 = 1_024_000_000;
/// `SEMUME` (= compile-time `SEMOPM`).
const SEMUME: i32 = 500;
/// `SEMUSZ`.
const SEMUSZ: i32 = 20;

/// One semaphore (`struct sem`).
#[derive(Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Sem {
    val: i32,
    pid: Pid,
    /// Sleeping simple decrements on this semaphore.
    #[cfg_attr(feature = "serde", serde(skip))]
    pending_alter: VecDeque<WaiterId>,
    /// Sleeping simple wait-for-zero operations on this semaphore.
    #[cfg_attr(feature = "serde", serde(skip))]
    pending_const: VecDeque<WaiterId>,
}

/// A semaphore set (`struct sem_array`).
#[derive(Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SemSet {
    perm: IpcPerm,
    sems: Vec<Sem>,
    otime: Time,
    ctime: Time,
    /// Sleeping complex alter operations (and, while any complex one waits,
    /// the simple decrements too).
    #[cfg_attr(feature = "serde", serde(skip))]
    pending_alter: VecDeque<WaiterId>,
    /// Sleeping complex wait-for-zero-only operations.
    #[cfg_attr(feature = "serde", serde(skip))]
    pending_const: VecDeque<WaiterId>,
    /// Sleeping complex operations.
    #[cfg_attr(feature = "serde", serde(skip))]
    complex_count: usize,
    /// Generation of the state a caller can observe (values, pids, times,
    /// permissions): advanced by every change, never by a read. It is the
    /// sequence number that lets a reader of this plain-data state (a
    /// client mapping it, or a recovering daemon) tell whether what it read
    /// is consistent and current, as a seqlock's count does.
    version: u64,
    /// Advanced by every change of who may do what (`IPC_SET`): a grant of
    /// the set's page is good while it stays put.
    perm_version: u32,
}

impl IpcObject for SemSet {
    fn perm(&self) -> &IpcPerm {
        &self.perm
    }
    fn perm_mut(&mut self) -> &mut IpcPerm {
        &mut self.perm
    }
}

impl SemSet {
    fn nsems(&self) -> usize {
        self.sems.len()
    }

    /// Marks an observable change (see [`SemSet::version`]).
    fn changed(&mut self) {
        self.version = self.version.wrapping_add(1);
    }

    fn to_abi(&self) -> Semid64Ds {
        Semid64Ds {
            sem_perm: self.perm.to_abi(),
            sem_otime: self.otime.0,
            sem_ctime: self.ctime.0,
            sem_nsems: u64::try_from(self.sems.len()).unwrap_or(0),
            ..Semid64Ds::default()
        }
    }

    /// `merge_queues()`: each semaphore's sleeping decrements move, in
    /// front, to the global list (so semaphore n-1's come first).
    fn merge_queues(&mut self) {
        for i in 0..self.sems.len() {
            let mut list = std::mem::take(&mut self.sems[i].pending_alter);
            list.append(&mut self.pending_alter);
            self.pending_alter = list;
        }
    }
}

/// One sleeping semop (`struct sem_queue`).
#[derive(Debug)]
struct SemQueue {
    set: IpcId,
    pid: Pid,
    sops: Vec<Sembuf>,
    /// Index of the op that blocked at the last evaluation (`q->blocking`):
    /// GETNCNT/GETZCNT count by it (SEM-WAIT-4).
    blocking: usize,
}

/// The semaphore state of a namespace.
#[derive(Debug, Default)]
pub struct SemState {
    pub(crate) ids: IpcIds<SemSet>,
    /// `used_sems`: semaphores in all sets.
    pub(crate) used_sems: i64,
    queues: BTreeMap<WaiterId, SemQueue>,
    /// The next [`WaiterId`] of the namespace (every mechanism's sleepers
    /// draw from it: see `IpcNamespace::new_waiter`).
    pub(crate) next_waiter: u64,
    /// Undo records (`struct sem_undo`), per process and set: an adjustment per semaphore.
    pub(crate) undos: crate::tracked::Tracked<(Pid, IpcId), Vec<i32>>,
    /// Sleepers finished since the host last looked.
    pub(crate) wakeups: Vec<Wakeup>,
    /// The last permission version drawn: every set's is unique in the
    /// namespace (a new set in an old set's slot, even under the same
    /// full id, never matches a grant on the old one).
    pub(crate) perm_versions: u32,
}

impl SemState {
    /// The processes holding an undo record on set `id`.
    fn undo_pids(&self, id: IpcId) -> Vec<Pid> {
        self.undos.keys().filter(|(_, s)| *s == id).map(|(p, _)| *p).collect()
    }

    /// A permission version no set had before.
    fn next_perm_version(&mut self) -> u32 {
        self.perm_versions = self.perm_versions.wrapping_add(1);
        self.perm_versions
    }
}

/// What `semctl(IPC_INFO)` copies out for the `kernel.sem` limits `sem`
/// (`semmsl`, `semmns`, `semopm`, `semmni`), and `SEM_INFO` with `usage`:
/// `(sets, semaphores)` in use (`ipc/sem.c:semctl_info()`). Also what a
/// client answers from the status region.
pub fn seminfo(sem: [i32; 4], usage: Option<(u32, i64)>) -> Seminfo {
    let mut info = Seminfo {
        semmni: sem[3],
        semmns: sem[1],
        semmsl: sem[0],
        semopm: sem[2],
        semvmx: SEMVMX,
        semmnu: SEMMNS_CONST,
        semmap: SEMMNS_CONST,
        semume: SEMUME,
        semusz: SEMUSZ,
        semaem: SEMAEM,
    };
    if let Some((sets, sems)) = usage {
        info.semusz = i32::try_from(sets).unwrap_or(i32::MAX);
        info.semaem = i32::try_from(sems).unwrap_or(i32::MAX);
    }
    info
}

/// What a host shows of one set in a status region
/// ([`IpcNamespace::sem_status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SemStatus {
    /// The set's full id.
    pub id: IpcId,
    /// Its permission version: unique in the namespace, changed by `IPC_SET`.
    pub perm_version: u32,
    /// Its observable state's version (see the set's `version`).
    pub version: u64,
    /// What `IPC_STAT` reports.
    pub ds: Semid64Ds,
    /// The processes with an undo record on the set, whose exit sets
    /// `sem_otime` (`exit_sem()`).
    pub undo_pids: Vec<Pid>,
}

/// How an evaluation ended (`perform_atomic_semop()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eval {
    /// Applied.
    Done,
    /// Must sleep.
    Sleep,
}

/// A set's semaphore values and the calling process's undo adjustments,
/// wherever they live: the model's own arrays, or a set's state page that
/// a process changes in its own address space (the data plane). Both run
/// the one [`perform_atomic_semop`].
pub trait SemValues {
    /// `semval` of semaphore `num`.
    fn value(&self, num: usize) -> i32;
    /// Sets `semval` and `sempid` of semaphore `num`.
    fn set_value(&mut self, num: usize, val: i32, pid: Pid);
    /// The caller's undo adjustment of semaphore `num`; `None` without an
    /// undo record (no `SEM_UNDO` operation asked for one).
    fn adjustment(&self, num: usize) -> Option<i32>;
    /// Sets the caller's undo adjustment of semaphore `num`.
    fn set_adjustment(&mut self, num: usize, adj: i32);
}

/// The model's arrays as [`SemValues`].
struct ModelValues<'a> {
    sems: &'a mut [Sem],
    undo: Option<&'a mut Vec<i32>>,
}

impl SemValues for ModelValues<'_> {
    fn value(&self, num: usize) -> i32 {
        self.sems.get(num).map_or(0, |s| s.val)
    }
    fn set_value(&mut self, num: usize, val: i32, pid: Pid) {
        if let Some(s) = self.sems.get_mut(num) {
            s.val = val;
            s.pid = pid;
        }
    }
    fn adjustment(&self, num: usize) -> Option<i32> {
        self.undo.as_ref().and_then(|u| u.get(num).copied())
    }
    fn set_adjustment(&mut self, num: usize, adj: i32) {
        if let Some(a) = self.undo.as_mut().and_then(|u| u.get_mut(num)) {
            *a = adj;
        }
    }
}

/// `perform_atomic_semop()`: applies `sops` atomically — all or nothing —
/// evaluating each op against the values left by the earlier ones (every
/// `sem_num` is below the set's size: the caller checked, `EFBIG`).
/// Nothing is written unless every op succeeds; `blocking` is the index of
/// the op that would sleep.
///
/// # Errors
/// `EAGAIN` for an op that would sleep with `IPC_NOWAIT`; `ERANGE` for a
/// value above `SEMVMX` or an undo adjustment out of range.
pub fn perform_atomic_semop<V: SemValues + ?Sized>(
    v: &mut V,
    sops: &[Sembuf],
    pid: Pid,
    blocking: &mut usize,
) -> Result<Eval, Errno> {
    // What the earlier ops of the array did to `num` (all succeeded).
    let earlier = |i: usize, num: u16, undo_only: bool| -> i32 {
        sops[..i]
            .iter()
            .filter(|s| s.sem_num == num && (!undo_only || s.sem_flg & SEM_UNDO != 0))
            .map(|s| i32::from(s.sem_op))
            .sum()
    };
    for (i, sop) in sops.iter().enumerate() {
        let num = usize::from(sop.sem_num);
        let op = i32::from(sop.sem_op);
        let cur = v.value(num) + earlier(i, sop.sem_num, false);
        let result = cur + op;
        // SEM-EVAL-2: a zero op on a non-zero value, or a negative result, sleeps.
        if (op == 0 && cur != 0) || result < 0 {
            *blocking = i;
            // SEM-EVAL-3: IPC_NOWAIT matters on the op that blocks.
            return if i32::from(sop.sem_flg) & IPC_NOWAIT != 0 { Err(Errno::EAGAIN) } else { Ok(Eval::Sleep) };
        }
        // "sem_op would make semval exceed SEMVMX."
        if result > SEMVMX {
            return Err(Errno::ERANGE);
        }
        if sop.sem_flg & SEM_UNDO != 0 {
            if let Some(adj) = v.adjustment(num) {
                let u = adj - earlier(i, sop.sem_num, true) - op;
                // The adjustment must stay within [-SEMAEM-1, SEMAEM].
                if !(-SEMAEM - 1..=SEMAEM).contains(&u) {
                    return Err(Errno::ERANGE);
                }
            }
        }
    }
    for sop in sops {
        let num = usize::from(sop.sem_num);
        let op = i32::from(sop.sem_op);
        v.set_value(num, v.value(num) + op, pid);
        if sop.sem_flg & SEM_UNDO != 0 {
            if let Some(adj) = v.adjustment(num) {
                v.set_adjustment(num, adj - op);
            }
        }
    }
    Ok(Eval::Done)
}

/// The checks of `do_semtimedop()` made before the set is looked up, in
/// the kernel's order; `semopm` is the namespace's `SEMOPM`. Returns the
/// operations.
///
/// # Errors
/// `E2BIG` (more than `semopm`), `EINVAL` (none), `EFAULT` (`sops` could
/// not be read, or is not `nsops` long), `EINVAL` (`id` < 0, or an invalid
/// timeout — even if nothing would block, SEM-OP-6).
pub fn semop_args(
    semopm: i32,
    id: i32,
    nsops: usize,
    sops: Option<&[Sembuf]>,
    timeout: Option<Timeout>,
) -> Result<&[Sembuf], Errno> {
    // SEM-OP-2: "The value of nsops is greater than SEMOPM."
    if nsops > usize::try_from(semopm).unwrap_or(0) {
        return Err(Errno::E2BIG);
    }
    // SEM-OP-3.
    if nsops < 1 {
        return Err(Errno::EINVAL);
    }
    // SEM-OP-4: the copy of sops.
    let sops = sops.filter(|s| s.len() == nsops).ok_or(Errno::EFAULT)?;
    if id < 0 {
        return Err(Errno::EINVAL);
    }
    // SEM-OP-6: "timeout ... invalid", even if nothing would block.
    if let Some(t) = timeout {
        if t.sec < 0 || !(0..1_000_000_000).contains(&t.nsec) {
            return Err(Errno::EINVAL);
        }
    }
    Ok(sops)
}

/// What a caller may do with a set ([`IpcNamespace::sem_access`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemAccess {
    /// Alter (write) permission: semop that changes values, SETVAL, SETALL.
    pub alter: bool,
    /// Read permission: GETVAL and friends, IPC_STAT, wait-for-zero.
    pub read: bool,
    /// The set's permission version now: the answer holds while it stays.
    pub perm_version: u32,
}

/// The part of a set's state that the data plane changes in the callers:
/// what a state page holds and the model takes back
/// ([`IpcNamespace::sem_shared`], [`IpcNamespace::sem_adopt`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SemShared {
    /// `(semval, sempid)` of each semaphore.
    pub values: Vec<(i32, Pid)>,
    /// `sem_otime`.
    pub otime: Time,
    /// The undo records of processes that keep theirs in the page: `None`
    /// for a process without one (no `SEM_UNDO` operation yet).
    pub undos: Vec<(Pid, Option<Vec<i32>>)>,
}

/// What the model tells a set's page besides [`SemShared`]: what readers
/// and fast paths must know ([`IpcNamespace::sem_published`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SemPublished {
    /// `semid_ds` as `IPC_STAT` reports it (permissions, times, nsems).
    pub ds: Semid64Ds,
    /// `GETNCNT` and `GETZCNT` of each semaphore.
    pub counts: Vec<(u32, u32)>,
    /// Whether any caller sleeps on the set (every change must then go
    /// through the model, which hands off in the kernel's order).
    pub sleepers: bool,
    /// The permission version ([`SemAccess::perm_version`]).
    pub perm_version: u32,
    /// The namespace's `SEMOPM`.
    pub semopm: i32,
    /// The processes holding an undo record on the set: `exit_sem()`
    /// changes the set at the exit of each.
    pub undo_pids: Vec<Pid>,
}

/// Which list a waiter is on, named by where it lives.
enum List {
    Alter(Option<usize>),
    Const(Option<usize>),
}

impl SemState {
    fn list<'a>(set: &'a mut SemSet, which: &List) -> &'a mut VecDeque<WaiterId> {
        match *which {
            List::Alter(None) => &mut set.pending_alter,
            List::Const(None) => &mut set.pending_const,
            List::Alter(Some(n)) => &mut set.sems[n].pending_alter,
            List::Const(Some(n)) => &mut set.sems[n].pending_const,
        }
    }

    /// Re-evaluates waiter `w` of set `id` (which must exist).
    fn evaluate(&mut self, id: IpcId, w: WaiterId) -> Result<Eval, Errno> {
        let Some(q) = self.queues.get_mut(&w) else { return Ok(Eval::Sleep) };
        let Ok(set) = self.ids.obtain_check_mut(id.0) else { return Ok(Eval::Sleep) };
        let has_undo = q.sops.iter().any(|s| s.sem_flg & SEM_UNDO != 0);
        let undo = if has_undo { self.undos.get_mut(&(q.pid, id)) } else { None };
        perform_atomic_semop(&mut ModelValues { sems: &mut set.sems, undo }, &q.sops, q.pid, &mut q.blocking)
    }

    /// `unlink_queue()`: the waiter leaves its list (whichever it is on).
    /// Returns whether it was waiting.
    fn unlink(&mut self, id: IpcId, w: WaiterId) -> bool {
        let Some(q) = self.queues.remove(&w) else { return false };
        if let Ok(set) = self.ids.obtain_check_mut(id.0) {
            if q.sops.len() > 1 {
                set.complex_count -= 1;
            }
            set.pending_alter.retain(|x| *x != w);
            set.pending_const.retain(|x| *x != w);
            for s in &mut set.sems {
                s.pending_alter.retain(|x| *x != w);
                s.pending_const.retain(|x| *x != w);
            }
        }
        true
    }

    /// `unlink_queue()` + `wake_up_sem_queue_prepare()`: the waiter leaves
    /// its list and will get `result`.
    fn finish(&mut self, id: IpcId, w: WaiterId, result: Result<i64, Errno>) {
        if self.unlink(id, w) {
            self.wakeups.push(Wakeup::new(w, result));
        }
    }

    /// `wake_const_ops()`: completes the wait-for-zero sleepers of a list
    /// that now can. Returns whether any completed.
    fn wake_const_ops(&mut self, id: IpcId, which: List) -> bool {
        let mut completed = false;
        let waiters: Vec<WaiterId> = match self.ids.obtain_check_mut(id.0) {
            Ok(set) => Self::list(set, &which).iter().copied().collect(),
            Err(_) => return false,
        };
        for w in waiters {
            match self.evaluate(id, w) {
                Ok(Eval::Sleep) => {}
                Ok(Eval::Done) => {
                    completed = true;
                    self.finish(id, w, Ok(0));
                }
                Err(e) => self.finish(id, w, Err(e)),
            }
        }
        completed
    }

    /// `do_smart_wakeup_zero()`: after values changed (those of `sops`, or
    /// all if `None`), the wait-for-zero sleepers of semaphores now at 0.
    fn wakeup_zero(&mut self, id: IpcId, sops: Option<&[Sembuf]>) -> bool {
        let nums: Vec<usize> = match (sops, self.ids.obtain_check(id.0)) {
            (_, Err(_)) => return false,
            (Some(sops), Ok(_)) => sops.iter().map(|s| usize::from(s.sem_num)).collect(),
            (None, Ok(set)) => (0..set.nsems()).collect(),
        };
        let mut completed = false;
        let mut got_zero = false;
        for n in nums {
            if self.ids.obtain_check(id.0).is_ok_and(|s| s.sems[n].val == 0) {
                got_zero = true;
                completed |= self.wake_const_ops(id, List::Const(Some(n)));
            }
        }
        if got_zero {
            completed |= self.wake_const_ops(id, List::Const(None));
        }
        completed
    }

    /// `update_queue()`: completes the sleeping alter operations of one
    /// list in FIFO order, skipping those that still cannot; after each
    /// completion the scan restarts when `check_restart()` says so.
    fn update_queue(&mut self, id: IpcId, semnum: Option<usize>) -> bool {
        let mut completed = false;
        let mut i = 0;
        loop {
            let Ok(set) = self.ids.obtain_check_mut(id.0) else { return completed };
            if semnum.is_some_and(|n| set.sems[n].val == 0) {
                // Decrements cannot succeed on a semaphore at 0.
                return completed;
            }
            let Some(&w) = Self::list(set, &List::Alter(semnum)).get(i) else { return completed };
            match self.evaluate(id, w) {
                Ok(Eval::Sleep) => i += 1,
                Err(e) => self.finish(id, w, Err(e)),
                Ok(Eval::Done) => {
                    completed = true;
                    let (sops, complex) = match self.queues.get(&w) {
                        Some(q) => (q.sops.clone(), q.sops.len() > 1),
                        None => (Vec::new(), false),
                    };
                    self.finish(id, w, Ok(0));
                    self.wakeup_zero(id, Some(&sops));
                    // check_restart(): complex operations are too hard to analyse.
                    let global_pending = self.ids.obtain_check(id.0).is_ok_and(|s| !s.pending_alter.is_empty());
                    if global_pending || complex {
                        i = 0;
                    }
                }
            }
        }
    }

    /// `do_smart_update()`: after a change (by `sops`, or unknown), wake
    /// what can run; stamps otime if anything completed (or `otime`).
    fn do_smart_update(&mut self, id: IpcId, sops: Option<&[Sembuf]>, otime: bool, now: Time) {
        let mut stamp = otime | self.wakeup_zero(id, sops);
        let global = self.ids.obtain_check(id.0).is_ok_and(|s| !s.pending_alter.is_empty());
        if global {
            stamp |= self.update_queue(id, None);
        } else {
            let nums: Vec<usize> = match (sops, self.ids.obtain_check(id.0)) {
                (_, Err(_)) => Vec::new(),
                (Some(sops), Ok(_)) => sops.iter().filter(|s| s.sem_op > 0).map(|s| usize::from(s.sem_num)).collect(),
                (None, Ok(set)) => (0..set.nsems()).collect(),
            };
            for n in nums {
                stamp |= self.update_queue(id, Some(n));
            }
        }
        if let Ok(set) = self.ids.obtain_check_mut(id.0) {
            if stamp {
                set.otime = now;
            }
            // Every caller changed the set (values, or at least otime).
            set.changed();
        }
    }

    /// `unmerge_queues()`: with no complex sleeper left, the decrements go
    /// back to their semaphores' lists, in order.
    fn unmerge(&mut self, id: IpcId) {
        let Ok(set) = self.ids.obtain_check_mut(id.0) else { return };
        if set.complex_count > 0 {
            return;
        }
        for w in std::mem::take(&mut set.pending_alter) {
            if let Some(n) = self.queues.get(&w).and_then(|q| q.sops.first()).map(|s| usize::from(s.sem_num)) {
                set.sems[n].pending_alter.push_back(w);
            }
        }
    }

    /// `freeary()`: every sleeper gets EIDRM, undo records die, the slot is freed.
    pub(crate) fn freeary(&mut self, id: IpcId) {
        let sleepers: Vec<WaiterId> = self.queues.iter().filter(|(_, q)| q.set == id).map(|(w, _)| *w).collect();
        for w in sleepers {
            self.finish(id, w, Err(Errno::EIDRM));
        }
        self.undos.retain(|(_, set), _| *set != id);
        if let Some(set) = self.ids.remove(id) {
            self.used_sems -= i64::try_from(set.sems.len()).unwrap_or(0);
        }
    }

    /// `count_semcnt()`: sleepers whose blocking op is on `num` and
    /// decrements (`zero == false`) or waits for zero.
    fn count_semcnt(&self, id: IpcId, num: usize, zero: bool) -> i64 {
        self.queues
            .values()
            .filter(|q| q.set == id)
            .filter(|q| {
                let b = q.sops[q.blocking];
                usize::from(b.sem_num) == num && if zero { b.sem_op == 0 } else { b.sem_op < 0 }
            })
            .count()
            .try_into()
            .unwrap_or(i64::MAX)
    }
}

/// `semget`'s hooks for [`ipcget`].
struct SemGetOps<'a> {
    sem: &'a mut SemState,
    limits: &'a Limits,
    now: Time,
}

impl IpcOps for SemGetOps<'_> {
    type Object = SemSet;
    type Params = i32;

    fn ids(&self) -> &IpcIds<SemSet> {
        &self.sem.ids
    }

    /// Mirrors `ipc/sem.c:newary()`.
    fn getnew(&mut self, cred: &Cred, key: IpcKey, flags: i32, nsems: i32) -> Result<IpcId, Errno> {
        // SEM-GET-3: "nsems is 0 and a new set is to be created."
        if nsems == 0 {
            return Err(Errno::EINVAL);
        }
        // "The system-wide limit on the total number of semaphores (SEMMNS) would be exceeded."
        if self.sem.used_sems + i64::from(nsems) > i64::from(self.limits.sem[1]) {
            return Err(Errno::ENOSPC);
        }
        let n = usize::try_from(nsems).map_err(|_| Errno::EINVAL)?;
        let set = SemSet {
            perm: IpcPerm::new(cred, key, flags),
            sems: (0..n).map(|_| Sem::default()).collect(),
            otime: Time::NEVER,
            ctime: self.now,
            pending_alter: VecDeque::new(),
            pending_const: VecDeque::new(),
            complex_count: 0,
            version: 0,
            perm_version: self.sem.next_perm_version(),
        };
        let semmni = u32::try_from(self.limits.sem[3]).unwrap_or(0);
        let id = self.sem.ids.add(set, semmni)?;
        self.sem.used_sems += i64::from(nsems);
        Ok(id)
    }

    fn more_checks(&self, set: &SemSet, nsems: i32) -> Result<(), Errno> {
        // "A semaphore set exists for semkey, but nsems is larger than its number of semaphores."
        if usize::try_from(nsems).map_or(true, |n| n > set.nsems()) {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }
}

/// A decoded `semctl` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SemCmd {
    /// `IPC_STAT`.
    IpcStat,
    /// `SEM_STAT`.
    SemStat,
    /// `SEM_STAT_ANY`.
    SemStatAny,
    /// `IPC_SET`.
    IpcSet,
    /// `IPC_RMID`.
    IpcRmid,
    /// `IPC_INFO`.
    IpcInfo,
    /// `SEM_INFO`.
    SemInfo,
    /// `GETVAL`.
    GetVal,
    /// `GETPID`.
    GetPid,
    /// `GETNCNT`.
    GetNcnt,
    /// `GETZCNT`.
    GetZcnt,
    /// `GETALL`.
    GetAll,
    /// `SETVAL`.
    SetVal,
    /// `SETALL`.
    SetAll,
}

impl SemCmd {
    /// Decodes `semctl(semid, …, cmd)`.
    ///
    /// # Errors
    /// `EINVAL` for a negative id (first, for every command) or an unknown command.
    pub fn decode(id: i32, cmd: i32) -> Result<SemCmd, Errno> {
        if id < 0 {
            return Err(Errno::EINVAL);
        }
        Ok(match cmd {
            IPC_STAT => SemCmd::IpcStat,
            SEM_STAT => SemCmd::SemStat,
            SEM_STAT_ANY => SemCmd::SemStatAny,
            IPC_SET => SemCmd::IpcSet,
            IPC_RMID => SemCmd::IpcRmid,
            IPC_INFO => SemCmd::IpcInfo,
            SEM_INFO => SemCmd::SemInfo,
            GETVAL => SemCmd::GetVal,
            GETPID => SemCmd::GetPid,
            GETNCNT => SemCmd::GetNcnt,
            GETZCNT => SemCmd::GetZcnt,
            GETALL => SemCmd::GetAll,
            SETVAL => SemCmd::SetVal,
            SETALL => SemCmd::SetAll,
            _ => return Err(Errno::EINVAL),
        })
    }
}

impl SemCmd {
    /// Whether the command writes to the caller's `arg` buffer (a
    /// `semid_ds`, a `seminfo` or GETALL's array), after its effect.
    pub fn writes_buffer(self) -> bool {
        matches!(
            self,
            SemCmd::IpcStat | SemCmd::SemStat | SemCmd::SemStatAny | SemCmd::IpcInfo | SemCmd::SemInfo | SemCmd::GetAll
        )
    }
}

/// The `arg` of `semctl`, as the caller could read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SemArg<'a> {
    /// No argument.
    None,
    /// `arg.val` (SETVAL).
    Val(i32),
    /// `arg.array` for SETALL: the values, or `None` if they could not be
    /// read (EFAULT, reported in the kernel's order).
    Array(Option<&'a [u16]>),
    /// `arg.buf` for IPC_SET (read before the lookup, COM-OWN-4).
    Set(PermUpdate),
}

/// What a `semctl` leaves in the caller's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SemCtlOut {
    /// Nothing.
    None,
    /// `struct semid_ds`.
    Ds(Semid64Ds),
    /// `struct seminfo`.
    Info(Seminfo),
    /// GETALL's values.
    Values(Vec<u16>),
}

/// A `semtimedop` timeout, as given (validated by the core, timed by the host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: i64,
}

impl<M: Memory> IpcNamespace<M> {
    /// `semget(key, nsems, semflg)` — gets or creates a System V semaphore set.
    ///
    /// # Errors
    /// In the kernel's order (SPEC 3.1): `EINVAL` (nsems < 0 or > SEMMSL,
    /// first of all), `ENOENT`, `EEXIST`, `EINVAL` (nsems > the set's),
    /// `EACCES`; on creation `EINVAL` (nsems 0), `ENOSPC` (SEMMNS, SEMMNI).
    ///
    /// # References
    /// Mirrors `ipc/sem.c:ksys_semget()`, `newary()`, `sem_more_checks()`; semget(2).
    pub fn semget(&mut self, cred: &Cred, now: Time, key: i32, nsems: i32, flags: i32) -> Result<IpcId, Errno> {
        // SEM-GET-1: "nsems is less than 0 or greater than the limit" — even for an existing key.
        if nsems < 0 || nsems > self.limits.sem[0] {
            return Err(Errno::EINVAL);
        }
        let mut ops = SemGetOps { sem: &mut self.sem, limits: &self.limits, now };
        ipcget(&mut ops, cred, IpcKey(key), flags, nsems)
    }

    /// `semtimedop(semid, sops, nsops, timeout)` (and `semop` with no
    /// timeout) — performs an array of semaphore operations atomically, or
    /// sleeps: [`Outcome::Blocked`] parks the caller until a [`Wakeup`]
    /// (see [`take_wakeups`](Self::take_wakeups)), a timeout or a signal
    /// ([`sem_interrupt`](Self::sem_interrupt)). `sops` is `None` when the
    /// caller's array could not be read; `nsops` is the count it passed.
    ///
    /// # Errors
    /// In the kernel's order (SPEC 3.2): `E2BIG`, `EINVAL` (nsops 0),
    /// `EFAULT`, `EINVAL` (semid < 0; invalid timeout; no such set),
    /// `EFBIG`, `EACCES`, then `ERANGE` or `EAGAIN` from the evaluation.
    ///
    /// # References
    /// Mirrors `ipc/sem.c:do_semtimedop()`, `__do_semtimedop()`; semop(2).
    pub fn semtimedop(
        &mut self,
        cred: &Cred,
        now: Time,
        id: i32,
        nsops: usize,
        sops: Option<&[Sembuf]>,
        timeout: Option<Timeout>,
    ) -> Result<Outcome<i64>, Errno> {
        let sops = semop_args(self.limits.sem[2], id, nsops, sops, timeout)?;
        let max = sops.iter().map(|s| usize::from(s.sem_num)).max().unwrap_or(0);
        let undos = sops.iter().any(|s| s.sem_flg & SEM_UNDO != 0);
        let alter = sops.iter().any(|s| s.sem_op != 0);
        let set_id = IpcId(id);
        if undos {
            // SEM-OP-7: find_alloc_undo() looks the set up first (EINVAL).
            let nsems = self.sem.ids.obtain_check(id)?.nsems();
            self.sem.undos.entry((cred.pid, set_id)).or_insert_with(|| vec![0; nsems]);
        }
        let set = self.sem.ids.obtain_check_mut(id)?;
        // SEM-OP-9: "sem_num ... is greater than or equal to the number of semaphores."
        if max >= set.nsems() {
            return Err(Errno::EFBIG);
        }
        // SEM-OP-10: alter needs write permission, a read-only array read.
        ipcperms(cred, &set.perm, if alter { Access(0o222) } else { Access::READ })?;
        let mut blocking = 0;
        let undo = if undos { self.sem.undos.get_mut(&(cred.pid, set_id)) } else { None };
        match perform_atomic_semop(&mut ModelValues { sems: &mut set.sems, undo }, sops, cred.pid, &mut blocking)? {
            Eval::Done => {
                if alter {
                    self.sem.do_smart_update(set_id, Some(sops), true, now);
                } else {
                    set.otime = now;
                    set.changed();
                }
                self.sem.unmerge(set_id);
                Ok(Outcome::Done(0))
            }
            Eval::Sleep => {
                let w = self.new_waiter();
                let set = self.sem.ids.obtain_check_mut(id)?;
                if sops.len() == 1 {
                    let n = usize::from(sops[0].sem_num);
                    match (alter, set.complex_count > 0) {
                        (true, true) => set.pending_alter.push_back(w),
                        (true, false) => set.sems[n].pending_alter.push_back(w),
                        (false, _) => set.sems[n].pending_const.push_back(w),
                    }
                } else {
                    if set.complex_count == 0 {
                        set.merge_queues();
                    }
                    if alter {
                        set.pending_alter.push_back(w);
                    } else {
                        set.pending_const.push_back(w);
                    }
                    set.complex_count += 1;
                }
                let q = SemQueue { set: set_id, pid: cred.pid, sops: sops.to_vec(), blocking };
                self.sem.queues.insert(w, q);
                Ok(Outcome::Blocked(w))
            }
        }
    }

    /// A parked semop stops waiting: a signal (`EINTR`) or its timeout
    /// (`EAGAIN`). Returns its result if it was still waiting; `None` if it
    /// had already finished (its [`Wakeup`] stands: an operation that
    /// happened is never reported as interrupted).
    pub fn sem_interrupt(&mut self, waiter: WaiterId, why: Interrupt) -> Option<Result<i64, Errno>> {
        let id = self.sem.queues.get(&waiter)?.set;
        self.sem.unlink(id, waiter);
        self.sem.unmerge(id);
        Some(Err(why.errno()))
    }

    /// The sleepers that finished since the last call, in the order they
    /// finished: the host delivers each result to its caller.
    pub fn take_wakeups(&mut self) -> Vec<Wakeup> {
        let mut all = std::mem::take(&mut self.sem.wakeups);
        all.append(&mut self.mq.wakeups);
        all.append(&mut self.msg.wakeups);
        all
    }

    /// The [version](SemSet) of set `semid`'s observable state: it
    /// advances with every change and stays put across reads.
    ///
    /// # Errors
    /// `EINVAL` if no set has that identifier (as `semctl`'s lookup).
    pub fn sem_version(&self, semid: i32) -> Result<u64, Errno> {
        Ok(self.sem.ids.obtain_check(semid)?.version)
    }

    /// `semctl(semid, semnum, cmd, arg)` — controls a semaphore set.
    ///
    /// # Errors
    /// In the kernel's order per command (SPEC 3.5): `EINVAL`, `ERANGE`
    /// (SETVAL's value, before the lookup; SETALL's, after the copy),
    /// `EACCES`, `EPERM`, `EFAULT` (SETALL's array unreadable).
    ///
    /// # References
    /// Mirrors `ipc/sem.c:ksys_semctl()`, `semctl_main()`, `semctl_setval()`,
    /// `semctl_stat()`, `semctl_info()`, `semctl_down()`; semctl(2).
    pub fn semctl(
        &mut self,
        cred: &Cred,
        now: Time,
        id: i32,
        semnum: i32,
        cmd: SemCmd,
        arg: SemArg<'_>,
    ) -> Result<(i64, SemCtlOut), Errno> {
        if id < 0 {
            return Err(Errno::EINVAL);
        }
        let set_id = IpcId(id);
        let r = match cmd {
            SemCmd::IpcInfo | SemCmd::SemInfo => {
                let usage = (cmd == SemCmd::SemInfo).then(|| self.sem_usage());
                (i64::from(self.sem.ids.max_idx().max(0)), SemCtlOut::Info(seminfo(self.limits.sem, usage)))
            }
            SemCmd::IpcStat | SemCmd::SemStat | SemCmd::SemStatAny => {
                let (full, set) = if cmd == SemCmd::IpcStat {
                    (set_id, self.sem.ids.obtain_check(id)?)
                } else {
                    self.sem.ids.obtain_idx(id)?
                };
                if cmd != SemCmd::SemStatAny {
                    ipcperms(cred, &set.perm, Access::READ)?;
                }
                (if cmd == SemCmd::IpcStat { 0 } else { i64::from(full.0) }, SemCtlOut::Ds(set.to_abi()))
            }
            SemCmd::IpcSet | SemCmd::IpcRmid => {
                let version = self.sem.next_perm_version();
                let set = self.sem.ids.obtain_check_mut(id)?;
                ipcctl_obtain_check(cred, &set.perm)?;
                if cmd == SemCmd::IpcRmid {
                    self.sem.freeary(set_id);
                } else {
                    let SemArg::Set(update) = arg else { return Err(Errno::EFAULT) };
                    ipc_update_perm(&update, &mut set.perm)?;
                    set.ctime = now;
                    set.perm_version = version;
                    set.changed();
                }
                (0, SemCtlOut::None)
            }
            SemCmd::SetVal => {
                let SemArg::Val(val) = arg else { return Err(Errno::EFAULT) };
                // SEM-CTL-3: "semval ... greater than SEMVMX" — before the lookup.
                if !(0..=SEMVMX).contains(&val) {
                    return Err(Errno::ERANGE);
                }
                let set = self.sem.ids.obtain_check_mut(id)?;
                let n = usize::try_from(semnum).ok().filter(|&n| n < set.nsems()).ok_or(Errno::EINVAL)?;
                ipcperms(cred, &set.perm, Access(0o222))?;
                set.sems[n].val = val;
                set.sems[n].pid = cred.pid;
                set.ctime = now;
                for ((_, s), adj) in self.sem.undos.iter_mut() {
                    if *s == set_id {
                        adj[n] = 0;
                    }
                }
                self.sem.do_smart_update(set_id, None, false, now);
                (0, SemCtlOut::None)
            }
            SemCmd::SetAll => {
                let set = self.sem.ids.obtain_check_mut(id)?;
                ipcperms(cred, &set.perm, Access(0o222))?;
                let SemArg::Array(Some(values)) = arg else { return Err(Errno::EFAULT) };
                if values.len() != set.nsems() {
                    return Err(Errno::EFAULT);
                }
                // "semval ... greater than SEMVMX" (the values are unsigned).
                if values.iter().any(|&v| i32::from(v) > SEMVMX) {
                    return Err(Errno::ERANGE);
                }
                for (s, &v) in set.sems.iter_mut().zip(values) {
                    s.val = i32::from(v);
                    s.pid = cred.pid;
                }
                set.ctime = now;
                for ((_, s), adj) in self.sem.undos.iter_mut() {
                    if *s == set_id {
                        adj.iter_mut().for_each(|a| *a = 0);
                    }
                }
                self.sem.do_smart_update(set_id, None, false, now);
                (0, SemCtlOut::None)
            }
            SemCmd::GetAll => {
                let set = self.sem.ids.obtain_check(id)?;
                ipcperms(cred, &set.perm, Access::READ)?;
                let vals = set.sems.iter().map(|s| u16::try_from(s.val).unwrap_or(0)).collect();
                (0, SemCtlOut::Values(vals))
            }
            SemCmd::GetVal | SemCmd::GetPid | SemCmd::GetNcnt | SemCmd::GetZcnt => {
                let set = self.sem.ids.obtain_check(id)?;
                ipcperms(cred, &set.perm, Access::READ)?;
                // SEM-CTL-1: the semnum range is checked after the permission.
                let n = usize::try_from(semnum).ok().filter(|&n| n < set.nsems()).ok_or(Errno::EINVAL)?;
                let v = match cmd {
                    SemCmd::GetVal => i64::from(set.sems[n].val),
                    SemCmd::GetPid => i64::from(set.sems[n].pid.0),
                    SemCmd::GetNcnt => self.sem.count_semcnt(set_id, n, false),
                    _ => self.sem.count_semcnt(set_id, n, true),
                };
                (v, SemCtlOut::None)
            }
        };
        self.sem.unmerge(set_id);
        Ok(r)
    }

    /// `exit_sem()`: a process's sleeping semops vanish with it, then its
    /// undo records are applied — each adjustment added and the value
    /// clamped to [0, SEMVMX], never blocking — sleepers re-examined and
    /// otime stamped, for every set that still exists (SPEC SEM-UNDO-3).
    pub(crate) fn sem_exit(&mut self, pid: Pid, now: Time) {
        let mine: Vec<(WaiterId, IpcId)> =
            self.sem.queues.iter().filter(|(_, q)| q.pid == pid).map(|(w, q)| (*w, q.set)).collect();
        for (w, id) in mine {
            self.sem.unlink(id, w);
            self.sem.unmerge(id);
        }
        self.sem_undo_release(pid, now);
    }

    /// The undo half of `exit_sem()`: the process's undo records are
    /// applied and dropped (clamped, never blocking), sleepers re-examined.
    /// Alone, it is what `unshare(CLONE_SYSVSEM)` and `unshare(CLONE_NEWIPC)`
    /// do (`ksys_unshare()`: "CLONE_SYSVSEM is equivalent to sys_exit()"),
    /// where other threads of the process may still be asleep in semop.
    pub(crate) fn sem_undo_release(&mut self, pid: Pid, now: Time) {
        let records: Vec<(IpcId, Vec<i32>)> =
            self.sem.undos.iter().filter(|((p, _), _)| *p == pid).map(|((_, id), adj)| (*id, adj.clone())).collect();
        self.sem.undos.retain(|(p, _), _| *p != pid);
        for (id, adj) in records {
            let Ok(set) = self.sem.ids.obtain_check_mut(id.0) else { continue };
            for (s, a) in set.sems.iter_mut().zip(&adj) {
                if *a != 0 {
                    s.val = (s.val + a).clamp(0, SEMVMX);
                    s.pid = pid;
                }
            }
            self.sem.do_smart_update(id, None, true, now);
            self.sem.unmerge(id);
        }
    }

    /// What `cred` may do with set `semid` (`ipcperms()` for alter and
    /// for read), for a host that grants the set's state page.
    ///
    /// # Errors
    /// `EINVAL` if no set has that identifier.
    pub fn sem_access(&self, cred: &Cred, semid: i32) -> Result<SemAccess, Errno> {
        let set = self.sem.ids.obtain_check(semid)?;
        Ok(SemAccess {
            alter: ipcperms(cred, &set.perm, Access(0o222)).is_ok(),
            read: ipcperms(cred, &set.perm, Access::READ).is_ok(),
            perm_version: set.perm_version,
        })
    }

    /// `(sets, semaphores)` in use: `SEM_INFO`'s `semusz` and `semaem`.
    pub fn sem_usage(&self) -> (u32, i64) {
        (self.sem.ids.in_use(), self.sem.used_sems)
    }

    /// The highest index in use, `-1` if none (`ipc_get_maxidx()`).
    pub fn sem_max_idx(&self) -> i32 {
        self.sem.ids.max_idx()
    }

    /// What slot `idx` holds, for a status region; `None` if empty.
    pub fn sem_status(&self, idx: u32) -> Option<SemStatus> {
        let (id, set) = self.sem.ids.obtain_idx(i32::try_from(idx).ok()?).ok()?;
        let undo_pids = self.sem.undo_pids(id);
        Some(SemStatus { id, perm_version: set.perm_version, version: set.version, ds: set.to_abi(), undo_pids })
    }

    /// The permission version of set `semid` (see [`SemStatus`]).
    ///
    /// # Errors
    /// `EINVAL` for no such id.
    pub fn sem_perm_version(&self, semid: i32) -> Result<u32, Errno> {
        Ok(self.sem.ids.obtain_check(semid)?.perm_version)
    }

    /// The identifiers of every set, in slot order.
    pub fn sem_ids(&self) -> Vec<IpcId> {
        self.sem.ids.iter().map(|(id, _)| id).collect()
    }

    /// The state of set `semid` that a page holds, with the undo records
    /// of `pids`.
    ///
    /// # Errors
    /// `EINVAL` if no set has that identifier.
    pub fn sem_shared(&self, semid: i32, pids: &[Pid]) -> Result<SemShared, Errno> {
        let set = self.sem.ids.obtain_check(semid)?;
        let id = IpcId(semid);
        Ok(SemShared {
            values: set.sems.iter().map(|s| (s.val, s.pid)).collect(),
            otime: set.otime,
            undos: pids.iter().map(|&p| (p, self.sem.undos.get(&(p, id)).cloned())).collect(),
        })
    }

    /// Takes a page's state of set `semid` back into the model (what
    /// callers changed in their own address space), after checking every
    /// value: semaphores in `[0, SEMVMX]`, adjustments in
    /// `[-SEMAEM-1, SEMAEM]`, one of each per semaphore.
    ///
    /// # Errors
    /// `EINVAL` if no set has that identifier; `EUCLEAN` for a state that
    /// no sequence of operations can produce (a damaged page): nothing is
    /// taken.
    pub fn sem_adopt(&mut self, semid: i32, shared: &SemShared) -> Result<(), Errno> {
        let set = self.sem.ids.obtain_check_mut(semid)?;
        let n = set.nsems();
        let sane = shared.values.len() == n
            && shared.values.iter().all(|&(v, _)| (0..=SEMVMX).contains(&v))
            && shared.undos.iter().all(|(_, u)| {
                u.as_ref().is_none_or(|u| u.len() == n && u.iter().all(|a| (-SEMAEM - 1..=SEMAEM).contains(a)))
            });
        if !sane {
            return Err(Errno::EUCLEAN);
        }
        let mut changed = set.otime != shared.otime;
        for (s, &(val, pid)) in set.sems.iter_mut().zip(&shared.values) {
            changed |= s.val != val || s.pid != pid;
            s.val = val;
            s.pid = pid;
        }
        set.otime = shared.otime;
        if changed {
            set.changed();
        }
        let id = IpcId(semid);
        for (pid, undo) in &shared.undos {
            match undo {
                Some(u) => {
                    self.sem.undos.insert((*pid, id), u.clone());
                }
                None => {
                    self.sem.undos.remove(&(*pid, id));
                }
            }
        }
        Ok(())
    }

    /// What set `semid`'s page must show besides [`SemShared`].
    ///
    /// # Errors
    /// `EINVAL` if no set has that identifier.
    pub fn sem_published(&self, semid: i32) -> Result<SemPublished, Errno> {
        let set = self.sem.ids.obtain_check(semid)?;
        let id = IpcId(semid);
        let count = |n: usize, zero: bool| u32::try_from(self.sem.count_semcnt(id, n, zero)).unwrap_or(u32::MAX);
        Ok(SemPublished {
            ds: set.to_abi(),
            counts: (0..set.nsems()).map(|n| (count(n, false), count(n, true))).collect(),
            sleepers: self.sem.queues.values().any(|q| q.set == id),
            perm_version: set.perm_version,
            semopm: self.limits.sem[2],
            undo_pids: self.sem.undo_pids(id),
        })
    }

    /// `/proc/sysvipc/sem` of this namespace (SPEC 8.4), in slot order.
    pub fn proc_sysvipc_sem(&self) -> String {
        let mut out =
            String::from("       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n");
        for (id, s) in self.sem.ids.iter() {
            let p = &s.perm;
            out += &format!(
                "{:10} {:10}  {:4o} {:10} {:5} {:5} {:5} {:5} {:10} {:10}\n",
                p.key.0,
                id.0,
                p.mode,
                s.sems.len(),
                p.uid.0,
                p.gid.0,
                p.cuid.0,
                p.cgid.0,
                s.otime.0,
                s.ctime.0
            );
        }
        out
    }
}
