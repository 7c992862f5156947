//! `msgctl(IPC_STAT/MSG_STAT/MSG_STAT_ANY/IPC_INFO/MSG_INFO)` without a
//! round trip (`docs/architecture.md`, "Queries without a round trip"),
//! from the namespace's message queue status region
//! (`uipc_sys::msg_status`, through `status::StatusCache`):
//!
//! - `IPC_INFO`: the header; `MSG_INFO` too while no queue is *live* (its
//!   message and byte totals change at every fast-path send and receive,
//!   which the daemon sees only when it next adopts the page);
//! - `IPC_STAT`, `MSG_STAT` under a read grant, `MSG_STAT_ANY` without:
//!   the entry of a queue that is not live (no process holds a grant of
//!   its page, so every change went through the daemon).
//!
//! A live queue's status is the daemon's (it adopts the pages first):
//! exact, one round trip. Reading the page's control block under a grant
//! of it is the step that would make those answers local too.

use uipc_abi::{Errno, IPC_INFO, IPC_STAT, MSG_INFO, MSG_STAT, MSG_STAT_ANY};
use uipc_proto::{MsgOut, Request, Response, StatOut, StatusKind};
use uipc_sys::msg_status::MsgLayout;

use crate::status::{StatCmd, StatusCache};
use crate::{unexpected, Client};

/// A client's message queue region and read grants.
pub(crate) type MsgQueries = crate::Derived<StatusCache<MsgLayout>>;

impl Client {
    /// `msgctl(id, cmd)` for the commands the region may answer
    /// (`IPC_STAT`, `MSG_STAT`, `MSG_STAT_ANY`, `IPC_INFO`, `MSG_INFO`):
    /// `None` for any other command.
    pub(crate) fn msg_query(&self, id: i32, cmd: i32) -> Option<Result<(i64, MsgOut), Errno>> {
        let stat = StatCmd { cmd, by_id: cmd == IPC_STAT, any: cmd == MSG_STAT_ANY };
        match cmd {
            IPC_INFO | MSG_INFO => Some(self.info_query(
                &self.msg_queries,
                StatusKind::Msg,
                id,
                |h| {
                    if cmd == MSG_INFO && h.live != 0 {
                        return None;
                    }
                    let usage = (cmd == MSG_INFO).then_some((h.queues, h.msgs, h.bytes));
                    let [max, mnb, mni] = h.limits;
                    let info = uipc_core::sysv::msg::msginfo(max, mnb, mni, usage);
                    Some((i64::from(h.max_idx.max(0)), MsgOut::Msginfo(info)))
                },
                || self.msg_ctl_daemon(id, cmd),
            )),
            IPC_STAT | MSG_STAT | MSG_STAT_ANY => Some(self.stat_query(
                &self.msg_queries,
                StatusKind::Msg,
                id,
                stat,
                |_, e| (!e.live).then_some(MsgOut::MsgDs(e.ds)),
                |o| match o {
                    StatOut::Msg(ds) => Some(MsgOut::MsgDs(ds)),
                    StatOut::Sem(_) => None,
                },
            )),
            _ => None,
        }
    }

    /// `msgctl(id, cmd)` by the daemon.
    fn msg_ctl_daemon(&self, id: i32, cmd: i32) -> Result<(i64, MsgOut), Errno> {
        match self.call(&Request::MsgCtl { id, cmd, set: None })? {
            Response::MsgCtl { ret, out } => Ok((ret, out)),
            r => Err(unexpected(&r)),
        }
    }
}
