//! uipc's wire protocol between clients (the Rust client, the shim, the CLI)
//! and the daemon.
//!
//! One [`Request`] enum is the whole command surface; the daemon's dispatch
//! maps each request to one core call. Messages travel in frames:
//!
//! ```text
//! +----------------+--------------------------------------+
//! | length: u32 LE | payload: postcard(Request|Response)  |
//! +----------------+--------------------------------------+
//! ```
//!
//! The length counts payload bytes and is at most [`MAX_FRAME`]. Descriptors
//! (segment memory) travel beside a frame as `SCM_RIGHTS` on the same
//! `sendmsg`. The first request on a connection is [`Request::Hello`] with
//! the protocol [`VERSION`]. Decoding never panics and never allocates more
//! than the frame holds: anything malformed is a [`ProtoError`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use uipc_abi::{Msginfo, Msqid64Ds, Semid64Ds, Seminfo, ShmInfo, Shmid64Ds, Shminfo64};

/// The protocol version: bumped on any incompatible change.
pub const VERSION: u16 = 2;

/// The largest payload a frame may carry: room for the largest requests
/// Linux's default limits allow (a `SETALL` of SEMMSL = 32000 values, at
/// most 3 bytes each) many times over, and for a `semop` of over 100,000
/// operations (at most 9 bytes each). A peer's length prefix above it is
/// refused before anything is allocated.
pub const MAX_FRAME: usize = 1024 * 1024;

/// Bytes of the length prefix.
pub const HEADER: usize = 4;

/// Longest namespace name.
pub const MAX_NAME: usize = 255;

/// What a client asks. Every variant names the system call it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Opens the session: protocol version and the namespace to join
    /// (created on first use).
    Hello {
        /// [`VERSION`] of the client.
        version: u16,
        /// Namespace name (1..=255 bytes, no `/`, no NUL).
        namespace: String,
    },
    /// `shmget(key, size, flags)`.
    ShmGet {
        /// Key.
        key: i32,
        /// Size.
        size: u64,
        /// Flags.
        flags: i32,
    },
    /// The first half of `shmat(id, addr, flags)`: every check; the reply
    /// is [`Response::Attach`] with the segment's descriptor.
    ShmAt {
        /// Segment id.
        id: i32,
        /// Requested address (0 = anywhere).
        addr: u64,
        /// Flags.
        flags: i32,
    },
    /// The second half of `shmat`: the client mapped the memory at `addr`,
    /// or failed to with `errno`.
    ShmAtDone {
        /// The [`Response::Attach`] token.
        token: u64,
        /// `Ok(address)` or `Err(errno)` of the client's mmap.
        result: Result<u64, i32>,
    },
    /// `shmdt(addr)`: the reply lists the ranges to unmap.
    ShmDt {
        /// Address.
        addr: u64,
    },
    /// The client unmapped `[addr, addr+len)` (`munmap`).
    Munmap {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// `shmctl(id, cmd, buf)`; `set` is the `IPC_SET` buffer.
    ShmCtl {
        /// Id or slot index.
        id: i32,
        /// Command.
        cmd: i32,
        /// For IPC_SET: uid, gid, mode.
        set: Option<PermSet>,
    },
    /// The caller forked `child`: its attachments are now the child's too.
    Forked {
        /// Pid of the child.
        child: u32,
    },
    /// The caller is about to `execve()`: its attachments go (a failed exec
    /// cannot restore them, as in Linux, where the old image is gone too).
    Exec,
    /// A barrier: the daemon first settles every process death it can
    /// observe (closing the dead processes' connections, which aborts their
    /// pending attaches), then answers [`Response::Value`] 0.
    Sync,
    /// `semget(key, nsems, flags)`.
    SemGet {
        /// Key.
        key: i32,
        /// Number of semaphores.
        nsems: i32,
        /// Flags.
        flags: i32,
    },
    /// `semtimedop(id, sops, nsops, timeout)` (`semop` without a timeout).
    /// If it must sleep, the answer comes when it finishes; meanwhile the
    /// connection accepts only [`Request::Cancel`].
    SemOp {
        /// Set id.
        id: i32,
        /// `nsops` as the caller passed it.
        nsops: u32,
        /// The operations `(sem_num, sem_op, sem_flg)`; `None` if the
        /// caller's array could not be read (EFAULT in the kernel's order).
        sops: Option<Vec<(u16, i16, i16)>>,
        /// `(tv_sec, tv_nsec)` of a relative timeout.
        timeout: Option<(i64, i64)>,
    },
    /// The caller of a sleeping [`Request::SemOp`] was interrupted by a
    /// signal: the daemon answers that SemOp (with `EINTR` if it had not
    /// happened yet, else with its real result), then this request.
    Cancel,
    /// `semctl(id, semnum, cmd, arg)`.
    SemCtl {
        /// Id or slot index.
        id: i32,
        /// Semaphore number.
        semnum: i32,
        /// Command.
        cmd: i32,
        /// The argument.
        arg: SemCtlArg,
    },
    /// The pids of the processes asleep in this namespace (introspection).
    Waiters,
    /// Reads a namespace sysctl (`kernel.shmmni`).
    SysctlRead {
        /// Dotted name.
        name: String,
    },
    /// Writes a namespace sysctl.
    SysctlWrite {
        /// Dotted name.
        name: String,
        /// Value as written to `/proc/sys`.
        value: String,
    },
    /// Renders `/proc/sysvipc/<which>` of the namespace.
    ProcSysvipc {
        /// `shm` (later `sem`, `msg`).
        which: String,
    },
    /// Like [`Request::Hello`], but joins only a namespace that exists
    /// (`ENOENT` otherwise): what tools use to act inside a named namespace.
    Join {
        /// [`VERSION`] of the client.
        version: u16,
        /// Namespace name.
        namespace: String,
    },
    /// Creates a namespace owned by the caller (`EEXIST` if the name is
    /// taken). Answered with [`Response::Text`]: the namespace's name.
    /// Allowed before `Hello`.
    NsCreate {
        /// Name; ignored for an ephemeral namespace, which gets a fresh one.
        name: String,
        /// Permission bits (low 9), read like a directory's: `x` = may enter.
        mode: u32,
        /// Sysctls to write first, as `(dotted name, value)`, in order.
        sysctls: Vec<(String, String)>,
        /// Destroyed when every process that joined it (the creator
        /// included) has exited.
        ephemeral: bool,
    },
    /// The namespaces the caller may enter: [`Response::Namespaces`].
    /// Allowed before `Hello`.
    NsList,
    /// One namespace with its sysctls: [`Response::Namespace`].
    /// Allowed before `Hello`.
    NsShow {
        /// Name.
        name: String,
    },
    /// Removes a namespace and every object in it (owner or
    /// `CAP_SYS_ADMIN`). Allowed before `Hello`.
    NsRemove {
        /// Name.
        name: String,
    },
    /// The caller called `unshare(CLONE_SYSVSEM)` (`newipc` false) or
    /// `unshare(CLONE_NEWIPC)` (`newipc` true): in the connection's
    /// namespace its undo records are applied, and on leaving it the
    /// segments it created are orphaned (`ksys_unshare()`). The client
    /// then joins its new namespace on a new connection.
    Unshare {
        /// `CLONE_NEWIPC`: the namespace is being left.
        newipc: bool,
    },
    /// The client changed the protection of `[addr, addr+len)` itself
    /// (`mprotect` succeeded), so System V mappings in the range split as
    /// Linux splits them.
    Mprotect {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// `PROT_READ | PROT_WRITE | PROT_EXEC` bits.
        prot: u32,
    },
    /// The caller's credentials changed (`setuid`, `setgroups`, `capset`…):
    /// the daemon reads those of thread `tid` of the connected process anew
    /// from the kernel (`/proc/PID/task/TID/status`; Linux credentials are
    /// per thread) for this connection's later calls, as Linux checks the
    /// current ones. `ESRCH` if `tid` is not a thread of that process.
    Recheck {
        /// The calling thread (`gettid()`).
        tid: u32,
    },
    /// `msgget(key, flags)`.
    MsgGet {
        /// Key.
        key: i32,
        /// Flags.
        flags: i32,
    },
    /// `msgsnd(id, msgp, msgsz, flags)`. If it must sleep, the answer comes
    /// when it finishes; meanwhile the connection accepts only
    /// [`Request::Cancel`].
    MsgSnd {
        /// Queue id.
        id: i32,
        /// `msgp->mtype`, `None` if the caller's buffer could not be read.
        mtype: Option<i64>,
        /// `msgsz` as the caller passed it (a `long`).
        msgsz: i64,
        /// The `msgsz` bytes of `msgp->mtext`, `None` if unreadable.
        text: Option<Vec<u8>>,
        /// Flags.
        flags: i32,
    },
    /// `msgrcv(id, msgp, msgsz, msgtyp, flags)`: answered with
    /// [`Response::Msg`]; may sleep as [`Request::MsgSnd`].
    MsgRcv {
        /// Queue id.
        id: i32,
        /// `msgsz` as the caller passed it (a `long`).
        msgsz: i64,
        /// `msgtyp`.
        msgtyp: i64,
        /// Flags.
        flags: i32,
        /// Whether the caller's buffer is readable (`MSG_COPY` reads it first).
        readable: bool,
    },
    /// `msgctl(id, cmd, buf)`; `set` is the `IPC_SET` buffer (`None`:
    /// absent or unreadable).
    MsgCtl {
        /// Id or slot index.
        id: i32,
        /// Command.
        cmd: i32,
        /// For IPC_SET: uid, gid, mode, qbytes.
        set: Option<MsgSetArg>,
    },
    /// `shm_open(name, oflag, mode)` with the caller's `umask`: answered
    /// with [`Response::Fd`] and a new open file description of the object.
    PshmOpen {
        /// The name as the caller passed it (glibc's rules apply).
        name: Vec<u8>,
        /// `open(2)` flags.
        oflag: i32,
        /// Mode of a new object.
        mode: u32,
        /// The caller's umask.
        umask: u32,
    },
    /// `sem_open(name, oflag, mode, value)` with the caller's `umask`: the
    /// object `sem.NAME` (a new one already holds its `sem_t`), answered
    /// with [`Response::Fd`] and a read-write descriptor to map.
    SemOpen {
        /// The name as the caller passed it.
        name: Vec<u8>,
        /// `O_CREAT`, `O_EXCL`.
        oflag: i32,
        /// Mode of a new semaphore.
        mode: u32,
        /// The caller's umask.
        umask: u32,
        /// Initial value of a new semaphore.
        value: u32,
    },
    /// `shm_unlink(name)`, or `sem_unlink(name)` with `sem`.
    PshmUnlink {
        /// The name as the caller passed it.
        name: Vec<u8>,
        /// A semaphore's name (object `sem.NAME`).
        sem: bool,
    },
    /// The POSIX shared memory objects of the namespace (named semaphores
    /// included): [`Response::PshmObjects`].
    PshmList,
    /// `mq_open(name, oflag, mode, attr)` (the kernel's name, without
    /// glibc's `/`): answered by [`Response::MqOpened`] with the queue's
    /// descriptor beside it — a new open description of the queue's pipe,
    /// whose readiness is the queue's (readable iff it holds a message,
    /// writable iff it is not full: `uipc_sys::mqfd`) and whose
    /// `O_NONBLOCK` is the description's.
    MqOpen {
        /// The name.
        name: Vec<u8>,
        /// `oflag`.
        oflag: i32,
        /// `mode` (used when creating).
        mode: u32,
        /// `(mq_maxmsg, mq_msgsize)` when `attr` is not NULL.
        attr: Option<(i64, i64)>,
    },
    /// `close()` of one descriptor of open description `handle`.
    MqClose {
        /// The description.
        handle: u64,
    },
    /// `dup()` (or `fork()`'s copy, or `dup2`…) made one more descriptor
    /// of `handle` in the caller.
    MqDup {
        /// The description.
        handle: u64,
    },
    /// `mq_unlink(name)`.
    MqUnlink {
        /// The name (without glibc's `/`).
        name: Vec<u8>,
    },
    /// `mq_timedsend(handle, msg, len, prio, abs_timeout)`: may sleep
    /// (no answer until it finishes; only [`Request::Cancel`] may follow).
    MqSend {
        /// The description.
        handle: u64,
        /// The message.
        msg: Vec<u8>,
        /// Its priority.
        prio: u32,
        /// Absolute `CLOCK_REALTIME` deadline `(tv_sec, tv_nsec)`.
        deadline: Option<(i64, i64)>,
    },
    /// `mq_timedreceive(handle, buf, len, prio, abs_timeout)`: answered by
    /// [`Response::Msg`] (the priority as its `mtype`); may sleep as
    /// [`Request::MqSend`].
    MqReceive {
        /// The description.
        handle: u64,
        /// The caller's buffer length.
        len: u64,
        /// Absolute `CLOCK_REALTIME` deadline.
        deadline: Option<(i64, i64)>,
    },
    /// `mq_notify(handle, sevp)`: `None` for NULL, else `(sigev_notify,
    /// sigev_signo, sigev_value)`. For `SIGEV_THREAD` the answer carries a
    /// pipe's read end: one byte `F` when the notification fires, end of
    /// file when the registration goes without firing.
    MqNotify {
        /// The description.
        handle: u64,
        /// The sigevent.
        how: Option<(i32, i32, u64)>,
    },
    /// `mq_getsetattr(handle, new, old)`: `new`'s `mq_flags` when not NULL.
    MqGetSetAttr {
        /// The description.
        handle: u64,
        /// New `mq_flags`.
        new_flags: Option<i64>,
    },
    /// `read()` of a queue's descriptor: its status line (MQ-FS-3).
    MqStatus {
        /// The description.
        handle: u64,
    },
    /// The queues of the connection's namespace (the mqueue filesystem's
    /// directory): answered by [`Response::MqList`].
    MqList,
    /// The first half of `setns(fd, CLONE_NEWIPC)`: the name of the
    /// namespace process `pid` is in ([`Response::Text`]); `EPERM` without
    /// `CAP_SYS_ADMIN`, `EINVAL` if the daemon knows no namespace of it.
    NsOf {
        /// The process the descriptor refers to.
        pid: u32,
    },
    /// The state page of semaphore set `id` (the data plane): answered by
    /// [`Response::SemGrant`] with the page's descriptor beside the frame,
    /// read-write with alter permission, read-only with read permission;
    /// `EACCES` with neither, `EINVAL` for no such set.
    SemGrant {
        /// The set.
        id: i32,
    },
    /// The state page of System V message queue `id` (the data plane):
    /// answered by [`Response::MsgGrant`] with the page's descriptor beside
    /// the frame, read-write, to a caller with write permission; `EACCES`
    /// without it, `EINVAL` for no such queue or one too big for a page.
    MsgGrant {
        /// The queue.
        id: i32,
    },
    /// `shmctl(id, cmd, buf)` for `IPC_STAT`, `SHM_STAT` or `SHM_STAT_ANY`,
    /// asking for a read grant on the segment (the data plane's "Queries
    /// of segments"): answered by [`Response::ShmStat`], with the
    /// namespace's status region (read-only) beside the frame if `region`.
    ShmStat {
        /// Id (`IPC_STAT`) or slot index (`SHM_STAT`, `SHM_STAT_ANY`).
        id: i32,
        /// The command.
        cmd: i32,
        /// Whether to send the status region's descriptor.
        region: bool,
    },
    /// `shmat(id, NULL, flags)` made in one step by a client that holds
    /// the segment's descriptor and has mapped it at `at` already: the
    /// daemon checks the attach as `ShmAt` does and records the mapping
    /// (`ShmAt` and `ShmAtDone` in one). Answered `Value(at)`, or the
    /// errno — then the client unmaps.
    ShmAttach {
        /// The segment.
        id: i32,
        /// `shmat`'s flags (no `SHM_REMAP`: no address is given).
        flags: i32,
        /// Where the client mapped the segment.
        at: u64,
    },
    /// The namespace's status region of one kind (the data plane's
    /// "Queries without a round trip"): answered [`Response::Fd`] with a
    /// read-only descriptor of the region beside the frame, made on first
    /// use. Nothing in it is secret: the `*_INFO` commands and the `/proc`
    /// views it serves check no permission.
    StatusRegion {
        /// Which mechanism's region.
        kind: StatusKind,
    },
    /// `semctl`/`msgctl` for `IPC_STAT` or `*_STAT`/`*_STAT_ANY`, asking
    /// for a read grant on the object (the data plane's "Queries without a
    /// round trip"): answered by [`Response::Stat`], with the namespace's
    /// status region of `kind` (read-only) beside the frame if `region`.
    Stat {
        /// Which mechanism (not [`StatusKind::Shm`]: see [`Request::ShmStat`]).
        kind: StatusKind,
        /// Id (`IPC_STAT`) or slot index (`*_STAT`, `*_STAT_ANY`).
        id: i32,
        /// The command.
        cmd: i32,
        /// Whether to send the status region's descriptor.
        region: bool,
    },
    /// The state page of the POSIX message queue of description `handle`
    /// (the data plane): answered by [`Response::MqGrant`] with the page's
    /// descriptor, read-write, beside the frame, to a process holding a
    /// description of the queue opened for writing; `EACCES` without one,
    /// `EBADF` for a description the caller does not hold, `EFBIG` for a
    /// queue too big for a page.
    MqGrant {
        /// The description.
        handle: u64,
    },
    /// `shmget(key, size, flags)` as [`Request::ShmGet`], from a client
    /// that attaches in its own address space: a creating call is
    /// answered [`Response::ShmGranted`] (the memory, then the segment's
    /// attach page, beside the frame), any other `Value(id)`.
    ShmGetGrant {
        /// The key.
        key: i32,
        /// The size.
        size: u64,
        /// `shmget`'s flags.
        flags: i32,
    },
    /// [`Request::ShmAttach`], answered [`Response::ShmGranted`] with the
    /// segment's attach page beside the frame when the daemon grants one
    /// (else `Value(at)`).
    ShmAttachGrant {
        /// The segment.
        id: i32,
        /// `shmat`'s flags (no `SHM_REMAP`).
        flags: i32,
        /// Where the client mapped the segment.
        at: u64,
    },
    /// Attachments this process made in its own address space (counted in
    /// its slot of each segment's attach page) become mappings the
    /// daemon records, before a call that acts on mappings (`munmap`,
    /// `mprotect`, `fork`, a fixed-address `shmat`, a `shmdt` the daemon
    /// must make): `(id, address, shmat's flags)` each. Answered
    /// `Value(n)`, how many were recorded.
    ShmRecord {
        /// The attachments.
        attaches: Vec<(i32, u64, i32)>,
    },
    /// Names the request that follows on this connection, one that must
    /// not be applied twice ([`Request::may_resend`] is false): `client`
    /// is the process's number for itself (random, new in a forked
    /// child), `seq` counts its requests. The daemon records the answer
    /// with the request's effect, in the same journal record; the same
    /// tag sent again (its daemon died before the answer came, and was
    /// restarted) gets that answer without a second application
    /// (`docs/architecture.md`, "Calls in flight"). No answer of its own.
    Once {
        /// The client's number.
        client: u64,
        /// The request's number.
        seq: u64,
    },
}

impl Request {
    /// The request a replayed answer is served by when the first answer
    /// carried descriptors, which a recorded answer cannot carry
    /// ([`Request::Once`]): an open that created (`O_CREAT`, `O_EXCL`,
    /// `O_TRUNC`) opens what it made, without creating or truncating.
    /// `None` for requests whose descriptors are not needed again.
    pub fn reopening(&self) -> Option<Request> {
        use uipc_abi::pshm::{O_CREAT, O_EXCL, O_TRUNC};
        let strip = |oflag: &i32| oflag & !(O_CREAT | O_EXCL | O_TRUNC);
        let mut again = self.clone();
        match &mut again {
            Request::PshmOpen { oflag, .. } | Request::SemOpen { oflag, .. } | Request::MqOpen { oflag, .. } => {
                *oflag = strip(oflag);
                Some(again)
            }
            _ => None,
        }
    }

    /// The request to send again `elapsed` after it was first sent: a
    /// `semtimedop`'s relative timeout less the time gone (at least 0:
    /// the daemon then answers at once); any other as it is.
    pub fn sent_again_after(&self, elapsed: std::time::Duration) -> Request {
        let mut again = self.clone();
        if let Request::SemOp { timeout: Some((sec, nsec)), .. } = &mut again {
            let gone = i128::try_from(elapsed.as_nanos()).unwrap_or(i128::MAX);
            let left = (i128::from(*sec) * 1_000_000_000 + i128::from(*nsec)).saturating_sub(gone).max(0);
            *sec = i64::try_from(left / 1_000_000_000).unwrap_or(i64::MAX);
            *nsec = i64::try_from(left % 1_000_000_000).unwrap_or(0);
        }
        again
    }

    /// Whether the request goes tagged ([`Request::Once`]): one that must
    /// not be applied twice, and is not part of the protocol itself.
    pub fn wants_once(&self) -> bool {
        !self.may_resend() && !matches!(self, Request::Cancel | Request::Once { .. })
    }

    /// Whether the request may be sent again when the answer to it never
    /// came (its daemon died: `docs/architecture.md`, "Surviving the
    /// daemon's own crash"): applying it twice gives what applying it once
    /// gives — a query, a lookup or a creation that finds what the first
    /// made (`*get` of a key without `IPC_EXCL`, `shm_open` without
    /// `O_EXCL` or `O_TRUNC`), a grant, the first half of a two-step attach
    /// (a restarted daemon releases holds nobody reported), a sysctl write.
    pub fn may_resend(&self) -> bool {
        use uipc_abi::pshm::{O_EXCL, O_TRUNC};
        use uipc_abi::{
            GETALL, GETNCNT, GETPID, GETVAL, GETZCNT, IPC_EXCL, IPC_INFO, IPC_STAT, MSG_INFO, MSG_STAT, MSG_STAT_ANY,
            SEM_INFO, SEM_STAT, SEM_STAT_ANY, SHM_INFO, SHM_STAT, SHM_STAT_ANY,
        };
        let finds = |key: i32, flags: i32| key != 0 && flags & IPC_EXCL == 0;
        match self {
            Request::Hello { .. }
            | Request::Join { .. }
            | Request::Recheck { .. }
            | Request::Sync
            | Request::Waiters
            | Request::SysctlRead { .. }
            | Request::SysctlWrite { .. }
            | Request::ProcSysvipc { .. }
            | Request::NsList
            | Request::NsShow { .. }
            | Request::NsOf { .. }
            | Request::PshmList
            | Request::MqList
            | Request::StatusRegion { .. }
            | Request::Stat { .. }
            | Request::ShmStat { .. }
            | Request::SemGrant { .. }
            | Request::MsgGrant { .. }
            | Request::ShmAt { .. } => true,
            Request::ShmGet { key, flags, .. }
            | Request::SemGet { key, flags, .. }
            | Request::MsgGet { key, flags } => finds(*key, *flags),
            Request::PshmOpen { oflag, .. } | Request::SemOpen { oflag, .. } => oflag & (O_EXCL | O_TRUNC) == 0,
            Request::ShmCtl { cmd, .. } => {
                [IPC_STAT, IPC_INFO, SHM_STAT, SHM_INFO, SHM_STAT_ANY].contains(&(cmd & 0xff))
            }
            Request::MsgCtl { cmd, .. } => {
                [IPC_STAT, IPC_INFO, MSG_STAT, MSG_INFO, MSG_STAT_ANY].contains(&(cmd & 0xff))
            }
            Request::SemCtl { cmd, .. } => {
                [IPC_STAT, IPC_INFO, SEM_STAT, SEM_INFO, SEM_STAT_ANY, GETPID, GETVAL, GETALL, GETNCNT, GETZCNT]
                    .contains(&(cmd & 0xff))
            }
            _ => false,
        }
    }
}

/// Which mechanism's status region ([`Request::StatusRegion`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusKind {
    /// System V shared memory segments.
    Shm,
    /// System V semaphore sets.
    Sem,
    /// System V message queues.
    Msg,
}

/// The status a [`Response::Stat`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatOut {
    /// A semaphore set's `semid64_ds`.
    Sem(Semid64Ds),
    /// A message queue's `msqid64_ds`.
    Msg(Msqid64Ds),
}

/// The `IPC_SET` fields of a `msqid_ds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgSetArg {
    /// `msg_perm`'s uid, gid, mode.
    pub perm: PermSet,
    /// `msg_qbytes`.
    pub qbytes: u64,
}

/// What a `msgctl` leaves in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MsgOut {
    /// Nothing.
    None,
    /// `struct msqid_ds`.
    MsgDs(Msqid64Ds),
    /// `struct msginfo`.
    Msginfo(Msginfo),
}

/// One POSIX shared memory object as [`Request::PshmList`] reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PshmInfo {
    /// Its name in the directory (`sem.N` for semaphore `N`).
    pub name: Vec<u8>,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Mode (`07777` bits).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// Last modification and status change times (seconds).
    pub mtime: i64,
    /// Status change time (seconds).
    pub ctime: i64,
}

/// What [`Request::NsList`] and [`Request::NsShow`] tell about a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsInfo {
    /// Name.
    pub name: String,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Ends with the last process that joined it.
    pub ephemeral: bool,
    /// Processes that joined it and are alive.
    pub processes: u32,
    /// Shared memory segments.
    pub shm: u32,
    /// Bytes in all segments.
    pub shm_bytes: u64,
    /// Semaphore sets.
    pub sem: u32,
    /// Message queues.
    pub msg: u32,
    /// The sysctls (only from [`Request::NsShow`]).
    pub sysctls: Vec<(String, String)>,
}

/// The `IPC_SET` fields of an `ipc64_perm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermSet {
    /// New owner.
    pub uid: u32,
    /// New group.
    pub gid: u32,
    /// New mode.
    pub mode: u32,
}

/// The `arg` of `semctl`, as the caller could read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SemCtlArg {
    /// No argument (or one the command ignores).
    None,
    /// `arg.val`.
    Val(i32),
    /// `arg.array` (SETALL), or `None` if it could not be read.
    Array(Option<Vec<u16>>),
    /// `arg.buf` for IPC_SET.
    Set(PermSet),
}

/// What a `semctl` leaves in the caller's buffer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SemOut {
    /// Nothing.
    None,
    /// `struct semid_ds`.
    SemDs(Semid64Ds),
    /// `struct seminfo`.
    Seminfo(Seminfo),
    /// GETALL's values.
    Values(Vec<u16>),
}

/// What a `shmctl` leaves in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CtlOut {
    /// Nothing.
    None,
    /// `struct shmid_ds`.
    ShmDs(Shmid64Ds),
    /// `struct shminfo` (IPC_INFO).
    Shminfo(Shminfo64),
    /// `struct shm_info` (SHM_INFO).
    ShmInfo(ShmInfo),
}

/// The daemon's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The session is open.
    Welcome {
        /// The daemon's [`VERSION`].
        version: u16,
    },
    /// A call's return value.
    Value(i64),
    /// A call's failure: a Linux errno.
    Error(i32),
    /// A granted attach: map the descriptor sent with this frame, then
    /// answer with [`Request::ShmAtDone`].
    Attach {
        /// Names this pending attach.
        token: u64,
        /// Bytes to map (the mapping covers whole pages).
        size: u64,
        /// The fixed address, if any (after SHM_RND).
        addr: Option<u64>,
        /// Map writable.
        write: bool,
        /// Map executable.
        exec: bool,
        /// Replace what is mapped at `addr` (SHM_REMAP).
        remap: bool,
    },
    /// `shmdt` succeeded: unmap these `(start, end)` ranges.
    Unmap(Vec<(u64, u64)>),
    /// `shmctl`'s value and output.
    Ctl {
        /// Return value.
        ret: i64,
        /// What to copy out.
        out: CtlOut,
    },
    /// Text (sysctl values, `/proc/sysvipc` files).
    Text(String),
    /// `semctl`'s value and output.
    SemCtl {
        /// Return value.
        ret: i64,
        /// What to copy out.
        out: SemOut,
    },
    /// Process ids.
    Pids(Vec<u32>),
    /// Namespaces ([`Request::NsList`]).
    Namespaces(Vec<NsInfo>),
    /// One namespace ([`Request::NsShow`]).
    Namespace(NsInfo),
    /// A received message (`msgrcv`'s and `mq_receive`'s return value is
    /// `data.len()`; for a POSIX queue `mtype` is the priority).
    Msg {
        /// `mtype`.
        mtype: i64,
        /// The text, already cut to the caller's size.
        data: Vec<u8>,
    },
    /// `msgctl`'s value and output.
    MsgCtl {
        /// Return value.
        ret: i64,
        /// What to copy out.
        out: MsgOut,
    },
    /// A descriptor travels with this frame ([`Request::PshmOpen`],
    /// [`Request::SemOpen`]).
    Fd,
    /// [`Request::PshmList`]'s objects, in name order.
    PshmObjects(Vec<PshmInfo>),
    /// `mq_open` succeeded: the description's handle (the descriptor
    /// travels beside the frame).
    MqOpened {
        /// Names the open description in later requests.
        handle: u64,
    },
    /// `mq_getsetattr`'s old attributes.
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
    /// The queues of a namespace ([`Request::MqList`]).
    MqList(Vec<MqInfo>),
    /// [`Request::SemGrant`]: what the page's holder may do (the page's
    /// descriptor travels beside the frame).
    SemGrant {
        /// Alter permission: the page is writable.
        alter: bool,
        /// Read permission.
        read: bool,
        /// The set's permission version the grant holds for.
        perm_version: u32,
        /// The holder's undo slot in the page, if one was free.
        slot: Option<u32>,
    },
    /// [`Request::MsgGrant`]: what the page's holder may do (the page's
    /// descriptor, read-write, travels beside the frame).
    MsgGrant {
        /// Read permission too: `msgrcv` in the caller.
        receive: bool,
        /// The queue's permission version the grant holds for.
        perm_version: u32,
    },
    /// [`Request::ShmStat`]: the call's value (0, or the full id for the
    /// `*_STAT` commands), the status, and the segment's permission
    /// version the caller's read grant holds for.
    ShmStat {
        /// What `shmctl` returns.
        ret: i64,
        /// What it copies out.
        ds: Shmid64Ds,
        /// The permission version (`uipc_sys::shm_status`).
        perm_version: u32,
    },
    /// [`Request::Stat`]: the call's value (0, or the full id for the
    /// `*_STAT` commands), the object's permission version (the caller's
    /// read grant) and its status.
    Stat {
        /// What the call returns.
        ret: i64,
        /// The object's permission version.
        perm_version: u32,
        /// What to copy out.
        out: StatOut,
    },
    /// [`Request::MqGrant`]: what the description lets its holder do on
    /// the page (`mq_open`'s access mode).
    MqGrant {
        /// `FMODE_READ`: `mq_receive`.
        read: bool,
        /// `FMODE_WRITE`: `mq_send`.
        write: bool,
        /// The page's permission version the grant holds for.
        perm_version: u32,
    },
    /// A segment's attach page granted ([`Request::ShmGetGrant`],
    /// [`Request::ShmAttachGrant`]): its descriptor travels beside the
    /// frame (after the memory's, for a creating `shmget`).
    ShmGranted {
        /// What the call returns (the id, or the address).
        value: i64,
        /// The segment's permission version the grant holds for.
        perm_version: u32,
        /// The holder's slot in the page.
        slot: u32,
        /// Which `shmat` accesses passed the permission check: bit 0
        /// read-only, 1 read-write, 2 read-only and execute, 3 read-write
        /// and execute.
        access: u32,
    },
}

/// One queue as the mqueue filesystem's directory shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqInfo {
    /// Name (without `/`).
    pub name: Vec<u8>,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Mode.
    pub mode: u32,
    /// `mq_maxmsg`.
    pub maxmsg: i64,
    /// `mq_msgsize`.
    pub msgsize: i64,
    /// `mq_curmsgs`.
    pub curmsgs: i64,
    /// Bytes queued.
    pub qsize: u64,
    /// Modification time.
    pub mtime: i64,
}

/// Why bytes are not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// The length prefix exceeds [`MAX_FRAME`].
    TooLarge(usize),
    /// The payload does not decode as the expected message, or has
    /// bytes left over.
    Malformed,
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::TooLarge(n) => write!(f, "frame of {n} bytes exceeds the {MAX_FRAME}-byte limit"),
            ProtoError::Malformed => f.write_str("malformed frame"),
        }
    }
}

impl std::error::Error for ProtoError {}

/// Encodes a message as one frame.
///
/// # Errors
/// [`ProtoError::TooLarge`] if the payload exceeds [`MAX_FRAME`];
/// [`ProtoError::Malformed`] if it cannot be serialised.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    let payload = postcard::to_allocvec(msg).map_err(|_| ProtoError::Malformed)?;
    if payload.len() > MAX_FRAME {
        return Err(ProtoError::TooLarge(payload.len()));
    }
    let len = u32::try_from(payload.len()).map_err(|_| ProtoError::TooLarge(payload.len()))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes the first frame of `buf`: `Ok(None)` if `buf` does not yet hold
/// a whole frame, else the message and the bytes it used.
///
/// # Errors
/// [`ProtoError::TooLarge`] as soon as the length prefix is read;
/// [`ProtoError::Malformed`] for a payload that is not exactly one message.
pub fn decode<T: for<'de> Deserialize<'de>>(buf: &[u8]) -> Result<Option<(T, usize)>, ProtoError> {
    let Some(header) = buf.get(..HEADER) else {
        return Ok(None);
    };
    let mut len = [0u8; HEADER];
    len.copy_from_slice(header);
    let len = usize::try_from(u32::from_le_bytes(len)).map_err(|_| ProtoError::Malformed)?;
    if len > MAX_FRAME {
        return Err(ProtoError::TooLarge(len));
    }
    let Some(payload) = buf.get(HEADER..HEADER + len) else {
        return Ok(None);
    };
    let (msg, rest) = postcard::take_from_bytes::<T>(payload).map_err(|_| ProtoError::Malformed)?;
    if !rest.is_empty() {
        return Err(ProtoError::Malformed);
    }
    Ok(Some((msg, HEADER + len)))
}

/// The socket a daemon listens on and a client connects to when none is
/// given: `$UIPC_SOCKET`, else `$XDG_RUNTIME_DIR/uipc/uipc.sock`, else
/// `/run/uipc/uipc.sock`.
pub fn default_socket_path() -> std::path::PathBuf {
    use std::path::{Path, PathBuf};
    if let Some(p) = std::env::var_os("UIPC_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Path::new(&dir).join("uipc").join("uipc.sock");
    }
    PathBuf::from("/run/uipc/uipc.sock")
}

/// Whether `name` is an acceptable namespace name.
pub fn valid_namespace(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && !name.contains(['/', '\0']) && name != "." && name != ".."
}

#[cfg(test)]
mod resend_tests {
    use super::Request;
    use uipc_abi::{IPC_CREAT, IPC_EXCL, IPC_RMID, IPC_STAT};

    #[test]
    fn only_requests_that_applying_twice_cannot_change_may_be_resent() {
        assert!(Request::ShmGet { key: 7, size: 4096, flags: IPC_CREAT | 0o600 }.may_resend());
        assert!(
            !Request::ShmGet { key: 0, size: 4096, flags: IPC_CREAT | 0o600 }.may_resend(),
            "IPC_PRIVATE makes another"
        );
        assert!(!Request::MsgGet { key: 7, flags: IPC_CREAT | IPC_EXCL }.may_resend(), "the second is EEXIST");
        assert!(Request::ShmCtl { id: 1, cmd: IPC_STAT, set: None }.may_resend());
        assert!(!Request::ShmCtl { id: 1, cmd: IPC_RMID, set: None }.may_resend());
        assert!(!Request::SemOp { id: 1, nsops: 1, sops: None, timeout: None }.may_resend());
        assert!(!Request::Forked { child: 2 }.may_resend(), "the child's mappings would count twice");
    }

    #[test]
    fn changes_go_tagged_and_protocol_requests_do_not() {
        assert!(Request::SemOp { id: 1, nsops: 1, sops: None, timeout: None }.wants_once());
        assert!(Request::ShmCtl { id: 1, cmd: IPC_RMID, set: None }.wants_once());
        assert!(!Request::ShmCtl { id: 1, cmd: IPC_STAT, set: None }.wants_once());
        assert!(!Request::Cancel.wants_once() && !Request::Once { client: 1, seq: 1 }.wants_once());
    }

    #[test]
    fn a_timed_semop_sent_again_keeps_its_deadline() {
        let op = |timeout| Request::SemOp { id: 1, nsops: 1, sops: None, timeout };
        let later = std::time::Duration::from_millis(1500);
        assert_eq!(op(Some((2, 100))).sent_again_after(later), op(Some((0, 500_000_100))));
        assert_eq!(op(Some((1, 0))).sent_again_after(later), op(Some((0, 0))), "past: answered at once");
        assert_eq!(op(None).sent_again_after(later), op(None));
    }

    #[test]
    fn a_creating_open_is_replayed_as_an_open() {
        use uipc_abi::pshm::{O_CREAT, O_EXCL, O_RDWR, O_TRUNC};
        let open = |oflag| Request::PshmOpen { name: b"/x".to_vec(), oflag, mode: 0o600, umask: 0 };
        assert_eq!(open(O_RDWR | O_CREAT | O_EXCL | O_TRUNC).reopening(), Some(open(O_RDWR)));
        assert_eq!(Request::SemOp { id: 1, nsops: 1, sops: None, timeout: None }.reopening(), None);
    }
}
