//! A namespace's segment status region: what `shmctl(IPC_STAT)` reports
//! of every System V segment, in memory every client of the namespace may
//! map read-only, so a caller with a read grant answers `IPC_STAT` and
//! `SHM_STAT` itself (`docs/architecture.md`, "Queries of segments").
//!
//! The region is a state page ([`state_page`](crate::state_page), kind
//! [`Kind::ShmStatus`]) whose body holds one fixed-size entry per registry
//! slot (32768, `IPCMNI`: the file is sparse, only entries ever written
//! take memory). Only the daemon writes, from its one thread, so the page
//! lock is not used for entries; each entry has a sequence count of its own
//! ([`seqlock`]), odd while the daemon rewrites it.
//!
//! Entry (bytes from its start):
//!
//! | offset | field |
//! |---|---|
//! | 0 | sequence count |
//! | 4 | 1 if a segment occupies the slot, else 0 |
//! | 8 | the segment's full id (`seq << 15 | idx`) |
//! | 12 | permission version: changes whenever who may read it may change |
//! | 16..44 | `shm_perm`: key, uid, gid, cuid, cgid, mode, `__seq` (u32 each) |
//! | 44 | how many pids follow (`u32::MAX`: more than [`MAX_PIDS`]) |
//! | 48 | `shm_segsz` (u64) |
//! | 56, 64, 72 | `shm_atime`, `shm_dtime`, `shm_ctime` (i64) |
//! | 80, 84 | `shm_cpid`, `shm_lpid` (i32) |
//! | 88 | `shm_nattch` (u64) |
//! | 96 | up to [`MAX_PIDS`] pids (u32) whose death would change the entry |
//!
//! The pids are the processes that hold mappings of the segment or an
//! attach in progress (and its creator, where `shm_rmid_forced` destroys a
//! segment at its creator's exit): the daemon learns of a death through a
//! pidfd, a little after the kernel made it visible (`wait()` returned), so
//! a reader checks that none of them has died before it trusts the entry.
//!
//! Layout version: the page header's ([`state_page::LAYOUT`]) plus the kind;
//! a change of this table needs a new kind number.

use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use uipc_abi::{Errno, Ipc64Perm, Shmid64Ds, IPCMNI};

use crate::seqlock;
use crate::state_page::{self, Kind, StatePage, BODY, REMOVED};

/// Entries in a region: one per registry slot.
pub const ENTRIES: u32 = IPCMNI;
/// Bytes per entry.
pub const ENTRY: usize = 128;
/// Pids an entry lists; a segment with more is answered by the daemon.
pub const MAX_PIDS: usize = 7;

const O_SEQ: usize = 0;
const O_PRESENT: usize = 4;
const O_ID: usize = 8;
const O_PERM_VERSION: usize = 12;
const O_PERM: usize = 16;
const O_NPIDS: usize = 44;
const O_SEGSZ: usize = 48;
const O_ATIME: usize = 56;
const O_DTIME: usize = 64;
const O_CTIME: usize = 72;
const O_CPID: usize = 80;
const O_LPID: usize = 84;
const O_NATTCH: usize = 88;
const O_PIDS: usize = 96;
const _: () = assert!(O_PIDS + 4 * MAX_PIDS <= ENTRY);

/// Written [`O_NPIDS`] when a segment has more than [`MAX_PIDS`] pids.
const TOO_MANY: u32 = u32::MAX;

/// What an entry says of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    /// The segment's full id.
    pub id: i32,
    /// Its permission version (see the module documentation).
    pub perm_version: u32,
    /// What `IPC_STAT` reports.
    pub ds: Shmid64Ds,
    /// The processes whose death would change the entry: `pids[..n]`.
    pub pids: [u32; MAX_PIDS],
    /// How many of `pids` count; `None`: more than [`MAX_PIDS`].
    pub npids: Option<usize>,
}

impl StatusEntry {
    /// The entry of segment `id` with status `ds`, permission version
    /// `perm_version`, and the processes `pids` whose death would change it.
    pub fn new(id: i32, perm_version: u32, ds: Shmid64Ds, pids: &[u32]) -> StatusEntry {
        let mut fixed = [0; MAX_PIDS];
        let npids = (pids.len() <= MAX_PIDS).then(|| {
            fixed[..pids.len()].copy_from_slice(pids);
            pids.len()
        });
        StatusEntry { id, perm_version, ds, pids: fixed, npids }
    }

    /// The pids whose death would change the entry; `None`: too many to list.
    pub fn pids(&self) -> Option<&[u32]> {
        self.npids.map(|n| &self.pids[..n.min(MAX_PIDS)])
    }
}

/// A slot as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// No segment occupies it.
    Vacant,
    /// A segment does.
    Segment(StatusEntry),
}

/// A namespace's status region, mapped.
#[derive(Debug)]
pub struct ShmStatus {
    page: StatePage,
}

impl ShmStatus {
    /// The region's file length.
    pub fn len() -> u64 {
        state_page::page_len(ENTRY * ENTRIES as usize, 0)
    }

    /// The daemon's side: lays out a region in the zero-filled file `fd`
    /// of [`len`](Self::len) bytes (every slot vacant).
    ///
    /// # Errors
    /// `mmap`'s.
    pub fn create(fd: BorrowedFd<'_>) -> Result<ShmStatus, Errno> {
        Ok(ShmStatus { page: StatePage::create(fd, Self::len(), Kind::ShmStatus, 0)? })
    }

    /// A client's side: maps the region the daemon handed out, read-only.
    ///
    /// # Errors
    /// `EPROTO` for a file that is not a region of this layout; `mmap`'s.
    pub fn open(fd: BorrowedFd<'_>) -> Result<ShmStatus, Errno> {
        let page = StatePage::open(fd, Kind::ShmStatus, false)?;
        if page.body_len() < ENTRY * ENTRIES as usize {
            return Err(Errno::EPROTO);
        }
        Ok(ShmStatus { page })
    }

    /// Whether the daemon gave the region up (its namespace was removed):
    /// nothing in it is current.
    pub fn is_dead(&self) -> bool {
        self.page.flags() & REMOVED != 0
    }

    /// The daemon's side: gives the region up (see [`is_dead`](Self::is_dead)).
    pub fn mark_dead(&self) {
        // Only the daemon maps the region writable and it never holds the
        // lock otherwise, so it is had at once.
        if let Ok((guard, _)) = self.page.lock(Some(Duration::from_millis(100))) {
            guard.set_flags(REMOVED, 0);
        } else {
            self.page.mark_damaged();
        }
    }

    fn at(idx: u32, off: usize) -> usize {
        BODY + ENTRY * (idx % ENTRIES) as usize + off
    }

    /// The daemon's side: shows slot `idx` as `slot`. The daemon is the
    /// only writer (one thread).
    pub fn publish(&self, idx: u32, slot: &Slot) {
        let p = &self.page;
        let seq = p.u32_at(Self::at(idx, O_SEQ));
        seqlock::write_begin(seq);
        match slot {
            Slot::Vacant => p.u32_at(Self::at(idx, O_PRESENT)).store(0, Ordering::Relaxed),
            Slot::Segment(e) => {
                let w32 = |off: usize, v: u32| p.u32_at(Self::at(idx, off)).store(v, Ordering::Relaxed);
                let w64 = |off: usize, v: u64| p.u64_at(Self::at(idx, off)).store(v, Ordering::Relaxed);
                let perm = &e.ds.shm_perm;
                w32(O_PRESENT, 1);
                w32(O_ID, e.id.cast_unsigned());
                w32(O_PERM_VERSION, e.perm_version);
                let fields = [perm.key.cast_unsigned(), perm.uid, perm.gid, perm.cuid, perm.cgid, perm.mode];
                for (i, v) in fields.into_iter().enumerate() {
                    w32(O_PERM + 4 * i, v);
                }
                w32(O_PERM + 24, u32::from(perm.seq));
                w64(O_SEGSZ, e.ds.shm_segsz);
                w64(O_ATIME, e.ds.shm_atime.cast_unsigned());
                w64(O_DTIME, e.ds.shm_dtime.cast_unsigned());
                w64(O_CTIME, e.ds.shm_ctime.cast_unsigned());
                w32(O_CPID, e.ds.shm_cpid.cast_unsigned());
                w32(O_LPID, e.ds.shm_lpid.cast_unsigned());
                w64(O_NATTCH, e.ds.shm_nattch);
                match e.pids() {
                    Some(pids) => {
                        for (i, pid) in pids.iter().enumerate() {
                            w32(O_PIDS + 4 * i, *pid);
                        }
                        w32(O_NPIDS, u32::try_from(pids.len()).unwrap_or(TOO_MANY));
                    }
                    None => w32(O_NPIDS, TOO_MANY),
                }
            }
        }
        seqlock::write_end(seq);
    }

    /// Reads slot `idx` (`id % 32768`) consistently; `None` if the daemon
    /// stayed in the middle of rewriting it (ask the daemon then).
    pub fn read(&self, idx: u32) -> Option<Slot> {
        let p = &self.page;
        let seq = p.u32_at(Self::at(idx, O_SEQ));
        seqlock::read(seq, 1000, || {
            let r32 = |off: usize| p.u32_at(Self::at(idx, off)).load(Ordering::Relaxed);
            let r64 = |off: usize| p.u64_at(Self::at(idx, off)).load(Ordering::Relaxed);
            if r32(O_PRESENT) != 1 {
                return Slot::Vacant;
            }
            let perm = Ipc64Perm {
                key: r32(O_PERM).cast_signed(),
                uid: r32(O_PERM + 4),
                gid: r32(O_PERM + 8),
                cuid: r32(O_PERM + 12),
                cgid: r32(O_PERM + 16),
                mode: r32(O_PERM + 20),
                seq: u16::try_from(r32(O_PERM + 24)).unwrap_or(u16::MAX),
                ..Ipc64Perm::default()
            };
            let ds = Shmid64Ds {
                shm_perm: perm,
                shm_segsz: r64(O_SEGSZ),
                shm_atime: r64(O_ATIME).cast_signed(),
                shm_dtime: r64(O_DTIME).cast_signed(),
                shm_ctime: r64(O_CTIME).cast_signed(),
                shm_cpid: r32(O_CPID).cast_signed(),
                shm_lpid: r32(O_LPID).cast_signed(),
                shm_nattch: r64(O_NATTCH),
                ..Shmid64Ds::default()
            };
            let mut pids = [0; MAX_PIDS];
            let n = r32(O_NPIDS);
            let npids = usize::try_from(n).ok().filter(|n| *n <= MAX_PIDS);
            for (i, pid) in pids.iter_mut().enumerate().take(npids.unwrap_or(0)) {
                *pid = r32(O_PIDS + 4 * i);
            }
            Slot::Segment(StatusEntry {
                id: r32(O_ID).cast_signed(),
                perm_version: r32(O_PERM_VERSION),
                ds,
                pids,
                npids,
            })
        })
    }
}
