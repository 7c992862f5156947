//! System V shared memory: `shmget`, `shmat`, `shmdt`, `shmctl` (SPEC section 2).
//!
//! # Known missing features
//! - The `shm_rmid_forced` creator link is per process, not per thread
//!   (SPEC 2.6: Linux orphans a segment when its creating *thread* exits).
//! - uipc has no huge pages: `SHM_HUGETLB` passes Linux's EINVAL/EPERM
//!   checks and then fails with `ENOMEM`, as a kernel with none reserved.
//! - `SHM_LOCK` accounting against `RLIMIT_MEMLOCK` is per namespace and
//!   uid, where Linux counts per user across the system.
//!
//! # References
//! - <https://elixir.bootlin.com/linux/v6.12/source/ipc/shm.c>
//! - shmget(2), shmop(2), shmctl(2)

use std::collections::{BTreeMap, BTreeSet};

use uipc_abi::{
    Errno, ShmInfo, Shmid64Ds, Shminfo64, IPC_INFO, IPC_RMID, IPC_SET, IPC_STAT, PAGE_SIZE, SHMLBA, SHMMIN, SHM_DEST,
    SHM_EXEC, SHM_HUGETLB, SHM_HUGE_MASK, SHM_HUGE_SHIFT, SHM_INFO, SHM_LOCK, SHM_LOCKED, SHM_RDONLY, SHM_REMAP,
    SHM_RND, SHM_STAT, SHM_STAT_ANY, SHM_UNLOCK,
};

use crate::cred::{Cap, Cred, Gid, Pid, Uid, RLIM_INFINITY};
use crate::ids::{ipcget, IpcId, IpcIds, IpcKey, IpcObject, IpcOps};
use crate::limits::Limits;
use crate::memory::Memory;
use crate::mm::{AttachId, Mm, Prot, ShmVma, VmaChanges};
use crate::namespace::IpcNamespace;
use crate::perm::{ipc_update_perm, ipcctl_obtain_check, ipcperms, Access, IpcPerm, PermUpdate};
use crate::time::Time;

/// One segment (`struct shmid_kernel`).
#[derive(Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ShmSegment<R> {
    perm: IpcPerm,
    /// Size as requested (not rounded).
    segsz: u64,
    /// The mappings the host recorded and the attaches in progress.
    nattch: u64,
    /// Attachments processes made (and not yet unmade) in their own
    /// address space, by process, as of the host's last adoption of the
    /// segment's attach page ([`IpcNamespace::shm_adopt`]). Not recorded
    /// in the state directory: attach pages do not survive the daemon
    /// (docs/deviations.md).
    #[cfg_attr(feature = "serde", serde(skip))]
    fast: BTreeMap<Pid, u64>,
    /// The host keeps an attach page for it: its attachments may change
    /// without the host hearing of it until its next adoption.
    #[cfg_attr(feature = "serde", serde(skip))]
    live: bool,
    atime: Time,
    dtime: Time,
    ctime: Time,
    cpid: Pid,
    lpid: Pid,
    /// The memory, `pages(segsz)` pages.
    region: R,
    /// The creating process while it lives (`shm_creator`); `None` once orphaned.
    creator: Option<Pid>,
    /// Who was charged for `SHM_LOCK`, and how many pages.
    locked_by: Option<(Uid, u64)>,
    /// Changes whenever who may read the segment may change (`IPC_SET`,
    /// `IPC_RMID`, `SHM_LOCK`): a read grant holds for one version. Drawn
    /// from the namespace's counter, so no two segments share one.
    perm_version: u32,
}

impl<R> IpcObject for ShmSegment<R> {
    fn perm(&self) -> &IpcPerm {
        &self.perm
    }
    fn perm_mut(&mut self) -> &mut IpcPerm {
        &mut self.perm
    }
}

impl<R> ShmSegment<R> {
    /// The segment's size in bytes, as requested.
    pub fn segsz(&self) -> u64 {
        self.segsz
    }

    /// The segment's memory.
    pub fn region(&self) -> &R {
        &self.region
    }

    /// `shm_may_destroy()`: no attachment left, and removed or `shm_rmid_forced`.
    fn may_destroy(&self, rmid_forced: bool) -> bool {
        self.total_nattch() == 0 && (rmid_forced || self.perm.mode & SHM_DEST != 0)
    }

    /// `shm_nattch`: the recorded mappings, the attaches in progress, and
    /// the attachments made in callers' own address space.
    fn total_nattch(&self) -> u64 {
        self.fast.values().fold(self.nattch, |n, c| n.saturating_add(*c))
    }

    /// The `shmid_ds` of IPC_STAT (zero-filled first, ZERO-5).
    fn to_abi(&self) -> Shmid64Ds {
        Shmid64Ds {
            shm_perm: self.perm.to_abi(),
            shm_segsz: self.segsz,
            shm_atime: self.atime.0,
            shm_dtime: self.dtime.0,
            shm_ctime: self.ctime.0,
            shm_cpid: pid_abi(self.cpid),
            shm_lpid: pid_abi(self.lpid),
            shm_nattch: self.total_nattch(),
            ..Shmid64Ds::default()
        }
    }
}

fn pid_abi(p: Pid) -> i32 {
    i32::try_from(p.0).unwrap_or(0)
}

/// Pages needed for `size` bytes, or `None` on overflow.
fn pages(size: u64) -> Option<u64> {
    size.checked_add(PAGE_SIZE - 1).map(|s| s / PAGE_SIZE)
}

/// The shared memory state of a namespace.
#[derive(Debug)]
pub struct ShmState<R> {
    pub(crate) ids: IpcIds<ShmSegment<R>>,
    /// `shm_tot`: pages in all segments.
    pub(crate) tot: u64,
    /// `SHM_LOCK` charges per user, in pages.
    pub(crate) locked: BTreeMap<Uid, u64>,
    /// The last permission version handed out.
    pub(crate) perm_versions: u32,
    /// Slots whose status (anything `IPC_STAT` reports, or who could change
    /// it by dying) changed since the host last took them
    /// ([`IpcNamespace::shm_take_changed`]).
    changed: BTreeSet<u32>,
}

impl<R> Default for ShmState<R> {
    fn default() -> Self {
        ShmState { ids: IpcIds::default(), tot: 0, locked: BTreeMap::new(), perm_versions: 0, changed: BTreeSet::new() }
    }
}

impl<R> ShmState<R> {
    /// Notes that segment `id`'s status changed.
    fn touch(&mut self, id: IpcId) {
        self.changed.insert(id.idx());
    }

    /// A new permission version.
    fn next_perm_version(&mut self) -> u32 {
        self.perm_versions = self.perm_versions.wrapping_add(1);
        self.perm_versions
    }

    /// Notes that every segment's status may have changed.
    pub(crate) fn touch_all(&mut self)
    where
        ShmSegment<R>: IpcObject,
    {
        let ids: Vec<u32> = self.ids.iter().map(|(id, _)| id.idx()).collect();
        self.changed.extend(ids);
    }
}

/// What a namespace's status region shows of one segment
/// ([`IpcNamespace::shm_status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShmStatus {
    /// The segment's full id.
    pub id: IpcId,
    /// Its permission version.
    pub perm_version: u32,
    /// What `IPC_STAT` reports.
    pub ds: Shmid64Ds,
    /// The host keeps an attach page for it ([`IpcNamespace::shm_set_live`]):
    /// `nattch`, the times and `lpid` are the page's.
    pub live: bool,
    /// The processes whose exit would change `ds`: those holding mappings
    /// of it (`exit_mm` detaches them), and its creator where
    /// `shm_rmid_forced` destroys it at the creator's exit (`exit_shm`).
    pub pids: Vec<Pid>,
}

/// What a segment's attach page shows (the data plane's attach fast
/// path; [`IpcNamespace::shm_attach_state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachState {
    /// The model's own `nattch`: recorded mappings and attaches in progress.
    pub nattch: u64,
    /// `shm_atime`.
    pub atime: Time,
    /// `shm_dtime`.
    pub dtime: Time,
    /// `shm_lpid`.
    pub lpid: Pid,
    /// Whether the last detach destroys the segment (`SHM_DEST`, or
    /// `shm_rmid_forced`): such detaches are the model's to make.
    pub dest: bool,
    /// Each process's attachments made in its own address space.
    pub fast: Vec<(Pid, u64)>,
    /// The permission version.
    pub perm_version: u32,
}

/// The huge page sizes Linux supports on x86_64, as log2 (`hstate_sizelog()`).
const HUGE_PAGE_LOGS: [i32; 2] = [21, 30];

/// `shmget`'s hooks for [`ipcget`].
struct ShmGetOps<'a, M: Memory> {
    shm: &'a mut ShmState<M::Region>,
    limits: &'a Limits,
    memory: &'a mut M,
    now: Time,
}

impl<M: Memory> IpcOps for ShmGetOps<'_, M> {
    type Object = ShmSegment<M::Region>;
    type Params = u64;

    fn ids(&self) -> &IpcIds<Self::Object> {
        &self.shm.ids
    }

    /// Mirrors `ipc/shm.c:newseg()`.
    fn getnew(&mut self, cred: &Cred, key: IpcKey, flags: i32, size: u64) -> Result<IpcId, Errno> {
        // SHM-GET-1: "size is less than SHMMIN or greater than SHMMAX."
        if size < SHMMIN || size > self.limits.shmmax {
            return Err(Errno::EINVAL);
        }
        // SHM-GET-2: page rounding overflow, then shm_tot + pages > shmall → ENOSPC.
        let npages = pages(size).ok_or(Errno::ENOSPC)?;
        match self.shm.tot.checked_add(npages) {
            Some(t) if t <= self.limits.shmall => {}
            _ => return Err(Errno::ENOSPC),
        }
        if flags & SHM_HUGETLB != 0 {
            // SHM-GET-3: hstate_sizelog(): 0 is the default size; others must exist.
            let log = (flags >> SHM_HUGE_SHIFT) & SHM_HUGE_MASK;
            if log != 0 && !HUGE_PAGE_LOGS.contains(&log) {
                return Err(Errno::EINVAL);
            }
            // can_do_hugetlb_shm(): CAP_IPC_LOCK or vm.hugetlb_shm_group (0).
            if !cred.capable(Cap::IPC_LOCK) && !cred.in_group(Gid(0)) {
                return Err(Errno::EPERM);
            }
            // uipc reserves no huge pages: hugetlb_file_setup() fails to reserve.
            return Err(Errno::ENOMEM);
        }
        // shmem_kernel_file_setup(): a size above MAX_LFS_FILESIZE (i64::MAX)
        // cannot be a file size → EINVAL.
        if i64::try_from(size).is_err() {
            return Err(Errno::EINVAL);
        }
        let region = self.memory.allocate(npages * PAGE_SIZE)?;
        let seg = ShmSegment {
            perm: IpcPerm::new(cred, key, flags),
            segsz: size,
            nattch: 0,
            fast: BTreeMap::new(),
            live: false,
            atime: Time::NEVER,
            dtime: Time::NEVER,
            ctime: self.now,
            cpid: cred.pid,
            lpid: Pid(0),
            region,
            creator: Some(cred.pid),
            locked_by: None,
            perm_version: self.shm.next_perm_version(),
        };
        // SHM-GET-6: the slot limit is checked after the size checks.
        let id = self.shm.ids.add(seg, self.limits.shmmni)?;
        self.shm.tot += npages;
        self.shm.touch(id);
        Ok(id)
    }

    fn more_checks(&self, seg: &Self::Object, size: u64) -> Result<(), Errno> {
        // "A segment for the given key exists, but size is greater than the size of that segment."
        if size > seg.segsz {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }
}

/// A `shmat` that passed every check and holds the segment (its `nattch`
/// counts it) until the caller has mapped the memory and calls
/// [`IpcNamespace::shmat_commit`], or failed to and calls
/// [`IpcNamespace::shmat_abort`].
#[must_use = "a pending attach holds a reference: commit or abort it"]
#[derive(Debug)]
pub struct PendingAttach<R> {
    /// The segment.
    pub id: IpcId,
    /// The memory to map.
    pub region: R,
    /// Bytes to map: the segment size (the mapping covers whole pages).
    pub size: u64,
    /// The fixed address to map at (after `SHM_RND`), or `None` for any.
    pub addr: Option<u64>,
    /// Protection of the mapping.
    pub prot: Prot,
    /// `SHM_REMAP`: replace whatever is mapped at `addr`.
    pub remap: bool,
}

impl<R> PendingAttach<R> {
    /// Length of the mapping: the size rounded up to whole pages (SHM-AT-8).
    pub fn map_len(&self) -> u64 {
        self.size.div_ceil(PAGE_SIZE) * PAGE_SIZE
    }
}

/// What `shmctl(IPC_INFO)` copies out for the limits `shmmax`, `shmall`,
/// `shmmni` (`ipc/shm.c:shmctl_ipc_info()`: `shmseg` is `shmmni`, as the
/// kernel sets it). Also what a client answers from the status region.
pub fn shminfo(shmmax: u64, shmall: u64, shmmni: u32) -> Shminfo64 {
    Shminfo64 {
        shmmax,
        shmmin: SHMMIN,
        shmmni: u64::from(shmmni),
        shmseg: u64::from(shmmni),
        shmall,
        ..Shminfo64::default()
    }
}

/// A decoded `shmctl` command (STYLE rule 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShmCmd {
    /// `IPC_STAT`.
    IpcStat,
    /// `SHM_STAT`.
    ShmStat,
    /// `SHM_STAT_ANY`.
    ShmStatAny,
    /// `IPC_SET`.
    IpcSet,
    /// `IPC_RMID`.
    IpcRmid,
    /// `IPC_INFO`.
    IpcInfo,
    /// `SHM_INFO`.
    ShmInfo,
    /// `SHM_LOCK`.
    Lock,
    /// `SHM_UNLOCK`.
    Unlock,
}

impl ShmCmd {
    /// Decodes `shmctl(id, cmd, …)`'s arguments, before anything else.
    ///
    /// # Errors
    /// `EINVAL` for `cmd < 0 || id < 0` and for an unknown command
    /// (including one with `IPC_64` or-ed in, on x86_64) (COM-CTL-1).
    pub fn decode(id: i32, cmd: i32) -> Result<ShmCmd, Errno> {
        if cmd < 0 || id < 0 {
            return Err(Errno::EINVAL);
        }
        Ok(match cmd {
            IPC_STAT => ShmCmd::IpcStat,
            SHM_STAT => ShmCmd::ShmStat,
            SHM_STAT_ANY => ShmCmd::ShmStatAny,
            IPC_SET => ShmCmd::IpcSet,
            IPC_RMID => ShmCmd::IpcRmid,
            IPC_INFO => ShmCmd::IpcInfo,
            SHM_INFO => ShmCmd::ShmInfo,
            SHM_LOCK => ShmCmd::Lock,
            SHM_UNLOCK => ShmCmd::Unlock,
            _ => return Err(Errno::EINVAL),
        })
    }

    /// Whether the command writes a structure to the caller's buffer.
    pub fn writes_buffer(self) -> bool {
        matches!(self, ShmCmd::IpcStat | ShmCmd::ShmStat | ShmCmd::ShmStatAny | ShmCmd::IpcInfo | ShmCmd::ShmInfo)
    }
}

/// What a `shmctl` call leaves in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShmCtlOut {
    /// Nothing.
    None,
    /// `IPC_STAT`, `SHM_STAT`, `SHM_STAT_ANY`.
    Ds(Shmid64Ds),
    /// `IPC_INFO`.
    Info(Shminfo64),
    /// `SHM_INFO`.
    ShmInfo(ShmInfo),
}

impl<M: Memory> IpcNamespace<M> {
    /// `shmget(key, size, shmflg)` — gets or creates a System V shared memory segment.
    ///
    /// # Errors
    /// In the kernel's order (SPEC 1.2, 2.1): `ENOENT` (no key, no
    /// IPC_CREAT); `EEXIST`; `EINVAL` (size larger than the existing
    /// segment); `EACCES`; on creation `EINVAL` (size < 1 or > shmmax),
    /// `ENOSPC` (shmall), SHM_HUGETLB's `EINVAL`/`EPERM`/`ENOMEM`, `ENOMEM`
    /// from memory, `ENOSPC` (shmmni).
    ///
    /// # References
    /// Mirrors `ipc/shm.c:ksys_shmget()`, `newseg()`, `shm_more_checks()`; shmget(2).
    pub fn shmget(&mut self, cred: &Cred, now: Time, key: i32, size: u64, flags: i32) -> Result<IpcId, Errno> {
        let mut ops = ShmGetOps { shm: &mut self.shm, limits: &self.limits, memory: &mut self.memory, now };
        ipcget(&mut ops, cred, IpcKey(key), flags, size)
    }

    /// The segment `id` names, if any (seq checked).
    pub fn shm_segment(&self, id: i32) -> Option<&ShmSegment<M::Region>> {
        self.shm.ids.obtain_check(id).ok()
    }

    /// The first half of `shmat(shmid, shmaddr, shmflg)`: every check, and
    /// the segment held. The caller maps [`PendingAttach::region`] (at
    /// `addr` if fixed) and then commits or aborts.
    ///
    /// With a fixed address and no `SHM_REMAP`, a range that wraps or
    /// overlaps a System V mapping of the caller is refused here, as
    /// Linux's `find_vma_intersection()` check refuses it before mapping
    /// (the caller must refuse overlaps with its other mappings itself, e.g.
    /// with `MAP_FIXED_NOREPLACE`).
    ///
    /// # Errors
    /// In the kernel's order (SPEC 2.2): `EINVAL` (negative id; unaligned
    /// address without SHM_RND; SHM_RND rounding to 0 with SHM_REMAP;
    /// SHM_REMAP without address; no such id), `EACCES` (read, +write
    /// unless SHM_RDONLY, +execute with SHM_EXEC), `EINVAL` (fixed range
    /// wraps or overlaps, SHM-AT-6; the hold is released, which destroys a
    /// removed segment left unattached, SHM-AT-10).
    ///
    /// # References
    /// Mirrors `ipc/shm.c:do_shmat()` up to `shm_nattch++`; shmat(2).
    #[doc(alias = "shmat")]
    pub fn shmat_prepare(
        &mut self,
        cred: &Cred,
        id: i32,
        addr: u64,
        flags: i32,
    ) -> Result<PendingAttach<M::Region>, Errno> {
        // SHM-AT-1.
        if id < 0 {
            return Err(Errno::EINVAL);
        }
        // SHM-AT-2: address checks come before the lookup.
        let fixed = if addr != 0 {
            let mut a = addr;
            if a & (SHMLBA - 1) != 0 {
                if flags & SHM_RND == 0 {
                    // "shmaddr is not aligned ... and SHM_RND was not specified."
                    return Err(Errno::EINVAL);
                }
                a &= !(SHMLBA - 1);
                if a == 0 && flags & SHM_REMAP != 0 {
                    return Err(Errno::EINVAL);
                }
            }
            Some(a)
        } else if flags & SHM_REMAP != 0 {
            // "SHM_REMAP was specified and shmaddr was NULL."
            return Err(Errno::EINVAL);
        } else {
            None
        };
        let read_only = flags & SHM_RDONLY != 0;
        let exec = flags & SHM_EXEC != 0;
        let mut access = if read_only { Access::READ } else { Access::READ_WRITE };
        if exec {
            access = access.with_exec();
        }
        // SHM-AT-3, SHM-AT-4.
        let seg = self.shm.ids.obtain_check_mut(id)?;
        ipcperms(cred, &seg.perm, access)?;
        // SHM-AT-10: the attach in progress counts in nattch.
        seg.nattch += 1;
        self.shm.touch(IpcId(id));
        let seg = self.shm.ids.obtain_check(id)?;
        let pending = PendingAttach {
            id: IpcId(id),
            region: seg.region.clone(),
            size: seg.segsz,
            addr: fixed,
            prot: Prot { read: true, write: !read_only, exec },
            remap: flags & SHM_REMAP != 0,
        };
        if let (Some(a), false) = (fixed, pending.remap) {
            // SHM-AT-6: "addr + size < addr" or an existing mapping in the range → EINVAL.
            let mm = self.mms.get(&cred.pid);
            let refused = a.checked_add(pending.size).is_none_or(|end| mm.is_some_and(|mm| mm.intersects(a, end)));
            if refused {
                self.shm_release(pending.id);
                return Err(Errno::EINVAL);
            }
        }
        Ok(pending)
    }

    /// The second half of `shmat`: the memory is mapped at `addr`. Records
    /// the mapping (`nattch` += 1, `atime` = now, `lpid` = caller) and
    /// releases the hold. With `SHM_REMAP`, the System V mappings the new
    /// one replaced are closed first.
    ///
    /// # Errors
    /// `EINVAL` if `addr` + the mapping's length wraps (no mapping can be
    /// there); the attach is then aborted.
    pub fn shmat_commit(
        &mut self,
        cred: &Cred,
        now: Time,
        pending: PendingAttach<M::Region>,
        addr: u64,
    ) -> Result<u64, Errno> {
        let len = pending.map_len();
        let mm = self.mms.entry(cred.pid).or_default();
        let Some(end) = addr.checked_add(len) else {
            self.shmat_abort(now, pending);
            return Err(Errno::EINVAL);
        };
        if pending.remap {
            let changes = mm.unmap(addr, end);
            self.apply_vma_changes(cred.pid, now, &changes);
        }
        let attach = AttachId(self.next_attach);
        self.next_attach += 1;
        let vma = ShmVma {
            start: addr,
            end,
            id: pending.id,
            attach,
            pgoff: 0,
            prot: pending.prot,
            may_write: pending.prot.write,
        };
        self.mms.entry(cred.pid).or_default().insert(vma);
        self.shm_open(pending.id, cred.pid, now);
        self.shm_release(pending.id);
        Ok(addr)
    }

    /// The attach failed after [`shmat_prepare`](Self::shmat_prepare) (the
    /// mapping could not be made): releases the hold, destroying the segment
    /// if it was removed meanwhile or `shm_rmid_forced` is set (SHM-AT-10).
    pub fn shmat_abort(&mut self, _now: Time, pending: PendingAttach<M::Region>) {
        self.shm_release(pending.id);
    }

    /// Drops the hold of a pending attach (`shm_nattch--` at the end of `do_shmat()`).
    fn shm_release(&mut self, id: IpcId) {
        let forced = self.limits.shm_rmid_forced;
        if let Ok(seg) = self.shm.ids.obtain_check_mut(id.0) {
            seg.nattch -= 1;
            let doomed = seg.may_destroy(forced);
            self.shm.touch(id);
            if doomed {
                self.shm_destroy(id);
            }
        }
    }

    /// `shmdt(shmaddr)` — detaches the attach at `addr`, with every fragment
    /// of it that `munmap` or `mprotect` left. Returns the ranges the caller
    /// must unmap.
    ///
    /// # Errors
    /// `EINVAL` when `addr` is not page aligned or no attach starts there
    /// (SHM-DT-1, SHM-DT-2).
    ///
    /// # References
    /// Mirrors `ipc/shm.c:ksys_shmdt()`; shmdt(2).
    pub fn shmdt(&mut self, cred: &Cred, now: Time, addr: u64) -> Result<Vec<(u64, u64)>, Errno> {
        // "shmaddr is not aligned on a page boundary."
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let shm = &self.shm;
        let segsz_of = |id: IpcId| shm.ids.obtain_check(id.0).map_or(0, |s| s.segsz);
        let changes = self.mms.get_mut(&cred.pid).and_then(|mm| mm.detach(addr, segsz_of));
        // "There is no shared memory segment attached at shmaddr."
        let changes = changes.ok_or(Errno::EINVAL)?;
        self.apply_vma_changes(cred.pid, now, &changes);
        Ok(changes.unmapped)
    }

    /// `munmap(addr, len)` by the caller: System V mappings in the range are
    /// closed, and those cut at its edges split (each split adds one to
    /// `nattch`: SHM-DT-5).
    ///
    /// # Errors
    /// `EINVAL` for an unaligned `addr`, a zero `len` or a wrapping range (munmap(2)).
    pub fn munmap(&mut self, cred: &Cred, now: Time, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = len.checked_add(PAGE_SIZE - 1).map(|l| l / PAGE_SIZE * PAGE_SIZE).and_then(|l| addr.checked_add(l));
        let end = end.ok_or(Errno::EINVAL)?;
        if let Some(mm) = self.mms.get_mut(&cred.pid) {
            let changes = mm.unmap(addr, end);
            self.apply_vma_changes(cred.pid, now, &changes);
        }
        Ok(())
    }

    /// `mprotect(addr, len, prot)` by the caller, reported after the kernel
    /// made it: System V mappings in the range take `prot`, split at its
    /// edges where no neighbour of the same attach absorbs the change
    /// (each split adds one to `nattch`: SHM-DT-5). See [`Mm::protect`].
    ///
    /// # Errors
    /// `EINVAL` for an unaligned `addr` or a wrapping range (mprotect(2));
    /// a zero `len` changes nothing. `EACCES` for write access to a
    /// `SHM_RDONLY` attach in the range (the mappings before it changed).
    pub fn mprotect(&mut self, cred: &Cred, now: Time, addr: u64, len: u64, prot: Prot) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let end = len.checked_add(PAGE_SIZE - 1).map(|l| l / PAGE_SIZE * PAGE_SIZE).and_then(|l| addr.checked_add(l));
        let end = end.ok_or(Errno::EINVAL)?;
        let Some(mm) = self.mms.get_mut(&cred.pid) else { return Ok(()) };
        let (changes, denied) = mm.protect(addr, end, prot);
        self.apply_vma_changes(cred.pid, now, &changes);
        // mprotect(2): "EACCES The memory cannot be given the specified access."
        if denied {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    /// Applies opens (splits, copies) then closes, as the kernel's VMA code
    /// calls `shm_open`/`shm_close`.
    fn apply_vma_changes(&mut self, pid: Pid, now: Time, changes: &VmaChanges) {
        for id in &changes.opened {
            self.shm_open(*id, pid, now);
        }
        for id in &changes.closed {
            self.shm_close(*id, pid, now);
        }
    }

    /// `shm_open()` — one more mapping of segment `id`.
    pub(crate) fn shm_open(&mut self, id: IpcId, pid: Pid, now: Time) {
        if let Ok(seg) = self.shm.ids.obtain_check_mut(id.0) {
            seg.atime = now;
            seg.lpid = pid;
            seg.nattch += 1;
            self.shm.touch(id);
        }
    }

    /// `shm_close()` — one mapping of segment `id` fewer; destroys it when
    /// that was the last and it was removed (or `shm_rmid_forced`).
    fn shm_close(&mut self, id: IpcId, pid: Pid, now: Time) {
        let forced = self.limits.shm_rmid_forced;
        if let Ok(seg) = self.shm.ids.obtain_check_mut(id.0) {
            seg.lpid = pid;
            seg.dtime = now;
            seg.nattch -= 1;
            let doomed = seg.may_destroy(forced);
            self.shm.touch(id);
            if doomed {
                self.shm_destroy(id);
            }
        }
    }

    /// `shm_destroy()` — frees the slot, the key, `shm_tot`, the lock charge
    /// and (with the last clone of the region) the memory.
    pub(crate) fn shm_destroy(&mut self, id: IpcId) {
        if let Some(seg) = self.shm.ids.remove(id) {
            self.shm.touch(id);
            self.shm.tot -= pages(seg.segsz).unwrap_or(0);
            if let Some((uid, n)) = seg.locked_by {
                self.uncharge_lock(uid, n);
            }
        }
    }

    fn uncharge_lock(&mut self, uid: Uid, n: u64) {
        if let Some(c) = self.shm.locked.get_mut(&uid) {
            *c = c.saturating_sub(n);
        }
    }

    /// Detaches every mapping of `pid` (exec and exit).
    pub(crate) fn shm_exit_mm(&mut self, pid: Pid, now: Time) {
        if let Some(mm) = self.mms.get_mut(&pid) {
            let changes = mm.clear();
            self.apply_vma_changes(pid, now, &changes);
        }
        // The attachments it made in its own address space close too, each
        // as shm_close() closes a mapping (lpid, dtime, nattch - 1).
        let forced = self.limits.shm_rmid_forced;
        let held: Vec<IpcId> =
            self.shm.ids.iter().filter(|(_, s)| s.fast.contains_key(&pid)).map(|(id, _)| id).collect();
        for id in held {
            let Ok(seg) = self.shm.ids.obtain_check_mut(id.0) else { continue };
            if seg.fast.remove(&pid).unwrap_or(0) > 0 {
                seg.lpid = pid;
                seg.dtime = now;
            }
            let doomed = seg.may_destroy(forced);
            self.shm.touch(id);
            if doomed {
                self.shm_destroy(id);
            }
        }
    }

    /// `exit_shm()` — orphans the segments `pid` created; with
    /// `shm_rmid_forced`, destroys those no longer attached.
    pub(crate) fn exit_shm(&mut self, pid: Pid) {
        let forced = self.limits.shm_rmid_forced;
        let mut doomed = Vec::new();
        for id in self.shm.ids.ids() {
            if let Ok(seg) = self.shm.ids.obtain_check_mut(id.0) {
                if seg.creator == Some(pid) {
                    seg.creator = None;
                    if forced && seg.may_destroy(forced) {
                        doomed.push(id);
                    }
                    self.shm.touch(id);
                }
            }
        }
        for id in doomed {
            self.shm_destroy(id);
        }
    }

    /// `shm_destroy_orphaned()` — on a write of 1 to `shm_rmid_forced`,
    /// destroys every unattached segment whose creator is gone (SPEC 2.6 c).
    pub(crate) fn shm_destroy_orphaned(&mut self) {
        let forced = self.limits.shm_rmid_forced;
        let doomed: Vec<IpcId> = self
            .shm
            .ids
            .iter()
            .filter(|(_, s)| s.creator.is_none() && s.may_destroy(forced))
            .map(|(id, _)| id)
            .collect();
        for id in doomed {
            self.shm_destroy(id);
        }
    }

    /// `shmctl(shmid, cmd, buf)` — controls a segment. `set` is the
    /// caller's `IPC_SET` buffer (read by the caller before this call, as
    /// the kernel copies it in before the lookup: COM-OWN-4).
    ///
    /// Returns the call's value (0, a full id for the `*_STAT` commands,
    /// the highest index for the `*_INFO` ones) and what to copy out.
    ///
    /// # Errors
    /// `EINVAL` (bad id or command, stale id, `IPC_SET` uid/gid invalid),
    /// `EACCES` (stat without read permission), `EPERM` (`IPC_SET`/
    /// `IPC_RMID` by a non-owner without CAP_SYS_ADMIN; `SHM_LOCK`/
    /// `SHM_UNLOCK` by a non-owner without CAP_IPC_LOCK, or `SHM_LOCK` with
    /// a zero RLIMIT_MEMLOCK), `ENOMEM` (lock beyond RLIMIT_MEMLOCK).
    ///
    /// # References
    /// Mirrors `ipc/shm.c:ksys_shmctl()`, `shmctl_stat()`, `shmctl_down()`,
    /// `shmctl_do_lock()`, `shmctl_ipc_info()`, `shmctl_shm_info()`; shmctl(2).
    pub fn shmctl(
        &mut self,
        cred: &Cred,
        now: Time,
        id: i32,
        cmd: ShmCmd,
        set: Option<PermUpdate>,
    ) -> Result<(i32, ShmCtlOut), Errno> {
        if id < 0 {
            return Err(Errno::EINVAL);
        }
        match cmd {
            ShmCmd::IpcInfo => {
                let l = &self.limits;
                let info = shminfo(l.shmmax, l.shmall, l.shmmni);
                Ok((self.shm.ids.max_idx().max(0), ShmCtlOut::Info(info)))
            }
            ShmCmd::ShmInfo => {
                let rss = self.shm.ids.iter().map(|(_, s)| self.memory.resident_pages(&s.region)).sum();
                let info = ShmInfo {
                    used_ids: i32::try_from(self.shm.ids.in_use()).unwrap_or(i32::MAX),
                    shm_tot: self.shm.tot,
                    shm_rss: rss,
                    ..ShmInfo::default()
                };
                Ok((self.shm.ids.max_idx().max(0), ShmCtlOut::ShmInfo(info)))
            }
            ShmCmd::IpcStat | ShmCmd::ShmStat | ShmCmd::ShmStatAny => {
                let (full_id, seg) = if cmd == ShmCmd::IpcStat {
                    (IpcId(id), self.shm.ids.obtain_check(id)?)
                } else {
                    self.shm.ids.obtain_idx(id)?
                };
                if cmd != ShmCmd::ShmStatAny {
                    ipcperms(cred, &seg.perm, Access::READ)?;
                }
                let ret = if cmd == ShmCmd::IpcStat { 0 } else { full_id.0 };
                Ok((ret, ShmCtlOut::Ds(seg.to_abi())))
            }
            ShmCmd::IpcSet | ShmCmd::IpcRmid => {
                let version = self.shm.next_perm_version();
                let seg = self.shm.ids.obtain_check_mut(id)?;
                ipcctl_obtain_check(cred, &seg.perm)?;
                if cmd == ShmCmd::IpcSet {
                    let update = set.ok_or(Errno::EFAULT)?;
                    ipc_update_perm(&update, &mut seg.perm)?;
                    seg.ctime = now;
                    seg.perm_version = version;
                } else if seg.total_nattch() > 0 {
                    // SHM-CTL-RMID: mark, and free the key.
                    seg.perm.mode |= SHM_DEST;
                    seg.perm_version = version;
                    self.shm.ids.set_key_private(IpcId(id));
                } else {
                    self.shm_destroy(IpcId(id));
                }
                self.shm.touch(IpcId(id));
                Ok((0, ShmCtlOut::None))
            }
            ShmCmd::Lock | ShmCmd::Unlock => {
                self.shmctl_do_lock(cred, id, cmd == ShmCmd::Lock)?;
                Ok((0, ShmCtlOut::None))
            }
        }
    }

    /// `shmctl_do_lock()`: SHM_LOCK / SHM_UNLOCK.
    fn shmctl_do_lock(&mut self, cred: &Cred, id: i32, lock: bool) -> Result<(), Errno> {
        let seg = self.shm.ids.obtain_check(id)?;
        let privileged = cred.capable(Cap::IPC_LOCK);
        if !privileged {
            // "The caller is not the owner or creator and lacks CAP_IPC_LOCK."
            if cred.euid != seg.perm.uid && cred.euid != seg.perm.cuid {
                return Err(Errno::EPERM);
            }
            if lock && cred.memlock_limit == 0 {
                return Err(Errno::EPERM);
            }
        }
        let locked = seg.perm.mode & SHM_LOCKED != 0;
        let npages = pages(seg.segsz).unwrap_or(u64::MAX);
        if lock && !locked {
            // user_shm_lock(): the user's locked pages stay within RLIMIT_MEMLOCK.
            let charged = self.shm.locked.get(&cred.euid).copied().unwrap_or(0);
            let limit = if cred.memlock_limit == RLIM_INFINITY { u64::MAX } else { cred.memlock_limit / PAGE_SIZE };
            if !privileged && charged.saturating_add(npages) > limit {
                return Err(Errno::ENOMEM);
            }
            *self.shm.locked.entry(cred.euid).or_default() += npages;
            let version = self.shm.next_perm_version();
            let seg = self.shm.ids.obtain_check_mut(id)?;
            seg.perm.mode |= SHM_LOCKED;
            seg.locked_by = Some((cred.euid, npages));
            seg.perm_version = version;
            self.shm.touch(IpcId(id));
        } else if !lock && locked {
            let version = self.shm.next_perm_version();
            let seg = self.shm.ids.obtain_check_mut(id)?;
            seg.perm.mode &= !SHM_LOCKED;
            seg.perm_version = version;
            if let Some((uid, n)) = seg.locked_by.take() {
                self.uncharge_lock(uid, n);
            }
            self.shm.touch(IpcId(id));
        }
        Ok(())
    }

    /// The System V shm mapping of process `pid` containing `addr`, with its
    /// segment's memory: what a byte at `addr` is.
    pub fn shm_mapping_at(&self, pid: Pid, addr: u64) -> Option<(ShmVma, &M::Region)> {
        let vma = *self.mms.get(&pid)?.find(addr)?;
        let seg = self.shm.ids.obtain_check(vma.id.0).ok()?;
        Some((vma, &seg.region))
    }

    /// The segments process `pid`'s exec, fork or unmapping may change:
    /// those it maps and those it attached in its own address space
    /// ([`shm_adopt`](Self::shm_adopt)); with `created`, also those it
    /// created (its exit's `exit_shm()`, `unshare`'s orphaning).
    pub fn shm_ids_of(&self, pid: Pid, created: bool) -> Vec<i32> {
        let mut ids: Vec<i32> = self.mms.get(&pid).map(|mm| mm.vmas().map(|v| v.id.0).collect()).unwrap_or_default();
        ids.extend(
            self.shm
                .ids
                .iter()
                .filter(|(_, s)| s.fast.contains_key(&pid) || (created && s.creator == Some(pid)))
                .map(|(id, _)| id.0),
        );
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Notes that the host keeps an attach page for segment `id` (its
    /// status entry says so: [`ShmStatus::live`]).
    pub fn shm_set_live(&mut self, id: i32) {
        if let Ok(seg) = self.shm.ids.obtain_check_mut(id) {
            if !seg.live {
                seg.live = true;
                self.shm.touch(IpcId(id));
            }
        }
    }

    /// What segment `id`'s attach page shows ([`AttachState`]).
    ///
    /// # Errors
    /// `EINVAL` for no such id.
    pub fn shm_attach_state(&self, id: i32) -> Result<AttachState, Errno> {
        let seg = self.shm.ids.obtain_check(id)?;
        Ok(AttachState {
            nattch: seg.nattch,
            atime: seg.atime,
            dtime: seg.dtime,
            lpid: seg.lpid,
            dest: self.limits.shm_rmid_forced || seg.perm.mode & SHM_DEST != 0,
            fast: seg.fast.iter().map(|(p, c)| (*p, *c)).collect(),
            perm_version: seg.perm_version,
        })
    }

    /// Takes what segment `id`'s attach page shows after its holders'
    /// own attaches and detaches: each holder's count and the last event.
    /// The host validated the page (owners, bounds); a segment that no
    /// attachment holds any more and that must go is destroyed (as the
    /// last `shm_close()` would have).
    ///
    /// # Errors
    /// `EINVAL` for no such id.
    pub fn shm_adopt(
        &mut self,
        id: i32,
        fast: &[(Pid, u64)],
        atime: Time,
        dtime: Time,
        lpid: Pid,
    ) -> Result<(), Errno> {
        let forced = self.limits.shm_rmid_forced;
        let fast: BTreeMap<Pid, u64> = fast.iter().filter(|(_, c)| *c > 0).copied().collect();
        // Looked at first without a change (a change is recorded).
        let seg = self.shm.ids.obtain_check(id)?;
        if fast == seg.fast && (atime, dtime, lpid) == (seg.atime, seg.dtime, seg.lpid) {
            return Ok(());
        }
        let seg = self.shm.ids.obtain_check_mut(id)?;
        seg.fast = fast;
        seg.atime = atime;
        seg.dtime = dtime;
        seg.lpid = lpid;
        let doomed = seg.may_destroy(forced);
        self.shm.touch(IpcId(id));
        if doomed {
            self.shm_destroy(IpcId(id));
        }
        Ok(())
    }

    /// An attachment the caller made in its own address space at `at`
    /// (`shmat(id, NULL, flags)`), recorded as a mapping from now on: one
    /// of its attachments counted by [`shm_adopt`](Self::shm_adopt)
    /// becomes a mapping of the model, so `munmap`, `mprotect`, `fork`
    /// and `shmdt` act on it as on any other. Nothing observable changes
    /// (`nattch`, times and `lpid` stay).
    ///
    /// # Errors
    /// `EINVAL` for no such id, no such attachment counted for the caller,
    /// or a range that wraps or overlaps a mapping the model has.
    pub fn shm_record_attach(&mut self, cred: &Cred, id: i32, at: u64, flags: i32) -> Result<(), Errno> {
        let seg = self.shm.ids.obtain_check(id)?;
        let len = pages(seg.segsz).ok_or(Errno::EINVAL)? * PAGE_SIZE;
        let end = at.checked_add(len).ok_or(Errno::EINVAL)?;
        if !at.is_multiple_of(PAGE_SIZE) || seg.fast.get(&cred.pid).copied().unwrap_or(0) == 0 {
            return Err(Errno::EINVAL);
        }
        let mm = self.mms.entry(cred.pid).or_default();
        if mm.intersects(at, end) {
            return Err(Errno::EINVAL);
        }
        let write = flags & SHM_RDONLY == 0;
        let attach = AttachId(self.next_attach);
        self.next_attach += 1;
        let prot = Prot { read: true, write, exec: flags & SHM_EXEC != 0 };
        mm.insert(ShmVma { start: at, end, id: IpcId(id), attach, pgoff: 0, prot, may_write: write });
        let seg = self.shm.ids.obtain_check_mut(id)?;
        if let Some(c) = seg.fast.get_mut(&cred.pid) {
            *c -= 1;
            if *c == 0 {
                seg.fast.remove(&cred.pid);
            }
        }
        seg.nattch += 1;
        self.shm.touch(IpcId(id));
        Ok(())
    }

    /// Whether `cred` may attach segment `id` with `shmat`'s `flags`
    /// (`SHM_RDONLY`, `SHM_EXEC`): the permission check of `do_shmat()`.
    ///
    /// # Errors
    /// `EINVAL` for no such id, `EACCES` for no permission.
    pub fn shm_may_attach(&self, cred: &Cred, id: i32, flags: i32) -> Result<(), Errno> {
        let seg = self.shm.ids.obtain_check(id)?;
        let mut access = if flags & SHM_RDONLY != 0 { Access::READ } else { Access::READ_WRITE };
        if flags & SHM_EXEC != 0 {
            access = access.with_exec();
        }
        ipcperms(cred, &seg.perm, access)
    }

    /// The slots whose status changed since the last call, for a host
    /// that shows [`shm_status`](Self::shm_status) to its clients.
    pub fn shm_take_changed(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.shm.changed).into_iter().collect()
    }

    /// Marks slots changed for reasons of the host's own (the holders of
    /// attaches in progress it keeps).
    pub fn shm_touch_slots(&mut self, idx: &[u32]) {
        self.shm.changed.extend(idx.iter().copied());
    }

    /// How many segments exist (`ids->in_use`).
    pub fn shm_in_use(&self) -> u32 {
        self.shm.ids.in_use()
    }

    /// The highest index in use, `-1` if none (`ipc_get_maxidx()`): what
    /// `IPC_INFO` and `SHM_INFO` return, at least 0.
    pub fn shm_max_idx(&self) -> i32 {
        self.shm.ids.max_idx()
    }

    /// The slots in use.
    pub fn shm_slots(&self) -> Vec<u32> {
        self.shm.ids.iter().map(|(id, _)| id.idx()).collect()
    }

    /// What slot `idx` holds: the segment's `IPC_STAT` status, permission
    /// version and the processes whose exit would change it; `None` for
    /// an empty slot.
    pub fn shm_status(&self, idx: u32) -> Option<ShmStatus> {
        let idx = i32::try_from(idx).ok()?;
        let (id, seg) = self.shm.ids.obtain_idx(idx).ok()?;
        let mut pids: Vec<Pid> =
            self.mms.iter().filter(|(_, mm)| mm.vmas().any(|v| v.id == id)).map(|(pid, _)| *pid).collect();
        for pid in seg.fast.keys() {
            if !pids.contains(pid) {
                pids.push(*pid);
            }
        }
        if self.limits.shm_rmid_forced {
            pids.extend(seg.creator.filter(|c| !pids.contains(c)));
        }
        Some(ShmStatus { id, perm_version: seg.perm_version, ds: seg.to_abi(), live: seg.live, pids })
    }

    /// The permission version of segment `id` (see [`ShmStatus`]).
    ///
    /// # Errors
    /// `EINVAL` for no such id.
    pub fn shm_perm_version(&self, id: i32) -> Result<u32, Errno> {
        Ok(self.shm.ids.obtain_check(id)?.perm_version)
    }

    /// `/proc/sysvipc/shm` of this namespace (SPEC 8.4), in slot order.
    pub fn proc_sysvipc_shm(&self) -> String {
        let mut out = String::from(
            "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n",
        );
        for (id, s) in self.shm.ids.iter() {
            let p = &s.perm;
            let rss = self.memory.resident_pages(&s.region) * PAGE_SIZE;
            out += &format!(
                "{:10} {:10}  {:4o} {:21} {:5} {:5}  {:5} {:5} {:5} {:5} {:5} {:10} {:10} {:10} {:21} {:21}\n",
                p.key.0,
                id.0,
                p.mode,
                s.segsz,
                s.cpid.0,
                s.lpid.0,
                s.total_nattch(),
                p.uid.0,
                p.gid.0,
                p.cuid.0,
                p.cgid.0,
                s.atime.0,
                s.dtime.0,
                s.ctime.0,
                rss,
                0
            );
        }
        out
    }

    /// Process `pid`'s System V shm mappings, by address.
    pub fn shm_mappings(&self, pid: Pid) -> Vec<ShmVma> {
        self.mms.get(&pid).map(|mm: &Mm| mm.vmas().copied().collect()).unwrap_or_default()
    }
}

#[cfg(feature = "serde")]
impl<R> ShmSegment<R> {
    /// The same segment with its region converted by `f` (a restarted
    /// host re-opening the recorded memory).
    ///
    /// # Errors
    /// `f`'s.
    pub(crate) fn try_map_region<U, E>(self, f: impl FnOnce(R) -> Result<U, E>) -> Result<ShmSegment<U>, E> {
        Ok(ShmSegment {
            perm: self.perm,
            segsz: self.segsz,
            nattch: self.nattch,
            fast: self.fast,
            live: self.live,
            atime: self.atime,
            dtime: self.dtime,
            ctime: self.ctime,
            cpid: self.cpid,
            lpid: self.lpid,
            region: f(self.region)?,
            creator: self.creator,
            locked_by: self.locked_by,
            perm_version: self.perm_version,
        })
    }
}
