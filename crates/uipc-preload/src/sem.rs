//! System V semaphores served by the daemon: `semget`, `semop`,
//! `semtimedop` and `semctl` (whose variadic C entry point is
//! `src/semctl.c`, calling [`uipc_preload_semctl`]).
//!
//! User memory (the `sembuf` array, the timeout, `semid_ds`, `seminfo`,
//! the GETALL/SETALL arrays) is copied with `process_vm_readv`/`writev`
//! (`uipc_sys::map::{read_at, write_at}`), so a bad pointer gives `EFAULT`
//! in the kernel's order, never a crash.
//!
//! A `semop` that sleeps does so on a connection of its own
//! ([`uipc_client::Sleeper`]) with no lock of the shim held: the fork gate
//! is taken only to pick the connection up and to hand it back, so other
//! threads call, and fork, while it sleeps. A signal handler that runs
//! while it sleeps makes it fail with `EINTR` — with or without
//! `SA_RESTART`, as semop(2) is never restarted (signal(7)) — unless the
//! operation already happened, which the daemon decides.
//!
//! # References
//!  - [semget(2)], [semop(2)], [semctl(2)], [signal(7)]
//!
//! [semget(2)]: https://man7.org/linux/man-pages/man2/semget.2.html
//! [semop(2)]: https://man7.org/linux/man-pages/man2/semop.2.html
//! [semctl(2)]: https://man7.org/linux/man-pages/man2/semctl.2.html
//! [signal(7)]: https://man7.org/linux/man-pages/man7/signal.7.html

use std::borrow::Cow;
use std::ffi::{c_int, c_ulong};
use std::mem::{offset_of, size_of};

use libc::{key_t, size_t};
use uipc_abi::{CBytes, Errno, Sembuf, Semid64Ds};
use uipc_client::{Client, SemCtlArg, SemOut};
use uipc_core::sysv::sem::SemCmd;
use uipc_proto::PermSet;

use crate::{entry_client, ret, with_client, GATE};

/// `semget(key, nsems, semflg)` — gets or creates a System V semaphore set.
///
/// # Errors
/// semget(2)'s: `EINVAL`, `ENOENT`, `EEXIST`, `EACCES`, `ENOSPC`; `ENOSYS`
/// when no daemon answers.
///
/// # Safety
/// None beyond C's: the arguments are plain values.
#[no_mangle]
pub unsafe extern "C" fn semget(key: key_t, nsems: c_int, semflg: c_int) -> c_int {
    ret::int(with_client(|c| c.semget(key, nsems, semflg).map(|id| id.0)))
}

/// `semop(semid, sops, nsops)` — performs the operations atomically,
/// sleeping until they can be (unless one that would block has
/// `IPC_NOWAIT`).
///
/// # Errors
/// semop(2)'s: `E2BIG`, `EINVAL`, `EFAULT`, `EFBIG`, `EACCES`, `ERANGE`,
/// `EAGAIN`, `EIDRM`, `EINTR`, `ENOMEM`; `ENOSYS` when no daemon answers.
///
/// # Safety
/// None beyond C's: `sops` is only read, through a checked copy.
#[no_mangle]
pub unsafe extern "C" fn semop(semid: c_int, sops: *mut libc::sembuf, nsops: size_t) -> c_int {
    ret::int(semtimedop_in(semid, sops as usize as u64, nsops, None))
}

/// `semtimedop(semid, sops, nsops, timeout)` — [`semop`] that gives up
/// with `EAGAIN` after `timeout` (a null `timeout` waits forever).
///
/// # Errors
/// As [`semop`]; `EFAULT` for an unreadable timeout (before anything
/// else), `EINVAL` for an invalid one.
///
/// # Safety
/// None beyond C's: `sops` and `timeout` are only read, through checked copies.
#[no_mangle]
pub unsafe extern "C" fn semtimedop(
    semid: c_int,
    sops: *mut libc::sembuf,
    nsops: size_t,
    timeout: *const libc::timespec,
) -> c_int {
    let timeout = (!timeout.is_null()).then_some(timeout as usize as u64);
    ret::int(semtimedop_in(semid, sops as usize as u64, nsops, timeout))
}

/// Above this many operations, the shim learns `SEMOPM` before copying the
/// array (the kernel answers `E2BIG` before it copies).
const SOPS_READ_FREELY: u32 = 4096;

/// The most operations one request can carry (a frame is at most
/// `uipc_proto::MAX_FRAME` bytes; an operation encodes in at most 9; 64
/// bytes are left for the rest of the request).
#[allow(clippy::cast_possible_truncation)] // 1 MiB / 9 fits any u32.
const SOPS_MAX: u32 = ((uipc_proto::MAX_FRAME - 64) / 9) as u32;

/// Mirrors `ipc/sem.c:ksys_semtimedop()` and `do_semtimedop()` up to the
/// copy-in; the daemon does the rest (`__do_semtimedop()`).
fn semtimedop_in(semid: c_int, sops: u64, nsops: size_t, timeout: Option<u64>) -> Result<c_int, Errno> {
    let c = &*entry_client()?;
    // ksys_semtimedop: "if (get_timespec64(&ts, timeout)) return -EFAULT;" — first of all.
    let timeout = timeout.map(read_timespec).transpose()?;
    // The system call takes `unsigned nsops`: the upper half of a size_t never reaches it.
    let nsops = u32::try_from(u64::try_from(nsops).unwrap_or(u64::MAX) & u64::from(u32::MAX)).unwrap_or(u32::MAX);
    let mut small = [Sembuf::default(); SMALL_SOPS];
    let ops = read_sops(c, sops, nsops, &mut small)?;
    // The data plane: an operation that completes or fails at once runs here.
    if let Some(r) = ops.as_deref().and_then(|o| c.semop_fast(semid, o, timeout)) {
        return r.map(|()| 0);
    }
    let mut sleeper = {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        c.sleeper().map_err(|_| Errno::ENOSYS)?
    };
    // No lock is held while the call may sleep.
    let r = sleeper.semop_raw(semid, nsops, ops.as_deref(), timeout);
    {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        c.give_back(sleeper);
    }
    // semop returns 0; the daemon answers nothing else on success.
    c_int::try_from(r?).map_err(|_| Errno::EIO)
}

/// Reads the caller's `struct timespec` as `(tv_sec, tv_nsec)`.
///
/// # Errors
/// `EFAULT` if it is not readable (get_timespec64).
fn read_timespec(addr: u64) -> Result<(i64, i64), Errno> {
    let b = uipc_sys::map::read_at(addr, size_of::<libc::timespec>())?;
    let i64_at = |off: usize| -> Result<i64, Errno> {
        let s = b.get(off..off + 8).ok_or(Errno::EFAULT)?;
        Ok(i64::from_ne_bytes(s.try_into().map_err(|_| Errno::EFAULT)?))
    };
    Ok((i64_at(offset_of!(libc::timespec, tv_sec))?, i64_at(offset_of!(libc::timespec, tv_nsec))?))
}

/// The caller's `nsops` operations, or `None` when the kernel would not
/// get them: none to copy (`nsops` 0: `EINVAL`), more than `SEMOPM`
/// (`E2BIG`, decided before the copy) or an unreadable array (`EFAULT`).
/// The daemon gives those errnos in the kernel's order.
///
/// # Errors
/// `ENOMEM` for more operations than one request carries (only possible
/// with `kernel.sem`'s SEMOPM raised past [`SOPS_MAX`]).
fn read_sops<'a>(
    c: &Client,
    addr: u64,
    nsops: u32,
    small: &'a mut [Sembuf; SMALL_SOPS],
) -> Result<Option<Cow<'a, [Sembuf]>>, Errno> {
    if nsops == 0 {
        return Ok(None);
    }
    let n = usize::try_from(nsops).map_err(|_| Errno::ENOMEM)?;
    if n <= SMALL_SOPS {
        // The common case, with no allocation (the fast path's budget is
        // tens of nanoseconds): an array on the caller's stack, read an
        // operation at a time; else one checked copy (remembered: the
        // next call with the same buffer reads it in place).
        const SIZE: usize = size_of::<Sembuf>();
        let on_stack = (0..n).try_for_each(|i| {
            let at = addr.checked_add(u64::try_from(i * SIZE).ok()?)?;
            small[i] = decode_sembuf(&uipc_sys::map::read_array_on_stack::<SIZE>(at)?);
            Some(())
        });
        if on_stack.is_none() {
            let bytes = match crate::usermem::read(addr, n * SIZE) {
                Ok(b) => b,
                Err(Errno::EFAULT) => return Ok(None),
                Err(e) => return Err(e),
            };
            for (op, s) in small.iter_mut().zip(bytes.chunks_exact(SIZE)) {
                *op = decode_sembuf(s);
            }
        }
        return Ok(Some(Cow::Borrowed(&small[..n])));
    }
    if nsops > SOPS_READ_FREELY {
        if nsops > semopm(c)? {
            return Ok(None);
        }
        if nsops > SOPS_MAX {
            return Err(Errno::ENOMEM);
        }
    }
    let mut bytes = vec![0u8; n * size_of::<Sembuf>()];
    match uipc_sys::map::read_from_caller(addr, &mut bytes) {
        Ok(()) => {}
        // do_semtimedop: "if (copy_from_user(sops, tsops, ...)) ret = -EFAULT;" — after E2BIG.
        Err(Errno::EFAULT) => return Ok(None),
        Err(e) => return Err(e),
    }
    Ok(Some(Cow::Owned(bytes.chunks_exact(size_of::<Sembuf>()).map(decode_sembuf).collect())))
}

/// Operations read without allocating ([`read_sops`]).
const SMALL_SOPS: usize = 16;

/// One `struct sembuf` from its bytes.
fn decode_sembuf(s: &[u8]) -> Sembuf {
    let u16_at = |off: usize| -> [u8; 2] { [s.get(off).copied().unwrap_or(0), s.get(off + 1).copied().unwrap_or(0)] };
    Sembuf {
        sem_num: u16::from_ne_bytes(u16_at(offset_of!(Sembuf, sem_num))),
        sem_op: i16::from_ne_bytes(u16_at(offset_of!(Sembuf, sem_op))),
        sem_flg: i16::from_ne_bytes(u16_at(offset_of!(Sembuf, sem_flg))),
    }
}

/// The namespace's SEMOPM (the third field of `kernel.sem`).
fn semopm(c: &Client) -> Result<u32, Errno> {
    let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
    let sem = c.sysctl_read("kernel.sem")?;
    let field = sem.split_whitespace().nth(2).ok_or(Errno::EIO)?;
    // A negative SEMOPM admits no operation at all.
    Ok(field.parse::<i64>().map_err(|_| Errno::EIO)?.clamp(0, i64::from(u32::MAX)).try_into().unwrap_or(0))
}

/// `semctl(semid, semnum, cmd, arg)`'s Rust half, called by `semctl` in
/// `src/semctl.c` with `arg` read only for the commands that have one (0
/// for the others).
///
/// `arg` is the value (SETVAL: its low 32 bits, as the kernel reads it on
/// little-endian 64-bit) or the buffer, read (`IPC_SET`, `SETALL`) or
/// written (`IPC_STAT`, `SEM_STAT`, `SEM_STAT_ANY`, `IPC_INFO`,
/// `SEM_INFO`, `GETALL`) through checked copies.
///
/// # Errors
/// semctl(2)'s: `EINVAL`, `EACCES`, `EPERM`, `ERANGE`, `EFAULT`, `EIDRM`;
/// `ENOSYS` when no daemon answers.
///
/// # Safety
/// For the writing commands, `arg` must be the caller's buffer for the
/// command's structure or array (or an unmapped address): it is written.
#[no_mangle]
pub unsafe extern "C" fn uipc_preload_semctl(semid: c_int, semnum: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // `unsigned long` is 32 bits on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let addr = u64::from(arg);
    // The queries of one value a state page answers, outside the gate as
    // semop is: nothing to read from the caller, nothing to copy out.
    if let Ok(c) = entry_client() {
        if let Some(r) = c.sem_value_fast(semid, semnum, cmd) {
            return ret::int(r.and_then(|v| c_int::try_from(v).map_err(|_| Errno::EOVERFLOW)));
        }
    }
    ret::int(with_client(|c| {
        // ksys_semctl: "if (semid < 0) return -EINVAL;", then an unknown cmd → EINVAL.
        let decoded = SemCmd::decode(semid, cmd)?;
        let wire = match decoded {
            // ksys_semctl, IPC_SET: "if (copy_semid_from_user(&semid64, p, version)) return -EFAULT;"
            // — before the id is looked up.
            SemCmd::IpcSet => SemCtlArg::Set(read_set(addr)?),
            SemCmd::SetVal => SemCtlArg::Val(setval(addr)),
            SemCmd::SetAll => SemCtlArg::Array(read_array(c, semid, addr)?),
            _ => SemCtlArg::None,
        };
        let (r, out) = c.semctl(semid, semnum, cmd, wire)?;
        let r = c_int::try_from(r).map_err(|_| Errno::EOVERFLOW)?;
        // The command has happened; only the copy-out can still fail
        // (semctl_info, semctl_stat's caller, semctl_main's GETALL: "if
        // (copy_to_user(...)) err = -EFAULT;").
        let bytes = match out {
            SemOut::None => return Ok(r),
            SemOut::SemDs(ds) => ds.to_c_bytes(),
            SemOut::Seminfo(i) => i.to_c_bytes(),
            SemOut::Values(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
        };
        // SAFETY: `arg` is the caller's buffer for this command's structure
        // or array (the C contract of semctl); nothing of the shim's lies
        // there. The copy is checked by the kernel (EFAULT, never a fault).
        unsafe { uipc_sys::map::write_at(addr, &bytes) }?;
        Ok(r)
    }))
}

/// SETVAL's `arg.val`: ksys_semctl reads "val = arg" (the low 32 bits) on
/// little-endian 64-bit, "val = arg >> 32" on big-endian 64-bit.
fn setval(arg: u64) -> i32 {
    let bits = if cfg!(all(target_endian = "big", target_pointer_width = "64")) { arg >> 32 } else { arg };
    let low = u32::try_from(bits & u64::from(u32::MAX)).unwrap_or(0);
    i32::from_ne_bytes(low.to_ne_bytes())
}

/// Reads `IPC_SET`'s `(uid, gid, mode)` from the caller's `struct semid_ds`.
///
/// # Errors
/// `EFAULT` if the whole structure is not readable (the kernel copies all of it).
fn read_set(addr: u64) -> Result<PermSet, Errno> {
    let bytes = uipc_sys::map::read_at(addr, size_of::<Semid64Ds>())?;
    let perm = Semid64Ds::from_c_bytes(&bytes).ok_or(Errno::EFAULT)?.sem_perm;
    Ok(PermSet { uid: perm.uid, gid: perm.gid, mode: perm.mode })
}

/// SETALL's array: the set's `nsems` values, `None` if they cannot be read
/// (the daemon answers `EFAULT` after the lookup and the permission check,
/// as semctl_main copies after both).
///
/// The kernel copies `sem_nsems` values, which the shim learns first with
/// `SEM_STAT_ANY` (no permission needed; nothing changes). A set that is
/// not there gives an empty array: the daemon's lookup fails first.
///
/// # Errors
/// `ENOMEM`, `EPERM` from the copy (not `EFAULT`, which is `None`).
fn read_array(c: &Client, semid: c_int, addr: u64) -> Result<Option<Vec<u16>>, Errno> {
    let nsems = match c.semctl(semid, 0, uipc_abi::SEM_STAT_ANY, SemCtlArg::None) {
        Ok((full, SemOut::SemDs(ds))) if full == i64::from(semid) => usize::try_from(ds.sem_nsems).unwrap_or(0),
        _ => 0,
    };
    match uipc_sys::map::read_at(addr, nsems * 2) {
        Ok(b) => Ok(Some(b.chunks_exact(2).map(|p| u16::from_ne_bytes([p[0], p[1]])).collect())),
        Err(Errno::EFAULT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The C half must be linked in (it holds the exported `semctl`).
mod c_half {
    extern "C" {
        fn semctl(semid: std::ffi::c_int, semnum: std::ffi::c_int, cmd: std::ffi::c_int, ...) -> std::ffi::c_int;
    }

    /// Referenced so that the linker keeps `src/semctl.c`'s object.
    #[used]
    static KEEP: unsafe extern "C" fn(std::ffi::c_int, std::ffi::c_int, std::ffi::c_int, ...) -> std::ffi::c_int =
        semctl;
}
