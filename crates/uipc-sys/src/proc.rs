//! Facts about another process, for the daemon's credential checks and for
//! tracking its clients' lifetimes: pidfds, capabilities, the memory-lock
//! limit, the parent, and the start time that tells a pid's reuse apart.
//!
//! # Races
//!
//! A pid names whatever process holds it *now*. The `/proc`-reading
//! functions may read a newer process that reused the pid of one that
//! exited. The daemon pins a client with [`pidfd_open`] and
//! [`proc_start_time`] when it connects, and re-checks the start time (or
//! [`pidfd_exited`]) after reading any other fact: an unchanged start time
//! means the same process.
//!
//! # References
//!  - [pidfd_open(2)], [proc_pid_status(5)], [proc_pid_stat(5)],
//!    [prlimit(2)], [capabilities(7)]
//!
//! [pidfd_open(2)]: https://man7.org/linux/man-pages/man2/pidfd_open.2.html
//! [proc_pid_status(5)]: https://man7.org/linux/man-pages/man5/proc_pid_status.5.html
//! [proc_pid_stat(5)]: https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html
//! [prlimit(2)]: https://man7.org/linux/man-pages/man2/prlimit.2.html
//! [capabilities(7)]: https://man7.org/linux/man-pages/man7/capabilities.7.html

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno as RErrno;
use rustix::process::{Pid, PidfdFlags};
use uipc_abi::Errno;

fn errno(e: RErrno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// A `u32` pid as the kernel's `pid_t`: `ESRCH` for 0 and for values no
/// process can have.
fn raw_pid(pid: u32) -> Result<libc::pid_t, Errno> {
    match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Errno::ESRCH),
    }
}

/// Reads `/proc/PID/<file>`; a missing process reads as `ESRCH`, the error
/// the system calls give for it.
fn read_proc(pid: u32, file: &str) -> Result<String, Errno> {
    let pid = raw_pid(pid)?;
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | None => Errno::ESRCH,
        Some(raw) => Errno::from_raw(raw),
    })
}

/// The value of the `Name:` line of `/proc/PID/status`.
fn status_field(pid: u32, name: &str) -> Result<String, Errno> {
    let status = read_proc(pid, "status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')).map(|v| v.trim().to_owned()))
        // Every Linux since 2.6 prints the fields asked for here.
        .ok_or(Errno::EIO)
}

/// A process's identity as permission checks see it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcIds {
    /// Real user id.
    pub ruid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Effective group id.
    pub egid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Filesystem user id.
    pub fsuid: u32,
    /// Filesystem group id.
    pub fsgid: u32,
    /// The `Umask:` line (Linux 4.7 and later), else 022.
    pub umask: u32,
}

/// The current real and effective ids and supplementary groups of process `pid`:
/// the `Uid:`, `Gid:` and `Groups:` lines of `/proc/PID/status` (the
/// thread-group leader's credentials; glibc's `setuid` family changes every
/// thread's). Unlike `SO_PEERCRED`, which is fixed when the peer connects,
/// this follows `setuid`, `setgid` and `setgroups`.
///
/// # Errors
/// `ESRCH` if there is no such process; `EIO` if the file is malformed.
/// See the module's "Races".
///
/// # References
///  - [proc_pid_status(5)](https://man7.org/linux/man-pages/man5/proc_pid_status.5.html)
pub fn proc_ids(pid: u32) -> Result<ProcIds, Errno> {
    ids_from_status(&read_proc(pid, "status")?)
}

/// The ids and effective capabilities of thread `tid` of process `pid`,
/// from `/proc/PID/task/TID/status` in one read. Linux credentials are per
/// thread: glibc's `setuid` family changes every thread's, but a raw
/// `syscall(SYS_setresuid, …)` or `capset` changes only the caller's. The
/// path lists only `pid`'s own threads, so a `tid` of another process
/// fails with `ESRCH`.
///
/// # Errors
/// `ESRCH` if there is no such thread in `pid`; `EIO` if the file is
/// malformed.
///
/// # References
///  - [proc_pid_status(5)](https://man7.org/linux/man-pages/man5/proc_pid_status.5.html),
///    [credentials(7)](https://man7.org/linux/man-pages/man7/credentials.7.html)
///    ("per-thread attributes")
pub fn proc_task_cred(pid: u32, tid: u32) -> Result<(ProcIds, u64), Errno> {
    let tid = raw_pid(tid)?;
    let status = read_proc(pid, &format!("task/{tid}/status"))?;
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or(Errno::EIO)?;
    Ok((ids_from_status(&status)?, caps))
}

/// Whether process `pid` is `root` or descends from it: its chain of
/// parents (`PPid`) reaches `root` before it reaches 0 or 1 (at most 4096
/// steps; a chain longer than that is not believed).
///
/// # Errors
/// `ESRCH` if `pid` (or an ancestor, between two reads) is gone.
pub fn descends_from(pid: u32, root: u32) -> Result<bool, Errno> {
    let mut p = pid;
    for _ in 0..4096 {
        if p == root {
            return Ok(true);
        }
        if p <= 1 {
            return Ok(false);
        }
        p = proc_parent(p)?;
    }
    Ok(false)
}

/// The ids of a `/proc/PID/status` text.
fn ids_from_status(status: &str) -> Result<ProcIds, Errno> {
    let line = |name: &str| -> Result<&str, Errno> {
        status.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).ok_or(Errno::EIO)
    };
    // "Uid:" and "Gid:" list real, effective, saved set and filesystem ids.
    let nth = |name: &str, n: usize| -> Result<u32, Errno> {
        line(name)?.split_whitespace().nth(n).and_then(|v| v.parse().ok()).ok_or(Errno::EIO)
    };
    let groups: Result<Vec<u32>, Errno> =
        line("Groups")?.split_whitespace().map(|g| g.parse().map_err(|_| Errno::EIO)).collect();
    let umask = line("Umask").ok().and_then(|v| u32::from_str_radix(v.trim(), 8).ok()).unwrap_or(0o022);
    Ok(ProcIds {
        ruid: nth("Uid", 0)?,
        euid: nth("Uid", 1)?,
        egid: nth("Gid", 1)?,
        groups: groups?,
        fsuid: nth("Uid", 3)?,
        fsgid: nth("Gid", 3)?,
        umask,
    })
}

/// `gettid()` — the calling thread's id.
///
/// # References
///  - [gettid(2)](https://man7.org/linux/man-pages/man2/gettid.2.html)
pub fn gettid() -> u32 {
    // A thread id is positive.
    u32::try_from(rustix::thread::gettid().as_raw_nonzero().get()).unwrap_or(0)
}

/// `pidfd_open(pid, 0)` — a descriptor (close-on-exec) that refers to
/// process `pid` itself, not to the number: it becomes readable when that
/// process exits, even if the pid is then reused.
///
/// # Errors
/// `ESRCH` if there is no such process; `EINVAL` if `pid` is a thread that
/// is not a thread-group leader; `EMFILE`, `ENFILE`, `ENODEV`, `ENOMEM`.
///
/// # References
///  - [pidfd_open(2)](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
pub fn pidfd_open(pid: u32) -> Result<OwnedFd, Errno> {
    let pid = Pid::from_raw(raw_pid(pid)?).ok_or(Errno::ESRCH)?;
    rustix::process::pidfd_open(pid, PidfdFlags::empty()).map_err(errno)
}

/// `poll(pidfd, POLLIN, 0)` — whether the process `fd` refers to has
/// exited (readable), without waiting. A zombie (exited, not yet reaped)
/// counts as exited: its memory, and so its mappings, is already gone.
///
/// # Errors
/// Whatever `poll` returns (`ENOMEM`).
///
/// # References
///  - [pidfd_open(2)](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
///    ("the file descriptor ... polls as readable"), [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
#[doc(alias = "poll")]
pub fn pidfd_exited(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    loop {
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        match poll(&mut fds, 0) {
            Ok(0) => return Ok(false),
            // POLLIN, or POLLHUP/POLLERR, which a pidfd gives only once the
            // process is gone; POLLNVAL cannot happen for a borrowed fd.
            Ok(_) => return Ok(true),
            Err(RErrno::INTR) => {}
            Err(e) => return Err(errno(e)),
        }
    }
}

/// `CapEff` of `/proc/PID/status` — the process's effective capabilities
/// (bit `n` is capability number `n` of `linux/capability.h`).
///
/// # Errors
/// `ESRCH` if there is no such process; `EIO` if the line is missing or
/// malformed. See the module's "Races".
///
/// # References
///  - [proc_pid_status(5)](https://man7.org/linux/man-pages/man5/proc_pid_status.5.html)
#[doc(alias = "CapEff")]
pub fn proc_caps(pid: u32) -> Result<u64, Errno> {
    let v = status_field(pid, "CapEff")?;
    u64::from_str_radix(&v, 16).map_err(|_| Errno::EIO)
}

/// `prlimit(pid, RLIMIT_MEMLOCK, NULL, &old)` — the soft limit of bytes
/// the process may lock (`SHM_LOCK` counts against it); `u64::MAX` for
/// `RLIM_INFINITY`.
///
/// Reading another user's limit with `prlimit` needs `CAP_SYS_RESOURCE`
/// (even for root); without it, the `Max locked memory` line of the
/// world-readable `/proc/PID/limits` gives the same value.
///
/// # Errors
/// `ESRCH` if there is no such process; `EIO` if `/proc/PID/limits` is
/// malformed. See the module's "Races".
///
/// # References
///  - [prlimit(2)](https://man7.org/linux/man-pages/man2/prlimit.2.html)
///    (`EPERM`: "The caller does not have the `CAP_SYS_RESOURCE` capability
///    ... and the process specified by pid is not the caller's"),
///    [proc_pid_limits(5)](https://man7.org/linux/man-pages/man5/proc_pid_limits.5.html)
#[doc(alias = "prlimit")]
#[doc(alias = "RLIMIT_MEMLOCK")]
pub fn proc_memlock_limit(pid: u32) -> Result<u64, Errno> {
    proc_rlimit(pid, libc::RLIMIT_MEMLOCK, "Max locked memory")
}

/// `prlimit(pid, RLIMIT_MSGQUEUE, NULL, &old)` — the soft limit of bytes
/// the process's real user may have charged for POSIX message queues;
/// `u64::MAX` for `RLIM_INFINITY`. As [`proc_memlock_limit`], it falls
/// back to the `Max msgqueue size` line of `/proc/PID/limits`.
///
/// # Errors
/// As [`proc_memlock_limit`].
#[doc(alias = "RLIMIT_MSGQUEUE")]
pub fn proc_msgqueue_limit(pid: u32) -> Result<u64, Errno> {
    proc_rlimit(pid, libc::RLIMIT_MSGQUEUE, "Max msgqueue size")
}

/// The soft limit `resource` of process `pid`, by `prlimit`, else by the
/// line `label` of `/proc/PID/limits`.
fn proc_rlimit(pid: u32, resource: libc::__rlimit_resource_t, label: &str) -> Result<u64, Errno> {
    let raw = raw_pid(pid)?;
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a NULL new limit changes nothing; `old` is a live, exclusively
    // borrowed rlimit the kernel fills in.
    let r = unsafe { libc::prlimit(raw, resource, std::ptr::null(), &mut old) };
    if r == 0 {
        return Ok(if old.rlim_cur == libc::RLIM_INFINITY { u64::MAX } else { old.rlim_cur });
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EPERM) => limit_from_limits(&read_proc(pid, "limits")?, label),
        Some(raw) => Err(Errno::from_raw(raw)),
        None => Err(Errno::EIO),
    }
}

/// The soft limit on line `label` of a `/proc/PID/limits` text.
fn limit_from_limits(limits: &str, label: &str) -> Result<u64, Errno> {
    let line = limits.lines().find_map(|l| l.strip_prefix(label)).ok_or(Errno::EIO)?;
    match line.split_whitespace().next() {
        Some("unlimited") => Ok(u64::MAX),
        Some(v) => v.parse().map_err(|_| Errno::EIO),
        None => Err(Errno::EIO),
    }
}

/// `PPid` of `/proc/PID/status` — the parent's pid, in our pid namespace
/// (0 for a process whose parent is outside it, or for init).
///
/// # Errors
/// `ESRCH` if there is no such process; `EIO` if the line is missing or
/// malformed. See the module's "Races".
///
/// # References
///  - [proc_pid_status(5)](https://man7.org/linux/man-pages/man5/proc_pid_status.5.html)
#[doc(alias = "PPid")]
pub fn proc_parent(pid: u32) -> Result<u32, Errno> {
    status_field(pid, "PPid")?.parse().map_err(|_| Errno::EIO)
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)` — makes the calling process the
/// "subreaper" of its descendants: one whose parent exits is re-parented
/// to it (not to init), so it stays in the process tree (and must be
/// reaped by it: [`wait_reaping_others`]).
///
/// # Errors
/// `EINVAL` on kernels without it (before 3.4).
///
/// # References
///  - [PR_SET_CHILD_SUBREAPER(2const)](https://man7.org/linux/man-pages/man2/PR_SET_CHILD_SUBREAPER.2const.html)
#[doc(alias = "PR_SET_CHILD_SUBREAPER")]
pub fn set_child_subreaper() -> Result<(), Errno> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(errno)
}

/// Waits until one of the children `watched` exits and returns its pid
/// and raw wait status (as `waitpid` reports it), reaping every other
/// child that exits meanwhile — the orphans a subreaper inherits — without
/// ever reaping a watched child unasked.
///
/// # Errors
/// `ECHILD` if no watched pid is a child of ours (or none is given).
///
/// # References
///  - [waitid(2)](https://man7.org/linux/man-pages/man2/waitid.2.html) (`WNOWAIT`)
pub fn wait_reaping_others(watched: &[u32]) -> Result<(u32, i32), Errno> {
    let watched: Vec<libc::pid_t> = watched.iter().map(|&p| raw_pid(p)).collect::<Result<_, _>>()?;
    if watched.is_empty() {
        return Err(Errno::ECHILD);
    }
    loop {
        // SAFETY: siginfo_t is plain data; all zeros is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a live siginfo_t the kernel fills in; WNOWAIT
        // leaves the child waitable.
        let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r != 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(raw) => return Err(Errno::from_raw(raw)),
                None => return Err(Errno::EIO),
            }
        }
        // SAFETY: waitid filled in a child's state: si_pid is valid.
        let pid = unsafe { info.si_pid() };
        let mut status = 0;
        if watched.contains(&pid) {
            loop {
                // SAFETY: `status` is a live c_int the kernel fills in.
                let r = unsafe { libc::waitpid(pid, &mut status, 0) };
                if r == pid {
                    return Ok((pid.unsigned_abs(), status));
                }
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    return Err(Errno::ECHILD);
                }
            }
        }
        // An orphan we inherited: reaped, nothing else to do.
        // SAFETY: as above.
        let _ = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    }
}

/// Field 22 (`starttime`) of `/proc/PID/stat` — when the process started,
/// in clock ticks since boot. Together with the pid it names one process
/// for the life of the system: a reused pid has a later start time.
///
/// The second field (`comm`, in parentheses) may itself hold spaces and
/// parentheses, so the fields are counted from after the *last* `)`.
///
/// # Errors
/// `ESRCH` if there is no such process; `EIO` if the file is malformed.
///
/// # References
///  - [proc_pid_stat(5)](https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html)
#[doc(alias = "starttime")]
pub fn proc_start_time(pid: u32) -> Result<u64, Errno> {
    start_time_from_stat(&read_proc(pid, "stat")?)
}

/// Field 22 of a `/proc/PID/stat` text.
fn start_time_from_stat(stat: &str) -> Result<u64, Errno> {
    let (_, after_comm) = stat.rsplit_once(')').ok_or(Errno::EIO)?;
    // After `comm` (field 2) comes `state`, field 3; so field 22 is the 20th.
    after_comm.split_whitespace().nth(22 - 3).ok_or(Errno::EIO)?.parse().map_err(|_| Errno::EIO)
}

/// `setrlimit(RLIMIT_NOFILE)`: raises this process's soft limit of open
/// descriptors to its hard limit, and returns the new soft limit. The
/// daemon holds one descriptor per segment and per named POSIX object (a
/// memfd), where the kernel's objects cost no descriptor: with a 1024 soft
/// limit a namespace could not have more than about a thousand.
///
/// # Errors
/// getrlimit(2)'s, setrlimit(2)'s.
#[doc(alias = "setrlimit")]
pub fn raise_nofile_limit() -> Result<u64, Errno> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a live rlimit the kernel fills in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(Errno::EIO.raw())));
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: `raised` is a live rlimit the kernel reads.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(Errno::EIO.raw())));
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

/// [`cached_pid`]'s memory: 0 until asked, and again in a child.
static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// This process's pid, remembered (`getpid()` is a system call; glibc no
/// longer caches it). A `pthread_atfork` child handler, registered at the
/// first call, makes a `fork()` child (glibc's `fork`, `posix_spawn`'s
/// fork path) read its own at its next call; a child made without glibc's
/// `fork` (a raw `clone`) must call [`forget_cached_pid`] first thing (the
/// shim does, in every child it makes).
pub fn cached_pid() -> u32 {
    use std::sync::atomic::Ordering;
    static ATFORK: std::sync::Once = std::sync::Once::new();
    extern "C" fn forget() {
        forget_cached_pid();
    }
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic
        // (async-signal-safe, as a fork child's handler must be).
        unsafe { libc::pthread_atfork(None, None, Some(forget)) };
    });
    let p = u32::try_from(rustix::process::getpid().as_raw_nonzero().get()).unwrap_or(0);
    PID.store(p, Ordering::Relaxed);
    p
}

/// The wall-clock second the kernel stamps IPC times with
/// (`ktime_get_real_seconds()`: the coarse real-time clock, read from the
/// vDSO without a system call).
pub fn now_seconds() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live timespec the call fills.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec
}

/// In a new child process: [`cached_pid`] reads the pid anew
/// (async-signal-safe: one atomic store).
pub fn forget_cached_pid() {
    PID.store(0, std::sync::atomic::Ordering::Relaxed);
}

/// 64 random bits (`getrandom(2)`, not waiting for the entropy pool; a
/// failure leaves the pid and the clock's nanoseconds, still distinct
/// between live processes): a client's number for itself.
pub fn random_u64() -> u64 {
    let mut r = [0u8; 8];
    // SAFETY: `r` is a live buffer of the length given.
    let n = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), libc::GRND_NONBLOCK) };
    if n == 8 {
        return u64::from_ne_bytes(r);
    }
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (u64::from(std::process::id()) << 32) ^ u64::from(t.subsec_nanos()) ^ t.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_counts_after_the_last_paren() {
        let stat =
            "123 (a) b (c)) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1234 56 18446744073709551615";
        assert_eq!(start_time_from_stat(stat), Ok(98765));
        assert_eq!(start_time_from_stat("123 (x"), Err(Errno::EIO));
    }

    #[test]
    fn memlock_line() {
        let l = "Limit                     Soft Limit           Hard Limit           Units\n\
                 Max locked memory         8388608              16777216             bytes\n";
        assert_eq!(limit_from_limits(l, "Max locked memory"), Ok(8_388_608));
        let l = "Max locked memory         unlimited            unlimited            bytes\n";
        assert_eq!(limit_from_limits(l, "Max locked memory"), Ok(u64::MAX));
    }
}
