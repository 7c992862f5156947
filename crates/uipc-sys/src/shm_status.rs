//! The segments' status region: what `shmctl(IPC_STAT)` reports of every
//! System V segment, and what `shmctl(IPC_INFO)` reports of the namespace,
//! in a [`status_region`](crate::status_region) (`docs/architecture.md`,
//! "Queries without a round trip").
//!
//! Entry (words after the slot's count and presence word):
//!
//! | word | field |
//! |---|---|
//! | 0 | the segment's full id (`seq << 15 | idx`) |
//! | 1 | permission version: changes whenever who may read it may change |
//! | 2..9 | `shm_perm`: key, uid, gid, cuid, cgid, mode, `__seq` |
//! | 9 | `shm_segsz` (two words, low first, as every 64-bit field) |
//! | 11, 13, 15 | `shm_atime`, `shm_dtime`, `shm_ctime` |
//! | 17, 18 | `shm_cpid`, `shm_lpid` |
//! | 19 | `shm_nattch` |
//! | 29 | 1 when the segment has an attach page (`shm_attach`) |
//! | 21 | [`Pids`]: how many (`u32::MAX`: more than [`MAX_PIDS`]), then up to [`MAX_PIDS`] pids whose death would change the entry |
//!
//! The pids are the processes that hold mappings of the segment or an
//! attach in progress (and its creator, where `shm_rmid_forced` destroys a
//! segment at its creator's exit): the daemon learns of a death through a
//! pidfd, a little after the kernel made it visible (`wait()` returned), so
//! a reader checks that none of them has died before it trusts the entry.
//!
//! Header: [`ShmHeader`], what `IPC_INFO` reports (`shmctl_ipc_info()`).
//! `SHM_INFO` is not in it: its `shm_rss` counts the pages the segments'
//! users touched, which changes without the daemon hearing of it.

use uipc_abi::Shmid64Ds;

use crate::state_page::Kind;
use crate::status_region::{put_perm, take_perm, Layout, Pids, Put, StatusRegion, Take, Words};

pub use crate::status_region::MAX_PIDS;

/// What an entry says of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    /// The segment's full id.
    pub id: i32,
    /// Its permission version (see the module documentation).
    pub perm_version: u32,
    /// What `IPC_STAT` reports.
    pub ds: Shmid64Ds,
    /// The processes whose death would change the entry.
    pub pids: Pids,
    /// 1 when the segment has an attach page (`shm_attach`): `shm_nattch`,
    /// the times and `shm_lpid` are the page's, which only its holders
    /// read; anyone else asks the daemon.
    pub live: u32,
}

impl StatusEntry {
    /// The entry of segment `id` with status `ds`, permission version
    /// `perm_version`, and the processes `pids` whose death would change it.
    pub fn new(id: i32, perm_version: u32, ds: Shmid64Ds, pids: &[u32]) -> StatusEntry {
        StatusEntry { id, perm_version, ds, pids: Pids::new(pids), live: 0 }
    }

    /// The entry, saying whether the segment has an attach page.
    pub fn with_live(mut self, live: bool) -> StatusEntry {
        self.live = u32::from(live);
        self
    }

    /// The pids whose death would change the entry; `None`: too many to list.
    pub fn pids(&self) -> Option<&[u32]> {
        self.pids.get()
    }
}

impl Words for StatusEntry {
    const WORDS: usize = 22 + Pids::WORDS;

    fn encode(&self, w: &mut Put<'_>) {
        w.i32(self.id);
        w.u32(self.perm_version);
        put_perm(w, &self.ds.shm_perm);
        w.u64(self.ds.shm_segsz);
        w.i64(self.ds.shm_atime);
        w.i64(self.ds.shm_dtime);
        w.i64(self.ds.shm_ctime);
        w.i32(self.ds.shm_cpid);
        w.i32(self.ds.shm_lpid);
        w.u64(self.ds.shm_nattch);
        self.pids.put(w);
        w.u32(self.live);
    }

    fn decode(r: &mut Take<'_>) -> Self {
        let id = r.i32();
        let perm_version = r.u32();
        let shm_perm = take_perm(r);
        let ds = Shmid64Ds {
            shm_perm,
            shm_segsz: r.u64(),
            shm_atime: r.i64(),
            shm_dtime: r.i64(),
            shm_ctime: r.i64(),
            shm_cpid: r.i32(),
            shm_lpid: r.i32(),
            shm_nattch: r.u64(),
            ..Shmid64Ds::default()
        };
        let pids = Pids::take(r);
        StatusEntry { id, perm_version, ds, pids, live: r.u32() }
    }
}

/// What `shmctl(IPC_INFO)` reports of a namespace
/// (`ipc/shm.c:shmctl_ipc_info()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShmHeader {
    /// `kernel.shmmax`.
    pub shmmax: u64,
    /// `kernel.shmall`.
    pub shmall: u64,
    /// `kernel.shmmni`.
    pub shmmni: u32,
    /// The highest index in use (`ipc_get_maxidx()`), or `-1`: the call's
    /// return value is its maximum with 0.
    pub max_idx: i32,
}

impl Words for ShmHeader {
    const WORDS: usize = 6;

    fn encode(&self, w: &mut Put<'_>) {
        w.u64(self.shmmax);
        w.u64(self.shmall);
        w.u32(self.shmmni);
        w.i32(self.max_idx);
    }

    fn decode(r: &mut Take<'_>) -> Self {
        ShmHeader { shmmax: r.u64(), shmall: r.u64(), shmmni: r.u32(), max_idx: r.i32() }
    }
}

/// The segments' layout.
#[derive(Debug)]
pub struct ShmLayout;

impl Layout for ShmLayout {
    const KIND: Kind = Kind::ShmStatus;
    type Entry = StatusEntry;
    type Header = ShmHeader;
}

/// A namespace's segment status region, mapped.
pub type ShmStatus = StatusRegion<ShmLayout>;
