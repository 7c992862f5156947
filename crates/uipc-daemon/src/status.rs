//! The daemon's side of the status regions (`docs/architecture.md`,
//! "Queries without a round trip"): one store per kind of region
//! ([`Regions`]), each namespace's region made on first use and given up
//! when the namespace goes; the mechanisms (`shm_status`, `sem_status`,
//! `msg_status`)
//! say what their header and entries hold.
//!
//! After every event — a request, a connection's close, a process's exit —
//! [`Daemon::status_publish_for`] rewrites what changed in the regions of
//! the namespaces the event may have touched, before any reply of that
//! event leaves: whatever a client learnt from the daemon is already in
//! the region when it reads it.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;

use tracing::warn;
use uipc_abi::Errno;
use uipc_core::Memory;
use uipc_proto::{Request, Response};
use uipc_sys::memfd::{MemfdMemory, SharedRegion};
use uipc_sys::status_region::{Layout, StatusRegion};

use crate::server::Daemon;

/// One namespace's region of layout `L`.
#[derive(Debug)]
pub(crate) struct Region<L: Layout> {
    /// The file (a memfd: the region is derived from the model, never
    /// kept across a restart).
    file: SharedRegion,
    pub(crate) region: StatusRegion<L>,
    /// The header as last published.
    header: Option<L::Header>,
    /// The entries as last published, by slot (kinds that compare).
    published: BTreeMap<u32, L::Entry>,
}

impl<L: Layout> Region<L> {
    /// Rewrites the header if it differs from the last one published.
    pub(crate) fn sync_header(&mut self, header: L::Header) {
        if self.header != Some(header) {
            self.region.publish_header(&header);
            self.header = Some(header);
        }
    }

    /// Rewrites slot `idx` if it differs from what was last published.
    pub(crate) fn sync_entry(&mut self, idx: u32, entry: Option<L::Entry>) {
        if self.published.get(&idx) == entry.as_ref() {
            return;
        }
        self.region.publish(idx, entry.as_ref());
        match entry {
            Some(e) => self.published.insert(idx, e),
            None => self.published.remove(&idx),
        };
    }

    /// Rewrites every slot that differs from `entries` (the whole model,
    /// by slot): those listed, and those no longer listed (vacant).
    pub(crate) fn sync_all(&mut self, entries: impl IntoIterator<Item = (u32, L::Entry)>) {
        let mut present = std::collections::BTreeSet::new();
        for (idx, e) in entries {
            present.insert(idx);
            self.sync_entry(idx, Some(e));
        }
        let gone: Vec<u32> = self.published.keys().filter(|i| !present.contains(i)).copied().collect();
        for idx in gone {
            self.sync_entry(idx, None);
        }
    }
}

/// Every namespace's region of layout `L`.
#[derive(Debug)]
pub(crate) struct Regions<L: Layout> {
    spaces: HashMap<String, Region<L>>,
}

impl<L: Layout> Default for Regions<L> {
    fn default() -> Self {
        Regions { spaces: HashMap::new() }
    }
}

impl<L: Layout> Regions<L> {
    /// Whether no namespace has a region.
    pub(crate) fn is_empty(&self) -> bool {
        self.spaces.is_empty()
    }

    /// Whether namespace `ns` has one.
    pub(crate) fn has(&self, ns: &str) -> bool {
        self.spaces.contains_key(ns)
    }

    /// Namespace `ns`'s region.
    pub(crate) fn get_mut(&mut self, ns: &str) -> Option<&mut Region<L>> {
        self.spaces.get_mut(ns)
    }

    /// Namespace `ns`'s region, made (empty) if it has none; `true` with
    /// it if it is new (the caller fills it).
    pub(crate) fn make(&mut self, ns: &str) -> Result<(&mut Region<L>, bool), Errno> {
        let new = !self.spaces.contains_key(ns);
        if new {
            let file = MemfdMemory.allocate(StatusRegion::<L>::len())?;
            let region = StatusRegion::<L>::create(file.fd())?;
            self.spaces.insert(ns.to_owned(), Region { file, region, header: None, published: BTreeMap::new() });
        }
        Ok((self.spaces.get_mut(ns).ok_or(Errno::EIO)?, new))
    }

    /// A read-only descriptor of namespace `ns`'s region.
    pub(crate) fn fd(&self, ns: &str) -> Result<OwnedFd, Errno> {
        let region = self.spaces.get(ns).ok_or(Errno::EIO)?;
        region.file.reopen(uipc_abi::pshm::O_RDONLY.cast_unsigned())
    }

    /// The namespace `ns` is gone: its region tells its readers so.
    pub(crate) fn forget(&mut self, ns: &str) {
        if let Some(r) = self.spaces.remove(ns) {
            r.region.mark_dead();
        }
    }
}

impl Daemon {
    /// Publishes what changed in the regions of every namespace process
    /// `pid` may hold objects in, and of `home`.
    pub(crate) fn status_publish_for(&mut self, pid: u32, home: Option<&str>) {
        if self.sem_regions.is_empty() && self.msg_regions.is_empty() {
            self.shm_publish_for(pid, home);
            return;
        }
        let mut spaces = self.procs.get(&pid).map(|p| p.namespaces.clone()).unwrap_or_default();
        if let Some(h) = home {
            spaces.insert(h.to_owned());
        }
        for ns in spaces {
            self.status_publish(&ns);
        }
    }

    /// Publishes what changed in namespace `ns`'s regions.
    pub(crate) fn status_publish(&mut self, ns: &str) {
        self.shm_publish(ns);
        self.sem_publish(ns);
        self.msg_publish(ns);
    }

    /// Notes what a request's answer tells the regions: a writable grant
    /// of a set's page lets other processes change the set's `sem_otime`,
    /// one of a queue's page its counts, pids and times.
    pub(crate) fn status_note(&mut self, ns: Option<&str>, granted: Option<i32>, resp: &Response) {
        match (ns, granted, resp) {
            (Some(ns), Some(id), Response::SemGrant { alter: true, .. }) => self.sem_live(ns, id),
            (Some(ns), Some(id), Response::MsgGrant { .. }) => self.msg_live(ns, id),
            _ => {}
        }
    }

    /// [`Request::StatusRegion`]: a read-only descriptor of namespace
    /// `ns`'s region of `kind`.
    pub(crate) fn status_region(
        &mut self,
        ns: &str,
        kind: uipc_proto::StatusKind,
    ) -> Result<(Response, Option<OwnedFd>), Errno> {
        Ok((Response::Fd, Some(self.status_region_fd(ns, kind)?)))
    }

    /// A read-only descriptor of namespace `ns`'s region of `kind`, made
    /// (and filled) on first use.
    pub(crate) fn status_region_fd(&mut self, ns: &str, kind: uipc_proto::StatusKind) -> Result<OwnedFd, Errno> {
        use uipc_proto::StatusKind;
        if !self.namespaces.contains_key(ns) {
            return Err(Errno::EIDRM);
        }
        let new = match kind {
            StatusKind::Shm => return self.shm_region_fd(ns),
            StatusKind::Sem => self.sem_regions.make(ns)?.1,
            StatusKind::Msg => self.msg_regions.make(ns)?.1,
        };
        if new {
            self.status_publish(ns);
        }
        match kind {
            StatusKind::Sem => self.sem_regions.fd(ns),
            _ => self.msg_regions.fd(ns),
        }
    }

    /// The answer to a [`Request::Stat`]: the call's value `ret`, the
    /// object's permission version and status `out`, and the region of
    /// `kind` if the caller asked for it (`region`; without one the caller
    /// simply keeps asking the daemon).
    pub(crate) fn stat_reply(
        &mut self,
        ns: &str,
        kind: uipc_proto::StatusKind,
        region: bool,
        (ret, perm_version, out): (i64, u32, uipc_proto::StatOut),
    ) -> Result<(Response, Option<OwnedFd>), Errno> {
        let fd = if region {
            self.status_region_fd(ns, kind).map_err(|e| warn!(ns, error = ?e, ?kind, "no status region")).ok()
        } else {
            None
        };
        Ok((Response::Stat { ret, perm_version, out }, fd))
    }

    /// The namespace `ns` is gone: so are its regions.
    pub(crate) fn status_forget(&mut self, ns: &str) {
        self.shm_regions_forget(ns);
        self.sem_regions.forget(ns);
        self.sem_live.remove(ns);
        self.msg_regions.forget(ns);
        self.msg_live.remove(ns);
    }
}

/// The set or queue a request asks a page grant of.
pub(crate) fn granted_set(req: &Request) -> Option<i32> {
    match req {
        Request::SemGrant { id } | Request::MsgGrant { id } => Some(*id),
        _ => None,
    }
}
