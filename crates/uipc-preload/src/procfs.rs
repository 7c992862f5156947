//! The `/proc` views of uipc's objects: reads of `/proc/sysvipc/*` and of
//! the System V sysctls under `/proc/sys/kernel/` are answered by the
//! daemon, so unmodified `ipcs`, `lsipc`, `ipcmk` and `ipcrm` (util-linux)
//! see uipc's objects and limits, not the kernel's.
//!
//! # What util-linux calls (2.38.1, x86_64 glibc; `strace -f -e trace=file`)
//! - `ipcs -m`/`-s`/`-q`, `ipcs -m -i ID`, `lsipc -m`/`-s`/`-q`: `fopen` of
//!   `/proc/sysvipc/{shm,sem,msg}` (glibc's `fopen` opens with `openat`
//!   internally, so `fopen` itself must be wrapped), then `fstat` of the
//!   stream's descriptor and `read`.
//! - `ipcs -l`, `lsipc -g`: `access(F_OK)` then `open(O_RDONLY|O_CLOEXEC)`
//!   (the binaries import `open`, `openat` and the fortified `__open_2` and
//!   `__openat_2`) of `/proc/sys/kernel/{msgmni,msgmnb,msgmax,shmall,
//!   shmmax,shmmni}`, and `fopen` of `/proc/sys/kernel/sem`.
//! - No `stat`/`lstat`/`fstatat` of these paths by name: only `fstat` of
//!   the opened descriptor, which sees the file served here. So the stat
//!   family is not wrapped.
//! - `ipcmk` and `ipcrm` use only `shmget`/`shmctl` (and the sem/msg
//!   calls): nothing under `/proc`.
//!
//! # Served paths
//! Exactly these absolute paths (no normalisation: `/proc/self/../sysvipc/shm`
//! or a relative path from a `dirfd` on `/proc` goes to the kernel):
//! - `/proc/sysvipc/shm`, `/proc/sysvipc/sem`, `/proc/sysvipc/msg`: the
//!   daemon's text for the client's namespace (SPEC 8.4).
//! - `/proc/sys/kernel/{shmmax,shmall,shmmni,shm_rmid_forced,shm_next_id,
//!   sem,sem_next_id,msgmax,msgmnb,msgmni,msg_next_id,auto_msgmni}` and
//!   `/proc/sys/fs/mqueue/{queues_max,msg_max,msgsize_max,msg_default,
//!   msgsize_default}`: the namespace's sysctls, read and written (writes:
//!   the `sysctl_write` module).
//!
//! A served file is a sealed memfd holding the text, reopened read-only
//! (through `/proc/self/fd`) so that writes fail with `EBADF` as on a
//! read-only descriptor; without `/proc/self/fd` it is the sealed memfd
//! itself at offset 0 (writes fail with `EPERM`). Opening a sysctl for
//! writing is allowed to whom the kernel allows it (the namespace's root;
//! `EACCES` otherwise) and its writes reach the daemon (the
//! `sysctl_write` module); opening a `/proc/sysvipc` file for writing
//! gives `EACCES`; `O_CREAT|O_EXCL` gives `EEXIST` and `O_DIRECTORY`
//! `ENOTDIR`, as for the real files. `access` answers `F_OK`/`R_OK` with
//! success, `X_OK` with `EACCES`, and `W_OK` as opening for writing would.
//!
//! **No daemon**: when no daemon answers, every call goes to the real
//! function, so the tools show the kernel's view (of the caller's real IPC
//! namespace), while `shmget` and friends fail with `ENOSYS`.
//!
//! # The `mode` argument of `open`
//! C's `open(path, flags, ...)` is variadic and defining C-variadic
//! functions is not stable Rust. The wrappers take a fixed third `mode:
//! c_uint`: on the x86_64 and aarch64 (Linux) SysV calling conventions a
//! variadic integer argument is passed in the same register as a fixed
//! one, so the wrapper reads whatever the caller passed there. When the
//! caller passed no mode the value is garbage, but it is only handed on to
//! the real `open`, which reads it only with `O_CREAT`/`O_TMPFILE` — and
//! then the caller did pass it. The real functions are called through
//! variadic function pointers, as C calls them.

use std::ffi::{c_char, c_int, c_uint, CStr};
use std::sync::OnceLock;

use libc::FILE;
use uipc_abi::Errno;

use crate::ret;

/// What a served path shows.
#[derive(Clone, Copy)]
enum View {
    /// `/proc/sysvipc/<which>` from the daemon.
    Sysvipc(&'static str),
    /// `/proc/sys/kernel/...`: the sysctl of this name.
    Sysctl(&'static str),
}

/// The served paths.
const VIEWS: &[(&CStr, View)] = &[
    (c"/proc/sysvipc/shm", View::Sysvipc("shm")),
    (c"/proc/sysvipc/sem", View::Sysvipc("sem")),
    (c"/proc/sysvipc/msg", View::Sysvipc("msg")),
    (c"/proc/sys/kernel/msgmax", View::Sysctl("kernel.msgmax")),
    (c"/proc/sys/kernel/msgmnb", View::Sysctl("kernel.msgmnb")),
    (c"/proc/sys/kernel/msgmni", View::Sysctl("kernel.msgmni")),
    (c"/proc/sys/kernel/msg_next_id", View::Sysctl("kernel.msg_next_id")),
    (c"/proc/sys/kernel/auto_msgmni", View::Sysctl("kernel.auto_msgmni")),
    (c"/proc/sys/kernel/shmmax", View::Sysctl("kernel.shmmax")),
    (c"/proc/sys/kernel/shmall", View::Sysctl("kernel.shmall")),
    (c"/proc/sys/kernel/shmmni", View::Sysctl("kernel.shmmni")),
    (c"/proc/sys/kernel/shm_rmid_forced", View::Sysctl("kernel.shm_rmid_forced")),
    (c"/proc/sys/kernel/shm_next_id", View::Sysctl("kernel.shm_next_id")),
    (c"/proc/sys/kernel/sem", View::Sysctl("kernel.sem")),
    (c"/proc/sys/kernel/sem_next_id", View::Sysctl("kernel.sem_next_id")),
    (c"/proc/sys/kernel/msgmax", View::Sysctl("kernel.msgmax")),
    (c"/proc/sys/kernel/msgmnb", View::Sysctl("kernel.msgmnb")),
    (c"/proc/sys/kernel/msgmni", View::Sysctl("kernel.msgmni")),
    (c"/proc/sys/kernel/msg_next_id", View::Sysctl("kernel.msg_next_id")),
    (c"/proc/sys/kernel/auto_msgmni", View::Sysctl("kernel.auto_msgmni")),
    (c"/proc/sys/fs/mqueue/queues_max", View::Sysctl("fs.mqueue.queues_max")),
    (c"/proc/sys/fs/mqueue/msg_max", View::Sysctl("fs.mqueue.msg_max")),
    (c"/proc/sys/fs/mqueue/msgsize_max", View::Sysctl("fs.mqueue.msgsize_max")),
    (c"/proc/sys/fs/mqueue/msg_default", View::Sysctl("fs.mqueue.msg_default")),
    (c"/proc/sys/fs/mqueue/msgsize_default", View::Sysctl("fs.mqueue.msgsize_default")),
];

/// The view of `path`, if it is a served path.
///
/// # Safety
/// `path` is null or a NUL-terminated string (the C contract of the
/// wrapped functions).
unsafe fn view(path: *const c_char) -> Option<View> {
    if path.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated (the caller's C contract).
    let p = unsafe { CStr::from_ptr(path) };
    // Cheap filter first: nearly every path opened is not under /proc.
    if !p.to_bytes().starts_with(b"/proc/sys") {
        return None;
    }
    VIEWS.iter().find(|(name, _)| *name == p).map(|&(_, v)| v)
}

/// Whether a daemon answers; `false` means "leave it to the kernel".
fn daemon() -> bool {
    crate::with_client(|_| Ok(())).is_ok()
}

/// The text of a view; `None` when no daemon answers.
fn text(v: View) -> Option<Result<String, Errno>> {
    let r = crate::with_client(|c| match v {
        View::Sysvipc(which) => c.proc_sysvipc(which),
        View::Sysctl(name) => c.sysctl_read(name).map(|mut t| {
            // The daemon gives the value as /proc shows it, less the newline.
            t.push('\n');
            t
        }),
    });
    match r {
        Err(e) if e == Errno::ENOSYS && crate::CLIENT.get().is_none() => None,
        r => Some(r),
    }
}

/// The calling thread's errno, as the last libc call left it.
fn last_errno() -> Errno {
    // SAFETY: reads this thread's errno slot.
    Errno::from_raw(unsafe { *libc::__errno_location() })
}

/// Looks up the next definition of `name` (libc's), once.
pub(crate) fn next(cache: &OnceLock<usize>, name: &CStr) -> usize {
    *cache.get_or_init(|| {
        // SAFETY: RTLD_NEXT with a NUL-terminated name only looks a symbol up.
        unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize }
    })
}

/// Defines `$getter() -> Option<$ty>`: libc's `$name`, the next definition.
macro_rules! real {
    ($getter:ident, $name:literal, $ty:ty) => {
        fn $getter() -> Option<$ty> {
            static REAL: OnceLock<usize> = OnceLock::new();
            match next(&REAL, $name) {
                0 => None,
                // SAFETY: the address is libc's definition of this symbol,
                // whose C type is `$ty`.
                f => Some(unsafe { std::mem::transmute::<usize, $ty>(f) }),
            }
        }
    };
}

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int;
type OpenatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, ...) -> c_int;
type Open2Fn = unsafe extern "C" fn(*const c_char, c_int) -> c_int;
type Openat2Fn = unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
type FopenFn = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut FILE;
type AccessFn = unsafe extern "C" fn(*const c_char, c_int) -> c_int;

real!(real_open, c"open", OpenFn);
real!(real_open64, c"open64", OpenFn);
real!(real_openat, c"openat", OpenatFn);
real!(real_openat64, c"openat64", OpenatFn);
real!(real_open_2, c"__open_2", Open2Fn);
real!(real_open64_2, c"__open64_2", Open2Fn);
real!(real_openat_2, c"__openat_2", Openat2Fn);
real!(real_openat64_2, c"__openat64_2", Openat2Fn);
real!(real_fopen, c"fopen", FopenFn);
real!(real_fopen64, c"fopen64", FopenFn);
real!(real_access, c"access", AccessFn);

/// Closes a descriptor this module opened, ignoring errors.
fn close(fd: c_int) {
    // SAFETY: `fd` is a descriptor this module opened and nobody else uses.
    unsafe { libc::close(fd) };
}

/// A read-only descriptor whose contents are `text`, at offset 0.
fn served_fd(text: &str, cloexec: bool) -> Result<c_int, Errno> {
    // SAFETY: a NUL-terminated name and flags; creates a new descriptor.
    let fd = unsafe { libc::memfd_create(c"uipc-proc".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(last_errno());
    }
    let filled = fill(fd, text.as_bytes());
    if let Err(e) = filled {
        close(fd);
        return Err(e);
    }
    // Best effort: a sealed memfd cannot be written, grown or shrunk.
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on our own descriptor.
    unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) };
    // Reopen read-only: a fresh description at offset 0 that refuses writes
    // with EBADF, as the kernel's /proc files opened O_RDONLY do.
    let path = format!("/proc/self/fd/{fd}\0");
    let ro_flags = libc::O_RDONLY | if cloexec { libc::O_CLOEXEC } else { 0 };
    if let Some(open) = real_open() {
        // SAFETY: libc's open with a NUL-terminated path and no O_CREAT.
        let ro = unsafe { open(path.as_ptr().cast(), ro_flags) };
        if ro >= 0 {
            close(fd);
            return Ok(ro);
        }
    }
    // No /proc/self/fd: the sealed memfd itself, rewound.
    // SAFETY: lseek and fcntl on our own descriptor.
    let ok = unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } == 0
        && (cloexec || unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == 0);
    if !ok {
        let e = last_errno();
        close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// Writes all of `bytes` to `fd`.
fn fill(fd: c_int, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        // SAFETY: writes from a live slice of `bytes.len()` bytes.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = last_errno();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        bytes = bytes.get(usize::try_from(n).unwrap_or(0)..).unwrap_or(&[]);
    }
    Ok(())
}

/// A descriptor for writing (`O_WRONLY`) or both (`O_RDWR`, reading
/// `text` at offset 0) sysctl `name`, recorded so that the shim's `write`
/// sends what is written to the daemon (the `sysctl_write` module).
fn writable_fd(name: &'static str, text: &str, flags: c_int) -> Result<c_int, Errno> {
    // SAFETY: a NUL-terminated name and flags; creates a new descriptor.
    let fd = unsafe { libc::memfd_create(c"uipc-sysctl".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(last_errno());
    }
    let reopened = fill(fd, text.as_bytes()).and_then(|()| {
        // A fresh description of the same file, with the caller's access
        // mode and close-on-exec, at offset 0.
        let path = format!("/proc/self/fd/{fd}\0");
        let mode = flags & libc::O_ACCMODE | if flags & libc::O_CLOEXEC != 0 { libc::O_CLOEXEC } else { 0 };
        let open = real_open().ok_or(Errno::ENOSYS)?;
        // SAFETY: libc's open with a NUL-terminated path and no O_CREAT.
        let w = unsafe { open(path.as_ptr().cast(), mode) };
        if w < 0 {
            Err(last_errno())
        } else {
            Ok(w)
        }
    });
    close(fd);
    let w = reopened?;
    if let Err(e) = crate::sysctl_write::record(w, name) {
        close(w);
        return Err(e);
    }
    Ok(w)
}

/// `open`'s answer for a served path with `flags`.
fn open_view(v: View, flags: c_int) -> Option<Result<c_int, Errno>> {
    let text = text(v)?;
    Some(text.and_then(|t| {
        // do_open(): the existence and type checks come before may_open()'s
        // permission check.
        if flags & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL {
            return Err(Errno::EEXIST);
        }
        if flags & libc::O_DIRECTORY != 0 {
            return Err(Errno::ENOTDIR);
        }
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            // /proc/sysvipc/* are 0444; a sysctl as its owner decides.
            let View::Sysctl(name) = v else { return Err(Errno::EACCES) };
            crate::sysctl_write::may_write(name)?;
            return writable_fd(name, &t, flags);
        }
        served_fd(&t, flags & libc::O_CLOEXEC != 0)
    }))
}

/// The answer to use when libc's function cannot be found.
fn missing() -> c_int {
    ret::int(Err(Errno::ENOSYS))
}

/// `open(path, flags, mode)` — served paths from uipc, the rest by libc.
///
/// # Safety
/// As open(2). `mode` stands for C's variadic argument (module docs).
#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller's C contract for `path`.
    if let Some(r) = unsafe { view(path) }.and_then(|v| open_view(v, flags)) {
        return ret::int(r);
    }
    // SAFETY: libc's open, called as C calls it.
    real_open().map_or_else(missing, |f| unsafe { f(path, flags, mode) })
}

/// `open64(path, flags, mode)` — as [`open`].
///
/// # Safety
/// As open(2).
#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller's C contract for `path`.
    if let Some(r) = unsafe { view(path) }.and_then(|v| open_view(v, flags)) {
        return ret::int(r);
    }
    // SAFETY: libc's open64, called as C calls it.
    real_open64().map_or_else(missing, |f| unsafe { f(path, flags, mode) })
}

/// `openat(dirfd, path, flags, mode)` — served absolute paths from uipc
/// (`dirfd` plays no part for them), the rest by libc.
///
/// # Safety
/// As openat(2).
#[no_mangle]
pub unsafe extern "C" fn openat(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller's C contract for `path`.
    if let Some(r) = unsafe { view(path) }.and_then(|v| open_view(v, flags)) {
        return ret::int(r);
    }
    // SAFETY: libc's openat, called as C calls it.
    real_openat().map_or_else(missing, |f| unsafe { f(dirfd, path, flags, mode) })
}

/// `openat64(dirfd, path, flags, mode)` — as [`openat`].
///
/// # Safety
/// As openat(2).
#[no_mangle]
pub unsafe extern "C" fn openat64(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller's C contract for `path`.
    if let Some(r) = unsafe { view(path) }.and_then(|v| open_view(v, flags)) {
        return ret::int(r);
    }
    // SAFETY: libc's openat64, called as C calls it.
    real_openat64().map_or_else(missing, |f| unsafe { f(dirfd, path, flags, mode) })
}

/// `__open_2(path, flags)` — the `_FORTIFY_SOURCE` `open` without a mode
/// (what `ipcs` and `lsipc` call).
///
/// # Safety
/// As open(2).
#[no_mangle]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: the caller's C contract for `path`.
    if let Some(r) = unsafe { view(path) }.and_then(|v| open_view(v, flags)) {
        return ret::int(r);
    }
    // SAFETY: libc's __open_2, called as C calls it.
    real_open_2().map_or_else(missing, |f| unsafe { f(path, flags) })
}

/// `__open64_2(path, flags)` — as [`__open_2`].
///
/// # Safety
/// As open(2).
#[no_mangle]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: the caller's C contract for `path`.
    if let Some(r) = unsafe { view(path) }.and_then(|v| open_view(v, flags)) {
        return ret::int(r);
    }
    // SAFETY: libc's __open64_2, called as C calls it.
    real_open64_2().map_or_else(missing, |f| unsafe { f(path, flags) })
}

/// `__openat_2(dirfd, path, flags)` — the `_FORTIFY_SOURCE` `openat`.
///
/// # Safety
/// As openat(2).
#[no_mangle]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: the caller's C contract for `path`.
    if let Some(r) = unsafe { view(path) }.and_then(|v| open_view(v, flags)) {
        return ret::int(r);
    }
    // SAFETY: libc's __openat_2, called as C calls it.
    real_openat_2().map_or_else(missing, |f| unsafe { f(dirfd, path, flags) })
}

/// `__openat64_2(dirfd, path, flags)` — as [`__openat_2`].
///
/// # Safety
/// As openat(2).
#[no_mangle]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: the caller's C contract for `path`.
    if let Some(r) = unsafe { view(path) }.and_then(|v| open_view(v, flags)) {
        return ret::int(r);
    }
    // SAFETY: libc's __openat64_2, called as C calls it.
    real_openat64_2().map_or_else(missing, |f| unsafe { f(dirfd, path, flags) })
}

/// `fopen`'s answer for a served path: a read-only stream, or `EACCES`
/// for a writing mode.
///
/// # Safety
/// `mode` is null or a NUL-terminated string.
unsafe fn fopen_view(v: View, mode: *const c_char) -> Option<Result<*mut FILE, Errno>> {
    let text = text(v)?;
    let m = if mode.is_null() {
        &[][..]
    } else {
        // SAFETY: non-null and NUL-terminated (fopen's C contract).
        unsafe { CStr::from_ptr(mode) }.to_bytes()
    };
    Some(text.and_then(|t| {
        // fopen's mode: the first character is r, w or a; '+' adds the
        // other direction; 'e' is O_CLOEXEC; ",ccs=" and the rest are
        // irrelevant for a read-only file.
        let m = m.split(|&b| b == b',').next().unwrap_or(&[]);
        match m.first() {
            Some(b'r') if !m.contains(&b'+') => {}
            Some(b'r' | b'w' | b'a') => {
                // Writing: a sysctl its owner may write, through the daemon.
                let View::Sysctl(name) = v else { return Err(Errno::EACCES) };
                crate::sysctl_write::may_write(name)?;
                return crate::sysctl_write::stream(name, t, mode);
            }
            _ => return Err(Errno::EINVAL),
        }
        let fd = served_fd(&t, m.contains(&b'e'))?;
        // SAFETY: `fd` is ours, open for reading; "r" matches it.
        let f = unsafe { libc::fdopen(fd, c"r".as_ptr()) };
        if f.is_null() {
            let e = last_errno();
            close(fd);
            return Err(e);
        }
        Ok(f)
    }))
}

/// `fopen(path, mode)` — served paths from uipc, the rest by libc.
///
/// # Safety
/// As fopen(3).
#[no_mangle]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut FILE {
    // SAFETY: the caller's C contract for `path` and `mode`.
    if let Some(r) = unsafe { view(path) }.and_then(|v| unsafe { fopen_view(v, mode) }) {
        return ret::ptr(r);
    }
    match real_fopen() {
        // SAFETY: libc's fopen, called as C calls it.
        Some(f) => unsafe { f(path, mode) },
        None => ret::ptr(Err(Errno::ENOSYS)),
    }
}

/// `fopen64(path, mode)` — as [`fopen`].
///
/// # Safety
/// As fopen(3).
#[no_mangle]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut FILE {
    // SAFETY: the caller's C contract for `path` and `mode`.
    if let Some(r) = unsafe { view(path) }.and_then(|v| unsafe { fopen_view(v, mode) }) {
        return ret::ptr(r);
    }
    match real_fopen64() {
        // SAFETY: libc's fopen64, called as C calls it.
        Some(f) => unsafe { f(path, mode) },
        None => ret::ptr(Err(Errno::ENOSYS)),
    }
}

/// `access(path, mode)` — served paths exist and are readable only; the
/// rest by libc.
///
/// # Safety
/// As access(2).
#[no_mangle]
pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    // SAFETY: the caller's C contract for `path`.
    if let Some(v) = unsafe { view(path) }.filter(|_| daemon()) {
        // No served file is executable; a sysctl is writable by its owner.
        let r = match v {
            _ if mode & libc::X_OK != 0 => Err(Errno::EACCES),
            View::Sysctl(name) if mode & libc::W_OK != 0 => crate::sysctl_write::may_write(name),
            _ if mode & libc::W_OK != 0 => Err(Errno::EACCES),
            _ => Ok(()),
        };
        return ret::int(r.map(|()| 0));
    }
    // SAFETY: libc's access, called as C calls it.
    real_access().map_or_else(missing, |f| unsafe { f(path, mode) })
}
