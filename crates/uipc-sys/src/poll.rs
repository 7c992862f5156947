//! Readiness of many descriptors at once: a small `epoll(7)` wrapper for
//! the daemon's event loop.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags, EventVec};
use uipc_abi::Errno;

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// One readiness report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The token the descriptor was registered with.
    pub token: u64,
    /// Data (or a connection, or an exit) can be read.
    pub readable: bool,
    /// Data can be written.
    pub writable: bool,
    /// The peer hung up or the descriptor is in error.
    pub hangup: bool,
}

/// An epoll instance (`epoll_create1(EPOLL_CLOEXEC)`).
pub struct Poller {
    epfd: OwnedFd,
    events: EventVec,
}

fn flags(read: bool, write: bool) -> EventFlags {
    // EPOLLHUP and EPOLLERR are always reported; a half-close (RDHUP) only
    // matters to a reader.
    let mut f = EventFlags::empty();
    if read {
        f |= EventFlags::IN | EventFlags::RDHUP;
    }
    if write {
        f |= EventFlags::OUT;
    }
    f
}

impl Poller {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    ///
    /// # Errors
    /// `EMFILE`, `ENFILE`, `ENOMEM`.
    pub fn new() -> Result<Poller, Errno> {
        let epfd = epoll::create(CreateFlags::CLOEXEC).map_err(errno)?;
        Ok(Poller { epfd, events: EventVec::with_capacity(256) })
    }

    /// `epoll_ctl(EPOLL_CTL_ADD)`: watch `fd` for reading (and writing if `write`).
    ///
    /// # Errors
    /// `EEXIST` if already watched, `ENOMEM`, `ENOSPC`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64, write: bool) -> Result<(), Errno> {
        epoll::add(&self.epfd, fd, EventData::new_u64(token), flags(true, write)).map_err(errno)
    }

    /// `epoll_ctl(EPOLL_CTL_MOD)`: change whether readability and
    /// writability are watched.
    ///
    /// # Errors
    /// `ENOENT` if not watched.
    pub fn modify(&self, fd: BorrowedFd<'_>, token: u64, read: bool, write: bool) -> Result<(), Errno> {
        epoll::modify(&self.epfd, fd, EventData::new_u64(token), flags(read, write)).map_err(errno)
    }

    /// `epoll_ctl(EPOLL_CTL_DEL)`.
    ///
    /// # Errors
    /// `ENOENT` if not watched.
    pub fn delete(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        epoll::delete(&self.epfd, fd).map_err(errno)
    }

    /// `epoll_wait()`: the ready descriptors, waiting at most `timeout_ms`
    /// (-1 = forever). An interrupted wait returns no events.
    ///
    /// # Errors
    /// `EBADF`, `EINVAL` (programming errors).
    pub fn wait(&mut self, timeout_ms: i32) -> Result<Vec<Event>, Errno> {
        match epoll::wait(&self.epfd, &mut self.events, timeout_ms) {
            Ok(()) => {}
            Err(rustix::io::Errno::INTR) => return Ok(Vec::new()),
            Err(e) => return Err(errno(e)),
        }
        Ok(self
            .events
            .iter()
            .map(|e| {
                // Copied out: the kernel's struct epoll_event is packed.
                let (data, fl) = (e.data, e.flags);
                Event {
                    token: data.u64(),
                    readable: fl.contains(EventFlags::IN),
                    writable: fl.contains(EventFlags::OUT),
                    hangup: fl.intersects(EventFlags::HUP | EventFlags::ERR | EventFlags::RDHUP),
                }
            })
            .collect())
    }
}

impl AsFd for Poller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epfd.as_fd()
    }
}
