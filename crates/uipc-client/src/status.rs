//! A client's view of one kind of status region (`docs/architecture.md`,
//! "Queries without a round trip"): the region, once the daemon sent it,
//! and the read grants the daemon's `*_STAT` answers carry — per object,
//! the permission version it answered under and the credential key
//! (`creds::CredKey`) of the caller then. Grants are per process (a
//! forked child starts with none) and per namespace (`reset` at every
//! join, `unshare`, `setns`). The mechanisms (`shm_fast`, `sem_query`)
//! decide what an entry may answer.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use uipc_abi::{Errno, IPCMNI};
use uipc_proto::{Request, Response, StatOut, StatusKind};
use uipc_sys::msg_status::MsgEntry;
use uipc_sys::sem_status::SemEntry;
use uipc_sys::shm_status::StatusEntry;
use uipc_sys::status_region::{Layout, StatusRegion};

use crate::creds::CredKey;
use crate::liveness::Liveness;
use crate::{unexpected, Client};

/// What every kind's entry tells a reader.
pub(crate) trait Entry {
    /// The object's full id.
    fn id(&self) -> i32;
    /// Its permission version.
    fn perm_version(&self) -> u32;
    /// The processes whose death would change the entry (`None`: too many
    /// to list).
    fn pids(&self) -> Option<&[u32]>;
}

/// [`Entry`] for layouts whose entries have `id`, `perm_version` and
/// `pids` fields.
macro_rules! entry_with_pids {
    ($($t:ty),*) => {$(
        impl Entry for $t {
            fn id(&self) -> i32 {
                self.id
            }
            fn perm_version(&self) -> u32 {
                self.perm_version
            }
            fn pids(&self) -> Option<&[u32]> {
                self.pids.get()
            }
        }
    )*};
}

entry_with_pids!(StatusEntry, SemEntry);

impl Entry for MsgEntry {
    fn id(&self) -> i32 {
        self.id
    }
    fn perm_version(&self) -> u32 {
        self.perm_version
    }
    fn pids(&self) -> Option<&[u32]> {
        // No exit changes a queue's msqid_ds.
        Some(&[])
    }
}

/// What a `*_STAT`-like command asks of an entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StatCmd {
    /// The raw command.
    pub(crate) cmd: i32,
    /// `IPC_STAT`: the id must be the entry's; the call returns 0.
    pub(crate) by_id: bool,
    /// `*_STAT_ANY`: no permission is checked, so no grant is needed (and
    /// the daemon's answer grants nothing).
    pub(crate) any: bool,
}

/// A read grant on one object.
#[derive(Clone, Copy, Debug)]
struct Grant {
    perm_version: u32,
    cred: CredKey,
}

/// The region of layout `L` and the grants on its objects.
#[derive(Debug)]
pub(crate) struct StatusCache<L: Layout> {
    /// The process this state belongs to (a forked child drops the grants).
    pid: u32,
    region: Option<StatusRegion<L>>,
    /// The daemon was asked for the region once (and may not have one).
    asked: bool,
    grants: HashMap<i32, Grant>,
    /// Pidfds of the processes entries listed.
    live: Liveness,
}

impl<L: Layout> Default for StatusCache<L> {
    fn default() -> Self {
        StatusCache { pid: 0, region: None, asked: false, grants: HashMap::new(), live: Liveness::default() }
    }
}

impl<L: Layout> StatusCache<L> {
    /// Drops what belonged to another process (this is a forked child):
    /// `true` if it did.
    pub(crate) fn own(&mut self) -> bool {
        let me = uipc_sys::proc::cached_pid();
        let forked = self.pid != me;
        if forked {
            self.pid = me;
            self.grants.clear();
            self.live.clear();
        }
        forked
    }

    /// Whether the next daemon call should ask for the region.
    pub(crate) fn wants_region(&mut self) -> bool {
        self.own();
        !self.asked
    }

    /// Takes the region the daemon sent, or notes that it sent none when
    /// asked (`asked`: it is not asked again).
    pub(crate) fn set_region(&mut self, fd: Option<OwnedFd>, asked: bool) {
        self.own();
        self.asked |= asked || fd.is_some();
        if let Some(fd) = fd {
            self.region = StatusRegion::open(fd.as_fd()).ok();
        }
    }

    /// The region, if mapped and alive.
    pub(crate) fn region(&self) -> Option<&StatusRegion<L>> {
        self.region.as_ref().filter(|r| !r.is_dead())
    }

    /// Notes a read grant on object `full` at `perm_version`, made under
    /// credential key `cred`.
    pub(crate) fn grant(&mut self, full: i32, perm_version: u32, cred: CredKey) {
        self.own();
        if self.grants.len() >= usize::try_from(IPCMNI).unwrap_or(usize::MAX) {
            self.grants.clear();
        }
        self.grants.insert(full, Grant { perm_version, cred });
    }

    /// Whether none of `pids` (an entry's, `None`: too many to list) but
    /// this process has exited: else the entry may miss the effect of an
    /// exit the daemon has not read yet.
    pub(crate) fn all_alive(&mut self, pids: Option<&[u32]>) -> bool {
        let me = self.pid;
        pids.is_some_and(|pids| pids.iter().all(|&p| p == me || self.live.alive(p)))
    }

    /// The entry that may answer `stat` for `id` from the region: the slot
    /// holds the object asked for, this process holds a current read grant
    /// on it (unless `stat.any`), and none of the processes it lists has
    /// exited. `None`: ask the daemon.
    pub(crate) fn stat_entry(&mut self, id: i32, stat: StatCmd) -> Option<L::Entry>
    where
        L::Entry: Entry,
    {
        self.own();
        if id < 0 {
            return None;
        }
        let entry = self.region()?.read(id.cast_unsigned() % IPCMNI)??;
        if stat.by_id && entry.id() != id {
            return None;
        }
        if !stat.any && !self.holds(entry.id(), entry.perm_version()) {
            return None;
        }
        self.all_alive(entry.pids()).then_some(entry)
    }

    /// After the daemon answered `stat` for `id` with `ret` and the
    /// object's `perm_version`, under credential key `cred`: the read
    /// grant (none for `*_STAT_ANY`), and the region if it came.
    pub(crate) fn answered(
        &mut self,
        id: i32,
        stat: StatCmd,
        ret: i64,
        perm_version: u32,
        cred: CredKey,
        region: Option<OwnedFd>,
    ) {
        self.set_region(region, false);
        let full = if stat.by_id { Some(id) } else { i32::try_from(ret).ok() };
        if let Some(full) = full.filter(|_| !stat.any) {
            self.grant(full, perm_version, cred);
        }
    }

    /// Whether this process holds a current read grant on object `full`,
    /// whose entry shows `perm_version`.
    pub(crate) fn holds(&self, full: i32, perm_version: u32) -> bool {
        self.grants.get(&full).is_some_and(|g| g.perm_version == perm_version && g.cred == CredKey::now())
    }
}

impl Client {
    /// `*ctl(id, stat.cmd)` of a set or queue (`kind`): from the region
    /// when `cache` has a current entry and `fast` makes an answer of it,
    /// else from the daemon (`Request::Stat`, which renews the grant);
    /// `out` takes the daemon's status.
    pub(crate) fn stat_query<L: Layout, T>(
        &self,
        cache: &crate::Derived<StatusCache<L>>,
        kind: StatusKind,
        id: i32,
        stat: StatCmd,
        fast: impl FnOnce(&Self, L::Entry) -> Option<T>,
        out: impl FnOnce(StatOut) -> Option<T>,
    ) -> Result<(i64, T), Errno>
    where
        L::Entry: Entry,
    {
        let mut cache = cache.lock(self.generation());
        if let Some(entry) = cache.stat_entry(id, stat) {
            let full = entry.id();
            if let Some(v) = fast(self, entry) {
                return Ok((if stat.by_id { 0 } else { i64::from(full) }, v));
            }
        }
        let region = cache.wants_region();
        // Taken before the call: a change of credentials meanwhile makes
        // the grant's key stale, never a grant too wide.
        let key = CredKey::now();
        match self.call_with_fd(&Request::Stat { kind, id, cmd: stat.cmd, region })? {
            (Response::Stat { ret, perm_version, out: o }, fd) => {
                cache.answered(id, stat, ret, perm_version, key, fd);
                Ok((ret, out(o).ok_or(Errno::EIO)?))
            }
            (r, _) => Err(unexpected(&r)),
        }
    }

    /// `*ctl(id, IPC_INFO/*_INFO)` of `kind`: from the region's header
    /// (`header` makes the answer, `None` when it cannot), fetched with one
    /// round trip the first time; else `daemon`.
    pub(crate) fn info_query<L: Layout, T>(
        &self,
        cache: &crate::Derived<StatusCache<L>>,
        kind: StatusKind,
        id: i32,
        header: impl FnOnce(&L::Header) -> Option<(i64, T)>,
        daemon: impl FnOnce() -> Result<(i64, T), Errno>,
    ) -> Result<(i64, T), Errno> {
        let mut cache = cache.lock(self.generation());
        if cache.wants_region() {
            // One round trip, as the call itself would cost.
            let fd = match self.call_with_fd(&Request::StatusRegion { kind }) {
                Ok((Response::Fd, fd)) => fd,
                _ => None,
            };
            cache.set_region(fd, true);
        }
        if id >= 0 {
            if let Some(answer) = cache.region().and_then(|r| r.header()).and_then(|h| header(&h)) {
                return Ok(answer);
            }
        }
        drop(cache);
        daemon()
    }
}
