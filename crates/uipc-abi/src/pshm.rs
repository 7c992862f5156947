//! POSIX shared memory and glibc's named semaphores: the `open(2)` flags
//! `shm_open` takes, and the bytes of a `sem_t` as glibc's `sem_open`
//! writes them into a new semaphore's object.
//!
//! # References
//! - `include/uapi/asm-generic/fcntl.h` (Linux 6.12)
//! - glibc `sysdeps/pthread/sem_open.c`, `nptl/sem_init.c`,
//!   `sysdeps/nptl/internaltypes.h` (`struct new_sem`, x86_64: 64-bit atomics)

/// `O_ACCMODE`: the access-mode bits of an open flag.
pub const O_ACCMODE: i32 = 0o3;
/// `O_RDONLY`.
pub const O_RDONLY: i32 = 0;
/// `O_WRONLY`.
pub const O_WRONLY: i32 = 0o1;
/// `O_RDWR`.
pub const O_RDWR: i32 = 0o2;
/// `O_CREAT`.
pub const O_CREAT: i32 = 0o100;
/// `O_EXCL`.
pub const O_EXCL: i32 = 0o200;
/// `O_TRUNC`.
pub const O_TRUNC: i32 = 0o1000;
/// `O_APPEND`.
pub const O_APPEND: i32 = 0o2000;
/// `O_NONBLOCK`.
pub const O_NONBLOCK: i32 = 0o4000;
/// `O_DIRECTORY`.
pub const O_DIRECTORY: i32 = 0o200000;

/// `SEM_VALUE_MAX`: the largest value of a POSIX semaphore (`INT_MAX`).
pub const SEM_VALUE_MAX: u32 = 0x7fff_ffff;

/// `sizeof(sem_t)` on x86_64.
pub const SEM_T_SIZE: usize = 32;

/// glibc's `FUTEX_SHARED`, the `private` field of a process-shared semaphore.
const FUTEX_SHARED: u32 = 128;

/// The 32 bytes of a new named semaphore of value `value`, as glibc's
/// `__new_sem_open_init()` lays out `struct new_sem` (x86_64): the 64-bit
/// `data` word holds the value (low half) and no waiters (high half),
/// `private` is `FUTEX_SHARED`, the rest is zero. This is also what
/// `sem_init(sem, 1, value)` writes.
pub fn sem_t_bytes(value: u32) -> [u8; SEM_T_SIZE] {
    let mut out = [0u8; SEM_T_SIZE];
    out[..8].copy_from_slice(&u64::from(value).to_le_bytes());
    out[8..12].copy_from_slice(&FUTEX_SHARED.to_le_bytes());
    out
}
