//! System V message queues without a round trip (`docs/architecture.md`,
//! "The data plane"): a queue's state page, granted once by the daemon to
//! a process with write permission, lets it run the `msgsnd`s (and, with
//! read permission too, the `msgrcv`s) that complete or fail at once in
//! its own address space.
//!
//! A grant is used only while it is current: same process (not a forked
//! child), same connection generation (namespace), same credentials (the
//! [`CredKey`]), and the page's permission version unchanged. Anything
//! else — no grant, a stale one, a call that would sleep, sleepers parked
//! on the queue, a removed, moved or damaged page — goes to the daemon,
//! which decides as before (and grants anew where it may).

use std::sync::Arc;

use uipc_abi::Errno;
use uipc_core::cred::Pid;
use uipc_core::sysv::msg_page::PAGE_QBYTES_MAX;
use uipc_core::time::Time;
use uipc_proto::{Request, Response};
use uipc_sys::msg_page::{MsgGrant, MsgQueuePage};
use uipc_sys::state_page::{DAMAGED, REMOVED};

use crate::grants::{Grant, Grants};
use crate::sem_fast::Key;
use crate::{Client, Message};

#[derive(Debug)]
pub(crate) struct Held {
    page: MsgQueuePage,
    grant: MsgGrant,
    holder: Key,
}

impl Grant for Held {
    fn current(&self, holder: Key) -> bool {
        self.holder == holder
            && self.page.perm_version() == self.grant.perm_version
            && self.page.flags() & (REMOVED | DAMAGED) == 0
    }
}

/// The grants of a client, by queue.
pub(crate) type MsgGrants = Grants<i32, Held>;

pub(crate) fn now() -> Time {
    Time(uipc_sys::proc::now_seconds())
}

impl Client {
    /// The current grant of queue `id`, asking the daemon for one if there
    /// is none (or a stale one); `None` if the daemon must serve the call.
    fn msg_held(&self, id: i32) -> Option<Arc<Held>> {
        if id < 0 {
            return None;
        }
        let holder = self.grant_key();
        self.msg.get(id, holder, || self.ask_msg_grant(id, holder))
    }

    fn ask_msg_grant(&self, id: i32, holder: Key) -> Option<Arc<Held>> {
        let (resp, fd) = self.call_with_fd(&Request::MsgGrant { id }).ok()?;
        let Response::MsgGrant { receive, perm_version } = resp else { return None };
        let page = MsgQueuePage::open(std::os::fd::AsFd::as_fd(&fd?), true).ok()?;
        Some(Arc::new(Held { page, grant: MsgGrant { send: true, receive, perm_version }, holder }))
    }

    /// `msgsnd(id, {mtype, text}, text.len(), flags)` in this process, if
    /// it can be decided here: `None` sends the call to the daemon.
    pub fn msgsnd_fast(&self, id: i32, mtype: i64, text: &[u8], flags: i32) -> Option<Result<(), Errno>> {
        let held = self.msg_held(id)?;
        held.page.msgsnd(&held.grant, id, mtype, text, flags, Pid(held.holder.pid), now())
    }

    /// A `msgsnd` or `msgrcv` that would sleep first watches the queue's
    /// page for up to [`SPIN`](crate::grants::SPIN) (yielding the CPU): a partner running on
    /// another CPU usually answers sooner than a round trip to the daemon
    /// takes. The caller is not yet a sleeper while it watches (as if its
    /// call came that much later); then it goes to the daemon and sleeps
    /// there as always. `op` is the fast attempt.
    pub(crate) fn msg_wait<T>(&self, id: i32, mut op: impl FnMut(&Self, &Held) -> Option<T>) -> Option<T> {
        crate::grants::watch(|| self.msg_held(id), |h| h.page.version(), |h| h.page.flags(), |h| op(self, h))
    }

    /// `msgsnd` that may sleep: [`msgsnd_fast`](Self::msgsnd_fast), then
    /// the wait of [`msg_wait`](Self::msg_wait) while the queue is full.
    pub fn msgsnd_wait(&self, id: i32, mtype: i64, text: &[u8], flags: i32) -> Option<Result<(), Errno>> {
        self.msg_wait(id, |_, held| held.page.msgsnd(&held.grant, id, mtype, text, flags, Pid(held.holder.pid), now()))
    }

    /// `msgrcv` that may sleep: [`msgrcv_fast`](Self::msgrcv_fast), then
    /// the wait of [`msg_wait`](Self::msg_wait) while nothing matches.
    pub fn msgrcv_wait(&self, id: i32, msgsz: i64, msgtyp: i64, flags: i32) -> Option<Result<Message, Errno>> {
        self.msgrcv_vec(id, msgsz, msgtyp, flags, true)
    }

    /// `msgrcv(id, buf, msgsz, msgtyp, flags)` in this process, if it can
    /// be decided here: `None` sends the call to the daemon.
    pub fn msgrcv_fast(&self, id: i32, msgsz: i64, msgtyp: i64, flags: i32) -> Option<Result<Message, Errno>> {
        self.msgrcv_vec(id, msgsz, msgtyp, flags, false)
    }

    fn msgrcv_vec(&self, id: i32, msgsz: i64, msgtyp: i64, flags: i32, wait: bool) -> Option<Result<Message, Errno>> {
        // No message on a page is longer than its queue's qbytes.
        let cap = u64::try_from(msgsz).ok()?.min(PAGE_QBYTES_MAX);
        let mut data = vec![0; usize::try_from(cap).ok()?];
        let r = self.msgrcv_into(id, msgsz, msgtyp, flags, &mut data, wait)?;
        Some(r.map(|(mtype, n)| {
            data.truncate(n);
            Message { mtype, data }
        }))
    }

    /// `msgrcv(id, buf, msgsz, msgtyp, flags)` in this process into `out`
    /// (the caller's text buffer; a message longer than `out` goes to the
    /// daemon), watching the page first if `wait` and the call may sleep:
    /// `mtype` and the bytes received, or `None` for the daemon.
    pub fn msgrcv_into(
        &self,
        id: i32,
        msgsz: i64,
        msgtyp: i64,
        flags: i32,
        out: &mut [u8],
        wait: bool,
    ) -> Option<Result<(i64, usize), Errno>> {
        if msgsz < 0 {
            return None;
        }
        let mut once =
            |held: &Held| held.page.msgrcv(&held.grant, id, msgsz, msgtyp, flags, out, Pid(held.holder.pid), now());
        if !wait || flags & (uipc_abi::MSG_COPY | uipc_abi::IPC_NOWAIT) != 0 {
            let held = self.msg_held(id)?;
            return once(&held);
        }
        self.msg_wait(id, |_, held| once(held))
    }
}
