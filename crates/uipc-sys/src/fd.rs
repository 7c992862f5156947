//! Descriptors handed over between a parent process and its child, and
//! the file system a directory lies on.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use rustix::io::FdFlags;
use uipc_abi::Errno;

/// Takes ownership of descriptor `raw`, inherited across `execve` and named
/// on the command line (`--ready-fd 5`); marks it close-on-exec again.
///
/// # Errors
/// `EBADF` if `raw` is not an open descriptor or is a standard stream.
pub fn adopt_inherited_fd(raw: RawFd) -> Result<OwnedFd, Errno> {
    if raw < 3 {
        return Err(Errno::EBADF);
    }
    // Probe without taking ownership: F_GETFD only inspects the table.
    // SAFETY: `raw` is only borrowed for the duration of the call.
    let probe = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    rustix::io::fcntl_getfd(probe).map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    // SAFETY: `raw` is open (checked above) and was inherited across execve:
    // nothing in this fresh image owns it, and callers adopt it once at startup.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC).map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    Ok(fd)
}

/// The file `fd` refers to, as `(st_dev, st_ino)` (`fstat`): tells
/// whether a descriptor number kept across calls still names the file it
/// named (a program may close it and reuse the number).
///
/// # Errors
/// `EBADF` if `fd` is not open; `fstat`'s errors.
pub fn identity(fd: std::os::fd::BorrowedFd<'_>) -> Result<(u64, u64), Errno> {
    let st = rustix::fs::fstat(fd).map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    Ok((st.st_dev, st.st_ino))
}

/// Hands descriptors to the program `cmd` starts: each `(fd, number)`
/// pair makes `fd` open as `number` in the new program (not close-on-exec
/// there), as a shell's `4<&5` does; the program is told the numbers
/// (`uipc daemon --ready-fd 3`). The descriptors stay close-on-exec here,
/// and are held by `cmd` until it is dropped.
///
/// # Errors
/// `EINVAL` for a target number below 3 (the standard streams are
/// `Command`'s own) or of 64 and more; `fcntl`'s errors.
///
/// # References
///  - [dup2(2)](https://man7.org/linux/man-pages/man2/dup2.2.html)
pub fn inherit_fds(cmd: &mut std::process::Command, fds: &[(std::os::fd::BorrowedFd<'_>, RawFd)]) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    /// The copies lie at or above this, so that no target clobbers a copy.
    const ABOVE: RawFd = 64;
    let mut pairs = Vec::with_capacity(fds.len());
    for (fd, target) in fds {
        if !(3..ABOVE).contains(target) {
            return Err(Errno::EINVAL);
        }
        let copy = rustix::io::fcntl_dupfd_cloexec(fd, ABOVE).map_err(|e| Errno::from_raw(e.raw_os_error()))?;
        pairs.push((copy, *target));
    }
    let raw: Vec<(RawFd, RawFd)> = pairs.iter().map(|(c, t)| (c.as_raw_fd(), *t)).collect();
    // SAFETY: the closure runs in the forked child before exec: it makes
    // only dup2 calls (async-signal-safe) and allocates nothing. The
    // copies it reads are owned by the closure itself (`_held`), so they
    // are open for as long as `cmd` may spawn.
    unsafe {
        cmd.pre_exec(move || {
            let _held = &pairs;
            for &(copy, target) in &raw {
                // dup2 leaves FD_CLOEXEC clear on `target`: the program keeps it.
                if libc::dup2(copy, target) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        })
    };
    Ok(())
}

/// Whether `dir` lies on a tmpfs (`statfs`'s `f_type` is `TMPFS_MAGIC`):
/// memory as files there costs no disk writes.
///
/// # References
///  - [statfs(2)](https://man7.org/linux/man-pages/man2/statfs.2.html)
pub fn on_tmpfs(dir: &std::path::Path) -> bool {
    /// `TMPFS_MAGIC` of `<linux/magic.h>`.
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    // `f_type`'s type differs between architectures.
    #[allow(clippy::useless_conversion)]
    rustix::fs::statfs(dir).is_ok_and(|st| i64::try_from(st.f_type).is_ok_and(|t| t == TMPFS_MAGIC))
}
