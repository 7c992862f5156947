//! `unshare(2)`: its System V half served by uipc.
//!
//! `ksys_unshare()` treats `CLONE_SYSVSEM` and `CLONE_NEWIPC` as the IPC
//! part of an exit: the caller's semaphore undo records are applied and
//! dropped (`exit_sem()`), and leaving the namespace (`CLONE_NEWIPC`) also
//! orphans the segments it created (`exit_shm()`); its mappings stay valid.
//! The wrapper asks the daemon for exactly that
//! ([`uipc_client::Client::unshare`]): with `CLONE_NEWIPC` the process moves
//! to a fresh ephemeral uipc namespace, and `UIPC_NAMESPACE` follows so that
//! programs it executes stay there, as the kernel's namespace would. Every
//! other flag goes to the C library's `unshare` first; if it fails, nothing
//! of the IPC part happens.
//!
//! Linux needs `CAP_SYS_ADMIN` for `CLONE_NEWIPC`; under the shim anyone may
//! (a uipc namespace is made by the daemon, not the kernel), so unmodified
//! `unshare --ipc` works without root.
//!
//! # Known missing features
//! - `setns(fd, CLONE_NEWIPC)` and `clone(CLONE_NEWIPC)` are not wrapped.
//! - In a multi-threaded process the kernel applies the shared undo list
//!   only when the last thread sharing it lets go; uipc applies it at once.
//!
//! # References
//!  - [unshare(2)], `kernel/fork.c:ksys_unshare()`
//!
//! [unshare(2)]: https://man7.org/linux/man-pages/man2/unshare.2.html

use std::ffi::c_int;
use std::sync::atomic::AtomicUsize;

use uipc_abi::Errno;

use crate::ret;

/// `unshare(flags)` — disassociates parts of the process execution context.
///
/// # Errors
/// The C library's for the other flags; `ENOSYS` if it cannot be found;
/// the daemon's (`EIDRM` if the current namespace was removed) for the IPC
/// part.
///
/// # Safety
/// None beyond C's: the argument is a plain value.
#[no_mangle]
pub unsafe extern "C" fn unshare(flags: c_int) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let f = crate::creds::next(&REAL, c"unshare");
    if f == 0 {
        return ret::int(Err(Errno::ENOSYS));
    }
    // SAFETY: `f` is the C library's `int unshare(int)`.
    let real = unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(c_int) -> c_int>(f) };
    let ipc = flags & (libc::CLONE_NEWIPC | libc::CLONE_SYSVSEM);
    // Nothing for uipc, or no daemon (then the kernel's namespaces are all
    // there is): the C library's call as it is.
    let client = if ipc == 0 { None } else { crate::with_client(|c| Ok(c.clone())).ok() };
    let Some(client) = client else {
        // SAFETY: called as C calls it.
        return unsafe { real(flags) };
    };
    let rest = flags & !libc::CLONE_NEWIPC;
    if rest != 0 {
        // SAFETY: called as C calls it; errno is the C library's on failure.
        let r = unsafe { real(rest) };
        if r != 0 {
            return r;
        }
    }
    let newipc = flags & libc::CLONE_NEWIPC != 0;
    let moved = {
        let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
        client.unshare(newipc)
    };
    ret::int(moved.map(|name| {
        if let Some(name) = name {
            std::env::set_var("UIPC_NAMESPACE", name);
        }
        0
    }))
}
