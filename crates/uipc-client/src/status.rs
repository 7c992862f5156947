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

use uipc_abi::IPCMNI;
use uipc_sys::status_region::{Layout, StatusRegion};

use crate::creds::CredKey;
use crate::liveness::Liveness;

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

    /// Whether this process holds a current read grant on object `full`,
    /// whose entry shows `perm_version`.
    pub(crate) fn holds(&self, full: i32, perm_version: u32) -> bool {
        self.grants.get(&full).is_some_and(|g| g.perm_version == perm_version && g.cred == CredKey::now())
    }
}
