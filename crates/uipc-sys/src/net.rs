//! Unix-socket plumbing for the daemon and its clients: the peer's
//! credentials (`SO_PEERCRED`, `SO_PEERGROUPS`), messages that carry
//! descriptors (`SCM_RIGHTS`), and non-blocking mode.
//!
//! Every function takes a [`BorrowedFd`], so it works on a
//! [`UnixStream`](std::os::unix::net::UnixStream), a
//! [`UnixListener`](std::os::unix::net::UnixListener)'s accepted streams, or
//! a raw socket alike (`stream.as_fd()`).
//!
//! # References
//!  - [unix(7)] (`SO_PEERCRED`, `SO_PEERGROUPS`, `SCM_RIGHTS`), [socket(7)],
//!    [recvmsg(2)], [sendmsg(2)], [cmsg(3)]
//!
//! [unix(7)]: https://man7.org/linux/man-pages/man7/unix.7.html
//! [socket(7)]: https://man7.org/linux/man-pages/man7/socket.7.html
//! [recvmsg(2)]: https://man7.org/linux/man-pages/man2/recvmsg.2.html
//! [sendmsg(2)]: https://man7.org/linux/man-pages/man2/sendmsg.2.html
//! [cmsg(3)]: https://man7.org/linux/man-pages/man3/cmsg.3.html

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::io::Errno as RErrno;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage};
use rustix::net::{RecvMsgReturn, SendFlags};
use uipc_abi::Errno;

fn errno(e: RErrno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// `SCM_MAX_FD`: the most descriptors one `SCM_RIGHTS` message may carry
/// (`include/net/scm.h`); `sendmsg` fails with `EINVAL` beyond it.
pub const SCM_MAX_FD: usize = 253;

/// The credentials of a Unix socket's peer, as the kernel recorded them when
/// the peer called `connect(2)` or `socketpair(2)` (not the peer's current ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id, in the reader's pid namespace (0 if the peer's process is
    /// not visible there).
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// `getsockopt(sock, SOL_SOCKET, SO_PEERCRED)` — the peer's pid, effective
/// uid and effective gid, as they were at `connect`/`socketpair` time.
///
/// # Errors
/// `ENOTCONN` if the socket is not connected; `ENOTSOCK`, `EBADF`.
///
/// # References
///  - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
#[doc(alias = "SO_PEERCRED")]
pub fn peer_cred(sock: BorrowedFd<'_>) -> Result<PeerCred, Errno> {
    // Not rustix's `get_socket_peercred`: its `UCred` holds a non-zero
    // `Pid`, and the kernel reports 0 for a peer outside our pid namespace.
    let mut c = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a live, exclusively borrowed `ucred` of exactly `len`
    // bytes, all of whose bit patterns are valid; the kernel writes at most
    // `len` bytes into it.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::from_mut(&mut c).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(last_errno());
    }
    // A pid the reader's namespace cannot see reads as 0, never negative.
    let pid = u32::try_from(c.pid).map_err(|_| Errno::EINVAL)?;
    Ok(PeerCred { pid, uid: c.uid, gid: c.gid })
}

/// `getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS)` — the peer's supplementary
/// groups as they were at `connect`/`socketpair` time, in the kernel's
/// (sorted) order.
///
/// The buffer grows as needed: the kernel answers a too-small one with
/// `ERANGE` and the length it needs.
///
/// # Errors
/// `ENOTCONN` if the socket is not connected (a listening socket or a
/// `socketpair` end created before Linux 4.13 has no groups); `ENOTSOCK`,
/// `EBADF`.
///
/// # References
///  - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html), Linux
///    `net/core/sock.c:sk_getsockopt()` (`SO_PEERGROUPS`)
#[doc(alias = "SO_PEERGROUPS")]
pub fn peer_groups(sock: BorrowedFd<'_>) -> Result<Vec<u32>, Errno> {
    const GID_SIZE: usize = std::mem::size_of::<libc::gid_t>();
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut len = libc::socklen_t::try_from(groups.len() * GID_SIZE).map_err(|_| Errno::ENOMEM)?;
        // SAFETY: `groups` is a live, exclusively borrowed buffer of exactly
        // `len` bytes; the kernel writes at most `len` bytes there and the
        // length it used (or needs) into `len`.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let len = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
        if r == 0 {
            groups.truncate(len / GID_SIZE);
            return Ok(groups);
        }
        let e = last_errno();
        // ERANGE: `len` now holds the size the kernel needs. Grow at least a
        // little each time so a peer whose groups the kernel reports
        // inconsistently cannot keep us looping on the same size.
        if e != Errno::ERANGE {
            return Err(e);
        }
        let need = (len / GID_SIZE).max(groups.len() + 1);
        if need > 65536 {
            // NGROUPS_MAX: no credential has more groups.
            return Err(Errno::ERANGE);
        }
        groups.resize(need, 0);
    }
}

fn last_errno() -> Errno {
    Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
}

/// `sendmsg(sock, bytes, SCM_RIGHTS(fds), MSG_NOSIGNAL)` — sends `bytes`,
/// with `fds` attached if not empty; returns how many bytes were sent.
///
/// On a stream socket the count may be less than `bytes.len()` (the
/// descriptors travel with the first byte; send the rest with an empty
/// `fds`). Interrupted calls (`EINTR`) are retried. A peer that has gone
/// gives `EPIPE`, never `SIGPIPE`.
///
/// # Errors
/// `EINVAL` if `fds` is not empty but `bytes` is (a stream socket would
/// drop descriptors sent without data) or `fds` has more than
/// [`SCM_MAX_FD`] entries; `EPIPE`; `EAGAIN` on a non-blocking socket whose
/// buffer is full; `ETOOMANYREFS` if descriptors in flight nest too deeply;
/// whatever else `sendmsg` returns.
///
/// # References
///  - [sendmsg(2)](https://man7.org/linux/man-pages/man2/sendmsg.2.html),
///    [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
#[doc(alias = "sendmsg")]
#[doc(alias = "SCM_RIGHTS")]
pub fn send_msg(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize, Errno> {
    if fds.len() > SCM_MAX_FD || (!fds.is_empty() && bytes.is_empty()) {
        return Err(Errno::EINVAL);
    }
    let mut space = vec![0u8; if fds.is_empty() { 0 } else { rustix::cmsg_space!(ScmRights(fds.len())) }];
    loop {
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(Errno::EINVAL);
        }
        match rustix::net::sendmsg(sock, &[IoSlice::new(bytes)], &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(RErrno::INTR) => {}
            Err(e) => return Err(errno(e)),
        }
    }
}

/// `recvmsg(sock, buf, MSG_CMSG_CLOEXEC)` — receives up to `buf.len()`
/// bytes and at most `max_fds` descriptors (close-on-exec); returns the
/// byte count (0 at end of stream) and the descriptors.
///
/// A message that carries more than `max_fds` descriptors (or more than
/// [`SCM_MAX_FD`]) is refused: every descriptor it brought is closed, none
/// stays open in this process, and the call fails with `EMSGSIZE`. Its bytes
/// have been consumed all the same, so on a stream socket the caller should
/// treat this as a protocol violation and drop the connection.
/// Interrupted calls (`EINTR`) are retried.
///
/// # Errors
/// `EMSGSIZE` as above; `EAGAIN` on a non-blocking socket with nothing to
/// read; `ECONNRESET`; whatever else `recvmsg` returns.
///
/// # References
///  - [recvmsg(2)](https://man7.org/linux/man-pages/man2/recvmsg.2.html)
///    (`MSG_CTRUNC`, `MSG_CMSG_CLOEXEC`),
///    [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
#[doc(alias = "recvmsg")]
#[doc(alias = "SCM_RIGHTS")]
pub fn recv_msg(sock: BorrowedFd<'_>, buf: &mut [u8], max_fds: usize) -> Result<(usize, Vec<OwnedFd>), Errno> {
    recv(sock, buf, max_fds, true)
}

/// [`recv_msg`] that lets a signal handler end the wait as it ends any
/// `recvmsg`: transparently restarted by the kernel when the handler has
/// `SA_RESTART`, `EINTR` otherwise (signal(7)) — the restart policy of
/// `mq_timedsend`/`mq_timedreceive` (SPEC 9), for callers waiting for the
/// daemon's answer to one.
///
/// # Errors
/// As [`recv_msg`], plus `EINTR`.
pub fn recv_msg_restartable(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> Result<(usize, Vec<OwnedFd>), Errno> {
    recv(sock, buf, max_fds, false)
}

/// The calling thread's signals held back (blocked) while it sends a
/// request that may sleep and until it is answered, so that a signal that
/// comes at any moment of that window interrupts the wait: one arriving
/// before the thread waits stays pending and is delivered the instant
/// [`SignalsHeld::recv_msg_interruptible`] waits, as the kernel's
/// `signal_pending()` check interrupts a `semop` that is about to sleep.
/// Dropping it gives the thread its signal mask back.
///
/// Held: every signal but the synchronous ones a fault raises (`SIGSEGV`,
/// `SIGBUS`, `SIGFPE`, `SIGILL`, `SIGTRAP`, `SIGSYS`), and but the two glibc
/// keeps for itself (thread cancellation and `setuid` broadcast; its
/// `pthread_sigmask` never blocks them, so another thread's `setuid` never
/// waits on a sleeper). The `setuid` broadcast's signal is still noticed:
/// its handler changes the thread's credentials, which are taken when the
/// signals are held and compared before the wait (a `semop` the kernel
/// was running when that signal came fails with `EINTR`).
#[derive(Debug)]
#[must_use = "signals are held only while this lives"]
pub struct SignalsHeld {
    /// The mask to give back, and to wait with.
    caller: libc::sigset_t,
    /// The thread's credentials when the signals were held.
    ids: ThreadIds,
}

/// A thread's real, effective, saved user and group ids and its
/// supplementary groups: what glibc's setxid broadcast changes.
#[derive(Debug, PartialEq, Eq)]
struct ThreadIds {
    uids: [libc::uid_t; 3],
    gids: [libc::gid_t; 3],
    groups: Vec<libc::gid_t>,
}

impl ThreadIds {
    /// The calling thread's, now (`getresuid`, `getresgid`, `getgroups`:
    /// system calls that read the calling thread's own credentials).
    fn now() -> ThreadIds {
        let mut ids = ThreadIds { uids: [0; 3], gids: [0; 3], groups: Vec::new() };
        let [ru, eu, su] = &mut ids.uids;
        let [rg, eg, sg] = &mut ids.gids;
        // SAFETY: each pointer is a live, exclusively borrowed id the kernel writes.
        unsafe {
            libc::getresuid(ru, eu, su);
            libc::getresgid(rg, eg, sg);
        }
        // SAFETY: with size 0 getgroups only counts.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        if let Ok(len) = usize::try_from(n) {
            ids.groups.resize(len, 0);
            // SAFETY: `groups` has room for `n` ids.
            let got = unsafe { libc::getgroups(n, ids.groups.as_mut_ptr()) };
            ids.groups.truncate(usize::try_from(got).unwrap_or(0));
        }
        ids
    }
}

/// Holds the calling thread's signals back (see [`SignalsHeld`]).
///
/// # Errors
/// Whatever `pthread_sigmask` returns (nothing on Linux for valid input).
///
/// # References
///  - [pthread_sigmask(3)](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
pub fn hold_signals() -> Result<SignalsHeld, Errno> {
    // SAFETY: sigset_t is plain data; sigfillset/sigdelset initialise and
    // edit it in place, pthread_sigmask reads one set and writes the other.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut caller: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        for sync in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP, libc::SIGSYS] {
            libc::sigdelset(&mut all, sync);
        }
        match libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut caller) {
            0 => Ok(SignalsHeld { caller, ids: ThreadIds::now() }),
            e => Err(Errno::from_raw(e)),
        }
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `hold_signals` on this thread.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.caller, std::ptr::null_mut()) };
    }
}

impl SignalsHeld {
    /// [`recv_msg`] that returns `EINTR` when a signal handler runs while it
    /// waits — or ran for a signal that came since [`hold_signals`] —, for
    /// callers whose system call must report interruption (a blocked
    /// `semop` waiting for the daemon's answer).
    ///
    /// It waits in `ppoll(2)` with the caller's own signal mask, which the
    /// kernel installs atomically with the wait: a held signal is delivered
    /// then and `ppoll` fails with `EINTR`, never restarted whatever its
    /// `SA_RESTART` flag (signal(7), "Interruption of system calls and
    /// library functions by signal handlers") — as `semop` fails with
    /// `EINTR` in both cases in the kernel. A signal with no handler (or an
    /// ignored one, or a stop and continue) does not interrupt, as for
    /// `semop` (`-ERESTARTNOHAND` in both).
    ///
    /// # Errors
    /// As [`recv_msg`], plus `EINTR`.
    ///
    /// # References
    ///  - [ppoll(2)](https://man7.org/linux/man-pages/man2/ppoll.2.html),
    ///    [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html)
    pub fn recv_msg_interruptible(
        &self,
        sock: BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
    ) -> Result<(usize, Vec<OwnedFd>), Errno> {
        // glibc's setxid signal, which no mask holds, ran its handler since
        // the signals were held: as a signal that interrupted the wait.
        if ThreadIds::now() != self.ids {
            return Err(Errno::EINTR);
        }
        let mut fds = [libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: one valid pollfd, no timeout, and a valid signal mask.
        let r = unsafe { libc::ppoll(fds.as_mut_ptr(), 1, std::ptr::null(), &self.caller) };
        if r < 0 {
            return Err(Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINTR)));
        }
        // Readable, hung up or in error: the read below reports which.
        recv(sock, buf, max_fds, false)
    }
}

/// [`recv_msg`] that never blocks: `EAGAIN` when nothing has arrived yet
/// (`MSG_DONTWAIT`), for a caller that polls briefly before it sleeps.
///
/// # Errors
/// As [`recv_msg`], plus `EAGAIN`.
pub fn try_recv_msg(sock: BorrowedFd<'_>, buf: &mut [u8], max_fds: usize) -> Result<(usize, Vec<OwnedFd>), Errno> {
    recv_with(sock, buf, max_fds, true, RecvFlags::DONTWAIT)
}

fn recv(sock: BorrowedFd<'_>, buf: &mut [u8], max_fds: usize, retry: bool) -> Result<(usize, Vec<OwnedFd>), Errno> {
    recv_with(sock, buf, max_fds, retry, RecvFlags::empty())
}

fn recv_with(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
    retry: bool,
    extra: RecvFlags,
) -> Result<(usize, Vec<OwnedFd>), Errno> {
    let max_fds = max_fds.min(SCM_MAX_FD);
    // Room for at least one descriptor even when none is wanted, so that a
    // message carrying some is seen (and refused) rather than silently cut.
    let mut space = vec![0u8; rustix::cmsg_space!(ScmRights(max_fds.max(1)))];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let r = rustix::net::recvmsg(sock, &mut [IoSliceMut::new(buf)], &mut control, RecvFlags::CMSG_CLOEXEC | extra);
        let RecvMsgReturn { bytes, flags, .. } = match r {
            Ok(r) => r,
            Err(RErrno::INTR) if retry => continue,
            Err(e) => return Err(errno(e)),
        };
        let mut fds = Vec::new();
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = msg {
                fds.extend(rights);
            }
        }
        // MSG_CTRUNC: descriptors that did not fit were closed by the kernel
        // (never installed here). The buffer's alignment padding can fit one
        // more than asked for, hence the count check as well.
        let truncated = flags.bits() & libc::MSG_CTRUNC.unsigned_abs() != 0;
        if truncated || fds.len() > max_fds {
            // Dropping `fds` closes every descriptor that did arrive.
            drop(fds);
            return Err(Errno::EMSGSIZE);
        }
        return Ok((bytes, fds));
    }
}

/// `fcntl(fd, F_SETFL, O_NONBLOCK)` (or its clearing) — makes I/O on `fd`
/// fail with `EAGAIN` instead of blocking.
///
/// The flag belongs to the open file description: every duplicate of `fd`,
/// including one passed to another process, sees the change.
///
/// # Errors
/// `EBADF`; whatever `fcntl` returns.
#[doc(alias = "O_NONBLOCK")]
pub fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> Result<(), Errno> {
    let mut flags = rustix::fs::fcntl_getfl(fd).map_err(errno)?;
    flags.set(rustix::fs::OFlags::NONBLOCK, nonblocking);
    rustix::fs::fcntl_setfl(fd, flags).map_err(errno)
}

/// Whether the peer of stream socket `sock` has closed its end (`POLLRDHUP`
/// or `POLLHUP` now, without waiting). Data it sent before closing may
/// still be unread.
///
/// # Errors
/// Whatever `poll` returns (`ENOMEM`).
///
/// # References
///  - [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html) (`POLLRDHUP`)
#[doc(alias = "POLLRDHUP")]
pub fn peer_closed(sock: BorrowedFd<'_>) -> Result<bool, Errno> {
    use rustix::event::{poll, PollFd, PollFlags};
    loop {
        let mut fds = [PollFd::from_borrowed_fd(sock, PollFlags::RDHUP)];
        match poll(&mut fds, 0) {
            Ok(0) => return Ok(false),
            Ok(_) => {
                let got = fds[0].revents();
                return Ok(got.intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR));
            }
            Err(RErrno::INTR) => {}
            Err(e) => return Err(errno(e)),
        }
    }
}
