//! The Linux user ABI of System V and POSIX IPC: constants, `#[repr(C)]`
//! structures laid out exactly as the kernel and glibc lay them out, and the
//! [`Errno`] newtype.
//!
//! Nothing here does anything; it only names numbers and layouts. Per-architecture
//! layouts live only in this crate (STYLE rule 11).
//!
//! # References
//! - `include/uapi/linux/{ipc,shm,sem,msg,mqueue}.h` (Linux 6.12)
//! - `arch/x86/include/uapi/asm/{shmbuf,sembuf,msgbuf}.h`, `include/uapi/asm-generic/*buf.h`
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bytes;
mod errno;
pub mod pshm;
mod structs;

pub use bytes::CBytes;
pub use errno::Errno;
pub use structs::*;

/// A System V IPC key, `key_t` (a signed 32-bit integer).
pub type KeyT = i32;

/// `IPC_PRIVATE`: the key that always creates a new, unnamed object.
pub const IPC_PRIVATE: KeyT = 0;

/// `IPC_CREAT`: create the object if the key does not exist.
pub const IPC_CREAT: i32 = 0o1000;
/// `IPC_EXCL`: fail with `EEXIST` if the key exists (with `IPC_CREAT`).
pub const IPC_EXCL: i32 = 0o2000;
/// `IPC_NOWAIT`: return `EAGAIN`/`ENOMSG` instead of blocking.
pub const IPC_NOWAIT: i32 = 0o4000;

/// `IPC_RMID`: remove the object.
pub const IPC_RMID: i32 = 0;
/// `IPC_SET`: set `uid`, `gid` and the low 9 mode bits.
pub const IPC_SET: i32 = 1;
/// `IPC_STAT`: read the `*_ds` structure.
pub const IPC_STAT: i32 = 2;
/// `IPC_INFO`: read the system-wide limits.
pub const IPC_INFO: i32 = 3;
/// `IPC_64`: the "new ABI" flag; on x86_64 the kernel does not strip it, so
/// a command with it or-ed in is unknown (`EINVAL`).
pub const IPC_64: i32 = 0x100;

/// `SHM_HUGETLB`: back the segment with huge pages.
pub const SHM_HUGETLB: i32 = 0o4000;
/// `SHM_NORESERVE`: do not reserve swap space.
pub const SHM_NORESERVE: i32 = 0o10000;
/// `SHM_HUGE_SHIFT`: huge page size encoding shift in `shmflg`.
pub const SHM_HUGE_SHIFT: i32 = 26;
/// `SHM_HUGE_MASK`: mask of the huge page size encoding after the shift.
pub const SHM_HUGE_MASK: i32 = 0x3f;
/// `SHM_RDONLY`: attach read-only.
pub const SHM_RDONLY: i32 = 0o10000;
/// `SHM_RND`: round the attach address down to `SHMLBA`.
pub const SHM_RND: i32 = 0o20000;
/// `SHM_REMAP`: take over the range at the attach address.
pub const SHM_REMAP: i32 = 0o40000;
/// `SHM_EXEC`: attach with execute permission.
pub const SHM_EXEC: i32 = 0o100000;

/// Mode bit: segment marked for destruction (removed while attached).
pub const SHM_DEST: u32 = 0o1000;
/// Mode bit: segment locked in memory (`SHM_LOCK`).
pub const SHM_LOCKED: u32 = 0o2000;

/// `shmctl` command: lock the segment in memory.
pub const SHM_LOCK: i32 = 11;
/// `shmctl` command: unlock the segment.
pub const SHM_UNLOCK: i32 = 12;
/// `shmctl` command: stat by slot index, permission checked.
pub const SHM_STAT: i32 = 13;
/// `shmctl` command: usage figures (`struct shm_info`).
pub const SHM_INFO: i32 = 14;
/// `shmctl` command: stat by slot index, no permission check.
pub const SHM_STAT_ANY: i32 = 15;

/// `SHMLBA` on x86_64 and aarch64 (with 4 KiB pages): the attach alignment.
pub const SHMLBA: u64 = 4096;
/// The page size uipc models (x86_64 and 4 KiB-page aarch64).
pub const PAGE_SIZE: u64 = 4096;
/// `SHMMIN`: the smallest segment size.
pub const SHMMIN: u64 = 1;

/// `semop` flag: undo the operation when the process exits.
pub const SEM_UNDO: i16 = 0x1000;
/// `semctl` command: pid of the last operation on a semaphore.
pub const GETPID: i32 = 11;
/// `semctl` command: read one value.
pub const GETVAL: i32 = 12;
/// `semctl` command: read all values.
pub const GETALL: i32 = 13;
/// `semctl` command: number of processes waiting for an increase.
pub const GETNCNT: i32 = 14;
/// `semctl` command: number of processes waiting for zero.
pub const GETZCNT: i32 = 15;
/// `semctl` command: set one value.
pub const SETVAL: i32 = 16;
/// `semctl` command: set all values.
pub const SETALL: i32 = 17;
/// `semctl` command: stat by slot index, permission checked.
pub const SEM_STAT: i32 = 18;
/// `semctl` command: usage figures (`struct seminfo`).
pub const SEM_INFO: i32 = 19;
/// `semctl` command: stat by slot index, no permission check.
pub const SEM_STAT_ANY: i32 = 20;
/// `SEMVMX`: the largest semaphore value.
pub const SEMVMX: i32 = 32767;
/// `SEMAEM`: the largest undo adjustment magnitude.
pub const SEMAEM: i32 = 32767;

/// `msgrcv` flag: truncate a too-long message instead of failing.
pub const MSG_NOERROR: i32 = 0o10000;
/// `msgrcv` flag: receive the first message whose type is not `msgtyp`.
pub const MSG_EXCEPT: i32 = 0o20000;
/// `msgrcv` flag: copy the message at position `msgtyp` without removing it.
pub const MSG_COPY: i32 = 0o40000;
/// `msgctl` command: stat by slot index, permission checked.
pub const MSG_STAT: i32 = 11;
/// `msgctl` command: usage figures.
pub const MSG_INFO: i32 = 12;
/// `msgctl` command: stat by slot index, no permission check.
pub const MSG_STAT_ANY: i32 = 13;

/// `IPCMNI`: the size of each object type's slot space.
pub const IPCMNI: u32 = 32768;
/// `IPCMNI_SHIFT`: bits of the slot index in an id.
pub const IPCMNI_SHIFT: u32 = 15;

/// `SIGEV_SIGNAL`: notify by signal.
pub const SIGEV_SIGNAL: i32 = 0;
/// `SIGEV_NONE`: no notification.
pub const SIGEV_NONE: i32 = 1;
/// `SIGEV_THREAD`: notify by starting a thread (glibc).
pub const SIGEV_THREAD: i32 = 2;
/// `MQ_PRIO_MAX`: priorities are below this.
pub const MQ_PRIO_MAX: u32 = 32768;
