//! The daemon's side of its state directory ([`crate::persist`]): what
//! each event records, and the restart that re-adopts a directory.
//!
//! The core notes which parts of a namespace each operation changed
//! (`uipc_core::image`), and every event marks the namespaces whose head
//! it may have changed ([`Daemon::touch_ns`]); before any reply leaves
//! ([`Daemon::persist`], called by the loop's `flush`), the changed parts,
//! the marked heads that differ from the last ones written, the changed
//! undo-slot owners and the process table if it changed are written as
//! one record, with one `write`. Files
//! whose objects were removed are unlinked only after that write
//! ([`Unlinks`]), so a record never names a file that is gone.
//!
//! Restart ([`Daemon::restore`]): each recorded namespace is rebuilt from
//! its image (memory files re-opened by name), attaches that were granted
//! and never reported release their hold, the state pages found in the
//! namespace's directory are re-adopted — locked (a lock the dead daemon
//! held is a robust futex whose owner died: the in-flight change is rolled
//! back), validated and taken into the model as after any event, so what
//! clients changed on their fast paths, before and during the crash, is
//! kept — then every recorded process is checked: one that exited while
//! the daemon was down (no such pid, or another start time) is settled as
//! an exit (attachments released, undo applied), a live one is followed
//! by a new pidfd. Files no object uses are removed, and a snapshot of the
//! result starts the journal afresh. All of this happens in `bind`, before
//! the socket accepts anyone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use tracing::{error, info, warn};
use uipc_abi::Errno;
use uipc_core::cred::Pid;
use uipc_core::image::{NsParts, Part};
use uipc_core::mm::Prot;
use uipc_core::sysv::shm::PendingAttach;
use uipc_core::IpcId;
use uipc_sys::memfd::{self, DirMemory, SharedRegion, Unlinks};

use crate::persist::{
    self, AnswerEntry, Entry, MqHandleEntry, NsMeta, NsRecord, PageStamp, ProcEntry, ProcsEntry, State, Store,
};
use crate::server::{now, Daemon};
use crate::DaemonMemory;

/// The kinds of state pages, as their files' names begin
/// (`ns/NAME/KIND-ID-N`): semaphore sets, System V queues, POSIX queues,
/// segments' attach pages.
pub(crate) const SEM_PAGE: &str = "semp";
pub(crate) const MSG_PAGE: &str = "msgp";
pub(crate) const MQ_PAGE: &str = "mqp";
pub(crate) const SHM_PAGE: &str = "shmp";

/// Where state pages are made: sealed memfds, or files in the state
/// directory (`ns/NAME/KIND-ID-N`), which outlive the daemon.
#[derive(Debug, Default)]
pub(crate) struct PageFiles {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) unlinks: Unlinks,
    next: u64,
}

impl PageFiles {
    /// A new page of `len` zero bytes for object `id` of kind `kind`
    /// (`semp`, `msgp`, `mqp`, `shmp`) in namespace `ns`.
    ///
    /// # Errors
    /// The file's or memfd's creation.
    pub(crate) fn region(
        &mut self,
        ns: &str,
        kind: &str,
        id: impl std::fmt::Display,
        len: u64,
    ) -> Result<SharedRegion, Errno> {
        match &self.dir {
            None => memfd::sealed("uipc-state-page", len),
            Some(d) => {
                self.next += 1;
                let path = d.join("ns").join(ns).join(format!("{kind}-{id}-{}", self.next));
                memfd::page_file(path, len, Some(self.unlinks.clone()))
            }
        }
    }
}

/// The durable daemon's bookkeeping.
#[derive(Default)]
pub(crate) struct Durable {
    pub(crate) store: Option<Box<dyn Store>>,
    /// The last head written of each namespace (heads are small and
    /// written only when they differ).
    written_head: BTreeMap<String, Vec<u8>>,
    /// The last meta record written of each namespace.
    written_meta: BTreeMap<String, NsMeta>,
    written_procs: ProcsEntry,
    /// Namespaces the current event may have changed (their heads).
    dirty: BTreeSet<String>,
    /// The process table may have changed.
    procs_dirty: bool,
    /// Records the current event made that are not parts (removals).
    pending: Vec<Entry>,
    /// The POSIX queue handles may have changed.
    pub(crate) handles_dirty: bool,
    written_handles: Vec<MqHandleEntry>,
    /// The last answer recorded for each client ([`Entry::Answer`]), by
    /// (pid, client): a process asks for its own only, and holds at most
    /// [`ANSWERS_PER_PROCESS`].
    pub(crate) answers: BTreeMap<(u32, u64), AnswerEntry>,
    /// The stamp of the last record that held each paged object
    /// (namespace, page kind, id): [`Entry::Stamps`].
    stamps: BTreeMap<(String, String, u64), u64>,
    /// The stamp of the last record written.
    stamp: u64,
    /// Pages a restart found older than their objects' records: their
    /// next adoption is skipped, and their publish rewrites them.
    stale: BTreeSet<(String, String, u64)>,
}

/// How many clients' answers a process may have kept (a process has a
/// connection per thread that sleeps in a call, at most; one that makes up
/// client numbers only loses its own oldest answers).
const ANSWERS_PER_PROCESS: usize = 64;

impl Durable {
    /// Whether page `kind` of object `id` of `ns` was found stale at the
    /// restart and not yet rewritten; it is rewritten from now on.
    pub(crate) fn take_stale(&mut self, ns: &str, kind: &str, id: u64) -> bool {
        !self.stale.is_empty() && self.stale.remove(&(ns.to_owned(), kind.to_owned(), id))
    }
}

/// The record of `part` of `ns` as it is now (postcard).
fn encode_part(ns: &uipc_core::IpcNamespace<DaemonMemory>, part: &Part) -> Result<Vec<u8>, postcard::Error> {
    use postcard::ser_flavors::Flavor;
    let mut ser = postcard::Serializer { output: postcard::ser_flavors::AllocVec::new() };
    ns.write_part(part, &mut ser)?;
    ser.output.finalize()
}

/// The names of the files in `dir` (none if it cannot be read).
fn file_names(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|list| list.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// A state page file's `(kind, id, n)` from its name (`id`: a set's or
/// queue's id, a POSIX queue's inode).
fn page_name(name: &str) -> Option<(&str, u64, u64)> {
    let mut parts = name.splitn(3, '-');
    let kind = parts.next().filter(|k| [SEM_PAGE, MSG_PAGE, MQ_PAGE, SHM_PAGE].contains(k))?;
    let id = parts.next()?.parse().ok()?;
    let n = parts.next()?.parse().ok()?;
    Some((kind, id, n))
}

impl Daemon {
    /// The current event may have changed namespace `name`.
    pub(crate) fn touch_ns(&mut self, name: &str) {
        if self.durable.store.is_some() && !self.durable.dirty.contains(name) {
            self.durable.dirty.insert(name.to_owned());
        }
    }

    /// The current event may have changed the POSIX queue handles.
    pub(crate) fn touch_mq_handles(&mut self) {
        self.durable.handles_dirty = true;
    }

    /// The current event may have changed the process table.
    pub(crate) fn touch_procs(&mut self) {
        self.durable.procs_dirty = true;
    }

    /// Every namespace process `pid` may hold state in may have changed.
    pub(crate) fn touch_process(&mut self, pid: u32) {
        if self.durable.store.is_none() {
            return;
        }
        let names: Vec<String> =
            self.procs.get(&pid).map(|p| p.namespaces.iter().cloned().collect()).unwrap_or_default();
        for n in names {
            self.touch_ns(&n);
        }
    }

    /// Namespace `name` is gone: its removal is recorded with the event.
    pub(crate) fn ns_gone(&mut self, name: &str) {
        if self.durable.store.is_some() {
            self.durable.written_head.remove(name);
            self.durable.written_meta.remove(name);
            self.durable.pending.push(Entry::NamespaceGone(name.to_owned()));
        }
    }

    fn ns_meta_now(&self, name: &str) -> NsMeta {
        let holds = self
            .conns
            .values()
            .filter(|c| c.ns.as_deref() == Some(name))
            .flat_map(|c| c.pending.values().map(|p| p.id.0))
            .collect();
        NsMeta { ephemeral: self.ns_meta.get(name).is_some_and(|m| m.ephemeral), holds }
    }

    fn procs_entry(&self) -> ProcsEntry {
        let procs = self
            .procs
            .iter()
            .map(|(&pid, p)| ProcEntry {
                pid,
                start: uipc_sys::proc::proc_start_time(pid).unwrap_or(0),
                namespaces: p.namespaces.iter().cloned().collect(),
            })
            .collect();
        ProcsEntry { next_ephemeral: self.next_ephemeral, next_mq_handle: self.next_mq_handle, procs }
    }

    /// The records of `parts` of namespace `name` (a head equal to the
    /// last one written is left out unless `all`).
    fn part_entries(&mut self, name: &str, parts: &BTreeSet<Part>, all: bool, out: &mut Vec<Entry>) {
        let Some(ns) = self.namespaces.get(name) else { return };
        for part in parts {
            let value = match encode_part(ns, part) {
                Ok(v) => v,
                Err(e) => {
                    error!(namespace = name, ?part, "cannot encode a part of the namespace: {e}");
                    continue;
                }
            };
            if *part == Part::Head {
                if !all && self.durable.written_head.get(name) == Some(&value) {
                    continue;
                }
                self.durable.written_head.insert(name.to_owned(), value.clone());
            }
            out.push(Entry::Part { ns: name.to_owned(), part: part.clone(), value });
        }
        let meta = self.ns_meta_now(name);
        if all || self.durable.written_meta.get(name) != Some(&meta) {
            self.durable.written_meta.insert(name.to_owned(), meta.clone());
            out.push(Entry::NsMeta { ns: name.to_owned(), meta });
        }
    }

    /// Writes what the current event changed, before its replies leave
    /// (write-ahead), then removes the files of objects it removed.
    pub(crate) fn persist(&mut self) {
        self.persist_record(true);
    }

    /// [`persist`](Self::persist) in the middle of an event, before its
    /// pages are published: the namespaces the event touched stay marked,
    /// so that a head changed after this record is in the event's last.
    /// Returns the stamp the publish writes into each page (`Guard::stamp`).
    pub(crate) fn persist_before_publish(&mut self) -> u64 {
        self.persist_record(false);
        self.durable.stamp
    }

    fn persist_record(&mut self, event_ends: bool) {
        if self.durable.store.is_none() {
            return;
        }
        let mut entries = std::mem::take(&mut self.durable.pending);
        let touched = if event_ends { std::mem::take(&mut self.durable.dirty) } else { self.durable.dirty.clone() };
        let names: Vec<String> = self.namespaces.keys().cloned().collect();
        for name in names {
            let Some(ns) = self.namespaces.get_mut(&name) else { continue };
            let parts = ns.take_changed_parts();
            if !touched.contains(&name) && parts.len() == 1 {
                // Nothing but its head, and nothing touched it.
                continue;
            }
            // An object changed: the head may have too, even in a namespace
            // the event did not name (a page adopted by another's event
            // moves the namespace's message counts); it is written if it
            // differs from the last one written.
            self.part_entries(&name, &parts, false, &mut entries);
        }
        for (ns, id, owners) in self.sem_owners_changed() {
            if self.namespaces.contains_key(&ns) {
                entries.push(Entry::SemOwners { ns, id, owners });
            }
        }
        if std::mem::take(&mut self.durable.procs_dirty) {
            let p = self.procs_entry();
            if p != self.durable.written_procs {
                entries.push(Entry::Processes(p.clone()));
                self.durable.written_procs = p;
            }
        }
        if std::mem::take(&mut self.durable.handles_dirty) {
            let h = self.mq_handle_entries();
            if h != self.durable.written_handles {
                entries.push(Entry::MqHandles(h.clone()));
                self.durable.written_handles = h;
            }
        }
        if entries.is_empty() {
            return;
        }
        // The pages this event holds are published after this record:
        // their stamp says whether they were (`Guard::stamp`).
        self.durable.stamp += 1;
        let stamp = self.durable.stamp;
        let held = self.held_pages();
        if !held.is_empty() {
            for (ns, kind, id) in &held {
                self.durable.stamps.insert((ns.clone(), (*kind).to_owned(), *id), stamp);
            }
            let list =
                held.into_iter().map(|(ns, kind, id)| PageStamp { ns, kind: kind.to_owned(), id, stamp }).collect();
            entries.push(Entry::Stamps(list));
        }
        let Some(store) = self.durable.store.as_mut() else { return };
        if let Err(e) = store.append(&entries) {
            error!("state directory: the journal write failed ({e}); this change would not survive a crash");
            return;
        }
        self.page_files.unlinks.flush();
        if self.durable.store.as_ref().is_some_and(|s| s.wants_compaction()) {
            self.compact();
        }
    }

    /// Replaces journal and snapshot by a snapshot of the whole state.
    fn compact(&mut self) {
        let mut entries = Vec::new();
        let names: Vec<String> = self.namespaces.keys().cloned().collect();
        for name in &names {
            let Some(ns) = self.namespaces.get_mut(name) else { continue };
            // Everything is in the snapshot: nothing is pending.
            let _ = ns.take_changed_parts();
            let parts: BTreeSet<Part> = ns.parts().into_iter().collect();
            self.part_entries(name, &parts, true, &mut entries);
            for (id, owners) in self.sem_owners(name) {
                entries.push(Entry::SemOwners { ns: name.clone(), id, owners: Some(owners) });
            }
        }
        let _ = self.sem_owners_changed();
        self.durable.pending.clear();
        let p = self.procs_entry();
        self.durable.written_procs = p.clone();
        entries.push(Entry::Processes(p));
        let h = self.mq_handle_entries();
        self.durable.written_handles = h.clone();
        self.durable.handles_dirty = false;
        entries.push(Entry::MqHandles(h));
        entries.extend(self.durable.answers.values().cloned().map(Entry::Answer));
        let stamps = std::mem::take(&mut self.durable.stamps);
        self.durable.stamps = stamps.into_iter().filter(|((ns, kind, id), _)| self.has_page(ns, kind, *id)).collect();
        let list = self.durable.stamps.iter().map(|((ns, kind, id), stamp)| PageStamp {
            ns: ns.clone(),
            kind: kind.clone(),
            id: *id,
            stamp: *stamp,
        });
        entries.push(Entry::Stamps(list.collect()));
        if let Some(store) = self.durable.store.as_mut() {
            if let Err(e) = store.compact(&entries) {
                error!("state directory: the snapshot failed ({e}); the journal keeps growing");
            }
        }
    }

    /// Re-adopts the state replayed from the state directory (see the
    /// module's documentation). Runs before the socket accepts anyone.
    pub(crate) fn restore(&mut self, store: Box<dyn Store>, state: State) {
        let Some(dir) = self.state_dir.clone() else { return };
        self.durable.store = Some(store);
        self.durable.stamp = state.stamps.values().copied().max().unwrap_or(0);
        self.durable.stamps = state.stamps;
        self.next_ephemeral = self.next_ephemeral.max(state.procs.next_ephemeral);
        self.next_mq_handle = self.next_mq_handle.max(state.procs.next_mq_handle);
        let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut last_page = 0;
        let mut handles: BTreeMap<String, Vec<MqHandleEntry>> = BTreeMap::new();
        for h in state.mq_handles {
            handles.entry(h.ns.clone()).or_default().push(h);
        }
        for (name, entry) in state.namespaces {
            if !uipc_proto::valid_namespace(&name) {
                warn!(namespace = name, "state directory: a namespace with an invalid name is ignored");
                continue;
            }
            let files = used.entry(name.clone()).or_default();
            let handles = handles.remove(&name).unwrap_or_default();
            match self.restore_ns(&dir, &name, &entry, handles, files, &mut last_page) {
                Ok(()) => info!(namespace = name, "namespace restored from the state directory"),
                Err(e) => error!(namespace = name, "state directory: the namespace cannot be restored: {e}"),
            }
        }
        self.page_files.next = self.page_files.next.max(last_page);
        let t = now();
        for p in state.procs.procs {
            let names: BTreeSet<String> =
                p.namespaces.into_iter().filter(|n| self.namespaces.contains_key(n)).collect();
            let alive = p.start != 0 && uipc_sys::proc::proc_start_time(p.pid) == Ok(p.start);
            if alive && self.track_process(p.pid).is_ok() {
                if let Some(rec) = self.procs.get_mut(&p.pid) {
                    rec.namespaces = names;
                }
                continue;
            }
            info!(pid = p.pid, "a process the daemon knew exited while it was down: settled as an exit");
            self.settle_exit(p.pid, &names, t);
        }
        // Answers to processes that are still there: they may ask again.
        self.durable.answers = state.answers.into_iter().filter(|((pid, _), _)| self.procs.contains_key(pid)).collect();
        // Files a crash left before they were recorded.
        for (name, files) in &used {
            persist::sweep(&dir.join("ns").join(name), files);
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("ns")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !used.contains_key(&name) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        // A fresh snapshot of what was restored starts the journal.
        self.durable.dirty.clear();
        self.durable.procs_dirty = false;
        self.compact();
    }

    /// Rebuilds one namespace from its record; `files` collects the names
    /// of the files it uses.
    fn restore_ns(
        &mut self,
        dir: &std::path::Path,
        name: &str,
        entry: &NsRecord,
        handles: Vec<MqHandleEntry>,
        files: &mut BTreeSet<String>,
        last_page: &mut u64,
    ) -> Result<(), String> {
        let name = &name.to_owned();
        let ns_dir = dir.join("ns").join(name);
        std::fs::create_dir_all(&ns_dir).map_err(|e| format!("{}: {e}", ns_dir.display()))?;
        let found = file_names(&ns_dir);
        let mut image = NsParts::<(Option<String>, u64)>::default();
        for (part, value) in &entry.parts {
            image
                .put(part, &mut postcard::Deserializer::from_bytes(value))
                .map_err(|e| format!("its part {part:?} does not decode: {e}"))?;
        }
        let opener = DirMemory::deferred(&ns_dir, self.page_files.unlinks.clone());
        let open = |(file, len): (Option<String>, u64)| -> Result<SharedRegion, Errno> {
            let Some(file) = file else {
                // An unlinked POSIX shm object still open somewhere: nobody
                // can reach it by name again; its holders keep their memory.
                return memfd::anonymous_region(len);
            };
            files.insert(file.clone());
            match opener.open_existing(&file) {
                Err(Errno::ENOENT) => {
                    warn!(
                        namespace = name,
                        file, "state directory: a recorded memory file is missing; it is made anew, zero-filled"
                    );
                    memfd::page_file(ns_dir.join(&file), len, Some(self.page_files.unlinks.clone()))
                }
                other => other,
            }
        };
        let memory = DaemonMemory::Dir(DirMemory::deferred(&ns_dir, self.page_files.unlinks.clone()));
        let mut ns =
            image.into_namespace(memory, open).map_err(|e| format!("a memory file cannot be opened: {e:?}"))?;
        let t = now();
        for &id in &entry.meta.holds {
            let Some(region) = ns.shm_segment(id).map(|s| s.region().clone()) else { continue };
            ns.shmat_abort(
                t,
                PendingAttach { id: IpcId(id), region, size: 0, addr: None, prot: Prot::default(), remap: false },
            );
        }
        let sem_ids: BTreeSet<i32> = ns.sem_ids().iter().map(|i| i.0).collect();
        let msg_ids: BTreeSet<i32> = ns.msg_ids().iter().map(|i| i.0).collect();
        self.namespaces.insert(name.clone(), ns);
        self.ns_meta.insert(name.clone(), crate::namespaces::NsMeta { ephemeral: entry.meta.ephemeral });
        // The POSIX queue handles (their FIFOs opened again): a queue page
        // is kept only while its queue has a pipe.
        self.mq_handles_restore(handles);
        self.mq_notify_restore(name);
        // The newest page file of each object.
        let mut pages: BTreeMap<(String, u64), (u64, String)> = BTreeMap::new();
        if let Ok(list) = std::fs::read_dir(&ns_dir) {
            for e in list.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                let Some((kind, id, n)) = page_name(&file) else { continue };
                *last_page = (*last_page).max(n);
                let key = (kind.to_owned(), id);
                if pages.get(&key).is_none_or(|(m, _)| *m < n) {
                    pages.insert(key, (n, file));
                }
            }
        }
        let owners = &entry.sem_owners;
        for ((kind, id), (_, file)) in pages {
            let sysv = i32::try_from(id).ok();
            let live = match kind.as_str() {
                SEM_PAGE => sysv.is_some_and(|i| sem_ids.contains(&i)),
                MSG_PAGE => sysv.is_some_and(|i| msg_ids.contains(&i)),
                SHM_PAGE => {
                    sysv.is_some_and(|i| self.namespaces.get(name).is_some_and(|ns| ns.shm_segment(i).is_some()))
                }
                _ => self.namespaces.get(name).is_some_and(|ns| ns.mq_queue(id).is_some()),
            };
            if !live {
                continue;
            }
            let region = match memfd::open_file(ns_dir.join(&file), Some(self.page_files.unlinks.clone())) {
                Ok(r) => r,
                Err(e) => {
                    warn!(namespace = name, file, error = ?e, "state directory: a state page cannot be opened; the object's recorded state is used");
                    continue;
                }
            };
            // A page whose stamp is older than its object's record: the
            // daemon died after writing the record, before publishing it
            // (or in the middle of the publish). The record is the state.
            let recorded = self.durable.stamps.get(&(name.clone(), kind.clone(), id)).copied();
            let stamp = uipc_sys::state_page::stamp_of(region.fd()).unwrap_or(0);
            // (A page stamped after a record whose write failed is ahead of
            // the journal: stamps go on from past it.)
            self.durable.stamp = self.durable.stamp.max(stamp);
            if recorded.is_some_and(|r| stamp < r) {
                info!(
                    namespace = name,
                    file, "state directory: a page older than its object's last record; the recorded state is restored into it"
                );
                self.durable.stale.insert((name.clone(), kind.clone(), id));
            }
            let adopted = match (kind.as_str(), sysv) {
                (SEM_PAGE, Some(id)) => {
                    self.sem_page_restore(name, id, region, owners.get(&id).cloned().unwrap_or_default())
                }
                (MSG_PAGE, Some(id)) => self.msg_page_restore(name, id, region),
                (SHM_PAGE, Some(id)) => self.shm_page_restore(name, id, region),
                _ => self.mq_page_restore(name, id, region),
            };
            match adopted {
                Ok(()) => {
                    files.insert(file);
                }
                Err(e) => {
                    warn!(namespace = name, file, error = ?e, "state directory: a state page is not valid; the object's recorded state is used")
                }
            }
        }
        // Adopt every page (what clients changed before and during the
        // crash), give pages to sets that have none, publish.
        self.with_sem_pages(name, |_| ());
        files.extend(self.page_file_names(name));
        files.extend(self.mq_file_names(name));
        files.extend(self.shm_file_names(name));
        // Files this restore made are the model's: a queue's text arena
        // made anew while its page's messages were adopted, say.
        files.extend(file_names(&ns_dir).into_iter().filter(|f| !found.contains(f)));
        Ok(())
    }

    /// Records the answer `resp` to the request connection `token` is
    /// being served, if it came tagged ([`uipc_proto::Request::Once`]):
    /// kept for the client, and written with the request's effect.
    pub(crate) fn note_answer(&mut self, token: u64, resp: &uipc_proto::Response, had_fds: bool) {
        let durable = self.durable.store.is_some();
        let Some(conn) = self.conns.get_mut(&token) else { return };
        let Some((client, seq)) = conn.once.take() else { return };
        if !durable {
            return;
        }
        let pid = conn.cred.pid.0;
        let Ok(response) = uipc_proto::encode(resp) else { return };
        let answer = AnswerEntry { client, pid, seq, response, had_fds };
        let answers = &mut self.durable.answers;
        answers.insert((pid, client), answer.clone());
        if answers.range((pid, 0)..=(pid, u64::MAX)).count() > ANSWERS_PER_PROCESS {
            let oldest = answers.range((pid, 0)..=(pid, u64::MAX)).min_by_key(|(_, a)| a.seq).map(|(k, _)| *k);
            oldest.map(|k| answers.remove(&k));
        }
        self.durable.pending.push(Entry::Answer(answer));
    }

    /// Serves a request sent again whose answer was recorded (its tag is
    /// the client's last): the recorded answer is queued — or, if it
    /// carried descriptors, the request's non-creating form is served
    /// ([`uipc_proto::Request::reopening`]). `Err(req)`: not a replay.
    pub(crate) fn replay(&mut self, token: u64, req: uipc_proto::Request) -> Result<(), uipc_proto::Request> {
        let Some(conn) = self.conns.get_mut(&token) else { return Err(req) };
        let Some((client, seq)) = conn.once else { return Err(req) };
        let mine = (conn.cred.pid.0, client);
        let Some(answer) = self.durable.answers.get(&mine).filter(|a| a.seq == seq) else { return Err(req) };
        conn.once = None;
        info!(client, seq, "a request sent again after a restart: its recorded answer");
        match req.reopening().filter(|_| answer.had_fds) {
            Some(again) => {
                if let Some((resp, fd)) = self.dispatch(token, again) {
                    self.queue(token, &resp, fd);
                }
            }
            None => {
                let bytes = answer.response.clone();
                self.queue_bytes(token, bytes, Vec::new());
            }
        }
        Ok(())
    }

    /// The paged objects the current event holds: (namespace, page kind, id).
    fn held_pages(&self) -> Vec<(String, &'static str, u64)> {
        let sem = self.sem_pages.held_ids().map(|(ns, id)| (ns.to_owned(), SEM_PAGE, id));
        let msg = self.msg_pages.held_ids().map(|(ns, id)| (ns.to_owned(), MSG_PAGE, id));
        let mq = self.mq_pages.held_ids().map(|(ns, id)| (ns.to_owned(), MQ_PAGE, id));
        sem.chain(msg).chain(mq).collect()
    }

    /// Whether object `id` of `ns` has a page of `kind`.
    fn has_page(&self, ns: &str, kind: &str, id: u64) -> bool {
        match kind {
            SEM_PAGE => self.sem_pages.has(ns, id),
            MSG_PAGE => self.msg_pages.has(ns, id),
            _ => self.mq_pages.has(ns, id),
        }
    }

    /// A process gone while nobody watched it (a restart found it dead)
    /// or whose pidfd fired: it is settled as an exit in each of `names`.
    pub(crate) fn settle_exit(&mut self, pid: u32, names: &BTreeSet<String>, t: uipc_core::Time) {
        for name in names {
            self.touch_ns(name);
            // Its attachments made in its own address space close too.
            self.shm_enter(name, &crate::shm_pages::Scope::Exit, Pid(pid));
            self.with_sem_pages(name, |d| {
                if let Some(ns) = d.namespaces.get_mut(name) {
                    ns.exit(Pid(pid), t);
                }
                d.sem_pages_release(Pid(pid));
                d.shm_pages_release(Pid(pid));
                // Exit-time undo may complete others' semops.
                d.deliver(name);
            });
            self.shm_leave(name);
        }
        self.touch_procs();
    }
}
