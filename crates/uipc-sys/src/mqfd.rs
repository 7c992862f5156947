//! The descriptor a POSIX message queue's user holds: an eventfd whose
//! counter the daemon keeps at a level that makes `poll`/`select`/`epoll`
//! report the queue's readiness (SPEC MQ-FD-1), and the notification
//! signal sent with the kernel's siginfo.
//!
//! An eventfd is readable iff its counter is above 0 and writable iff a
//! write of 1 would not overflow, that is iff the counter is below
//! `0xffff_ffff_ffff_fffe`. Three levels therefore give the three states a
//! queue can be in:
//!
//! | queue | level | poll |
//! |---|---|---|
//! | empty | 0 | `POLLOUT` |
//! | neither empty nor full | 1 | `POLLIN \| POLLOUT` |
//! | full | `0xffff_ffff_ffff_fffe` | `POLLIN` |
//!
//! # References
//! - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
//! - [pidfd_send_signal(2)](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use uipc_abi::Errno;

/// The counter level of a queue's eventfd.
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

    fn counter(self) -> u64 {
        match self {
            Level::Empty => 0,
            Level::Some => 1,
            Level::Full => 0xffff_ffff_ffff_fffe,
        }
    }
}

fn last() -> Errno {
    Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
}

/// `eventfd(0, EFD_CLOEXEC [| EFD_NONBLOCK])` — a queue descriptor at
/// [`Level::Empty`]; `nonblock` becomes the description's `O_NONBLOCK`.
///
/// # Errors
/// `EMFILE`, `ENFILE`, `ENOMEM`.
pub fn queue_fd(nonblock: bool) -> Result<OwnedFd, Errno> {
    let flags = libc::EFD_CLOEXEC | if nonblock { libc::EFD_NONBLOCK } else { 0 };
    // SAFETY: eventfd takes no pointers; a non-negative result is a new
    // descriptor that nothing else owns.
    let fd = unsafe { libc::eventfd(0, flags) };
    if fd < 0 {
        return Err(last());
    }
    // SAFETY: `fd` was just returned by eventfd and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Moves the counter of queue descriptor `fd` from `from` to `to`, never
/// blocking whatever the description's `O_NONBLOCK`: it reads only a
/// counter above 0 and writes only what fits.
///
/// # Errors
/// Whatever `read`/`write` report (`EAGAIN` if someone else changed the
/// counter meanwhile).
pub fn set_level(fd: BorrowedFd<'_>, from: Level, to: Level) -> Result<(), Errno> {
    if from == to {
        return Ok(());
    }
    let mut now = from.counter();
    if now > to.counter() {
        // Only a readable eventfd is read: a read of 0 would block.
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
        if ready == 1 {
            let mut v = 0u64;
            // SAFETY: reads 8 bytes into a live u64.
            let r = unsafe { libc::read(fd.as_raw_fd(), (&raw mut v).cast(), 8) };
            if r != 8 {
                return Err(last());
            }
        }
        now = 0;
    }
    let add = to.counter() - now;
    if add > 0 {
        let v = add;
        // SAFETY: writes 8 bytes from a live u64.
        let r = unsafe { libc::write(fd.as_raw_fd(), (&raw const v).cast(), 8) };
        if r != 8 {
            return Err(last());
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn poll(fd: BorrowedFd<'_>) -> (bool, bool) {
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN | libc::POLLOUT, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut pfd, 1, 0) };
        (pfd.revents & libc::POLLIN != 0, pfd.revents & libc::POLLOUT != 0)
    }

    #[test]
    fn levels_give_queue_readiness() {
        for nonblock in [false, true] {
            let fd = queue_fd(nonblock).unwrap();
            assert_eq!(nonblocking(fd.as_fd()), Ok(nonblock));
            assert_eq!(poll(fd.as_fd()), (false, true));
            let path = [Level::Some, Level::Full, Level::Some, Level::Empty, Level::Full, Level::Empty, Level::Some];
            let mut at = Level::Empty;
            for to in path {
                set_level(fd.as_fd(), at, to).unwrap();
                at = to;
                let want = match to {
                    Level::Empty => (false, true),
                    Level::Some => (true, true),
                    Level::Full => (true, false),
                };
                assert_eq!(poll(fd.as_fd()), want, "{to:?}");
            }
        }
    }
}
