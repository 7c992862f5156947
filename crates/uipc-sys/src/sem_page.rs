//! A System V semaphore set's state page (`docs/architecture.md`, "The
//! data plane"): the values, pids and times a `semop` changes, what
//! `semctl`'s queries read, and the undo slots of the processes that keep
//! their `SEM_UNDO` adjustments there — laid out on a [`StatePage`].
//!
//! Body (offsets from [`BODY`]; all little-endian words):
//!
//! | offset | field |
//! |---|---|
//! | 0 | `nsems` |
//! | 4 | undo slots |
//! | 8 | the namespace's `SEMOPM` |
//! | 12 | holders: bit `s` set while slot `s`'s record holds an adjustment other than 0 |
//! | 16 | `sem_otime` (i64) |
//! | 24 | `sem_ctime` (i64) |
//! | 32 | key, uid, gid, cuid, cgid, mode, seq |
//! | 60 | outside: how many processes hold an undo record on the set without a slot |
//! | 64 | per semaphore: `semval` (a fast word), `sempid`, `semncnt`, `semzcnt` |
//! | then | per slot: owner pid, has-record, one adjustment per semaphore |
//!
//! The daemon writes everything; a process granted alter permission
//! changes values, pids, `otime` and its own slot — through
//! [`SemPage::semop`], which runs uipc-core's [`perform_atomic_semop`] on
//! the page, the one definition of the semantics.
//!
//! Each `semval` is a fast word (`state_page`'s "Fast words"), and its
//! `sempid` follows it in the same 8-byte word: a `semop` of one operation
//! without `SEM_UNDO` — the common case, `PGSemaphoreLock`'s — changes
//! both with one compare-and-swap, without the lock, as the kernel's
//! simple operations take only their semaphore's lock
//! (`ipc/sem.c:sem_lock()`). A lock holder holds the words it reads or
//! writes: the daemon all of a set's, a caller's `semop` its operations'.

use std::ops::Deref;
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::time::Duration;

use uipc_abi::{Errno, Ipc64Perm, Sembuf, Semid64Ds, SEM_UNDO};
use uipc_core::cred::Pid;
use uipc_core::sysv::sem::{perform_atomic_semop, semop_args, Eval, SemPublished, SemShared, SemValues, Timeout};
use uipc_core::time::Time;

use crate::state_page::{
    page_len, Guard, Kind, Locked, StatePage, BODY, DAMAGED, REMOVED, SLEEPERS, WORD_DATA, WORD_HELD,
};

/// Undo slots per set: processes beyond this many do their `SEM_UNDO`
/// operations through the daemon.
pub const UNDO_SLOTS: usize = 32;
// The holders word has a bit per slot.
const _: () = assert!(UNDO_SLOTS <= 32);
/// The most operations a fast-path `semop` takes (the journal holds their
/// pre-image); more go to the daemon.
pub const FAST_SOPS: usize = 64;
/// How many times a single operation tries its compare-and-swap before it
/// takes the lock ([`SemPage::semop`]).
const SWAP_TRIES: u32 = 1000;
/// Journal bytes: per operation a value and an adjustment entry, plus `otime`.
const JOURNAL: usize = FAST_SOPS * 2 * 16 + 64;

const NSEMS: usize = BODY;
const NSLOTS: usize = BODY + 4;
const SEMOPM: usize = BODY + 8;
const HOLDERS: usize = BODY + 12;
const OTIME: usize = BODY + 16;
const CTIME: usize = BODY + 24;
const PERM: usize = BODY + 32;
const OUTSIDE: usize = BODY + 60;
const SEMS: usize = BODY + 64;
const SEM_SIZE: usize = 16;

fn body_len(nsems: usize) -> usize {
    64 + nsems * SEM_SIZE + UNDO_SLOTS * slot_size(nsems)
}

fn slot_size(nsems: usize) -> usize {
    (8 + 4 * nsems).div_ceil(8) * 8
}

/// A set's page, mapped.
#[derive(Debug)]
pub struct SemPage {
    page: Arc<StatePage>,
    nsems: usize,
}

/// What a grant of a set's page lets its holder do without the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemGrant {
    /// Alter permission (the page is mapped read-write).
    pub alter: bool,
    /// Read permission.
    pub read: bool,
    /// The permission version the grant was made under.
    pub perm_version: u32,
    /// The holder's undo slot, if it has one.
    pub slot: Option<usize>,
}

/// The page's values and the caller's undo slot, as uipc-core sees them;
/// every change is saved in the journal first.
struct PageValues<'g, P: Deref<Target = StatePage>> {
    guard: &'g mut Guard<P>,
    nsems: usize,
    slot: Option<usize>,
}

impl<P: Deref<Target = StatePage>> SemValues for PageValues<'_, P> {
    #[inline]
    fn value(&self, num: usize) -> i32 {
        value_at(self.guard.page(), SEMS + num * SEM_SIZE)
    }
    #[inline]
    fn set_value(&mut self, num: usize, val: i32, pid: Pid) {
        let off = SEMS + num * SEM_SIZE;
        // The journal has room for FAST_SOPS operations (checked by the caller).
        if self.guard.save(off, 8).is_ok() {
            set_value_at(self.guard.page(), off, val);
            self.guard.page().i32_at(off + 4).store(pid.0.cast_signed(), Relaxed);
        }
    }
    #[inline]
    fn adjustment(&self, num: usize) -> Option<i32> {
        let slot = slot_off(self.nsems, self.slot?);
        (self.guard.page().u32_at(slot + 4).load(Relaxed) != 0)
            .then(|| self.guard.page().i32_at(slot + 8 + 4 * num).load(Relaxed))
    }
    #[inline]
    fn set_adjustment(&mut self, num: usize, adj: i32) {
        let Some(slot) = self.slot else { return };
        let off = slot_off(self.nsems, slot) + 8 + 4 * num;
        if self.guard.save(off, 4).is_ok() {
            self.guard.page().i32_at(off).store(adj, Relaxed);
        }
    }
}

/// One semaphore's value as a core operation sees it, for a `semop` of
/// that one semaphore decided without the lock ([`SemPage::semop`]).
struct OneValue {
    value: i32,
    set: Option<(i32, Pid)>,
}

impl SemValues for OneValue {
    #[inline]
    fn value(&self, _num: usize) -> i32 {
        self.value
    }
    #[inline]
    fn set_value(&mut self, _num: usize, val: i32, pid: Pid) {
        self.set = Some((val, pid));
    }
    #[inline]
    fn adjustment(&self, _num: usize) -> Option<i32> {
        None
    }
    #[inline]
    fn set_adjustment(&mut self, _num: usize, _adj: i32) {}
}

/// The `semval` in the fast word at `off` (its data bits).
#[inline]
fn value_at(page: &StatePage, off: usize) -> i32 {
    (page.u32_at(off).load(Relaxed) & WORD_DATA).cast_signed()
}

/// Stores `val` (0 to `SEMVMX`) as the `semval` in the fast word at
/// `off`, which the caller holds (its other bits stay).
#[inline]
fn set_value_at(page: &StatePage, off: usize, val: i32) {
    let word = page.u32_at(off);
    word.store((word.load(Relaxed) & !WORD_DATA) | (val.cast_unsigned() & WORD_DATA), Relaxed);
}

#[inline]
fn slot_off(nsems: usize, slot: usize) -> usize {
    SEMS + nsems * SEM_SIZE + slot * slot_size(nsems)
}

impl SemPage {
    /// The length of the page of a set of `nsems` semaphores.
    pub fn len_for(nsems: usize) -> u64 {
        page_len(body_len(nsems), JOURNAL)
    }

    /// The daemon's side: lays out the page of a new set of `nsems` in
    /// the zero-filled file `fd` of [`len_for`](Self::len_for) bytes.
    ///
    /// # Errors
    /// `mmap`'s.
    pub fn create(fd: BorrowedFd<'_>, nsems: usize) -> Result<SemPage, Errno> {
        let page = Arc::new(StatePage::create(fd, SemPage::len_for(nsems), Kind::SemSet, JOURNAL)?);
        page.u32_at(NSEMS).store(u32::try_from(nsems).map_err(|_| Errno::EINVAL)?, Release);
        page.u32_at(NSLOTS).store(u32::try_from(UNDO_SLOTS).unwrap_or(0), Release);
        Ok(SemPage { page, nsems })
    }

    /// A client's side: maps a granted page.
    ///
    /// # Errors
    /// `EPROTO` for a file that is not a set's page of this layout.
    pub fn open(fd: BorrowedFd<'_>, writable: bool) -> Result<SemPage, Errno> {
        let page = Arc::new(StatePage::open(fd, Kind::SemSet, writable)?);
        let nsems = usize::try_from(page.u32_at(NSEMS).load(Acquire)).map_err(|_| Errno::EPROTO)?;
        let slots = usize::try_from(page.u32_at(NSLOTS).load(Acquire)).map_err(|_| Errno::EPROTO)?;
        if slots != UNDO_SLOTS || nsems.checked_mul(SEM_SIZE + 4).is_none() || body_len(nsems) > page.body_len() {
            return Err(Errno::EPROTO);
        }
        Ok(SemPage { page, nsems })
    }

    /// The number of semaphores.
    pub fn nsems(&self) -> usize {
        self.nsems
    }

    /// The flags ([`REMOVED`], [`SLEEPERS`], [`DAMAGED`]).
    #[inline]
    pub fn flags(&self) -> u32 {
        self.page.flags()
    }

    /// The daemon's side: takes the lock (waiting at most `bound`) and
    /// holds every value.
    ///
    /// # Errors
    /// As [`StatePage::lock`].
    pub fn lock(&self, bound: Duration) -> Result<(Guard<Arc<StatePage>>, Locked), Errno> {
        let (mut guard, how) = StatePage::lock_shared(&self.page, Some(bound))?;
        guard.hold_words(SEMS, SEM_SIZE, self.nsems);
        Ok((guard, how))
    }

    /// Marks the set damaged.
    pub fn mark_damaged(&self) {
        self.page.mark_damaged();
    }

    /// The daemon's side, under the lock: the state callers changed, with
    /// the undo records of the slots' owners (`owners[slot]`).
    pub fn shared(&self, _guard: &Guard<Arc<StatePage>>, owners: &[Option<Pid>]) -> SemShared {
        let p = &self.page;
        let values = (0..self.nsems)
            .map(|n| {
                let off = SEMS + n * SEM_SIZE;
                (value_at(p, off), Pid(p.i32_at(off + 4).load(Relaxed).cast_unsigned()))
            })
            .collect();
        let undos = owners
            .iter()
            .enumerate()
            .filter_map(|(slot, owner)| {
                let pid = (*owner)?;
                let off = slot_off(self.nsems, slot);
                let has = p.u32_at(off + 4).load(Relaxed) != 0;
                let adj = has.then(|| (0..self.nsems).map(|n| p.i32_at(off + 8 + 4 * n).load(Relaxed)).collect());
                Some((pid, adj))
            })
            .collect();
        SemShared { values, otime: Time(p.i64_at(OTIME).load(Relaxed)), undos }
    }

    /// The daemon's side, under the lock: shows the model's state.
    pub fn publish(
        &self,
        guard: &mut Guard<Arc<StatePage>>,
        shared: &SemShared,
        published: &SemPublished,
        owners: &[Option<Pid>],
    ) {
        guard.begin();
        let p = &self.page;
        for (n, &(val, pid)) in shared.values.iter().enumerate().take(self.nsems) {
            let off = SEMS + n * SEM_SIZE;
            set_value_at(p, off, val);
            p.i32_at(off + 4).store(pid.0.cast_signed(), Relaxed);
        }
        for (n, &(ncnt, zcnt)) in published.counts.iter().enumerate().take(self.nsems) {
            let off = SEMS + n * SEM_SIZE;
            p.u32_at(off + 8).store(ncnt, Relaxed);
            p.u32_at(off + 12).store(zcnt, Relaxed);
        }
        p.i64_at(OTIME).store(shared.otime.0, Relaxed);
        p.i64_at(CTIME).store(published.ds.sem_ctime, Relaxed);
        p.i32_at(SEMOPM).store(published.semopm, Relaxed);
        let perm = &published.ds.sem_perm;
        p.i32_at(PERM).store(perm.key, Relaxed);
        for (i, v) in [perm.uid, perm.gid, perm.cuid, perm.cgid, perm.mode, u32::from(perm.seq)].into_iter().enumerate()
        {
            p.u32_at(PERM + 4 + 4 * i).store(v, Relaxed);
        }
        let mut holders = 0u32;
        for (slot, owner) in owners.iter().enumerate().take(UNDO_SLOTS) {
            let off = slot_off(self.nsems, slot);
            let record =
                owner.and_then(|pid| shared.undos.iter().find(|(p, _)| *p == pid)).and_then(|(_, u)| u.as_ref());
            p.i32_at(off).store(owner.map_or(0, |pid| pid.0.cast_signed()), Relaxed);
            p.u32_at(off + 4).store(u32::from(record.is_some()), Relaxed);
            for n in 0..self.nsems {
                p.i32_at(off + 8 + 4 * n).store(record.and_then(|u| u.get(n)).copied().unwrap_or(0), Relaxed);
            }
            if record.is_some_and(|u| u.iter().any(|&a| a != 0)) {
                holders |= 1 << slot;
            }
        }
        p.u32_at(HOLDERS).store(holders, Relaxed);
        let outside = published.undo_pids.iter().filter(|pid| !owners.contains(&Some(**pid))).count();
        p.u32_at(OUTSIDE).store(u32::try_from(outside).unwrap_or(u32::MAX), Relaxed);
        guard.set_perm_version(published.perm_version);
        guard.set_flags(if published.sleepers { SLEEPERS } else { 0 }, if published.sleepers { 0 } else { SLEEPERS });
    }

    /// The daemon's side: the set is gone; holders of the page go to the
    /// daemon from now on.
    pub fn mark_removed(&self, guard: &Guard<Arc<StatePage>>) {
        guard.set_flags(REMOVED, 0);
    }

    /// The permission version.
    #[inline]
    pub fn perm_version(&self) -> u32 {
        self.page.perm_version()
    }

    /// The page's sequence count (it moves with every change).
    #[inline]
    pub fn seq(&self) -> u32 {
        self.page.seq()
    }

    /// What a caller whose `sops` must sleep watches for a change: the
    /// sequence count and the words of the semaphores they name (single
    /// operations change those without the count).
    #[inline]
    pub fn watch_mark(&self, sops: &[Sembuf]) -> u64 {
        sops.iter().take(FAST_SOPS).fold(u64::from(self.seq()), |mark, s| {
            let word = self
                .page
                .u64_at(SEMS + usize::from(s.sem_num).min(self.nsems.saturating_sub(1)) * SEM_SIZE)
                .load(Relaxed);
            mark.rotate_left(7) ^ word
        })
    }

    /// The processes other than `me` whose exit would change the values,
    /// as the daemon last published them: owners of undo slots whose
    /// record holds an adjustment other than 0 (`exit_sem()` applies
    /// those), written into `out`; how many, or `None` if a writer stays
    /// mid-change. A fast path that finds one of them exited must let the
    /// daemon answer: the daemon applies an exit when it reads the pidfd,
    /// the kernel before the process is a zombie. `None` too while a
    /// process without a slot holds a record: only the daemon knows it.
    ///
    /// `my_slot` is `me`'s own slot, if it has one: the common cases — no
    /// adjustment anywhere, or only `me`'s own — cost two loads.
    pub fn undo_holders(&self, me: u32, my_slot: Option<usize>, out: &mut [u32; UNDO_SLOTS]) -> Option<usize> {
        let mine = my_slot.and_then(|s| u32::try_from(s).ok()).and_then(|s| 1u32.checked_shl(s)).unwrap_or(0);
        if self.page.u32_at(HOLDERS).load(Acquire) & !mine == 0 && self.page.u32_at(OUTSIDE).load(Acquire) == 0 {
            return Some(0);
        }
        let nsems = self.nsems;
        self.read(|p| {
            if p.u32_at(OUTSIDE).load(Relaxed) != 0 {
                return None;
            }
            let mut n = 0;
            let mut holders = p.u32_at(HOLDERS).load(Relaxed);
            while holders != 0 {
                let slot = holders.trailing_zeros() as usize;
                holders &= holders - 1;
                let off = slot_off(nsems, slot);
                let owner = p.u32_at(off).load(Relaxed);
                if owner == 0 || owner == me || p.u32_at(off + 4).load(Relaxed) == 0 {
                    continue;
                }
                if (0..nsems).any(|k| p.i32_at(off + 8 + 4 * k).load(Relaxed) != 0) {
                    out[n] = owner;
                    n += 1;
                }
            }
            Some(n)
        })?
    }

    /// The processes other than `me` holding an undo record on the set
    /// in this page, adjustments of 0 included, written into `out`; how
    /// many, or `None` if a writer stays mid-change or a process without
    /// a slot holds a record. `exit_sem()` sets
    /// `sem_otime` at the exit of each (`do_smart_update(…, otime = 1)`),
    /// so `IPC_STAT` from the page is current only while none has exited
    /// (see [`undo_holders`](Self::undo_holders) for the values).
    pub fn record_holders(&self, me: u32, out: &mut [u32; UNDO_SLOTS]) -> Option<usize> {
        let nsems = self.nsems;
        self.read(|p| {
            if p.u32_at(OUTSIDE).load(Relaxed) != 0 {
                return None;
            }
            let mut n = 0;
            for slot in 0..UNDO_SLOTS {
                let off = slot_off(nsems, slot);
                let owner = p.u32_at(off).load(Relaxed);
                if owner != 0 && owner != me && p.u32_at(off + 4).load(Relaxed) != 0 {
                    out[n] = owner;
                    n += 1;
                }
            }
            Some(n)
        })?
    }

    /// `semtimedop(id, sops, timeout)` in the caller, for the holder of
    /// `grant` (process `pid`, at time `now`): the result, exactly as the
    /// daemon's model would give it; [`SemFast::Sleep`] (nothing changed)
    /// when it must sleep; [`SemFast::Daemon`] when the daemon must decide
    /// (sleepers wait on the set, the set was removed or damaged, the grant
    /// is stale, or the operation needs more than this page can take).
    pub fn semop(
        &self,
        grant: &SemGrant,
        id: i32,
        sops: &[Sembuf],
        timeout: Option<Timeout>,
        pid: Pid,
        now: impl Fn() -> Time,
    ) -> SemFast {
        let usable = |p: &SemPage| {
            p.page.flags() & (REMOVED | DAMAGED | SLEEPERS) == 0 && p.perm_version() == grant.perm_version
        };
        // SEM-OP-10: alter permission for an array that changes a value,
        // read for one that only waits for zero; either way the page is
        // written (pids, otime), so only a read-write grant serves.
        let alter = sops.iter().any(|s| s.sem_op != 0);
        let permitted = if alter { grant.alter } else { grant.read };
        if !permitted || !self.page.writable() || sops.len() > FAST_SOPS || !usable(self) {
            return SemFast::Daemon;
        }
        let semopm = self.page.i32_at(SEMOPM).load(Relaxed);
        if let Err(e) = semop_args(semopm, id, sops.len(), Some(sops), timeout) {
            return SemFast::Done(Err(e));
        }
        let undo = sops.iter().any(|s| s.sem_flg & SEM_UNDO != 0);
        let slot = match (undo, grant.slot) {
            (true, None) => return SemFast::Daemon,
            (_, slot) => slot,
        };
        if let ([sop], false) = (sops, undo) {
            if let Some(done) = self.semop_one(sop, sops, pid, &now, usable) {
                return done;
            }
        }
        // A holder that died mid-change was just rolled back: its exit
        // (its undo) is the daemon's to settle before this operation, as
        // the kernel's exit_sem() runs before anyone sees the process dead.
        let Ok((mut guard, Locked::Clean)) = self.page.lock(Some(Duration::from_secs(1))) else {
            return SemFast::Daemon;
        };
        if !usable(self) {
            return SemFast::Daemon;
        }
        if let (true, Some(slot)) = (undo, slot) {
            // find_alloc_undo(): the record exists from the first SEM_UNDO
            // operation on, whatever that operation's result.
            let slot = slot_off(self.nsems, slot);
            if self.page.u32_at(slot + 4).load(Relaxed) == 0 {
                for n in 0..self.nsems {
                    self.page.i32_at(slot + 8 + 4 * n).store(0, Relaxed);
                }
                self.page.u32_at(slot + 4).store(1, Release);
            }
        }
        // SEM-OP-9: "sem_num ... is greater than or equal to the number of semaphores."
        if sops.iter().any(|s| usize::from(s.sem_num) >= self.nsems) {
            return SemFast::Done(Err(Errno::EFBIG));
        }
        for s in sops {
            guard.hold_words(SEMS + usize::from(s.sem_num) * SEM_SIZE, SEM_SIZE, 1);
        }
        let mut blocking = 0;
        let mut values = PageValues { guard: &mut guard, nsems: self.nsems, slot: grant.slot };
        match perform_atomic_semop(&mut values, sops, pid, &mut blocking) {
            Ok(Eval::Done) => {
                // Within the same second (most calls) sem_otime stands.
                let t = now().0;
                if self.page.i64_at(OTIME).load(Relaxed) != t && guard.save(OTIME, 8).is_ok() {
                    self.page.i64_at(OTIME).store(t, Relaxed);
                }
                if let (true, Some(slot)) = (undo, slot) {
                    self.note_holder(&mut guard, slot);
                }
                SemFast::Done(Ok(()))
            }
            Ok(Eval::Sleep) => SemFast::Sleep,
            Err(e) => SemFast::Done(Err(e)),
        }
    }

    /// [`semop`](Self::semop) of one operation `sop` (`sops` is it)
    /// without `SEM_UNDO`, decided without the lock: the semaphore's value
    /// and pid change with one compare-and-swap of their word, which
    /// fails if anything changed it meanwhile. `None` while a lock holder
    /// holds the word or the page is not `usable`: the lock decides.
    ///
    /// The flags and the permission version are read after the word: a
    /// holder that changed them ended its hold after, advancing the word's
    /// generation, so a swap of a word read before that fails.
    fn semop_one(
        &self,
        sop: &Sembuf,
        sops: &[Sembuf],
        pid: Pid,
        now: &impl Fn() -> Time,
        usable: impl Fn(&SemPage) -> bool,
    ) -> Option<SemFast> {
        let Some(num) = Some(usize::from(sop.sem_num)).filter(|&n| n < self.nsems) else {
            // SEM-OP-9.
            return Some(SemFast::Done(Err(Errno::EFBIG)));
        };
        let word = self.page.u64_at(SEMS + num * SEM_SIZE);
        // Each failed swap is another caller's success; a word that keeps
        // moving for this long (a writer scribbling on the page) goes to
        // the lock, which is bounded.
        for _ in 0..SWAP_TRIES {
            let w = word.load(Acquire);
            #[allow(clippy::cast_possible_truncation)] // The low half: the fast word.
            let fast = w as u32;
            if fast & WORD_HELD != 0 || !usable(self) {
                return None;
            }
            let mut one = OneValue { value: (fast & WORD_DATA).cast_signed(), set: None };
            let mut blocking = 0;
            match perform_atomic_semop(&mut one, sops, pid, &mut blocking) {
                Ok(Eval::Done) => {}
                Ok(Eval::Sleep) => return Some(SemFast::Sleep),
                Err(e) => return Some(SemFast::Done(Err(e))),
            }
            let (val, pid) = one.set.unwrap_or((one.value, pid));
            let low = (fast & !WORD_DATA) | (val.cast_unsigned() & WORD_DATA);
            let new = u64::from(low) | u64::from(pid.0) << 32;
            if word.compare_exchange_weak(w, new, Release, Relaxed).is_ok() {
                // sem_otime follows the change (a death between the two
                // leaves it at its last second: the kernel's would move).
                let t = now().0;
                let otime = self.page.i64_at(OTIME);
                if otime.load(Relaxed) != t {
                    otime.store(t, Relaxed);
                }
                return Some(SemFast::Done(Ok(())));
            }
        }
        None
    }

    /// Under the lock, after `slot`'s adjustments changed: its bit in the
    /// holders word says again whether any of them is other than 0.
    fn note_holder<P: Deref<Target = StatePage>>(&self, guard: &mut Guard<P>, slot: usize) {
        let off = slot_off(self.nsems, slot);
        let holds = (0..self.nsems).any(|n| self.page.i32_at(off + 8 + 4 * n).load(Relaxed) != 0);
        let word = self.page.u32_at(HOLDERS).load(Relaxed);
        let bit = 1u32 << slot;
        let want = if holds { word | bit } else { word & !bit };
        if want != word && guard.save(HOLDERS, 4).is_ok() {
            self.page.u32_at(HOLDERS).store(want, Relaxed);
        }
    }

    /// `read()` (a check of the set's undo holders and a read of its
    /// state), if no change began or ended on the page meanwhile, so that
    /// both are of one state; `None` for the daemon. A holder killed
    /// mid-change (its holders bit already cleared, its values not yet
    /// changed) is rolled back by whoever locks next, the daemon settling
    /// its exit among them: a reader must not check the holders before the
    /// rollback and read the values after it, before the exit's undo.
    pub fn unchanged<T>(&self, read: impl FnOnce() -> Option<T>) -> Option<T> {
        self.page.read_once(read)?
    }

    /// Reads consistently (`None`: a writer is stuck mid-change; ask the
    /// daemon).
    fn read<T>(&self, f: impl FnMut(&StatePage) -> T) -> Option<T> {
        self.page.read(f)
    }

    /// Whether a reader holding `grant` may answer from the page now.
    fn readable(&self, grant: &SemGrant) -> bool {
        grant.read && self.page.flags() & (REMOVED | DAMAGED) == 0 && self.perm_version() == grant.perm_version
    }

    /// `semctl(GETVAL/GETPID/GETNCNT/GETZCNT)` of semaphore `num` from
    /// the page: `None` when the daemon must answer.
    pub fn get(&self, grant: &SemGrant, num: i32, what: SemField) -> Option<Result<i64, Errno>> {
        if !self.readable(grant) {
            return None;
        }
        // SEM-CTL-1: the semnum range is checked after the permission.
        let Some(n) = usize::try_from(num).ok().filter(|&n| n < self.nsems) else { return Some(Err(Errno::EINVAL)) };
        let off = SEMS + n * SEM_SIZE + what as usize * 4;
        let v = self.read(|p| {
            if what == SemField::Val {
                i64::from(value_at(p, off))
            } else if what == SemField::Pid {
                i64::from(p.i32_at(off).load(Relaxed))
            } else {
                i64::from(p.u32_at(off).load(Relaxed))
            }
        })?;
        (self.readable(grant)).then_some(Ok(v))
    }

    /// `semctl(GETALL)` from the page: the values of one moment, though
    /// single operations change them without the lock (and so without
    /// the sequence count): the words (value and pid) are read until two
    /// reads in a row agree.
    pub fn get_all(&self, grant: &SemGrant) -> Option<Vec<u16>> {
        if !self.readable(grant) {
            return None;
        }
        let words = |p: &StatePage| -> Vec<u64> {
            (0..self.nsems).map(|n| p.u64_at(SEMS + n * SEM_SIZE).load(Acquire)).collect()
        };
        let mut last = self.read(words)?;
        let mut agreed = None;
        for _ in 0..1000 {
            let now = self.read(words)?;
            if now == last {
                agreed = Some(now);
                break;
            }
            last = now;
        }
        #[allow(clippy::cast_possible_truncation)] // The data bits of the low half.
        let v = agreed?.iter().map(|&w| (w as u32 & WORD_DATA) as u16).collect();
        self.readable(grant).then_some(v)
    }

    /// `semctl(IPC_STAT)` from the page.
    pub fn stat(&self, grant: &SemGrant) -> Option<Semid64Ds> {
        if !self.readable(grant) {
            return None;
        }
        let ds = self.read(|p| {
            let w = |i: usize| p.u32_at(PERM + 4 + 4 * i).load(Relaxed);
            Semid64Ds {
                sem_perm: Ipc64Perm {
                    key: p.i32_at(PERM).load(Relaxed),
                    uid: w(0),
                    gid: w(1),
                    cuid: w(2),
                    cgid: w(3),
                    mode: w(4),
                    seq: u16::try_from(w(5)).unwrap_or(0),
                    ..Ipc64Perm::default()
                },
                sem_otime: p.i64_at(OTIME).load(Relaxed),
                sem_ctime: p.i64_at(CTIME).load(Relaxed),
                sem_nsems: self.nsems as u64,
                ..Semid64Ds::default()
            }
        })?;
        self.readable(grant).then_some(ds)
    }
}

/// How a fast-path `semop` ended ([`SemPage::semop`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SemFast {
    /// Decided here: the result.
    Done(Result<(), Errno>),
    /// It must sleep: nothing was changed.
    Sleep,
    /// The daemon must decide.
    Daemon,
}

/// Which per-semaphore field a `semctl` query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum SemField {
    /// `GETVAL`.
    Val = 0,
    /// `GETPID`.
    Pid = 1,
    /// `GETNCNT`.
    Ncnt = 2,
    /// `GETZCNT`.
    Zcnt = 3,
}

impl crate::state_page::Retire for SemPage {
    fn lock_page(&self, bound: Duration) -> Result<(Guard<Arc<StatePage>>, Locked), Errno> {
        self.lock(bound)
    }
}
