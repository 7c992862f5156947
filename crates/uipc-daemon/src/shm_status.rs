//! The daemon's side of the segment status regions (`docs/architecture.md`,
//! "Queries of segments").
//!
//! A namespace gets its region when a client first asks for one (a
//! [`Request::ShmStat`] with `region`); from then on, after every event
//! that may change a segment — each request, a connection's close, a
//! process's exit — the daemon rewrites the entries of the slots the model
//! reports changed ([`IpcNamespace::shm_take_changed`]), before any reply
//! of that event leaves. So whatever a client learns from the daemon
//! (a reply) was published before it learnt it, and a read of the region
//! after a call returned sees that call's effect, as `IPC_STAT` would.
//!
//! [`IpcNamespace::shm_take_changed`]: uipc_core::IpcNamespace::shm_take_changed

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;

use tracing::warn;
use uipc_abi::Errno;
use uipc_core::cred::Cred;
use uipc_core::sysv::shm::ShmCmd;
use uipc_core::Memory;
use uipc_proto::Response;
use uipc_sys::memfd::{MemfdMemory, SharedRegion};
use uipc_sys::shm_status::{ShmHeader, ShmStatus, StatusEntry};

use crate::server::{now, Daemon};

/// One namespace's region.
#[derive(Debug)]
struct Region {
    /// The file (a memfd: the region is derived from the model, never
    /// kept across a restart).
    file: SharedRegion,
    status: ShmStatus,
    /// The header as last published.
    header: ShmHeader,
}

/// Every namespace's region.
#[derive(Debug, Default)]
pub(crate) struct ShmRegions {
    spaces: HashMap<String, Region>,
}

/// What `shmctl(IPC_INFO)` reports of `model` (the core's `IpcInfo`).
fn shm_header(model: &uipc_core::IpcNamespace<crate::DaemonMemory>) -> ShmHeader {
    let l = model.limits();
    ShmHeader { shmmax: l.shmmax, shmall: l.shmall, shmmni: l.shmmni, max_idx: model.shm_max_idx() }
}

impl Daemon {
    /// Rewrites the entries of namespace `ns` whose segments changed (no
    /// work for a namespace without a region).
    pub(crate) fn shm_publish(&mut self, ns: &str) {
        let Some(region) = self.shm_regions.spaces.get_mut(ns) else { return };
        let Some(model) = self.namespaces.get_mut(ns) else { return };
        // The header is a few words: compared at every event (a sysctl
        // write changes it without touching a segment).
        let header = shm_header(model);
        if header != region.header {
            region.status.publish_header(&header);
            region.header = header;
        }
        let changed = model.shm_take_changed();
        if changed.is_empty() {
            return;
        }
        // Attaches in progress (`ShmAt` answered, `ShmAtDone` not yet in)
        // hold their segment: their process's death releases the hold.
        let mut pending: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for c in self.conns.values().filter(|c| !c.pending.is_empty() && c.ns.as_deref() == Some(ns)) {
            for p in c.pending.values() {
                pending.entry(p.id.idx()).or_default().push(c.cred.pid.0);
            }
        }
        let Some(model) = self.namespaces.get(ns) else { return };
        for idx in changed {
            let entry = match model.shm_status(idx) {
                None => None,
                Some(s) => {
                    let mut pids: Vec<u32> = s.pids.iter().map(|p| p.0).collect();
                    for p in pending.get(&idx).into_iter().flatten() {
                        if !pids.contains(p) {
                            pids.push(*p);
                        }
                    }
                    Some(StatusEntry::new(s.id.0, s.perm_version, s.ds, &pids))
                }
            };
            region.status.publish(idx, entry.as_ref());
        }
    }

    /// Publishes every namespace process `pid` may hold segments in, and `home`.
    pub(crate) fn shm_publish_for(&mut self, pid: u32, home: Option<&str>) {
        if self.shm_regions.spaces.is_empty() {
            return;
        }
        let regions = &self.shm_regions.spaces;
        // Only namespaces with a region have anything to publish.
        let mut spaces: Vec<String> = self
            .procs
            .get(&pid)
            .map(|p| p.namespaces.iter().filter(|n| regions.contains_key(*n)).cloned().collect())
            .unwrap_or_default();
        if let Some(h) = home.filter(|h| regions.contains_key(*h) && !spaces.iter().any(|s| s == h)) {
            spaces.push(h.to_owned());
        }
        for ns in spaces {
            self.shm_publish(&ns);
        }
    }

    /// A read-only descriptor of namespace `ns`'s region, made (and filled
    /// with every segment) on first use.
    fn shm_region_fd(&mut self, ns: &str) -> Result<OwnedFd, Errno> {
        if !self.shm_regions.spaces.contains_key(ns) {
            let file = MemfdMemory.allocate(ShmStatus::len())?;
            let status = ShmStatus::create(file.fd())?;
            let model = self.namespaces.get_mut(ns).ok_or(Errno::EIDRM)?;
            // Everything is published below: what changed before is in it.
            let _ = model.shm_take_changed();
            for idx in model.shm_slots() {
                if let Some(s) = model.shm_status(idx) {
                    let pids: Vec<u32> = s.pids.iter().map(|p| p.0).collect();
                    status.publish(idx, Some(&StatusEntry::new(s.id.0, s.perm_version, s.ds, &pids)));
                }
            }
            let header = shm_header(model);
            status.publish_header(&header);
            self.shm_regions.spaces.insert(ns.to_owned(), Region { file, status, header });
            // Attaches in progress now show their holders.
            let held: Vec<u32> = self
                .conns
                .values()
                .filter(|c| c.ns.as_deref() == Some(ns))
                .flat_map(|c| c.pending.values().map(|p| p.id.idx()))
                .collect();
            if !held.is_empty() {
                if let Some(model) = self.namespaces.get_mut(ns) {
                    model.shm_touch_slots(&held);
                }
                self.shm_publish(ns);
            }
        }
        let region = self.shm_regions.spaces.get(ns).ok_or(Errno::EIO)?;
        region.file.reopen(uipc_abi::pshm::O_RDONLY.cast_unsigned())
    }

    /// [`Request::ShmStat`](uipc_proto::Request::ShmStat): `shmctl`'s
    /// answer for a `*_STAT` command, with the permission version the
    /// caller's read grant holds for (the check is the core's, as for
    /// `ShmCtl`), and the region if asked for.
    pub(crate) fn shm_stat_grant(
        &mut self,
        ns: &str,
        cred: &Cred,
        id: i32,
        cmd: i32,
        region: bool,
    ) -> Result<(Response, Option<OwnedFd>), Errno> {
        let decoded = ShmCmd::decode(id, cmd)?;
        if !matches!(decoded, ShmCmd::IpcStat | ShmCmd::ShmStat | ShmCmd::ShmStatAny) {
            return Err(Errno::EINVAL);
        }
        let model = self.namespaces.get_mut(ns).ok_or(Errno::EIDRM)?;
        let (ret, out) = model.shmctl(cred, now(), id, decoded, None)?;
        let uipc_core::sysv::shm::ShmCtlOut::Ds(ds) = out else { return Err(Errno::EIO) };
        let full = if decoded == ShmCmd::IpcStat { id } else { ret };
        let perm_version = model.shm_perm_version(full)?;
        let fd = if region {
            match self.shm_region_fd(ns) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    // The caller simply keeps asking the daemon.
                    warn!(ns, error = ?e, "no segment status region");
                    None
                }
            }
        } else {
            None
        };
        Ok((Response::ShmStat { ret: i64::from(ret), ds, perm_version }, fd))
    }

    /// [`Request::StatusRegion`](uipc_proto::Request::StatusRegion): a
    /// read-only descriptor of namespace `ns`'s region of `kind`.
    pub(crate) fn status_region(
        &mut self,
        ns: &str,
        kind: uipc_proto::StatusKind,
    ) -> Result<(Response, Option<OwnedFd>), Errno> {
        let fd = match kind {
            uipc_proto::StatusKind::Shm => self.shm_region_fd(ns)?,
        };
        Ok((Response::Fd, Some(fd)))
    }

    /// The namespace `ns` is gone: its region tells its readers so.
    pub(crate) fn shm_regions_forget(&mut self, ns: &str) {
        if let Some(r) = self.shm_regions.spaces.remove(ns) {
            r.status.mark_dead();
        }
    }
}
