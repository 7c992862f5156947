//! A System V message queue's state page (`docs/architecture.md`, "The
//! data plane"): uipc-core's queue body ([`uipc_core::sysv::msg_page`]:
//! counters, index and text, committed under its own pre-image) on a
//! [`StatePage`], whose robust lock serialises the callers' fast paths
//! and the daemon's adopt/publish.
//!
//! A process granted write permission maps the page read-write and runs
//! `msgsnd` in its own address space, and `msgrcv` too if it also has read
//! permission — through uipc-core's [`msgsnd_fast`]/[`msgrcv_fast`], the
//! one definition of the semantics. A process with read permission only
//! gets no grant (a receive changes the queue, and a read-only process
//! must not be able to write the page): the daemon serves it.

use std::ops::Deref;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use uipc_abi::Errno;
use uipc_core::cred::Pid;
use uipc_core::sysv::msg::{msgrcv_fast, msgsnd_fast, Fast, MsgText};
use uipc_core::sysv::msg_page::{self as body, MsgGeometry};
use uipc_core::time::Time;

pub use crate::body_page::Body;
use crate::body_page::BodyPage;
use crate::state_page::{Guard, Kind, Locked, StatePage};

/// What a grant of a queue's page lets its holder do without the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgGrant {
    /// Write permission: `msgsnd` (the page is mapped read-write).
    pub send: bool,
    /// Read permission too: `msgrcv`.
    pub receive: bool,
    /// The permission version the grant was made under.
    pub perm_version: u32,
}

fn recover(b: &mut Body<'_>) -> Result<bool, Errno> {
    body::recover(b)
}

/// A queue's page, mapped.
#[derive(Debug)]
pub struct MsgQueuePage {
    page: BodyPage,
}

impl MsgQueuePage {
    /// The length of a page of geometry `geo`.
    pub fn len_for(geo: MsgGeometry) -> u64 {
        BodyPage::len_for(geo.body_len())
    }

    /// The daemon's side: lays out a page in the zero-filled file `fd` of
    /// [`len_for`](Self::len_for)`(geo)` bytes; the body is formatted by
    /// the model ([`uipc_core::IpcNamespace::msg_page_init`] through
    /// [`with_body`](Self::with_body)).
    ///
    /// # Errors
    /// `mmap`'s.
    pub fn create(fd: BorrowedFd<'_>, geo: MsgGeometry) -> Result<MsgQueuePage, Errno> {
        Ok(MsgQueuePage { page: BodyPage::create(fd, geo.body_len(), Kind::MsgQueue, recover)? })
    }

    /// A client's side: maps a granted page.
    ///
    /// # Errors
    /// `EPROTO` for a file that is not a queue's page of this layout.
    pub fn open(fd: BorrowedFd<'_>, writable: bool) -> Result<MsgQueuePage, Errno> {
        Ok(MsgQueuePage { page: BodyPage::open(fd, Kind::MsgQueue, writable, recover)? })
    }

    /// The flags ([`REMOVED`](crate::state_page::REMOVED),
    /// [`SLEEPERS`](crate::state_page::SLEEPERS),
    /// [`DAMAGED`](crate::state_page::DAMAGED)).
    pub fn flags(&self) -> u32 {
        self.page.flags()
    }

    /// The permission version.
    pub fn perm_version(&self) -> u32 {
        self.page.perm_version()
    }

    /// The queue's version, read without the lock: it moves with every
    /// change (a caller about to sleep watches it for a while first).
    pub fn version(&self) -> u64 {
        self.page.watch(body::OFF_CTRL_VERSION)
    }

    /// Takes the lock (waiting at most `bound`); after a holder's death,
    /// its commit in flight is rolled back (the header's journal and the
    /// body's pre-image).
    ///
    /// # Errors
    /// As [`StatePage::lock`].
    pub fn lock(&self, bound: Duration) -> Result<(Guard<Arc<StatePage>>, Locked), Errno> {
        self.page.lock(bound)
    }

    /// Runs `f` on the body, under the lock `guard` holds.
    pub fn with_body<P: Deref<Target = StatePage>, T>(
        &self,
        guard: &Guard<P>,
        f: impl FnOnce(&mut Body<'_>) -> T,
    ) -> T {
        self.page.with_body(guard, f)
    }

    /// The daemon's side, under the lock: whether callers sleep on the
    /// queue, and the permission version.
    pub fn set_state<P: Deref<Target = StatePage>>(&self, guard: &Guard<P>, sleepers: bool, perm_version: u32) {
        self.page.set_state(guard, sleepers, perm_version);
    }

    /// The daemon's side: the queue is gone (or moved to a new page):
    /// holders go to the daemon from now on.
    pub fn mark_removed<P: Deref<Target = StatePage>>(&self, guard: &Guard<P>) {
        self.page.mark_removed(guard);
    }

    /// Marks the queue damaged.
    pub fn mark_damaged(&self) {
        self.page.mark_damaged();
    }

    /// `msgsnd(id, {mtype, text}, text.len(), flags)` in the caller, for
    /// the holder of `grant` (process `pid`, at time `now`): `None` when
    /// the daemon must decide (it would sleep, sleepers wait on the queue,
    /// the queue was removed or damaged, the grant is stale, the arguments
    /// are for the daemon to judge); otherwise the result, exactly as the
    /// daemon's model would give it.
    #[allow(clippy::too_many_arguments)]
    pub fn msgsnd(
        &self,
        grant: &MsgGrant,
        id: i32,
        mtype: i64,
        text: &[u8],
        flags: i32,
        pid: Pid,
        now: Time,
    ) -> Option<Result<(), Errno>> {
        if !grant.send {
            return None;
        }
        let msgsz = i64::try_from(text.len()).ok()?;
        let r = self
            .page
            .fast(grant.perm_version, |b| msgsnd_fast(b, pid, now, id, MsgText::Read(mtype, text), msgsz, flags))?;
        match r {
            Ok(Fast::Done(())) => Some(Ok(())),
            Ok(Fast::Host) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// `msgrcv(id, buf, msgsz, msgtyp, flags)` in the caller (see
    /// [`msgsnd`](Self::msgsnd)): `mtype` and the bytes written to `out`
    /// (a message longer than `out` goes to the daemon).
    #[allow(clippy::too_many_arguments)]
    pub fn msgrcv(
        &self,
        grant: &MsgGrant,
        id: i32,
        msgsz: i64,
        msgtyp: i64,
        flags: i32,
        out: &mut [u8],
        pid: Pid,
        now: Time,
    ) -> Option<Result<(i64, usize), Errno>> {
        if !grant.receive {
            return None;
        }
        let r = self.page.fast(grant.perm_version, |b| msgrcv_fast(b, pid, now, id, msgsz, msgtyp, flags, out))?;
        match r {
            Ok(Fast::Done(v)) => Some(Ok(v)),
            Ok(Fast::Host) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl crate::state_page::Retire for MsgQueuePage {
    fn lock_page(&self, bound: Duration) -> Result<(Guard<Arc<StatePage>>, Locked), Errno> {
        self.lock(bound)
    }
}
