//! Descriptors handed over by a parent process.

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
