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
//! A child made with `CLONE_NEWIPC` by a raw `clone` or `clone3` (through
//! `syscall()`, or caught in trap mode) starts in a fresh ephemeral
//! namespace, as the kernel's child starts in a fresh IPC namespace
//! ([`raw_clone`]): the parent makes the namespace before the `clone`, and
//! the child, whose side must stay async-signal-safe, joins it at its
//! first call into the shim.
//!
//! # Known missing features
//! - `setns(fd, CLONE_NEWIPC)` (wrapper or raw) with a namespace file
//!   changes only the kernel's namespace (with a pidfd it is served: the
//!   `thread_ns` module).
//! - A raw `clone`/`clone3` with `CLONE_NEWIPC` that gives the child a
//!   stack of its own or shares the address space (`CLONE_VM`) leaves the
//!   child in its parent's uipc namespace (glibc's `clone(fn, stack,
//!   CLONE_NEWIPC…)` without `CLONE_VM` is served: the `thread_ns` module).
//! - `unshare(CLONE_SYSVSEM)` in a multi-threaded process: the kernel
//!   applies the shared undo list only when the last thread sharing it
//!   lets go; uipc applies it at once. (`CLONE_NEWIPC` there moves the
//!   calling thread alone and leaves the undo list to the other threads:
//!   the `thread_ns` module.)
//!
//! # References
//!  - [unshare(2)], `kernel/fork.c:ksys_unshare()`
//!
//! [unshare(2)]: https://man7.org/linux/man-pages/man2/unshare.2.html

use std::ffi::{c_int, c_long};
use std::mem::size_of;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

use uipc_abi::Errno;
use uipc_client::Client;

use crate::raw::{kernel, Args};
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
    // In a multi-threaded process (or a thread already in a namespace of
    // its own) the calling thread alone moves (the `thread_ns` module).
    if newipc && (crate::thread_ns::current().is_some() || crate::thread_ns::multi_threaded()) {
        let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
        return ret::int(crate::thread_ns::unshare_thread(&client).map(|()| 0));
    }
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

/// `setns(fd, nstype)` made through `syscall()`: as the `setns` wrapper
/// (`thread_ns::serve_setns`), the rest by the kernel.
pub(crate) fn raw_setns(a: &Args) -> c_long {
    let (Ok(fd), Ok(nstype)) = (c_int::try_from(a[0]), c_int::try_from(a[1])) else {
        // SAFETY: the caller's raw arguments of setns, passed on as they are.
        return unsafe { kernel(libc::SYS_setns, a) };
    };
    let kernel_setns = |fd: c_int, t: c_int| {
        let args = [c_long::from(fd), c_long::from(t), a[2], a[3], a[4], a[5]];
        // SAFETY: the caller's raw arguments of setns, with its flags narrowed.
        let r = unsafe { kernel(libc::SYS_setns, &args) };
        c_int::try_from(r).unwrap_or(-1)
    };
    c_long::from(crate::thread_ns::serve_setns(fd, nstype, kernel_setns))
}

/// While a thread makes a child with a raw `clone(CLONE_NEWIPC)`, the
/// parent's pid (0 otherwise). The child's memory is a copy of the
/// parent's at the `clone`: there this pid is not its own, and it joins
/// [`CLONED_INTO`] at its first call ([`settle_cloned_child`]).
static CLONING_PARENT: AtomicU32 = AtomicU32::new(0);
/// The namespace that child starts in.
static CLONED_INTO: Mutex<String> = Mutex::new(String::new());

/// `clone(flags, stack, parent_tid, child_tid, tls)` made through
/// `syscall()` (x86-64 argument order): see [`raw_clone_with`].
pub(crate) fn raw_clone(a: &Args) -> c_long {
    let flags = u64::from_ne_bytes(a[0].to_ne_bytes());
    let fork_like = a[1] == 0 && separate(flags);
    // SAFETY: the caller's raw arguments of clone, passed on as they are.
    let spawn = || unsafe { kernel(libc::SYS_clone, a) };
    raw_clone_with(flags, fork_like, spawn)
}

/// `struct clone_args`'s first version (`CLONE_ARGS_SIZE_VER0`): `flags`
/// at 0, `stack` at 40.
const CLONE_ARGS_SIZE_VER0: usize = 64;

/// `clone3(args, size)` made through `syscall()`: as
/// [`raw_clone`], with the flags and stack read from the caller's `struct
/// clone_args` (an unreadable one is the kernel's to refuse).
pub(crate) fn raw_clone3(a: &Args) -> c_long {
    // SAFETY: the caller's raw arguments of clone3, passed on as they are.
    let spawn = || unsafe { kernel(libc::SYS_clone3, a) };
    let addr = u64::from_ne_bytes(a[0].to_ne_bytes());
    let size = usize::from_ne_bytes(a[1].to_ne_bytes());
    let head =
        if size >= CLONE_ARGS_SIZE_VER0 { uipc_sys::map::read_at(addr, CLONE_ARGS_SIZE_VER0).ok() } else { None };
    let Some(head) = head else { return spawn() };
    let u64_at = |off: usize| {
        let mut w = [0u8; size_of::<u64>()];
        w.copy_from_slice(&head[off..off + size_of::<u64>()]);
        u64::from_ne_bytes(w)
    };
    let (flags, stack) = (u64_at(0), u64_at(40));
    let fork_like = stack == 0 && separate(flags);
    raw_clone_with(flags, fork_like, spawn)
}

/// Whether a clone with `flags` makes a child that runs apart from its
/// parent at once: no shared address space (`CLONE_VM`), and the parent
/// not suspended until the child execs or exits (`CLONE_VFORK`: the child
/// would wait for a parent that waits for it).
fn separate(flags: u64) -> bool {
    flags & (clone_flag(libc::CLONE_VM) | clone_flag(libc::CLONE_VFORK)) == 0
}

/// A `CLONE_*` constant as the 64-bit flags word holds it.
fn clone_flag(f: c_int) -> u64 {
    u64::from(f.unsigned_abs())
}

/// Makes a child with `spawn` (a raw clone). A `fork_like` child (a copy
/// of this address space, on a copy of this stack, running at once) is
/// made as `fork` makes one ([`crate::forked_by`]: the daemon counts its
/// inherited attachments before it goes on); any other is the kernel's
/// alone. If `flags` has `CLONE_NEWIPC`, a fork-like child starts in a
/// fresh uipc namespace:
///
/// 1. the parent makes an ephemeral namespace (the kernel's own
///    `CLONE_NEWIPC` still goes to the kernel, which checks
///    `CAP_SYS_ADMIN` and `CLONE_SYSVSEM` as for any clone);
/// 2. the clone happens as `fork` does it in this shim
///    ([`crate::forked_by`]): the daemon counts the child's inherited
///    attachments before the child goes on;
/// 3. the child does nothing more there (a raw clone in a threaded
///    process leaves it able to do only async-signal-safe things); at its
///    first call into the shim it joins the namespace.
fn raw_clone_with(flags: u64, fork_like: bool, spawn: impl FnOnce() -> c_long) -> c_long {
    let newipc = clone_flag(libc::CLONE_NEWIPC);
    if !fork_like {
        return spawn();
    }
    // The kernel refuses CLONE_NEWIPC with CLONE_SYSVSEM (EINVAL).
    if flags & newipc == 0 || flags & clone_flag(libc::CLONE_SYSVSEM) != 0 {
        // The child connects anew at its first call (the client sees its
        // pid changed): nothing more on its side.
        return crate::forked_by(spawn, || {});
    }
    // No daemon: the kernel's namespaces are all there is.
    let Ok(client) = crate::with_client(|c| Ok(c.clone())) else { return spawn() };
    let made = {
        let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
        client.ns_ephemeral()
    };
    let name = match made {
        Ok(n) => n,
        Err(e) => return c_long::from(ret::int(Err(e))),
    };
    // Set and cleared under the fork gate, so no other fork sees them.
    let spawn = || {
        *CLONED_INTO.lock().unwrap_or_else(|e| e.into_inner()) = name;
        CLONING_PARENT.store(std::process::id(), Ordering::Release);
        let r = spawn();
        if r != 0 {
            CLONING_PARENT.store(0, Ordering::Release);
        }
        r
    };
    crate::forked_by(spawn, || {})
}

/// Whether [`settle_cloned_child`] has nothing to do in this process (no
/// raw clone into a new namespace is pending).
pub(crate) fn settled() -> bool {
    let parent = CLONING_PARENT.load(Ordering::Acquire);
    parent == 0 || parent == std::process::id()
}

/// In a child made by a raw `clone(CLONE_NEWIPC)`, at its first call into
/// the shim: joins the namespace its parent made for it (see
/// [`raw_clone_with`]), and `UIPC_NAMESPACE` follows, as
/// [`unshare`] does it. Elsewhere, one atomic load.
pub(crate) fn settle_cloned_child(c: &Client) {
    if settled() {
        return;
    }
    let name = std::mem::take(&mut *CLONED_INTO.lock().unwrap_or_else(|e| e.into_inner()));
    CLONING_PARENT.store(0, Ordering::Release);
    // A daemon that cannot take the child fails its later calls as well.
    if c.join(&name).is_ok() {
        std::env::set_var("UIPC_NAMESPACE", name);
    }
}
