//! POSIX message queues without a round trip (`docs/architecture.md`,
//! "The data plane"): a queue's state page, granted by the daemon to a
//! process holding a description of the queue opened for writing, lets
//! it run the `mq_timedsend`s and `mq_timedreceive`s that do not sleep in
//! its own address space, through any of its descriptions of the queue
//! (each grant carries its description's access mode: `EBADF` as the
//! kernel decides it at `mq_open`).
//!
//! The readiness level the queue's descriptors show (their pipe) moves
//! with the queue: a fast call that changes it moves it through the
//! caller's own descriptor under the page's lock (`uipc_sys::mqfd::
//! set_level`), so the page's level word and the pipe agree whenever the
//! lock is free.
//!
//! `O_NONBLOCK` is the description's and may change under the caller
//! (another process's `mq_setattr` or `fcntl`): it matters only to a call
//! that would sleep, so the fast path first runs as if the description
//! blocked, and reads the flag (`fcntl(F_GETFL)`, one system call) only
//! when the answer was to sleep.
//!
//! A grant is used only while it is current (`grants`): same process,
//! connection generation and credentials, the page neither removed nor
//! damaged. Anything else — no grant, a call that would sleep, sleepers
//! parked on the queue, a registration to fire — goes to the daemon.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use uipc_abi::Errno;
use uipc_core::posix::mq_page::{LevelMove, PAGE_BODY_MAX};
use uipc_core::posix::mqueue::Deadline;
use uipc_proto::{Request, Response};
use uipc_sys::mq_page::{MqGrant, MqQueuePage};
use uipc_sys::mqfd;
use uipc_sys::state_page::{DAMAGED, REMOVED};

use crate::grants::{Grant, Grants};
use crate::msg_fast::now;
use crate::sem_fast::Key;
use crate::{Client, MqHandle};

#[derive(Debug)]
pub(crate) struct Held {
    page: MqQueuePage,
    grant: MqGrant,
    holder: Key,
    /// This process's own description of the queue's pipe, with
    /// `O_NONBLOCK`, through which its fast calls move the level: a move
    /// from a wrong level (a mover killed between its change and its move)
    /// fails instead of waiting, and is redone from where the pipe is.
    mover: OwnedFd,
}

impl Grant for Held {
    fn current(&self, holder: Key) -> bool {
        self.holder == holder
            && self.page.perm_version() == self.grant.perm_version
            && self.page.flags() & (REMOVED | DAMAGED) == 0
    }
}

/// The grants of a client, by description.
pub(crate) type MqGrants = Grants<u64, Held>;

fn deadline(d: Option<(i64, i64)>) -> Option<Deadline> {
    d.map(|(sec, nsec)| Deadline { sec, nsec })
}

/// Moves the queue's readiness through `mover` (under the page's lock).
/// A move that fails leaves the pipe where it was; the next move, or the
/// daemon's next event on the queue, finds it with `poll`.
fn mover(mover: BorrowedFd<'_>) -> impl Fn(LevelMove) + '_ {
    move |mv: LevelMove| {
        let _ = mqfd::move_level(mover, mv.from.into(), mv.to.into());
    }
}

impl Client {
    /// The current grant of description `handle`, asking the daemon for
    /// one if there is none (or a stale one); `None` if the daemon must
    /// serve the call.
    fn mq_held(&self, handle: MqHandle, fd: BorrowedFd<'_>) -> Option<Arc<Held>> {
        let holder = self.grant_key();
        self.mq_fast.get(handle.0, holder, || self.ask_mq_grant(handle, fd, holder))
    }

    fn ask_mq_grant(&self, handle: MqHandle, fd: BorrowedFd<'_>, holder: Key) -> Option<Arc<Held>> {
        let mover = mqfd::open_description(fd, true, false).ok()?;
        let (resp, page) = self.call_with_fd(&Request::MqGrant { handle: handle.0 }).ok()?;
        let Response::MqGrant { read, write, perm_version } = resp else { return None };
        let page = MqQueuePage::open(page?.as_fd()).ok()?;
        Some(Arc::new(Held { page, grant: MqGrant { read, write, perm_version }, holder, mover }))
    }

    /// Forgets the grant of description `handle` (its last descriptor in
    /// this process is closed).
    pub(crate) fn mq_forget(&self, handle: MqHandle) {
        self.mq_fast.forget(handle.0);
    }

    /// Runs `op(nonblock)` as if the description blocked; when that is the
    /// daemon's (it would sleep, among other reasons) and the description
    /// has `O_NONBLOCK`, runs it again with the flag (`EAGAIN` here).
    fn mq_nonblock<T>(fd: BorrowedFd<'_>, mut op: impl FnMut(bool) -> Option<T>) -> Option<T> {
        op(false).or_else(|| if mqfd::nonblocking(fd).ok()? { op(true) } else { None })
    }

    /// `mq_timedsend(fd, data, prio, deadline)` through description
    /// `handle` (whose descriptor is `fd`) in this process, if it can be
    /// decided here: `None` sends the call to the daemon.
    pub fn mq_send_fast(
        &self,
        handle: MqHandle,
        fd: BorrowedFd<'_>,
        data: &[u8],
        prio: u32,
        deadline_at: Option<(i64, i64)>,
    ) -> Option<Result<(), Errno>> {
        let held = self.mq_held(handle, fd)?;
        Self::mq_send_on(&held, fd, data, prio, deadline_at)
    }

    fn mq_send_on(
        held: &Held,
        fd: BorrowedFd<'_>,
        data: &[u8],
        prio: u32,
        deadline_at: Option<(i64, i64)>,
    ) -> Option<Result<(), Errno>> {
        let mv = mover(held.mover.as_fd());
        Self::mq_nonblock(fd, |nb| held.page.send(&held.grant, nb, now(), prio, data, deadline(deadline_at), Some(&mv)))
    }

    /// [`mq_send_fast`](Self::mq_send_fast), then, while the queue is
    /// full and the description blocks, the watch of `grants::watch`
    /// before the call goes to the daemon to sleep.
    pub fn mq_send_wait(
        &self,
        handle: MqHandle,
        fd: BorrowedFd<'_>,
        data: &[u8],
        prio: u32,
        deadline_at: Option<(i64, i64)>,
    ) -> Option<Result<(), Errno>> {
        crate::grants::watch(
            || self.mq_held(handle, fd),
            |h| h.page.version(),
            |h| h.page.flags(),
            |h| Self::mq_send_on(h, fd, data, prio, deadline_at),
        )
    }

    /// `mq_timedreceive(fd, buf, len, prio, deadline)` through description
    /// `handle` in this process, if it can be decided here: the message's
    /// priority and length (its text at the start of `scratch`, which the
    /// call sizes), or `None` for the daemon. `len` is the caller's buffer
    /// length; `wait` watches an empty queue first, as
    /// [`mq_send_wait`](Self::mq_send_wait).
    pub fn mq_receive_fast(
        &self,
        handle: MqHandle,
        fd: BorrowedFd<'_>,
        len: u64,
        deadline_at: Option<(i64, i64)>,
        scratch: &mut Vec<u8>,
        wait: bool,
    ) -> Option<Result<(u32, usize), Errno>> {
        let mut once = |held: &Held| {
            // The text fits in msgsize bytes; a shorter buffer is the
            // core's EMSGSIZE, decided on its own length.
            let msgsize = held.page.msgsize().min(PAGE_BODY_MAX);
            let n = usize::try_from(len.min(msgsize)).ok()?;
            if scratch.len() < n {
                scratch.resize(n, 0);
            }
            let out = &mut scratch[..n];
            let mv = mover(held.mover.as_fd());
            Self::mq_nonblock(fd, |nb| held.page.receive(&held.grant, nb, now(), out, deadline(deadline_at), Some(&mv)))
        };
        if !wait {
            let held = self.mq_held(handle, fd)?;
            return once(&held);
        }
        crate::grants::watch(|| self.mq_held(handle, fd), |h| h.page.version(), |h| h.page.flags(), once)
    }
}
