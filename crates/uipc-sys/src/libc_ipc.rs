//! The C library's System V IPC functions, called as a C program calls
//! them (feature `oracle`): the test kit's preload backend runs its workers
//! with `LD_PRELOAD=libuipc_preload.so`, so these calls reach the shim —
//! exactly what an unmodified C program reaches — and, behind the seccomp
//! filter of [`crate::seccomp`], never the kernel.
//!
//! The signatures mirror [`crate::oracle`]'s (the same [`ShmctlBuf`],
//! [`SemctlArg`] and [`SemTimeout`]), so the agent can run one operation
//! either way. The differences from the raw system calls are the C
//! library's (or the shim's): `(void *) -1` and `-1` with `errno`.
//!
//! # Soundness
//! As [`crate::oracle`]'s: the memory-changing calls are for disposable
//! worker processes whose only memory a test touches is what it attached.
//!
//! # References
//!  - [shmget(2)], [shmop(2)], [shmctl(2)], [semget(2)], [semop(2)], [semctl(2)], [dladdr(3)]
//!
//! [shmget(2)]: https://man7.org/linux/man-pages/man2/shmget.2.html
//! [shmop(2)]: https://man7.org/linux/man-pages/man2/shmop.2.html
//! [shmctl(2)]: https://man7.org/linux/man-pages/man2/shmctl.2.html
//! [semget(2)]: https://man7.org/linux/man-pages/man2/semget.2.html
//! [semop(2)]: https://man7.org/linux/man-pages/man2/semop.2.html
//! [semctl(2)]: https://man7.org/linux/man-pages/man2/semctl.2.html
//! [dladdr(3)]: https://man7.org/linux/man-pages/man3/dladdr.3.html

use std::ffi::CStr;
use std::path::PathBuf;

use uipc_abi::{Errno, Sembuf, Semid64Ds};

use crate::oracle::last_errno;
pub use crate::oracle::{MsgctlBuf, SemTimeout, SemctlArg, ShmctlBuf, CTL_BUF_LEN, FAULT_ADDR, MSGRCV_ROOM};

mod c {
    extern "C" {
        // Not declared by the libc crate; glibc has had it since 2.3.3.
        pub fn semtimedop(
            semid: libc::c_int,
            sops: *mut libc::sembuf,
            nsops: libc::size_t,
            timeout: *const libc::timespec,
        ) -> libc::c_int;
    }
}

fn check(ret: libc::c_int) -> Result<i64, Errno> {
    if ret == -1 {
        Err(last_errno())
    } else {
        Ok(i64::from(ret))
    }
}

/// The file of the shared object that defines the `shmget` this process
/// calls (`dladdr`), e.g. `…/libuipc_preload.so` under `LD_PRELOAD`, or
/// the C library. `None` if the dynamic linker cannot tell.
#[doc(alias = "dladdr")]
pub fn shmget_provider() -> Option<PathBuf> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let f: unsafe extern "C" fn(libc::key_t, libc::size_t, libc::c_int) -> libc::c_int = libc::shmget;
    // SAFETY: dladdr only reads the dynamic linker's tables and fills `info`.
    let found = unsafe { libc::dladdr(f as *const libc::c_void, &raw mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the dynamic
    // linker, alive while the object stays loaded (it is never unloaded).
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(name.to_string_lossy().into_owned()))
}

/// `shmget(key, size, flags)` through the C library.
///
/// # Errors
/// shmget(2)'s.
pub fn shmget(key: i32, size: u64, flags: i32) -> Result<i32, Errno> {
    let size = usize::try_from(size).map_err(|_| Errno::EINVAL)?;
    // SAFETY: integers only.
    check(unsafe { libc::shmget(key, size, flags) }).map(|v| i32::try_from(v).unwrap_or(-1))
}

/// `shmat(id, addr, flags)` through the C library; the address.
///
/// # Errors
/// shmat(2)'s.
pub fn shmat(id: i32, addr: u64, flags: i32) -> Result<u64, Errno> {
    let addr = usize::try_from(addr).map_err(|_| Errno::EINVAL)?;
    // SAFETY: see the module's "Soundness"; the new mapping is reached only
    // through process_vm_readv/writev.
    let p = unsafe { libc::shmat(id, addr as *const libc::c_void, flags) };
    if p as isize == -1 {
        return Err(last_errno());
    }
    u64::try_from(p as usize).map_err(|_| Errno::EINVAL)
}

/// `shmdt(addr)` through the C library.
///
/// # Errors
/// shmdt(2)'s (`EINVAL`).
pub fn shmdt(addr: u64) -> Result<(), Errno> {
    let addr = usize::try_from(addr).map_err(|_| Errno::EINVAL)?;
    // SAFETY: see the module's "Soundness".
    check(unsafe { libc::shmdt(addr as *const libc::c_void) }).map(drop)
}

/// `shmctl(id, cmd, buf)` through the C library.
///
/// # Errors
/// shmctl(2)'s.
pub fn shmctl(id: i32, cmd: i32, buf: ShmctlBuf<'_>) -> Result<i64, Errno> {
    let ptr: *mut libc::shmid_ds = match buf {
        ShmctlBuf::Null => std::ptr::null_mut(),
        ShmctlBuf::Out(b) => b.as_mut_ptr().cast(),
        ShmctlBuf::Set(ds) => std::ptr::from_ref(ds).cast_mut().cast(),
        ShmctlBuf::Fault => FAULT_ADDR as *mut libc::shmid_ds,
    };
    // SAFETY: as oracle::shmctl: NULL, the unmapped FAULT_ADDR, our
    // CTL_BUF_LEN-byte buffer (larger than any structure shmctl writes), or
    // a Shmid64Ds that only IPC_SET reads.
    check(unsafe { libc::shmctl(id, cmd, ptr) })
}

/// `msgget(key, flags)` through the C library.
///
/// # Errors
/// msgget(2)'s.
pub fn msgget(key: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: integers only.
    check(unsafe { libc::msgget(key, flags) }).map(|v| i32::try_from(v).unwrap_or(-1))
}

/// `msgsnd` through the C library, as [`crate::oracle::msgsnd`].
///
/// # Errors
/// msgop(2)'s.
pub fn msgsnd(id: i32, mtype: i64, text: &[u8], flags: i32, fault: bool) -> Result<i64, Errno> {
    let buf = crate::oracle::msgbuf(mtype, text);
    let ptr = if fault { FAULT_ADDR as *const libc::c_void } else { buf.as_ptr().cast() };
    // SAFETY: msgsnd reads 8 + text.len() bytes of `buf` (or faults on FAULT_ADDR).
    check(unsafe { libc::msgsnd(id, ptr, text.len(), flags) })
}

/// `msgrcv` through the C library, as [`crate::oracle::msgrcv`].
///
/// # Errors
/// msgop(2)'s.
pub fn msgrcv(id: i32, size: usize, msgtyp: i64, flags: i32, fault: bool) -> Result<(i64, i64, Vec<u8>), Errno> {
    // Room for the largest message a test sends (the kernel writes only
    // the message, never `size` bytes, so a huge `size` needs no more).
    let mut buf = vec![0u8; 8 + size.min(MSGRCV_ROOM)];
    let ptr = if fault { FAULT_ADDR as *mut libc::c_void } else { buf.as_mut_ptr().cast() };
    // SAFETY: msgrcv writes at most 8 + size bytes into `buf` (or faults on FAULT_ADDR).
    let n = unsafe { libc::msgrcv(id, ptr, size, msgtyp, flags) };
    if n == -1 {
        return Err(last_errno());
    }
    let n = i64::try_from(n).unwrap_or(-1);
    let (mtype, text) = crate::oracle::from_msgbuf(&buf, n);
    Ok((n, mtype, text))
}

/// `msgctl(id, cmd, buf)` through the C library.
///
/// # Errors
/// msgctl(2)'s.
pub fn msgctl(id: i32, cmd: i32, mut buf: MsgctlBuf<'_>) -> Result<i64, Errno> {
    let ptr = buf.ptr().cast::<libc::msqid_ds>();
    // SAFETY: as oracle::msgctl.
    check(unsafe { libc::msgctl(id, cmd, ptr) })
}

/// `semget(key, nsems, flags)` through the C library.
///
/// # Errors
/// semget(2)'s.
pub fn semget(key: i32, nsems: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: integers only.
    check(unsafe { libc::semget(key, nsems, flags) }).map(|v| i32::try_from(v).unwrap_or(-1))
}

fn sops_ptr(sops: &[Sembuf]) -> *mut libc::sembuf {
    // Sembuf is the kernel's struct sembuf, as is libc's.
    const _: () = assert!(size_of::<Sembuf>() == size_of::<libc::sembuf>());
    if sops.is_empty() {
        std::ptr::NonNull::<libc::sembuf>::dangling().as_ptr()
    } else {
        sops.as_ptr().cast_mut().cast()
    }
}

/// `semop(id, sops, nsops)` through the C library.
///
/// # Errors
/// semop(2)'s.
pub fn semop(id: i32, sops: &[Sembuf]) -> Result<i64, Errno> {
    // SAFETY: semop reads sops.len() sembufs (never writes them).
    check(unsafe { libc::semop(id, sops_ptr(sops), sops.len()) })
}

/// `semtimedop(id, sops, nsops, timeout)` through the C library.
///
/// # Errors
/// semtimedop(2)'s.
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
    // SAFETY: reads sops.len() sembufs and at most one timespec (alive
    // until the call returns), NULL or the unmapped FAULT_ADDR.
    check(unsafe { c::semtimedop(id, sops_ptr(sops), sops.len(), ts_ptr) })
}

/// The number of semaphores of set `id` (`SEM_STAT_ANY` on its slot,
/// through the C library); 0 if there is no such set.
pub fn sem_nsems(id: i32) -> usize {
    if id < 0 {
        return 0;
    }
    let mut out = [0u8; CTL_BUF_LEN];
    // SAFETY: SEM_STAT_ANY writes one semid64_ds into our buffer.
    let r = unsafe { libc::semctl(id & 0x7fff, 0, uipc_abi::SEM_STAT_ANY, out.as_mut_ptr()) };
    if r != id {
        return 0;
    }
    usize::try_from(crate::oracle::decode::<Semid64Ds>(&out).sem_nsems).unwrap_or(0)
}

/// `semctl(id, semnum, cmd, arg)` through the C library (a variadic call;
/// `union semun` travels as one 64-bit integer, as on x86-64 and AArch64).
/// The buffer forms use a zeroed buffer of ours, as [`crate::oracle::semctl`].
///
/// # Errors
/// semctl(2)'s.
pub fn semctl(id: i32, semnum: i32, cmd: i32, arg: SemctlArg<'_>) -> Result<i64, Errno> {
    if let Some(raw) = crate::oracle::semctl_direct(&arg) {
        // SAFETY: an integer, NULL or the unmapped FAULT_ADDR.
        return check(unsafe { libc::semctl(id, semnum, cmd, raw) });
    }
    let mut buf = crate::oracle::semctl_buffer(&arg, sem_nsems(id));
    // SAFETY: `buf` is ours and at least as large as anything semctl
    // reads or writes there (see oracle::semctl).
    let r = check(unsafe { libc::semctl(id, semnum, cmd, buf.as_mut_ptr()) });
    if let SemctlArg::Out(out) = arg {
        *out = buf;
    }
    r
}

/// `mq_open(name, oflag, mode, attr)` through the C library (glibc checks
/// the leading `/`, MQ-NAME-1); `attr` is `(mq_maxmsg, mq_msgsize)`.
///
/// # Errors
/// mq_open(3)'s.
pub fn mq_open(name: &[u8], oflag: i32, mode: u32, attr: Option<(i64, i64)>) -> Result<i32, Errno> {
    let name = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: mq_attr is plain integers; all-zero is a valid value.
    let mut a: libc::mq_attr = unsafe { std::mem::zeroed() };
    let ptr: *mut libc::mq_attr = match attr {
        Some((maxmsg, msgsize)) => {
            a.mq_maxmsg = maxmsg;
            a.mq_msgsize = msgsize;
            &mut a
        }
        None => std::ptr::null_mut(),
    };
    // SAFETY: `name` is NUL-terminated; `ptr` is NULL or points to `a`.
    check(unsafe { libc::mq_open(name.as_ptr(), oflag, libc::mode_t::from(mode), ptr) })
        .map(|fd| i32::try_from(fd).unwrap_or(-1))
}

/// `mq_unlink(name)` through the C library.
///
/// # Errors
/// mq_unlink(3)'s.
pub fn mq_unlink(name: &[u8]) -> Result<i64, Errno> {
    let name = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `name` is NUL-terminated.
    check(unsafe { libc::mq_unlink(name.as_ptr()) })
}

/// `mq_close(mqd)` through the C library.
///
/// # Errors
/// `EBADF`.
pub fn mq_close(mqd: i32) -> Result<i64, Errno> {
    // SAFETY: integers only; a test closes only descriptors it opened.
    check(unsafe { libc::mq_close(mqd) })
}

fn mq_deadline(deadline: Option<(i64, i64)>) -> (libc::timespec, bool) {
    let (sec, nsec) = deadline.unwrap_or((0, 0));
    (libc::timespec { tv_sec: sec, tv_nsec: nsec }, deadline.is_some())
}

/// `mq_timedsend(mqd, msg, len, prio, deadline)` (`mq_send` for `None`)
/// through the C library; `deadline` is an absolute `CLOCK_REALTIME` time.
///
/// # Errors
/// mq_send(3)'s.
pub fn mq_timedsend(mqd: i32, msg: &[u8], prio: u32, deadline: Option<(i64, i64)>) -> Result<i64, Errno> {
    let (ts, timed) = mq_deadline(deadline);
    // SAFETY: `msg` is readable for its length; `ts` lives across the call.
    check(unsafe {
        if timed {
            libc::mq_timedsend(mqd, msg.as_ptr().cast(), msg.len(), prio, &ts)
        } else {
            libc::mq_send(mqd, msg.as_ptr().cast(), msg.len(), prio)
        }
    })
}

/// Room for the largest message a test receives: the call writes only the
/// message (at most the queue's `mq_msgsize`), never `len` bytes.
const MQ_ROOM: usize = 1 << 16;

/// `mq_timedreceive(mqd, buf, len, &prio, deadline)` (`mq_receive` for
/// `None`) through the C library: the message and its priority.
///
/// # Errors
/// mq_receive(3)'s.
pub fn mq_timedreceive(mqd: i32, len: u64, deadline: Option<(i64, i64)>) -> Result<(Vec<u8>, u32), Errno> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; len.min(MQ_ROOM)];
    let mut prio = 0u32;
    let (ts, timed) = mq_deadline(deadline);
    // SAFETY: the call writes the message (at most the queue's msgsize,
    // which tests keep within MQ_ROOM) into `buf` and the priority into `prio`.
    let n = unsafe {
        if timed {
            libc::mq_timedreceive(mqd, buf.as_mut_ptr().cast(), len, &mut prio, &ts)
        } else {
            libc::mq_receive(mqd, buf.as_mut_ptr().cast(), len, &mut prio)
        }
    };
    if n < 0 {
        return Err(last_errno());
    }
    buf.truncate(usize::try_from(n).unwrap_or(0));
    Ok((buf, prio))
}

/// `mq_getsetattr(mqd, new, old)` through the C library (`mq_setattr` with
/// `new_flags`, else `mq_getattr`): the old `(flags, maxmsg, msgsize, curmsgs)`.
///
/// # Errors
/// `EINVAL`, `EBADF`.
pub fn mq_getsetattr(mqd: i32, new_flags: Option<i64>) -> Result<[i64; 4], Errno> {
    // SAFETY: mq_attr is plain integers; all-zero is a valid value.
    let mut old: libc::mq_attr = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut new: libc::mq_attr = unsafe { std::mem::zeroed() };
    // SAFETY: both structures live across the call.
    let r = unsafe {
        match new_flags {
            Some(f) => {
                new.mq_flags = f;
                libc::mq_setattr(mqd, &new, &mut old)
            }
            None => libc::mq_getattr(mqd, &mut old),
        }
    };
    check(r)?;
    Ok([old.mq_flags, old.mq_maxmsg, old.mq_msgsize, old.mq_curmsgs])
}

/// `mq_notify(mqd, sevp)` through the C library: `None` passes NULL,
/// `Some((sigev_notify, sigev_signo))` a `struct sigevent` with them.
///
/// # Errors
/// mq_notify(3)'s.
pub fn mq_notify(mqd: i32, how: Option<(i32, i32)>) -> Result<i64, Errno> {
    // SAFETY: sigevent is plain data; all-zero is a valid value.
    let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
    // SAFETY: `sev` lives across the call; NULL is allowed.
    check(unsafe {
        match how {
            Some((notify, signo)) => {
                sev.sigev_notify = notify;
                sev.sigev_signo = signo;
                libc::mq_notify(mqd, &sev)
            }
            None => libc::mq_notify(mqd, std::ptr::null()),
        }
    })
}

/// `read(fd, buf, 128)` through the C library (an mq descriptor's status
/// line, MQ-FS-3, which the shim's `read` wrapper serves).
///
/// # Errors
/// read(2)'s.
pub fn read_status(fd: i32) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 128];
    // SAFETY: `buf` is writable for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(last_errno());
    }
    buf.truncate(usize::try_from(n).unwrap_or(0));
    Ok(buf)
}
