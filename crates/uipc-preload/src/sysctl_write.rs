//! Writes to the IPC sysctls under `/proc/sys/kernel` and
//! `/proc/sys/fs/mqueue`, served by the daemon for the caller's namespace
//! (the `procfs` module decides which paths are served).
//!
//! The kernel decides who may write when the file is opened
//! (`proc_sys_permission()`: mode 0644 owned by the root of the user
//! namespace that owns the IPC namespace — `ipc_permissions()`,
//! `mq_permissions()` — and the `*_next_id` files 0444, or 0666 for a
//! caller with `CAP_CHECKPOINT_RESTORE`), and again at each write
//! (`sysctl_perm()`); it parses and validates the value at each `write`
//! (`proc_dointvec_minmax()`, `proc_doulongvec_minmax()`,
//! `proc_ipc_sem_dointvec()`, …), whose errno (`EINVAL`) the writer gets.
//! Here:
//!
//! - **Permission** at open (`open`/`fopen` for writing) and in
//!   `access(W_OK)`: a write of no bytes to the daemon, which checks the
//!   permission and changes nothing (`EACCES`).
//! - **`open` for writing** gives a memfd holding the current value (so
//!   `O_RDWR` reads it), recorded with its inode; the shim's `write`
//!   wrapper sends what is written to a recorded descriptor to the daemon
//!   (`Client::sysctl_write`: parsed and validated there, as the kernel
//!   does; [`write_hook`], called by the `mq` module's `write`) and answers with its errno or the count, advancing the file
//!   offset by the bytes the kernel's parser would have consumed (the
//!   count `write` returns; the daemon says). A write at a non-zero offset
//!   changes nothing and reports every byte written, as the kernel's
//!   handlers do under the default `sysctl_writes_strict` = 1. `close` forgets the descriptor ([`forget`]); a descriptor closed by other
//!   means (`fclose` of an `fdopen` stream) is recognised by its inode
//!   changing, so a reused number is never taken for it.
//! - **`fopen` for writing** gives a `fopencookie` stream whose writes go
//!   to the daemon the same way (errors surface at `fflush`/`fclose`, as
//!   with the kernel's file).
//!
//! # Known missing features
//! - While a sysctl descriptor is open, `write` and `close` take a lock:
//!   a signal handler that calls them while the interrupted thread is in
//!   one of them on such a descriptor waits for it forever.
//! - `pwrite`, `writev` and `sendfile` to a served descriptor reach the
//!   memfd, not the daemon; `dup` copies are not recorded (their writes
//!   likewise).
//!
//! # References
//!  - [proc_sys(5)](https://man7.org/linux/man-pages/man5/proc_sys.5.html),
//!    `fs/proc/proc_sysctl.c:proc_sys_call_handler()`,
//!    `ipc/ipc_sysctl.c:ipc_permissions()`, `kernel/sysctl.c`
//!    (`proc_first_pos_non_zero_ignore()`)

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use libc::{off64_t, size_t, ssize_t, FILE};
use uipc_abi::Errno;

use crate::ret;

/// A descriptor `open` gave for writing a sysctl.
struct Writable {
    fd: c_int,
    /// The memfd's identity: a closed and reused number has another.
    dev: u64,
    ino: u64,
    name: &'static str,
}

/// The descriptors open for writing a sysctl.
static WRITABLE: Mutex<Vec<Writable>> = Mutex::new(Vec::new());
/// How many there are: `write` and `close` look no further while it is 0.
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// May the caller write sysctl `name`? (A write of nothing: the daemon
/// checks and changes nothing.) `None` when no daemon answers.
pub(crate) fn may_write(name: &str) -> Result<(), Errno> {
    crate::with_client(|c| c.sysctl_write(name, ""))
}

/// `(st_dev, st_ino)` of `fd`.
fn identity(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: stat is plain data; all zeros is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live stat the kernel fills in.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// Records `fd` (a memfd holding the value) as open for writing `name`.
pub(crate) fn record(fd: c_int, name: &'static str) -> Result<(), Errno> {
    let (dev, ino) = identity(fd).ok_or(Errno::EBADF)?;
    let mut w = WRITABLE.lock().unwrap_or_else(|e| e.into_inner());
    w.retain(|x| x.fd != fd);
    w.push(Writable { fd, dev, ino, name });
    COUNT.store(w.len(), Ordering::Release);
    Ok(())
}

/// The sysctl `fd` is open for writing, if it is one of ours still.
fn recorded(fd: c_int) -> Option<&'static str> {
    if COUNT.load(Ordering::Acquire) == 0 {
        return None;
    }
    let mut w = WRITABLE.lock().unwrap_or_else(|e| e.into_inner());
    let i = w.iter().position(|x| x.fd == fd)?;
    if identity(fd) != Some((w[i].dev, w[i].ino)) {
        // Closed behind our back and the number reused: not ours.
        w.swap_remove(i);
        COUNT.store(w.len(), Ordering::Release);
        return None;
    }
    Some(w[i].name)
}

/// Sends `count` bytes at `buf` to sysctl `name`, as one `write` of the
/// kernel's file at offset `pos`: the count, or the daemon's errno.
fn send(name: &str, pos: u64, buf: *const c_void, count: size_t) -> Result<usize, Errno> {
    // proc_first_pos_non_zero_ignore(): under sysctl_writes_strict = 1 a
    // write past the start changes nothing (and write(2) reports it all
    // written).
    if pos != 0 {
        return Ok(count);
    }
    // proc_sys_call_handler(): "if (count >= KMALLOC_MAX_SIZE) return -ENOMEM",
    // then the copy from the caller (EFAULT).
    if count >= 1 << 22 {
        return Err(Errno::ENOMEM);
    }
    let bytes = uipc_sys::map::read_at(buf as usize as u64, count)?;
    // The kernel's parsers take digits and white space: anything else is EINVAL.
    let text = String::from_utf8(bytes).map_err(|_| Errno::EINVAL)?;
    crate::with_client(|c| c.sysctl_write_count(name, &text))
}

/// The shim's `write` (the `mq` module's wrapper) for a descriptor opened
/// for writing an IPC sysctl: the daemon's write, with the kernel's
/// answer (`EINVAL` for a value the kernel would refuse, `EACCES` if no
/// longer permitted, `EFAULT`, or the bytes consumed); `None` for any other
/// descriptor.
pub(crate) fn write_hook(fd: c_int, buf: *const c_void, count: size_t) -> Option<ssize_t> {
    let name = recorded(fd)?;
    // SAFETY: lseek on the caller's descriptor, which is our memfd.
    let pos = unsafe { libc::lseek64(fd, 0, libc::SEEK_CUR) };
    let r = send(name, u64::try_from(pos).unwrap_or(0), buf, count).and_then(|n| {
        let step = off64_t::try_from(n).map_err(|_| Errno::EINVAL)?;
        // SAFETY: as above; the offset moves past what was written.
        unsafe { libc::lseek64(fd, step, libc::SEEK_CUR) };
        ssize_t::try_from(n).map_err(|_| Errno::EOVERFLOW)
    });
    Some(ret::ssize(r))
}

/// The shim's `close` (the `mq` module's wrapper): forgets a sysctl
/// descriptor.
pub(crate) fn forget(fd: c_int) {
    if COUNT.load(Ordering::Acquire) != 0 {
        let mut w = WRITABLE.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|x| x.fd != fd);
        COUNT.store(w.len(), Ordering::Release);
    }
}

/// glibc's `cookie_io_functions_t`.
#[repr(C)]
struct CookieIo {
    read: Option<unsafe extern "C" fn(*mut c_void, *mut c_char, size_t) -> ssize_t>,
    write: Option<unsafe extern "C" fn(*mut c_void, *const c_char, size_t) -> ssize_t>,
    seek: Option<unsafe extern "C" fn(*mut c_void, *mut off64_t, c_int) -> c_int>,
    close: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
}

extern "C" {
    /// glibc's `fopencookie(cookie, mode, functions)`.
    fn fopencookie(cookie: *mut c_void, mode: *const c_char, io: CookieIo) -> *mut FILE;
}

/// A `fopen`ed sysctl stream's state.
struct Cookie {
    name: &'static str,
    /// The value when opened, for reading (`r+`, `w+`).
    text: Vec<u8>,
    pos: usize,
}

unsafe extern "C" fn cookie_read(c: *mut c_void, buf: *mut c_char, size: size_t) -> ssize_t {
    // SAFETY: `c` is the Box<Cookie> given to fopencookie, alive until close.
    let c = unsafe { &mut *c.cast::<Cookie>() };
    let rest = c.text.get(c.pos..).unwrap_or(&[]);
    let n = rest.len().min(size);
    // SAFETY: stdio's buffer holds `size` bytes; `n` ≤ size.
    unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), buf.cast::<u8>(), n) };
    c.pos += n;
    ssize_t::try_from(n).unwrap_or(0)
}

unsafe extern "C" fn cookie_write(c: *mut c_void, buf: *const c_char, size: size_t) -> ssize_t {
    // SAFETY: as in cookie_read.
    let c = unsafe { &mut *c.cast::<Cookie>() };
    let r = send(c.name, u64::try_from(c.pos).unwrap_or(u64::MAX), buf.cast(), size);
    if let Ok(n) = r {
        c.pos += n;
    }
    ret::ssize(r.and_then(|n| ssize_t::try_from(n).map_err(|_| Errno::EOVERFLOW)))
}

unsafe extern "C" fn cookie_close(c: *mut c_void) -> c_int {
    // SAFETY: the Box<Cookie> given to fopencookie; stdio calls close once.
    drop(unsafe { Box::from_raw(c.cast::<Cookie>()) });
    0
}

/// A stream for writing (and, with `+`, reading) sysctl `name`, whose
/// value is `text` now; `mode` is the caller's `fopen` mode.
pub(crate) fn stream(name: &'static str, text: String, mode: *const c_char) -> Result<*mut FILE, Errno> {
    let cookie = Box::into_raw(Box::new(Cookie { name, text: text.into_bytes(), pos: 0 }));
    let io = CookieIo { read: Some(cookie_read), write: Some(cookie_write), seek: None, close: Some(cookie_close) };
    // SAFETY: `cookie` lives until stdio calls cookie_close; `mode` is the
    // caller's NUL-terminated fopen mode.
    let f = unsafe { fopencookie(cookie.cast(), mode, io) };
    if f.is_null() {
        // SAFETY: not handed to stdio: still ours.
        drop(unsafe { Box::from_raw(cookie) });
        // SAFETY: reads this thread's errno slot, set by fopencookie.
        return Err(Errno::from_raw(unsafe { *libc::__errno_location() }));
    }
    Ok(f)
}
