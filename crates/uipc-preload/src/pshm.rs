//! POSIX shared memory and named semaphores: `shm_open`, `shm_unlink`,
//! `sem_open` (C entry point in `src/semopen.c`, it is variadic),
//! `sem_close`, `sem_unlink`, and `umask` (kept, for new objects' modes).
//!
//! `shm_open` returns a real descriptor of the object's memory (a memfd of
//! the daemon, a new open file description with the access mode asked
//! for, close-on-exec): `ftruncate`, `fstat`, `fchmod`, `fchown`, `mmap`,
//! `dup`, `fork` and `exec` act on it in the kernel, and the daemon gives
//! the file the object's owner and mode, so those calls see and change the
//! object's identity as on `/dev/shm` (SPEC PSHM-*). Nothing touches
//! `/dev/shm`.
//!
//! `sem_open` does what glibc's does (`sysdeps/pthread/sem_open.c`,
//! `sem_routines.c`) over the daemon's `sem.NAME` object: one mapping per
//! (device, inode, name as passed) per process, counted; `sem_close` unmaps
//! at the last close, and answers `EINVAL` for an address `sem_open` did not
//! return (PSEM-OPEN-3). glibc's `sem_wait`, `sem_post`, `sem_timedwait`,
//! `sem_getvalue` work unchanged on the mapping.
//!
//! # Known missing features
//! - The umask is the one the process set through `umask()` (wrapped), or
//!   read from `/proc/self/status` at the first call; a raw
//!   `syscall(SYS_umask)` is not seen.
//!
//! # References
//! - [shm_open(3)], [sem_open(3)], [sem_close(3)], [sem_unlink(3)]
//!
//! [shm_open(3)]: https://man7.org/linux/man-pages/man3/shm_open.3.html
//! [sem_open(3)]: https://man7.org/linux/man-pages/man3/sem_open.3.html
//! [sem_close(3)]: https://man7.org/linux/man-pages/man3/sem_close.3.html
//! [sem_unlink(3)]: https://man7.org/linux/man-pages/man3/sem_unlink.3.html

use std::ffi::{c_char, c_int, c_uint, CStr};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

use libc::mode_t;
use uipc_abi::pshm::SEM_T_SIZE;
use uipc_abi::Errno;
use uipc_sys::map::{self, Placement, Prot};

use crate::{ret, with_client};

/// The process's umask, `u32::MAX` until known.
static UMASK: AtomicU32 = AtomicU32::new(u32::MAX);

/// The current umask: the last `umask()` set, else `/proc/self/status`.
fn umask_now() -> u32 {
    let u = UMASK.load(Ordering::Relaxed);
    if u != u32::MAX {
        return u;
    }
    let u = uipc_sys::proc::proc_ids(std::process::id()).map_or(0o022, |ids| ids.umask);
    UMASK.store(u, Ordering::Relaxed);
    u
}

/// `umask(mask)` — libc's, remembering the new mask for `shm_open` and
/// `sem_open`.
///
/// # Safety
/// None beyond C's.
#[no_mangle]
pub unsafe extern "C" fn umask(mask: mode_t) -> mode_t {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let f = crate::creds::next(&REAL, c"umask");
    if f == 0 {
        // Cannot happen with a C library loaded; umask cannot fail.
        return 0o022;
    }
    // SAFETY: `f` is libc's `umask`, of C type `mode_t umask(mode_t)`.
    let real = unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(mode_t) -> mode_t>(f) };
    // SAFETY: libc's umask, called as C calls it.
    let old = unsafe { real(mask) };
    UMASK.store(mask & 0o777, Ordering::Relaxed);
    old
}

/// The bytes of a C string argument.
///
/// # Errors
/// `EFAULT` for a null pointer.
///
/// # Safety
/// `name` is null or a NUL-terminated string (the C contract).
unsafe fn name_of<'a>(name: *const c_char) -> Result<&'a [u8], Errno> {
    if name.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-null, and NUL-terminated by the caller's contract.
    Ok(unsafe { CStr::from_ptr(name) }.to_bytes())
}

/// `shm_open(name, oflag, mode)` — opens or creates a POSIX shared memory
/// object; returns a close-on-exec descriptor.
///
/// # Errors
/// shm_open(3)'s: `EINVAL`, `ENAMETOOLONG`, `EEXIST`, `ENOENT`, `EACCES`,
/// `EMFILE`; `ENOSYS` when no daemon answers.
///
/// # Safety
/// `name` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shm_open(name: *const c_char, oflag: c_int, mode: mode_t) -> c_int {
    ret::int(with_client(|c| {
        // SAFETY: the C contract of shm_open.
        let name = unsafe { name_of(name) }?;
        Ok(c.shm_open_umask(name, oflag, mode, umask_now())?.into_raw_fd())
    }))
}

/// `shm_unlink(name)` — removes the name of a POSIX shared memory object.
///
/// # Errors
/// `ENOENT`, `EACCES`; `ENOSYS` when no daemon answers.
///
/// # Safety
/// `name` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shm_unlink(name: *const c_char) -> c_int {
    ret::int(with_client(|c| {
        // SAFETY: the C contract of shm_unlink.
        let name = unsafe { name_of(name) }?;
        c.shm_unlink(name).map(|()| 0)
    }))
}

/// One mapped semaphore of the process (glibc's `struct inuse_sem`).
struct InUse {
    dev: u64,
    ino: u64,
    name: Vec<u8>,
    refcnt: u64,
    addr: u64,
}

/// The process's mapped semaphores. Locked only inside the fork gate.
static IN_USE: Mutex<Vec<InUse>> = Mutex::new(Vec::new());

/// `sem_open`'s work, called by the C entry point with the variadic
/// arguments read (`mode`, `value` only with `O_CREAT`; 0 otherwise).
/// Returns the `sem_t` address, or null (`SEM_FAILED`) with errno set.
///
/// # Safety
/// `name` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn uipc_preload_sem_open(
    name: *const c_char,
    oflag: c_int,
    mode: c_uint,
    value: c_uint,
) -> *mut libc::sem_t {
    ret::ptr(with_client(|c| {
        // SAFETY: the C contract of sem_open.
        let name = unsafe { name_of(name) }?;
        let fd = c.sem_open_fd(name, oflag, mode, umask_now(), value)?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: `fd` is a live descriptor we own; `st` is a writable stat.
        if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
            return Err(Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(Errno::EIO.raw())));
        }
        // SAFETY: fstat succeeded and filled it.
        let st = unsafe { st.assume_init() };
        let mut table = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
        // __sem_check_add_mapping(): the same file under the same name is
        // the same mapping.
        if let Some(e) = table.iter_mut().find(|e| e.dev == st.st_dev && e.ino == st.st_ino && e.name == name) {
            e.refcnt += 1;
            return Ok(e.addr as *mut libc::sem_t);
        }
        let len = SEM_T_SIZE as u64;
        // SAFETY: Placement::Anywhere never replaces an existing mapping.
        let addr = unsafe {
            map::map_shared(fd.as_fd(), len, Prot { read: true, write: true, exec: false }, Placement::Anywhere)
        }?;
        table.push(InUse { dev: st.st_dev, ino: st.st_ino, name: name.to_vec(), refcnt: 1, addr });
        Ok(addr as *mut libc::sem_t)
    }))
}

/// `sem_close(sem)` — drops one `sem_open` of the semaphore; the last
/// unmaps it.
///
/// # Errors
/// `EINVAL` if `sem` is not an address `sem_open` returned.
///
/// # Safety
/// After the last close, the caller no longer uses `sem`.
#[no_mangle]
pub unsafe extern "C" fn sem_close(sem: *mut libc::sem_t) -> c_int {
    let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
    let addr = sem as usize as u64;
    let mut table = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(i) = table.iter().position(|e| e.addr == addr) else {
        return ret::int(Err(Errno::EINVAL));
    };
    table[i].refcnt -= 1;
    if table[i].refcnt > 0 {
        return 0;
    }
    table.swap_remove(i);
    // SAFETY: the mapping was made by sem_open and its last user closed it.
    ret::int(unsafe { map::unmap(addr, SEM_T_SIZE as u64) }.map(|()| 0))
}

/// `sem_unlink(name)` — removes a named semaphore's name.
///
/// # Errors
/// `ENOENT`, `EACCES`; `ENOSYS` when no daemon answers.
///
/// # Safety
/// `name` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn sem_unlink(name: *const c_char) -> c_int {
    ret::int(with_client(|c| {
        // SAFETY: the C contract of sem_unlink.
        let name = unsafe { name_of(name) }?;
        c.sem_unlink(name).map(|()| 0)
    }))
}

/// The C half must be linked in (it holds the exported `sem_open`).
mod c_half {
    extern "C" {
        fn sem_open(name: *const std::ffi::c_char, oflag: std::ffi::c_int, ...) -> *mut libc::sem_t;
    }

    /// Referenced so that the linker keeps `src/semopen.c`'s object.
    #[used]
    static KEEP: unsafe extern "C" fn(*const std::ffi::c_char, std::ffi::c_int, ...) -> *mut libc::sem_t = sem_open;
}
