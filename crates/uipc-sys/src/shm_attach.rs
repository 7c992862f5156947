//! A System V segment's *attach page*: the attachments its holders made
//! and unmade in their own address space, and the segment's last attach
//! or detach event (`docs/architecture.md`, "Attach and detach without a
//! round trip").
//!
//! A state page ([`Kind::ShmAttach`]) whose body is:
//!
//! | byte | field |
//! |---|---|
//! | 0 | `nattch` as the daemon counts it (mappings it recorded, attaches in progress), u64 |
//! | 8 | `shm_atime`, i64 |
//! | 16 | `shm_dtime`, i64 |
//! | 24 | `shm_lpid`, u32 |
//! | 28 | 1 when a detach that leaves no attachment must destroy the segment (`SHM_DEST`, or `kernel.shm_rmid_forced`) |
//! | 32 | how many slots from the first may have an owner (the highest owned slot + 1) |
//! | 40 | [`SLOTS`] slots: owner pid (u32), attachments it made in its own address space (u32) |
//!
//! The segment's `nattch` is the daemon's count plus every slot's: a
//! holder's `shmat` maps the memory and adds one to its slot (with
//! `atime` and `lpid`), its `shmdt` unmaps and takes one off (with
//! `dtime` and `lpid`), both under the page's robust lock with the words
//! they change journaled, so a holder that dies mid-change leaves
//! nothing half done. Readers copy the body under the sequence count.
//! The daemon locks the page around every event that concerns segments,
//! adopts the slots and the event (validating every word) and publishes
//! its own count back; it alone writes slot owners, the destroy word,
//! the flags and the permission version.
//!
//! # References
//! - Linux `ipc/shm.c`: `do_shmat()`, `shm_open()`, `shm_close()`

use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use uipc_abi::Errno;

use crate::state_page::{page_len, Guard, Kind, Locked, StatePage, BODY, DAMAGED, REMOVED, SLEEPERS};

/// Slots for holders that attach in their own address space.
pub const SLOTS: usize = 256;
/// Most attachments one slot may count (a larger count is damage).
pub const MAX_COUNT: u32 = 1 << 24;

const NATTCH: usize = BODY;
const ATIME: usize = BODY + 8;
const DTIME: usize = BODY + 16;
const LPID: usize = BODY + 24;
const DEST: usize = BODY + 28;
const HIGH: usize = BODY + 32;
const SLOT0: usize = BODY + 40;
const BODY_LEN: usize = 40 + 8 * SLOTS;
/// Journal room for one change: the event words and one slot.
const JOURNAL: usize = 64;
/// How long a holder waits for the lock before it asks the daemon.
const CALLER_BOUND: Duration = Duration::from_secs(1);

fn slot_off(slot: usize) -> usize {
    SLOT0 + 8 * slot
}

/// The last attach or detach event, as `IPC_STAT` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `shm_atime`.
    pub atime: i64,
    /// `shm_dtime`.
    pub dtime: i64,
    /// `shm_lpid`.
    pub lpid: u32,
}

/// A consistent copy of the page's body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The daemon's own count.
    pub nattch: u64,
    /// The last event.
    pub event: Event,
    /// Whether the last detach must go to the daemon.
    pub dest: bool,
    /// Each slot's `(pid, count)`, up to the highest one owned (the
    /// daemon's adoption reads all [`SLOTS`]).
    pub slots: Vec<(u32, u32)>,
}

impl Snapshot {
    /// `shm_nattch`: the daemon's count and every slot's.
    pub fn nattch(&self) -> u64 {
        self.slots.iter().fold(self.nattch, |n, &(_, c)| n.saturating_add(u64::from(c)))
    }
}

/// A segment's attach page, mapped.
#[derive(Debug)]
pub struct AttachPage {
    page: Arc<StatePage>,
}

impl AttachPage {
    /// The page's length.
    pub fn len() -> u64 {
        page_len(BODY_LEN, JOURNAL)
    }

    /// The daemon's side: lays out a page in the zero-filled file `fd` of
    /// [`len`](Self::len) bytes.
    ///
    /// # Errors
    /// `mmap`'s.
    pub fn create(fd: BorrowedFd<'_>) -> Result<AttachPage, Errno> {
        Ok(AttachPage { page: Arc::new(StatePage::create(fd, Self::len(), Kind::ShmAttach, JOURNAL)?) })
    }

    /// A holder's side: maps a granted page read-write.
    ///
    /// # Errors
    /// `EPROTO` for a file that is not an attach page.
    pub fn open(fd: BorrowedFd<'_>) -> Result<AttachPage, Errno> {
        let page = StatePage::open(fd, Kind::ShmAttach, true)?;
        if page.body_len() < BODY_LEN {
            return Err(Errno::EPROTO);
        }
        Ok(AttachPage { page: Arc::new(page) })
    }

    /// The flags ([`REMOVED`], [`SLEEPERS`], [`DAMAGED`]).
    pub fn flags(&self) -> u32 {
        self.page.flags()
    }

    fn snapshot_of(p: &StatePage) -> Snapshot {
        let high = usize::try_from(p.u32_at(HIGH).load(Ordering::Relaxed)).unwrap_or(SLOTS).min(SLOTS);
        let slots = (0..high)
            .map(|s| (p.u32_at(slot_off(s)).load(Ordering::Relaxed), p.u32_at(slot_off(s) + 4).load(Ordering::Relaxed)))
            .collect();
        Snapshot {
            nattch: p.u64_at(NATTCH).load(Ordering::Relaxed),
            event: Event {
                atime: p.i64_at(ATIME).load(Ordering::Relaxed),
                dtime: p.i64_at(DTIME).load(Ordering::Relaxed),
                lpid: p.u32_at(LPID).load(Ordering::Relaxed),
            },
            dest: p.u32_at(DEST).load(Ordering::Relaxed) != 0,
            slots,
        }
    }

    /// A holder's side: a consistent copy of the body with the
    /// permission version it was read under, or `None` (removed,
    /// damaged, a writer stuck mid-change: ask the daemon).
    pub fn read(&self) -> Option<(Snapshot, u32)> {
        let (snap, flags, version) = self.page.read(|p| (Self::snapshot_of(p), p.flags(), p.perm_version()))?;
        (flags & (REMOVED | DAMAGED) == 0).then_some((snap, version))
    }

    /// A holder's `shmat` in its own address space, made (the memory is
    /// mapped): one more attachment in slot `slot` of owner `pid`, `atime`
    /// `now`, `lpid` `pid` — if the page lets it (no flag sends callers to
    /// the daemon, the permission version is `perm_version`, the slot is
    /// `pid`'s). `false`: nothing changed, the daemon decides.
    pub fn attach(&self, perm_version: u32, slot: usize, pid: u32, now: i64) -> bool {
        self.change(slot, pid, |p| {
            if p.perm_version() != perm_version {
                return false;
            }
            let count = p.u32_at(slot_off(slot) + 4);
            let c = count.load(Ordering::Relaxed);
            if c >= MAX_COUNT {
                return false;
            }
            count.store(c + 1, Ordering::Relaxed);
            p.i64_at(ATIME).store(now, Ordering::Relaxed);
            p.u32_at(LPID).store(pid, Ordering::Relaxed);
            true
        })
    }

    /// A holder's `shmdt` of an attachment it made in its own address
    /// space, unmapped: one attachment fewer in `pid`'s slot, `dtime`
    /// `now`, `lpid` `pid` — unless the detach must go to the daemon (the
    /// destroy word is set: the last detach destroys). `false`: nothing
    /// changed.
    pub fn detach(&self, slot: usize, pid: u32, now: i64) -> bool {
        self.change(slot, pid, |p| {
            if p.u32_at(DEST).load(Ordering::Relaxed) != 0 {
                return false;
            }
            let count = p.u32_at(slot_off(slot) + 4);
            let c = count.load(Ordering::Relaxed);
            if c == 0 || c > MAX_COUNT {
                return false;
            }
            count.store(c - 1, Ordering::Relaxed);
            p.i64_at(DTIME).store(now, Ordering::Relaxed);
            p.u32_at(LPID).store(pid, Ordering::Relaxed);
            true
        })
    }

    /// Runs a holder's change of slot `slot` under the lock, the words it
    /// may write journaled first.
    fn change(&self, slot: usize, pid: u32, f: impl FnOnce(&StatePage) -> bool) -> bool {
        let usable = |p: &StatePage| {
            p.writable()
                && p.flags() & (REMOVED | DAMAGED | SLEEPERS) == 0
                && slot < SLOTS
                && p.u32_at(slot_off(slot)).load(Ordering::Relaxed) == pid
        };
        if !usable(&self.page) {
            return false;
        }
        let Ok((mut guard, _)) = self.page.lock(Some(CALLER_BOUND)) else { return false };
        if !usable(&self.page) {
            return false;
        }
        if guard.save(ATIME, 20).is_err() || guard.save(slot_off(slot) + 4, 4).is_err() {
            return false;
        }
        f(guard.page())
    }

    /// The daemon's side: takes the lock (waiting at most `bound`); a dead
    /// holder's change is rolled back.
    ///
    /// # Errors
    /// As [`StatePage::lock`].
    pub fn lock(&self, bound: Duration) -> Result<(Guard<Arc<StatePage>>, Locked), Errno> {
        StatePage::lock_shared(&self.page, Some(bound))
    }

    /// The daemon's side, under the lock: the body as holders left it
    /// (its slots up to the highest owned one) and the permission
    /// version. Validation is the caller's (it knows the slots' owners).
    pub fn adopt(&self, guard: &Guard<Arc<StatePage>>) -> (Snapshot, u32) {
        (Self::snapshot_of(guard.page()), guard.page().perm_version())
    }

    /// The daemon's side, under the lock: shows the daemon's count, the
    /// event, the destroy word, the slots (owner and count, up to the
    /// highest owned) and the permission version. `was` is what the page
    /// held ([`adopt`](Self::adopt)): nothing is written if it is the same.
    pub fn publish(
        &self,
        guard: &mut Guard<Arc<StatePage>>,
        snap: &Snapshot,
        perm_version: u32,
        was: Option<&(Snapshot, u32)>,
    ) {
        let high = snap.slots.iter().rposition(|&(pid, _)| pid != 0).map_or(0, |s| s + 1);
        let slots = &snap.slots[..high];
        if let Some((old, v)) = was {
            if *v == perm_version
                && old.slots == slots
                && (old.nattch, old.event, old.dest) == (snap.nattch, snap.event, snap.dest)
            {
                return;
            }
        }
        let old_high = was.map_or(SLOTS, |(old, _)| old.slots.len());
        guard.begin();
        let p = guard.page();
        p.u64_at(NATTCH).store(snap.nattch, Ordering::Relaxed);
        p.i64_at(ATIME).store(snap.event.atime, Ordering::Relaxed);
        p.i64_at(DTIME).store(snap.event.dtime, Ordering::Relaxed);
        p.u32_at(LPID).store(snap.event.lpid, Ordering::Relaxed);
        p.u32_at(DEST).store(u32::from(snap.dest), Ordering::Relaxed);
        p.u32_at(HIGH).store(u32::try_from(high).unwrap_or(0), Ordering::Relaxed);
        for s in 0..high.max(old_high).min(SLOTS) {
            let (pid, count) = slots.get(s).copied().unwrap_or((0, 0));
            p.u32_at(slot_off(s)).store(pid, Ordering::Relaxed);
            p.u32_at(slot_off(s) + 4).store(count, Ordering::Relaxed);
        }
        guard.set_perm_version(perm_version);
    }

    /// The daemon's side, under the lock: the page (new, or a destroyed
    /// segment's) is given to a new segment, whose publication follows.
    pub fn reuse(&self, guard: &Guard<Arc<StatePage>>) {
        guard.set_flags(0, REMOVED | DAMAGED | SLEEPERS);
    }

    /// The daemon's side: the segment is gone; holders go to the daemon.
    pub fn mark_removed(&self, guard: &Guard<Arc<StatePage>>) {
        guard.set_flags(REMOVED, 0);
    }

    /// Marks the page damaged.
    pub fn mark_damaged(&self) {
        self.page.mark_damaged();
    }
}

impl crate::state_page::Retire for AttachPage {
    fn lock_page(&self, bound: Duration) -> Result<(Guard<Arc<StatePage>>, Locked), Errno> {
        self.lock(bound)
    }
}
