//! The kernel's own System V IPC calls and the process plumbing of the
//! differential test oracle (feature `oracle`).
//!
//! Everything here exists so that `uipc-testkit`'s kernel agent can run one
//! test operation for real in a disposable, single-threaded worker process
//! inside a fresh IPC namespace. Nothing in the daemon, the client or the
//! shim may enable this feature.
//!
//! # Soundness
//!
//! The memory-changing calls ([`shmat`], [`shmdt`], [`munmap`]) have safe
//! signatures although they can replace or remove memory the Rust program
//! uses: they are meant for worker processes whose only memory a test touches
//! is what the test itself obtained from [`shmat`] and [`find_free`]. The
//! memory accesses ([`read_mem`], [`write_mem`]) never dereference a pointer:
//! they go through `process_vm_readv`/`process_vm_writev` on our own pid,
//! which fail with `EFAULT` where a load or store would crash.
//!
//! # References
//!  - [shmget(2)], [shmat(2)], [shmctl(2)], [process_vm_readv(2)],
//!    [pidfd_open(2)], [unshare(2)], [capget(2)]
//!
//! [shmget(2)]: https://man7.org/linux/man-pages/man2/shmget.2.html
//! [shmat(2)]: https://man7.org/linux/man-pages/man2/shmat.2.html
//! [shmctl(2)]: https://man7.org/linux/man-pages/man2/shmctl.2.html
//! [process_vm_readv(2)]: https://man7.org/linux/man-pages/man2/process_vm_readv.2.html
//! [pidfd_open(2)]: https://man7.org/linux/man-pages/man2/pidfd_open.2.html
//! [unshare(2)]: https://man7.org/linux/man-pages/man2/unshare.2.html
//! [capget(2)]: https://man7.org/linux/man-pages/man2/capget.2.html

use std::collections::VecDeque;
use std::ffi::CString;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::FdFlags;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags, SocketFlags, SocketType,
};
use rustix::process::{Pid, Signal};
use rustix::thread::{CapabilityFlags, UnshareFlags};
use uipc_abi::{CBytes, Errno, Sembuf, Semid64Ds, Shmid64Ds};

fn from_rustix(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// The `errno` the last failed libc call left.
pub(crate) fn last_errno() -> Errno {
    Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
}

/// A `syscall()` return value: `-1` means `errno` holds the error.
fn check(ret: libc::c_long) -> Result<i64, Errno> {
    if ret == -1 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

fn to_usize(v: u64) -> Result<usize, Errno> {
    usize::try_from(v).map_err(|_| Errno::EINVAL)
}

/// `shmget(key, size, flags)` — gets or creates a System V shared memory
/// segment in the kernel; returns its id.
///
/// # Errors
/// Whatever the kernel returns (`EACCES`, `EEXIST`, `EINVAL`, `ENOENT`,
/// `ENOSPC`, `ENOMEM`, `EPERM`).
pub fn shmget(key: i32, size: u64, flags: i32) -> Result<i32, Errno> {
    let size = to_usize(size)?;
    // SAFETY: shmget takes only integers and touches no memory of ours.
    let r = check(unsafe { libc::syscall(libc::SYS_shmget, key, size, flags) })?;
    i32::try_from(r).map_err(|_| Errno::EINVAL)
}

/// `shmat(id, addr, flags)` — attaches segment `id` at `addr` (0: the kernel
/// chooses); returns the address.
///
/// See the module's "Soundness": with `SHM_REMAP` this replaces whatever is
/// mapped at `addr`.
///
/// # Errors
/// Whatever the kernel returns (`EACCES`, `EIDRM`, `EINVAL`, `ENOMEM`).
pub fn shmat(id: i32, addr: u64, flags: i32) -> Result<u64, Errno> {
    let addr = to_usize(addr)?;
    // SAFETY: the kernel validates the address; the new mapping is only ever
    // accessed through read_mem/write_mem, never through a Rust reference.
    let r = check(unsafe { libc::syscall(libc::SYS_shmat, id, addr, flags) })?;
    // User addresses are below 2^47, so the raw return is non-negative.
    u64::try_from(r).map_err(|_| Errno::EINVAL)
}

/// `shmdt(addr)` — detaches the segment attached at `addr`.
///
/// # Errors
/// `EINVAL` if no segment is attached at `addr`.
pub fn shmdt(addr: u64) -> Result<(), Errno> {
    let addr = to_usize(addr)?;
    // SAFETY: shmdt only removes System V shm mappings, which this process
    // only ever touches through read_mem/write_mem.
    check(unsafe { libc::syscall(libc::SYS_shmdt, addr) }).map(drop)
}

/// Size of the output buffer handed to `*ctl` calls: larger than any of the
/// structures they write (`shmid64_ds` is 112 bytes).
pub const CTL_BUF_LEN: usize = 256;

/// The `buf` argument of [`shmctl`].
#[derive(Debug)]
pub enum ShmctlBuf<'a> {
    /// `NULL`.
    Null,
    /// A writable buffer (zero it first).
    Out(&'a mut [u8; CTL_BUF_LEN]),
    /// An input structure (`IPC_SET`).
    Set(&'a Shmid64Ds),
    /// A pointer into the never-mapped first page, so that the kernel's
    /// copy fails with `EFAULT`.
    Fault,
}

/// An address below `mmap_min_addr`: never mapped, so any kernel access to
/// it fails with `EFAULT`.
pub const FAULT_ADDR: usize = 8;

/// `shmctl(id, cmd, buf)` — the kernel's control operation on a segment
/// (the raw system call, so that glibc neither rewrites `buf` nor filters
/// `cmd`). Returns the kernel's return value.
///
/// # Errors
/// Whatever the kernel returns (`EACCES`, `EFAULT`, `EIDRM`, `EINVAL`,
/// `ENOMEM`, `EOVERFLOW`, `EPERM`).
pub fn shmctl(id: i32, cmd: i32, buf: ShmctlBuf<'_>) -> Result<i64, Errno> {
    let ptr: *mut libc::c_void = match buf {
        ShmctlBuf::Null => std::ptr::null_mut(),
        ShmctlBuf::Out(b) => b.as_mut_ptr().cast(),
        ShmctlBuf::Set(ds) => std::ptr::from_ref(ds).cast_mut().cast(),
        ShmctlBuf::Fault => FAULT_ADDR as *mut libc::c_void,
    };
    // SAFETY: `ptr` is NULL, the unmapped FAULT_ADDR, a CTL_BUF_LEN-byte
    // buffer we hold exclusively (larger than anything shmctl writes), or a
    // Shmid64Ds that IPC_SET only reads (the kernel never writes through an
    // IPC_SET buffer; other commands writing to it would write within its
    // 112 bytes, as it is a shmid64_ds).
    check(unsafe { libc::syscall(libc::SYS_shmctl, id, cmd, ptr) })
}

mod sealed {
    pub trait Sealed {}
}

/// A plain-old-data structure that a `*ctl` call writes into a
/// [`CTL_BUF_LEN`] buffer: every bit pattern is a valid value.
pub trait CtlStruct: sealed::Sealed + Copy {}

macro_rules! ctl_struct {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl CtlStruct for $t {}
        const _: () = assert!(std::mem::size_of::<$t>() <= CTL_BUF_LEN);
    )*};
}
ctl_struct!(
    uipc_abi::Shmid64Ds,
    uipc_abi::Shminfo64,
    uipc_abi::ShmInfo,
    uipc_abi::Semid64Ds,
    uipc_abi::Seminfo,
    uipc_abi::Msqid64Ds,
    uipc_abi::Msginfo
);

/// Reads the structure a `*ctl` call wrote at the start of `buf`.
pub fn decode<T: CtlStruct>(buf: &[u8; CTL_BUF_LEN]) -> T {
    // SAFETY: T is one of the repr(C) integer-only structures listed in
    // ctl_struct!, so every bit pattern is valid; its size is at most
    // CTL_BUF_LEN (checked at compile time); read_unaligned has no alignment
    // requirement.
    unsafe { buf.as_ptr().cast::<T>().read_unaligned() }
}

/// The `buf` argument of [`msgctl`].
#[derive(Debug)]
pub enum MsgctlBuf<'a> {
    /// `NULL`.
    Null,
    /// A writable buffer (zero it first).
    Out(&'a mut [u8; CTL_BUF_LEN]),
    /// An input structure (`IPC_SET`).
    Set(&'a uipc_abi::Msqid64Ds),
    /// A pointer into the never-mapped first page (`EFAULT`).
    Fault,
}

impl MsgctlBuf<'_> {
    /// The pointer passed as `buf`.
    pub(crate) fn ptr(&mut self) -> *mut libc::c_void {
        match self {
            MsgctlBuf::Null => std::ptr::null_mut(),
            MsgctlBuf::Out(b) => b.as_mut_ptr().cast(),
            MsgctlBuf::Set(ds) => std::ptr::from_ref(*ds).cast_mut().cast(),
            MsgctlBuf::Fault => FAULT_ADDR as *mut libc::c_void,
        }
    }
}

/// A `struct msgbuf` as C lays it out: `long mtype`, then the text.
pub(crate) fn msgbuf(mtype: i64, text: &[u8]) -> Vec<u8> {
    let mut b = mtype.to_ne_bytes().to_vec();
    b.extend_from_slice(text);
    b
}

/// Splits a received `struct msgbuf` of which `n` text bytes were written.
pub(crate) fn from_msgbuf(buf: &[u8], n: i64) -> (i64, Vec<u8>) {
    let mtype = buf.get(..8).and_then(|b| b.try_into().ok()).map_or(0, i64::from_ne_bytes);
    let n = usize::try_from(n).unwrap_or(0);
    (mtype, buf.get(8..8 + n).unwrap_or_default().to_vec())
}

/// `msgget(key, flags)` — gets or creates a System V message queue in the
/// kernel; returns its id.
///
/// # Errors
/// Whatever the kernel returns (`EACCES`, `EEXIST`, `ENOENT`, `ENOSPC`).
pub fn msgget(key: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: msgget takes only integers.
    let r = check(unsafe { libc::syscall(libc::SYS_msgget, key, flags) })?;
    i32::try_from(r).map_err(|_| Errno::EINVAL)
}

/// `msgsnd(id, msgp, text.len(), flags)` with `msgp` holding `mtype` and
/// `text` (or the unmapped [`FAULT_ADDR`] if `fault`). May sleep.
///
/// # Errors
/// Whatever the kernel returns.
pub fn msgsnd(id: i32, mtype: i64, text: &[u8], flags: i32, fault: bool) -> Result<i64, Errno> {
    let buf = msgbuf(mtype, text);
    let ptr = if fault { FAULT_ADDR as *const u8 } else { buf.as_ptr() };
    // SAFETY: the kernel reads 8 + text.len() bytes from `buf` (or faults
    // on FAULT_ADDR); it writes nothing.
    check(unsafe { libc::syscall(libc::SYS_msgsnd, id, ptr, text.len(), flags) })
}

/// The text bytes [`msgrcv`]'s buffer holds at most: callers receive no
/// larger message (`kernel.msgmax` would have to be raised past it).
pub const MSGRCV_ROOM: usize = 1 << 20;

/// `msgrcv(id, msgp, size, msgtyp, flags)` into a buffer of `size` text
/// bytes (or the unmapped [`FAULT_ADDR`] if `fault`): the text length, the
/// `mtype` and the text. May sleep.
///
/// # Errors
/// Whatever the kernel returns.
pub fn msgrcv(id: i32, size: usize, msgtyp: i64, flags: i32, fault: bool) -> Result<(i64, i64, Vec<u8>), Errno> {
    // Room for the largest message a test sends (the kernel writes only
    // the message, never `size` bytes, so a huge `size` needs no more).
    let mut buf = vec![0u8; 8 + size.min(MSGRCV_ROOM)];
    let ptr = if fault { FAULT_ADDR as *mut u8 } else { buf.as_mut_ptr() };
    // SAFETY: the kernel writes at most 8 + size bytes into `buf`, which
    // has that many (or faults on FAULT_ADDR).
    let n = check(unsafe { libc::syscall(libc::SYS_msgrcv, id, ptr, size, msgtyp, flags) })?;
    let (mtype, text) = from_msgbuf(&buf, n);
    Ok((n, mtype, text))
}

/// `msgctl(id, cmd, buf)` — the raw system call.
///
/// # Errors
/// Whatever the kernel returns.
pub fn msgctl(id: i32, cmd: i32, mut buf: MsgctlBuf<'_>) -> Result<i64, Errno> {
    let ptr = buf.ptr();
    // SAFETY: NULL, the unmapped FAULT_ADDR, our CTL_BUF_LEN-byte buffer
    // (larger than msqid_ds and msginfo), or a Msqid64Ds only IPC_SET reads.
    check(unsafe { libc::syscall(libc::SYS_msgctl, id, cmd, ptr) })
}

/// `semget(key, nsems, flags)` — gets or creates a System V semaphore set
/// in the kernel; returns its id.
///
/// # Errors
/// Whatever the kernel returns (`EACCES`, `EEXIST`, `EINVAL`, `ENOENT`,
/// `ENOSPC`, `ENOMEM`).
pub fn semget(key: i32, nsems: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: semget takes only integers and touches no memory of ours.
    let r = check(unsafe { libc::syscall(libc::SYS_semget, key, nsems, flags) })?;
    i32::try_from(r).map_err(|_| Errno::EINVAL)
}

/// `semtimedop`'s `timeout` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SemTimeout {
    /// `NULL`: sleep as long as needed (what `semop` does).
    Forever,
    /// A relative `struct timespec`, passed unchecked (an out-of-range
    /// value is the kernel's `EINVAL`).
    After {
        /// `tv_sec`.
        sec: i64,
        /// `tv_nsec`.
        nsec: i64,
    },
    /// A pointer into the never-mapped first page (`EFAULT`).
    Fault,
}

/// A non-NULL pointer to the operations (the kernel reads none when there
/// are none, but must see a plausible address, as from a C caller).
fn sops_ptr(sops: &[Sembuf]) -> *const Sembuf {
    if sops.is_empty() {
        std::ptr::NonNull::<Sembuf>::dangling().as_ptr()
    } else {
        sops.as_ptr()
    }
}

/// `semop(id, sops, sops.len())` — the raw `semop` system call (not glibc's
/// wrapper, which may go through `semtimedop`). May sleep until another
/// process changes the set, the set is removed (`EIDRM`) or a signal
/// arrives (`EINTR`, never restarted).
///
/// # Errors
/// Whatever the kernel returns (`E2BIG`, `EACCES`, `EAGAIN`, `EFBIG`,
/// `EIDRM`, `EINTR`, `EINVAL`, `ENOMEM`, `ERANGE`).
pub fn semop(id: i32, sops: &[Sembuf]) -> Result<i64, Errno> {
    // SAFETY: the kernel reads sops.len() sembufs from a valid slice (or
    // nothing, for an empty one); it writes nothing of ours.
    check(unsafe { libc::syscall(libc::SYS_semop, id, sops_ptr(sops), sops.len()) })
}

/// `semtimedop(id, sops, sops.len(), timeout)` — the raw system call, the
/// timeout passed as given ([`SemTimeout::Forever`] is a NULL pointer).
///
/// # Errors
/// As [`semop`], and `EAGAIN` when the timeout expires, `EFAULT` for a bad
/// timeout pointer, `EINVAL` for an invalid timeout.
pub fn semtimedop(id: i32, sops: &[Sembuf], timeout: SemTimeout) -> Result<i64, Errno> {
    let ts;
    let ts_ptr: *const libc::timespec = match timeout {
        SemTimeout::Forever => std::ptr::null(),
        SemTimeout::Fault => FAULT_ADDR as *const libc::timespec,
        SemTimeout::After { sec, nsec } => {
            ts = libc::timespec { tv_sec: sec, tv_nsec: nsec };
            &raw const ts
        }
    };
    // SAFETY: the kernel reads sops.len() sembufs from a valid slice and at
    // most one timespec from `ts` (alive until the call returns), NULL or
    // the unmapped FAULT_ADDR; it writes nothing of ours.
    check(unsafe { libc::syscall(libc::SYS_semtimedop, id, sops_ptr(sops), sops.len(), ts_ptr) })
}

/// The fourth argument of [`semctl`] (`union semun`).
///
/// The pointer forms never hand the kernel the caller's memory directly:
/// the wrapper passes a zeroed buffer of its own, large enough for anything
/// the command could write there (GETALL's nsems values, a `semid64_ds`, a
/// `seminfo`), with the input copied to its start.
#[derive(Debug)]
pub enum SemctlArg<'a> {
    /// 0 (`NULL`, or `val` 0).
    None,
    /// `arg.val`, passed sign-extended (the kernel uses the low 32 bits).
    Val(i32),
    /// `arg.array` holding these values (SETALL reads nsems of them: the
    /// missing ones are 0).
    Array(&'a [u16]),
    /// `arg.buf` pointing at this `semid64_ds` (IPC_SET).
    Set(&'a Semid64Ds),
    /// An output buffer: the vector is replaced by what the buffer holds
    /// after the call (at least [`CTL_BUF_LEN`] bytes, or 2 × nsems).
    Out(&'a mut Vec<u8>),
    /// A pointer into the never-mapped first page (`EFAULT`).
    Fault,
}

/// The number of semaphores of set `id`, read without side effects and
/// without a permission check (`SEM_STAT_ANY` on its slot); 0 if there is
/// no such set.
pub fn sem_nsems(id: i32) -> usize {
    if id < 0 {
        return 0;
    }
    let mut out = [0u8; CTL_BUF_LEN];
    let slot = id & 0x7fff;
    // SAFETY: SEM_STAT_ANY writes one semid64_ds (104 bytes) into our
    // CTL_BUF_LEN-byte buffer.
    let r = unsafe { libc::syscall(libc::SYS_semctl, slot, 0, uipc_abi::SEM_STAT_ANY, out.as_mut_ptr()) };
    if r != i64::from(id) {
        return 0;
    }
    usize::try_from(decode::<Semid64Ds>(&out).sem_nsems).unwrap_or(0)
}

/// `semctl(id, semnum, cmd, arg)` — the raw system call, so that glibc
/// neither rewrites `arg` nor filters `cmd`. Returns the kernel's return
/// value.
///
/// The buffer forms of `arg` are sized from the set's nsems, which never
/// changes for a given id, read just before the call: sound as long as no
/// set with this exact id (slot and sequence number) is created between
/// the two calls, which would take 65536 creations in that slot meanwhile.
///
/// # Errors
/// Whatever the kernel returns (`EACCES`, `EFAULT`, `EIDRM`, `EINVAL`,
/// `EPERM`, `ERANGE`).
pub fn semctl(id: i32, semnum: i32, cmd: i32, arg: SemctlArg<'_>) -> Result<i64, Errno> {
    if let Some(raw) = semctl_direct(&arg) {
        // SAFETY: `raw` is an integer, NULL or the unmapped FAULT_ADDR: the
        // kernel touches no memory of ours.
        return check(unsafe { libc::syscall(libc::SYS_semctl, id, semnum, cmd, raw) });
    }
    let mut buf = semctl_buffer(&arg, sem_nsems(id));
    // SAFETY: `buf` is ours, at least as large as anything semctl writes
    // there (2 × nsems for GETALL, 104 bytes for a semid64_ds, 40 for a
    // seminfo; see above for why nsems is right) and anything it reads.
    let r = check(unsafe { libc::syscall(libc::SYS_semctl, id, semnum, cmd, buf.as_mut_ptr()) });
    if let SemctlArg::Out(out) = arg {
        *out = buf;
    }
    r
}

/// `arg` as the integer semctl's fourth argument carries, for the forms
/// that point at no buffer of ours.
pub(crate) fn semctl_direct(arg: &SemctlArg<'_>) -> Option<libc::c_ulong> {
    match arg {
        SemctlArg::None => Some(0),
        // Sign-extended, as a C caller's `union semun { int val; … }` in a
        // 64-bit register would typically be; only the low 32 bits count.
        SemctlArg::Val(v) => Some(i64::from(*v).cast_unsigned()),
        SemctlArg::Fault => Some(FAULT_ADDR as libc::c_ulong),
        _ => None,
    }
}

/// The zeroed buffer semctl's `arg.array`/`arg.buf` points at for a set of
/// `nsems` semaphores: large enough for anything it reads or writes, and
/// holding SETALL's values or IPC_SET's `semid64_ds`.
pub(crate) fn semctl_buffer(arg: &SemctlArg<'_>, nsems: usize) -> Vec<u8> {
    let len = CTL_BUF_LEN.max(2 * nsems);
    let mut buf = vec![0u8; len];
    match arg {
        SemctlArg::Array(values) => {
            for (chunk, v) in buf.chunks_exact_mut(2).zip(values.iter()) {
                chunk.copy_from_slice(&v.to_ne_bytes());
            }
            if values.len() * 2 > len {
                buf.extend(values[len / 2..].iter().flat_map(|v| v.to_ne_bytes()));
            }
        }
        SemctlArg::Set(ds) => {
            let bytes = ds.to_c_bytes();
            buf[..bytes.len()].copy_from_slice(&bytes);
        }
        _ => {}
    }
    buf
}

/// Sends `SIGUSR1` to `pid`.
///
/// # Errors
/// `ESRCH` if there is no such process, `EPERM` without permission.
pub fn signal_usr1(pid: u32) -> Result<(), Errno> {
    let raw = i32::try_from(pid).map_err(|_| Errno::ESRCH)?;
    let pid = Pid::from_raw(raw).ok_or(Errno::ESRCH)?;
    rustix::process::kill_process(pid, Signal::Usr1).map_err(from_rustix)
}

extern "C" fn on_sigusr1(_: libc::c_int) {}

/// Installs a `SIGUSR1` handler that does nothing, without `SA_RESTART`,
/// and unblocks `SIGUSR1`: a sleeping `semop` (or any interruptible sleep)
/// of this process then fails with `EINTR` when the signal arrives, and
/// the process lives on. Exec resets it: install it again after exec.
///
/// # Errors
/// Whatever `sigaction`/`sigprocmask` return.
#[doc(alias = "sigaction")]
pub fn interrupt_on_sigusr1() -> Result<(), Errno> {
    // SAFETY: an all-zero sigaction is a valid "no flags, empty mask"
    // value; the handler is an extern "C" fn that does nothing, so it is
    // async-signal-safe; the sigset calls only write our local sets.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr1 as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = 0;
        libc::sigemptyset(&raw mut sa.sa_mask);
        if libc::sigaction(libc::SIGUSR1, &raw const sa, std::ptr::null_mut()) != 0 {
            return Err(last_errno());
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGUSR1);
        if libc::sigprocmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut()) != 0 {
            return Err(last_errno());
        }
    }
    Ok(())
}

/// What `/proc/<pid>/syscall` and `/proc/<pid>/stat` say a process is
/// doing right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcActivity {
    /// The state letter of `/proc/<pid>/stat` (`R`, `S`, `D`, `Z`…).
    pub state: char,
    /// The system call it is in while blocked, or `None` if running (or
    /// not in a system call).
    pub syscall: Option<i64>,
}

/// Whether the system call number is `msgsnd` or `msgrcv`.
pub fn is_msg_syscall(nr: i64) -> bool {
    nr == libc::SYS_msgsnd || nr == libc::SYS_msgrcv
}

/// Whether the system call number is `mq_timedsend` or `mq_timedreceive`
/// (what glibc's `mq_send`/`mq_receive` make too).
pub fn is_mq_syscall(nr: i64) -> bool {
    nr == libc::SYS_mq_timedsend || nr == libc::SYS_mq_timedreceive
}

/// Whether the system call number is `semop` or `semtimedop`.
pub fn is_semop_syscall(nr: i64) -> bool {
    nr == libc::SYS_semop || nr == libc::SYS_semtimedop
}

/// Whether the system call number is `recvmsg` (where a uipc client's
/// restartable call, such as a sleeping `mq_timedreceive`, waits for the
/// daemon's answer).
pub fn is_recvmsg_syscall(nr: i64) -> bool {
    nr == libc::SYS_recvmsg
}

/// Whether the system call number is `poll` or `ppoll` (where a uipc
/// client waits for the daemon's answer to a sleeping call).
pub fn is_poll_syscall(nr: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    if nr == libc::SYS_poll {
        return true;
    }
    nr == libc::SYS_ppoll
}

/// Reads [`ProcActivity`] of `pid` (needs ptrace access to it for the
/// system call: root, or the same user).
///
/// # Errors
/// `ESRCH` if the process is gone; `EIO` for an unexpected format.
pub fn proc_activity(pid: u32) -> Result<ProcActivity, Errno> {
    let io = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).map_err(io)?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(io)?;
    // "pid (comm) S …": comm may hold spaces and parentheses; the state
    // follows the last ')'.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).ok_or(Errno::EIO)?;
    let first = syscall.split_whitespace().next().ok_or(Errno::EIO)?;
    let syscall = first.parse::<i64>().ok();
    Ok(ProcActivity { state, syscall })
}

/// `munmap(addr, len)` — removes mappings in `[addr, addr+len)`.
///
/// See the module's "Soundness".
///
/// # Errors
/// `EINVAL` for an unaligned address or a zero length.
pub fn munmap(addr: u64, len: u64) -> Result<(), Errno> {
    let (addr, len) = (to_usize(addr)?, to_usize(len)?);
    // SAFETY: the caller names memory the test obtained (see "Soundness");
    // no Rust reference points into such memory.
    let r = unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    if r == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// `mprotect(addr, len, prot)` — changes the protection of
/// `[addr, addr+len)` (through the C library: under the shim, its wrapper).
///
/// See the module's "Soundness".
///
/// # Errors
/// `EINVAL`, `EACCES`, `ENOMEM` from the kernel.
pub fn mprotect(addr: u64, len: u64, prot: i32) -> Result<(), Errno> {
    let (addr, len) = (to_usize(addr)?, to_usize(len)?);
    // SAFETY: the caller names memory the test obtained (see "Soundness");
    // no Rust reference points into such memory.
    let r = unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot) };
    if r == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// Loads `len` bytes at `addr` of this process without risking a fault:
/// `process_vm_readv` on our own pid.
///
/// # Errors
/// `EFAULT` if any byte is not readable.
#[doc(alias = "process_vm_readv")]
pub fn read_mem(addr: u64, len: u64) -> Result<Vec<u8>, Errno> {
    crate::map::read_at(addr, to_usize(len)?)
}

/// Stores `bytes` at `addr` of this process without risking a fault:
/// `process_vm_writev` on our own pid (which, unlike ptrace, respects
/// read-only protection).
///
/// # Errors
/// `EFAULT` if any byte is not writable.
#[doc(alias = "process_vm_writev")]
pub fn write_mem(addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    // SAFETY: test workers are disposable processes whose Rust code holds no
    // references into the memory the tests write (see "Soundness" above).
    unsafe { crate::map::write_at(addr, bytes) }
}

/// Finds `len` bytes of address space mapped nowhere: maps them
/// `PROT_NONE`, unmaps them, returns the start.
///
/// # Errors
/// `ENOMEM` if no such range exists, `EINVAL` for a zero length.
pub fn find_free(len: u64) -> Result<u64, Errno> {
    let len = to_usize(len)?;
    // SAFETY: a fresh anonymous PROT_NONE mapping at an address the kernel
    // chooses cannot overlap existing memory.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    };
    if p == libc::MAP_FAILED {
        return Err(last_errno());
    }
    // SAFETY: `p..p+len` is the mapping just created, used by nobody.
    if unsafe { libc::munmap(p, len) } != 0 {
        return Err(last_errno());
    }
    Ok(p as u64)
}

/// The number of threads of this process (`Threads:` of `/proc/self/status`).
fn thread_count() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok())
}

/// Which side of a [`fork`] we are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forked {
    /// The new process.
    Child,
    /// The old process; the child's pid.
    Parent(u32),
}

/// `fork()` — duplicates this process. Refused (`EDEADLK`) unless this
/// process has exactly one thread, so the child cannot inherit a lock held
/// by a thread that does not exist there.
///
/// # Errors
/// `EDEADLK` if the process is multi-threaded; `EAGAIN`, `ENOMEM` from the kernel.
pub fn fork() -> Result<Forked, Errno> {
    if thread_count() != Some(1) {
        return Err(Errno::from_raw(libc::EDEADLK));
    }
    // SAFETY: the process is single-threaded (checked above; only this
    // thread could start another), so the child's memory, including every
    // lock, is consistent.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(last_errno()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(u32::try_from(p).map_err(|_| Errno::EINVAL)?)),
    }
}

/// `execv(path, argv)` — replaces this process's image. Returns only on
/// failure, with the error.
pub fn execv(path: &str, argv: &[&str]) -> Errno {
    let Ok(path) = CString::new(path) else {
        return Errno::EINVAL;
    };
    let Ok(args) = argv.iter().map(|a| CString::new(*a)).collect::<Result<Vec<_>, _>>() else {
        return Errno::EINVAL;
    };
    let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: `path` and every element of `ptrs` are NUL-terminated strings
    // that outlive the call, and `ptrs` ends with NULL.
    unsafe { libc::execv(path.as_ptr(), ptrs.as_ptr()) };
    last_errno()
}

/// `unshare(CLONE_NEWIPC)` — moves this process into a fresh IPC namespace.
///
/// # Errors
/// `EPERM` without `CAP_SYS_ADMIN`.
#[doc(alias = "unshare")]
pub fn unshare_ipc() -> Result<(), Errno> {
    rustix::thread::unshare(UnshareFlags::NEWIPC).map_err(from_rustix)
}

/// `setgroups(groups)`, `setgid(gid)`, `setuid(uid)`, in that order: takes
/// a test identity. A non-root `uid` loses every capability by itself.
/// Per-thread system calls: only for single-threaded processes.
///
/// # Errors
/// `EPERM` without `CAP_SETGID`/`CAP_SETUID`.
#[doc(alias = "setuid")]
pub fn set_identity(uid: u32, gid: u32, groups: &[u32]) -> Result<(), Errno> {
    // (uid_t)-1 means "unchanged" to the set*id calls: never a real id.
    if uid == u32::MAX || gid == u32::MAX || groups.contains(&u32::MAX) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: no id is (uid_t)-1, the only value rustix's from_raw excludes.
    let (groups, gid, uid) = unsafe {
        (
            groups.iter().map(|g| rustix::process::Gid::from_raw(*g)).collect::<Vec<_>>(),
            rustix::process::Gid::from_raw(gid),
            rustix::process::Uid::from_raw(uid),
        )
    };
    rustix::thread::set_thread_groups(&groups).map_err(from_rustix)?;
    rustix::thread::set_thread_gid(gid).map_err(from_rustix)?;
    rustix::thread::set_thread_uid(uid).map_err(from_rustix)
}

/// Removes capabilities (numbers, as in `linux/capability.h`) from this
/// thread's effective and permitted sets (`capget` + `capset`).
///
/// # Errors
/// `EINVAL` for a number above 63; `EPERM` from the kernel.
#[doc(alias = "capset")]
pub fn drop_caps(caps: &[u32]) -> Result<(), Errno> {
    if caps.is_empty() {
        return Ok(());
    }
    let mut mask = 0u64;
    for &c in caps {
        mask |= 1u64.checked_shl(c).filter(|_| c < 64).ok_or(Errno::EINVAL)?;
    }
    let drop = CapabilityFlags::from_bits_retain(mask);
    let mut sets = rustix::thread::capabilities(None).map_err(from_rustix)?;
    sets.effective.remove(drop);
    sets.permitted.remove(drop);
    sets.inheritable.remove(drop);
    rustix::thread::set_capabilities(None, sets).map_err(from_rustix)
}

/// `pidfd_open(pid, 0)` — a descriptor that becomes readable when `pid` has
/// exited (after its memory, and so its shm attachments, is gone).
///
/// # Errors
/// `ESRCH` if there is no such process.
pub fn pidfd_open(pid: u32) -> Result<OwnedFd, Errno> {
    crate::proc::pidfd_open(pid)
}

/// Waits up to `timeout` for `fd` to become readable (or hung up); returns
/// whether it did.
///
/// # Errors
/// Whatever `poll` returns.
#[doc(alias = "poll")]
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<bool, Errno> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        match poll(&mut fds, ms) {
            Ok(0) if left.is_zero() => return Ok(false),
            Ok(0) => {}
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(from_rustix(e)),
        }
    }
}

/// `kill(pid, SIGKILL)`.
///
/// # Errors
/// `ESRCH` if there is no such process, `EPERM` without permission.
pub fn kill(pid: u32) -> Result<(), Errno> {
    let raw = i32::try_from(pid).map_err(|_| Errno::ESRCH)?;
    let pid = Pid::from_raw(raw).ok_or(Errno::ESRCH)?;
    rustix::process::kill_process(pid, Signal::Kill).map_err(from_rustix)
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphaned descendants become our children.
///
/// # Errors
/// Whatever `prctl` returns.
pub fn set_child_subreaper() -> Result<(), Errno> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(from_rustix)
}

/// `prctl(PR_SET_PDEATHSIG, SIGKILL)`: die with the parent. Cleared by any
/// credential change, so call it after [`set_identity`].
///
/// # Errors
/// Whatever `prctl` returns.
pub fn die_with_parent() -> Result<(), Errno> {
    rustix::process::set_parent_process_death_signal(Some(Signal::Kill)).map_err(from_rustix)
}

/// `signal(SIGCHLD, SIG_IGN)`: children are reaped by the kernel as they
/// exit (inherited across fork and exec).
///
/// # Errors
/// Whatever `signal` returns.
pub fn ignore_children() -> Result<(), Errno> {
    // SAFETY: installing SIG_IGN runs no handler code, so no async-signal
    // safety question arises.
    let old = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    if old == libc::SIG_ERR {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// Points standard input and output at `/dev/null` (a worker must not hold
/// the agent's pipes).
///
/// # Errors
/// Whatever `open`/`dup2` return.
pub fn stdio_to_null() -> Result<(), Errno> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    for target in [0, 1] {
        // SAFETY: dup2 onto fds 0 and 1 atomically replaces them; the
        // standard streams are the only owners of those numbers.
        if unsafe { libc::dup2(null.as_raw_fd(), target) } == -1 {
            return Err(last_errno());
        }
    }
    Ok(())
}

/// Closes every descriptor from 3 up except `keep`.
///
/// Objects owning descriptors that this closes must never be dropped
/// afterwards (a worker leaves them behind by never returning).
///
/// # Errors
/// Whatever `close_range` returns.
#[doc(alias = "close_range")]
pub fn close_fds_except(keep: RawFd) -> Result<(), Errno> {
    let keep = u32::try_from(keep).map_err(|_| Errno::EBADF)?;
    let mut ranges = vec![(keep + 1, u32::MAX)];
    if keep > 3 {
        ranges.push((3, keep - 1));
    }
    for (lo, hi) in ranges {
        // SAFETY: close_range only closes descriptors; the caller promises
        // that nothing will use or drop the closed ones again.
        check(unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) })?;
    }
    Ok(())
}

/// Lets `fd` survive `execve` (clears `FD_CLOEXEC`).
///
/// # Errors
/// Whatever `fcntl` returns.
pub fn keep_across_exec(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::io::fcntl_setfd(fd, FdFlags::empty()).map_err(from_rustix)
}

pub use crate::fd::adopt_inherited_fd;

/// `_exit(code)`: ends the process at once, running no destructors.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// How many descriptors one message may carry.
const MAX_FDS: usize = 4;

/// A line-oriented channel over a Unix stream socket that can also carry
/// descriptors (`SCM_RIGHTS`): the agent's link to each worker.
///
/// Every read goes through `recvmsg`, so a descriptor sent with a line is
/// collected by the time that line is complete ([`Channel::take_fd`]).
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

impl Channel {
    /// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`: two connected ends.
    ///
    /// # Errors
    /// Whatever `socketpair` returns.
    #[doc(alias = "socketpair")]
    pub fn pair() -> Result<(Channel, Channel), Errno> {
        let (a, b) = rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)
            .map_err(from_rustix)?;
        Ok((Channel::from_fd(a), Channel::from_fd(b)))
    }

    /// A channel over an existing connected stream socket.
    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel { fd, buf: Vec::new(), fds: VecDeque::new() }
    }

    /// The socket, e.g. to send it to another process or keep it across exec.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Sends `line` (which must not contain `\n`) and a newline, with `fd`
    /// attached if given.
    ///
    /// # Errors
    /// `EPIPE` if the peer is gone; whatever `sendmsg` returns.
    #[doc(alias = "sendmsg")]
    pub fn send_line(&self, line: &[u8], fd: Option<BorrowedFd<'_>>) -> Result<(), Errno> {
        let mut msg = Vec::with_capacity(line.len() + 1);
        msg.extend_from_slice(line);
        msg.push(b'\n');
        let mut sent = 0;
        if let Some(fd) = fd {
            let fds = [fd];
            let mut space = [0u8; rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(Errno::EINVAL);
            }
            sent = rustix::net::sendmsg(&self.fd, &[IoSlice::new(&msg)], &mut control, SendFlags::NOSIGNAL)
                .map_err(from_rustix)?;
        }
        while sent < msg.len() {
            match rustix::net::send(&self.fd, &msg[sent..], SendFlags::NOSIGNAL) {
                Ok(n) => sent += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(from_rustix(e)),
            }
        }
        Ok(())
    }

    /// Receives one line (without its newline); `None` at end of stream.
    /// With a `timeout`, `ETIMEDOUT` if no complete line arrives in time.
    ///
    /// # Errors
    /// `ETIMEDOUT`; whatever `recvmsg` returns.
    #[doc(alias = "recvmsg")]
    pub fn recv_line(&mut self, timeout: Option<Duration>) -> Result<Option<Vec<u8>>, Errno> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                return Ok(Some(line));
            }
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if !wait_readable(self.fd.as_fd(), left)? {
                    return Err(Errno::ETIMEDOUT);
                }
            }
            let mut chunk = [0u8; 65536];
            let mut space = [0u8; rustix::cmsg_space!(ScmRights(MAX_FDS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let r = rustix::net::recvmsg(
                &self.fd,
                &mut [IoSliceMut::new(&mut chunk)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            );
            let n = match r {
                Ok(r) => r.bytes,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(from_rustix(e)),
            };
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = msg {
                    self.fds.extend(fds);
                }
            }
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The oldest descriptor received and not yet taken.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
