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

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

use tracing::warn;
use uipc_abi::Errno;
use uipc_core::cred::Cred;
use uipc_core::sysv::shm::ShmCmd;
use uipc_proto::Response;
use uipc_sys::shm_status::{ShmHeader, ShmLayout, StatusEntry};

use crate::server::{now, Daemon};
use crate::status::Regions;

/// Every namespace's segment region.
pub(crate) type ShmRegions = Regions<ShmLayout>;

/// What `shmctl(IPC_INFO)` reports of `model` (the core's `IpcInfo`).
fn shm_header(model: &uipc_core::IpcNamespace<crate::DaemonMemory>) -> ShmHeader {
    let l = model.limits();
    ShmHeader { shmmax: l.shmmax, shmall: l.shmall, shmmni: l.shmmni, max_idx: model.shm_max_idx() }
}

impl Daemon {
    /// Rewrites the entries of namespace `ns` whose segments changed (no
    /// work for a namespace without a region).
    pub(crate) fn shm_publish(&mut self, ns: &str) {
        let Some(region) = self.shm_regions.get_mut(ns) else { return };
        let Some(model) = self.namespaces.get_mut(ns) else { return };
        // The header is a few words: compared at every event (a sysctl
        // write changes it without touching a segment).
        region.sync_header(shm_header(model));
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
        let (Some(model), Some(region)) = (self.namespaces.get(ns), self.shm_regions.get_mut(ns)) else { return };
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
                    Some(StatusEntry::new(s.id.0, s.perm_version, s.ds, &pids).with_live(s.live))
                }
            };
            region.region.publish(idx, entry.as_ref());
        }
    }

    /// Publishes every namespace process `pid` may hold segments in, and `home`.
    pub(crate) fn shm_publish_for(&mut self, pid: u32, home: Option<&str>) {
        if self.shm_regions.is_empty() {
            return;
        }
        let regions = &self.shm_regions;
        // Only namespaces with a region have anything to publish.
        let mut spaces: Vec<String> = self
            .procs
            .get(&pid)
            .map(|p| p.namespaces.iter().filter(|n| regions.has(n)).cloned().collect())
            .unwrap_or_default();
        if let Some(h) = home.filter(|h| regions.has(h) && !spaces.iter().any(|s| s == h)) {
            spaces.push(h.to_owned());
        }
        for ns in spaces {
            self.shm_publish(&ns);
        }
    }

    /// A read-only descriptor of namespace `ns`'s region, made (and filled
    /// with every segment) on first use.
    pub(crate) fn shm_region_fd(&mut self, ns: &str) -> Result<OwnedFd, Errno> {
        if !self.shm_regions.has(ns) {
            let model = self.namespaces.get_mut(ns).ok_or(Errno::EIDRM)?;
            let (region, _) = self.shm_regions.make(ns)?;
            // Everything is published below: what changed before is in it.
            let _ = model.shm_take_changed();
            for idx in model.shm_slots() {
                if let Some(s) = model.shm_status(idx) {
                    let pids: Vec<u32> = s.pids.iter().map(|p| p.0).collect();
                    let entry = StatusEntry::new(s.id.0, s.perm_version, s.ds, &pids).with_live(s.live);
                    region.region.publish(idx, Some(&entry));
                }
            }
            region.sync_header(shm_header(model));
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
        self.shm_regions.fd(ns)
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

    /// The namespace `ns` is gone: its region tells its readers so.
    pub(crate) fn shm_regions_forget(&mut self, ns: &str) {
        self.shm_regions.forget(ns);
    }
}
