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

use std::collections::HashMap;

use uipc_abi::{Shmid64Ds, Shminfo64, IPC_STAT, SHM_EXEC, SHM_RDONLY, SHM_STAT, SHM_STAT_ANY};
use uipc_sys::shm_attach::AttachPage;
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
    /// Attach pages granted to this process, by segment id.
    pages: HashMap<i32, HeldPage>,
    /// Attachments this process made in its own address space and has not
    /// unmade (the daemon knows them only as counts in its slots).
    attaches: Vec<FastAttach>,
    /// The process `pages` and `attaches` belong to.
    pid: u32,
    /// Mappings of pages of removed segments, by file identity: the
    /// daemon gives such a page to a new segment, and mapping it again
    /// would cost an `mmap` and a `munmap`.
    retired: Vec<((u64, u64), AttachPage)>,
}

/// At most this many retired pages stay mapped.
const RETIRED: usize = 8;

/// A segment's attach page granted to this process.
#[derive(Debug)]
struct HeldPage {
    page: AttachPage,
    /// The segment's permission version the grant holds for.
    perm_version: u32,
    /// This process's slot.
    slot: usize,
    /// The accesses the daemon's check allowed (`Response::ShmGranted`).
    access: u32,
    /// The credentials it checked.
    cred: CredKey,
    /// The page file's `(st_dev, st_ino)`.
    identity: Option<(u64, u64)>,
}

/// An attachment made in this process's own address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FastAttach {
    /// The segment.
    pub(crate) id: i32,
    /// Where it is mapped.
    pub(crate) addr: u64,
    /// The mapping's length.
    pub(crate) len: u64,
    /// `shmat`'s flags.
    pub(crate) flags: i32,
}

/// The bit of `Response::ShmGranted`'s `access` for `shmat`'s `flags`.
fn access_bit(flags: i32) -> u32 {
    let exec = if flags & SHM_EXEC != 0 { 2 } else { 0 };
    let write = if flags & SHM_RDONLY != 0 { 0 } else { 1 };
    1 << (exec + write)
}

/// `shm_atime`/`shm_dtime` now, as the daemon takes them (seconds).
fn now_secs() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
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
        let me = uipc_sys::proc::cached_pid();
        if self.pid != me {
            // A forked child: its parent's slots and attachments are not
            // its own (the parent had the daemon record them before the
            // fork was reported, so the child's copies count as mappings).
            self.pid = me;
            self.pages.clear();
            self.attaches.clear();
            self.retired.clear();
        }
    }

    /// Keeps the attach page the daemon granted for segment `id`.
    pub(crate) fn keep_page(&mut self, id: i32, fd: OwnedFd, perm_version: u32, slot: u32, access: u32, cred: CredKey) {
        self.own();
        let identity = uipc_sys::fd::identity(fd.as_fd()).ok();
        let reused = self.retired.iter().position(|(i, _)| Some(*i) == identity).map(|at| self.retired.remove(at).1);
        let page = match reused {
            Some(p) => Ok(p),
            None => AttachPage::open(fd.as_fd()),
        };
        let (Ok(page), Ok(slot)) = (page, usize::try_from(slot)) else { return };
        self.pages.insert(id, HeldPage { page, perm_version, slot, access, cred, identity });
    }

    /// `shmat(id, NULL, flags)` in this process's own address space,
    /// counted in its slot: `map` maps the memory (`None` if it cannot);
    /// `None` when the page does not allow it (the daemon decides), with
    /// nothing left mapped.
    pub(crate) fn attach_fast(
        &mut self,
        id: i32,
        flags: i32,
        map: impl FnOnce() -> Option<(u64, u64)>,
        unmap: impl FnOnce(u64, u64),
    ) -> Option<u64> {
        self.own();
        let pid = self.pid;
        let held = self.pages.get(&id)?;
        if held.access & access_bit(flags) == 0 || held.cred != CredKey::now() {
            return None;
        }
        let (addr, len) = map()?;
        if !held.page.attach(held.perm_version, held.slot, pid, now_secs()) {
            unmap(addr, len);
            return None;
        }
        self.attaches.push(FastAttach { id, addr, len, flags });
        Some(addr)
    }

    /// `shmdt(addr)` of an attachment made in this process's own address
    /// space: its count taken off the slot (then the caller unmaps it).
    /// `Some(Ok(range))`: done, unmap `range`; `Some(Err(a))`: the page
    /// refused (the last detach of a segment to destroy, a damaged or
    /// removed page), record `a` with the daemon and let it detach;
    /// `None`: not such an attachment.
    pub(crate) fn detach_fast(&mut self, addr: u64) -> Option<Result<(u64, u64), FastAttach>> {
        self.own();
        let at = self.attaches.iter().position(|a| a.addr == addr)?;
        let a = self.attaches.remove(at);
        let done = self.pages.get(&a.id).is_some_and(|h| h.page.detach(h.slot, self.pid, now_secs()));
        Some(if done { Ok((a.addr, a.len)) } else { Err(a) })
    }

    /// Takes the attachments made in this process's own address space
    /// that `pick` selects, for the daemon to record as mappings
    /// (`Request::ShmRecord`).
    pub(crate) fn take_attaches(&mut self, pick: impl Fn(&FastAttach) -> bool) -> Vec<FastAttach> {
        self.own();
        let (taken, kept) = std::mem::take(&mut self.attaches).into_iter().partition(|a| pick(a));
        self.attaches = kept;
        taken
    }

    /// Whether this process holds attachments of its own making.
    pub(crate) fn has_attaches(&mut self) -> bool {
        self.own();
        !self.attaches.is_empty()
    }

    /// Forgets segment `id`'s page unless attachments of it remain.
    pub(crate) fn drop_page(&mut self, id: i32) {
        if self.attaches.iter().any(|a| a.id == id) {
            return;
        }
        let Some(held) = self.pages.remove(&id) else { return };
        if let Some(identity) = held.identity {
            if self.retired.len() >= RETIRED {
                self.retired.remove(0);
            }
            self.retired.push((identity, held.page));
        }
    }

    /// Forgets everything that came from the daemon (the client joined
    /// another namespace, or reconnected to a restarted daemon) but the
    /// attachments this process made in its own address space: a restarted
    /// daemon with a state directory counts them in the same attach pages
    /// (its files), and a detach finds them — through the page granted
    /// again (the same slot), or recorded with the daemon as mappings
    /// (`Request::ShmRecord`). A join records them first.
    pub(crate) fn reset(&mut self) {
        for c in std::mem::take(&mut self.fds) {
            forget_if_reused(c);
        }
        let (attaches, pid) = (std::mem::take(&mut self.attaches), self.pid);
        *self = ShmFast { attaches, pid, ..ShmFast::default() };
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
        if entry.live == 0 {
            return Some((ret, entry.ds));
        }
        // The attach page has nattch, the times and lpid: read by its
        // holders; and none of the processes it counts may have exited
        // unseen by the daemon.
        let (snap, version) = self.pages.get(&entry.id)?.page.read()?;
        if version != entry.perm_version {
            return None;
        }
        let others: Vec<u32> = snap.slots.iter().filter(|(p, c)| *c > 0 && *p != 0).map(|(p, _)| *p).collect();
        if !self.status.all_alive(Some(&others)) {
            return None;
        }
        let mut ds = entry.ds;
        ds.shm_nattch = snap.nattch();
        ds.shm_atime = snap.event.atime;
        ds.shm_dtime = snap.event.dtime;
        ds.shm_lpid = i32::try_from(snap.event.lpid).unwrap_or(0);
        Some((ret, ds))
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
