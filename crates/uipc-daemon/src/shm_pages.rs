//! The daemon's side of segments' attach pages (`docs/architecture.md`,
//! "Attach and detach without a round trip"; `uipc_sys::shm_attach`).
//!
//! Around every event that may read or change segments, the daemon locks
//! the attach pages of the namespaces concerned and *adopts* them into the
//! model ([`Daemon::shm_enter`]: holders attached and detached in their own
//! address space), runs the core as always, then *publishes* the model's
//! count, event, destroy word, slot owners and permission version and
//! unlocks ([`Daemon::shm_leave`]). A page that fails validation, or whose
//! lock stays held past [`LOCK_BOUND`], is marked damaged: logged, its
//! holders go to the daemon from then on (the model keeps what it last
//! adopted); every other segment is served as before, never a panic.
//!
//! A daemon with a state directory makes its pages files there
//! (`shmp-ID-N`, `crate::durable`), never reused for another segment:
//! the counts holders made in their own address space, before or during a
//! crash, are in the file, which the restarted daemon adopts
//! ([`Daemon::shm_page_restore`]).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tracing::{info, warn};
use uipc_abi::{Errno, SHM_EXEC, SHM_RDONLY};
use uipc_core::cred::{Cred, Pid};
use uipc_core::time::Time;
use uipc_proto::{Request, Response};
use uipc_sys::memfd::SharedRegion;
use uipc_sys::shm_attach::{AttachPage, Event, Snapshot, MAX_COUNT, SLOTS};
use uipc_sys::state_page::{Guard, Locked, Retire, StatePage};

use crate::sem_pages::LOCK_BOUND;
use crate::server::Daemon;

/// One segment's attach page.
#[derive(Debug)]
pub(crate) struct SegPage {
    region: SharedRegion,
    page: AttachPage,
    /// The owner of each slot: the daemon's record, not the page's.
    owners: Vec<Option<Pid>>,
    damaged: bool,
    /// What the page held at this event's adoption (`None`: a new page).
    adopted: Option<(Snapshot, u32)>,
}

/// The pages of every namespace, and those the current event holds.
#[derive(Debug, Default)]
pub(crate) struct ShmPages {
    spaces: HashMap<String, BTreeMap<i32, SegPage>>,
    held: Vec<(String, i32, Guard<Arc<StatePage>>)>,
    depth: u32,
    /// The pages each process owns a slot in, by namespace: its counts
    /// there may have changed since the model last adopted them.
    slots_of: HashMap<(String, Pid), std::collections::BTreeSet<i32>>,
    /// Pages of destroyed segments, for new ones: a page costs a memfd,
    /// its seals and a mapping to make and a close to free. Old holders
    /// find it changed: another permission version (drawn from the
    /// namespace's counter, never reused), another id in the status entry.
    free: Vec<(SharedRegion, AttachPage)>,
}

/// At most this many pages wait for reuse.
const FREE_PAGES: usize = 64;

/// Which segments an event may read or change (their pages are adopted
/// before it and published after).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// These.
    Segs(Vec<i32>),
    /// Those the caller's process maps, attached or created
    /// (`IpcNamespace::shm_ids_of`), and these.
    Process(Vec<i32>),
    /// Those the caller's process maps, attached or created: its exit's
    /// or `unshare`'s (`exit_shm()` orphans what it created).
    Exit,
    /// Every segment of the namespace.
    All,
}

/// Which segments request `req` concerns; `None`: none.
pub(crate) fn scope(req: &Request) -> Option<Scope> {
    use uipc_abi::{IPC_INFO, IPC_STAT, SHM_INFO};
    Some(match req {
        Request::ShmAt { id, .. } | Request::ShmAttach { id, .. } | Request::ShmAttachGrant { id, .. } => {
            Scope::Segs(vec![*id])
        }
        Request::ShmCtl { cmd, .. } if *cmd == IPC_INFO || *cmd == SHM_INFO => return None,
        Request::ShmCtl { id, cmd, .. } | Request::ShmStat { id, cmd, .. } => {
            if [uipc_abi::SHM_STAT, uipc_abi::SHM_STAT_ANY].contains(cmd) {
                Scope::All
            } else if *cmd == IPC_STAT || matches!(req, Request::ShmCtl { .. }) {
                Scope::Segs(vec![*id])
            } else {
                return None;
            }
        }
        // A creating call may make the new segment's page (held, then
        // published by the leave).
        Request::ShmGetGrant { .. } => Scope::Segs(Vec::new()),
        Request::ShmRecord { attaches } => Scope::Segs(attaches.iter().map(|a| a.0).collect()),
        Request::ShmAtDone { .. }
        | Request::ShmDt { .. }
        | Request::Munmap { .. }
        | Request::Mprotect { .. }
        | Request::Forked { .. }
        | Request::Exec => Scope::Process(Vec::new()),
        Request::Unshare { .. } => Scope::Exit,
        Request::Sync | Request::SysctlWrite { .. } | Request::ProcSysvipc { .. } => Scope::All,
        _ => return None,
    })
}

/// The accesses `shmat` may ask for, as [`Response::ShmGranted`]'s bits.
const ACCESSES: [i32; 4] = [SHM_RDONLY, 0, SHM_RDONLY | SHM_EXEC, SHM_EXEC];

/// Checks a page's body against the daemon's record of its slots: every
/// slot's pid is its owner's (0 for a free slot, which counts nothing),
/// counts within [`MAX_COUNT`], the daemon's own count its own, and the
/// last event's pid the model's or an owner's. `None`: damaged.
fn validate(snap: &Snapshot, owners: &[Option<Pid>], nattch: u64, lpid: Pid) -> Option<(Vec<(Pid, u64)>, Event)> {
    // Slots past the highest owned one are not read (nobody counts in them).
    let high = owners.iter().rposition(Option::is_some).map_or(0, |s| s + 1);
    if snap.nattch != nattch || snap.slots.len() != high {
        return None;
    }
    let mut fast = Vec::new();
    for (&(pid, count), owner) in snap.slots.iter().zip(owners) {
        if pid != owner.map_or(0, |o| o.0) || count > MAX_COUNT {
            return None;
        }
        if let (Some(o), true) = (owner, count > 0) {
            fast.push((*o, u64::from(count)));
        }
    }
    let e = snap.event;
    let lpid_ok = e.lpid == lpid.0 || owners.iter().flatten().any(|o| o.0 == e.lpid);
    (lpid_ok && e.atime >= 0 && e.dtime >= 0).then_some((fast, e))
}

impl Daemon {
    /// Locks and adopts the attach pages of namespace `ns` that `scope`
    /// names (`pid`: the caller's process). Nested calls hold what the
    /// outermost took; [`shm_leave`](Self::shm_leave) publishes at the
    /// outermost.
    pub(crate) fn shm_enter(&mut self, ns: &str, scope: &Scope, pid: Pid) {
        self.shm_pages.depth += 1;
        let Some(space) = self.shm_pages.spaces.get_mut(ns) else { return };
        let Some(model) = self.namespaces.get_mut(ns) else { return };
        let ids: Vec<i32> = match scope {
            Scope::All => space.keys().copied().collect(),
            Scope::Segs(ids) => ids.clone(),
            Scope::Process(ids) => {
                let mut all = model.shm_ids_of(pid, false);
                all.extend(ids);
                all
            }
            Scope::Exit => model.shm_ids_of(pid, true),
        };
        let mut ids = ids;
        if matches!(scope, Scope::Process(_) | Scope::Exit) {
            // Attachments it made itself since the model last looked.
            ids.extend(self.shm_pages.slots_of.get(&(ns.to_owned(), pid)).into_iter().flatten());
        }
        for id in ids {
            let Some(seg) = space.get_mut(&id) else { continue };
            if seg.damaged || self.shm_pages.held.iter().any(|(n, i, _)| n == ns && *i == id) {
                continue;
            }
            let Ok(state) = model.shm_attach_state(id) else { continue };
            let adopted = seg.page.lock(LOCK_BOUND).map_err(|e| if e == Errno::EINVAL { Errno::EUCLEAN } else { e });
            let adopted = adopted.and_then(|(guard, how)| {
                if how == Locked::Repaired {
                    info!(ns, shmid = id, "a process died holding a segment's attach page: its change was rolled back");
                }
                let was = seg.page.adopt(&guard);
                let (fast, e) = validate(&was.0, &seg.owners, state.nattch, state.lpid).ok_or(Errno::EUCLEAN)?;
                model.shm_adopt(id, &fast, Time(e.atime), Time(e.dtime), Pid(e.lpid))?;
                seg.adopted = Some(was);
                Ok(guard)
            });
            match adopted {
                Ok(guard) => self.shm_pages.held.push((ns.to_owned(), id, guard)),
                Err(e) => {
                    warn!(ns, shmid = id, error = ?e, "segment's attach page damaged: its holders use the daemon");
                    seg.page.mark_damaged();
                    seg.damaged = true;
                }
            }
        }
    }

    /// Publishes the model into the held pages and unlocks them (at the
    /// outermost call); pages of segments that are gone are marked removed
    /// and forgotten.
    pub(crate) fn shm_leave(&mut self, ns: &str) {
        self.shm_pages.depth = self.shm_pages.depth.saturating_sub(1);
        if self.shm_pages.depth > 0 {
            return;
        }
        let held = std::mem::take(&mut self.shm_pages.held);
        for (n, id, mut guard) in held {
            let (Some(space), Some(model)) = (self.shm_pages.spaces.get_mut(&n), self.namespaces.get(&n)) else {
                continue;
            };
            let Some(seg) = space.get_mut(&id) else { continue };
            match model.shm_attach_state(id) {
                Ok(state) => {
                    let slots = seg
                        .owners
                        .iter()
                        .map(|o| match o {
                            Some(p) => {
                                let c = state.fast.iter().find(|(q, _)| q == p).map_or(0, |(_, c)| *c);
                                (p.0, u32::try_from(c).unwrap_or(MAX_COUNT))
                            }
                            None => (0, 0),
                        })
                        .collect();
                    let snap = Snapshot {
                        nattch: state.nattch,
                        event: Event { atime: state.atime.0, dtime: state.dtime.0, lpid: state.lpid.0 },
                        dest: state.dest,
                        slots,
                    };
                    seg.page.publish(&mut guard, &snap, state.perm_version, seg.adopted.take().as_ref());
                }
                Err(_) => {
                    seg.page.mark_removed(&guard);
                    drop(guard);
                    if let Some(seg) = space.remove(&id) {
                        // A file's name names its segment: never reused.
                        let file = seg.region.file_name().is_some();
                        if !seg.damaged && !file && self.shm_pages.free.len() < FREE_PAGES {
                            self.shm_pages.free.push((seg.region, seg.page));
                        }
                    }
                }
            }
        }
        // Segments destroyed while their page was not held (damaged pages).
        let (Some(space), Some(model)) = (self.shm_pages.spaces.get_mut(ns), self.namespaces.get(ns)) else { return };
        let gone: Vec<i32> = space.keys().copied().filter(|id| model.shm_attach_state(*id).is_err()).collect();
        for id in gone {
            if let Some(seg) = space.remove(&id) {
                seg.page.retire(LOCK_BOUND);
            }
        }
    }

    /// A restarted daemon takes segment `id`'s attach page found in its
    /// state directory: locked (a change its dead holder left half done is
    /// rolled back), its slots' owners read from the page (only the daemon
    /// writes them, published before any reply), validated against them,
    /// its holders' counts and last event adopted into the model, and the
    /// restored model's own count published (the restart released the
    /// holds of attaches never reported, which the page still counted).
    ///
    /// # Errors
    /// The page is not a valid attach page, or its lock is stuck.
    pub(crate) fn shm_page_restore(&mut self, ns: &str, id: i32, region: SharedRegion) -> Result<(), Errno> {
        let page = AttachPage::open(region.fd())?;
        let model = self.namespaces.get_mut(ns).ok_or(Errno::EINVAL)?;
        let own = model.shm_attach_state(id)?.nattch;
        let (mut guard, how) = page.lock(LOCK_BOUND)?;
        if how == Locked::Repaired {
            info!(ns, shmid = id, "a process died holding a segment's attach page: its change was rolled back");
        }
        let (mut snap, _) = page.adopt(&guard);
        let mut owners: Vec<Option<Pid>> = snap.slots.iter().map(|&(p, _)| (p != 0).then_some(Pid(p))).collect();
        owners.resize(SLOTS, None);
        snap.nattch = own;
        let lpid = Pid(snap.event.lpid);
        let (fast, e) = validate(&snap, &owners, own, lpid).ok_or(Errno::EUCLEAN)?;
        model.shm_adopt(id, &fast, Time(e.atime), Time(e.dtime), lpid)?;
        model.shm_set_live(id);
        let Ok(state) = model.shm_attach_state(id) else {
            // Its holders' last detach destroyed it: holders find it removed.
            page.mark_removed(&guard);
            return Ok(());
        };
        let snap = Snapshot {
            nattch: state.nattch,
            event: Event { atime: state.atime.0, dtime: state.dtime.0, lpid: state.lpid.0 },
            dest: state.dest,
            slots: snap.slots,
        };
        page.publish(&mut guard, &snap, state.perm_version, None);
        drop(guard);
        for o in owners.iter().flatten() {
            self.shm_pages.slots_of.entry((ns.to_owned(), *o)).or_default().insert(id);
        }
        let seg = SegPage { region, page, owners, damaged: false, adopted: None };
        self.shm_pages.spaces.entry(ns.to_owned()).or_default().insert(id, seg);
        Ok(())
    }

    /// The names of the files of `ns`'s attach pages.
    pub(crate) fn shm_file_names(&self, ns: &str) -> Vec<String> {
        self.shm_pages
            .spaces
            .get(ns)
            .into_iter()
            .flat_map(|s| s.values().filter_map(|p| p.region.file_name()))
            .collect()
    }

    /// The namespace `ns` is gone: so are its pages.
    pub(crate) fn shm_pages_forget(&mut self, ns: &str) {
        self.shm_pages.held.retain(|(n, _, _)| n != ns);
        for (_, seg) in self.shm_pages.spaces.remove(ns).unwrap_or_default() {
            seg.page.retire(LOCK_BOUND);
        }
    }

    /// Process `pid` exited or exec'd: its slots are free (the model
    /// settled its attachments, between enter and leave).
    pub(crate) fn shm_pages_release(&mut self, pid: Pid) {
        self.shm_pages.slots_of.retain(|(_, p), _| *p != pid);
        for space in self.shm_pages.spaces.values_mut() {
            for seg in space.values_mut() {
                for owner in &mut seg.owners {
                    if *owner == Some(pid) {
                        *owner = None;
                    }
                }
            }
        }
    }

    /// The answer to a call that may grant segment `id`'s attach page to
    /// `cred`'s process (it holds the memory): [`Response::ShmGranted`]
    /// with the page's descriptor, the caller's slot and the accesses
    /// `shmat` would allow it now; `Value(value)` when no page can be
    /// given (damaged, no free slot, none could be made). Call between
    /// [`shm_enter`](Self::shm_enter) and [`shm_leave`](Self::shm_leave).
    pub(crate) fn shm_grant(&mut self, ns: &str, cred: &Cred, id: i32, value: i64) -> (Response, Option<OwnedFd>) {
        let plain = (Response::Value(value), None);
        let Some(model) = self.namespaces.get_mut(ns) else { return plain };
        let Ok(state) = model.shm_attach_state(id) else { return plain };
        let mut access = 0u32;
        for (bit, flags) in ACCESSES.iter().enumerate() {
            if model.shm_may_attach(cred, id, *flags).is_ok() {
                access |= 1 << bit;
            }
        }
        let space = self.shm_pages.spaces.entry(ns.to_owned()).or_default();
        if let std::collections::btree_map::Entry::Vacant(vacant) = space.entry(id) {
            let durable = self.page_files.dir.is_some();
            let made = match self.shm_pages.free.pop().filter(|_| !durable) {
                Some((region, page)) => Ok((page, region)),
                None => self
                    .page_files
                    .region(ns, crate::durable::SHM_PAGE, id, AttachPage::len())
                    .and_then(|region| Ok((AttachPage::create(region.fd())?, region))),
            };
            let (page, region) = match made {
                Ok(m) => m,
                Err(e) => {
                    warn!(ns, shmid = id, error = ?e, "no attach page for a segment: its holders use the daemon");
                    return plain;
                }
            };
            // Held (locked) until this event's leave publishes it (every
            // word: a reused page is rewritten whole).
            let Ok((guard, _)) = page.lock(LOCK_BOUND) else { return plain };
            page.reuse(&guard);
            vacant.insert(SegPage { region, page, owners: vec![None; SLOTS], damaged: false, adopted: None });
            self.shm_pages.held.push((ns.to_owned(), id, guard));
            model.shm_set_live(id);
        }
        let Some(seg) = space.get_mut(&id) else { return plain };
        if seg.damaged {
            return plain;
        }
        let mine = seg.owners.iter().position(|o| *o == Some(cred.pid));
        let Some(slot) = mine.or_else(|| seg.owners.iter().position(Option::is_none)) else { return plain };
        seg.owners[slot] = Some(cred.pid);
        self.shm_pages.slots_of.entry((ns.to_owned(), cred.pid)).or_default().insert(id);
        let Ok(fd) = seg.region.fd().try_clone_to_owned() else { return plain };
        let slot = u32::try_from(slot).unwrap_or(u32::MAX);
        (Response::ShmGranted { value, perm_version: state.perm_version, slot, access }, Some(fd))
    }
}
