//! Credential changes: `setuid`, `seteuid`, `setreuid`, `setresuid`,
//! `setgid`, `setegid`, `setregid`, `setresgid`, `setgroups`, `capset`,
//! and `setfsuid`/`setfsgid` (POSIX shared memory's permission checks, as
//! files', use the filesystem ids; they change the calling thread only).
//!
//! Linux checks the caller's *current* credentials at every IPC call
//! (`ipcperms()` reads `current_euid()`, `in_group_p()`, `ns_capable()`),
//! and credentials are per thread. Each wrapper here calls the C library's
//! function (the next definition, `RTLD_NEXT`) and, when it succeeded,
//! reports the change ([`changed`]): glibc's `set*id` and `setgroups`
//! apply it to every thread (its setxid broadcast), so the whole process
//! changed; `capset` changes the calling thread only. Every connection of
//! the process (the main one, pooled sleepers, a thread's own namespace's)
//! then has the daemon re-read the calling thread's credentials from
//! `/proc/PID/task/TID/status` before its next request (see
//! `uipc_client::credentials_changed`). No new connection is needed; and
//! one is always possible anyway, as the daemon's socket is reachable
//! whatever the caller's ids (`docs/architecture.md`, "Who may connect").
//!
//! The same calls made through libc's `syscall()` (and `setfsuid`,
//! `setfsgid`) are reported too (the `raw` module, through [`renew`]): a
//! raw system call changes the calling thread only (no glibc broadcast),
//! so they count as [`CredScope::Thread`].
//!
//! # Known missing features
//! - A change made with the `syscall` instruction itself (not through
//!   libc's `syscall()`) is seen only in trap mode (the `trap` module's
//!   handler reports it as a change of the calling thread).
//!
//! # References
//!  - [setuid(2)], [setresuid(2)], [setgroups(2)], [capset(2)], [credentials(7)]
//!
//! [setuid(2)]: https://man7.org/linux/man-pages/man2/setuid.2.html
//! [setresuid(2)]: https://man7.org/linux/man-pages/man2/setresuid.2.html
//! [setgroups(2)]: https://man7.org/linux/man-pages/man2/setgroups.2.html
//! [capset(2)]: https://man7.org/linux/man-pages/man2/capset.2.html
//! [credentials(7)]: https://man7.org/linux/man-pages/man7/credentials.7.html

use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use libc::{gid_t, size_t, uid_t};

pub use uipc_client::CredScope;

use crate::ret;

/// After a successful credential change of `scope`: every connection of
/// the process has the daemon re-read the caller's credentials before its
/// next request. Cheap (an atomic add); safe in any thread, and in a
/// signal handler.
pub fn changed(scope: CredScope) {
    uipc_client::credentials_changed(scope);
}

/// After a successful credential system call made without glibc's
/// wrapper (through `syscall()`): the calling thread's credentials changed.
pub(crate) fn renew() {
    changed(CredScope::Thread);
}

/// In a forked child, before `fork` returns there: a connection of its
/// own, so that the daemon sees its `execve` (close-on-exec) and its
/// calls come from its own pid.
pub(crate) fn renew_in_child() {
    let Some(c) = crate::CLIENT.get() else { return };
    let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
    // On failure the inherited connection stays (the client reopens one
    // of its own at the next call, seeing the pid changed).
    let _ = c.reconnect();
}

/// The next definition of `name` (libc's), looked up once into `slot`.
pub(crate) fn next(slot: &AtomicUsize, name: &CStr) -> usize {
    let f = slot.load(Ordering::Acquire);
    if f != 0 {
        return f;
    }
    // SAFETY: RTLD_NEXT with a NUL-terminated name only looks a symbol up.
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    slot.store(f, Ordering::Release);
    f
}

/// Defines the exported wrapper `$name($arg: $ty, …) -> c_int`: libc's
/// function, then [`changed`] with `$scope` when it returned 0.
macro_rules! wrap {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*), $scope:expr) => {
        $(#[$doc])*
        ///
        /// # Errors
        /// The C library's (`EPERM`, `EINVAL`, `EAGAIN`…); `ENOSYS` if it
        /// cannot be found.
        ///
        /// # Safety
        /// As the C function's.
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> c_int {
            static REAL: AtomicUsize = AtomicUsize::new(0);
            let name = CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes());
            let f = name.map_or(0, |n| next(&REAL, n));
            if f == 0 {
                return ret::int(Err(uipc_abi::Errno::ENOSYS));
            }
            // SAFETY: `f` is the C library's function of this name, whose
            // C type is the one declared here.
            let real = unsafe { std::mem::transmute::<usize, unsafe extern "C" fn($($ty),*) -> c_int>(f) };
            // SAFETY: called as C calls it, with the caller's arguments.
            let r = unsafe { real($($arg),*) };
            if r == 0 {
                changed($scope);
            }
            r
        }
    };
}

wrap!(
    /// `setuid(uid)` — sets the effective (and, with privilege, every) user id.
    setuid(uid: uid_t),
    CredScope::Process
);
wrap!(
    /// `seteuid(euid)` — sets the effective user id.
    seteuid(euid: uid_t),
    CredScope::Process
);
wrap!(
    /// `setreuid(ruid, euid)` — sets the real and effective user ids.
    setreuid(ruid: uid_t, euid: uid_t),
    CredScope::Process
);
wrap!(
    /// `setresuid(ruid, euid, suid)` — sets the real, effective and saved user ids.
    setresuid(ruid: uid_t, euid: uid_t, suid: uid_t),
    CredScope::Process
);
wrap!(
    /// `setgid(gid)` — sets the effective (and, with privilege, every) group id.
    setgid(gid: gid_t),
    CredScope::Process
);
wrap!(
    /// `setegid(egid)` — sets the effective group id.
    setegid(egid: gid_t),
    CredScope::Process
);
wrap!(
    /// `setregid(rgid, egid)` — sets the real and effective group ids.
    setregid(rgid: gid_t, egid: gid_t),
    CredScope::Process
);
wrap!(
    /// `setresgid(rgid, egid, sgid)` — sets the real, effective and saved group ids.
    setresgid(rgid: gid_t, egid: gid_t, sgid: gid_t),
    CredScope::Process
);
wrap!(
    /// `setgroups(size, list)` — sets the supplementary group ids.
    setgroups(size: size_t, list: *const gid_t),
    CredScope::Process
);
wrap!(
    /// `capset(hdrp, datap)` — sets the calling thread's capabilities.
    capset(hdrp: *mut c_void, datap: *const c_void),
    CredScope::Thread
);

/// `setfsuid`/`setfsgid` through the C library's `name`: they return the
/// previous id whether or not they changed it, so the change is always
/// reported (a needless report costs one re-read).
fn fs_id_call(slot: &AtomicUsize, name: &CStr, id: u32) -> c_int {
    let f = next(slot, name);
    if f == 0 {
        return ret::int(Err(uipc_abi::Errno::ENOSYS));
    }
    // SAFETY: `f` is the C library's `int setfsuid(uid_t)` (or setfsgid).
    let real = unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(u32) -> c_int>(f) };
    // SAFETY: called as C calls it.
    let r = unsafe { real(id) };
    changed(CredScope::Thread);
    r
}

/// `setfsuid(fsuid)` — sets the calling thread's filesystem user id;
/// returns the previous one.
///
/// # Safety
/// None beyond C's: the argument is a plain value.
#[no_mangle]
pub unsafe extern "C" fn setfsuid(fsuid: uid_t) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    fs_id_call(&REAL, c"setfsuid", fsuid)
}

/// `setfsgid(fsgid)` — sets the calling thread's filesystem group id;
/// returns the previous one.
///
/// # Safety
/// None beyond C's: the argument is a plain value.
#[no_mangle]
pub unsafe extern "C" fn setfsgid(fsgid: gid_t) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    fs_id_call(&REAL, c"setfsgid", fsgid)
}
