//! `semctl(IPC_STAT/SEM_STAT/SEM_STAT_ANY/IPC_INFO/SEM_INFO)` without a
//! round trip (`docs/architecture.md`, "Queries without a round trip"),
//! from the namespace's semaphore status region (`uipc_sys::sem_status`):
//!
//! - `IPC_INFO`, `SEM_INFO`: the header (no permission is checked; every
//!   figure in it changes only at daemon events);
//! - `IPC_STAT`, `SEM_STAT`: the entry, under a read grant (the daemon's
//!   last `*_STAT` answer for the set, same permission version, same
//!   credential key); `SEM_STAT_ANY`: the entry, no grant needed;
//! - a *live* entry (a process holds a writable grant of the set's page,
//!   so `sem_otime` may have moved without the daemon) is answered from
//!   the page under this process's grant of it (`sem_fast`: asked for
//!   once, as `GETVAL` does; a process refused one, having no read
//!   permission, is answered by the daemon).
//!
//! - none of the processes with an undo record on the set (the entry
//!   lists them) has exited: `exit_sem()` sets `sem_otime`, and the daemon
//!   applies an exit only when it reads the pidfd.
//!
//! Anything else — no region, a vacant or reused slot, a stale grant — asks
//! the daemon, whose answer renews the grant (`Request::Stat`).

use std::sync::Mutex;

use uipc_abi::{Errno, Semid64Ds, IPCMNI, IPC_INFO, IPC_STAT, SEM_INFO, SEM_STAT, SEM_STAT_ANY};
use uipc_proto::{Request, Response, SemOut, StatOut, StatusKind};
use uipc_sys::sem_status::SemLayout;

use crate::creds::CredKey;
use crate::status::StatusCache;
use crate::{unexpected, Client};

/// A client's semaphore region and read grants.
pub(crate) type SemQueries = Mutex<StatusCache<SemLayout>>;

impl Client {
    /// `semctl(id, 0, cmd)` for the commands the region may answer
    /// (`IPC_STAT`, `SEM_STAT`, `SEM_STAT_ANY`, `IPC_INFO`, `SEM_INFO`):
    /// `None` for any other command.
    pub(crate) fn sem_query(&self, id: i32, cmd: i32) -> Option<Result<(i64, SemOut), Errno>> {
        match cmd {
            IPC_INFO | SEM_INFO => Some(self.sem_info(id, cmd)),
            IPC_STAT | SEM_STAT | SEM_STAT_ANY => Some(self.sem_stat_query(id, cmd)),
            _ => None,
        }
    }

    fn sem_info(&self, id: i32, cmd: i32) -> Result<(i64, SemOut), Errno> {
        let mut cache = self.sem_queries.lock().unwrap_or_else(|e| e.into_inner());
        if cache.wants_region() {
            // One round trip, as the call itself would cost.
            let fd = match self.call_with_fd(&Request::StatusRegion { kind: StatusKind::Sem }) {
                Ok((Response::Fd, fd)) => fd,
                _ => None,
            };
            cache.set_region(fd, true);
        }
        if id >= 0 {
            if let Some(h) = cache.region().and_then(|r| r.header()) {
                let usage = (cmd == SEM_INFO).then_some((h.sets, h.sems));
                let info = uipc_core::sysv::sem::seminfo(h.sem, usage);
                return Ok((i64::from(h.max_idx.max(0)), SemOut::Seminfo(info)));
            }
        }
        drop(cache);
        self.sem_ctl_daemon(id, cmd)
    }

    fn sem_stat_query(&self, id: i32, cmd: i32) -> Result<(i64, SemOut), Errno> {
        let mut cache = self.sem_queries.lock().unwrap_or_else(|e| e.into_inner());
        cache.own();
        if let Some((ret, ds)) = self.sem_stat_fast(&mut cache, id, cmd) {
            return Ok((ret, SemOut::SemDs(ds)));
        }
        let region = cache.wants_region();
        // Taken before the call: a change of credentials meanwhile makes
        // the grant's key stale, never a grant too wide.
        let key = CredKey::now();
        match self.call_with_fd(&Request::Stat { kind: StatusKind::Sem, id, cmd, region })? {
            (Response::Stat { ret, perm_version, out: StatOut::Sem(ds) }, fd) => {
                cache.set_region(fd, false);
                // SEM_STAT_ANY checks no permission: its answer grants nothing.
                let full = match cmd {
                    IPC_STAT => Some(id),
                    SEM_STAT => i32::try_from(ret).ok(),
                    _ => None,
                };
                if let Some(full) = full {
                    cache.grant(full, perm_version, key);
                }
                Ok((ret, SemOut::SemDs(ds)))
            }
            (r, _) => Err(unexpected(&r)),
        }
    }

    /// The answer from the region (or the set's page), or `None`.
    fn sem_stat_fast(&self, cache: &mut StatusCache<SemLayout>, id: i32, cmd: i32) -> Option<(i64, Semid64Ds)> {
        let region = cache.region()?;
        if id < 0 {
            return None;
        }
        let entry = region.read(id.cast_unsigned() % IPCMNI)??;
        if cmd == IPC_STAT && entry.id != id {
            return None;
        }
        if cmd != SEM_STAT_ANY && !cache.holds(entry.id, entry.perm_version) {
            return None;
        }
        // A process with an undo record that exited sets sem_otime
        // (exit_sem()) before its parent's wait() returns.
        if !cache.all_alive(entry.pids.get()) {
            return None;
        }
        let ds = if entry.live { self.sem_page_stat(entry.id)? } else { entry.ds };
        Some((if cmd == IPC_STAT { 0 } else { i64::from(entry.id) }, ds))
    }

    /// `semctl(id, 0, cmd)` by the daemon.
    fn sem_ctl_daemon(&self, id: i32, cmd: i32) -> Result<(i64, SemOut), Errno> {
        match self.call(&Request::SemCtl { id, semnum: 0, cmd, arg: uipc_proto::SemCtlArg::None })? {
            Response::SemCtl { ret, out } => Ok((ret, out)),
            r => Err(unexpected(&r)),
        }
    }
}
