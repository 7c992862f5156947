//! The daemon's side of the message queues' status regions
//! (`docs/architecture.md`, "Queries without a round trip"): the header
//! (`IPC_INFO`, `MSG_INFO`) and one entry per queue, compared with what
//! was last published after every event, and the read grants `MSG_STAT`
//! and `IPC_STAT` answers carry ([`Request::Stat`]).
//!
//! [`Request::Stat`]: uipc_proto::Request::Stat

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;

use uipc_abi::Errno;
use uipc_core::cred::Cred;
use uipc_core::sysv::msg::{MsgCmd, MsgCtlOut};
use uipc_proto::{Response, StatOut, StatusKind};
use uipc_sys::msg_status::{MsgEntry, MsgHeader, MsgLayout};

use crate::server::{now, Daemon};
use crate::status::Regions;

/// Every namespace's message queue region.
pub(crate) type MsgRegions = Regions<MsgLayout>;

impl Daemon {
    /// Rewrites namespace `ns`'s header and every entry that differs from
    /// what was last published (no work without a region). Cost: one
    /// comparison per queue.
    pub(crate) fn msg_publish(&mut self, ns: &str) {
        let Some(region) = self.msg_regions.get_mut(ns) else { return };
        let Some(model) = self.namespaces.get(ns) else { return };
        let live = self.msg_live.entry(ns.to_owned()).or_default();
        // Removed queues are forgotten.
        let ids: BTreeSet<i32> = model.msg_ids().iter().map(|id| id.0).collect();
        live.retain(|id| ids.contains(id));
        region.sync_all(model.msg_ids().into_iter().filter_map(|id| {
            let s = model.msg_status(id.idx())?;
            let live = live.contains(&s.id.0);
            Some((id.idx(), MsgEntry { id: s.id.0, perm_version: s.perm_version, live, ds: s.ds }))
        }));
        let l = model.limits();
        let (queues, msgs, bytes) = model.msg_usage();
        let header = MsgHeader {
            limits: [l.msgmax, l.msgmnb, l.msgmni],
            queues,
            msgs,
            bytes,
            max_idx: model.msg_max_idx(),
            live: u32::try_from(live.len()).unwrap_or(u32::MAX),
        };
        region.sync_header(header);
    }

    /// Queue `id` of namespace `ns` has a writable page grant: from now on
    /// its counts, pids and times may change in its page without the daemon.
    pub(crate) fn msg_live(&mut self, ns: &str, id: i32) {
        self.msg_live.entry(ns.to_owned()).or_default().insert(id);
    }

    /// [`Request::Stat`](uipc_proto::Request::Stat) of a queue: `msgctl`'s
    /// answer for `IPC_STAT`, `MSG_STAT` or `MSG_STAT_ANY` (the check is
    /// the core's, as for `MsgCtl`; the pages were adopted first), with
    /// the queue's permission version (the caller's read grant), and the
    /// region if asked for.
    pub(crate) fn msg_stat_grant(
        &mut self,
        ns: &str,
        cred: &Cred,
        id: i32,
        cmd: i32,
        region: bool,
    ) -> Result<(Response, Option<OwnedFd>), Errno> {
        let decoded = MsgCmd::decode(id, cmd)?;
        if !matches!(decoded, MsgCmd::IpcStat | MsgCmd::MsgStat | MsgCmd::MsgStatAny) {
            return Err(Errno::EINVAL);
        }
        let model = self.namespaces.get_mut(ns).ok_or(Errno::EIDRM)?;
        let (ret, out) = model.msgctl(cred, now(), id, decoded, None)?;
        let MsgCtlOut::Ds(ds) = out else { return Err(Errno::EIO) };
        let full = if decoded == MsgCmd::IpcStat { id } else { i32::try_from(ret).map_err(|_| Errno::EIO)? };
        let perm_version = model.msg_perm_version(full)?;
        self.stat_reply(ns, StatusKind::Msg, region, (ret, perm_version, StatOut::Msg(ds)))
    }
}
