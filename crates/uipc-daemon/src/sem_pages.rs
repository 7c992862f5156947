//! The daemon's side of semaphore sets' state pages (`docs/architecture.md`,
//! "The data plane").
//!
//! Around every event that may read or change sets, the daemon locks the
//! pages it concerns and *adopts* them into the model ([`Daemon::sem_enter`]:
//! callers may have changed values, pids, `otime` and their undo slots in
//! their own address space), runs the core as always, then *publishes* the
//! model into the pages and unlocks ([`Daemon::sem_leave`]). A page that
//! fails validation, or whose lock stays held past [`LOCK_BOUND`], makes its
//! set damaged: logged, answered with `EIDRM` (removal still works), never
//! a panic; every other set is served as before.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};
use uipc_abi::Errno;
use uipc_core::cred::{Cred, Pid};
use uipc_proto::{Request, Response};
use uipc_sys::memfd::SharedRegion;
use uipc_sys::sem_page::{SemPage, UNDO_SLOTS};
use uipc_sys::state_page::{Guard, Locked, Retire, StatePage};

use crate::server::Daemon;

/// How long the daemon waits for a page's lock before it gives the set up
/// as damaged (a holder that stopped inside its critical section).
pub(crate) const LOCK_BOUND: Duration = Duration::from_secs(2);

/// One set's page.
#[derive(Debug)]
pub(crate) struct SetPage {
    region: SharedRegion,
    page: SemPage,
    /// The owner of each undo slot: the daemon's record, not the page's.
    owners: Vec<Option<Pid>>,
    damaged: bool,
}

/// The owner (pid) of each undo slot of a page, as recorded.
pub(crate) type SlotOwners = Vec<Option<u32>>;

/// Which sets an event concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// None.
    Nothing,
    /// One set, named by the request.
    Set(i32),
    /// Every set of the namespace (exits, timeouts, removals, listings).
    All,
}

/// The pages of every namespace, and those the current event holds.
#[derive(Debug, Default)]
pub(crate) struct SemPages {
    spaces: HashMap<String, BTreeMap<i32, SetPage>>,
    held: Vec<(String, i32, Guard<Arc<StatePage>>)>,
    depth: u32,
    /// Sets whose undo-slot owners (or page) changed since the state
    /// directory last recorded them.
    owners_dirty: std::collections::BTreeSet<(String, i32)>,
}

impl SemPages {
    /// The sets whose pages the current event holds.
    pub(crate) fn held_ids(&self) -> impl Iterator<Item = (&str, u64)> {
        self.held.iter().filter_map(|(ns, id, _)| Some((ns.as_str(), u64::try_from(*id).ok()?)))
    }

    /// Whether set `id` of `ns` has a page.
    pub(crate) fn has(&self, ns: &str, id: u64) -> bool {
        i32::try_from(id).is_ok_and(|id| self.spaces.get(ns).is_some_and(|s| s.contains_key(&id)))
    }

    /// Forgets every page of namespace `ns` (removed): their holders find
    /// them removed.
    fn forget_space(&mut self, ns: &str) {
        for (_, set) in self.spaces.remove(ns).unwrap_or_default() {
            set.page.retire(LOCK_BOUND);
        }
    }
}

/// Which sets request `req` concerns.
pub(crate) fn scope(req: &Request) -> Scope {
    use uipc_abi::{IPC_INFO, SEM_INFO, SEM_STAT, SEM_STAT_ANY};
    match req {
        Request::SemOp { id, .. } | Request::SemGrant { id } => Scope::Set(*id),
        Request::SemCtl { id, cmd, .. } if ![SEM_STAT, SEM_STAT_ANY, IPC_INFO, SEM_INFO].contains(&(cmd & 0xff)) => {
            Scope::Set(*id)
        }
        Request::SemGet { .. } => Scope::Nothing,
        Request::Stat { kind: uipc_proto::StatusKind::Sem, id, cmd, .. } if cmd & 0xff == uipc_abi::IPC_STAT => {
            Scope::Set(*id)
        }
        Request::ShmGet { .. }
        | Request::ShmAt { .. }
        | Request::ShmAtDone { .. }
        | Request::ShmDt { .. }
        | Request::ShmCtl { .. }
        | Request::Munmap { .. }
        | Request::Mprotect { .. }
        | Request::Recheck { .. }
        | Request::MsgGet { .. }
        | Request::MsgSnd { .. }
        | Request::MsgRcv { .. }
        | Request::MsgCtl { .. }
        | Request::PshmOpen { .. }
        | Request::SemOpen { .. }
        | Request::PshmUnlink { .. }
        | Request::PshmList
        | Request::MqOpen { .. }
        | Request::MqClose { .. }
        | Request::MqDup { .. }
        | Request::MqUnlink { .. }
        | Request::MqSend { .. }
        | Request::MqReceive { .. }
        | Request::MqNotify { .. }
        | Request::MqGetSetAttr { .. }
        | Request::MqStatus { .. }
        | Request::MqList
        | Request::MqGrant { .. }
        | Request::ShmStat { .. }
        | Request::ShmAttach { .. }
        | Request::ShmGetGrant { .. }
        | Request::ShmAttachGrant { .. }
        | Request::ShmRecord { .. }
        | Request::StatusRegion { .. }
        | Request::Stat { kind: uipc_proto::StatusKind::Shm | uipc_proto::StatusKind::Msg, .. }
        | Request::MsgGrant { .. } => Scope::Nothing,
        _ => Scope::All,
    }
}

/// Whether request `req` may create or remove sets (the pages follow).
pub(crate) fn reconciles(req: &Request) -> bool {
    !matches!(scope(req), Scope::Nothing) || matches!(req, Request::SemGet { .. })
}

impl Daemon {
    /// Locks and adopts the pages of namespace `ns` that `scope` names.
    /// Nested calls (an exit inside a request) hold what the outermost
    /// took; [`sem_leave`](Self::sem_leave) publishes at the outermost.
    ///
    /// # Errors
    /// `EIDRM` when the one set named is damaged.
    pub(crate) fn sem_enter(&mut self, ns: &str, scope: Scope) -> Result<(), Errno> {
        self.sem_pages.depth += 1;
        let Some(space) = self.sem_pages.spaces.get_mut(ns) else { return Ok(()) };
        let Some(model) = self.namespaces.get_mut(ns) else { return Ok(()) };
        let ids: Vec<i32> = match scope {
            Scope::Nothing => return Ok(()),
            Scope::Set(id) => vec![id],
            Scope::All => space.keys().copied().collect(),
        };
        for id in ids {
            let Some(set) = space.get_mut(&id) else { continue };
            if set.damaged {
                if scope == Scope::Set(id) {
                    return Err(Errno::EIDRM);
                }
                continue;
            }
            if self.sem_pages.held.iter().any(|(n, i, _)| n == ns && *i == id) {
                continue;
            }
            // A lock glibc rejects (EINVAL: a mutex scribbled on) is damage,
            // not the model's "no such set" below.
            let stale = self.durable.take_stale(ns, crate::durable::SEM_PAGE, u64::try_from(id).unwrap_or(u64::MAX));
            let lock = set.page.lock(LOCK_BOUND).map_err(|e| if e == Errno::EINVAL { Errno::EUCLEAN } else { e });
            let adopted = lock.and_then(|(guard, how)| {
                if how == Locked::Repaired {
                    info!(ns, semid = id, "a process died holding a semaphore set's lock: its change was rolled back");
                }
                let shared = set.page.shared(&guard, &set.owners);
                if stale {
                    // Older than the recorded set: the publish rewrites it.
                    return Ok(guard);
                }
                model.sem_adopt(id, &shared).map(|()| guard)
            });
            match adopted {
                Ok(guard) => self.sem_pages.held.push((ns.to_owned(), id, guard)),
                Err(Errno::EINVAL) => {}
                Err(e) => {
                    warn!(ns, semid = id, error = ?e, "semaphore set damaged: its page is corrupt or its lock is stuck");
                    set.page.mark_damaged();
                    set.damaged = true;
                    if scope == Scope::Set(id) {
                        return Err(Errno::EIDRM);
                    }
                }
            }
        }
        Ok(())
    }

    /// Publishes the model into the held pages of namespace `ns` and
    /// unlocks them; with `reconcile`, first gives new sets a page and
    /// marks removed sets' pages (at the outermost call only).
    pub(crate) fn sem_leave(&mut self, ns: &str, reconcile: bool) {
        self.sem_pages.depth = self.sem_pages.depth.saturating_sub(1);
        if self.sem_pages.depth > 0 {
            return;
        }
        let Some(model) = self.namespaces.get_mut(ns) else {
            self.sem_pages.held.clear();
            self.sem_pages.forget_space(ns);
            return;
        };
        let space = self.sem_pages.spaces.entry(ns.to_owned()).or_default();
        let mut created = Vec::new();
        if reconcile {
            let ids = model.sem_ids();
            for id in &ids {
                if space.contains_key(&id.0) {
                    continue;
                }
                match new_page(model, id.0, &mut self.page_files, ns) {
                    Ok(set) => {
                        space.insert(id.0, set);
                        created.push(id.0);
                        self.sem_pages.owners_dirty.insert((ns.to_owned(), id.0));
                    }
                    Err(e) => {
                        warn!(ns, semid = id.0, error = ?e, "no state page for a new semaphore set: its callers use the daemon")
                    }
                }
            }
            let gone: Vec<i32> =
                space.keys().copied().filter(|k| ids.binary_search_by_key(k, |i| i.0).is_err()).collect();
            for id in gone {
                let Some(set) = space.remove(&id) else { continue };
                self.sem_pages.owners_dirty.insert((ns.to_owned(), id));
                let held = self.sem_pages.held.iter().position(|(n, i, _)| n == ns && *i == id);
                match held {
                    Some(at) => set.page.mark_removed(&self.sem_pages.held.swap_remove(at).2),
                    None => set.page.retire(LOCK_BOUND),
                }
            }
        }
        // Write-ahead: the record of what the event changed (and its
        // answers) before the pages show it.
        let stamp = self.persist_before_publish();
        let held = std::mem::take(&mut self.sem_pages.held);
        for (n, id, mut guard) in held {
            let Some(space) = self.sem_pages.spaces.get(&n) else { continue };
            let (Some(set), Some(model)) = (space.get(&id), self.namespaces.get(&n)) else { continue };
            publish(model, id, set, &mut guard);
            guard.stamp(stamp);
        }
        let (Some(space), Some(model)) = (self.sem_pages.spaces.get(ns), self.namespaces.get(ns)) else { return };
        for id in created {
            let Some(set) = space.get(&id) else { continue };
            if let Ok((mut guard, _)) = set.page.lock(LOCK_BOUND) {
                publish(model, id, set, &mut guard);
                guard.stamp(stamp);
            }
        }
    }

    /// Runs `f` between [`sem_enter`](Self::sem_enter) of every set of
    /// `ns` and [`sem_leave`](Self::sem_leave) (and the same for the
    /// namespace's message queues, System V and POSIX).
    pub(crate) fn with_sem_pages<T>(&mut self, ns: &str, f: impl FnOnce(&mut Daemon) -> T) -> T {
        let _ = self.sem_enter(ns, Scope::All);
        let _ = self.msg_enter(ns, Scope::All);
        let _ = self.mq_enter(ns, None);
        let r = f(self);
        self.mq_leave();
        self.msg_leave(ns);
        self.sem_leave(ns, true);
        r
    }

    /// The namespace `ns` is gone: so are its pages.
    pub(crate) fn sem_pages_forget(&mut self, ns: &str) {
        self.sem_pages.held.retain(|(n, _, _)| n != ns);
        self.sem_pages.forget_space(ns);
    }

    /// Process `pid` exited: its undo slots are free (its records were
    /// applied by the model's exit, between enter and leave).
    pub(crate) fn sem_pages_release(&mut self, pid: Pid) {
        for (ns, space) in &mut self.sem_pages.spaces {
            for (id, set) in space.iter_mut() {
                for owner in &mut set.owners {
                    if *owner == Some(pid) {
                        *owner = None;
                        self.sem_pages.owners_dirty.insert((ns.clone(), *id));
                    }
                }
            }
        }
    }

    /// The owner of each undo slot of every set of `ns` that has a page
    /// (recorded by the state directory).
    pub(crate) fn sem_owners(&self, ns: &str) -> Vec<(i32, SlotOwners)> {
        let Some(space) = self.sem_pages.spaces.get(ns) else { return Vec::new() };
        space.iter().map(|(id, set)| (*id, set.owners.iter().map(|o| o.map(|p| p.0)).collect())).collect()
    }

    /// The sets whose slot owners changed since the last call, with their
    /// owners now (`None`: the set has no page any more).
    pub(crate) fn sem_owners_changed(&mut self) -> Vec<(String, i32, Option<SlotOwners>)> {
        let changed = std::mem::take(&mut self.sem_pages.owners_dirty);
        changed
            .into_iter()
            .map(|(ns, id)| {
                let set = self.sem_pages.spaces.get(&ns).and_then(|s| s.get(&id));
                let owners = set.map(|set| set.owners.iter().map(|o| o.map(|p| p.0)).collect());
                (ns, id, owners)
            })
            .collect()
    }

    /// The names of the files of `ns`'s state pages (sets and queues).
    pub(crate) fn page_file_names(&self, ns: &str) -> Vec<String> {
        let sem = self.sem_pages.spaces.get(ns).into_iter().flat_map(|s| s.values().map(|p| &p.region));
        let msg = self.msg_page_regions(ns);
        sem.chain(msg.iter()).filter_map(|r| r.file_name()).collect()
    }

    /// A restarted daemon takes the page of set `id` found in its state
    /// directory, with the recorded owners of its undo slots; the next
    /// [`sem_enter`](Self::sem_enter) locks and adopts it.
    ///
    /// # Errors
    /// The page is not a valid semaphore set page for the set.
    pub(crate) fn sem_page_restore(
        &mut self,
        ns: &str,
        id: i32,
        region: SharedRegion,
        owners: Vec<Option<u32>>,
    ) -> Result<(), Errno> {
        let page = SemPage::open(region.fd(), true)?;
        let nsems = self.namespaces.get(ns).ok_or(Errno::EINVAL)?.sem_shared(id, &[])?.values.len();
        if page.nsems() != nsems {
            return Err(Errno::EUCLEAN);
        }
        let mut owners: Vec<Option<Pid>> = owners.into_iter().map(|o| o.map(Pid)).collect();
        owners.resize(UNDO_SLOTS, None);
        self.sem_pages
            .spaces
            .entry(ns.to_owned())
            .or_default()
            .insert(id, SetPage { region, page, owners, damaged: false });
        Ok(())
    }

    /// [`Request::SemGrant`]: the page of set `id` for `cred`, read-write
    /// with alter permission (and an undo slot if one is free), read-only
    /// with read permission.
    pub(crate) fn sem_grant(&mut self, ns: &str, cred: &Cred, id: i32) -> Result<(Response, Option<OwnedFd>), Errno> {
        let model = self.namespaces.get(ns).ok_or(Errno::EIDRM)?;
        let access = model.sem_access(cred, id)?;
        if !access.alter && !access.read {
            return Err(Errno::EACCES);
        }
        let set = self.sem_pages.spaces.get_mut(ns).and_then(|s| s.get_mut(&id)).ok_or(Errno::EINVAL)?;
        if set.damaged {
            return Err(Errno::EIDRM);
        }
        let slot = if access.alter {
            let mine = set.owners.iter().position(|o| *o == Some(cred.pid));
            let free = || set.owners.iter().position(Option::is_none);
            let slot = mine.or_else(free);
            if let Some(s) = slot {
                if set.owners[s].is_none() {
                    self.sem_pages.owners_dirty.insert((ns.to_owned(), id));
                }
                // The slot shows the owner's record (if the model has one)
                // when this request's sem_leave publishes the page, which
                // sem_enter locked: locking it again here would wait for
                // this very thread.
                set.owners[s].get_or_insert(cred.pid);
            }
            slot
        } else {
            None
        };
        let fd = if access.alter {
            set.region.fd().try_clone_to_owned().map_err(|_| Errno::EMFILE)?
        } else {
            set.region.reopen(uipc_abi::pshm::O_RDONLY.cast_unsigned())?
        };
        let resp = Response::SemGrant {
            alter: access.alter,
            read: access.read,
            perm_version: access.perm_version,
            slot: slot.and_then(|s| u32::try_from(s).ok()),
        };
        Ok((resp, Some(fd)))
    }
}

/// A new page for set `id`, in the namespace's memory.
fn new_page(
    model: &mut uipc_core::IpcNamespace<crate::DaemonMemory>,
    id: i32,
    files: &mut crate::durable::PageFiles,
    ns: &str,
) -> Result<SetPage, Errno> {
    let nsems = model.sem_shared(id, &[])?.values.len();
    let region = files.region(ns, crate::durable::SEM_PAGE, id, SemPage::len_for(nsems))?;
    let page = SemPage::create(region.fd(), nsems)?;
    Ok(SetPage { region, page, owners: vec![None; UNDO_SLOTS], damaged: false })
}

/// Shows the model's state of set `id` in its page (held by `guard`).
fn publish(
    model: &uipc_core::IpcNamespace<crate::DaemonMemory>,
    id: i32,
    set: &SetPage,
    guard: &mut Guard<Arc<StatePage>>,
) {
    let owners: Vec<Pid> = set.owners.iter().flatten().copied().collect();
    match (model.sem_shared(id, &owners), model.sem_published(id)) {
        (Ok(shared), Ok(published)) => set.page.publish(guard, &shared, &published, &set.owners),
        _ => set.page.mark_removed(guard),
    }
}
