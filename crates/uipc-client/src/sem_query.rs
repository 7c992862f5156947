//! `semctl(IPC_STAT/SEM_STAT/SEM_STAT_ANY/IPC_INFO/SEM_INFO)` without a
//! round trip (`docs/architecture.md`, "Queries without a round trip"),
//! from the namespace's semaphore status region (`uipc_sys::sem_status`,
//! through `status::StatusCache`):
//!
//! - `IPC_INFO`, `SEM_INFO`: the header (no permission is checked; every
//!   figure in it changes only at daemon events);
//! - `IPC_STAT`, `SEM_STAT`: the entry, under a read grant (the daemon's
//!   last `*_STAT` answer for the set, same permission version, same
//!   credential key); `SEM_STAT_ANY`: the entry, no grant needed;
//! - none of the processes with an undo record on the set (the entry
//!   lists them) has exited: `exit_sem()` sets `sem_otime`, and the daemon
//!   applies an exit only when it reads the pidfd;
//! - a *live* entry (a process holds a writable grant of the set's page,
//!   so `sem_otime` may have moved without the daemon) is answered from
//!   the page under this process's grant of it (`sem_fast`: asked for
//!   once, as `GETVAL` does; a process refused one, having no read
//!   permission, is answered by the daemon).
//!
//! Anything else — no region, a vacant or reused slot, a stale grant — asks
//! the daemon, whose answer renews the grant (`Request::Stat`).

use uipc_abi::{Errno, IPC_INFO, IPC_STAT, SEM_INFO, SEM_STAT, SEM_STAT_ANY};
use uipc_proto::{Request, Response, SemOut, StatOut, StatusKind};
use uipc_sys::sem_status::SemLayout;

use crate::status::{StatCmd, StatusCache};
use crate::{unexpected, Client};

/// A client's semaphore region and read grants.
pub(crate) type SemQueries = crate::Derived<StatusCache<SemLayout>>;

impl Client {
    /// `semctl(id, 0, cmd)` for the commands the region may answer
    /// (`IPC_STAT`, `SEM_STAT`, `SEM_STAT_ANY`, `IPC_INFO`, `SEM_INFO`):
    /// `None` for any other command.
    pub(crate) fn sem_query(&self, id: i32, cmd: i32) -> Option<Result<(i64, SemOut), Errno>> {
        let stat = StatCmd { cmd, by_id: cmd == IPC_STAT, any: cmd == SEM_STAT_ANY };
        match cmd {
            IPC_INFO | SEM_INFO => Some(self.info_query(
                &self.sem_queries,
                StatusKind::Sem,
                id,
                |h| {
                    let usage = (cmd == SEM_INFO).then_some((h.sets, h.sems));
                    let info = uipc_core::sysv::sem::seminfo(h.sem, usage);
                    Some((i64::from(h.max_idx.max(0)), SemOut::Seminfo(info)))
                },
                || self.sem_ctl_daemon(id, cmd),
            )),
            IPC_STAT | SEM_STAT | SEM_STAT_ANY => Some(self.stat_query(
                &self.sem_queries,
                StatusKind::Sem,
                id,
                stat,
                |c, e| Some(SemOut::SemDs(if e.live { c.sem_page_stat(e.id)? } else { e.ds })),
                |o| match o {
                    StatOut::Sem(ds) => Some(SemOut::SemDs(ds)),
                    StatOut::Msg(_) => None,
                },
            )),
            _ => None,
        }
    }

    /// `semctl(id, 0, cmd)` by the daemon.
    fn sem_ctl_daemon(&self, id: i32, cmd: i32) -> Result<(i64, SemOut), Errno> {
        match self.call(&Request::SemCtl { id, semnum: 0, cmd, arg: uipc_proto::SemCtlArg::None })? {
            Response::SemCtl { ret, out } => Ok((ret, out)),
            r => Err(unexpected(&r)),
        }
    }
}
