//! The daemon's side of System V message queues' state pages
//! (`docs/architecture.md`, "The data plane").
//!
//! A queue gets a page at its first grant ([`Request::MsgGrant`]). Around
//! every event that may read or change queues with pages, the daemon locks
//! those pages and *adopts* them into the model ([`Daemon::msg_enter`]:
//! callers may have sent and received in their own address space), runs
//! the core as always, then *publishes* the model into the pages — with
//! `SLEEPERS` set while a sender or receiver is parked, so every change
//! then comes here and the kernel's hand-off order holds — and unlocks
//! ([`Daemon::msg_leave`]). A page that fails validation, or whose lock
//! stays held past [`LOCK_BOUND`], makes its queue damaged: logged,
//! answered with `EIDRM` (removal still works), never a panic. A queue that
//! outgrows its page (`IPC_SET` raised `qbytes`) gets a new one: the old
//! one is marked removed, and its holders ask for a grant again.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tracing::{info, warn};
use uipc_abi::{Errno, IPC_RMID, IPC_SET, IPC_STAT};
use uipc_core::cred::Cred;
use uipc_core::sysv::msg_page::MsgPage;
use uipc_proto::{Request, Response};
use uipc_sys::memfd::SharedRegion;
use uipc_sys::msg_page::MsgQueuePage;
use uipc_sys::state_page::{Guard, Locked, Retire, StatePage};

use crate::sem_pages::{Scope, LOCK_BOUND};
use crate::server::Daemon;

type Model = uipc_core::IpcNamespace<crate::DaemonMemory>;

/// One queue's page.
#[derive(Debug)]
struct QueuePage {
    region: SharedRegion,
    page: MsgQueuePage,
    damaged: bool,
}

/// The pages of every namespace, and those the current event holds.
#[derive(Debug, Default)]
pub(crate) struct MsgPages {
    spaces: HashMap<String, BTreeMap<i32, QueuePage>>,
    held: Vec<(String, i32, Guard<Arc<StatePage>>)>,
    depth: u32,
}

impl MsgPages {
    /// The queues whose pages the current event holds.
    pub(crate) fn held_ids(&self) -> impl Iterator<Item = (&str, u64)> {
        self.held.iter().filter_map(|(ns, id, _)| Some((ns.as_str(), u64::try_from(*id).ok()?)))
    }

    /// Whether queue `id` of `ns` has a page.
    pub(crate) fn has(&self, ns: &str, id: u64) -> bool {
        i32::try_from(id).is_ok_and(|id| self.spaces.get(ns).is_some_and(|s| s.contains_key(&id)))
    }
}

/// Which queues request `req` concerns.
pub(crate) fn scope(req: &Request) -> Scope {
    use uipc_abi::{IPC_INFO, MSG_INFO, MSG_STAT, MSG_STAT_ANY};
    match req {
        Request::MsgSnd { id, .. } | Request::MsgRcv { id, .. } | Request::MsgGrant { id } => Scope::Set(*id),
        Request::Stat { kind: uipc_proto::StatusKind::Msg, id, cmd, .. } if cmd & 0xff == IPC_STAT => Scope::Set(*id),
        Request::Stat { kind: uipc_proto::StatusKind::Msg, .. } => Scope::All,
        Request::MsgCtl { id, cmd, .. } if [IPC_STAT, IPC_SET, IPC_RMID].contains(&(cmd & 0xff)) => Scope::Set(*id),
        Request::MsgCtl { cmd, .. } if [MSG_STAT, MSG_STAT_ANY, IPC_INFO, MSG_INFO].contains(&(cmd & 0xff)) => {
            Scope::All
        }
        Request::MsgCtl { .. }
        | Request::MsgGet { .. }
        | Request::SemGet { .. }
        | Request::SemOp { .. }
        | Request::SemCtl { .. }
        | Request::SemGrant { .. }
        | Request::ShmGet { .. }
        | Request::ShmAt { .. }
        | Request::ShmAtDone { .. }
        | Request::ShmDt { .. }
        | Request::ShmCtl { .. }
        | Request::ShmStat { .. }
        | Request::ShmAttach { .. }
        | Request::ShmGetGrant { .. }
        | Request::ShmAttachGrant { .. }
        | Request::ShmRecord { .. }
        | Request::StatusRegion { .. }
        | Request::Stat { kind: uipc_proto::StatusKind::Shm | uipc_proto::StatusKind::Sem, .. }
        | Request::Munmap { .. }
        | Request::Mprotect { .. }
        | Request::Recheck { .. }
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
        | Request::MqGrant { .. } => Scope::Nothing,
        _ => Scope::All,
    }
}

impl Daemon {
    /// Locks and adopts the pages of namespace `ns` that `scope` names.
    /// Nested calls hold what the outermost took; [`msg_leave`]
    /// (Self::msg_leave) publishes at the outermost.
    ///
    /// # Errors
    /// `EIDRM` when the one queue named is damaged.
    pub(crate) fn msg_enter(&mut self, ns: &str, scope: Scope) -> Result<(), Errno> {
        self.msg_pages.depth += 1;
        let Some(space) = self.msg_pages.spaces.get_mut(ns) else { return Ok(()) };
        let Some(model) = self.namespaces.get_mut(ns) else { return Ok(()) };
        let ids: Vec<i32> = match scope {
            Scope::Nothing => return Ok(()),
            Scope::Set(id) => vec![id],
            Scope::All => space.keys().copied().collect(),
        };
        for id in ids {
            let Some(q) = space.get_mut(&id) else { continue };
            if q.damaged {
                if scope == Scope::Set(id) {
                    return Err(Errno::EIDRM);
                }
                continue;
            }
            if self.msg_pages.held.iter().any(|(n, i, _)| n == ns && *i == id) {
                continue;
            }
            // A lock glibc rejects (EINVAL: a mutex scribbled on) is damage,
            // not the model's "no such queue" below.
            let stale = self.durable.take_stale(ns, crate::durable::MSG_PAGE, u64::try_from(id).unwrap_or(u64::MAX));
            let lock = q.page.lock(LOCK_BOUND).map_err(|e| if e == Errno::EINVAL { Errno::EUCLEAN } else { e });
            let adopted = lock.and_then(|(guard, how)| {
                if how == Locked::Repaired {
                    info!(ns, msqid = id, "a process died holding a message queue's lock: its change was rolled back");
                }
                if stale {
                    // Older than the recorded queue: the publish rewrites it.
                    return Ok(guard);
                }
                q.page.with_body(&guard, |b| model.msg_adopt(id, b)).map(|()| guard)
            });
            match adopted {
                Ok(guard) => self.msg_pages.held.push((ns.to_owned(), id, guard)),
                // Removed from the model: msg_leave marks the page.
                Err(Errno::EINVAL) => {}
                Err(e) => {
                    warn!(ns, msqid = id, error = ?e, "message queue damaged: its page is corrupt or its lock is stuck");
                    q.page.mark_damaged();
                    q.damaged = true;
                    if scope == Scope::Set(id) {
                        return Err(Errno::EIDRM);
                    }
                }
            }
        }
        Ok(())
    }

    /// Publishes the model into the held pages of namespace `ns` and
    /// unlocks them (at the outermost call); pages of queues that are gone
    /// are marked removed.
    pub(crate) fn msg_leave(&mut self, ns: &str) {
        self.msg_pages.depth = self.msg_pages.depth.saturating_sub(1);
        if self.msg_pages.depth > 0 {
            return;
        }
        // Write-ahead: the record of what the event changed (and its
        // answers) before the pages show it.
        let stamp = self.persist_before_publish();
        let held = std::mem::take(&mut self.msg_pages.held);
        for (n, id, guard) in held {
            let (Some(space), Some(model)) = (self.msg_pages.spaces.get_mut(&n), self.namespaces.get_mut(&n)) else {
                continue;
            };
            let Some(q) = space.get(&id) else { continue };
            if publish(model, id, q, &guard) {
                guard.stamp(stamp);
            } else {
                q.page.mark_removed(&guard);
                drop(guard);
                space.remove(&id);
            }
        }
        let Some(space) = self.msg_pages.spaces.get_mut(ns) else { return };
        let Some(model) = self.namespaces.get(ns) else {
            self.msg_pages_forget(ns);
            return;
        };
        let ids = model.msg_ids();
        let gone: Vec<i32> = space.keys().copied().filter(|k| ids.binary_search_by_key(k, |i| i.0).is_err()).collect();
        for id in gone {
            if let Some(q) = space.remove(&id) {
                q.page.retire(LOCK_BOUND);
            }
        }
    }

    /// The namespace `ns` is gone: so are its pages (their holders find
    /// them removed).
    pub(crate) fn msg_pages_forget(&mut self, ns: &str) {
        self.msg_pages.held.retain(|(n, _, _)| n != ns);
        for (_, q) in self.msg_pages.spaces.remove(ns).unwrap_or_default() {
            q.page.retire(LOCK_BOUND);
        }
    }

    /// The regions of `ns`'s queue pages.
    pub(crate) fn msg_page_regions(&self, ns: &str) -> Vec<SharedRegion> {
        self.msg_pages.spaces.get(ns).map(|s| s.values().map(|q| q.region.clone()).collect()).unwrap_or_default()
    }

    /// A restarted daemon takes the page of queue `id` found in its state
    /// directory; the next [`msg_enter`](Self::msg_enter) locks and adopts it.
    ///
    /// # Errors
    /// The page is not a valid message queue page.
    pub(crate) fn msg_page_restore(&mut self, ns: &str, id: i32, region: SharedRegion) -> Result<(), Errno> {
        let page = MsgQueuePage::open(region.fd(), true)?;
        self.msg_pages.spaces.entry(ns.to_owned()).or_default().insert(id, QueuePage { region, page, damaged: false });
        Ok(())
    }

    /// [`Request::MsgGrant`]: the page of queue `id` for `cred`,
    /// read-write, with write permission (`msgsnd`; `msgrcv` too with read
    /// permission); made at the first grant. Runs inside
    /// [`msg_enter`](Self::msg_enter) of the queue.
    pub(crate) fn msg_grant(&mut self, ns: &str, cred: &Cred, id: i32) -> Result<(Response, Option<OwnedFd>), Errno> {
        let model = self.namespaces.get_mut(ns).ok_or(Errno::EIDRM)?;
        let access = model.msg_access(cred, id)?;
        if !access.send {
            return Err(Errno::EACCES);
        }
        let space = self.msg_pages.spaces.entry(ns.to_owned()).or_default();
        let q = match space.entry(id) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(new_page(model, id, &mut self.page_files, ns)?),
        };
        if q.damaged {
            return Err(Errno::EIDRM);
        }
        let fd = q.region.fd().try_clone_to_owned().map_err(|_| Errno::EMFILE)?;
        Ok((Response::MsgGrant { receive: access.receive, perm_version: access.perm_version }, Some(fd)))
    }
}

/// A new page for queue `id`, in the namespace's memory, holding the
/// model's state.
fn new_page(model: &mut Model, id: i32, files: &mut crate::durable::PageFiles, ns: &str) -> Result<QueuePage, Errno> {
    let geo = model.msg_page_geometry(id)?.ok_or(Errno::EINVAL)?;
    let region = files.region(ns, crate::durable::MSG_PAGE, id, MsgQueuePage::len_for(geo))?;
    let page = MsgQueuePage::create(region.fd(), geo)?;
    let (guard, _) = page.lock(LOCK_BOUND)?;
    page.with_body(&guard, |b| model.msg_page_init(id, b))?;
    let (sleepers, perm_version) = model.msg_page_flags(id)?;
    page.set_state(&guard, sleepers, perm_version);
    drop(guard);
    Ok(QueuePage { region, page, damaged: false })
}

/// Shows the model's state of queue `id` in its page (held by `guard`).
/// `false` when the page cannot show it (the queue is gone, or outgrew
/// the page): the caller marks it removed and forgets it.
fn publish(model: &mut Model, id: i32, q: &QueuePage, guard: &Guard<Arc<StatePage>>) -> bool {
    let Ok(Some(need)) = model.msg_page_geometry(id) else { return false };
    let fits = q.page.with_body(guard, |b| {
        MsgPage::open(b).map(|p| {
            let g = p.geometry();
            need.idx_cap <= g.idx_cap && need.arena_cap <= g.arena_cap
        })
    });
    if fits != Ok(true) {
        return false;
    }
    if q.page.with_body(guard, |b| model.msg_publish(id, b)).is_err() {
        return false;
    }
    match model.msg_page_flags(id) {
        Ok((sleepers, perm_version)) => {
            q.page.set_state(guard, sleepers, perm_version);
            true
        }
        Err(_) => false,
    }
}
