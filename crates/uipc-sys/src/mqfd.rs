//! The descriptor a POSIX message queue's user holds, whose readiness for
//! `poll`/`select`/`epoll` is the queue's (SPEC MQ-FD-1), and the
//! notification signal sent with the kernel's siginfo.
//!
//! Every queue has one pipe of two page-sized slots (`F_SETPIPE_SZ`).
//! Each open description of the queue is a fresh `O_RDWR` open of that
//! pipe through `/proc/self/fd/N` ([`open_description`]): a FIFO opened
//! for reading and writing never waits for a partner (`fifo_open()`) and
//! gets a new open file description, so each description has its own
//! `O_NONBLOCK`, shared by `dup` and `fork` and shown by `F_GETFL`, while
//! all of them see the same pipe. `pipe_poll()` (fs/pipe.c) reports
//! `POLLIN` iff the pipe holds a slot and `POLLOUT` iff a slot is free, and,
//! as every description is a reader and a writer, never `POLLHUP` or
//! `POLLERR`. Three fillings therefore give the three states a queue can
//! be in:
//!
//! | queue | [`Level`] | pipe | poll |
//! |---|---|---|---|
//! | empty | `Empty` | no byte | `POLLOUT` |
//! | neither empty nor full | `Some` | one slot of 1 byte | `POLLIN \| POLLOUT` |
//! | full | `Full` | two slots of 1 byte | `POLLIN` |
//!
//! Moving a queue from one level to another ([`set_level`]) is one
//! `vmsplice` or `read` on any description of the queue,
//! by any process that holds one; whoever moves it must know the level it
//! is at (the daemon keeps it per queue), so moves of one queue are made
//! under one lock. An eventfd cannot serve: its open description is the
//! only one (an anonymous inode cannot be opened again), so a queue would
//! need one per description and a move would touch each of them.
//!
//! # References
//! - [pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html) (pipe capacity, `F_SETPIPE_SZ`)
//! - [fifo(7)](https://man7.org/linux/man-pages/man7/fifo.7.html) (`O_RDWR` opens of a FIFO)
//! - [vmsplice(2)](https://man7.org/linux/man-pages/man2/vmsplice.2.html) (`SPLICE_F_NONBLOCK`)
//! - [pidfd_send_signal(2)](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use uipc_abi::Errno;

/// The readiness level of a queue, as its pipe shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Empty: writable only.
    Empty,
    /// Holds messages and has room: readable and writable.
    Some,
    /// Full: readable only.
    Full,
}

impl Level {
    /// The level of a queue with these `(readable, writable)` states.
    pub fn of(readable: bool, writable: bool) -> Level {
        match (readable, writable) {
            (false, _) => Level::Empty,
            (true, true) => Level::Some,
            (true, false) => Level::Full,
        }
    }

    /// The slots (of one byte each) the pipe holds at this level.
    fn slots(self) -> usize {
        match self {
            Level::Empty => 0,
            Level::Some => 1,
            Level::Full => 2,
        }
    }
}

impl From<uipc_core::posix::mq_page::MqLevel> for Level {
    /// The level a queue's state page records (`MqLevel`, the same three
    /// states).
    fn from(l: uipc_core::posix::mq_page::MqLevel) -> Level {
        use uipc_core::posix::mq_page::MqLevel;
        match l {
            MqLevel::Empty => Level::Empty,
            MqLevel::Some => Level::Some,
            MqLevel::Full => Level::Full,
        }
    }
}

fn last() -> Errno {
    Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
}

/// The page size: one pipe slot.
fn page() -> usize {
    // SAFETY: sysconf takes no pointer.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// A queue's pipe: a new pipe of two slots (`F_SETPIPE_SZ` of two
/// pages) at [`Level::Empty`], as one `O_RDWR | O_NONBLOCK | O_CLOEXEC`
/// description (the pipe's own two ends are closed). Shrinking a pipe is
/// allowed whatever the caller's pipe limits (`pipe_set_size()`).
///
/// # Errors
/// `EMFILE`, `ENFILE`, `ENOMEM`; `ENOENT` without `/proc`.
pub fn queue_pipe() -> Result<OwnedFd, Errno> {
    let (read, _write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK)
        .map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    two_slots(read.as_fd())?;
    reopen(read.as_fd(), true, false)
}

/// Makes the pipe of `fd` two slots long (`F_SETPIPE_SZ` of two pages).
fn two_slots(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let two = 2 * page();
    // SAFETY: F_SETPIPE_SZ takes an integer and no pointer.
    let got = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, libc::c_int::try_from(two).unwrap_or(8192)) };
    if got < 0 {
        return Err(last());
    }
    if usize::try_from(got).ok() != Some(two) {
        return Err(Errno::ENOMEM);
    }
    Ok(())
}

/// A queue's pipe as a named FIFO at `path` (fifo(7)), for a daemon whose
/// pipes must outlive it: a restarted daemon opens the same pipe again by
/// its name ([`open_queue_fifo`]) while clients' descriptions of it live.
/// A file already at `path` is replaced. Otherwise as [`queue_pipe`].
///
/// # Errors
/// `mkfifo(3)`'s and `open(2)`'s; `ENOMEM` as [`queue_pipe`].
pub fn queue_fifo(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    make_fifo(path)?;
    open_queue_fifo(path)
}

/// `mkfifo(path, 0600)`, replacing a file already at `path`.
///
/// # Errors
/// `mkfifo(3)`'s.
fn make_fifo(path: &std::path::Path) -> Result<(), Errno> {
    let _ = std::fs::remove_file(path);
    rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0)
        .map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// The queue pipe [`queue_fifo`] made at `path`, opened again (`O_RDWR |
/// O_NONBLOCK | O_CLOEXEC`, which never blocks on a FIFO): the same pipe,
/// at the level it is at, while any description of it is open
/// (otherwise a new, empty one).
///
/// # Errors
/// `ENOENT`; `ENOTDIR`-like errors of `open(2)`; `EINVAL` if `path` is
/// not a FIFO.
pub fn open_queue_fifo(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    let fd = open_fifo(path, rustix::fs::OFlags::RDWR)?;
    two_slots(fd.as_fd())?;
    Ok(fd)
}

/// Opens the FIFO at `path` for `access`, `O_NONBLOCK | O_CLOEXEC |
/// O_NOFOLLOW`.
///
/// # Errors
/// `open(2)`'s; `EINVAL` if `path` is not a FIFO.
fn open_fifo(path: &std::path::Path, access: rustix::fs::OFlags) -> Result<OwnedFd, Errno> {
    use rustix::fs::OFlags;
    let flags = access | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOFOLLOW;
    let fd = rustix::fs::open(path, flags, rustix::fs::Mode::empty()).map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Fifo {
        return Err(Errno::EINVAL);
    }
    Ok(fd)
}

/// A new open description of the pipe `pipe` (any description of it):
/// `open("/proc/self/fd/N", O_RDWR | O_CLOEXEC [| O_NONBLOCK] [| O_APPEND])`;
/// `nonblock` and `append` become its `O_NONBLOCK` and `O_APPEND` (the
/// status flags `mq_open`'s `oflag` gives the queue's file). It never
/// blocks (fifo(7)).
///
/// # Errors
/// `EMFILE`, `ENFILE`, `ENOMEM`; `ENOENT` without `/proc`.
pub fn open_description(pipe: BorrowedFd<'_>, nonblock: bool, append: bool) -> Result<OwnedFd, Errno> {
    reopen(pipe, nonblock, append)
}

fn reopen(pipe: BorrowedFd<'_>, nonblock: bool, append: bool) -> Result<OwnedFd, Errno> {
    use rustix::fs::OFlags;
    let path = format!("/proc/self/fd/{}", pipe.as_raw_fd());
    let mut flags = OFlags::RDWR | OFlags::CLOEXEC;
    if nonblock {
        flags |= OFlags::NONBLOCK;
    }
    if append {
        flags |= OFlags::APPEND;
    }
    rustix::fs::open(path.as_str(), flags, rustix::fs::Mode::empty()).map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// The level the pipe of description `fd` shows now (`poll`, no wait).
///
/// # Errors
/// `EBADF`.
pub fn level(fd: BorrowedFd<'_>) -> Result<Level, Errno> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN | libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd, no wait.
    if unsafe { libc::poll(&mut pfd, 1, 0) } < 0 {
        return Err(last());
    }
    if pfd.revents & libc::POLLNVAL != 0 {
        return Err(Errno::EBADF);
    }
    Ok(Level::of(pfd.revents & libc::POLLIN != 0, pfd.revents & libc::POLLOUT != 0))
}

/// The bytes `vmsplice` hands to a pipe: each becomes a slot of its own.
static BYTES: [u8; 2] = [0; 2];

/// Moves the queue whose pipe `fd` is a description of from level `from`
/// to level `to`, in one system call. `from` must be the level the pipe
/// is at: the caller holds the queue's lock, so no one else moves it
/// meanwhile.
///
/// A rise splices one byte per slot to fill with `vmsplice(2)` and
/// `SPLICE_F_NONBLOCK`: each byte becomes a pipe buffer of its own
/// (`iter_to_pipe()` never merges), and it never blocks whatever the
/// description's `O_NONBLOCK` (`wait_for_space()` in fs/splice.c). A fall
/// `read`s one byte per slot to free, from the oldest slot on
/// (`pipe_read()`): the pipe holds them, so the read does not wait.
/// (`vmsplice` cannot read here: on a description open for writing it
/// always writes; `preadv2(RWF_NOWAIT)` is `EOPNOTSUPP` on a FIFO's
/// description, which lacks `FMODE_NOWAIT`.)
///
/// # Errors
/// `EAGAIN` (also for a short count) if the pipe was not at `from`:
/// [`level`] tells where it is; a fall from a wrong level would wait on a
/// description without `O_NONBLOCK` (the daemon moves levels through its
/// own, which has it). `EBADF`.
pub fn set_level(fd: BorrowedFd<'_>, from: Level, to: Level) -> Result<(), Errno> {
    let (a, b) = (from.slots(), to.slots());
    let r = if b > a {
        let iov = [0, 1].map(|i| libc::iovec { iov_base: BYTES[i..].as_ptr().cast_mut().cast(), iov_len: 1 });
        // SAFETY: `iov[..b - a]` point at one byte of `BYTES` each, only
        // read (the pipe may keep a reference to their page, whose bytes
        // never change).
        unsafe { libc::vmsplice(fd.as_raw_fd(), iov.as_ptr(), b - a, libc::SPLICE_F_NONBLOCK) }
    } else if a > b {
        let mut scratch = [0u8; 2];
        // The system call itself (rustix's), not libc's `read`: in a
        // process running the shim, that symbol is the shim's, which
        // answers a queue descriptor with its status line.
        match rustix::io::read(fd, &mut scratch[..a - b]) {
            Ok(n) => isize::try_from(n).unwrap_or(0),
            Err(e) => return Err(Errno::from_raw(e.raw_os_error())),
        }
    } else {
        return Ok(());
    };
    if r < 0 {
        return Err(last());
    }
    if r.unsigned_abs() != a.abs_diff(b) {
        return Err(Errno::EAGAIN);
    }
    Ok(())
}

/// Moves the pipe of description `fd` (which must have `O_NONBLOCK`) to
/// level `to`: from `believed` in one system call, or, if the pipe was not
/// there (a mover died between its change and its move, someone wrote
/// into a descriptor), from where `poll` finds it. Returns the level the
/// pipe is at.
///
/// # Errors
/// `EBADF`; `EAGAIN` if the pipe moved under the caller.
pub fn move_level(fd: BorrowedFd<'_>, believed: Level, to: Level) -> Result<Level, Errno> {
    if believed == to {
        return Ok(to);
    }
    set_level(fd, believed, to).or_else(|_| level(fd).and_then(|at| set_level(fd, at, to)))?;
    Ok(to)
}

/// `O_NONBLOCK` of the open description `fd` refers to.
///
/// # Errors
/// `EBADF`.
pub fn nonblocking(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    let flags = rustix::fs::fcntl_getfl(fd).map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    Ok(flags.contains(rustix::fs::OFlags::NONBLOCK))
}

/// `SI_MESGQ`: the `si_code` of a message queue notification.
pub const SI_MESGQ: i32 = -3;

/// The siginfo of a message queue notification as the kernel fills it
/// (`__do_notify()`): `si_signo`, `si_errno` 0, `si_code` [`SI_MESGQ`],
/// then `si_pid`, `si_uid` and `si_value` at the offsets of the
/// `_rt` member (16, 20, 24 on x86_64).
#[repr(C)]
struct MesgqInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    pid: i32,
    uid: u32,
    value: u64,
    _rest: [u64; 12],
}

/// `pidfd_send_signal(pidfd, signo, &info, 0)` with a message queue
/// notification's siginfo: `si_code = SI_MESGQ`, the sender's pid and real
/// uid, the registered value (SPEC MQ-NOT-9). The kernel accepts a
/// negative `si_code` from another process.
///
/// # Errors
/// `EPERM` if the caller may not signal the process; `ESRCH` if it is gone.
pub fn send_mesgq_signal(pidfd: BorrowedFd<'_>, signo: i32, sender: u32, uid: u32, value: u64) -> Result<(), Errno> {
    let info = MesgqInfo {
        signo,
        errno: 0,
        code: SI_MESGQ,
        _pad: 0,
        pid: i32::try_from(sender).unwrap_or(0),
        uid,
        value,
        _rest: [0; 12],
    };
    // SAFETY: `info` is a live 128-byte siginfo the kernel only reads.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signo, &raw const info, 0u32) };
    if r < 0 {
        return Err(last());
    }
    Ok(())
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
///
/// # Errors
/// `EMFILE`, `ENFILE`.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// Writes the one byte `word` to a registration pipe's write end `write`
/// (non-blocking or never full) if a reader still holds it: a write
/// without one raises `SIGPIPE`, which a host that embeds the daemon may
/// not ignore. (A reader that closes between the check and the write
/// leaves that one window.)
///
/// # Errors
/// `EPIPE` when no reader holds the pipe; `write(2)`'s.
pub fn tell(write: BorrowedFd<'_>, word: u8) -> Result<(), Errno> {
    let mut fds = [rustix::event::PollFd::new(&write, rustix::event::PollFlags::OUT)];
    rustix::event::poll(&mut fds, 0).map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    // poll(2): POLLERR on a pipe's write end whose read end is closed.
    if fds[0].revents().contains(rustix::event::PollFlags::ERR) {
        return Err(Errno::EPIPE);
    }
    rustix::io::write(write, &[word]).map(drop).map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// A `SIGEV_THREAD` registration's pipe as a named FIFO at `path`, for a
/// daemon whose registrations must outlive it: (the registered process's
/// description, the daemon's). The process's is `O_RDWR` and blocks: its
/// waiting thread reads the daemon's one byte and, being a writer itself,
/// never reads end of file when the daemon dies; the daemon's is
/// `O_WRONLY | O_NONBLOCK`, and a restarted daemon opens it again
/// ([`open_notify_fifo`]). A file already at `path` is replaced.
///
/// # Errors
/// `mkfifo(3)`'s and `open(2)`'s.
pub fn notify_fifo(path: &std::path::Path) -> Result<(OwnedFd, OwnedFd), Errno> {
    use rustix::fs::OFlags;
    make_fifo(path)?;
    // O_RDWR never blocks on a FIFO (fifo(7)); then a reader exists.
    let process = rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW, rustix::fs::Mode::empty())
        .map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    Ok((process, open_notify_fifo(path)?))
}

/// The daemon's description of the registration FIFO [`notify_fifo`]
/// made at `path`, opened again (`O_WRONLY | O_NONBLOCK | O_CLOEXEC`).
///
/// # Errors
/// `ENXIO` when no process holds the FIFO any more (fifo(7): a
/// non-blocking open for writing without a reader); `ENOENT`; `EINVAL` if
/// `path` is not a FIFO.
pub fn open_notify_fifo(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    open_fifo(path, rustix::fs::OFlags::WRONLY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tell_writes_while_a_reader_holds_the_pipe_and_refuses_after() {
        let (read, write) = pipe().unwrap();
        tell(write.as_fd(), b'F').unwrap();
        let mut b = [0u8; 1];
        assert_eq!(rustix::io::read(&read, &mut b), Ok(1));
        assert_eq!(b[0], b'F');
        drop(read);
        assert_eq!(tell(write.as_fd(), b'D'), Err(Errno::EPIPE));
    }

    fn poll(fd: BorrowedFd<'_>) -> i16 {
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN | libc::POLLOUT, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut pfd, 1, 0) };
        pfd.revents
    }

    fn want(l: Level) -> i16 {
        match l {
            Level::Empty => libc::POLLOUT,
            Level::Some => libc::POLLIN | libc::POLLOUT,
            Level::Full => libc::POLLIN,
        }
    }

    /// Every move between the three levels (each pair, both ways, and
    /// `Empty` ↔ `Full` as a queue of one message makes), made through one
    /// description and seen by `poll` on all of them (no `POLLHUP` or
    /// `POLLERR` either), whatever each description's `O_NONBLOCK`.
    #[test]
    fn every_level_transition_shows_on_every_description() {
        let pipe = queue_pipe().unwrap();
        assert_eq!(nonblocking(pipe.as_fd()), Ok(true));
        let blocking = open_description(pipe.as_fd(), false, false).unwrap();
        let nonblock = open_description(pipe.as_fd(), true, false).unwrap();
        assert_eq!(nonblocking(blocking.as_fd()), Ok(false));
        assert_eq!(nonblocking(nonblock.as_fd()), Ok(true));
        // Descriptions of their own: O_NONBLOCK set on one is not on another.
        let fds = [pipe.as_fd(), blocking.as_fd(), nonblock.as_fd()];
        for fd in fds {
            assert_eq!(poll(fd), want(Level::Empty));
            assert_eq!(level(fd), Ok(Level::Empty));
        }
        use Level::{Empty, Full, Some};
        let path = [Some, Full, Some, Empty, Full, Empty, Some, Empty, Full, Some, Full, Empty];
        let mut at = Empty;
        for (i, to) in path.into_iter().enumerate() {
            // Moved through each description in turn, the blocking one included.
            set_level(fds[i % 3], at, to).unwrap();
            at = to;
            for fd in fds {
                assert_eq!(poll(fd), want(to), "{to:?} after move {i}");
                assert_eq!(level(fd), Ok(to));
            }
        }
    }

    /// A move from a level the pipe is not at fails: a rise on any
    /// description, a fall on one with `O_NONBLOCK` (the daemon's).
    #[test]
    fn a_wrong_from_level_fails_without_blocking() {
        let pipe = queue_pipe().unwrap();
        let blocking = open_description(pipe.as_fd(), false, false).unwrap();
        assert_eq!(set_level(pipe.as_fd(), Level::Some, Level::Empty), Err(Errno::EAGAIN));
        assert_eq!(set_level(pipe.as_fd(), Level::Full, Level::Some), Err(Errno::EAGAIN));
        set_level(blocking.as_fd(), Level::Empty, Level::Full).unwrap();
        assert_eq!(set_level(blocking.as_fd(), Level::Some, Level::Full), Err(Errno::EAGAIN));
        assert_eq!(set_level(blocking.as_fd(), Level::Empty, Level::Some), Err(Errno::EAGAIN));
        assert_eq!(level(blocking.as_fd()), Ok(Level::Full));
        set_level(blocking.as_fd(), Level::Full, Level::Some).unwrap();
        // One slot free: a rise of two is short, and reported.
        assert_eq!(set_level(blocking.as_fd(), Level::Empty, Level::Full), Err(Errno::EAGAIN));
        assert_eq!(level(blocking.as_fd()), Ok(Level::Full));
        set_level(blocking.as_fd(), Level::Full, Level::Empty).unwrap();
        assert_eq!(level(blocking.as_fd()), Ok(Level::Empty));
    }

    /// The status flags of a description: `O_RDWR`, its own `O_NONBLOCK`.
    #[test]
    fn descriptions_are_read_write_with_their_own_nonblock() {
        let pipe = queue_pipe().unwrap();
        let d = open_description(pipe.as_fd(), false, false).unwrap();
        // SAFETY: F_GETFL takes no pointer.
        let fl = unsafe { libc::fcntl(d.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(fl & libc::O_ACCMODE, libc::O_RDWR);
        assert_eq!(fl & libc::O_NONBLOCK, 0);
        // SAFETY: F_GETFD takes no pointer.
        assert_ne!(unsafe { libc::fcntl(d.as_raw_fd(), libc::F_GETFD) } & libc::FD_CLOEXEC, 0);
    }
}
