//! A POSIX message queue's state page (`docs/architecture.md`, "The data
//! plane"): uipc-core's queue body ([`uipc_core::posix::mq_page`]: control
//! block, index in delivery order, free slots and text slots, committed
//! under its own pre-image) on a [`BodyPage`], whose robust lock
//! serialises the callers' fast paths and the daemon's adopt/publish.
//!
//! The page is the queue's state, so a grant maps it read-write; what the
//! holder may do is its description's access mode (`FMODE_READ`,
//! `FMODE_WRITE`), checked on every call by the core's
//! [`mq_send_fast`]/[`mq_receive_fast`], the one definition of the
//! semantics.

use std::ops::Deref;
use std::os::fd::BorrowedFd;

use uipc_abi::Errno;
use uipc_core::posix::mq_page::{self as body, mq_receive_fast, mq_send_fast, LevelMove, MqAccess, MqGeometry, MqPage};
use uipc_core::posix::mqueue::Deadline;
use uipc_core::sysv::msg::Fast;
use uipc_core::time::Time;

use crate::body_page::{Body, BodyPage};
use crate::state_page::Kind;

/// What a grant of a queue's page lets its holder do without the daemon:
/// its description's access mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqGrant {
    /// `FMODE_READ`: `mq_receive`.
    pub read: bool,
    /// `FMODE_WRITE`: `mq_send`.
    pub write: bool,
    /// The permission version the grant was made under.
    pub perm_version: u32,
}

fn recover(b: &mut Body<'_>) -> Result<bool, Errno> {
    body::recover(b)
}

/// A queue's page, mapped: a [`BodyPage`] (lock, flags, the daemon's
/// side) with the queue's calls.
#[derive(Debug)]
pub struct MqQueuePage {
    page: BodyPage,
}

impl Deref for MqQueuePage {
    type Target = BodyPage;
    fn deref(&self) -> &BodyPage {
        &self.page
    }
}

impl MqQueuePage {
    /// The length of a page of geometry `geo`.
    pub fn len_for(geo: MqGeometry) -> u64 {
        BodyPage::len_for(geo.body_len())
    }

    /// The daemon's side: lays out a page in the zero-filled file `fd` of
    /// [`len_for`](Self::len_for)`(geo)` bytes; the body is formatted by
    /// the model ([`uipc_core::IpcNamespace::mq_page_init`] through
    /// [`BodyPage::with_body`]).
    ///
    /// # Errors
    /// `mmap`'s.
    pub fn create(fd: BorrowedFd<'_>, geo: MqGeometry) -> Result<MqQueuePage, Errno> {
        Ok(MqQueuePage { page: BodyPage::create(fd, geo.body_len(), Kind::MqQueue, recover)? })
    }

    /// A client's side: maps a granted page (read-write: the page is the
    /// queue's state).
    ///
    /// # Errors
    /// `EPROTO` for a file that is not a queue's page of this layout.
    pub fn open(fd: BorrowedFd<'_>) -> Result<MqQueuePage, Errno> {
        Ok(MqQueuePage { page: BodyPage::open(fd, Kind::MqQueue, true, recover)? })
    }

    /// The queue's version, read without the lock: it moves with every
    /// change (a caller about to sleep watches it for a while first).
    pub fn version(&self) -> u64 {
        self.page.watch(body::OFF_CTRL_VERSION)
    }

    /// `mq_msgsize` as the page was made (read without the lock: it never
    /// changes; a scribbled value only misleads its own process).
    pub fn msgsize(&self) -> u64 {
        self.page.watch(body::OFF_MSGSIZE)
    }

    /// `mq_curmsgs`, read under the lock (`None`: ask the daemon).
    pub fn curmsgs(&self, grant: &MqGrant) -> Option<u64> {
        self.page.fast(grant.perm_version, |b| MqPage::open(b).ok().map(|p| p.ctrl().curmsgs))?
    }

    /// `mq_timedsend` in the caller, for the holder of `grant` whose
    /// description has `O_NONBLOCK` as `nonblock`: `None` when the daemon
    /// must decide (it would sleep, sleepers wait on the queue, a
    /// registration must fire, the level would move and `move_level` is
    /// `None`, the queue was removed or damaged, the grant is stale);
    /// otherwise the result, exactly as the daemon's model would give it.
    /// `move_level`, when given, moves the queue's descriptors' readiness,
    /// under the page's lock, when the send changes it.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &self,
        grant: &MqGrant,
        nonblock: bool,
        now: Time,
        prio: u32,
        data: &[u8],
        deadline: Option<Deadline>,
        move_level: Option<&dyn Fn(LevelMove)>,
    ) -> Option<Result<(), Errno>> {
        let access = MqAccess { read: grant.read, write: grant.write, nonblock, move_level: move_level.is_some() };
        let r = self.page.fast(grant.perm_version, |b| {
            let r = mq_send_fast(b, access, now, prio, data, deadline);
            if let (Ok(Fast::Done(mv)), Some(f)) = (r, move_level) {
                if mv.from != mv.to {
                    f(mv);
                }
            }
            r
        })?;
        match r {
            Ok(Fast::Done(_)) => Some(Ok(())),
            Ok(Fast::Host) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// `mq_timedreceive` in the caller (see [`send`](Self::send)): the
    /// message's text goes to `out` (the caller's buffer); returns its
    /// priority and length.
    #[allow(clippy::too_many_arguments)]
    pub fn receive(
        &self,
        grant: &MqGrant,
        nonblock: bool,
        now: Time,
        out: &mut [u8],
        deadline: Option<Deadline>,
        move_level: Option<&dyn Fn(LevelMove)>,
    ) -> Option<Result<(u32, usize), Errno>> {
        let access = MqAccess { read: grant.read, write: grant.write, nonblock, move_level: move_level.is_some() };
        let r = self.page.fast(grant.perm_version, |b| {
            let r = mq_receive_fast(b, access, now, out, deadline);
            if let (Ok(Fast::Done((_, _, mv))), Some(f)) = (r, move_level) {
                if mv.from != mv.to {
                    f(mv);
                }
            }
            r
        })?;
        match r {
            Ok(Fast::Done((prio, n, _))) => Some(Ok((prio, n))),
            Ok(Fast::Host) => None,
            Err(e) => Some(Err(e)),
        }
    }
}
