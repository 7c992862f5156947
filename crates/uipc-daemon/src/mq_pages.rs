//! The daemon's side of POSIX message queues' state pages
//! (`docs/architecture.md`, "The data plane" and "POSIX message queue
//! descriptors").
//!
//! A queue gets a page at its first grant ([`Request::MqGrant`]), to a
//! process holding a description of it opened for writing. Around every
//! event that may read or change queues with pages, the daemon locks those
//! pages and *adopts* them into the model ([`Daemon::mq_enter`]: callers
//! may have sent and received in their own address space), and reads
//! where the queue's pipe is (`poll`: the fast paths move it under the
//! lock, and one that died may have left it behind its level word). It runs the core as always, then ([`Daemon::mq_leave`])
//! *publishes* the model into the pages — with `SLEEPERS` while a sender
//! or receiver is parked, so every change then comes here and the
//! kernel's hand-off order holds — moves each pipe to the model's level
//! before it lets the lock go, and unlocks. A page whose queue is gone, or
//! whose pipe is gone (no description left: nobody may use the page), is
//! marked removed and forgotten. A page that fails validation, or whose
//! lock stays held past [`LOCK_BOUND`], makes its queue damaged: logged,
//! answered with `EIDRM`, never a panic.
//!
//! A daemon with a state directory makes its pages files there
//! (`mqp-INODE-N`, `crate::durable`): what the fast paths did before or
//! during a crash is in the file, which the restarted daemon locks
//! (rolling back a change its dead holder left half done), adopts and
//! keeps ([`Daemon::mq_page_restore`]).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use tracing::{info, warn};
use uipc_abi::Errno;
use uipc_core::cred::Cred;
use uipc_core::posix::mq_page::{MqLevel, MqPage};
use uipc_core::posix::mqueue::MqDescId;
use uipc_proto::Response;
use uipc_sys::memfd::SharedRegion;
use uipc_sys::mq_page::MqQueuePage;
use uipc_sys::mqfd::{self, Level};
use uipc_sys::state_page::{Guard, Locked, Retire, StatePage};

use crate::mq::MqPipe;
use crate::sem_pages::LOCK_BOUND;
use crate::server::Daemon;

type Model = uipc_core::IpcNamespace<crate::DaemonMemory>;

/// The permission version of every queue page: an open description's
/// access was decided at `mq_open` (the kernel checks nothing later), so
/// no permission change affects a grant.
const PERM_VERSION: u32 = 1;

/// One queue's page.
#[derive(Debug)]
struct QueuePage {
    /// Keeps the memory alive (the page maps it).
    _region: SharedRegion,
    page: MqQueuePage,
    damaged: bool,
}

/// The pages of every namespace (by queue inode), and those the current
/// event holds.
#[derive(Debug, Default)]
pub(crate) struct MqPages {
    spaces: HashMap<String, BTreeMap<u64, QueuePage>>,
    held: Vec<(String, u64, Guard<Arc<StatePage>>)>,
    depth: u32,
}

impl MqPages {
    /// The queues whose pages the current event holds.
    pub(crate) fn held_ids(&self) -> impl Iterator<Item = (&str, u64)> {
        self.held.iter().map(|(ns, id, _)| (ns.as_str(), *id))
    }

    /// Whether queue `id` of `ns` has a page.
    pub(crate) fn has(&self, ns: &str, id: u64) -> bool {
        self.spaces.get(ns).is_some_and(|s| s.contains_key(&id))
    }

    /// Whether queue `queue` of `ns` has a page the current event does
    /// not hold: its pipe is the fast paths' to move, not `mq_sync`'s.
    pub(crate) fn owns_level(&self, ns: &str, queue: u64) -> bool {
        let paged = self.spaces.get(ns).is_some_and(|s| s.get(&queue).is_some_and(|q| !q.damaged));
        paged && !self.held.iter().any(|(n, q, _)| n == ns && *q == queue)
    }
}

/// Moves pipe `p` to level `to`: from where it is believed to be, else
/// from where `poll` finds it (someone wrote into a descriptor, or a fast
/// path's move failed).
pub(crate) fn follow(p: &mut MqPipe, to: Level) {
    if let Ok(at) = mqfd::move_level(p.fd.as_fd(), p.level, to) {
        p.level = at;
    }
}

/// The readiness level of queue `queue` in the model.
fn model_level(model: &Model, queue: u64) -> Option<Level> {
    let (r, w) = model.mq_queue(queue)?.readiness();
    Some(Level::of(r, w))
}

impl Daemon {
    /// Locks and adopts the pages of namespace `ns`: queue `queue`'s, or
    /// every one. Nested calls hold what the outermost took;
    /// [`mq_leave`](Self::mq_leave) publishes at the outermost.
    ///
    /// # Errors
    /// `EIDRM` when the one queue named is damaged.
    pub(crate) fn mq_enter(&mut self, ns: &str, queue: Option<u64>) -> Result<(), Errno> {
        self.mq_pages.depth += 1;
        let Some(space) = self.mq_pages.spaces.get_mut(ns) else { return Ok(()) };
        let Some(model) = self.namespaces.get_mut(ns) else { return Ok(()) };
        let ids: Vec<u64> = match queue {
            Some(q) => vec![q],
            None => space.keys().copied().collect(),
        };
        for id in ids {
            let Some(q) = space.get_mut(&id) else { continue };
            if q.damaged {
                if queue.is_some() {
                    return Err(Errno::EIDRM);
                }
                continue;
            }
            if self.mq_pages.held.iter().any(|(n, i, _)| n == ns && *i == id) {
                continue;
            }
            // A lock glibc rejects (EINVAL: a mutex scribbled on) is damage.
            let stale = self.durable.take_stale(ns, crate::durable::MQ_PAGE, id);
            let lock = q.page.lock(LOCK_BOUND).map_err(|e| if e == Errno::EINVAL { Errno::EUCLEAN } else { e });
            let adopted = lock.and_then(|(guard, how)| {
                if how == Locked::Repaired {
                    info!(ns, queue = id, "a process died holding a message queue's lock: its change was rolled back");
                }
                let level = q.page.with_body(&guard, |b| {
                    if !stale {
                        // (A stale page is older than the recorded queue:
                        // the publish rewrites it.)
                        model.mq_adopt(id, b)?;
                    }
                    MqPage::open(b).and_then(|p| MqLevel::from_word(p.ctrl().level))
                });
                level.map(|l| (guard, l))
            });
            match adopted {
                Ok((guard, word)) => {
                    // Under the lock the word is where the pipe is, unless
                    // a mover died between its change and its move: the
                    // pipe itself says.
                    if let Some(p) = self.mq_pipes.get_mut(&(ns.to_owned(), id)) {
                        p.level = mqfd::level(p.fd.as_fd()).unwrap_or(Level::from(word));
                    }
                    self.mq_pages.held.push((ns.to_owned(), id, guard));
                }
                // Gone from the model: mq_leave marks the page.
                Err(Errno::EBADF) => {}
                Err(e) => {
                    warn!(ns, queue = id, error = ?e, "message queue damaged: its page is corrupt or its lock is stuck");
                    q.page.mark_damaged();
                    q.damaged = true;
                    if queue.is_some() {
                        return Err(Errno::EIDRM);
                    }
                }
            }
        }
        Ok(())
    }

    /// Publishes the model into the held pages, moves their queues' pipes
    /// to the model's level and unlocks them (at the outermost call);
    /// pages of queues that are gone, or that no description names any
    /// more, are marked removed and forgotten.
    pub(crate) fn mq_leave(&mut self) {
        self.mq_pages.depth = self.mq_pages.depth.saturating_sub(1);
        if self.mq_pages.depth > 0 {
            return;
        }
        // Write-ahead: the record of what the event changed (and its
        // answers) before the pages show it.
        let stamp = self.persist_before_publish();
        let held = std::mem::take(&mut self.mq_pages.held);
        let mut spaces: Vec<String> = Vec::new();
        for (n, id, guard) in held {
            if !spaces.contains(&n) {
                spaces.push(n.clone());
            }
            let (Some(space), Some(model)) = (self.mq_pages.spaces.get_mut(&n), self.namespaces.get_mut(&n)) else {
                continue;
            };
            let Some(q) = space.get(&id) else { continue };
            let pipe = self.mq_pipes.get_mut(&(n.clone(), id));
            let published = pipe.is_some() && publish(model, id, &q.page, &guard);
            if published {
                guard.stamp(stamp);
            }
            if let (true, Some(p), Some(to)) = (published, pipe, model_level(model, id)) {
                follow(p, to);
            } else {
                q.page.mark_removed(&guard);
                drop(guard);
                space.remove(&id);
            }
        }
        for ns in spaces {
            self.mq_pages_sweep(&ns);
        }
    }

    /// Forgets the pages of `ns` whose queue or pipe is gone.
    fn mq_pages_sweep(&mut self, ns: &str) {
        let Some(space) = self.mq_pages.spaces.get_mut(ns) else { return };
        let model = self.namespaces.get(ns);
        let gone: Vec<u64> = space
            .keys()
            .copied()
            .filter(|q| {
                model.and_then(|m| m.mq_queue(*q)).is_none() || !self.mq_pipes.contains_key(&(ns.to_owned(), *q))
            })
            .collect();
        for id in gone {
            if let Some(q) = space.remove(&id) {
                q.page.retire(LOCK_BOUND);
            }
        }
    }

    /// The namespace `ns` is gone: so are its pages (their holders find
    /// them removed).
    pub(crate) fn mq_pages_forget(&mut self, ns: &str) {
        self.mq_pages.held.retain(|(n, _, _)| n != ns);
        for (_, q) in self.mq_pages.spaces.remove(ns).unwrap_or_default() {
            q.page.retire(LOCK_BOUND);
        }
    }

    /// A restarted daemon takes the page of queue `queue` found in its
    /// state directory (after its handles, whose pipe keeps it); the next
    /// [`mq_enter`](Self::mq_enter) adopts it.
    /// The page's registration word is made the restored model's first
    /// (the restart dropped `SIGEV_THREAD` registrations), under the page's
    /// lock, which rolls back a change its dead holder left half done.
    ///
    /// # Errors
    /// The page is not a valid queue page, or its lock is stuck.
    pub(crate) fn mq_page_restore(&mut self, ns: &str, queue: u64, region: SharedRegion) -> Result<(), Errno> {
        let page = MqQueuePage::open(region.fd())?;
        let registered = self.namespaces.get(ns).and_then(|m| m.mq_queue(queue)).ok_or(Errno::EBADF)?.notify_owner();
        let (guard, how) = page.lock(LOCK_BOUND)?;
        if how == Locked::Repaired {
            info!(ns, queue, "a process died holding a message queue's lock: its change was rolled back");
        }
        page.with_body(&guard, |b| {
            let mut p = MqPage::open(b)?;
            p.ctrl_mut().notify = u64::from(registered.is_some());
            p.commit()
        })?;
        drop(guard);
        self.mq_pages
            .spaces
            .entry(ns.to_owned())
            .or_default()
            .insert(queue, QueuePage { _region: region, page, damaged: false });
        Ok(())
    }

    /// The names of the files of `ns`'s queue pages, queue FIFOs and
    /// registration FIFOs.
    pub(crate) fn mq_file_names(&self, ns: &str) -> Vec<String> {
        let pages =
            self.mq_pages.spaces.get(ns).into_iter().flat_map(|s| s.values().filter_map(|q| q._region.file_name()));
        let fifos = self.mq_pipes.keys().filter(|(n, _)| n == ns).map(|(_, q)| crate::mq::fifo_name(*q));
        let notify = self.mq_notify_pipes.keys().filter(|(n, _)| n == ns).map(|(_, q)| crate::mq::notify_fifo_name(*q));
        pages.chain(fifos).chain(notify).collect()
    }

    /// [`Request::MqGrant`]: the page of description `desc`'s queue for
    /// `cred`, read-write, if the process holds a description of the
    /// queue opened for writing (the page lets its holder change the
    /// queue, which such a description allows); made at the first grant.
    /// Runs inside [`mq_enter`](Self::mq_enter) of the queue.
    pub(crate) fn mq_grant(
        &mut self,
        ns: &str,
        cred: &Cred,
        desc: MqDescId,
    ) -> Result<(Response, Option<OwnedFd>), Errno> {
        let model = self.namespaces.get_mut(ns).ok_or(Errno::EBADF)?;
        let d = model.mq_desc(desc).filter(|d| d.holders().contains_key(&cred.pid)).ok_or(Errno::EBADF)?;
        let (queue, (read, write)) = (d.queue(), d.access());
        let writer = model
            .mq_held_by(cred.pid)
            .into_iter()
            .any(|(id, _)| model.mq_desc(id).is_some_and(|o| o.queue() == queue && o.access().1));
        if !writer {
            return Err(Errno::EACCES);
        }
        let space = self.mq_pages.spaces.entry(ns.to_owned()).or_default();
        let q = match space.entry(queue) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let q = e.insert(new_page(model, queue, &mut self.page_files, ns)?);
                // The pipe followed the model (no page until now); the
                // page's word says so from here on.
                if let (Some(p), Some(to)) = (self.mq_pipes.get_mut(&(ns.to_owned(), queue)), model_level(model, queue))
                {
                    follow(p, to);
                }
                q
            }
        };
        if q.damaged {
            return Err(Errno::EIDRM);
        }
        let fd = q._region.fd().try_clone_to_owned().map_err(|_| Errno::EMFILE)?;
        Ok((Response::MqGrant { read, write, perm_version: PERM_VERSION }, Some(fd)))
    }
}

/// A new page for queue `queue`, holding the model's state.
fn new_page(
    model: &mut Model,
    queue: u64,
    files: &mut crate::durable::PageFiles,
    ns: &str,
) -> Result<QueuePage, Errno> {
    let geo = model.mq_page_geometry(queue)?.ok_or(Errno::EFBIG)?;
    let region = files.region(ns, crate::durable::MQ_PAGE, queue, MqQueuePage::len_for(geo))?;
    let page = MqQueuePage::create(region.fd(), geo)?;
    let (guard, _) = page.lock(LOCK_BOUND)?;
    page.with_body(&guard, |b| model.mq_page_init(queue, b))?;
    page.set_state(&guard, model.mq_page_sleepers(queue)?, PERM_VERSION);
    drop(guard);
    Ok(QueuePage { _region: region, page, damaged: false })
}

/// Shows the model's state of queue `queue` in its page (held by
/// `guard`); `false` when it cannot (the queue is gone).
fn publish(model: &mut Model, queue: u64, page: &MqQueuePage, guard: &Guard<Arc<StatePage>>) -> bool {
    if page.with_body(guard, |b| model.mq_publish(queue, b)).is_err() {
        return false;
    }
    match model.mq_page_sleepers(queue) {
        Ok(sleepers) => {
            page.set_state(guard, sleepers, PERM_VERSION);
            true
        }
        Err(_) => false,
    }
}
