//! IPC namespaces per thread, and children made in a fresh one.
//!
//! Linux keeps the IPC namespace per thread (`task->nsproxy`):
//! `unshare(CLONE_NEWIPC)` in one thread of a multi-threaded process moves
//! that thread alone, a thread it then creates starts in its namespace
//! (`clone(CLONE_THREAD)` shares the creator's `nsproxy`), and a child it
//! forks is in its namespace too; a child made with `clone(CLONE_NEWIPC)`
//! starts in a fresh one. The shim mirrors it:
//!
//! - The process's client ([`crate::CLIENT`]) serves every thread that has
//!   no namespace of its own. A thread that unshares in a multi-threaded
//!   process ([`unshare_thread`]) gets a client of its own (a connection
//!   joined to a fresh ephemeral namespace), kept in a thread-local and
//!   used by [`crate::with_client`] for every call of that thread. (A
//!   single-threaded process moves as a whole, and `UIPC_NAMESPACE`
//!   follows: the `unshare` module.)
//! - `pthread_create` from such a thread hands its client to the new
//!   thread (the wrapper's only work; from any other thread it is the C
//!   library's call as it is).
//! - `fork` from such a thread: the child's client joins the thread's
//!   namespace, and `UIPC_NAMESPACE` follows ([`in_forked_child`]).
//! - glibc's `clone(fn, stack, flags, arg, …)` with `CLONE_NEWIPC` (and
//!   without `CLONE_VM`/`CLONE_VFORK`): the parent makes an ephemeral
//!   namespace, clones as `fork` does here (the daemon counts the child's
//!   inherited attachments before it goes on), and the child joins the
//!   namespace before `fn` runs.
//!
//! - `setns(pidfd, CLONE_NEWIPC)` (and the same through `syscall()`):
//!   the uipc namespace of the process the pidfd refers to, for the
//!   calling thread in a multi-threaded process, else for the process
//!   ([`serve_setns`]); `EPERM` without `CAP_SYS_ADMIN`, as Linux.
//!
//! Leaving a namespace by a thread's `unshare`: Linux drops the thread's
//! reference to the undo list it shares with the other threads (applied
//! when the last sharer lets go) and orphans the segments that *thread*
//! created (`exit_shm()`, visible only under `shm_rmid_forced`); uipc
//! leaves both to the other threads, which still hold them (the model
//! knows processes, not threads).
//!
//! # Known missing features
//! - `setns` with a namespace file (`/proc/PID/ns/ipc`) changes only the
//!   kernel's namespace: such a file names a kernel namespace, and every
//!   process under uipc shares one; use a pidfd.
//! - A child made by glibc's `clone` with `CLONE_VM` or `CLONE_VFORK`
//!   shares the shim's memory with its parent (or runs while the parent
//!   is suspended): with `CLONE_NEWIPC` it stays in its parent's uipc
//!   namespace (the kernel's flag still applies).
//! - An `execve` made directly by a thread with a namespace of its own in
//!   a multi-threaded process: the new program starts in the process's
//!   namespace (`UIPC_NAMESPACE` is per process); a child forked by that
//!   thread execs in the right one.
//! - An ephemeral namespace ends when the last process that joined it
//!   exits: one made for a child by `clone` lives as long as its parent,
//!   which made it, too.
//!
//! # References
//!  - [unshare(2)], [clone(2)], [namespaces(7)], `kernel/nsproxy.c`
//!
//! [unshare(2)]: https://man7.org/linux/man-pages/man2/unshare.2.html
//! [clone(2)]: https://man7.org/linux/man-pages/man2/clone.2.html
//! [namespaces(7)]: https://man7.org/linux/man-pages/man7/namespaces.7.html

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::AtomicUsize;
use std::sync::RwLockWriteGuard;

use uipc_abi::Errno;
use uipc_client::Client;

use crate::ret;

thread_local! {
    /// This thread's client when it has a namespace of its own.
    static OWN: RefCell<Option<Client>> = const { RefCell::new(None) };
}

/// Whether any thread of the process was ever given a client of its own:
/// until then [`current`] is one load.
static ANY_OWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Gives the calling thread `own`, a client of its own.
fn set_own(own: Client) -> Result<(), Errno> {
    ANY_OWN.store(true, std::sync::atomic::Ordering::Relaxed);
    OWN.try_with(|o| *o.borrow_mut() = Some(own)).map_err(|_| Errno::ESRCH)
}

/// The calling thread's own client, if it has a namespace of its own.
pub(crate) fn current() -> Option<Client> {
    // Set by this very thread before its own client, if ever.
    if !ANY_OWN.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    OWN.try_with(|o| o.borrow().clone()).ok().flatten()
}

/// Whether the process has more than one thread (`Threads:` of
/// `/proc/self/status`); `false` if that cannot be read.
pub(crate) fn multi_threaded() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return false };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .is_some_and(|n| n > 1)
}

/// `unshare(CLONE_NEWIPC)` for the calling thread alone: a fresh ephemeral
/// namespace, made through the thread's current client, and a client of
/// its own joined to it.
///
/// # Errors
/// The daemon's (`EIDRM` if the current namespace was removed), or
/// transport errors.
pub(crate) fn unshare_thread(c: &Client) -> Result<(), Errno> {
    let name = c.ns_ephemeral()?;
    let own = c.sibling(&name)?;
    // A thread that cannot keep thread-locals any more is exiting.
    set_own(own)
}

/// In a child forked by a thread with a namespace of its own, before
/// `fork` returns there: the child (whose only thread is a copy of that
/// one) is in that namespace, as a whole process now.
///
/// Returns `false` if the forking thread had no namespace of its own (the
/// caller then does what it does for any child).
pub(crate) fn in_forked_child() -> bool {
    let Some(own) = OWN.try_with(|o| o.borrow_mut().take()).ok().flatten() else { return false };
    let name = own.namespace();
    drop(own);
    join_as_process(&name);
    true
}

/// The process (a child) joins namespace `name`: its client connects there
/// (if it had one) and `UIPC_NAMESPACE` follows, so that programs it
/// executes stay there, as in the kernel's namespace.
fn join_as_process(name: &str) {
    if let Some(c) = crate::CLIENT.get() {
        let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
        // A daemon that cannot take the child fails its later calls as well.
        let _ = c.join(name);
    }
    std::env::set_var("UIPC_NAMESPACE", name);
}

/// The process a descriptor handed to `setns` refers to, if it is a pidfd
/// (the `Pid:` line of its `/proc/self/fdinfo` entry).
fn pidfd_target(fd: c_int) -> Option<u32> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    if !link.to_string_lossy().contains("pidfd") {
        return None;
    }
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    info.lines().find_map(|l| l.strip_prefix("Pid:")).and_then(|v| v.trim().parse::<u32>().ok()).filter(|&p| p > 0)
}

/// `setns(fd, nstype)` with `fd` a pidfd and `nstype` naming
/// `CLONE_NEWIPC`: the caller joins the uipc namespace of the process `fd`
/// refers to — the calling thread alone in a multi-threaded process (as
/// Linux's `setns` moves the calling thread), else the process, applying
/// its semaphore undo records first (`commit_nsset()` calls `exit_sem()`)
/// and setting `UIPC_NAMESPACE`. The other namespaces of `nstype` go to
/// `kernel` (the real call) first. Any other call is `kernel`'s alone,
/// as is every call when no daemon answers.
///
/// # Errors
/// `EPERM` without `CAP_SYS_ADMIN` (as `ipcns_install()`), `EINVAL` if
/// the daemon knows no namespace of that process; the kernel's for the
/// rest.
pub(crate) fn serve_setns(fd: c_int, nstype: c_int, kernel: impl FnOnce(c_int, c_int) -> c_int) -> c_int {
    // nstype 0 with a pidfd is the kernel's EINVAL.
    if nstype & libc::CLONE_NEWIPC == 0 {
        return kernel(fd, nstype);
    }
    let Some(pid) = pidfd_target(fd) else { return kernel(fd, nstype) };
    let Ok(client) = crate::with_client(|c| Ok(c.clone())) else { return kernel(fd, nstype) };
    let found = {
        let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
        client.namespace_of(pid)
    };
    let name = match found {
        Ok(n) => n,
        Err(e) => return ret::int(Err(e)),
    };
    let rest = nstype & !libc::CLONE_NEWIPC;
    if rest != 0 {
        let r = kernel(fd, rest);
        if r != 0 {
            return r;
        }
    }
    let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
    if current().is_some() || multi_threaded() {
        let own = client.sibling(&name);
        return ret::int(own.and_then(|own| set_own(own).map(|()| 0)));
    }
    let joined = client.unshare(false).and_then(|_| client.join(&name));
    ret::int(joined.map(|()| {
        std::env::set_var("UIPC_NAMESPACE", &name);
        0
    }))
}

type SetnsFn = unsafe extern "C" fn(c_int, c_int) -> c_int;

/// `setns(fd, nstype)` — reassociates the calling thread with a namespace.
/// With a pidfd and `CLONE_NEWIPC`, the uipc namespace of that process
/// (see [`serve_setns`]); otherwise the C library's call.
///
/// # Errors
/// setns(2)'s: `EPERM`, `EINVAL`, `EBADF`…
///
/// # Safety
/// As setns(2).
#[no_mangle]
pub unsafe extern "C" fn setns(fd: c_int, nstype: c_int) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let f = crate::creds::next(&REAL, c"setns");
    if f == 0 {
        return ret::int(Err(Errno::ENOSYS));
    }
    // SAFETY: `f` is the C library's setns, of this C type.
    let real = unsafe { std::mem::transmute::<usize, SetnsFn>(f) };
    // SAFETY: the caller's arguments, as C passes them.
    serve_setns(fd, nstype, |fd, t| unsafe { real(fd, t) })
}

type StartFn = extern "C" fn(*mut c_void) -> *mut c_void;
type PthreadCreateFn =
    unsafe extern "C" fn(*mut libc::pthread_t, *const libc::pthread_attr_t, StartFn, *mut c_void) -> c_int;

/// What a new thread of a thread with a namespace of its own starts with.
struct Start {
    start: StartFn,
    arg: *mut c_void,
    own: Client,
}

extern "C" fn start_in_namespace(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the `Box<Start>` that `pthread_create` leaked for
    // this thread alone.
    let s = unsafe { Box::from_raw(p.cast::<Start>()) };
    let Start { start, arg, own } = *s;
    // A thread just started can keep thread-locals.
    let _ = set_own(own);
    start(arg)
}

/// `pthread_create(thread, attr, start, arg)` — creates a thread; from a
/// thread with an IPC namespace of its own, the new thread starts in it
/// (as `clone(CLONE_THREAD)` shares the creator's namespaces).
///
/// # Errors
/// The C library's (`EAGAIN`, `EINVAL`, `EPERM`), returned, not in errno.
///
/// # Safety
/// As pthread_create(3).
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: StartFn,
    arg: *mut c_void,
) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let f = crate::creds::next(&REAL, c"pthread_create");
    if f == 0 {
        return libc::ENOSYS;
    }
    // SAFETY: `f` is the C library's pthread_create, of this C type.
    let real = unsafe { std::mem::transmute::<usize, PthreadCreateFn>(f) };
    let Some(own) = current() else {
        // SAFETY: the caller's arguments, as C passes them.
        return unsafe { real(thread, attr, start, arg) };
    };
    let boxed = Box::into_raw(Box::new(Start { start, arg, own }));
    // SAFETY: the caller's thread and attributes; the new thread owns `boxed`.
    let r = unsafe { real(thread, attr, start_in_namespace, boxed.cast()) };
    if r != 0 {
        // SAFETY: no thread was made: `boxed` is still ours.
        drop(unsafe { Box::from_raw(boxed) });
    }
    r
}

type CloneFn = extern "C" fn(*mut c_void) -> c_int;
type RealClone = unsafe extern "C" fn(CloneFn, *mut c_void, c_int, *mut c_void, ...) -> c_int;

/// What the child of `clone(CLONE_NEWIPC)` needs before `fn` runs.
struct CloneChild {
    f: CloneFn,
    arg: *mut c_void,
    /// The fork gate, write-locked by the parent; the child's copy is
    /// released by the child.
    gate: Option<RwLockWriteGuard<'static, ()>>,
    /// The pipe the child waits on until the parent told the daemon.
    pipe: Option<(c_int, c_int)>,
    namespace: String,
}

/// Waits until the parent writes (or closes) the pipe's other end.
fn wait_for_parent(rd: c_int) {
    let mut b = 0u8;
    loop {
        // SAFETY: reads at most one byte into `b`.
        let n = unsafe { libc::read(rd, std::ptr::addr_of_mut!(b).cast(), 1) };
        // SAFETY: reads this thread's errno slot.
        if n >= 0 || unsafe { *libc::__errno_location() } != libc::EINTR {
            return;
        }
    }
}

extern "C" fn clone_child(p: *mut c_void) -> c_int {
    // SAFETY: `p` is the parent's `CloneChild`, in this child's own copy of
    // the parent's memory (no CLONE_VM): nobody else touches it here.
    let ctx = unsafe { &mut *p.cast::<CloneChild>() };
    drop(ctx.gate.take());
    if let Some((rd, wr)) = ctx.pipe {
        crate::close(wr);
        wait_for_parent(rd);
        crate::close(rd);
    }
    // The inherited per-thread namespace, if any, is superseded.
    let _ = OWN.try_with(|o| o.borrow_mut().take());
    join_as_process(&ctx.namespace);
    (ctx.f)(ctx.arg)
}

/// `clone(fn, stack, flags, arg, parent_tid, tls, child_tid)` — glibc's
/// wrapper: creates a child that runs `fn(arg)` on `stack`. With
/// `CLONE_NEWIPC` (and a child of its own address space: no `CLONE_VM`,
/// no `CLONE_VFORK`) the child starts in a fresh uipc namespace (see the
/// module); any other call is the C library's as it is.
///
/// The C function is variadic after `arg`; on x86-64 and aarch64 a
/// variadic argument travels where a fixed one would, so the three are
/// read as fixed arguments and handed on (the C library reads them only
/// with the flags that say they were passed; see the `procfs` module on
/// `open`'s `mode`).
///
/// # Errors
/// clone(2)'s, from the C library (`EINVAL` for `CLONE_NEWIPC` with
/// `CLONE_SYSVSEM`, …); the daemon's when the namespace cannot be made.
///
/// # Safety
/// As clone(2).
#[no_mangle]
pub unsafe extern "C" fn clone(
    f: CloneFn,
    stack: *mut c_void,
    flags: c_int,
    arg: *mut c_void,
    parent_tid: *mut c_void,
    tls: *mut c_void,
    child_tid: *mut c_void,
) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let real = crate::creds::next(&REAL, c"clone");
    if real == 0 {
        return ret::int(Err(Errno::ENOSYS));
    }
    // SAFETY: `real` is the C library's clone, of this C type.
    let real = unsafe { std::mem::transmute::<usize, RealClone>(real) };
    let own_space = flags & (libc::CLONE_VM | libc::CLONE_VFORK) == 0;
    // The kernel refuses CLONE_NEWIPC with CLONE_SYSVSEM (EINVAL): its call.
    let fresh = flags & libc::CLONE_NEWIPC != 0 && flags & libc::CLONE_SYSVSEM == 0 && own_space;
    let client = if fresh { crate::with_client(|c| Ok(c.clone())).ok() } else { None };
    let Some(client) = client else {
        // SAFETY: the caller's arguments, as C passes them.
        return unsafe { real(f, stack, flags, arg, parent_tid, tls, child_tid) };
    };
    let made = {
        let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
        client.ns_ephemeral()
    };
    let namespace = match made {
        Ok(n) => n,
        Err(e) => return ret::int(Err(e)),
    };
    // The uipc namespace is the child's; the kernel's stays the kernel's
    // business (it still checks CAP_SYS_ADMIN), as the `unshare` wrapper does.
    let flags = flags & !libc::CLONE_NEWIPC;
    let Some(process) = crate::CLIENT.get() else { return ret::int(Err(Errno::ENOSYS)) };
    let gate = crate::GATE.write().unwrap_or_else(|e| e.into_inner());
    let mut fds = [-1 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let pipe = (unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0).then_some((fds[0], fds[1]));
    let mut ctx = Box::new(CloneChild { f, arg, gate: Some(gate), pipe, namespace });
    let ctx_ptr: *mut CloneChild = &mut *ctx;
    // SAFETY: the caller's stack and thread arguments; the child gets its
    // own copy of `ctx` (no CLONE_VM), which only it uses.
    let pid = unsafe { real(clone_child, stack, flags, ctx_ptr.cast(), parent_tid, tls, child_tid) };
    // SAFETY: reads this thread's errno slot.
    let errno = unsafe { *libc::__errno_location() };
    if pid > 0 {
        if let Some((rd, _)) = ctx.pipe {
            crate::close(rd);
        }
        // If the daemon is gone there is nothing to count.
        let _ = u32::try_from(pid).map(|child| process.forked(child));
    }
    drop(ctx.gate.take());
    if let Some((rd, wr)) = ctx.pipe {
        if pid > 0 {
            let b = 1u8;
            // SAFETY: writes one byte from `b`.
            let _ = unsafe { libc::write(wr, std::ptr::addr_of!(b).cast(), 1) };
        } else {
            crate::close(rd);
        }
        crate::close(wr);
    }
    // SAFETY: writes this thread's errno slot (clone's, on failure).
    unsafe { *libc::__errno_location() = errno };
    pid
}
