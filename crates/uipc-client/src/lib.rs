//! The Rust client of the uipc daemon: System V shared memory through safe,
//! typed handles.
//!
//! ```no_run
//! use uipc_client::Client;
//! # fn main() -> Result<(), uipc_client::Errno> {
//! let client = Client::connect()?;                          // $UIPC_SOCKET, namespace "default"
//! let id = client.shmget(0x1234, 4096, 0o1600)?;            // IPC_CREAT | 0600
//! let mut seg = client.attach(id, 0)?;                      // shmat(id, NULL, 0)
//! seg[..5].copy_from_slice(b"hello");
//! println!("nattch = {}", client.shm_stat(id)?.shm_nattch);
//! drop(seg);                                                // shmdt
//! client.shm_remove(id)?;                                   // shmctl(IPC_RMID)
//! # Ok(()) }
//! ```
//!
//! Every call returns `Result<T, Errno>` with the errno Linux returns for
//! the same call (convertible to `std::io::Error`). Credentials are never
//! sent: the daemon reads them from the kernel.
//!
//! # Processes
//! A client belongs to the process that connected. After `fork()`, call
//! [`Client::forked`] in the parent with the child's pid (so the child's
//! inherited mappings count, as in the kernel); the child's first call opens
//! a connection of its own. Before `execve()`, call [`Client::exec`].
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod admin;
mod conn;
mod creds;
mod grants;
mod liveness;
mod mapping;
mod mq;
mod mq_fast;
mod msg_fast;
mod msg_query;
mod posix;
mod sem_fast;
mod sem_query;
mod shm_fast;
mod status;

pub use mq::{MqAttrs, MqHandle};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use admin::{Admin, NsInfo};
pub use creds::{credentials_changed, CredScope};
pub use mapping::{Mapping, MappingMut, NamedSemaphore};
pub use uipc_abi::{Errno, Msginfo, Msqid64Ds, Sembuf, Semid64Ds, Seminfo, ShmInfo, Shmid64Ds, Shminfo64};
use uipc_proto::{CtlOut, PermSet, Request, Response};
pub use uipc_proto::{MsgOut, MsgSetArg, SemCtlArg, SemOut};

use crate::conn::Conn;

/// A System V shared memory id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ShmId(pub i32);

/// A System V semaphore set id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SemId(pub i32);

/// A System V message queue id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MsgId(pub i32);

/// A message `msgrcv` returned: its type and text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// `mtype`.
    pub mtype: i64,
    /// The text (cut to the buffer size under `MSG_NOERROR`).
    pub data: Vec<u8>,
}

/// A connection to a daemon, joined to one namespace. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    conn: Arc<Mutex<Conn>>,
    /// Connections for calls that may sleep (semop): each sleeper has one
    /// of its own, so other threads of the process can still call (and post).
    spare: Arc<Mutex<Vec<Conn>>>,
    /// Advanced by [`reconnect`](Self::reconnect): a sleeper's connection
    /// made before it may be joined elsewhere and is not reused.
    generation: Arc<AtomicU64>,
    /// Grants of semaphore sets' state pages (the data plane).
    sem: Arc<sem_fast::SemGrants>,
    /// Message queues' state pages granted to this process.
    msg: Arc<msg_fast::MsgGrants>,
    /// POSIX message queues' state pages granted to this process, by
    /// description (the `mq_fast` module).
    mq_fast: Arc<mq_fast::MqGrants>,
    /// Segment queries without a round trip (the `shm_fast` module).
    shm_fast: Arc<Derived<shm_fast::ShmFast>>,
    /// Semaphore set queries without a round trip (the `sem_query` module).
    sem_queries: Arc<sem_query::SemQueries>,
    /// Message queue queries without a round trip (the `msg_query` module).
    msg_queries: Arc<msg_query::MsgQueries>,
    /// How many times the main connection had been opened anew (after the
    /// daemon went away) when this client last looked: what the client
    /// derived from the old daemon (status regions) is dropped when it moves.
    seen_reopen: Arc<AtomicU64>,
}

pub use uipc_proto::default_socket_path;

/// How many requests this process has sent to daemons (every request,
/// `Hello` and `Recheck` included; never reset, also not in a forked
/// child, which counts on from its parent's figure). What tests use to
/// tell that a call was answered without a round trip.
pub fn requests_sent() -> u64 {
    conn::REQUESTS_SENT.load(Ordering::Relaxed)
}

/// How long a call of this process waits, when its daemon went away, for a
/// daemon to answer on the socket again (default 5 s; a daemon restarted
/// on its state directory knows the process, its mappings, undo records
/// and namespace): the call that finds the daemon gone before its request
/// left reconnects and goes on. `Duration::ZERO`: fail at once.
pub fn set_reconnect_wait(wait: std::time::Duration) {
    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
    conn::RECONNECT_WAIT_MS.store(ms, Ordering::Relaxed);
}

fn unexpected(r: &Response) -> Errno {
    // A daemon speaking another dialect: treat as an I/O failure.
    let _ = r;
    Errno::EIO
}

impl Client {
    /// Connects to the default socket and joins the namespace
    /// `$UIPC_NAMESPACE` (default `default`).
    ///
    /// # Errors
    /// `ENOENT`/`ECONNREFUSED`-style errnos when no daemon answers;
    /// `EPROTO` on a version mismatch.
    pub fn connect() -> Result<Client, Errno> {
        let ns = std::env::var("UIPC_NAMESPACE").unwrap_or_else(|_| "default".into());
        Client::connect_to(&default_socket_path(), &ns)
    }

    /// Connects to `socket` and joins `namespace`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect); `EINVAL` for a bad namespace name.
    pub fn connect_to(socket: &Path, namespace: &str) -> Result<Client, Errno> {
        Ok(Client {
            // A socket nobody answers on (a daemon that died and is being
            // restarted) is waited for; a missing one fails at once.
            conn: Arc::new(Mutex::new(Conn::open_again(socket, namespace)?)),
            spare: Arc::new(Mutex::new(Vec::new())),
            generation: Arc::new(AtomicU64::new(0)),
            sem: Arc::default(),
            msg: Arc::default(),
            mq_fast: Arc::default(),
            shm_fast: Arc::default(),
            sem_queries: Arc::default(),
            msg_queries: Arc::default(),
            seen_reopen: Arc::default(),
        })
    }

    fn call(&self, req: &Request) -> Result<Response, Errno> {
        self.call_with_fd(req).map(|(r, _)| r)
    }

    /// [`call`](Self::call) for a response that may carry one descriptor.
    fn call_with_fd(&self, req: &Request) -> Result<(Response, Option<std::os::fd::OwnedFd>), Errno> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let answer = conn.call(req, 1);
        let reopened = conn.reopened;
        drop(conn);
        self.settle_reopen(reopened);
        let (resp, fds) = answer?;
        match resp {
            Response::Error(e) => Err(Errno::from_raw(e)),
            r => Ok((r, fds.into_iter().next())),
        }
    }

    fn call_value(&self, req: &Request) -> Result<i64, Errno> {
        match self.call(req)? {
            Response::Value(v) => Ok(v),
            r => Err(unexpected(&r)),
        }
    }

    /// `shmget(key, size, flags)` — gets or creates a System V shared memory segment.
    ///
    /// # Errors
    /// shmget(2)'s: `ENOENT`, `EEXIST`, `EINVAL`, `EACCES`, `ENOSPC`, `ENOMEM`, `EPERM`.
    pub fn shmget(&self, key: i32, size: u64, flags: i32) -> Result<ShmId, Errno> {
        let mut fast = self.shm_fast();
        let key_now = creds::CredKey::now();
        let (resp, mut fds) = {
            let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            conn.call(&Request::ShmGetGrant { key, size, flags }, 2)?
        };
        let (v, grant) = match resp {
            Response::Value(v) => (v, None),
            Response::ShmGranted { value, perm_version, slot, access } => (value, Some((perm_version, slot, access))),
            Response::Error(e) => return Err(Errno::from_raw(e)),
            r => return Err(unexpected(&r)),
        };
        let id = i32::try_from(v).map_err(|_| Errno::EIO)?;
        let page = if fds.len() > 1 { fds.pop() } else { None };
        if let Some(fd) = fds.pop() {
            // A segment this call created: its memory, read-write, for
            // the first attach (`mapping::attach_cached`), and its attach
            // page, for attaches with no round trip.
            fast.keep_fd(id, fd, true, size);
        }
        if let (Some(page), Some((perm_version, slot, access))) = (page, grant) {
            fast.keep_page(id, page, perm_version, slot, access, key_now);
        }
        Ok(ShmId(id))
    }

    /// `shmctl(id, cmd, buf)` with the raw command: the return value and
    /// what the kernel would copy out.
    ///
    /// # Errors
    /// shmctl(2)'s: `EINVAL`, `EACCES`, `EPERM`, `ENOMEM`, `EIDRM`.
    pub fn shmctl(&self, id: i32, cmd: i32, set: Option<(u32, u32, u32)>) -> Result<(i64, CtlOut), Errno> {
        if shm_fast::is_stat(cmd) {
            return self.shm_stat_cmd(id, cmd).map(|(ret, ds)| (ret, CtlOut::ShmDs(ds)));
        }
        if cmd == uipc_abi::IPC_INFO {
            let mut fast = self.shm_fast();
            if fast.wants_region() {
                // One round trip, as the call itself would cost; later
                // calls read the region.
                let fd = match self.call_with_fd(&Request::StatusRegion { kind: uipc_proto::StatusKind::Shm }) {
                    Ok((Response::Fd, fd)) => fd,
                    _ => None,
                };
                fast.set_region(fd);
            }
            if let Some((ret, info)) = fast.ipc_info(id) {
                return Ok((ret, CtlOut::Shminfo(info)));
            }
        }
        let set = set.map(|(uid, gid, mode)| PermSet { uid, gid, mode });
        let r = match self.call(&Request::ShmCtl { id, cmd, set })? {
            Response::Ctl { ret, out } => Ok((ret, out)),
            r => Err(unexpected(&r)),
        };
        if r.is_ok() && cmd == uipc_abi::IPC_RMID {
            // Its memory is not kept alive here for an attach that cannot come.
            let mut fast = self.shm_fast();
            fast.drop_fds_of(id);
            fast.drop_page(id);
        }
        r
    }

    /// `shmctl(id, cmd, &ds)` for `IPC_STAT`, `SHM_STAT`, `SHM_STAT_ANY`:
    /// from the namespace's status region when this process holds a
    /// current read grant, else from the daemon (which grants).
    fn shm_stat_cmd(&self, id: i32, cmd: i32) -> Result<(i64, Shmid64Ds), Errno> {
        let mut fast = self.shm_fast();
        if let Some(answer) = fast.stat(id, cmd) {
            return Ok(answer);
        }
        let region = fast.wants_region();
        // Taken before the call: a change of credentials meanwhile makes
        // the grant's key stale, never a grant too wide.
        let key = creds::CredKey::now();
        match self.call_with_fd(&Request::ShmStat { id, cmd, region })? {
            (Response::ShmStat { ret, ds, perm_version }, fd) => {
                fast.granted(id, cmd, ret, perm_version, key, fd);
                Ok((ret, ds))
            }
            (r, _) => Err(unexpected(&r)),
        }
    }

    /// `shmctl(id, IPC_STAT, &ds)` — the segment's status.
    ///
    /// # Errors
    /// `EINVAL` (no such id), `EACCES` (no read permission).
    pub fn shm_stat(&self, id: ShmId) -> Result<Shmid64Ds, Errno> {
        match self.shmctl(id.0, uipc_abi::IPC_STAT, None)? {
            (_, CtlOut::ShmDs(ds)) => Ok(ds),
            _ => Err(Errno::EIO),
        }
    }

    /// `shmctl(id, IPC_SET, &ds)` — sets owner, group and the low 9 mode bits.
    ///
    /// # Errors
    /// `EINVAL`, `EPERM` (not owner or creator, no CAP_SYS_ADMIN).
    pub fn shm_set(&self, id: ShmId, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
        self.shmctl(id.0, uipc_abi::IPC_SET, Some((uid, gid, mode))).map(drop)
    }

    /// `shmctl(id, IPC_RMID, NULL)` — removes the segment (at its last detach
    /// if attached).
    ///
    /// # Errors
    /// `EINVAL`, `EPERM`.
    pub fn shm_remove(&self, id: ShmId) -> Result<(), Errno> {
        self.shmctl(id.0, uipc_abi::IPC_RMID, None).map(drop)
    }

    /// `shmctl(0, IPC_INFO, &info)` — the namespace's limits, and the highest index in use.
    ///
    /// # Errors
    /// None in practice.
    pub fn shm_ipc_info(&self) -> Result<(i64, Shminfo64), Errno> {
        match self.shmctl(0, uipc_abi::IPC_INFO, None)? {
            (ret, CtlOut::Shminfo(i)) => Ok((ret, i)),
            _ => Err(Errno::EIO),
        }
    }

    /// `shmctl(0, SHM_INFO, &info)` — usage figures, and the highest index in use.
    ///
    /// # Errors
    /// None in practice.
    pub fn shm_info(&self) -> Result<(i64, ShmInfo), Errno> {
        match self.shmctl(0, uipc_abi::SHM_INFO, None)? {
            (ret, CtlOut::ShmInfo(i)) => Ok((ret, i)),
            _ => Err(Errno::EIO),
        }
    }

    /// `shmat(id, NULL, flags)` read-write — attaches the segment; the
    /// mapping detaches when dropped.
    ///
    /// # Errors
    /// shmat(2)'s: `EINVAL`, `EACCES`, `ENOMEM`; `EINVAL` if `flags` has
    /// `SHM_RDONLY` (use [`attach_read_only`](Self::attach_read_only)).
    pub fn attach(&self, id: ShmId, flags: i32) -> Result<MappingMut, Errno> {
        if flags & uipc_abi::SHM_RDONLY != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(MappingMut(self.attach_raw(id.0, 0, flags)?))
    }

    /// `shmat(id, NULL, SHM_RDONLY | flags)` — a read-only attach, backed
    /// by a read-only descriptor: it can never be made writable.
    ///
    /// # Errors
    /// As [`attach`](Self::attach).
    pub fn attach_read_only(&self, id: ShmId, flags: i32) -> Result<Mapping, Errno> {
        self.attach_raw(id.0, 0, flags | uipc_abi::SHM_RDONLY)
    }

    /// `shmat(id, addr, flags)` with any address and flags: the mapping as
    /// the kernel would make it (fixed addresses, `SHM_RND`, `SHM_REMAP`).
    ///
    /// # Errors
    /// shmat(2)'s.
    pub fn attach_raw(&self, id: i32, addr: u64, flags: i32) -> Result<Mapping, Errno> {
        let r = mapping::attach(self, id, addr, flags);
        self.settle_reopen(self.conn.lock().unwrap_or_else(|e| e.into_inner()).reopened);
        r
    }

    /// `shmat(id, addr, flags)` for callers that manage attachments by
    /// address, as C code does: returns the address and keeps no handle
    /// (detach with [`shmdt`](Self::shmdt)).
    ///
    /// # Errors
    /// shmat(2)'s.
    pub fn shmat(&self, id: i32, addr: u64, flags: i32) -> Result<u64, Errno> {
        self.attach_raw(id, addr, flags).map(Mapping::into_raw)
    }

    /// Tells the daemon that this process unmapped `[addr, addr + len)`
    /// itself (`munmap`), so System V attachments in the range are closed
    /// or split as Linux does (each split adds one to `nattch`).
    ///
    /// # Errors
    /// `EINVAL` for an unaligned address or a zero length (munmap(2)).
    pub fn unmapped(&self, addr: u64, len: u64) -> Result<(), Errno> {
        self.record_overlapping(addr, len);
        self.call_value(&Request::Munmap { addr, len }).map(drop)
    }

    /// Tells the daemon that this process changed the protection of
    /// `[addr, addr + len)` itself (`mprotect` with `prot`, the `PROT_*`
    /// bits, succeeded), so System V attachments in the range split as
    /// Linux splits them (each split adds one to `nattch`).
    ///
    /// # Errors
    /// `EINVAL` for an unaligned address or `prot` bits other than
    /// `PROT_READ`, `PROT_WRITE`, `PROT_EXEC`.
    pub fn protected(&self, addr: u64, len: u64, prot: u32) -> Result<(), Errno> {
        self.record_overlapping(addr, len);
        self.call_value(&Request::Mprotect { addr, len, prot }).map(drop)
    }

    /// `shmdt(addr)` of an attach made elsewhere (a [`Mapping`] detaches by
    /// itself): the ranges the daemon says were unmapped are unmapped here.
    ///
    /// # Errors
    /// `EINVAL` when nothing is attached at `addr`.
    pub fn shmdt(&self, addr: u64) -> Result<(), Errno> {
        let r = mapping::detach(self, addr);
        self.settle_reopen(self.conn.lock().unwrap_or_else(|e| e.into_inner()).reopened);
        r
    }

    /// Reports that this process forked `child`: the child's copies of this
    /// process's mappings are counted from now on (`nattch`, `lpid`).
    ///
    /// # Errors
    /// `EPERM` if `child` is not this process's child; `ESRCH` if it is gone.
    pub fn forked(&self, child: u32) -> Result<(), Errno> {
        // The child's copies of this process's own attachments count as
        // mappings: the daemon must know them before it copies them.
        let all = self.shm_fast().take_attaches(|_| true);
        mapping::record(self, all);
        self.call_value(&Request::Forked { child }).map(drop)
    }

    /// Reports that this process is about to `execve()`: its mappings are
    /// released as exec releases them.
    ///
    /// # Errors
    /// None in practice.
    pub fn exec(&self) -> Result<(), Errno> {
        self.call_value(&Request::Exec).map(drop)
    }

    /// Waits until the daemon has settled every process exit it can see.
    ///
    /// # Errors
    /// None in practice.
    pub fn sync(&self) -> Result<(), Errno> {
        self.call_value(&Request::Sync).map(drop)
    }

    /// Reads a namespace sysctl (`kernel.shmmni`).
    ///
    /// # Errors
    /// `ENOENT` for an unknown name.
    pub fn sysctl_read(&self, name: &str) -> Result<String, Errno> {
        match self.call(&Request::SysctlRead { name: name.into() })? {
            Response::Text(t) => Ok(t),
            r => Err(unexpected(&r)),
        }
    }

    /// Writes a namespace sysctl, as root of the namespace.
    ///
    /// # Errors
    /// `EACCES` (not root), `EINVAL` (bad value), `ENOENT`.
    pub fn sysctl_write(&self, name: &str, value: &str) -> Result<(), Errno> {
        self.sysctl_write_count(name, value).map(drop)
    }

    /// [`sysctl_write`](Self::sysctl_write), answering what `write(2)` of
    /// the `/proc/sys` file returns: the bytes of `value` consumed.
    ///
    /// # Errors
    /// As [`sysctl_write`](Self::sysctl_write).
    pub fn sysctl_write_count(&self, name: &str, value: &str) -> Result<usize, Errno> {
        let n = self.call_value(&Request::SysctlWrite { name: name.into(), value: value.into() })?;
        usize::try_from(n).map_err(|_| Errno::EIO)
    }

    /// The text of `/proc/sysvipc/<which>` for the namespace.
    ///
    /// # Errors
    /// `ENOENT` for an unknown file.
    pub fn proc_sysvipc(&self, which: &str) -> Result<String, Errno> {
        match self.call(&Request::ProcSysvipc { which: which.into() })? {
            Response::Text(t) => Ok(t),
            r => Err(unexpected(&r)),
        }
    }

    /// `semget(key, nsems, flags)` — gets or creates a System V semaphore set.
    ///
    /// # Errors
    /// semget(2)'s: `EINVAL`, `ENOENT`, `EEXIST`, `EACCES`, `ENOSPC`.
    pub fn semget(&self, key: i32, nsems: i32, flags: i32) -> Result<SemId, Errno> {
        let v = self.call_value(&Request::SemGet { key, nsems, flags })?;
        Ok(SemId(i32::try_from(v).map_err(|_| Errno::EIO)?))
    }

    /// `semop(id, sops)` — performs the operations atomically, sleeping
    /// until they can be (unless an op that would block has `IPC_NOWAIT`).
    ///
    /// # Errors
    /// semop(2)'s: `E2BIG`, `EINVAL`, `EFBIG`, `EACCES`, `ERANGE`, `EAGAIN`,
    /// `EIDRM` (removed while asleep), `EINTR` (a signal handler ran, and
    /// the operation did not happen).
    pub fn semop(&self, id: SemId, sops: &[Sembuf]) -> Result<(), Errno> {
        self.semop_raw(id.0, u32::try_from(sops.len()).unwrap_or(u32::MAX), Some(sops), None).map(drop)
    }

    /// `semtimedop(id, sops, timeout)` — [`semop`](Self::semop) that gives
    /// up after `timeout` with `EAGAIN`.
    ///
    /// # Errors
    /// As [`semop`](Self::semop).
    pub fn semtimedop(&self, id: SemId, sops: &[Sembuf], timeout: std::time::Duration) -> Result<(), Errno> {
        let t = (i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX), i64::from(timeout.subsec_nanos()));
        self.semop_raw(id.0, u32::try_from(sops.len()).unwrap_or(u32::MAX), Some(sops), Some(t)).map(drop)
    }

    /// `semtimedop` with raw arguments, as a C caller passes them: `nsops`
    /// as given, `sops` `None` if unreadable, `timeout` as `(tv_sec, tv_nsec)`.
    ///
    /// # Errors
    /// As [`semop`](Self::semop).
    pub fn semop_raw(
        &self,
        id: i32,
        nsops: u32,
        sops: Option<&[Sembuf]>,
        timeout: Option<(i64, i64)>,
    ) -> Result<i64, Errno> {
        if let Some(r) = sops.and_then(|s| self.semop_fast(id, s, timeout)) {
            return r.map(|()| 0);
        }
        let mut sleeper = self.sleeper()?;
        let r = sleeper.semop_raw(id, nsops, sops, timeout);
        self.give_back(sleeper);
        r
    }

    /// A connection of its own for a call that may sleep, taken from the
    /// pool (or opened). The caller may sleep on it without holding any
    /// lock of this client, then hands it back with
    /// [`give_back`](Self::give_back).
    ///
    /// # Errors
    /// As [`connect`](Self::connect), when a new connection must be opened.
    pub fn sleeper(&self) -> Result<Sleeper, Errno> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(c) = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(Sleeper { conn: c, healthy: true, generation });
        }
        let (socket, ns) = self.conn.lock().unwrap_or_else(|e| e.into_inner()).target();
        Ok(Sleeper { conn: Conn::open_again(&socket, &ns)?, healthy: true, generation })
    }

    /// Returns a [`Sleeper`] to the pool; one whose last call failed in
    /// transport, or that was opened before a [`reconnect`](Self::reconnect),
    /// is closed instead. (A pooled connection's credentials are brought up
    /// to date before its next call: see [`credentials_changed`].)
    pub fn give_back(&self, sleeper: Sleeper) {
        if sleeper.healthy && sleeper.generation == self.generation.load(Ordering::Acquire) {
            self.spare.lock().unwrap_or_else(|e| e.into_inner()).push(sleeper.conn);
        }
    }

    /// `semctl(id, semnum, cmd, arg)` with the raw command: the return
    /// value and what the kernel would copy out.
    ///
    /// # Errors
    /// semctl(2)'s: `EINVAL`, `EACCES`, `EPERM`, `ERANGE`, `EFAULT`.
    pub fn semctl(&self, id: i32, semnum: i32, cmd: i32, arg: SemCtlArg) -> Result<(i64, SemOut), Errno> {
        if let Some(r) = self.semctl_fast(id, semnum, cmd) {
            return r;
        }
        if let Some(r) = self.sem_query(id, cmd) {
            return r;
        }
        match self.call(&Request::SemCtl { id, semnum, cmd, arg })? {
            Response::SemCtl { ret, out } => Ok((ret, out)),
            r => Err(unexpected(&r)),
        }
    }

    /// `semctl(id, num, GETVAL)`.
    ///
    /// # Errors
    /// `EINVAL`, `EACCES`.
    pub fn sem_getval(&self, id: SemId, num: i32) -> Result<i32, Errno> {
        let (v, _) = self.semctl(id.0, num, uipc_abi::GETVAL, SemCtlArg::None)?;
        i32::try_from(v).map_err(|_| Errno::EIO)
    }

    /// `semctl(id, num, SETVAL, val)`.
    ///
    /// # Errors
    /// `ERANGE`, `EINVAL`, `EACCES`.
    pub fn sem_setval(&self, id: SemId, num: i32, val: i32) -> Result<(), Errno> {
        self.semctl(id.0, num, uipc_abi::SETVAL, SemCtlArg::Val(val)).map(drop)
    }

    /// `semctl(id, 0, IPC_STAT, &ds)`.
    ///
    /// # Errors
    /// `EINVAL`, `EACCES`.
    pub fn sem_stat(&self, id: SemId) -> Result<Semid64Ds, Errno> {
        match self.semctl(id.0, 0, uipc_abi::IPC_STAT, SemCtlArg::None)? {
            (_, SemOut::SemDs(ds)) => Ok(ds),
            _ => Err(Errno::EIO),
        }
    }

    /// `semctl(id, 0, IPC_RMID)` — removes the set; sleepers get `EIDRM`.
    ///
    /// # Errors
    /// `EINVAL`, `EPERM`.
    pub fn sem_remove(&self, id: SemId) -> Result<(), Errno> {
        self.semctl(id.0, 0, uipc_abi::IPC_RMID, SemCtlArg::None).map(drop)
    }

    /// `msgget(key, flags)` — gets or creates a System V message queue.
    ///
    /// # Errors
    /// msgget(2)'s: `ENOENT`, `EEXIST`, `EACCES`, `ENOSPC`.
    pub fn msgget(&self, key: i32, flags: i32) -> Result<MsgId, Errno> {
        let v = self.call_value(&Request::MsgGet { key, flags })?;
        Ok(MsgId(i32::try_from(v).map_err(|_| Errno::EIO)?))
    }

    /// `msgsnd(id, msgp, len, flags)` — sends a message of type `mtype`,
    /// sleeping while the queue is full (unless `IPC_NOWAIT`).
    ///
    /// # Errors
    /// msgop(2)'s: `EINVAL`, `EACCES`, `EAGAIN`, `EIDRM` (removed while
    /// asleep), `EINTR` (a signal handler ran and the message was not sent).
    pub fn msgsnd(&self, id: MsgId, mtype: i64, text: &[u8], flags: i32) -> Result<(), Errno> {
        let len = i64::try_from(text.len()).map_err(|_| Errno::EINVAL)?;
        self.msgsnd_raw(id.0, Some(mtype), len, Some(text), flags).map(drop)
    }

    /// `msgsnd` with raw arguments, as a C caller passes them: `mtype`
    /// `None` if unreadable, `msgsz` as given, `text` `None` if unreadable.
    ///
    /// # Errors
    /// As [`msgsnd`](Self::msgsnd); `EFAULT`.
    pub fn msgsnd_raw(
        &self,
        id: i32,
        mtype: Option<i64>,
        msgsz: i64,
        text: Option<&[u8]>,
        flags: i32,
    ) -> Result<i64, Errno> {
        if let (Some(t), Some(d)) = (mtype, text) {
            if i64::try_from(d.len()).ok() == Some(msgsz) {
                if let Some(r) = self.msgsnd_fast(id, t, d, flags) {
                    return r.map(|()| 0);
                }
            }
        }
        if flags & uipc_abi::IPC_NOWAIT != 0 {
            let req = Request::MsgSnd { id, mtype, msgsz, text: text.map(<[u8]>::to_vec), flags };
            return self.call_value(&req);
        }
        let mut sleeper = self.sleeper()?;
        let r = sleeper.msgsnd_raw(id, mtype, msgsz, text, flags);
        self.give_back(sleeper);
        r
    }

    /// `msgrcv(id, msgp, size, msgtyp, flags)` — receives a message
    /// (`msgtyp` and the flags select as msgrcv(2) says), sleeping until
    /// one comes (unless `IPC_NOWAIT`).
    ///
    /// # Errors
    /// msgop(2)'s: `EINVAL`, `EACCES`, `E2BIG` (the message stays queued),
    /// `ENOMSG`, `EIDRM`, `EINTR` (a signal handler ran and nothing was
    /// received).
    pub fn msgrcv(&self, id: MsgId, size: usize, msgtyp: i64, flags: i32) -> Result<Message, Errno> {
        let size = i64::try_from(size).map_err(|_| Errno::EINVAL)?;
        self.msgrcv_raw(id.0, size, msgtyp, flags, true)
    }

    /// `msgrcv` with raw arguments: `msgsz` as the caller passed it,
    /// `readable` whether its buffer can be read (`MSG_COPY` reads it).
    ///
    /// # Errors
    /// As [`msgrcv`](Self::msgrcv); `EFAULT`.
    pub fn msgrcv_raw(&self, id: i32, msgsz: i64, msgtyp: i64, flags: i32, readable: bool) -> Result<Message, Errno> {
        if readable {
            if let Some(r) = self.msgrcv_fast(id, msgsz, msgtyp, flags) {
                return r;
            }
        }
        if flags & uipc_abi::IPC_NOWAIT != 0 {
            return match self.call(&Request::MsgRcv { id, msgsz, msgtyp, flags, readable })? {
                Response::Msg { mtype, data } => Ok(Message { mtype, data }),
                r => Err(unexpected(&r)),
            };
        }
        let mut sleeper = self.sleeper()?;
        let r = sleeper.msgrcv_raw(id, msgsz, msgtyp, flags, readable);
        self.give_back(sleeper);
        r
    }

    /// `msgctl(id, cmd, buf)` with the raw command: the return value and
    /// what the kernel would copy out; `set` is `IPC_SET`'s input.
    ///
    /// # Errors
    /// msgctl(2)'s: `EINVAL`, `EACCES`, `EPERM`, `EFAULT` (`IPC_SET` without `set`).
    pub fn msgctl(&self, id: i32, cmd: i32, set: Option<MsgSetArg>) -> Result<(i64, MsgOut), Errno> {
        if set.is_none() {
            if let Some(r) = self.msg_query(id, cmd) {
                return r;
            }
        }
        match self.call(&Request::MsgCtl { id, cmd, set })? {
            Response::MsgCtl { ret, out } => Ok((ret, out)),
            r => Err(unexpected(&r)),
        }
    }

    /// `msgctl(id, IPC_STAT, &ds)`.
    ///
    /// # Errors
    /// `EINVAL`, `EACCES`.
    pub fn msg_stat(&self, id: MsgId) -> Result<Msqid64Ds, Errno> {
        match self.msgctl(id.0, uipc_abi::IPC_STAT, None)? {
            (_, MsgOut::MsgDs(ds)) => Ok(ds),
            _ => Err(Errno::EIO),
        }
    }

    /// `msgctl(id, IPC_RMID)` — removes the queue; sleepers get `EIDRM`.
    ///
    /// # Errors
    /// `EINVAL`, `EPERM`.
    pub fn msg_remove(&self, id: MsgId) -> Result<(), Errno> {
        self.msgctl(id.0, uipc_abi::IPC_RMID, None).map(drop)
    }

    /// The pids of the processes asleep in this namespace.
    ///
    /// # Errors
    /// None in practice.
    pub fn waiters(&self) -> Result<Vec<u32>, Errno> {
        match self.call(&Request::Waiters)? {
            Response::Pids(p) => Ok(p),
            r => Err(unexpected(&r)),
        }
    }

    /// Replaces this process's connection (and drops its spare ones) with
    /// a fresh one to the same daemon and namespace, so that the daemon
    /// takes this process's credentials anew: call it after `setuid`,
    /// `setgroups`, `capset`… (Linux checks the caller's current ids at
    /// every call; the daemon reads them when a connection is made), and in
    /// a forked child that is to have a connection of its own.
    ///
    /// The new connection is opened before the old one is closed, so the
    /// process never has none (the daemon treats a process's last close as
    /// `exec`). Attachments and undo records belong to the process, not to
    /// a connection: nothing is lost.
    ///
    /// # Errors
    /// As [`connect_to`](Self::connect_to); the old connection stays on
    /// failure.
    pub fn reconnect(&self) -> Result<(), Errno> {
        self.reconnect_to(None)
    }

    /// Tells the daemon this process's credentials changed (after `setuid`,
    /// `setgroups`…: [`credentials_changed`] for the whole process), and
    /// has it read them anew on this client's main connection at once; any
    /// other connection of the process (pooled sleepers, other clients)
    /// does so before its next call. Linux checks the caller's current ids
    /// at every call. Unlike [`reconnect`](Self::reconnect) it needs no new
    /// connection.
    ///
    /// # Errors
    /// Transport errors; `ESRCH` if the daemon cannot read them.
    pub fn recheck(&self) -> Result<(), Errno> {
        credentials_changed(CredScope::Process);
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).prepare()
    }

    /// Has the daemon record this process's own attachments that overlap
    /// `[addr, addr + len)` as mappings (before a `munmap` or `mprotect`
    /// report it must apply to them).
    fn record_overlapping(&self, addr: u64, len: u64) {
        let end = addr.saturating_add(len.div_ceil(uipc_abi::PAGE_SIZE) * uipc_abi::PAGE_SIZE);
        let mut fast = self.shm_fast();
        let hit = fast.take_attaches(|a| a.addr < end && addr < a.addr.saturating_add(a.len));
        drop(fast);
        mapping::record(self, hit);
    }

    /// [`reconnect`](Self::reconnect), joining namespace `to` if given.
    fn reconnect_to(&self, to: Option<&str>) -> Result<(), Errno> {
        // This process's own attachments stay counted in the namespace
        // they were made in: recorded there as mappings first.
        let all = self.shm_fast().take_attaches(|_| true);
        mapping::record(self, all);
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let (socket, ns) = conn.target();
        let fresh = Conn::open(&socket, to.unwrap_or(&ns))?;
        let old = std::mem::replace(&mut *conn, fresh);
        drop(conn);
        self.drop_derived();
        drop(old);
        Ok(())
    }

    /// Drops what this client derived from its connection's daemon (status
    /// regions and read grants, kept segment descriptors' region, pooled
    /// connections) after it moved to another connection. Called without
    /// the connection's lock (the order is shm_fast, then conn).
    ///
    /// The segment fast path's state and the status caches are reset at
    /// their next lock ([`Derived`]), not here: their callers hold them
    /// across calls that may reconnect (`shmctl(IPC_STAT)` asking the
    /// daemon for a grant), and locking them here deadlocked such a caller
    /// on itself after a daemon restart (PostgreSQL's backends in
    /// `dsm_attach`).
    fn drop_derived(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// After a call on the main connection, which had then been opened
    /// `reopened` times anew (the daemon went away, and the call
    /// reconnected: `docs/architecture.md`, "Surviving the daemon's own
    /// crash"): if that moved, what came from the old daemon is dropped.
    /// Called without the connection's lock.
    pub(crate) fn settle_reopen(&self, reopened: u64) {
        if self.seen_reopen.swap(reopened, Ordering::AcqRel) != reopened {
            self.drop_derived();
        }
    }

    /// `unshare(2)`'s System V half for this process, as `ksys_unshare()`
    /// does it. `CLONE_SYSVSEM` (`newipc` false): the process's semaphore
    /// undo records are applied and dropped, as at exit. `CLONE_NEWIPC`
    /// (`newipc` true): a fresh ephemeral namespace is made (it ends with
    /// the last process in it, like the kernel's), the undo records are
    /// applied and the segments the process created orphaned in the
    /// namespace it leaves, and this client joins the new one. Mappings
    /// made before stay valid and keep counting in their segments'
    /// `nattch`. Returns the new namespace's name.
    ///
    /// Linux needs `CAP_SYS_ADMIN` for `CLONE_NEWIPC`; uipc lets anyone
    /// (see `docs/deviations.md`).
    ///
    /// # Errors
    /// Transport errors; `EIDRM` if the current namespace was removed.
    pub fn unshare(&self, newipc: bool) -> Result<Option<String>, Errno> {
        if !newipc {
            return self.call_value(&Request::Unshare { newipc }).map(|_| None);
        }
        // As the kernel: the new namespace first (the step that can fail),
        // then the old one is let go.
        let name = self.ns_ephemeral()?;
        self.call_value(&Request::Unshare { newipc })?;
        self.reconnect_to(Some(&name))?;
        Ok(Some(name))
    }

    /// Makes a fresh ephemeral namespace (mode 0700, owned by this
    /// process's effective ids; it ends with the last process in it, this
    /// one included) and returns its name; this client stays where it is
    /// (see [`join`](Self::join)).
    ///
    /// # Errors
    /// Transport errors.
    pub fn ns_ephemeral(&self) -> Result<String, Errno> {
        let create = Request::NsCreate { name: String::new(), mode: 0o700, sysctls: Vec::new(), ephemeral: true };
        match self.call(&create)? {
            Response::Text(name) => Ok(name),
            r => Err(unexpected(&r)),
        }
    }

    /// [`reconnect`](Self::reconnect) into namespace `namespace`: this
    /// process's later calls are served there.
    ///
    /// # Errors
    /// As [`connect_to`](Self::connect_to); the old connection stays on
    /// failure.
    pub fn join(&self, namespace: &str) -> Result<(), Errno> {
        self.reconnect_to(Some(namespace))
    }

    /// A new, separate client of this process on the same daemon, joined
    /// to `namespace` (a thread's namespace of its own, after
    /// `unshare(CLONE_NEWIPC)` in a multi-threaded process).
    ///
    /// # Errors
    /// As [`connect_to`](Self::connect_to).
    pub fn sibling(&self, namespace: &str) -> Result<Client, Errno> {
        let (socket, _) = self.conn.lock().unwrap_or_else(|e| e.into_inner()).target();
        Client::connect_to(&socket, namespace)
    }

    /// The name of the namespace process `pid` is in, for
    /// `setns(fd, CLONE_NEWIPC)` (needs `CAP_SYS_ADMIN`, as Linux's).
    ///
    /// # Errors
    /// `EPERM` without `CAP_SYS_ADMIN`; `EINVAL` if the daemon knows no
    /// namespace of `pid`.
    pub fn namespace_of(&self, pid: u32) -> Result<String, Errno> {
        match self.call(&Request::NsOf { pid })? {
            Response::Text(name) => Ok(name),
            r => Err(unexpected(&r)),
        }
    }

    /// The namespace this client is joined to.
    pub fn namespace(&self) -> String {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).target().1
    }

    pub(crate) fn conn(&self) -> &Arc<Mutex<Conn>> {
        &self.conn
    }

    /// The fast-path state, locked (before [`conn`](Self::conn), never
    /// after).
    pub(crate) fn shm_fast(&self) -> DerivedGuard<'_, shm_fast::ShmFast> {
        self.shm_fast.lock(&self.generation)
    }

    /// The client's generation counter (advanced whenever its connection
    /// moves to another daemon or namespace).
    pub(crate) fn generation(&self) -> &AtomicU64 {
        &self.generation
    }
}

/// State a client derived from the daemon of its connection (status
/// regions and read grants, segment descriptors and attach pages): valid
/// only for the generation it was made in. Locking it after the
/// connection moved (the client's generation advanced) resets it first.
#[derive(Debug, Default)]
pub(crate) struct Derived<T> {
    /// The generation the state belongs to, and the state.
    state: Mutex<(u64, T)>,
}

/// What [`Derived`] does to its state when the generation moves on.
pub(crate) trait Reset {
    /// Forgets everything that came from the old daemon.
    fn reset(&mut self);
}

impl Reset for shm_fast::ShmFast {
    fn reset(&mut self) {
        shm_fast::ShmFast::reset(self);
    }
}

impl<L: uipc_sys::status_region::Layout> Reset for status::StatusCache<L>
where
    status::StatusCache<L>: Default,
{
    fn reset(&mut self) {
        *self = status::StatusCache::default();
    }
}

impl<T: Reset> Derived<T> {
    /// Locks the state, reset first if `generation` has moved since.
    pub(crate) fn lock(&self, generation: &AtomicU64) -> DerivedGuard<'_, T> {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = generation.load(Ordering::Acquire);
        if g.0 != now {
            g.1.reset();
            g.0 = now;
        }
        DerivedGuard(g)
    }
}

/// A locked [`Derived`] state.
pub(crate) struct DerivedGuard<'a, T>(std::sync::MutexGuard<'a, (u64, T)>);

impl<T> std::ops::Deref for DerivedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0 .1
    }
}

impl<T> std::ops::DerefMut for DerivedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0 .1
    }
}

/// A connection reserved for one sleeping call at a time (see
/// [`Client::sleeper`]); holds no lock of the client.
#[derive(Debug)]
pub struct Sleeper {
    conn: Conn,
    /// False once a call failed in transport: the connection's state is
    /// unknown, so it is not reused.
    healthy: bool,
    /// The client's generation when it was taken (see `Client::generation`).
    generation: u64,
}

impl Sleeper {
    /// `semtimedop` with raw arguments, as [`Client::semop_raw`]; a handler
    /// that interrupts the wait makes it `EINTR` unless the operation
    /// already happened (the daemon decides, after a `Cancel`).
    ///
    /// # Errors
    /// As [`Client::semop`].
    pub fn semop_raw(
        &mut self,
        id: i32,
        nsops: u32,
        sops: Option<&[Sembuf]>,
        timeout: Option<(i64, i64)>,
    ) -> Result<i64, Errno> {
        let sops = sops.map(|s| s.iter().map(|b| (b.sem_num, b.sem_op, b.sem_flg)).collect());
        let req = Request::SemOp { id, nsops, sops, timeout };
        match self.call_sleeping(&req)? {
            Response::Value(v) => Ok(v),
            r => Err(unexpected(&r)),
        }
    }

    /// `msgsnd` with raw arguments, as [`Client::msgsnd_raw`], sleeping on
    /// this connection; interrupted as [`semop_raw`](Self::semop_raw).
    ///
    /// # Errors
    /// As [`Client::msgsnd`].
    pub fn msgsnd_raw(
        &mut self,
        id: i32,
        mtype: Option<i64>,
        msgsz: i64,
        text: Option<&[u8]>,
        flags: i32,
    ) -> Result<i64, Errno> {
        let req = Request::MsgSnd { id, mtype, msgsz, text: text.map(<[u8]>::to_vec), flags };
        match self.call_sleeping(&req)? {
            Response::Value(v) => Ok(v),
            r => Err(unexpected(&r)),
        }
    }

    /// `msgrcv` with raw arguments, as [`Client::msgrcv_raw`], sleeping on
    /// this connection; a handler that interrupts it makes it `EINTR`
    /// unless a message was already handed over (then it is returned).
    ///
    /// # Errors
    /// As [`Client::msgrcv`].
    pub fn msgrcv_raw(
        &mut self,
        id: i32,
        msgsz: i64,
        msgtyp: i64,
        flags: i32,
        readable: bool,
    ) -> Result<Message, Errno> {
        match self.call_sleeping(&Request::MsgRcv { id, msgsz, msgtyp, flags, readable })? {
            Response::Msg { mtype, data } => Ok(Message { mtype, data }),
            r => Err(unexpected(&r)),
        }
    }

    /// One call that may sleep; a transport failure makes the connection
    /// unfit for reuse.
    fn call_sleeping(&mut self, req: &Request) -> Result<Response, Errno> {
        let resp = self.conn.call_sleeping(req);
        self.healthy = resp.is_ok();
        match resp {
            // The daemon went away while the call slept and did not come
            // back while it was sent again (`Conn::call_sleeping`): as a
            // sleep a signal ends (docs/deviations.md).
            Err(_) if self.conn.is_broken() => return Err(Errno::EINTR),
            _ => {}
        }
        match resp? {
            Response::Error(e) => Err(Errno::from_raw(e)),
            r => Ok(r),
        }
    }
}
