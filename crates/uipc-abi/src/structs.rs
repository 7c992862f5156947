//! `#[repr(C)]` structures of the IPC system calls, laid out as the kernel's
//! `*64` variants (which glibc uses unchanged on 64-bit targets).
//!
//! The layouts are checked against the `libc` crate in `tests/layout.rs`.

/// `struct ipc64_perm` (glibc `struct ipc_perm`): ownership and mode of an object.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Ipc64Perm {
    /// `key`: the key the object was created with (0 once removed while attached).
    pub key: i32,
    /// `uid`: owner's user id.
    pub uid: u32,
    /// `gid`: owner's group id.
    pub gid: u32,
    /// `cuid`: creator's user id.
    pub cuid: u32,
    /// `cgid`: creator's group id.
    pub cgid: u32,
    /// `mode`: permission bits and the SHM_DEST/SHM_LOCKED flags.
    pub mode: u32,
    /// `__seq`: the object's sequence number.
    pub seq: u16,
    /// Padding.
    pub pad2: u16,
    /// Unused.
    pub unused1: u64,
    /// Unused.
    pub unused2: u64,
}

/// `struct shmid64_ds` (glibc `struct shmid_ds`): a shared memory segment's status.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Shmid64Ds {
    /// `shm_perm`: ownership and mode.
    pub shm_perm: Ipc64Perm,
    /// `shm_segsz`: size in bytes, as requested.
    pub shm_segsz: u64,
    /// `shm_atime`: last attach time.
    pub shm_atime: i64,
    /// `shm_dtime`: last detach time.
    pub shm_dtime: i64,
    /// `shm_ctime`: creation or last IPC_SET time.
    pub shm_ctime: i64,
    /// `shm_cpid`: creator's pid.
    pub shm_cpid: i32,
    /// `shm_lpid`: pid of the last attach or detach.
    pub shm_lpid: i32,
    /// `shm_nattch`: number of current attachments (mappings).
    pub shm_nattch: u64,
    /// Unused.
    pub unused4: u64,
    /// Unused.
    pub unused5: u64,
}

/// `struct shminfo64` (glibc `struct shminfo`): the `IPC_INFO` answer of `shmctl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Shminfo64 {
    /// `shmmax`: largest segment size.
    pub shmmax: u64,
    /// `shmmin`: smallest segment size (1).
    pub shmmin: u64,
    /// `shmmni`: most segments.
    pub shmmni: u64,
    /// `shmseg`: most attaches per process (reported as shmmni, not enforced).
    pub shmseg: u64,
    /// `shmall`: most pages in all segments.
    pub shmall: u64,
    /// Unused.
    pub unused: [u64; 4],
}

/// `struct shm_info`: the `SHM_INFO` answer of `shmctl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ShmInfo {
    /// `used_ids`: number of segments.
    pub used_ids: i32,
    /// Padding (the kernel struct has a hole here on 64-bit).
    pub pad: i32,
    /// `shm_tot`: pages allocated to all segments.
    pub shm_tot: u64,
    /// `shm_rss`: resident pages.
    pub shm_rss: u64,
    /// `shm_swp`: swapped pages.
    pub shm_swp: u64,
    /// `swap_attempts`: always 0.
    pub swap_attempts: u64,
    /// `swap_successes`: always 0.
    pub swap_successes: u64,
}

/// `struct semid64_ds` (glibc `struct semid_ds`): a semaphore set's status.
#[cfg(target_arch = "x86_64")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Semid64Ds {
    /// `sem_perm`: ownership and mode.
    pub sem_perm: Ipc64Perm,
    /// `sem_otime`: last semop time.
    pub sem_otime: i64,
    /// Unused (x86_64 pads each time).
    pub unused1: u64,
    /// `sem_ctime`: creation, IPC_SET, SETVAL or SETALL time.
    pub sem_ctime: i64,
    /// Unused.
    pub unused2: u64,
    /// `sem_nsems`: number of semaphores in the set.
    pub sem_nsems: u64,
    /// Unused.
    pub unused3: u64,
    /// Unused.
    pub unused4: u64,
}

/// `struct semid64_ds` (glibc `struct semid_ds`): a semaphore set's status.
#[cfg(not(target_arch = "x86_64"))]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Semid64Ds {
    /// `sem_perm`: ownership and mode.
    pub sem_perm: Ipc64Perm,
    /// `sem_otime`: last semop time.
    pub sem_otime: i64,
    /// `sem_ctime`: creation, IPC_SET, SETVAL or SETALL time.
    pub sem_ctime: i64,
    /// `sem_nsems`: number of semaphores in the set.
    pub sem_nsems: u64,
    /// Unused.
    pub unused3: u64,
    /// Unused.
    pub unused4: u64,
}

/// `struct seminfo`: the `IPC_INFO`/`SEM_INFO` answer of `semctl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Seminfo {
    /// `semmap`.
    pub semmap: i32,
    /// `semmni`: most sets.
    pub semmni: i32,
    /// `semmns`: most semaphores in all sets.
    pub semmns: i32,
    /// `semmnu`.
    pub semmnu: i32,
    /// `semmsl`: most semaphores per set.
    pub semmsl: i32,
    /// `semopm`: most operations per semop call.
    pub semopm: i32,
    /// `semume`.
    pub semume: i32,
    /// `semusz`.
    pub semusz: i32,
    /// `semvmx`: largest value.
    pub semvmx: i32,
    /// `semaem`: largest undo adjustment.
    pub semaem: i32,
}

/// `struct sembuf`: one semaphore operation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Sembuf {
    /// `sem_num`: index in the set.
    pub sem_num: u16,
    /// `sem_op`: the operation (add, subtract, wait for zero).
    pub sem_op: i16,
    /// `sem_flg`: IPC_NOWAIT and SEM_UNDO.
    pub sem_flg: i16,
}

/// `struct msqid64_ds` (glibc `struct msqid_ds`): a message queue's status.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Msqid64Ds {
    /// `msg_perm`: ownership and mode.
    pub msg_perm: Ipc64Perm,
    /// `msg_stime`: last msgsnd time.
    pub msg_stime: i64,
    /// `msg_rtime`: last msgrcv time.
    pub msg_rtime: i64,
    /// `msg_ctime`: creation or IPC_SET time.
    pub msg_ctime: i64,
    /// `msg_cbytes`: bytes in the queue.
    pub msg_cbytes: u64,
    /// `msg_qnum`: messages in the queue.
    pub msg_qnum: u64,
    /// `msg_qbytes`: most bytes in the queue.
    pub msg_qbytes: u64,
    /// `msg_lspid`: pid of the last msgsnd.
    pub msg_lspid: i32,
    /// `msg_lrpid`: pid of the last msgrcv.
    pub msg_lrpid: i32,
    /// Unused.
    pub unused4: u64,
    /// Unused.
    pub unused5: u64,
}

/// `struct msginfo`: the `IPC_INFO`/`MSG_INFO` answer of `msgctl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Msginfo {
    /// `msgpool`.
    pub msgpool: i32,
    /// `msgmap`.
    pub msgmap: i32,
    /// `msgmax`: largest message.
    pub msgmax: i32,
    /// `msgmnb`: default queue capacity in bytes.
    pub msgmnb: i32,
    /// `msgmni`: most queues.
    pub msgmni: i32,
    /// `msgssz`.
    pub msgssz: i32,
    /// `msgtql`.
    pub msgtql: i32,
    /// `msgseg`.
    pub msgseg: u16,
    /// Padding.
    pub pad: u16,
}

/// `struct mq_attr`: a POSIX message queue's attributes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MqAttr {
    /// `mq_flags`: 0 or O_NONBLOCK.
    pub mq_flags: i64,
    /// `mq_maxmsg`: capacity in messages.
    pub mq_maxmsg: i64,
    /// `mq_msgsize`: largest message.
    pub mq_msgsize: i64,
    /// `mq_curmsgs`: messages queued.
    pub mq_curmsgs: i64,
    /// Reserved, reads 0.
    pub reserved: [i64; 4],
}
