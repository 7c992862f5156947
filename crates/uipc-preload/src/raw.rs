//! Raw system calls: libc's `syscall()` interposed (its variadic C entry
//! point is `src/syscall.c`, calling [`uipc_preload_syscall`]), and the
//! same table for the calls trap mode catches at the `syscall` instruction
//! itself (the `trap` module).
//!
//! [`route`] says, for each system call number, what the shim does with it:
//!
//! - every System V IPC call is served by the shim's own function of that
//!   name, with the raw call's arguments as the kernel takes them (`int`
//!   arguments are the low 32 bits of the register; `semctl`'s fourth
//!   argument is the union's word, by value, read for every command;
//!   `shmctl`/`semctl`'s `cmd` is passed as given, with no `IPC_64`
//!   added, as glibc on x86-64 does not add one either). Pointers are
//!   copied with checked copies, so a bad one gives `EFAULT` as the
//!   kernel's `copy_from_user` does;
//! - the POSIX message-queue calls (`mq_*`) are the kernel's, not glibc's:
//!   `mq_open` and `mq_unlink` take the name without its `/` (no `EINVAL`
//!   for a missing one), `mq_open` reads a non-NULL `attr` even without
//!   `O_CREAT`, `mq_unlink` reports `EPERM` (glibc's `EACCES`), and
//!   `mq_notify` with `SIGEV_THREAD` (a netlink socket for the kernel)
//!   answers `ENOSYS`; the System V ones are served like the others;
//! - the credential calls (`set*id`, `setfs*id`, `setgroups`, `capset`)
//!   are made as asked, then the daemon is told to read the caller's
//!   credentials anew (as the libc wrappers of the `creds` module do);
//! - `unshare` goes to the shim's `unshare` (the `unshare` module);
//!   `setns`, `clone` and `clone3` to the hooks of that module;
//! - everything else goes to the C library's `syscall()` unchanged, all six
//!   argument words included.
//!
//! The result follows `syscall()`'s convention: the value, or `-1` with
//! `errno` set (the `trap` module turns that into the raw `-errno`).
//!
//! # Compatibility
//! - A raw credential call changes only the calling thread's credentials
//!   (glibc's wrappers change every thread's); it is reported as a change
//!   of the calling thread (`creds::CredScope::Thread`).
//!
//! # References
//!  - [syscall(2)], [syscalls(2)], `arch/x86/entry/syscalls/syscall_64.tbl`
//!
//! [syscall(2)]: https://man7.org/linux/man-pages/man2/syscall.2.html
//! [syscalls(2)]: https://man7.org/linux/man-pages/man2/syscalls.2.html

use std::ffi::{c_int, c_long, c_uint, c_ulong};
use std::sync::atomic::AtomicUsize;

use uipc_abi::Errno;

use crate::ret;

/// The six argument words of a system call.
pub(crate) type Args = [c_long; 6];

/// What the shim does with one system call number.
pub(crate) enum Route {
    /// Served by the shim: `-1` with `errno` set on failure.
    Served(fn(&Args) -> c_long),
    /// A credential change: made as asked, then the daemon is told.
    Credentials,
    /// Anything else: the kernel's, unchanged.
    Kernel,
}

/// The low 32 bits of an argument word, as the kernel reads an `int` or
/// `unsigned int` argument (`SYSCALL_DEFINE`'s `__SC_CAST`).
fn int(a: c_long) -> c_int {
    let b = a.to_le_bytes();
    c_int::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// An argument word as an unsigned machine word (`size_t`, `unsigned long`).
fn word(a: c_long) -> usize {
    usize::from_ne_bytes(a.to_ne_bytes())
}

/// An `int` result as `syscall()` returns it.
fn long(r: c_int) -> c_long {
    c_long::from(r)
}

/// Defines a [`Route::Served`] entry: `|a| call` with the argument words `a`.
macro_rules! served {
    (|$a:ident| $call:expr) => {
        Route::Served(|$a: &Args| {
            // SAFETY: the words are the caller's raw system call arguments,
            // which syscall(2)'s contract makes those of this call; the
            // shim's function reads and writes user memory only through
            // checked copies (EFAULT, never a fault), as the kernel does.
            unsafe { $call }
        })
    };
}

/// The shim's answer for system call `nr`.
#[allow(clippy::too_many_lines)]
pub(crate) fn route(nr: c_long) -> Route {
    match nr {
        libc::SYS_shmget => served!(|a| long(crate::shmget(int(a[0]), word(a[1]), int(a[2])))),
        libc::SYS_shmat => served!(|a| {
            let p = crate::shmat(int(a[0]), word(a[1]) as *const _, int(a[2]));
            // The address is the value (`(void *) -1` is -1).
            c_long::from_ne_bytes((p as usize).to_ne_bytes())
        }),
        libc::SYS_shmdt => served!(|a| long(crate::shmdt(word(a[0]) as *const _))),
        libc::SYS_shmctl => served!(|a| long(crate::shmctl(int(a[0]), int(a[1]), word(a[2]) as *mut _))),
        libc::SYS_semget => served!(|a| long(crate::sem::semget(int(a[0]), int(a[1]), int(a[2])))),
        libc::SYS_semop => served!(|a| long(crate::sem::semop(int(a[0]), word(a[1]) as *mut _, word(a[2])))),
        libc::SYS_semtimedop => {
            served!(|a| long(crate::sem::semtimedop(
                int(a[0]),
                word(a[1]) as *mut _,
                word(a[2]),
                word(a[3]) as *const _
            )))
        }
        // SYSCALL_DEFINE4(semctl, int semid, int semnum, int cmd, unsigned long arg).
        libc::SYS_semctl => {
            served!(|a| long(crate::sem::uipc_preload_semctl(int(a[0]), int(a[1]), int(a[2]), word(a[3]) as c_ulong)))
        }
        libc::SYS_msgget => served!(|a| long(crate::msg::msgget(int(a[0]), int(a[1])))),
        // SYSCALL_DEFINE4(msgsnd, int msqid, struct msgbuf __user *msgp, size_t msgsz, int msgflg).
        libc::SYS_msgsnd => {
            served!(|a| long(crate::msg::msgsnd(int(a[0]), word(a[1]) as *const _, word(a[2]), int(a[3]))))
        }
        // SYSCALL_DEFINE5(msgrcv, int msqid, struct msgbuf __user *msgp, size_t msgsz, long msgtyp, int msgflg).
        libc::SYS_msgrcv => served!(|a| c_long::try_from(crate::msg::msgrcv(
            int(a[0]),
            word(a[1]) as *mut _,
            word(a[2]),
            a[3],
            int(a[4])
        ))
        .unwrap_or(-1)),
        libc::SYS_msgctl => served!(|a| long(crate::msg::msgctl(int(a[0]), int(a[1]), word(a[2]) as *mut _))),
        // Issue 13 (POSIX message queues) serves these.
        libc::SYS_mq_open => served!(|a| long(crate::mq::raw_mq_open(
            word(a[0]) as *const _,
            int(a[1]),
            c_uint::from_ne_bytes(int(a[2]).to_ne_bytes()),
            word(a[3]) as *const _
        ))),
        libc::SYS_mq_unlink => served!(|a| long(crate::mq::raw_mq_unlink(word(a[0]) as *const _))),
        libc::SYS_mq_timedsend => served!(|a| long(crate::mq::mq_timedsend(
            int(a[0]),
            word(a[1]) as *const _,
            word(a[2]),
            c_uint::from_ne_bytes(int(a[3]).to_ne_bytes()),
            word(a[4]) as *const _
        ))),
        libc::SYS_mq_timedreceive => served!(|a| c_long::try_from(crate::mq::mq_timedreceive(
            int(a[0]),
            word(a[1]) as *mut _,
            word(a[2]),
            word(a[3]) as *mut _,
            word(a[4]) as *const _
        ))
        .unwrap_or(-1)),
        libc::SYS_mq_notify => served!(|a| long(crate::mq::raw_mq_notify(int(a[0]), word(a[1]) as *const _))),
        libc::SYS_mq_getsetattr => {
            served!(|a| long(crate::mq::raw_mq_getsetattr(int(a[0]), word(a[1]) as *const _, word(a[2]) as *mut _)))
        }
        libc::SYS_setuid
        | libc::SYS_setgid
        | libc::SYS_setreuid
        | libc::SYS_setregid
        | libc::SYS_setresuid
        | libc::SYS_setresgid
        | libc::SYS_setfsuid
        | libc::SYS_setfsgid
        | libc::SYS_setgroups
        | libc::SYS_capset => Route::Credentials,
        libc::SYS_unshare => served!(|a| long(crate::unshare::unshare(int(a[0])))),
        libc::SYS_setns => Route::Served(crate::unshare::raw_setns),
        libc::SYS_clone => Route::Served(crate::unshare::raw_clone),
        libc::SYS_clone3 => Route::Served(crate::unshare::raw_clone3),
        _ => Route::Kernel,
    }
}

/// `syscall(number, ...)`'s Rust half, called by `syscall` in
/// `src/syscall.c` with the six argument words.
///
/// # Errors
/// The system call's, as `-1` with `errno` set; `ENOSYS` for the message
/// queue calls (see the module documentation).
///
/// # Safety
/// syscall(2)'s: the words must be valid arguments of system call `nr`.
#[no_mangle]
pub unsafe extern "C" fn uipc_preload_syscall(
    nr: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    let a = [a1, a2, a3, a4, a5, a6];
    match route(nr) {
        Route::Served(f) => f(&a),
        Route::Credentials => {
            // None of these calls has a sixth argument: the register
            // carries the cookie that lets trap mode's filter pass it.
            let mut a = a;
            a[5] = c_long::from(uipc_sys::seccomp::CRED_COOKIE);
            // SAFETY: this function's contract.
            let r = unsafe { kernel(nr, &a) };
            // setfsuid/setfsgid return the previous id, never -1.
            if r != -1 {
                crate::creds::renew();
            }
            r
        }
        // SAFETY: this function's contract.
        Route::Kernel => unsafe { kernel(nr, &a) },
    }
}

type SyscallFn = unsafe extern "C" fn(c_long, ...) -> c_long;

/// The C library's `syscall()`: system call `nr` with the six words, made
/// by the kernel; `-1` with `errno` set on failure.
///
/// # Safety
/// syscall(2)'s: the words must be valid arguments of system call `nr`.
pub(crate) unsafe fn kernel(nr: c_long, a: &Args) -> c_long {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let f = crate::creds::next(&REAL, c"syscall");
    if f == 0 {
        return c_long::from(ret::int(Err(Errno::ENOSYS)));
    }
    // SAFETY: `f` is the C library's `long syscall(long, ...)`.
    let real = unsafe { std::mem::transmute::<usize, SyscallFn>(f) };
    // SAFETY: the caller's contract; the C library's syscall passes the
    // six words to the kernel as they are.
    unsafe { real(nr, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

/// The C half must be linked in (it holds the exported `syscall`).
mod c_half {
    extern "C" {
        fn syscall(number: std::ffi::c_long, ...) -> std::ffi::c_long;
    }

    /// Referenced so that the linker keeps `src/syscall.c`'s object.
    #[used]
    static KEEP: unsafe extern "C" fn(std::ffi::c_long, ...) -> std::ffi::c_long = syscall;
}
