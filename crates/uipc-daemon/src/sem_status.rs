//! The daemon's side of the semaphore sets' status regions
//! (`docs/architecture.md`, "Queries without a round trip"): the header
//! (`IPC_INFO`, `SEM_INFO`) and one entry per set, compared with what was
//! last published after every event, and the read grants `SEM_STAT` and
//! `IPC_STAT` answers carry ([`Request::Stat`]).
//!
//! [`Request::Stat`]: uipc_proto::Request::Stat

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;

use uipc_abi::Errno;
use uipc_core::cred::Cred;
use uipc_core::sysv::sem::{SemArg, SemCmd, SemCtlOut};
use uipc_proto::{Response, StatOut, StatusKind};
use uipc_sys::sem_status::{SemEntry, SemHeader, SemLayout};
use uipc_sys::status_region::Pids;

use crate::server::{now, Daemon};
use crate::status::Regions;

/// Every namespace's semaphore region.
pub(crate) type SemRegions = Regions<SemLayout>;

type Model = uipc_core::IpcNamespace<crate::DaemonMemory>;

/// What `semctl(IPC_INFO/SEM_INFO)` report of `model`.
fn sem_header(model: &Model) -> SemHeader {
    let (sets, sems) = model.sem_usage();
    SemHeader { sem: model.limits().sem, sets, sems, max_idx: model.sem_max_idx() }
}

impl Daemon {
    /// Rewrites namespace `ns`'s header and every entry that differs from
    /// what was last published (no work without a region). Cost: one
    /// comparison per set.
    pub(crate) fn sem_publish(&mut self, ns: &str) {
        let Some(region) = self.sem_regions.get_mut(ns) else { return };
        let Some(model) = self.namespaces.get(ns) else { return };
        region.sync_header(sem_header(model));
        let live = self.sem_live.entry(ns.to_owned()).or_default();
        // Removed sets are forgotten.
        let ids: BTreeSet<i32> = model.sem_ids().iter().map(|id| id.0).collect();
        live.retain(|id| ids.contains(id));
        region.sync_all(model.sem_ids().into_iter().filter_map(|id| {
            let s = model.sem_status(id.idx())?;
            let pids: Vec<u32> = s.undo_pids.iter().map(|p| p.0).collect();
            let live = live.contains(&s.id.0);
            Some((
                id.idx(),
                SemEntry { id: s.id.0, perm_version: s.perm_version, live, ds: s.ds, pids: Pids::new(&pids) },
            ))
        }));
    }

    /// Set `id` of namespace `ns` has a writable grant: from now on its
    /// `sem_otime` may change in its page without the daemon.
    pub(crate) fn sem_live(&mut self, ns: &str, id: i32) {
        self.sem_live.entry(ns.to_owned()).or_default().insert(id);
    }

    /// [`Request::Stat`](uipc_proto::Request::Stat) of a set: `semctl`'s
    /// answer for `IPC_STAT`, `SEM_STAT` or `SEM_STAT_ANY` (the check is
    /// the core's, as for `SemCtl`), with the set's permission version
    /// (the caller's read grant), and the region if asked for.
    pub(crate) fn sem_stat_grant(
        &mut self,
        ns: &str,
        cred: &Cred,
        id: i32,
        cmd: i32,
        region: bool,
    ) -> Result<(Response, Option<OwnedFd>), Errno> {
        let decoded = SemCmd::decode(id, cmd)?;
        if !matches!(decoded, SemCmd::IpcStat | SemCmd::SemStat | SemCmd::SemStatAny) {
            return Err(Errno::EINVAL);
        }
        let model = self.namespaces.get_mut(ns).ok_or(Errno::EIDRM)?;
        let (ret, out) = model.semctl(cred, now(), id, 0, decoded, SemArg::None)?;
        let SemCtlOut::Ds(ds) = out else { return Err(Errno::EIO) };
        let full = if decoded == SemCmd::IpcStat { id } else { i32::try_from(ret).map_err(|_| Errno::EIO)? };
        let perm_version = model.sem_perm_version(full)?;
        self.stat_reply(ns, StatusKind::Sem, region, (ret, perm_version, StatOut::Sem(ds)))
    }
}
