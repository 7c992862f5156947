//! `IPC_STAT`, `SHM_STAT` and `SHM_STAT_ANY` without a round trip
//! (`docs/architecture.md`, "Queries of segments", "Queries without a round trip").
//!
//! The daemon publishes every segment's status in its namespace's status
//! region (`uipc_sys::shm_status`), which this client maps read-only once
//! the daemon sent it (with the first `*_STAT` answer). A `*_STAT` answered
//! by the daemon is also a *read grant*: the client notes the segment's
//! permission version and its own credential key (`creds::CredKey`). A
//! later call reads the region itself when all of these hold, else it asks
//! the daemon (whose answer renews the grant):
//!
//! - the region is mapped in this process and alive (its namespace was
//!   not removed), and this client is still joined to that namespace (a
//!   `join`/`unshare` drops everything here);
//! - the slot holds a segment, with the id asked for (`IPC_STAT`);
//! - this process holds a grant for it (`SHM_STAT_ANY` needs none, as the
//!   kernel checks no permission for it) made with the same permission
//!   version (`IPC_SET`, `IPC_RMID` and `SHM_LOCK` change it) and the same
//!   credential key (a `set*id` changes it); grants are per process, a
//!   forked child starts with none;
//! - none of the processes whose death would change the entry has died:
//!   the daemon learns of a death through its pidfd, a little after
//!   `wait()` may have returned to someone, so the reader looks itself
//!   (`pidfd_open` + `poll`, the descriptors kept for the next call).
//!
//! A slot that holds no segment, or another one, goes to the daemon too,
//! whose `EINVAL` is the kernel's.

use std::os::fd::{AsFd, OwnedFd};

use uipc_abi::{Shmid64Ds, Shminfo64, IPC_STAT, SHM_STAT, SHM_STAT_ANY};
use uipc_sys::shm_status::ShmLayout;

use crate::creds::CredKey;
use crate::status::{StatCmd, StatusCache};

/// One client's fast-path state.
#[derive(Debug, Default)]
pub(crate) struct ShmFast {
    /// The region and the read grants.
    status: StatusCache<ShmLayout>,
    /// Descriptors of segments this process attached, newest last.
    fds: Vec<CachedFd>,
}

/// At most this many segment descriptors are kept: a removed segment's
/// memory lives as long as one is.
const MAX_FDS: usize = 8;

/// A segment's descriptor kept from an attach, for the next attach of the
/// same segment in one round trip (`Request::ShmAttach`).
#[derive(Debug)]
pub(crate) struct CachedFd {
    /// The segment.
    pub(crate) id: i32,
    /// The descriptor (read-write or read-only, as `writable` says).
    pub(crate) fd: OwnedFd,
    /// Whether it is open read-write.
    pub(crate) writable: bool,
    /// `shm_segsz`.
    pub(crate) size: u64,
    /// `(st_dev, st_ino)` when it was kept.
    identity: (u64, u64),
}

/// Whether `cmd` is one the region can answer.
pub(crate) fn is_stat(cmd: i32) -> bool {
    matches!(cmd, IPC_STAT | SHM_STAT | SHM_STAT_ANY)
}

impl ShmFast {
    /// Drops what belonged to another process (this is a forked child).
    fn own(&mut self) {
        self.status.own();
    }

    /// Forgets everything (the client joined another namespace).
    pub(crate) fn reset(&mut self) {
        for c in std::mem::take(&mut self.fds) {
            forget_if_reused(c);
        }
        *self = ShmFast::default();
    }

    /// Keeps `fd`, the descriptor an attach of segment `id` (`size`
    /// bytes) got, for the next attach.
    pub(crate) fn keep_fd(&mut self, id: i32, fd: OwnedFd, writable: bool, size: u64) {
        let Ok(identity) = uipc_sys::fd::identity(fd.as_fd()) else { return };
        self.drop_fd(id, writable);
        if self.fds.len() >= MAX_FDS {
            forget_if_reused(self.fds.remove(0));
        }
        self.fds.push(CachedFd { id, fd, writable, size, identity });
    }

    /// The kept descriptor of segment `id` opened read-write (`writable`)
    /// or read-only, if it still names the file it named.
    pub(crate) fn cached_fd(&mut self, id: i32, writable: bool) -> Option<&CachedFd> {
        let at = self.fds.iter().position(|c| c.id == id && c.writable == writable)?;
        if uipc_sys::fd::identity(self.fds[at].fd.as_fd()).ok() != Some(self.fds[at].identity) {
            // The program closed it (and perhaps reused the number).
            forget_if_reused(self.fds.remove(at));
            return None;
        }
        self.fds.get(at)
    }

    /// Forgets the kept descriptor of segment `id` (`writable` as kept).
    pub(crate) fn drop_fd(&mut self, id: i32, writable: bool) {
        if let Some(at) = self.fds.iter().position(|c| c.id == id && c.writable == writable) {
            forget_if_reused(self.fds.remove(at));
        }
    }

    /// Forgets every kept descriptor of segment `id` (removed).
    pub(crate) fn drop_fds_of(&mut self, id: i32) {
        self.drop_fd(id, true);
        self.drop_fd(id, false);
    }

    /// Whether the next daemon call should ask for the region.
    pub(crate) fn wants_region(&mut self) -> bool {
        self.own();
        self.status.wants_region()
    }

    /// Takes the region the daemon sent (`Request::StatusRegion`), or
    /// notes that it sent none (it is not asked again).
    pub(crate) fn set_region(&mut self, fd: Option<OwnedFd>) {
        self.own();
        self.status.set_region(fd, true);
    }

    /// `shmctl(id, IPC_INFO)` answered from the region's header (the
    /// kernel checks no permission for it): the value and the limits, or
    /// `None` (ask the daemon).
    pub(crate) fn ipc_info(&mut self, id: i32) -> Option<(i64, Shminfo64)> {
        let region = self.status.region()?;
        if id < 0 {
            return None;
        }
        let h = region.header()?;
        Some((i64::from(h.max_idx.max(0)), uipc_core::sysv::shm::shminfo(h.shmmax, h.shmall, h.shmmni)))
    }

    /// After the daemon answered `shmctl(id, cmd)` with `ret` under
    /// credential key `cred`: the grant, and the region if it came.
    pub(crate) fn granted(
        &mut self,
        id: i32,
        cmd: i32,
        ret: i64,
        perm_version: u32,
        cred: CredKey,
        region: Option<OwnedFd>,
    ) {
        self.own();
        let stat = StatCmd { cmd, by_id: cmd == IPC_STAT, any: cmd == SHM_STAT_ANY };
        self.status.answered(id, stat, ret, perm_version, cred, region);
    }

    /// `shmctl(id, cmd)` answered from the region: the value and the
    /// status, or `None` (ask the daemon).
    pub(crate) fn stat(&mut self, id: i32, cmd: i32) -> Option<(i64, Shmid64Ds)> {
        self.own();
        let stat = StatCmd { cmd, by_id: cmd == IPC_STAT, any: cmd == SHM_STAT_ANY };
        let entry = self.status.stat_entry(id, stat)?;
        let ret = if cmd == IPC_STAT { 0 } else { i64::from(entry.id) };
        Some((ret, entry.ds))
    }
}

/// Closes a kept descriptor, unless its number now names another file
/// (the program closed ours and reused the number): then it is not ours
/// to close, and is let go without closing.
fn forget_if_reused(c: CachedFd) {
    if uipc_sys::fd::identity(c.fd.as_fd()).ok() != Some(c.identity) {
        let _ = std::os::fd::IntoRawFd::into_raw_fd(c.fd);
    }
}
