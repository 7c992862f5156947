//! The operations a test performs and the replies a backend gives, as plain
//! serialisable data (the kernel backend ships them to its agent process).

use serde::{Deserialize, Serialize};

/// Who a test process is: real credentials the kernel backend takes with
/// `setgroups`/`setgid`/`setuid`, and the core backend models.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Effective (and real, saved) user id.
    pub uid: u32,
    /// Effective (and real, saved) group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Capabilities (numbers, e.g. 15 = CAP_IPC_OWNER) removed from the
    /// effective set. Only meaningful for uid 0: a non-root identity has none.
    pub drop_caps: Vec<u32>,
}

impl Identity {
    /// Root with the capabilities this machine gives root (read, never assumed).
    pub fn root() -> Identity {
        Identity { uid: 0, gid: 0, groups: vec![0], drop_caps: vec![] }
    }

    /// An unprivileged user with primary group `gid` and no supplementary groups.
    pub fn user(uid: u32, gid: u32) -> Identity {
        Identity { uid, gid, groups: vec![], drop_caps: vec![] }
    }

    /// This identity with supplementary groups.
    pub fn with_groups(mut self, groups: &[u32]) -> Identity {
        self.groups = groups.to_vec();
        self
    }

    /// This identity without the given capabilities.
    pub fn without_caps(mut self, caps: &[u32]) -> Identity {
        self.drop_caps.extend_from_slice(caps);
        self
    }
}

/// Capability numbers used by the tests (`linux/capability.h`).
pub mod cap {
    /// `CAP_IPC_LOCK`.
    pub const IPC_LOCK: u32 = 14;
    /// `CAP_IPC_OWNER`.
    pub const IPC_OWNER: u32 = 15;
    /// `CAP_SYS_ADMIN`.
    pub const SYS_ADMIN: u32 = 21;
    /// `CAP_SYS_RESOURCE`.
    pub const SYS_RESOURCE: u32 = 24;
}

/// What a `*ctl` call passes as its `buf` argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CtlBuf {
    /// `NULL`.
    Null,
    /// A valid, zeroed output buffer large enough for any answer; the reply's
    /// [`Data`] holds what the call wrote there, decoded according to `cmd`.
    Out,
    /// An `IPC_SET` input buffer with these fields (everything else zero).
    Set {
        /// `perm.uid`.
        uid: u32,
        /// `perm.gid`.
        gid: u32,
        /// `perm.mode`.
        mode: u32,
    },
    /// A pointer to unmapped memory (to provoke `EFAULT`).
    Fault,
}

/// One operation, performed by one process of the test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `shmget(key, size, flags)`.
    ShmGet {
        /// Key.
        key: i32,
        /// Size in bytes.
        size: u64,
        /// Flags (IPC_CREAT, IPC_EXCL, mode, SHM_HUGETLB…).
        flags: i32,
    },
    /// `shmat(id, addr, flags)`; the reply's `ret` is the address.
    ShmAt {
        /// Segment id.
        id: i32,
        /// Requested address (0 = NULL).
        addr: u64,
        /// Flags (SHM_RDONLY, SHM_RND, SHM_REMAP, SHM_EXEC).
        flags: i32,
    },
    /// `shmdt(addr)`.
    ShmDt {
        /// Address.
        addr: u64,
    },
    /// `shmctl(id, cmd, buf)`.
    ShmCtl {
        /// Segment id (or slot index for the *_STAT commands).
        id: i32,
        /// Command.
        cmd: i32,
        /// The buffer argument.
        buf: CtlBuf,
    },
    /// `munmap(addr, len)`.
    Munmap {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// `mprotect(addr, len, prot)` (`PROT_*` bits).
    Mprotect {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// `PROT_READ | PROT_WRITE | PROT_EXEC`.
        prot: i32,
    },
    /// Store `bytes` at `addr` (EFAULT if not writable there).
    Write {
        /// Address.
        addr: u64,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Load `len` bytes from `addr` (EFAULT if not readable there); reply
    /// data is [`Data::Bytes`].
    Read {
        /// Address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// Find `len` bytes of free address space (mapped nowhere) in this
    /// process; the reply's `ret` is its start. Used to pick explicit
    /// attach addresses.
    FindFree {
        /// Length.
        len: u64,
    },
    /// `fork()`: the reply's `ret` is the child's pid.
    Fork,
    /// `execve()` of a fresh image that keeps serving the test.
    Exec,
    /// `exit(0)`; returns once the process is gone.
    Exit,
    /// `kill(pid, SIGKILL)` by the harness; returns once the process is gone.
    Kill,
    /// `semget(key, nsems, flags)`; the reply's `ret` is the id.
    SemGet {
        /// Key.
        key: i32,
        /// Number of semaphores.
        nsems: i32,
        /// Flags (IPC_CREAT, IPC_EXCL, mode).
        flags: i32,
    },
    /// `semop(id, sops, nsops)` if `timeout` is `None`, else
    /// `semtimedop(id, sops, nsops, timeout)`. May sleep: see
    /// [`Backend::start`](crate::Backend::start).
    SemOp {
        /// Set id.
        id: i32,
        /// The operations (`nsops` is their number).
        sops: Vec<SemBuf>,
        /// `semtimedop`'s timeout.
        timeout: Option<Timeout>,
    },
    /// `semctl(id, semnum, cmd, arg)`.
    SemCtl {
        /// Set id (or slot index for SEM_STAT, SEM_STAT_ANY).
        id: i32,
        /// Semaphore index.
        semnum: i32,
        /// Command.
        cmd: i32,
        /// The fourth argument.
        arg: SemArg,
    },
    /// `kill(pid, SIGUSR1)` by the harness. Every process has a SIGUSR1
    /// handler installed without `SA_RESTART`, so a sleeping `semop`
    /// returns `EINTR`; an idle process is unaffected.
    Signal,
    /// `msgget(key, flags)`; the reply's `ret` is the id.
    MsgGet {
        /// Key.
        key: i32,
        /// Flags (IPC_CREAT, IPC_EXCL, mode).
        flags: i32,
    },
    /// `msgsnd(id, &{mtype, text}, text.len(), flags)`. May sleep: see
    /// [`Backend::start`](crate::Backend::start).
    MsgSnd {
        /// Queue id.
        id: i32,
        /// `mtype`.
        mtype: i64,
        /// The text.
        text: Vec<u8>,
        /// Flags (IPC_NOWAIT).
        flags: i32,
        /// `msgp` points to unmapped memory (`EFAULT`).
        fault: bool,
    },
    /// `msgrcv(id, buf, size, msgtyp, flags)`; the reply's `ret` is the
    /// text length, its data [`Data::Msg`]. May sleep.
    MsgRcv {
        /// Queue id.
        id: i32,
        /// `msgsz`: the buffer's text capacity.
        size: u64,
        /// `msgtyp`.
        msgtyp: i64,
        /// Flags (IPC_NOWAIT, MSG_NOERROR, MSG_EXCEPT, MSG_COPY).
        flags: i32,
        /// `msgp` points to unmapped memory (`EFAULT`, after the dequeue).
        fault: bool,
    },
    /// `msgctl(id, cmd, buf)`.
    MsgCtl {
        /// Queue id (or slot index for MSG_STAT, MSG_STAT_ANY).
        id: i32,
        /// Command.
        cmd: i32,
        /// The buffer argument.
        buf: MsgCtlBuf,
    },
    /// `mq_open(name, oflag, mode, attr)` as a C program calls it (glibc's
    /// `/` check included); `ret` is the descriptor (on the core backend,
    /// the open description's number).
    MqOpen {
        /// The name as given, with its leading `/`.
        name: Vec<u8>,
        /// `oflag`.
        oflag: i32,
        /// `mode`.
        mode: u32,
        /// `(mq_maxmsg, mq_msgsize)`, or a NULL `attr`.
        attr: Option<(i64, i64)>,
    },
    /// `mq_timedsend(mqd, text, len, prio, deadline)`; `mq_send` without a
    /// deadline. Never sleeps in a test (full queues are non-blocking or
    /// timed with a past deadline).
    MqSend {
        /// The descriptor.
        mqd: i64,
        /// The message.
        text: Vec<u8>,
        /// `msg_prio`.
        prio: u32,
        /// Absolute `CLOCK_REALTIME` `(tv_sec, tv_nsec)`, passed as is.
        deadline: Option<(i64, i64)>,
    },
    /// `mq_timedreceive(mqd, buf, len, &prio, deadline)`; data [`Data::MqMsg`].
    MqReceive {
        /// The descriptor.
        mqd: i64,
        /// `msg_len`.
        len: u64,
        /// As [`Op::MqSend`]'s.
        deadline: Option<(i64, i64)>,
    },
    /// `mq_setattr(mqd, &{new_flags}, &old)`, or `mq_getattr` for `None`;
    /// data [`Data::MqAttr`] (the old attributes).
    MqGetSetAttr {
        /// The descriptor.
        mqd: i64,
        /// `mq_flags` of the new attributes.
        new_flags: Option<i64>,
    },
    /// `mq_notify(mqd, sevp)`: `None` is NULL, else `(sigev_notify, sigev_signo)`.
    MqNotify {
        /// The descriptor.
        mqd: i64,
        /// The `struct sigevent`.
        how: Option<(i32, i32)>,
    },
    /// `mq_unlink(name)` (name with its leading `/`).
    MqUnlink {
        /// The name.
        name: Vec<u8>,
    },
    /// `mq_close(mqd)`.
    MqClose {
        /// The descriptor.
        mqd: i64,
    },
    /// `read(mqd, buf, 128)` of a descriptor not read before: the queue's
    /// status line (MQ-FS-3) as [`Data::Bytes`].
    MqRead {
        /// The descriptor.
        mqd: i64,
    },
}

/// The pattern of every POSIX message-queue [`Op`], for the backends'
/// dispatch (keeping their matches exhaustive).
macro_rules! mq_op {
    () => {
        Op::MqOpen { .. }
            | Op::MqSend { .. }
            | Op::MqReceive { .. }
            | Op::MqGetSetAttr { .. }
            | Op::MqNotify { .. }
            | Op::MqUnlink { .. }
            | Op::MqClose { .. }
            | Op::MqRead { .. }
    };
}
pub(crate) use mq_op;

/// What `msgctl` passes as its `buf` argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MsgCtlBuf {
    /// `NULL`.
    Null,
    /// A valid, zeroed output buffer; the reply's [`Data`] holds what the
    /// call wrote ([`Data::MsgDs`] or [`Data::Msginfo`]).
    Out,
    /// An `IPC_SET` input with these fields (everything else zero).
    Set {
        /// `msg_perm.uid`.
        uid: u32,
        /// `msg_perm.gid`.
        gid: u32,
        /// `msg_perm.mode`.
        mode: u32,
        /// `msg_qbytes`.
        qbytes: u64,
    },
    /// A pointer to unmapped memory (`EFAULT`).
    Fault,
}

/// One `struct sembuf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemBuf {
    /// `sem_num`.
    pub num: u16,
    /// `sem_op`.
    pub op: i16,
    /// `sem_flg` (IPC_NOWAIT, SEM_UNDO).
    pub flg: i16,
}

impl SemBuf {
    /// The ABI structure.
    pub fn to_abi(self) -> uipc_abi::Sembuf {
        uipc_abi::Sembuf { sem_num: self.num, sem_op: self.op, sem_flg: self.flg }
    }
}

/// `semtimedop`'s `timeout` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timeout {
    /// A `struct timespec` (relative), passed as is: out-of-range values
    /// are for provoking `EINVAL`.
    Val {
        /// `tv_sec`.
        sec: i64,
        /// `tv_nsec`.
        nsec: i64,
    },
    /// A pointer to unmapped memory (`EFAULT`).
    Fault,
}

/// What `semctl` passes as its fourth argument (`union semun`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SemArg {
    /// Nothing (0).
    None,
    /// `arg.val` (SETVAL).
    Val(i32),
    /// `arg.array` holding these values (SETALL).
    Array(Vec<u16>),
    /// A valid, zeroed output buffer large enough for any answer (GETALL's
    /// nsems values, `semid_ds`, `seminfo`); the reply's [`Data`] holds
    /// what the call wrote, decoded according to `cmd`.
    Out,
    /// `arg.buf`: an `IPC_SET` input with these fields (everything else zero).
    Set {
        /// `perm.uid`.
        uid: u32,
        /// `perm.gid`.
        gid: u32,
        /// `perm.mode`.
        mode: u32,
    },
    /// A pointer to unmapped memory (to provoke `EFAULT`).
    Fault,
}

/// Data returned beside the return value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Data {
    /// Nothing.
    None,
    /// A `struct shmid_ds` (IPC_STAT, SHM_STAT, SHM_STAT_ANY).
    ShmDs(ShmDsView),
    /// A `struct shminfo` (IPC_INFO).
    Shminfo(ShminfoView),
    /// A `struct shm_info` (SHM_INFO).
    ShmInfo(ShmInfoView),
    /// Bytes read.
    Bytes(Vec<u8>),
    /// A successful `shmat`: the length of the mapping it made (for naming
    /// addresses in transcripts; not compared).
    Attached {
        /// Bytes mapped (whole pages).
        len: u64,
    },
    /// A `struct semid_ds` (IPC_STAT, SEM_STAT, SEM_STAT_ANY).
    SemDs(SemDsView),
    /// A `struct seminfo` (IPC_INFO, SEM_INFO).
    Seminfo(uipc_abi::Seminfo),
    /// The values GETALL wrote (nsems of them).
    Values(Vec<u16>),
    /// A received message.
    Msg {
        /// `mtype`.
        mtype: i64,
        /// The text written.
        text: Vec<u8>,
    },
    /// A `struct msqid_ds` (IPC_STAT, MSG_STAT, MSG_STAT_ANY).
    MsgDs(MsgDsView),
    /// A `struct msginfo` (IPC_INFO, MSG_INFO).
    Msginfo(uipc_abi::Msginfo),
    /// A POSIX message received and its priority.
    MqMsg {
        /// The priority written to `*msg_prio`.
        prio: u32,
        /// The message.
        text: Vec<u8>,
    },
    /// The old `struct mq_attr` of `mq_getsetattr`.
    MqAttr {
        /// `mq_flags`.
        flags: i64,
        /// `mq_maxmsg`.
        maxmsg: i64,
        /// `mq_msgsize`.
        msgsize: i64,
        /// `mq_curmsgs`.
        curmsgs: i64,
    },
}

/// Every field of `struct msqid_ds`, raw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MsgDsView {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u32,
    pub seq: u16,
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
    pub cbytes: u64,
    pub qnum: u64,
    pub qbytes: u64,
    pub lspid: i32,
    pub lrpid: i32,
    /// Every byte the kernel calls unused or padding, OR-ed: must be 0 (ZERO-5).
    pub unused_or: u64,
}

impl MsgDsView {
    /// Decodes the ABI structure.
    pub fn from_abi(ds: &uipc_abi::Msqid64Ds) -> MsgDsView {
        let p = &ds.msg_perm;
        MsgDsView {
            key: p.key,
            uid: p.uid,
            gid: p.gid,
            cuid: p.cuid,
            cgid: p.cgid,
            mode: p.mode,
            seq: p.seq,
            stime: ds.msg_stime,
            rtime: ds.msg_rtime,
            ctime: ds.msg_ctime,
            cbytes: ds.msg_cbytes,
            qnum: ds.msg_qnum,
            qbytes: ds.msg_qbytes,
            lspid: ds.msg_lspid,
            lrpid: ds.msg_lrpid,
            unused_or: u64::from(p.pad2) | p.unused1 | p.unused2 | ds.unused4 | ds.unused5,
        }
    }

    /// The `IPC_SET` input that sets these fields.
    pub fn to_set(&self) -> MsgCtlBuf {
        MsgCtlBuf::Set { uid: self.uid, gid: self.gid, mode: self.mode, qbytes: self.qbytes }
    }
}

/// How a call that may sleep went (see [`Backend::start`](crate::Backend::start)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Started {
    /// It completed without sleeping (or before it could be seen asleep).
    Done(Reply),
    /// The process is asleep inside the call.
    Blocked,
}

/// A backend's answer to one [`Op`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The return value, or the positive errno.
    pub ret: Result<i64, i32>,
    /// Output data (only on success).
    pub data: Data,
}

impl Reply {
    /// A plain success.
    pub fn ok(v: i64) -> Reply {
        Reply { ret: Ok(v), data: Data::None }
    }
    /// A failure with errno `e`.
    pub fn err(e: i32) -> Reply {
        Reply { ret: Err(e), data: Data::None }
    }
}

/// Every field of `struct shmid_ds`, raw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ShmDsView {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u32,
    pub seq: u16,
    pub segsz: u64,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    pub cpid: i32,
    pub lpid: i32,
    pub nattch: u64,
    /// Every byte the kernel calls unused or padding, OR-ed: must be 0 (ZERO-5).
    pub unused_or: u64,
}

/// Every field of `struct shminfo` (IPC_INFO), raw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ShminfoView {
    pub shmmax: u64,
    pub shmmin: u64,
    pub shmmni: u64,
    pub shmseg: u64,
    pub shmall: u64,
    pub unused_or: u64,
}

/// Every field of `struct shm_info` (SHM_INFO), raw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ShmInfoView {
    pub used_ids: i32,
    pub shm_tot: u64,
    pub shm_rss: u64,
    pub shm_swp: u64,
    pub swap_attempts: u64,
    pub swap_successes: u64,
}

/// Every field of `struct semid_ds`, raw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SemDsView {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u32,
    pub seq: u16,
    pub otime: i64,
    pub ctime: i64,
    pub nsems: u64,
    /// Every byte the kernel calls unused or padding, OR-ed: must be 0 (ZERO-5).
    pub unused_or: u64,
}

impl SemDsView {
    /// Decodes the ABI structure.
    pub fn from_abi(ds: &uipc_abi::Semid64Ds) -> SemDsView {
        #[cfg(target_arch = "x86_64")]
        let time_pad = ds.unused1 | ds.unused2;
        #[cfg(not(target_arch = "x86_64"))]
        let time_pad = 0;
        SemDsView {
            key: ds.sem_perm.key,
            uid: ds.sem_perm.uid,
            gid: ds.sem_perm.gid,
            cuid: ds.sem_perm.cuid,
            cgid: ds.sem_perm.cgid,
            mode: ds.sem_perm.mode,
            seq: ds.sem_perm.seq,
            otime: ds.sem_otime,
            ctime: ds.sem_ctime,
            nsems: ds.sem_nsems,
            unused_or: u64::from(ds.sem_perm.pad2)
                | ds.sem_perm.unused1
                | ds.sem_perm.unused2
                | time_pad
                | ds.unused3
                | ds.unused4,
        }
    }
}

impl ShmDsView {
    /// Decodes the ABI structure.
    pub fn from_abi(ds: &uipc_abi::Shmid64Ds) -> ShmDsView {
        ShmDsView {
            key: ds.shm_perm.key,
            uid: ds.shm_perm.uid,
            gid: ds.shm_perm.gid,
            cuid: ds.shm_perm.cuid,
            cgid: ds.shm_perm.cgid,
            mode: ds.shm_perm.mode,
            seq: ds.shm_perm.seq,
            segsz: ds.shm_segsz,
            atime: ds.shm_atime,
            dtime: ds.shm_dtime,
            ctime: ds.shm_ctime,
            cpid: ds.shm_cpid,
            lpid: ds.shm_lpid,
            nattch: ds.shm_nattch,
            unused_or: u64::from(ds.shm_perm.pad2)
                | ds.shm_perm.unused1
                | ds.shm_perm.unused2
                | ds.unused4
                | ds.unused5,
        }
    }
}

impl ShminfoView {
    /// Decodes the ABI structure.
    pub fn from_abi(i: &uipc_abi::Shminfo64) -> ShminfoView {
        ShminfoView {
            shmmax: i.shmmax,
            shmmin: i.shmmin,
            shmmni: i.shmmni,
            shmseg: i.shmseg,
            shmall: i.shmall,
            unused_or: i.unused.iter().fold(0, |a, b| a | b),
        }
    }
}

impl ShmInfoView {
    /// Decodes the ABI structure.
    pub fn from_abi(i: &uipc_abi::ShmInfo) -> ShmInfoView {
        ShmInfoView {
            used_ids: i.used_ids,
            shm_tot: i.shm_tot,
            shm_rss: i.shm_rss,
            shm_swp: i.shm_swp,
            swap_attempts: i.swap_attempts,
            swap_successes: i.swap_successes,
        }
    }
}
