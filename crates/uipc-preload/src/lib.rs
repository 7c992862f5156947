//! `libuipc_preload.so`: System V IPC, POSIX shared memory, named
//! semaphores and message queues for unmodified programs, served by the
//! uipc daemon.
//!
//! ```sh
//! LD_PRELOAD=libuipc_preload.so UIPC_SOCKET=/run/uipc.sock ./program
//! ```
//!
//! The library exports `shmget`, `shmat`, `shmdt` and `shmctl` with the C
//! signatures of `<sys/shm.h>`; `semget`, `semop`, `semtimedop` and
//! `semctl` with those of `<sys/sem.h>` (the `sem` module; `semctl`'s
//! variadic entry point is C, `src/semctl.c`); `fork`; `unshare` (the
//! `unshare` module: `CLONE_SYSVSEM` and `CLONE_NEWIPC` served by uipc);
//! `clone` and `pthread_create` (the `thread_ns` module);
//! the `setuid` family (the `creds` module); every `mq_*` function of
//! `<mqueue.h>` (the `mq` module; `mq_open`'s variadic entry point is C,
//! `src/mq_open.c`), with `close`, `dup`, `dup2`, `dup3`, `fcntl`,
//! `fcntl64`, `read`, `write`, `lseek` and `lseek64` wrapped for queue
//! descriptors; `syscall` (the `raw` module:
//! the same calls made through libc's `syscall()`, its variadic entry point
//! `src/syscall.c`); and, in trap mode (`uipc run --trap`, the `trap`
//! module), a `SIGSYS` handler that serves the IPC calls made with the
//! `syscall` instruction itself, with `sigaction`, `signal`,
//! `sigprocmask` and `pthread_sigmask` wrapped to keep it. It never calls the kernel's IPC
//! system calls: every call goes to the daemon through one process-wide
//! [`uipc_client::Client`], created at the first call. When no daemon
//! answers, calls fail with `ENOSYS` — the errno Linux gives where the IPC
//! system calls are missing.
//!
//! It also answers reads of `/proc/sysvipc/*` and of the System V sysctls
//! under `/proc/sys/kernel/` from the daemon, wrapping `open`, `open64`,
//! `openat`, `openat64`, their `_FORTIFY_SOURCE` forms, `fopen`, `fopen64`
//! and `access` for exactly those paths, so that unmodified `ipcs` and
//! `lsipc` show uipc's objects (see the `procfs` module; with no daemon
//! these paths show the kernel's files).
//!
//! # Compatibility
//! - Symbol versions: on x86_64 glibc (checked on 2.36 with `objdump -T`)
//!   defines `shmget`, `shmat`, `shmdt`, `shmctl`, `semget`, `semop` and
//!   `semctl` only at `GLIBC_2.2.5` and `semtimedop` only at `GLIBC_2.3.3`
//!   (the `semctl@GLIBC_2.31` some ports have does not exist on x86_64);
//!   the shim's unversioned definitions bind every reference to them (the
//!   dynamic linker accepts an unversioned definition for a versioned
//!   reference), whichever version a program was linked against.
//! - `semctl` reads its fourth argument only for the commands glibc reads
//!   it for, and, like glibc on x86_64, answers `EINVAL` for any other
//!   command (including one with `IPC_64`'s bit, 0x100, set).
//! - `shmctl`'s `cmd` is passed through as given: on x86_64 glibc does not
//!   add `IPC_64`, and the kernel does not strip it.
//! - Threads: the client is shared by all threads (one connection behind a
//!   mutex); a gate (read-locked by every call, write-locked by `fork`)
//!   makes sure no thread is inside the client when the process forks. A
//!   `semop` that sleeps does so on a pooled connection of its own, outside
//!   the gate: other threads call, and fork, meanwhile. A signal handler
//!   that runs while it sleeps makes it fail with `EINTR` (unless the
//!   operation already happened), with or without `SA_RESTART`, as the
//!   kernel's `semop` is never restarted.
//! - `fork`: the parent tells the daemon about the child before either
//!   returns, so the child's inherited attachments count at once (as the
//!   kernel counts them in `fork`); the child opens its own connection
//!   before `fork` returns there, so its `execve` closes a connection of
//!   its own (the daemon sees that as the child's exec).
//! - `execve` and exit: nothing to do here. The client's connection is
//!   close-on-exec, and the daemon follows process life with pidfds; it
//!   releases a process's attachments at exec and exit as Linux does.
//! - Credentials: after `setuid` and the rest of the family, `setgroups`
//!   and `capset`, each connection has the daemon re-read the calling
//!   thread's credentials before its next request, so every call is judged
//!   with the caller's current ids, per thread (the `creds` module).
//! - `munmap` and `mprotect` of part or all of an attach are reported to
//!   the daemon, which splits or closes it as Linux does (`nattch`; the
//!   `mm` module).
//! - IPC namespaces per thread (the `thread_ns` module): `unshare(CLONE_NEWIPC)`
//!   in a thread of a multi-threaded process moves that thread alone (and
//!   the threads it creates — `pthread_create` is wrapped for that — and
//!   the children it forks); glibc's `clone` with `CLONE_NEWIPC` starts its
//!   child in a fresh namespace, made as `fork` makes a child here.
//!
//! # Known missing features
//! - `vfork`, `posix_spawn` and `clone` without `CLONE_NEWIPC` are not
//!   wrapped (children made by them exec or share the address space, and
//!   inherit no attachments of their own).
//! - IPC calls made with the `syscall` instruction itself are caught only
//!   in trap mode (`uipc run --trap`), and only on x86-64; statically
//!   linked programs cannot load the shim (`uipc run` refuses them).
//! - `mq_notify` with `SIGEV_THREAD` through `syscall()` or trapped (the
//!   kernel's netlink form) answers `ENOSYS`.
//! - A `semop` of more than 116,000 operations (possible only with
//!   `kernel.sem`'s SEMOPM raised that far) fails with `ENOMEM`: one
//!   request carries at most that many.
//!
//! # References
//!  - [shmget(2)], [shmop(2)], [shmctl(2)], [semget(2)], [semop(2)],
//!    [semctl(2)], [fork(2)]
//!
//! [shmget(2)]: https://man7.org/linux/man-pages/man2/shmget.2.html
//! [shmop(2)]: https://man7.org/linux/man-pages/man2/shmop.2.html
//! [shmctl(2)]: https://man7.org/linux/man-pages/man2/shmctl.2.html
//! [semget(2)]: https://man7.org/linux/man-pages/man2/semget.2.html
//! [semop(2)]: https://man7.org/linux/man-pages/man2/semop.2.html
//! [semctl(2)]: https://man7.org/linux/man-pages/man2/semctl.2.html
//! [fork(2)]: https://man7.org/linux/man-pages/man2/fork.2.html
#![deny(missing_docs)]

mod creds;
mod mm;
mod mq;
mod msg;
mod procfs;
mod pshm;
mod raw;
mod ret;
mod sem;
mod sysctl_write;
mod thread_ns;
mod trap;
mod unshare;
mod usermem;

use std::ffi::{c_int, c_long, c_void};
use std::mem::size_of;
use std::sync::{Mutex, OnceLock, RwLock};

use libc::{pid_t, size_t};
use uipc_abi::{CBytes, Errno, Shmid64Ds};
use uipc_client::Client;
use uipc_core::sysv::shm::ShmCmd;
use uipc_proto::CtlOut;

/// The process's client, once connected.
static CLIENT: OnceLock<Client> = OnceLock::new();
/// Serialises connecting, so two threads never both connect.
static CONNECTING: Mutex<()> = Mutex::new(());
/// Read-locked around every call into the client, write-locked by `fork`:
/// the child never inherits a client lock held by a thread it lacks.
static GATE: RwLock<()> = RwLock::new(());

/// The process's client at the entry of a call: taken without the gate
/// when it is connected and has nothing to settle (the common case: the
/// gate's read lock is two atomic updates of a line every thread shares,
/// a tenth of an uncontended fast `semop`), else as [`client`] under it.
/// For a call on a descriptor (a POSIX queue's), which names its object
/// whatever the thread's namespace.
///
/// # Errors
/// As [`client`].
fn process_entry_client() -> Result<&'static Client, Errno> {
    if let Some(c) = CLIENT.get().filter(|_| unshare::settled()) {
        return Ok(c);
    }
    let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
    client()
}

/// The calling thread's client at the entry of a call that names its
/// object by id (`semop`, `msgsnd`): the thread's own if it has an IPC
/// namespace of its own (the `thread_ns` module), else the process's, as
/// [`process_entry_client`] takes it.
///
/// # Errors
/// As [`client`].
fn entry_client() -> Result<EntryClient, Errno> {
    match thread_ns::current() {
        Some(own) => Ok(EntryClient::Thread(own)),
        None => process_entry_client().map(EntryClient::Process),
    }
}

/// A call's client ([`entry_client`]).
enum EntryClient {
    /// The process's.
    Process(&'static Client),
    /// The calling thread's own.
    Thread(Client),
}

impl std::ops::Deref for EntryClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        match self {
            EntryClient::Process(c) => c,
            EntryClient::Thread(c) => c,
        }
    }
}

/// The process's client, connecting at the first call.
///
/// # Errors
/// `ENOSYS` when no daemon answers (as Linux without System V IPC).
fn client() -> Result<&'static Client, Errno> {
    if let Some(c) = CLIENT.get() {
        unshare::settle_cloned_child(c);
        return Ok(c);
    }
    let _connecting = CONNECTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    // No daemon, or one that does not speak our protocol: the IPC calls do
    // not exist here, which Linux reports as ENOSYS (CONFIG_SYSVIPC=n).
    let c = Client::connect().map_err(|_| Errno::ENOSYS)?;
    Ok(CLIENT.get_or_init(|| c))
}

/// Runs `f` with the calling thread's client — its own if it has an IPC
/// namespace of its own (the `thread_ns` module), else the process's —
/// inside the fork gate.
fn with_client<T>(f: impl FnOnce(&Client) -> Result<T, Errno>) -> Result<T, Errno> {
    let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
    match thread_ns::current() {
        Some(own) => f(&own),
        None => f(client()?),
    }
}

/// `shmget(key, size, shmflg)` — gets or creates a System V shared memory segment.
///
/// # Errors
/// shmget(2)'s: `EINVAL`, `ENOENT`, `EEXIST`, `EACCES`, `ENOSPC`, `ENOMEM`,
/// `EPERM`; `ENOSYS` when no daemon answers.
///
/// # Safety
/// None beyond C's: the arguments are plain values.
#[no_mangle]
pub unsafe extern "C" fn shmget(key: c_int, size: size_t, shmflg: c_int) -> c_int {
    ret::int(with_client(|c| {
        // A size_t always fits in u64 on the targets we build for.
        let size = u64::try_from(size).map_err(|_| Errno::EINVAL)?;
        c.shmget(key, size, shmflg).map(|id| id.0)
    }))
}

/// `shmat(shmid, shmaddr, shmflg)` — attaches a segment; returns its address
/// or `(void *) -1`.
///
/// # Errors
/// shmat(2)'s: `EINVAL`, `EACCES`, `EIDRM`, `ENOMEM`; `ENOSYS` when no
/// daemon answers.
///
/// # Safety
/// As shmat(2): a fixed `shmaddr` with `SHM_REMAP` replaces whatever the
/// caller had mapped there.
#[no_mangle]
pub unsafe extern "C" fn shmat(shmid: c_int, shmaddr: *const c_void, shmflg: c_int) -> *mut c_void {
    // The pointer is only an address for the daemon and mmap: never dereferenced.
    let addr = shmaddr as usize as u64;
    ret::addr(with_client(|c| mm::attach(c, shmid, addr, shmflg)))
}

/// `shmdt(shmaddr)` — detaches the segment attached at `shmaddr`.
///
/// # Errors
/// `EINVAL` when no segment is attached at `shmaddr` (or it is not
/// page-aligned); `ENOSYS` when no daemon answers.
///
/// # Safety
/// As shmdt(2): the memory at `shmaddr` goes away.
#[no_mangle]
pub unsafe extern "C" fn shmdt(shmaddr: *const c_void) -> c_int {
    let addr = shmaddr as usize as u64;
    usermem::mappings_changed();
    ret::int(with_client(|c| c.shmdt(addr).map(|()| mm::detached(addr))).map(|()| 0))
}

/// `shmctl(shmid, cmd, buf)` — controls a segment, or reads the namespace's
/// limits and usage.
///
/// `buf` is read (`IPC_SET`) or written (`IPC_STAT`, `SHM_STAT`,
/// `SHM_STAT_ANY`, `IPC_INFO`, `SHM_INFO`) as the kernel does, through
/// fault-safe copies: a bad pointer gives `EFAULT`, never a crash.
///
/// # Errors
/// shmctl(2)'s: `EINVAL`, `EFAULT`, `EACCES`, `EPERM`, `EIDRM`, `ENOMEM`,
/// `EOVERFLOW`; `ENOSYS` when no daemon answers.
///
/// # Safety
/// For the writing commands, `buf` must be the caller's buffer of the
/// command's structure (or an unmapped address): it is written.
#[no_mangle]
pub unsafe extern "C" fn shmctl(shmid: c_int, cmd: c_int, buf: *mut libc::shmid_ds) -> c_int {
    let addr = buf as usize as u64;
    ret::int(with_client(|c| {
        // ipc/shm.c:ksys_shmctl: a negative id or cmd, then an unknown cmd → EINVAL.
        let decoded = ShmCmd::decode(shmid, cmd)?;
        // ksys_shmctl, IPC_SET: "if (copy_shmid_from_user(&sem64, buf, version)) return -EFAULT;"
        // — before the id is looked up.
        let set = if decoded == ShmCmd::IpcSet { Some(read_set(addr)?) } else { None };
        let (r, out) = c.shmctl(shmid, cmd, set)?;
        let r = c_int::try_from(r).map_err(|_| Errno::EOVERFLOW)?;
        // The command has happened; only the copy-out can still fail
        // ("if (copy_shmid_to_user(buf, &sem64, version)) err = -EFAULT;").
        let bytes = match out {
            CtlOut::None => return Ok(r),
            CtlOut::ShmDs(ds) => ds.to_c_bytes(),
            CtlOut::Shminfo(i) => i.to_c_bytes(),
            CtlOut::ShmInfo(i) => i.to_c_bytes(),
        };
        // SAFETY: `buf` is the caller's buffer for this command's structure
        // (the C contract of shmctl); nothing of the shim's lies there. The
        // copy is checked by the kernel (EFAULT, never a fault) unless it
        // lies on the caller's own stack.
        unsafe { uipc_sys::map::write_to_caller(addr, &bytes) }?;
        Ok(r)
    }))
}

/// Reads `IPC_SET`'s `(uid, gid, mode)` from the caller's `struct shmid_ds`.
///
/// # Errors
/// `EFAULT` if the whole structure is not readable (the kernel copies all
/// of it).
fn read_set(addr: u64) -> Result<(u32, u32, u32), Errno> {
    let bytes = uipc_sys::map::read_at(addr, size_of::<Shmid64Ds>())?;
    let perm = Shmid64Ds::from_c_bytes(&bytes).ok_or(Errno::EFAULT)?.shm_perm;
    Ok((perm.uid, perm.gid, perm.mode))
}

type ForkFn = unsafe extern "C" fn() -> pid_t;

/// libc's `fork`, the next definition after ours.
fn real_fork() -> Option<ForkFn> {
    static REAL: OnceLock<usize> = OnceLock::new();
    let f = *REAL.get_or_init(|| {
        // SAFETY: RTLD_NEXT with a NUL-terminated name only looks a symbol up.
        unsafe { libc::dlsym(libc::RTLD_NEXT, c"fork".as_ptr()) as usize }
    });
    if f == 0 {
        return None;
    }
    // SAFETY: `f` is libc's `fork`, whose C type is `pid_t fork(void)`.
    Some(unsafe { std::mem::transmute::<usize, ForkFn>(f) })
}

/// Closes a descriptor we opened, ignoring errors (nothing to do about them).
fn close(fd: c_int) {
    // SAFETY: `fd` is a pipe end this module opened and nobody else uses.
    unsafe { libc::close(fd) };
}

/// `fork()` — libc's fork, with the daemon told about the child before
/// either process returns, so that the child's inherited attachments count
/// at once (as the kernel counts them in `fork`).
///
/// # Errors
/// fork(2)'s (`EAGAIN`, `ENOMEM`), set by libc; `ENOSYS` if libc's `fork`
/// cannot be found.
///
/// # Safety
/// As fork(2).
#[no_mangle]
pub unsafe extern "C" fn fork() -> pid_t {
    let Some(real) = real_fork() else {
        return ret::int(Err(Errno::ENOSYS));
    };
    // SAFETY: libc's fork, called as C calls it; after it the child runs
    // the C library's child handlers, so it may connect anew at once.
    let spawn = || c_long::from(unsafe { real() });
    // A child forked by a thread with a namespace of its own is in it.
    let pid = forked_by(spawn, || {
        if !thread_ns::in_forked_child() {
            creds::renew_in_child();
        }
    });
    // A pid_t result came back as a long.
    pid_t::try_from(pid).unwrap_or(-1)
}

/// Makes a child with `spawn` (a `fork`, or a `clone` without `CLONE_VM`,
/// returning 0 in the child, the child's pid in the parent, -1 with errno
/// set on failure) and tells the daemon about it before either process
/// returns: the parent sends `Forked` while the child waits on a pipe, then
/// lets it go; the child then runs `in_child`. Never connected: nothing to
/// tell, `spawn` alone.
///
/// Between `spawn` and its return, the child only drops the gate and reads
/// the pipe (async-signal-safe, as a raw `clone` in a threaded process
/// requires) before `in_child`.
pub(crate) fn forked_by(spawn: impl FnOnce() -> c_long, in_child: impl FnOnce()) -> c_long {
    let Some(c) = CLIENT.get() else {
        let pid = spawn();
        if pid == 0 {
            uipc_sys::proc::forget_cached_pid();
        }
        return pid;
    };
    unshare::settle_cloned_child(c);
    let gate = GATE.write().unwrap_or_else(|e| e.into_inner());
    // The child waits on this pipe until the parent has told the daemon.
    let mut fds = [-1 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let piped = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0;
    let [rd, wr] = fds;
    // No client lock is held by another thread (the gate is write-locked).
    let pid = spawn();
    match pid {
        0 => {
            uipc_sys::proc::forget_cached_pid();
            drop(gate);
            if piped {
                close(wr);
                let mut b = 0u8;
                loop {
                    // SAFETY: reads at most one byte into `b`.
                    let n = unsafe { libc::read(rd, std::ptr::addr_of_mut!(b).cast(), 1) };
                    // SAFETY: reads this thread's errno slot.
                    if n >= 0 || unsafe { *libc::__errno_location() } != libc::EINTR {
                        break;
                    }
                }
                close(rd);
            }
            in_child();
            0
        }
        p if p > 0 => {
            if piped {
                close(rd);
            }
            // If the daemon is gone there is nothing to count: the child
            // still goes on.
            let _ = u32::try_from(p).map(|child| c.forked(child));
            drop(gate);
            if piped {
                let b = 1u8;
                // SAFETY: writes one byte from `b`.
                let _ = unsafe { libc::write(wr, std::ptr::addr_of!(b).cast(), 1) };
                close(wr);
            }
            p
        }
        failed => {
            // Closing the pipe must not change the spawn's errno.
            // SAFETY: reads this thread's errno slot.
            let errno = unsafe { *libc::__errno_location() };
            drop(gate);
            if piped {
                close(rd);
                close(wr);
            }
            // SAFETY: writes this thread's errno slot.
            unsafe { *libc::__errno_location() = errno };
            failed
        }
    }
}
