//! Credential changes: `setuid`, `seteuid`, `setreuid`, `setresuid`,
//! `setgid`, `setegid`, `setregid`, `setresgid`, `setgroups` and `capset`.
//!
//! Linux checks the caller's *current* credentials at every IPC call
//! (`ipcperms()` reads `current_euid()`, `in_group_p()`, `ns_capable()`),
//! while the daemon takes a process's credentials from the kernel when a
//! connection is made (`SO_PEERCRED`, `SO_PEERGROUPS`, the peer's
//! `CapEff`). So each wrapper here calls the C library's function (the next
//! definition, `RTLD_NEXT`) and, when it succeeded and the process has a
//! connection, asks the daemon to take its credentials anew
//! ([`uipc_client::Client::recheck`]: read from `/proc/PID/status`): the
//! next call is judged with the new credentials. No new connection is needed, so a process that
//! dropped root keeps its way to a socket only root may open.
//!
//! A process that has not called uipc yet has no connection: its first
//! call connects with whatever credentials it has by then.
//!
//! The same calls made through libc's `syscall()` (and `setfsuid`,
//! `setfsgid`) tell the daemon too (the `raw` module).
//!
//! # Known missing features
//! - The libc `setfsuid`/`setfsgid` wrappers are not wrapped (IPC
//!   permission checks do not use `fsuid`); credential calls made with the
//!   `syscall` instruction itself are not seen (trap mode traps only the
//!   IPC calls).
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

use crate::ret;

/// After a successful credential change: a fresh connection, if there is
/// one to replace. Runs inside the fork gate, so it never races `fork`.
pub(crate) fn renew() {
    let Some(c) = crate::CLIENT.get() else { return };
    let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
    // The daemon re-reads them from the kernel; a daemon that cannot
    // answers nothing else either (every later call fails).
    let _ = c.recheck();
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
/// function, then [`renew`] when it returned 0.
macro_rules! wrap {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*)) => {
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
                renew();
            }
            r
        }
    };
}

wrap!(
    /// `setuid(uid)` — sets the effective (and, with privilege, every) user id.
    setuid(uid: uid_t)
);
wrap!(
    /// `seteuid(euid)` — sets the effective user id.
    seteuid(euid: uid_t)
);
wrap!(
    /// `setreuid(ruid, euid)` — sets the real and effective user ids.
    setreuid(ruid: uid_t, euid: uid_t)
);
wrap!(
    /// `setresuid(ruid, euid, suid)` — sets the real, effective and saved user ids.
    setresuid(ruid: uid_t, euid: uid_t, suid: uid_t)
);
wrap!(
    /// `setgid(gid)` — sets the effective (and, with privilege, every) group id.
    setgid(gid: gid_t)
);
wrap!(
    /// `setegid(egid)` — sets the effective group id.
    setegid(egid: gid_t)
);
wrap!(
    /// `setregid(rgid, egid)` — sets the real and effective group ids.
    setregid(rgid: gid_t, egid: gid_t)
);
wrap!(
    /// `setresgid(rgid, egid, sgid)` — sets the real, effective and saved group ids.
    setresgid(rgid: gid_t, egid: gid_t, sgid: gid_t)
);
wrap!(
    /// `setgroups(size, list)` — sets the supplementary group ids.
    setgroups(size: size_t, list: *const gid_t)
);
wrap!(
    /// `capset(hdrp, datap)` — sets the calling thread's capabilities.
    capset(hdrp: *mut c_void, datap: *const c_void)
);
