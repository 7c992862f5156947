//! Keeping a program away from the kernel's IPC: a seccomp filter that makes
//! every System V and POSIX message-queue system call fail with `ENOSYS`, as
//! they do on Android. Under `uipc run --deny-kernel-ipc`, a call the shim
//! failed to intercept then fails loudly instead of quietly using the
//! kernel's objects.
//!
//! The same filter with `SECCOMP_RET_TRAP` instead ([`trap_kernel_ipc`],
//! `uipc run --trap`): each of those calls, made with the `syscall`
//! instruction itself (inline assembly, Go's runtime, another libc),
//! raises `SIGSYS` in the calling thread instead, with
//! [`TRAP_DATA`] in `si_errno`, and the shim's handler serves it from the
//! thread's registers. The trapping form also traps the credential calls
//! unless their sixth argument register holds [`CRED_COOKIE`] (no
//! credential call has a sixth argument): the handler makes the call
//! again with the cookie and tells the daemon, so a change made with the
//! instruction itself is seen too.
//!
//! Also here, for the same supervisor: [`pidfd_send_signal`], to forward a
//! signal to the program without racing its pid's reuse.
//!
//! # The filter
//!
//! A dozen classic-BPF instructions, written by hand rather than with a
//! filter-building crate (`seccompiler`, `libseccomp`): the program is one
//! architecture check and one comparison per call, small enough to read
//! whole in [`kernel_ipc_filter`], and a crate would add a dependency and a
//! JSON/builder layer for nothing this module needs.
//!
//! 1. `seccomp_data.arch` must be this build's own architecture; any other
//!    (a 32-bit `int 0x80` call on x86-64) gets `ENOSYS` for every call: the
//!    compat tables number IPC differently (and have the `ipc(2)`
//!    multiplexer), and nothing `uipc run` starts should use them.
//! 2. On x86-64, a number with the x32 bit (`__X32_SYSCALL_BIT`) set gets
//!    `ENOSYS`, for the same reason.
//! 3. The listed calls get `ENOSYS` (or, trapping, `SIGSYS`); everything
//!    else is allowed.
//!
//! x86-64 and AArch64 have no `ipc(2)` multiplexer and a single
//! `semtimedop`; other architectures are refused ([`deny_kernel_ipc`]
//! returns `EOPNOTSUPP`) rather than filtered incompletely.
//!
//! # References
//!  - [seccomp(2)], [prctl(2)] (`PR_SET_NO_NEW_PRIVS`),
//!    [Documentation/userspace-api/seccomp_filter.rst][filter],
//!    [pidfd_send_signal(2)]
//!
//! [seccomp(2)]: https://man7.org/linux/man-pages/man2/seccomp.2.html
//! [prctl(2)]: https://man7.org/linux/man-pages/man2/prctl.2.html
//! [filter]: https://www.kernel.org/doc/html/v6.6/userspace-api/seccomp_filter.html
//! [pidfd_send_signal(2)]: https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html

use std::os::fd::BorrowedFd;
use std::process::Command;

use uipc_abi::Errno;

/// `offsetof(struct seccomp_data, nr)`.
const DATA_NR: u32 = 0;
/// `offsetof(struct seccomp_data, arch)`.
const DATA_ARCH: u32 = 4;

/// `AUDIT_ARCH_X86_64` (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 0xC000_003E;
/// `AUDIT_ARCH_AARCH64` (`EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`).
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 0xC000_00B7;

/// `__X32_SYSCALL_BIT`: x32 system calls are numbered from here.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The calls the filter refuses: System V shared memory, semaphores and
/// message queues, and POSIX message queues (POSIX shared memory and
/// semaphores are files and futexes, not system calls of their own).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const DENIED: [libc::c_long; 18] = [
    libc::SYS_shmget,
    libc::SYS_shmat,
    libc::SYS_shmdt,
    libc::SYS_shmctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_semctl,
    libc::SYS_msgget,
    libc::SYS_msgsnd,
    libc::SYS_msgrcv,
    libc::SYS_msgctl,
    libc::SYS_mq_open,
    libc::SYS_mq_unlink,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_notify,
    libc::SYS_mq_getsetattr,
];

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    // BPF opcodes fit 16 bits by construction (`linux/bpf_common.h`).
    libc::sock_filter { code: u16::try_from(code).unwrap_or(u16::MAX), jt: 0, jf: 0, k }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { jt, jf, ..stmt(code, k) }
}

/// The distance from the instruction at `from` to the one at `to`, as a
/// BPF conditional jump counts it (from the next instruction).
fn offset(from: usize, to: usize) -> u8 {
    // The program is ~25 instructions: every distance fits.
    u8::try_from(to - from - 1).unwrap_or(u8::MAX)
}

/// The credential calls [`kernel_ipc_trap_filter`] also traps, unless
/// their sixth argument register holds [`CRED_COOKIE`]: the shim's handler
/// makes them again with it, then tells the daemon.
#[cfg(target_arch = "x86_64")]
const CREDENTIALS: [libc::c_long; 10] = [
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
    libc::SYS_setgroups,
    libc::SYS_capset,
];

/// The low 32 bits of the sixth argument with which a credential call
/// passes [`kernel_ipc_trap_filter`] (none of those calls has a sixth
/// argument; the kernel ignores the register).
pub const CRED_COOKIE: u32 = 0x7569_7063;

/// `offsetof(struct seccomp_data, args[5])`, its low half on little-endian.
#[cfg(target_arch = "x86_64")]
const DATA_ARG5_LOW: u32 = 16 + 5 * 8;

/// The `SECCOMP_RET_DATA` of [`trap_kernel_ipc`]'s traps, which the
/// kernel hands to the `SIGSYS` handler as `si_errno`: tells them from
/// traps of another filter the program installed itself ("UI").
pub const TRAP_DATA: u32 = 0x5549;

/// The classic-BPF program described in the module documentation.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn kernel_ipc_filter() -> Vec<libc::sock_filter> {
    ipc_filter(libc::SECCOMP_RET_ERRNO | errno_data(Errno::ENOSYS), &[])
}

/// [`kernel_ipc_filter`] with `SECCOMP_RET_TRAP` (data [`TRAP_DATA`]) for
/// the listed calls, and for the credential calls (`set*id`,
/// `setfs*id`, `setgroups`, `capset`) whose sixth argument register is not
/// [`CRED_COOKIE`]; other architectures and x32 calls still get `ENOSYS`.
#[cfg(target_arch = "x86_64")]
pub fn kernel_ipc_trap_filter() -> Vec<libc::sock_filter> {
    ipc_filter(libc::SECCOMP_RET_TRAP | TRAP_DATA, &CREDENTIALS)
}

/// The program of the module documentation, with `action` for the listed
/// calls and for the `cookied` ones made without [`CRED_COOKIE`].
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn ipc_filter(action: u32, cookied: &[libc::c_long]) -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    #[cfg(target_arch = "x86_64")]
    const X32_CHECK: usize = 1;
    #[cfg(not(target_arch = "x86_64"))]
    const X32_CHECK: usize = 0;
    // ld arch; jeq native; ld nr; [jge x32]; jeq × N; jeq × cookied; ret
    // allow; [ld args[5]; jeq cookie; ret allow]; ret action; ret errno.
    let cookie_check = if cookied.is_empty() { 0 } else { 3 };
    let len = 3 + X32_CHECK + DENIED.len() + cookied.len() + 1 + cookie_check + 2;
    let deny = len - 1;
    let act = len - 2;
    let check = len - 2 - cookie_check;
    let mut prog = Vec::with_capacity(len);
    prog.push(stmt(BPF_LD | BPF_W | BPF_ABS, DATA_ARCH));
    prog.push(jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_NATIVE, 0, offset(prog.len(), deny)));
    prog.push(stmt(BPF_LD | BPF_W | BPF_ABS, DATA_NR));
    #[cfg(target_arch = "x86_64")]
    prog.push(jump(BPF_JMP | libc::BPF_JGE | BPF_K, X32_SYSCALL_BIT, offset(prog.len(), deny), 0));
    for nr in DENIED {
        // System call numbers on these architectures are small and positive.
        let nr = u32::try_from(nr).unwrap_or(u32::MAX);
        prog.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr, offset(prog.len(), act), 0));
    }
    for &nr in cookied {
        let nr = u32::try_from(nr).unwrap_or(u32::MAX);
        prog.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr, offset(prog.len(), check), 0));
    }
    prog.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW));
    #[cfg(target_arch = "x86_64")]
    if !cookied.is_empty() {
        prog.push(stmt(BPF_LD | BPF_W | BPF_ABS, DATA_ARG5_LOW));
        prog.push(jump(BPF_JMP | BPF_JEQ | BPF_K, CRED_COOKIE, 0, offset(prog.len(), act)));
        prog.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW));
    }
    prog.push(stmt(BPF_RET | BPF_K, action));
    prog.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ERRNO | errno_data(Errno::ENOSYS)));
    debug_assert_eq!(prog.len(), len);
    prog
}

/// The `SECCOMP_RET_DATA` part of an `SECCOMP_RET_ERRNO` action.
fn errno_data(e: Errno) -> u32 {
    u32::try_from(e.raw()).unwrap_or(0) & libc::SECCOMP_RET_DATA
}

/// Makes `cmd`'s child, between `fork` and `execve`, set
/// `PR_SET_NO_NEW_PRIVS` and install [`kernel_ipc_filter`] with
/// `seccomp(SECCOMP_SET_MODE_FILTER)`: from its first instruction on, the
/// program (and everything it starts) gets `ENOSYS` from the kernel's
/// System V IPC and POSIX message-queue calls.
///
/// The program is built here, in the parent; the child only makes the two
/// system calls, which is all that is async-signal-safe after `fork` in a
/// threaded process.
///
/// `PR_SET_NO_NEW_PRIVS` also means a set-user-ID program started under the
/// filter does not gain privileges.
///
/// # Errors
/// `EOPNOTSUPP` on architectures other than x86-64 and AArch64. A failure in
/// the child (a kernel without seccomp filters: `EINVAL`) makes
/// `Command::spawn` fail with that error.
///
/// # References
///  - [seccomp(2)](https://man7.org/linux/man-pages/man2/seccomp.2.html)
#[doc(alias = "seccomp")]
#[doc(alias = "PR_SET_NO_NEW_PRIVS")]
pub fn deny_kernel_ipc(cmd: &mut Command) -> Result<(), Errno> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        install_in_child(cmd, kernel_ipc_filter());
        Ok(())
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = cmd;
        Err(Errno::from_raw(libc::EOPNOTSUPP))
    }
}

/// As [`deny_kernel_ipc`], with [`kernel_ipc_trap_filter`]: the program's
/// System V IPC and POSIX message-queue calls raise `SIGSYS` (with
/// [`TRAP_DATA`]) for a handler to serve; without one installed, `SIGSYS`
/// kills the program.
///
/// # Errors
/// `EOPNOTSUPP` on architectures other than x86-64 (the shim's handler
/// reads x86-64 registers).
///
/// # References
///  - [seccomp(2)](https://man7.org/linux/man-pages/man2/seccomp.2.html) (`SECCOMP_RET_TRAP`)
#[doc(alias = "SECCOMP_RET_TRAP")]
pub fn trap_kernel_ipc(cmd: &mut Command) -> Result<(), Errno> {
    #[cfg(target_arch = "x86_64")]
    {
        install_in_child(cmd, kernel_ipc_trap_filter());
        Ok(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cmd;
        Err(Errno::from_raw(libc::EOPNOTSUPP))
    }
}

/// Makes `cmd`'s child install `prog` between `fork` and `execve` (see
/// [`deny_kernel_ipc`]).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn install_in_child(cmd: &mut Command, prog: Vec<libc::sock_filter>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: `install` allocates nothing, takes no lock and makes only
    // the prctl and seccomp system calls (async-signal-safe), as
    // `pre_exec` requires of code run in the forked child.
    unsafe { cmd.pre_exec(move || install(&prog)) };
}

/// `PR_SET_NO_NEW_PRIVS`, then `seccomp(SECCOMP_SET_MODE_FILTER, prog)`
/// for the calling thread (and the threads and processes it starts
/// later). Allocates nothing: async-signal-safe.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn install(prog: &[libc::sock_filter]) -> std::io::Result<()> {
    // The program is a few dozen instructions.
    let len = libc::c_ushort::try_from(prog.len()).unwrap_or(0);
    let fprog = libc::sock_fprog { len, filter: prog.as_ptr().cast_mut() };
    // SAFETY: prctl with integer arguments only; async-signal-safe.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fprog` points at `prog`, alive for the call; the kernel
    // copies the program. A raw syscall, no allocation: async-signal-safe.
    let r = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, std::ptr::addr_of!(fprog)) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// [`trap_kernel_ipc`] for the calling thread itself (and what it starts
/// later): the shim's constructor under `UIPC_TRAP=install`, for a program
/// started without `uipc run`.
///
/// # Errors
/// `EOPNOTSUPP` on architectures other than x86-64; prctl(2)'s and
/// seccomp(2)'s (`EINVAL` on a kernel without seccomp filters).
pub fn trap_kernel_ipc_here() -> Result<(), Errno> {
    #[cfg(target_arch = "x86_64")]
    {
        install(&kernel_ipc_trap_filter()).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL)))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Err(Errno::from_raw(libc::EOPNOTSUPP))
    }
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)` — sends signal `sig` to the
/// process `pidfd` refers to (see [`crate::proc::pidfd_open`]), which,
/// unlike `kill(pid)`, cannot reach another process that reused the pid.
///
/// # Errors
/// `EINVAL` for an invalid signal number; `ESRCH` if the process has
/// exited and been reaped; `EPERM`.
///
/// # References
///  - [pidfd_send_signal(2)](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> Result<(), Errno> {
    let sig = rustix::process::Signal::from_raw(sig).ok_or(Errno::EINVAL)?;
    rustix::process::pidfd_send_signal(pidfd, sig).map_err(|e| Errno::from_raw(e.raw_os_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program() {
        let prog = kernel_ipc_filter();
        let jumps = prog.iter().enumerate().filter(|(_, ins)| u32::from(ins.code) & 0x07 == libc::BPF_JMP);
        for (i, ins) in jumps {
            assert!(i + 1 + usize::from(ins.jt) < prog.len(), "jt of {i}");
            assert!(i + 1 + usize::from(ins.jf) < prog.len(), "jf of {i}");
        }
        let last = prog.last().map(|i| i.k);
        assert_eq!(last, Some(libc::SECCOMP_RET_ERRNO | 38));
        let trap = kernel_ipc_trap_filter();
        for (i, ins) in trap.iter().enumerate().filter(|(_, ins)| u32::from(ins.code) & 0x07 == libc::BPF_JMP) {
            assert!(i + 1 + usize::from(ins.jt) < trap.len(), "trap jt of {i}");
            assert!(i + 1 + usize::from(ins.jf) < trap.len(), "trap jf of {i}");
        }
        assert_eq!(trap.len(), prog.len() + CREDENTIALS.len() + 3);
        assert_eq!(trap[trap.len() - 2].k, libc::SECCOMP_RET_TRAP | TRAP_DATA);
    }

    #[test]
    fn a_filtered_child_still_runs() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "exit 3"]);
        assert_eq!(deny_kernel_ipc(&mut cmd), Ok(()));
        let status = cmd.status().map(|s| s.code());
        assert_eq!(status.ok(), Some(Some(3)));
    }
}
