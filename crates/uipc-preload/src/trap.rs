//! Trap mode (`uipc run --trap`): System V IPC and POSIX message-queue
//! calls made with the `syscall` instruction itself — inline assembly, Go's
//! runtime, another C library — served as if they had come through libc.
//!
//! `uipc run --trap` starts the program behind a seccomp filter that
//! answers those calls with `SECCOMP_RET_TRAP`
//! (`uipc_sys::seccomp::trap_kernel_ipc`) and sets `UIPC_TRAP=1`
//! (`UIPC_TRAP=install` makes the shim install that filter itself, for a
//! program started with `LD_PRELOAD` alone). The
//! kernel then skips the call and raises `SIGSYS` in the calling thread,
//! with the call's registers saved in the signal's `ucontext`. When the
//! shim is loaded with `UIPC_TRAP=1`, its constructor installs [`on_sigsys`]
//! for `SIGSYS`: the handler takes the number and the six argument
//! registers, serves the call through the same table as `syscall()`
//! ([`crate::raw::route`]) and puts the result, the kernel's way (`-errno`
//! on failure), in the return register. The thread goes on after the
//! `syscall` instruction as if the kernel had answered.
//!
//! The credential calls (`set*id`, `setfs*id`, `setgroups`, `capset`) trap
//! too, unless made with `uipc_sys::seccomp::CRED_COOKIE` in their sixth
//! argument register (unused by them): the handler makes the call again
//! with the cookie, puts the kernel's result in the return register and
//! reports the calling thread's credentials changed (`creds::changed`, an
//! atomic add, safe in a signal handler): the daemon re-reads them before
//! the next request. So a
//! change made with the instruction itself — or by glibc's own `set*id`,
//! in every thread through its `SIGSETXID` broadcast — is seen.
//!
//! The shim's own system calls never trap themselves: it makes no IPC
//! system call of the kernel's (everything goes to the daemon over its
//! socket), and its credential calls carry the cookie.
//!
//! The trap is synchronous: the thread is at its `syscall` instruction,
//! not inside the shim or the C library, so the handler may do what a
//! libc call of the shim does (lock, allocate, talk to the daemon).
//!
//! The program keeps its own view of `SIGSYS`:
//! - `sigaction` and `signal` for `SIGSYS` are recorded, not installed: the
//!   handler passes on every `SIGSYS` that is not one of uipc's traps
//!   (another filter's, a `kill`) to the action the program set, or, for
//!   the default action, dies of it.
//! - `sigprocmask` and `pthread_sigmask` never block `SIGSYS` (a blocked
//!   trap kills the process: the kernel forces it).
//!
//! # Known missing features
//! - x86-64 only (`uipc run --trap` refuses elsewhere).
//! - `SIGSYS` set or blocked by raw system calls (`rt_sigaction`,
//!   `rt_sigprocmask` with the instruction itself) or through `sigset`,
//!   `sysv_signal`, `bsd_signal` is not seen; a `SIGSYS` handler set that
//!   way replaces uipc's, and then a trapped call kills the program.
//! - `unshare` and `clone` made with the instruction itself are not
//!   trapped: they go to the kernel as they are (the process stays in its
//!   uipc namespace; the child is not reported to the daemon).
//! - A program's own `SIGSYS` handler, when uipc passes a signal on, runs
//!   with uipc's handler's signal mask, not the one it asked for.
//!
//! # References
//!  - [seccomp(2)] (`SECCOMP_RET_TRAP`), [sigaction(2)], [signal(7)]
//!
//! [seccomp(2)]: https://man7.org/linux/man-pages/man2/seccomp.2.html
//! [sigaction(2)]: https://man7.org/linux/man-pages/man2/sigaction.2.html
//! [signal(7)]: https://man7.org/linux/man-pages/man7/signal.7.html

use std::ffi::{c_int, c_long, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use libc::{sigset_t, SIGSYS};

use crate::raw::{route, Args, Route};

/// Whether the SIGSYS handler is in place (trap mode).
static TRAPPING: AtomicBool = AtomicBool::new(false);

/// The `SIGSYS` action the program set (or had when the shim was loaded).
static PROGRAM_ACTION: Mutex<Option<libc::sigaction>> = Mutex::new(None);

/// `si_code` of a seccomp trap (`SYS_SECCOMP` in `<asm-generic/siginfo.h>`).
const SYS_SECCOMP: c_int = 1;

type SigactionFn = unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
type SigmaskFn = unsafe extern "C" fn(c_int, *const sigset_t, *mut sigset_t) -> c_int;
type SignalFn = unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t;

/// The C library's function `name`, looked up once into `slot`, as `F`.
///
/// # Safety
/// `F` must be the C type of the C library's `name`.
unsafe fn next<F: Copy>(slot: &AtomicUsize, name: &std::ffi::CStr) -> Option<F> {
    let f = crate::creds::next(slot, name);
    if f == 0 {
        return None;
    }
    // SAFETY: `F` is a function pointer type (this fn's contract), the
    // size of `usize`; `f` is the C library's function of that type.
    Some(unsafe { std::mem::transmute_copy::<usize, F>(&f) })
}

fn real_sigaction() -> Option<SigactionFn> {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    // SAFETY: sigaction's C type.
    unsafe { next(&REAL, c"sigaction") }
}

/// Installs [`on_sigsys`] if `UIPC_TRAP` is `1` (`uipc run --trap` has
/// installed the filter) or `install` (the shim installs the filter
/// itself, for a program started without `uipc run`, and sets `UIPC_TRAP=1`
/// for the programs it executes, which inherit the filter): runs when the
/// shim is loaded, before the program's constructors and `main`.
extern "C" fn init() {
    match std::env::var_os("UIPC_TRAP") {
        Some(v) if v == "1" => {}
        Some(v) if v == "install" => {
            if uipc_sys::seccomp::trap_kernel_ipc_here().is_err() {
                return;
            }
            std::env::set_var("UIPC_TRAP", "1");
        }
        _ => return,
    }
    let Some(sigaction) = real_sigaction() else { return };
    // SAFETY: an all-zero `sigaction` is a valid value (SIG_DFL, empty mask).
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = on_sigsys;
    act.sa_sigaction = handler as usize;
    // SA_ONSTACK: on the thread's alternate stack if it has one (Go's
    // threads do, and Go asks it of every handler).
    act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: as zeroed above.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live `sigaction` values.
    if unsafe { sigaction(SIGSYS, &act, &mut old) } != 0 {
        return;
    }
    *PROGRAM_ACTION.lock().unwrap_or_else(|e| e.into_inner()) = Some(old);
    TRAPPING.store(true, Ordering::Release);
    // A mask inherited through execve may block SIGSYS.
    // SAFETY: as zeroed above; `set` lives for the calls.
    let mut set: sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live sigset_t.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, SIGSYS);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Runs [`init`] when the shim is loaded.
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

/// The `SIGSYS` handler of trap mode (see the module documentation).
extern "C" fn on_sigsys(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let (code, data) = unsafe { ((*info).si_code, (*info).si_errno) };
    let ours = code == SYS_SECCOMP && u32::try_from(data).ok() == Some(uipc_sys::seccomp::TRAP_DATA);
    if !ours || ctx.is_null() {
        pass_on(sig, info, ctx);
        return;
    }
    // SAFETY: for an SA_SIGINFO handler, `ctx` is the thread's saved
    // `ucontext_t`, ours to read and change until the handler returns.
    let uc = unsafe { &mut *ctx.cast::<libc::ucontext_t>() };
    serve(&mut uc.uc_mcontext.gregs);
}

/// Serves the trapped call whose registers are `gregs` (x86-64: number in
/// `rax`, arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`; result in
/// `rax`).
#[cfg(target_arch = "x86_64")]
fn serve(gregs: &mut [libc::greg_t; 23]) {
    let reg = |r: c_int| usize::try_from(r).ok().and_then(|i| gregs.get(i).copied()).unwrap_or(0);
    let nr = reg(libc::REG_RAX);
    let a: Args = [
        reg(libc::REG_RDI),
        reg(libc::REG_RSI),
        reg(libc::REG_RDX),
        reg(libc::REG_R10),
        reg(libc::REG_R8),
        reg(libc::REG_R9),
    ];
    // A raw system call leaves errno alone.
    // SAFETY: reads this thread's errno slot.
    let saved = unsafe { *libc::__errno_location() };
    let r: c_long = match route(nr) {
        Route::Served(f) => f(&a),
        Route::Credentials => {
            let r = with_cookie(nr, &a);
            // setfsuid/setfsgid return the previous id (never an error).
            if r >= 0 {
                crate::creds::changed(crate::creds::CredScope::Thread);
            }
            // Already the kernel's raw result.
            if let Some(rax) = usize::try_from(libc::REG_RAX).ok().and_then(|i| gregs.get_mut(i)) {
                *rax = r;
            }
            return;
        }
        // Only the IPC and credential calls are trapped; any other number
        // here is one uipc does not serve.
        Route::Kernel => {
            // SAFETY: writes this thread's errno slot.
            unsafe { *libc::__errno_location() = libc::ENOSYS };
            -1
        }
    };
    let r = if r == -1 {
        // SAFETY: reads this thread's errno slot.
        -c_long::from(unsafe { *libc::__errno_location() })
    } else {
        r
    };
    // SAFETY: writes this thread's errno slot.
    unsafe { *libc::__errno_location() = saved };
    if let Some(rax) = usize::try_from(libc::REG_RAX).ok().and_then(|i| gregs.get_mut(i)) {
        *rax = r;
    }
}

/// Credential call `nr` with the arguments `a`, made with the `syscall`
/// instruction and [`uipc_sys::seccomp::CRED_COOKIE`] in the sixth
/// argument register (which these calls do not use), so that trap mode's
/// filter lets it through; the kernel's raw result (`-errno` on failure).
/// Async-signal-safe.
#[cfg(target_arch = "x86_64")]
fn with_cookie(nr: c_long, a: &Args) -> c_long {
    let r: c_long;
    // SAFETY: one of the credential system calls, with the arguments the
    // thread gave it (a `setgroups` list, `capset` structures: the caller's
    // memory, read by the kernel with checked copies); the sixth register
    // is ignored by these calls. Clobbers only rax, rcx and r11, declared.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr => r,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") c_long::from(uipc_sys::seccomp::CRED_COOKIE),
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    r
}

#[cfg(not(target_arch = "x86_64"))]
fn serve(_regs: &mut libc::mcontext_t) {}

/// A `SIGSYS` that is not one of uipc's traps: to the program's action, or
/// the default one (death).
fn pass_on(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let act = *PROGRAM_ACTION.lock().unwrap_or_else(|e| e.into_inner());
    let handler = act.map_or(libc::SIG_DFL, |a| a.sa_sigaction);
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // The kernel forces a seccomp SIGSYS even when ignored; dying of
        // it is what the default action does. Pending until we return.
        if let Some(sigaction) = real_sigaction() {
            // SAFETY: an all-zero `sigaction` is SIG_DFL with an empty mask.
            let dfl: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: `dfl` is a live sigaction; the old one is not wanted.
            unsafe { sigaction(sig, &dfl, std::ptr::null_mut()) };
        }
        // SAFETY: raise(3) with a valid signal number.
        unsafe { libc::raise(sig) };
        return;
    }
    let siginfo = act.is_some_and(|a| a.sa_flags & libc::SA_SIGINFO != 0);
    if siginfo {
        // SAFETY: the program set this SA_SIGINFO handler, whose C type this is.
        let h =
            unsafe { std::mem::transmute::<usize, extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void)>(handler) };
        h(sig, info, ctx);
    } else {
        // SAFETY: the program set this plain handler, whose C type this is.
        let h = unsafe { std::mem::transmute::<usize, extern "C" fn(c_int)>(handler) };
        h(sig);
    }
}

/// `sigaction(sig, act, oldact)` — examines and changes a signal action;
/// in trap mode, for `SIGSYS`, the program's action is recorded (and
/// reported) while uipc's handler stays installed.
///
/// # Errors
/// The C library's; `ENOSYS` if it cannot be found.
///
/// # Safety
/// As sigaction(2).
#[no_mangle]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const libc::sigaction, oldact: *mut libc::sigaction) -> c_int {
    if sig == SIGSYS && TRAPPING.load(Ordering::Acquire) {
        let mut slot = PROGRAM_ACTION.lock().unwrap_or_else(|e| e.into_inner());
        if !oldact.is_null() {
            // SAFETY: as zeroed above.
            let dfl: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: `oldact` is the caller's sigaction to write (C contract).
            unsafe { *oldact = slot.unwrap_or(dfl) };
        }
        if !act.is_null() {
            // SAFETY: `act` is the caller's sigaction to read (C contract).
            *slot = Some(unsafe { *act });
        }
        return 0;
    }
    let Some(real) = real_sigaction() else { return crate::ret::int(Err(uipc_abi::Errno::ENOSYS)) };
    // SAFETY: the caller's arguments, as C passes them.
    unsafe { real(sig, act, oldact) }
}

/// `signal(sig, handler)` — sets a signal's handler (BSD semantics, as
/// glibc's: `SA_RESTART`); in trap mode, for `SIGSYS`, recorded as
/// [`sigaction`] records it.
///
/// # Safety
/// As signal(2).
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig == SIGSYS && TRAPPING.load(Ordering::Acquire) {
        // SAFETY: as zeroed above.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = handler;
        act.sa_flags = libc::SA_RESTART;
        // SAFETY: as zeroed above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: both are live sigaction values.
        unsafe { sigaction(sig, &act, &mut old) };
        return old.sa_sigaction;
    }
    static REAL: AtomicUsize = AtomicUsize::new(0);
    // SAFETY: signal's C type.
    match unsafe { next::<SignalFn>(&REAL, c"signal") } {
        // SAFETY: the caller's arguments, as C passes them.
        Some(real) => unsafe { real(sig, handler) },
        None => libc::SIG_ERR,
    }
}

/// `how`/`set` with `SIGSYS` taken out of what would be blocked, in trap
/// mode; the C library's `f` then called with them.
///
/// # Safety
/// As sigprocmask(2): `set` null or a valid set; `old` null or writable.
unsafe fn mask_without_sigsys(f: Option<SigmaskFn>, how: c_int, set: *const sigset_t, old: *mut sigset_t) -> c_int {
    let Some(f) = f else { return crate::ret::int(Err(uipc_abi::Errno::ENOSYS)) };
    if set.is_null() || how == libc::SIG_UNBLOCK || !TRAPPING.load(Ordering::Acquire) {
        // SAFETY: the caller's arguments, as C passes them.
        return unsafe { f(how, set, old) };
    }
    // SAFETY: `set` is the caller's valid set (C contract), copied.
    let mut copy = unsafe { *set };
    // SAFETY: `copy` is a live sigset_t.
    unsafe { libc::sigdelset(&mut copy, SIGSYS) };
    // SAFETY: `copy` is a valid set; `old` the caller's.
    unsafe { f(how, &copy, old) }
}

/// `sigprocmask(how, set, oldset)` — changes the blocked signals; in trap
/// mode `SIGSYS` is never blocked (a blocked trap kills the process).
///
/// # Safety
/// As sigprocmask(2).
#[no_mangle]
pub unsafe extern "C" fn sigprocmask(how: c_int, set: *const sigset_t, oldset: *mut sigset_t) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    // SAFETY: sigprocmask's C type; the caller's arguments.
    unsafe { mask_without_sigsys(next(&REAL, c"sigprocmask"), how, set, oldset) }
}

/// `pthread_sigmask(how, set, oldset)` — as [`sigprocmask`], for the
/// calling thread.
///
/// # Safety
/// As pthread_sigmask(3).
#[no_mangle]
pub unsafe extern "C" fn pthread_sigmask(how: c_int, set: *const sigset_t, oldset: *mut sigset_t) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    // SAFETY: pthread_sigmask's C type; the caller's arguments.
    unsafe { mask_without_sigsys(next(&REAL, c"pthread_sigmask"), how, set, oldset) }
}
