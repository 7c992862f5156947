//! A state page whose body is one of uipc-core's page bodies (a System V
//! message queue's, `uipc_core::sysv::msg_page`; a POSIX message queue's,
//! `uipc_core::posix::mq_page`): the body as uipc-core reads and writes it
//! ([`Body`], bulk copies under the page's lock), the lock with the body's
//! own pre-image rolled back after a holder's death, the daemon's flags and
//! the fast path's entry (no flag that sends everything to the daemon, the
//! grant's permission version current). One definition for every body
//! kind (`docs/architecture.md`, "The data plane").

use std::ops::Deref;
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use uipc_abi::Errno;
use uipc_core::sysv::msg_page::PageBytes;

use crate::state_page::{page_len, Guard, Kind, Locked, StatePage, BODY, DAMAGED, REMOVED, SLEEPERS};

/// How long a caller waits for the lock before it asks the daemon.
const CALLER_BOUND: Duration = Duration::from_secs(1);

/// The body of a page as uipc-core reads and writes it: bulk copies under
/// the page's lock (another process may write the same bytes regardless;
/// every value read is validated by the core).
#[derive(Debug)]
pub struct Body<'a> {
    page: &'a StatePage,
    len: usize,
}

impl<'a> Body<'a> {
    fn new(page: &'a StatePage) -> Body<'a> {
        Body { page, len: page.body_len() }
    }

    fn span(&self, off: usize, len: usize) -> Result<usize, Errno> {
        match off.checked_add(len) {
            Some(end) if end <= self.len => Ok(BODY + off),
            _ => Err(Errno::EUCLEAN),
        }
    }
}

impl PageBytes for Body<'_> {
    fn size(&self) -> usize {
        self.len
    }

    fn read(&self, off: usize, out: &mut [u8]) -> Result<(), Errno> {
        let start = self.span(off, out.len())?;
        if self.page.copy_out(start, out) {
            Ok(())
        } else {
            Err(Errno::EUCLEAN)
        }
    }

    fn write(&mut self, off: usize, data: &[u8]) -> Result<(), Errno> {
        let start = self.span(off, data.len())?;
        if self.page.copy_in(start, data) {
            Ok(())
        } else {
            Err(Errno::EUCLEAN)
        }
    }
}

/// Rolls back a body's commit in flight after its writer's death
/// (`uipc_core::…::recover`).
pub type Recover = fn(&mut Body<'_>) -> Result<bool, Errno>;

/// A page with a core body, mapped.
#[derive(Debug)]
pub struct BodyPage {
    page: Arc<StatePage>,
    recover: Recover,
}

impl BodyPage {
    /// The length of a page whose body has `body_len` bytes.
    pub fn len_for(body_len: u64) -> u64 {
        page_len(usize::try_from(body_len).unwrap_or(usize::MAX), 0)
    }

    /// The daemon's side: lays out a page of `kind` in the zero-filled file
    /// `fd` of [`len_for`](Self::len_for)`(body_len)` bytes; the body is
    /// formatted by the model through [`with_body`](Self::with_body).
    ///
    /// # Errors
    /// `mmap`'s.
    pub fn create(fd: BorrowedFd<'_>, body_len: u64, kind: Kind, recover: Recover) -> Result<BodyPage, Errno> {
        let page = StatePage::create(fd, BodyPage::len_for(body_len), kind, 0)?;
        Ok(BodyPage { page: Arc::new(page), recover })
    }

    /// A client's side: maps a granted page.
    ///
    /// # Errors
    /// `EPROTO` for a file that is not a page of this layout and `kind`.
    pub fn open(fd: BorrowedFd<'_>, kind: Kind, writable: bool, recover: Recover) -> Result<BodyPage, Errno> {
        Ok(BodyPage { page: Arc::new(StatePage::open(fd, kind, writable)?), recover })
    }

    /// The flags ([`REMOVED`], [`SLEEPERS`], [`DAMAGED`]).
    pub fn flags(&self) -> u32 {
        self.page.flags()
    }

    /// The permission version.
    pub fn perm_version(&self) -> u32 {
        self.page.perm_version()
    }

    /// The body's `u64` at `off`, read without the lock (a word a caller
    /// about to sleep watches).
    pub fn watch(&self, off: usize) -> u64 {
        self.page.u64_at(BODY + off).load(Ordering::Acquire)
    }

    /// Takes the lock (waiting at most `bound`); after a holder's death,
    /// its commit in flight is rolled back (the header's journal and the
    /// body's pre-image).
    ///
    /// # Errors
    /// As [`StatePage::lock`].
    pub fn lock(&self, bound: Duration) -> Result<(Guard<Arc<StatePage>>, Locked), Errno> {
        let (guard, how) = StatePage::lock_shared(&self.page, Some(bound))?;
        if how == Locked::Repaired {
            (self.recover)(&mut Body::new(&self.page))?;
        }
        Ok((guard, how))
    }

    /// Runs `f` on the body, under the lock `guard` holds.
    pub fn with_body<P: Deref<Target = StatePage>, T>(
        &self,
        _guard: &Guard<P>,
        f: impl FnOnce(&mut Body<'_>) -> T,
    ) -> T {
        f(&mut Body::new(&self.page))
    }

    /// The daemon's side, under the lock: whether callers sleep on the
    /// object, and the permission version.
    pub fn set_state<P: Deref<Target = StatePage>>(&self, guard: &Guard<P>, sleepers: bool, perm_version: u32) {
        guard.set_perm_version(perm_version);
        guard.set_flags(if sleepers { SLEEPERS } else { 0 }, if sleepers { 0 } else { SLEEPERS });
    }

    /// The daemon's side: the object is gone (or moved to a new page):
    /// holders go to the daemon from now on.
    pub fn mark_removed<P: Deref<Target = StatePage>>(&self, guard: &Guard<P>) {
        guard.set_flags(REMOVED, 0);
    }

    /// Marks the object damaged.
    pub fn mark_damaged(&self) {
        self.page.mark_damaged();
    }

    fn usable(&self, perm_version: u32) -> bool {
        self.page.writable()
            && self.page.flags() & (REMOVED | DAMAGED | SLEEPERS) == 0
            && self.page.perm_version() == perm_version
    }

    /// A fast path: under the lock, with no flag that sends everything to
    /// the daemon and the grant's `perm_version` current, runs `f` on the
    /// body; `None` when the daemon must decide.
    pub fn fast<T>(&self, perm_version: u32, f: impl FnOnce(&mut Body<'_>) -> T) -> Option<T> {
        if !self.usable(perm_version) {
            return None;
        }
        let (guard, how) = self.page.lock(Some(CALLER_BOUND)).ok()?;
        if how == Locked::Repaired {
            (self.recover)(&mut Body::new(&self.page)).ok()?;
        }
        if !self.usable(perm_version) {
            return None;
        }
        let r = f(&mut Body::new(&self.page));
        drop(guard);
        Some(r)
    }
}

impl crate::state_page::Retire for BodyPage {
    fn lock_page(&self, bound: Duration) -> Result<(Guard<Arc<StatePage>>, Locked), Errno> {
        self.lock(bound)
    }
}
