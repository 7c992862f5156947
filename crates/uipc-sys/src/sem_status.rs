//! The semaphore sets' status region: what `semctl(IPC_STAT)` reports of
//! every set, and what `semctl(IPC_INFO/SEM_INFO)` report of the
//! namespace, in a [`status_region`](crate::status_region)
//! (`docs/architecture.md`, "Queries without a round trip").
//!
//! Entry (words after the slot's count and presence word): full id,
//! permission version, `sem_perm` (7 words), `live`, `sem_nsems` (2
//! words), `sem_otime` (2), `sem_ctime` (2), the processes with an undo
//! record on the set (`Pids`: `exit_sem()` sets `sem_otime` at each one's
//! exit, which the daemon applies when it reads the pidfd). `live` is 1 while the set has
//! a state page some process may change: a fast-path `semop` then sets
//! `sem_otime` in the page without the daemon, and only a reader holding
//! the page (or the daemon) knows it.
//!
//! Header: [`SemHeader`].

use uipc_abi::Semid64Ds;

use crate::state_page::Kind;
use crate::status_region::{put_perm, take_perm, Layout, Pids, Put, StatusRegion, Take, Words};

/// What an entry says of one set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemEntry {
    /// The set's full id.
    pub id: i32,
    /// Its permission version (unique in the namespace; `IPC_SET` changes it).
    pub perm_version: u32,
    /// Whether a fast path may have changed `sem_otime` since (see the
    /// module documentation).
    pub live: bool,
    /// What `IPC_STAT` reports, as the daemon last knew it.
    pub ds: Semid64Ds,
    /// The processes with an undo record on the set: `exit_sem()` sets
    /// `sem_otime` at each one's exit (`do_smart_update(…, otime = 1)`).
    pub pids: Pids,
}

impl Words for SemEntry {
    const WORDS: usize = 16 + Pids::WORDS;

    fn encode(&self, w: &mut Put<'_>) {
        w.i32(self.id);
        w.u32(self.perm_version);
        put_perm(w, &self.ds.sem_perm);
        w.u32(u32::from(self.live));
        w.u64(self.ds.sem_nsems);
        w.i64(self.ds.sem_otime);
        w.i64(self.ds.sem_ctime);
        self.pids.put(w);
    }

    fn decode(r: &mut Take<'_>) -> Self {
        let id = r.i32();
        let perm_version = r.u32();
        let sem_perm = take_perm(r);
        let live = r.u32() != 0;
        let ds =
            Semid64Ds { sem_perm, sem_nsems: r.u64(), sem_otime: r.i64(), sem_ctime: r.i64(), ..Semid64Ds::default() };
        SemEntry { id, perm_version, live, ds, pids: Pids::take(r) }
    }
}

/// What `semctl(IPC_INFO)` and `semctl(SEM_INFO)` report of a namespace
/// (`ipc/sem.c:semctl_info()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SemHeader {
    /// `kernel.sem`: `semmsl`, `semmns`, `semopm`, `semmni`.
    pub sem: [i32; 4],
    /// Sets in use (`semusz`).
    pub sets: u32,
    /// Semaphores in all sets (`semaem`).
    pub sems: i64,
    /// The highest index in use, or `-1`.
    pub max_idx: i32,
}

impl Words for SemHeader {
    const WORDS: usize = 8;

    fn encode(&self, w: &mut Put<'_>) {
        for v in self.sem {
            w.i32(v);
        }
        w.u32(self.sets);
        w.i64(self.sems);
        w.i32(self.max_idx);
    }

    fn decode(r: &mut Take<'_>) -> Self {
        let sem = [r.i32(), r.i32(), r.i32(), r.i32()];
        SemHeader { sem, sets: r.u32(), sems: r.i64(), max_idx: r.i32() }
    }
}

/// The semaphore sets' layout.
#[derive(Debug)]
pub struct SemLayout;

impl Layout for SemLayout {
    const KIND: Kind = Kind::SemStatus;
    type Entry = SemEntry;
    type Header = SemHeader;
}

/// A namespace's semaphore status region, mapped.
pub type SemStatus = StatusRegion<SemLayout>;
