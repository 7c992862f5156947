//! POSIX message queues served by the daemon: `mq_open` (its variadic C
//! entry point is `src/mq_open.c`), `mq_close`, `mq_unlink`, `mq_send`,
//! `mq_timedsend`, `mq_receive`, `mq_timedreceive`, `mq_getattr`,
//! `mq_setattr` and `mq_notify`, with glibc's signatures.
//!
//! An `mqd_t` is a real descriptor: an open description of the queue's
//! pipe (`uipc_sys::mqfd`), readable iff the queue holds a message and
//! writable iff it is not full, so that
//! `poll`, `select` and `epoll` see the queue; its `O_NONBLOCK` is the open
//! description's, shared by `dup` and `fork` and shown by
//! `fcntl(F_GETFL)`; it is close-on-exec. The shim keeps a table of its
//! queue descriptors and wraps `close`, `dup`, `dup2`, `dup3` and
//! `fcntl(F_DUPFD[_CLOEXEC])` (in `src/mq_open.c`) to tell the daemon, so
//! that a close of any descriptor of the queue by the registered process
//! drops its notification as Linux's does; `read` of a queue descriptor
//! gives the status line and `write` fails with `EINVAL`; `fcntl(F_GETFL)`
//! shows `mq_open`'s access mode (the pipe's is `O_RDWR`) and
//! `fcntl(F_SETFL)` of `O_DIRECT` fails with `EINVAL`, as Linux's.
//!
//! A send or receive that sleeps does so on a pooled connection of its own;
//! a signal handler without `SA_RESTART` ends it with `EINTR` (unless it
//! had completed), one with `SA_RESTART` lets it go on, as Linux restarts
//! these calls. `SIGEV_SIGNAL` notifications are sent by the daemon with
//! the kernel's siginfo (`SI_MESGQ`, the sender's pid and uid, the value);
//! `SIGEV_THREAD` runs the function in a new thread made with the given
//! attributes, as glibc does, from a helper thread that waits for the
//! daemon's word.
//!
//! # References
//!  - [mq_overview(7)], [mq_open(3)], [mq_send(3)], [mq_receive(3)],
//!    [mq_notify(3)], [mq_getattr(3)]
//!
//! [mq_overview(7)]: https://man7.org/linux/man-pages/man7/mq_overview.7.html
//! [mq_open(3)]: https://man7.org/linux/man-pages/man3/mq_open.3.html
//! [mq_send(3)]: https://man7.org/linux/man-pages/man3/mq_send.3.html
//! [mq_receive(3)]: https://man7.org/linux/man-pages/man3/mq_receive.3.html
//! [mq_notify(3)]: https://man7.org/linux/man-pages/man3/mq_notify.3.html
//! [mq_getattr(3)]: https://man7.org/linux/man-pages/man3/mq_getattr.3.html

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use libc::{size_t, ssize_t};
use uipc_abi::Errno;
use uipc_client::{Client, MqHandle};

use crate::{client, process_entry_client, ret, GATE};

/// The process's queue descriptors and their open descriptions.
static MQFDS: Mutex<BTreeMap<c_int, u64>> = Mutex::new(BTreeMap::new());
/// The status file offset of each open description (a read advances it,
/// `lseek` sets it).
static OFFSETS: Mutex<BTreeMap<u64, usize>> = Mutex::new(BTreeMap::new());
/// The access mode `mq_open` gave each open description (`F_GETFL`
/// shows it, where the descriptor itself is an `O_RDWR` pipe's).
static ACCMODES: Mutex<BTreeMap<u64, c_int>> = Mutex::new(BTreeMap::new());
/// How many entries [`MQFDS`] has: 0 lets `read`, `write`, `close` and the
/// `dup`s go straight to libc.
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// A handle no description has: the daemon then lets the core decide the
/// error (`EBADF`, or an `EINVAL` that Linux checks first).
const NOT_A_QUEUE: MqHandle = MqHandle(u64::MAX);

fn table() -> std::sync::MutexGuard<'static, BTreeMap<c_int, u64>> {
    MQFDS.lock().unwrap_or_else(|e| e.into_inner())
}

fn handle_of(fd: c_int) -> Option<MqHandle> {
    if COUNT.load(Ordering::Acquire) == 0 {
        return None;
    }
    table().get(&fd).map(|h| MqHandle(*h))
}

fn insert(fd: c_int, handle: MqHandle) {
    let mut t = table();
    if t.insert(fd, handle.0).is_none() {
        COUNT.fetch_add(1, Ordering::AcqRel);
    }
}

fn remove(fd: c_int) -> Option<MqHandle> {
    if COUNT.load(Ordering::Acquire) == 0 {
        return None;
    }
    let mut t = table();
    let h = t.remove(&fd)?;
    COUNT.fetch_sub(1, Ordering::AcqRel);
    Some(MqHandle(h))
}

/// Runs `f` with the client inside the fork gate.
fn with<T>(f: impl FnOnce(&Client) -> Result<T, Errno>) -> Result<T, Errno> {
    let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
    f(client()?)
}

/// `real!(c"name", fn type)`: libc's definition of `name` (the next one,
/// looked up once), or `None`.
macro_rules! real {
    ($name:literal, $ty:ty) => {{
        static F: OnceLock<usize> = OnceLock::new();
        let f = crate::procfs::next(&F, $name);
        if f == 0 {
            None
        } else {
            // SAFETY: `f` is libc's definition of this symbol, whose C type is `$ty`.
            Some(unsafe { std::mem::transmute::<usize, $ty>(f) })
        }
    }};
}

/// Reads a C string of at most `PATH_MAX` bytes.
fn read_cstr(addr: u64) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    while out.len() < 4096 {
        let chunk = uipc_sys::map::read_at(addr + u64::try_from(out.len()).unwrap_or(0), 1)?;
        match chunk.first() {
            Some(0) | None => return Ok(out),
            Some(b) => out.push(*b),
        }
    }
    Ok(out)
}

fn i64_at(b: &[u8], off: usize) -> i64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(off..off + 8) {
        a.copy_from_slice(s);
    }
    i64::from_ne_bytes(a)
}

fn i32_at(b: &[u8], off: usize) -> i32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(off..off + 4) {
        a.copy_from_slice(s);
    }
    i32::from_ne_bytes(a)
}

/// `mq_open`'s Rust half, called by `mq_open` in `src/mq_open.c` with
/// `mode` and `attr` read only under `O_CREAT`, as glibc reads them.
///
/// # Errors
/// mq_open(3)'s; `ENOSYS` when no daemon answers.
///
/// # Safety
/// `name` must be a C string or an unmapped address (read through checked copies).
#[no_mangle]
pub unsafe extern "C" fn uipc_preload_mq_open(
    name: *const c_char,
    oflag: c_int,
    mode: c_uint,
    attr: *const c_void,
) -> c_int {
    ret::int((|| {
        let name = read_cstr(name as usize as u64)?;
        // glibc: "if (name[0] != '/') return EINVAL" and it passes name + 1,
        // with attr only under O_CREAT.
        let Some((b'/', rest)) = name.split_first() else { return Err(Errno::EINVAL) };
        let attr = if oflag & libc::O_CREAT != 0 { attr } else { std::ptr::null() };
        open_kernel_name(rest, oflag, mode, attr)
    })())
}

/// The `mq_open` system call on the kernel's name: a non-NULL `attr` is
/// copied first, even without `O_CREAT` (MQ-OPEN-2).
fn open_kernel_name(name: &[u8], oflag: c_int, mode: c_uint, attr: *const c_void) -> Result<c_int, Errno> {
    let attr = if attr.is_null() {
        None
    } else {
        let b = uipc_sys::map::read_at(attr as usize as u64, 64)?;
        Some((i64_at(&b, 8), i64_at(&b, 16)))
    };
    let (h, fd) = with(|c| c.mq_open(name, oflag, mode, attr))?;
    ACCMODES.lock().unwrap_or_else(|e| e.into_inner()).insert(h.0, oflag & libc::O_ACCMODE);
    let fd = fd.into_raw_fd();
    insert(fd, h);
    Ok(fd)
}

/// `syscall(SYS_mq_open, name, oflag, mode, attr)`: the kernel's call —
/// the name without glibc's `/` rule, `attr` read whenever not NULL.
///
/// # Safety
/// `name` must be a C string or an unmapped address (checked copies).
pub(crate) unsafe fn raw_mq_open(name: *const c_char, oflag: c_int, mode: c_uint, attr: *const c_void) -> c_int {
    ret::int(read_cstr(name as usize as u64).and_then(|n| open_kernel_name(&n, oflag, mode, attr)))
}

/// `syscall(SYS_mq_unlink, name)`: the kernel's name, and its `EPERM`.
///
/// # Safety
/// `name` must be a C string or an unmapped address (checked copies).
pub(crate) unsafe fn raw_mq_unlink(name: *const c_char) -> c_int {
    ret::int(read_cstr(name as usize as u64).and_then(|n| with(|c| c.mq_unlink(&n))).map(|()| 0))
}

/// `syscall(SYS_mq_getsetattr, mqdes, new, old)`.
///
/// # Safety
/// As [`mq_setattr`].
pub(crate) unsafe fn raw_mq_getsetattr(mqdes: c_int, new: *const libc::mq_attr, old: *mut libc::mq_attr) -> c_int {
    ret::int(getsetattr(mqdes, new, old))
}

/// `syscall(SYS_mq_notify, mqdes, sevp)`: as [`mq_notify`] except
/// `SIGEV_THREAD`, which the kernel implements with a netlink socket in
/// `sigev_signo` that uipc cannot serve: `ENOSYS`.
///
/// # Safety
/// As [`mq_notify`].
pub(crate) unsafe fn raw_mq_notify(mqdes: c_int, sevp: *const libc::sigevent) -> c_int {
    if !sevp.is_null() {
        match uipc_sys::map::read_at(sevp as usize as u64, 16) {
            Ok(b) if i32_at(&b, 12) == libc::SIGEV_THREAD => return ret::int(Err(Errno::ENOSYS)),
            Err(e) => return ret::int(Err(e)),
            Ok(_) => {}
        }
    }
    // SAFETY: as mq_notify.
    unsafe { mq_notify(mqdes, sevp) }
}

/// `uipc_preload_mq_dup(old, new)`: `new` is now a duplicate of `old`
/// (called after libc's `fcntl(F_DUPFD[_CLOEXEC])` in `src/mq_open.c`).
///
/// # Safety
/// None: plain values.
#[no_mangle]
pub unsafe extern "C" fn uipc_preload_mq_dup(oldfd: c_int, newfd: c_int) {
    if let Some(h) = handle_of(oldfd) {
        insert(newfd, h);
        let _ = with(|c| c.mq_dup(h));
    }
}

/// `uipc_preload_mq_getfl(fd, flags)`: what `fcntl(fd, F_GETFL)` answers
/// given libc's answer `flags` (called by `fcntl` in `src/mq_open.c`). For
/// a queue descriptor, as `do_mq_open()`'s file shows it: the access mode
/// `mq_open` was given and the status flags `F_SETFL` can change
/// (`SETFL_MASK`: `O_APPEND`, `O_NONBLOCK`, `O_DIRECT`, `O_NOATIME`,
/// `FASYNC`), not the pipe's `O_RDWR` and `O_LARGEFILE`. Anything else is
/// `flags`.
///
/// # Safety
/// None: plain values.
#[no_mangle]
pub unsafe extern "C" fn uipc_preload_mq_getfl(fd: c_int, flags: c_int) -> c_int {
    let Some(h) = handle_of(fd) else { return flags };
    let Some(acc) = ACCMODES.lock().unwrap_or_else(|e| e.into_inner()).get(&h.0).copied() else { return flags };
    let setfl = libc::O_APPEND | libc::O_NONBLOCK | libc::O_DIRECT | libc::O_NOATIME | libc::O_ASYNC;
    acc | (flags & setfl)
}

/// `uipc_preload_mq_setfl(fd, flags)`: after `fcntl(fd, F_SETFL, flags)`
/// succeeded (called by `fcntl` in `src/mq_open.c`), a queue descriptor's
/// new `O_NONBLOCK` is told to the daemon as `mq_setattr` tells it: a
/// daemon restarted since `mq_open` holds a description of its own, and
/// a durable one records the flag (docs/architecture.md, "Restart").
///
/// # Safety
/// None: plain values.
#[no_mangle]
pub unsafe extern "C" fn uipc_preload_mq_setfl(fd: c_int, flags: c_int) {
    if let Some(h) = handle_of(fd) {
        let nonblock = i64::from(flags & libc::O_NONBLOCK);
        let _ = with(|c| c.mq_getsetattr(h, Some(nonblock)));
    }
}

/// `uipc_preload_mq_is(fd)`: 1 if `fd` is a queue descriptor, else 0.
///
/// # Safety
/// None: plain values.
#[no_mangle]
pub unsafe extern "C" fn uipc_preload_mq_is(fd: c_int) -> c_int {
    c_int::from(handle_of(fd).is_some())
}

/// `mq_close(mqdes)` — `close(2)` of the descriptor.
///
/// # Safety
/// As close(2).
#[no_mangle]
pub unsafe extern "C" fn mq_close(mqdes: c_int) -> c_int {
    // SAFETY: our close, as C calls it.
    unsafe { close(mqdes) }
}

/// Tells the daemon that a queue descriptor was closed.
fn closed(h: MqHandle) {
    // A daemon that is gone has nothing left to release.
    let _ = with(|c| c.mq_close(h));
}

/// `close(fd)` — libc's, and for a queue descriptor the daemon is told
/// (the registered process's close drops its notification, MQ-NOT-10).
///
/// # Safety
/// As close(2).
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    let Some(real) = real!(c"close", unsafe extern "C" fn(c_int) -> c_int) else {
        return ret::int(Err(Errno::ENOSYS));
    };
    crate::sysctl_write::forget(fd);
    let h = remove(fd);
    // SAFETY: libc's close, called as C calls it.
    let r = unsafe { real(fd) };
    if let Some(h) = h {
        closed(h);
    }
    r
}

/// `dup(fd)` — libc's; a queue descriptor's copy is recorded.
///
/// # Safety
/// As dup(2).
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    let Some(real) = real!(c"dup", unsafe extern "C" fn(c_int) -> c_int) else {
        return ret::int(Err(Errno::ENOSYS));
    };
    // SAFETY: libc's dup, called as C calls it.
    let r = unsafe { real(fd) };
    if r >= 0 {
        // SAFETY: plain values.
        unsafe { uipc_preload_mq_dup(fd, r) };
    }
    r
}

/// `dup2(old, new)` — libc's; a queue descriptor at `new` is closed
/// first (as the kernel closes it), a queue's copy recorded.
///
/// # Safety
/// As dup2(2).
#[no_mangle]
pub unsafe extern "C" fn dup2(oldfd: c_int, newfd: c_int) -> c_int {
    let Some(real) = real!(c"dup2", unsafe extern "C" fn(c_int, c_int) -> c_int) else {
        return ret::int(Err(Errno::ENOSYS));
    };
    // SAFETY: libc's dup2, called as C calls it.
    let r = unsafe { real(oldfd, newfd) };
    if r >= 0 && oldfd != newfd {
        if let Some(h) = remove(newfd) {
            closed(h);
        }
        // SAFETY: plain values.
        unsafe { uipc_preload_mq_dup(oldfd, newfd) };
    }
    r
}

/// `dup3(old, new, flags)` — as [`dup2`].
///
/// # Safety
/// As dup3(2).
#[no_mangle]
pub unsafe extern "C" fn dup3(oldfd: c_int, newfd: c_int, flags: c_int) -> c_int {
    let Some(real) = real!(c"dup3", unsafe extern "C" fn(c_int, c_int, c_int) -> c_int) else {
        return ret::int(Err(Errno::ENOSYS));
    };
    // SAFETY: libc's dup3, called as C calls it.
    let r = unsafe { real(oldfd, newfd, flags) };
    if r >= 0 {
        if let Some(h) = remove(newfd) {
            closed(h);
        }
        // SAFETY: plain values.
        unsafe { uipc_preload_mq_dup(oldfd, newfd) };
    }
    r
}

/// `read(fd, buf, count)` — libc's; on a queue descriptor, the queue's
/// status line (`QSIZE:… NOTIFY:… SIGNO:… NOTIFY_PID:…`, MQ-FS-3),
/// from its start at every read (no file offset is kept).
///
/// # Safety
/// As read(2).
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    let Some(h) = handle_of(fd) else {
        let Some(real) = real!(c"read", unsafe extern "C" fn(c_int, *mut c_void, size_t) -> ssize_t) else {
            return -1;
        };
        // SAFETY: libc's read, called as C calls it.
        return unsafe { real(fd, buf, count) };
    };
    let r = with(|c| c.mq_status(h)).and_then(|line| {
        let mut offsets = OFFSETS.lock().unwrap_or_else(|e| e.into_inner());
        let off = offsets.get(&h.0).copied().unwrap_or(0).min(line.len());
        let n = (line.len() - off).min(count);
        // SAFETY: `buf` is the caller's buffer of `count` bytes (read's contract); checked copy.
        unsafe { uipc_sys::map::write_at(buf as usize as u64, &line.as_bytes()[off..off + n]) }?;
        offsets.insert(h.0, off + n);
        Ok(n)
    });
    ret::ssize(r.and_then(|n| ssize_t::try_from(n).map_err(|_| Errno::EINVAL)))
}

/// `lseek(fd, offset, whence)` — libc's; on a queue descriptor, moves the
/// status file's offset (`SEEK_SET`, `SEEK_CUR`).
///
/// # Safety
/// As lseek(2).
#[no_mangle]
pub unsafe extern "C" fn lseek(fd: c_int, offset: libc::off_t, whence: c_int) -> libc::off_t {
    let Some(h) = handle_of(fd) else {
        let Some(real) = real!(c"lseek", unsafe extern "C" fn(c_int, libc::off_t, c_int) -> libc::off_t) else {
            return -1;
        };
        // SAFETY: libc's lseek, called as C calls it.
        return unsafe { real(fd, offset, whence) };
    };
    let mut offsets = OFFSETS.lock().unwrap_or_else(|e| e.into_inner());
    let cur = i64::try_from(offsets.get(&h.0).copied().unwrap_or(0)).unwrap_or(0);
    let to = match whence {
        libc::SEEK_SET => offset,
        libc::SEEK_CUR => cur.saturating_add(offset),
        _ => -1,
    };
    match usize::try_from(to) {
        Ok(v) => {
            offsets.insert(h.0, v);
            to
        }
        Err(_) => libc::off_t::from(ret::int(Err(Errno::EINVAL))),
    }
}

/// `lseek64` — [`lseek`].
///
/// # Safety
/// As lseek(2).
#[no_mangle]
pub unsafe extern "C" fn lseek64(fd: c_int, offset: libc::off_t, whence: c_int) -> libc::off_t {
    // SAFETY: as lseek.
    unsafe { lseek(fd, offset, whence) }
}

/// `write(fd, buf, count)` — libc's; `EINVAL` on a queue descriptor (MQ-FD-2);
/// the daemon's sysctl write on a descriptor opened for writing an IPC
/// sysctl (the `sysctl_write` module).
///
/// # Safety
/// As write(2).
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    if let Some(r) = crate::sysctl_write::write_hook(fd, buf, count) {
        return r;
    }
    if handle_of(fd).is_some() {
        return ret::ssize(Err(Errno::EINVAL));
    }
    let Some(real) = real!(c"write", unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t) else {
        return -1;
    };
    // SAFETY: libc's write, called as C calls it.
    unsafe { real(fd, buf, count) }
}

/// `mq_unlink(name)` — removes a queue's name.
///
/// # Errors
/// mq_unlink(3)'s: `EINVAL` (no leading `/`, glibc), `ENOENT`,
/// `ENAMETOOLONG`, `EACCES` (glibc turns the kernel's `EPERM` into it).
///
/// # Safety
/// `name` must be a C string (read through checked copies).
#[no_mangle]
pub unsafe extern "C" fn mq_unlink(name: *const c_char) -> c_int {
    ret::int((|| {
        let name = read_cstr(name as usize as u64)?;
        // glibc: "if (name[0] != '/') return EINVAL".
        let Some((b'/', rest)) = name.split_first() else { return Err(Errno::EINVAL) };
        // glibc: "if (ret < 0 && errno == EPERM) __set_errno (EACCES);"
        match with(|c| c.mq_unlink(rest)) {
            Err(Errno::EPERM) => Err(Errno::EACCES),
            r => r.map(|()| 0),
        }
    })())
}

/// Reads the caller's `struct timespec` as `(tv_sec, tv_nsec)` (EFAULT).
fn read_timespec(addr: *const libc::timespec) -> Result<Option<(i64, i64)>, Errno> {
    if addr.is_null() {
        return Ok(None);
    }
    let b = uipc_sys::map::read_at(addr as usize as u64, 16)?;
    Ok(Some((i64_at(&b, 0), i64_at(&b, 8))))
}

/// Runs a call that may sleep on a pooled connection, outside the gate.
fn sleeping<T>(f: impl FnOnce(&mut uipc_client::Sleeper) -> Result<T, Errno>) -> Result<T, Errno> {
    let c = process_entry_client()?;
    let mut sleeper = {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        c.sleeper().map_err(|_| Errno::ENOSYS)?
    };
    let r = f(&mut sleeper);
    let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
    c.give_back(sleeper);
    r
}

/// The largest message one request carries (a frame is at most
/// `uipc_proto::MAX_FRAME` bytes).
const MSG_MAX: usize = uipc_proto::MAX_FRAME - 256;

/// `mq_timedsend(mqdes, msg, len, prio, abs_timeout)` — sends, sleeping
/// while the queue is full until the absolute `CLOCK_REALTIME` deadline.
///
/// # Errors
/// mq_send(3)'s: `EFAULT`, `EINVAL`, `EBADF`, `EMSGSIZE`, `EAGAIN`,
/// `ETIMEDOUT`, `EINTR`; `ENOSYS` when no daemon answers.
///
/// # Safety
/// `msg` and `abs_timeout` are only read, through checked copies.
#[no_mangle]
pub unsafe extern "C" fn mq_timedsend(
    mqdes: c_int,
    msg: *const c_char,
    len: size_t,
    prio: c_uint,
    abs_timeout: *const libc::timespec,
) -> c_int {
    ret::int((|| {
        let deadline = read_timespec(abs_timeout)?;
        let h = handle_of(mqdes).unwrap_or(NOT_A_QUEUE);
        if h != NOT_A_QUEUE && len <= MSG_MAX {
            // The common case: the caller's bytes (in place when their
            // pages passed a checked copy) sent on the queue's page.
            let copied;
            // SAFETY: the bytes are used within this call only.
            let bytes = match unsafe { crate::usermem::readable(msg as usize as u64, len) } {
                Some(b) => Some(b),
                None => {
                    copied = crate::usermem::read(msg as usize as u64, len).ok();
                    copied.as_deref()
                }
            };
            if let Some(b) = bytes {
                let c = process_entry_client()?;
                // SAFETY: `mqdes` is a queue descriptor of this process
                // (in the table); a concurrent close is the program's race,
                // as with any descriptor.
                let fd = unsafe { BorrowedFd::borrow_raw(mqdes) };
                let fast = {
                    let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
                    c.mq_send_wait(h, fd, b, prio, deadline)
                };
                if let Some(r) = fast {
                    return r.map(|()| 0);
                }
                return sleeping(|s| s.mq_send(h, b, prio, deadline)).map(|()| 0);
            }
        }
        let bytes = if len > MSG_MAX {
            // Larger than any queue whose messages travel in one request.
            Err(Errno::EMSGSIZE)
        } else {
            uipc_sys::map::read_at(msg as usize as u64, len)
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                // The kernel checks the descriptor and the size before the copy.
                let attr = with(|c| c.mq_getsetattr(h, None))?;
                let too_big = u64::try_from(len).unwrap_or(u64::MAX) > attr.msgsize.unsigned_abs();
                return Err(if too_big { Errno::EMSGSIZE } else { e });
            }
        };
        sleeping(|s| s.mq_send(h, &bytes, prio, deadline)).map(|()| 0)
    })())
}

/// `mq_send(mqdes, msg, len, prio)` — [`mq_timedsend`] with no deadline.
///
/// # Safety
/// As [`mq_timedsend`].
#[no_mangle]
pub unsafe extern "C" fn mq_send(mqdes: c_int, msg: *const c_char, len: size_t, prio: c_uint) -> c_int {
    // SAFETY: as mq_timedsend.
    unsafe { mq_timedsend(mqdes, msg, len, prio, std::ptr::null()) }
}

/// `mq_timedreceive(mqdes, buf, len, prio, abs_timeout)` — receives the
/// oldest message of the highest priority; returns its length.
///
/// # Errors
/// mq_receive(3)'s: `EFAULT`, `EINVAL`, `EBADF`, `EMSGSIZE`, `EAGAIN`,
/// `ETIMEDOUT`, `EINTR`; `ENOSYS` when no daemon answers.
///
/// # Safety
/// `buf` (and `prio` if not null) must be the caller's buffers: written
/// through checked copies.
#[no_mangle]
pub unsafe extern "C" fn mq_timedreceive(
    mqdes: c_int,
    buf: *mut c_char,
    len: size_t,
    prio: *mut c_uint,
    abs_timeout: *const libc::timespec,
) -> ssize_t {
    let r = (|| {
        let deadline = read_timespec(abs_timeout)?;
        let h = handle_of(mqdes).unwrap_or(NOT_A_QUEUE);
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        if h != NOT_A_QUEUE {
            if let Some(r) = receive_fast(mqdes, h, buf, len, prio, deadline) {
                return r;
            }
        }
        let (data, p) = sleeping(|s| s.mq_receive(h, len, deadline))?;
        // After the message was taken, as do_mq_timedreceive() copies out.
        if !prio.is_null() {
            // SAFETY: `prio` is the caller's unsigned int (mq_receive's contract); checked copy.
            unsafe { uipc_sys::map::write_at(prio as usize as u64, &p.to_ne_bytes()) }?;
        }
        // SAFETY: `buf` is the caller's buffer of `len` bytes; checked copy.
        unsafe { uipc_sys::map::write_at(buf as usize as u64, &data) }?;
        ssize_t::try_from(data.len()).map_err(|_| Errno::EMSGSIZE)
    })();
    ret::ssize(r)
}

thread_local! {
    /// Where a fast receive puts the text before it goes to the caller's
    /// buffer (a buffer longer than `mq_msgsize` is not known writable
    /// beyond what earlier receives wrote).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes `bytes` at the caller's `addr`: in place when a checked write
/// covered its pages, else by a checked copy (`EFAULT`).
fn put(addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    // SAFETY: `addr` is the caller's buffer of at least `bytes.len()`
    // bytes (mq_receive's contract), used within this call only.
    match unsafe { crate::usermem::writable(addr, bytes.len()) } {
        Some(to) => {
            to.copy_from_slice(bytes);
            Ok(())
        }
        // SAFETY: as above; the copy is checked (EFAULT, never a fault).
        None => unsafe { crate::usermem::write_parts(addr, bytes, &[]) },
    }
}

/// `mq_timedreceive` on the queue's page in this process (watching an
/// empty queue a moment first); `None` for the daemon.
fn receive_fast(
    mqdes: c_int,
    h: MqHandle,
    buf: *mut c_char,
    len: u64,
    prio: *mut c_uint,
    deadline: Option<(i64, i64)>,
) -> Option<Result<ssize_t, Errno>> {
    let c = {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        client().ok()?
    };
    // SAFETY: `mqdes` is a queue descriptor of this process (in the table).
    let fd = unsafe { BorrowedFd::borrow_raw(mqdes) };
    let run = |scratch: &mut Vec<u8>| {
        let r = {
            let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
            c.mq_receive_fast(h, fd, len, deadline, scratch, true)?
        };
        Some(r.and_then(|(p, n)| {
            // do_mq_timedreceive(): the priority, then the text, after the
            // message was taken (a fault loses it, as in Linux).
            if !prio.is_null() {
                put(prio as usize as u64, &p.to_ne_bytes())?;
            }
            put(buf as usize as u64, scratch.get(..n).ok_or(Errno::EFAULT)?)?;
            ssize_t::try_from(n).map_err(|_| Errno::EMSGSIZE)
        }))
    };
    // A signal handler receiving while this thread is inside a receive
    // uses a buffer of its own.
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut scratch) => run(&mut scratch),
        Err(_) => run(&mut Vec::new()),
    })
}

/// `mq_receive(mqdes, buf, len, prio)` — [`mq_timedreceive`] with no deadline.
///
/// # Safety
/// As [`mq_timedreceive`].
#[no_mangle]
pub unsafe extern "C" fn mq_receive(mqdes: c_int, buf: *mut c_char, len: size_t, prio: *mut c_uint) -> ssize_t {
    // SAFETY: as mq_timedreceive.
    unsafe { mq_timedreceive(mqdes, buf, len, prio, std::ptr::null()) }
}

/// `mq_getsetattr`: reads `new` (EFAULT), calls, writes `old`.
fn getsetattr(mqdes: c_int, new: *const libc::mq_attr, old: *mut libc::mq_attr) -> Result<c_int, Errno> {
    let new_flags =
        if new.is_null() { None } else { Some(i64_at(&uipc_sys::map::read_at(new as usize as u64, 64)?, 0)) };
    let h = handle_of(mqdes).unwrap_or(NOT_A_QUEUE);
    let a = with(|c| c.mq_getsetattr(h, new_flags))?;
    if !old.is_null() {
        let mut b = [0u8; 64];
        for (i, v) in [a.flags, a.maxmsg, a.msgsize, a.curmsgs].into_iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_ne_bytes());
        }
        // SAFETY: `old` is the caller's struct mq_attr; checked copy.
        unsafe { uipc_sys::map::write_at(old as usize as u64, &b) }?;
    }
    Ok(0)
}

/// `mq_getattr(mqdes, attr)` — the queue's attributes and the
/// description's `O_NONBLOCK`.
///
/// # Safety
/// `attr` is written through a checked copy.
#[no_mangle]
pub unsafe extern "C" fn mq_getattr(mqdes: c_int, attr: *mut libc::mq_attr) -> c_int {
    ret::int(getsetattr(mqdes, std::ptr::null(), attr))
}

/// `mq_setattr(mqdes, new, old)` — sets the description's `O_NONBLOCK`.
///
/// # Safety
/// `new` is read and `old` written through checked copies.
#[no_mangle]
pub unsafe extern "C" fn mq_setattr(mqdes: c_int, new: *const libc::mq_attr, old: *mut libc::mq_attr) -> c_int {
    ret::int(getsetattr(mqdes, new, old))
}

/// What a `SIGEV_THREAD` notification runs.
struct ThreadNotify {
    function: usize,
    value: u64,
    attr: Option<Box<libc::pthread_attr_t>>,
}

extern "C" fn trampoline(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the Box<(fn, value)> leaked by `fire` for this thread.
    let b = unsafe { Box::from_raw(arg.cast::<(usize, u64)>()) };
    // SAFETY: glibc's notification thread detaches itself.
    unsafe { libc::pthread_detach(libc::pthread_self()) };
    // SAFETY: `b.0` is the caller's `void (*)(union sigval)`; a union
    // sigval is passed as one register-sized integer.
    let f = unsafe { std::mem::transmute::<usize, extern "C" fn(u64)>(b.0) };
    f(b.1);
    std::ptr::null_mut()
}

/// Waits (in a helper thread with every signal blocked) for the daemon's
/// word on `pipe`: on `F`, runs the function in a new thread made with the
/// registration's attributes.
fn wait_and_fire(pipe: OwnedFd, n: ThreadNotify) {
    let mut b = [0u8; 1];
    let got = loop {
        // SAFETY: reads one byte into `b` from a pipe end we own.
        let r = unsafe { libc::read(pipe.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break r;
        }
    };
    if got != 1 || b[0] != b'F' {
        return;
    }
    let arg = Box::into_raw(Box::new((n.function, n.value)));
    let attr = n.attr.as_deref().map_or(std::ptr::null(), std::ptr::from_ref);
    let mut tid: libc::pthread_t = 0;
    // SAFETY: `attr` is null or our copy of the caller's attributes; the
    // thread owns `arg`.
    let r = unsafe { libc::pthread_create(&mut tid, attr, trampoline, arg.cast()) };
    if r != 0 {
        // SAFETY: the thread was not made: `arg` is still ours.
        drop(unsafe { Box::from_raw(arg) });
    }
}

/// `mq_notify(mqdes, sevp)` — registers the process for a notification of
/// the queue's next empty → non-empty change, or (NULL) removes its
/// registration.
///
/// # Errors
/// mq_notify(3)'s: `EFAULT`, `EINVAL`, `EBADF`, `EBUSY`, `ENOMEM`.
///
/// # Safety
/// `sevp` is read through a checked copy; a `SIGEV_THREAD` function and
/// attributes must be valid as for glibc's `mq_notify`.
#[no_mangle]
pub unsafe extern "C" fn mq_notify(mqdes: c_int, sevp: *const libc::sigevent) -> c_int {
    ret::int((|| {
        let sev = if sevp.is_null() { None } else { Some(uipc_sys::map::read_at(sevp as usize as u64, 64)?) };
        let how = sev.as_ref().map(|b| (i32_at(b, 12), i32_at(b, 8), u64::from_ne_bytes(i64_at(b, 0).to_ne_bytes())));
        let h = handle_of(mqdes).unwrap_or(NOT_A_QUEUE);
        let thread = match (&sev, how) {
            (Some(b), Some((libc::SIGEV_THREAD, _, value))) => {
                let function = usize::try_from(i64_at(b, 16)).unwrap_or(0);
                let attr_ptr = usize::try_from(i64_at(b, 24)).unwrap_or(0);
                let attr = if attr_ptr == 0 {
                    None
                } else {
                    let bytes = uipc_sys::map::read_at(attr_ptr as u64, std::mem::size_of::<libc::pthread_attr_t>())?;
                    // SAFETY: pthread_attr_t is plain bytes on glibc; zeroed then overwritten.
                    let mut a: Box<libc::pthread_attr_t> = Box::new(unsafe { std::mem::zeroed() });
                    // SAFETY: `a` has exactly `bytes.len()` bytes.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            bytes.as_ptr(),
                            std::ptr::from_mut::<libc::pthread_attr_t>(&mut a).cast::<u8>(),
                            bytes.len(),
                        )
                    };
                    Some(a)
                };
                Some(ThreadNotify { function, value, attr })
            }
            _ => None,
        };
        let pipe = with(|c| c.mq_notify(h, how))?;
        if let (Some(pipe), Some(n)) = (pipe, thread) {
            // The helper takes no signal meant for the program.
            let held = uipc_sys::net::hold_signals()?;
            let spawned =
                std::thread::Builder::new().name("uipc-mq-notify".into()).spawn(move || wait_and_fire(pipe, n));
            drop(held);
            spawned.map_err(|_| Errno::ENOMEM)?;
        }
        Ok(0)
    })())
}
