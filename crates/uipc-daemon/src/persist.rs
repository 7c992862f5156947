//! Surviving the daemon's own crash (`docs/architecture.md`, "Surviving the
//! daemon's own crash"; issue 15).
//!
//! With a state directory `D` (a tmpfs: a `write` that returned is kept
//! whatever happens to the writer, so nothing is `fsync`ed):
//!
//! - `D/VERSION` — `uipc-state-dir` and the format version; a directory of
//!   another version is refused, never guessed at (but for version 2, a
//!   subset of 3 that is read and relabelled).
//! - `D/ns/NAME/` — every memory file of namespace `NAME`: segments and
//!   POSIX shm objects (`shm-N`), message queues' text arenas, and the
//!   state pages of semaphore sets, System V and POSIX message queues
//!   (`semp-ID-N`, `msgp-ID-N`, `mqp-INODE-N`) and segments' attach pages
//!   (`shmp-ID-N`), which clients change on their fast paths, and the FIFOs that are POSIX queues' descriptors
//!   (`mqpipe-INODE`).
//! - `D/meta/journal` — the write-ahead journal: records `(length,
//!   CRC-32C, sequence number, payload)`, one per event, written with one
//!   `write` before the event's replies leave the daemon
//!   (`Daemon::persist`). A record's payload is the list of [`Entry`]s the
//!   event made: the new value of each part of a namespace it changed
//!   (`uipc_core::image`), a namespace's removal, the undo-slot owners of
//!   a set's page, the table of processes, the POSIX queue handles.
//! - `D/meta/snapshot` — the whole state, written to `snapshot.tmp` and
//!   renamed over it when the journal outgrows it;
//!   its first record names the last journal sequence number it covers,
//!   so a crash between the rename and the journal's truncation replays
//!   nothing twice.
//!
//! Replay: the snapshot, then every journal record after it; the last
//! value of each part wins. A record whose length or checksum fails
//! (the daemon died in the middle of its `write`) ends the journal: the
//! tail is cut and logged.
//!
//! [`Store`] is the trait the daemon writes through; [`DirStore`] is the
//! one store (a directory), and the format is versioned ([`FORMAT`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};
use uipc_core::image::Part;

use crate::DaemonError;

/// The format version of a state directory this daemon reads and writes.
pub(crate) const FORMAT: u32 = 4;
/// The older formats this daemon also reads: each is the next without
/// variants of [`Entry`] appended since (3: [`Entry::Answer`] and
/// [`Entry::Stamps`]; 2: [`Entry::MqHandles`] too), so their records
/// decode the same. Such a directory is taken as version 4 from then on.
const READS_ALSO: [u32; 2] = [2, 3];
/// The first line of `D/VERSION`.
const MAGIC: &str = "uipc-state-dir";
/// Bytes of a record's header: length, CRC-32C, sequence number.
const RECORD_HEADER: usize = 16;
/// The largest record replay accepts (a namespace image).
const MAX_RECORD: usize = 1 << 30;

/// A process the daemon knew.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcEntry {
    pub(crate) pid: u32,
    /// Field 22 of `/proc/PID/stat`: a pid reused by another process has
    /// another start time.
    pub(crate) start: u64,
    /// Namespaces where it may hold state.
    pub(crate) namespaces: Vec<String>,
}

/// The processes the daemon knew, and the daemon's own counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcsEntry {
    pub(crate) next_ephemeral: u64,
    /// The next POSIX queue handle: a restarted daemon never hands out a
    /// number a client may still hold from before (it answers `EBADF`).
    pub(crate) next_mq_handle: u64,
    pub(crate) procs: Vec<ProcEntry>,
}

/// A POSIX queue handle the daemon handed out (a client's `mqd_t`): the
/// description it names and its descriptor's status flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MqHandleEntry {
    pub(crate) handle: u64,
    pub(crate) ns: String,
    pub(crate) desc: u64,
    pub(crate) queue: u64,
    pub(crate) nonblock: bool,
    pub(crate) append: bool,
}

/// One record's payload.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Entry {
    /// One part of a namespace as the core wrote it
    /// (`IpcNamespace::write_part`: `Some(value)`, or `None` once removed).
    Part { ns: String, part: Part, value: Vec<u8> },
    /// What the daemon keeps of a namespace besides its objects.
    NsMeta { ns: String, meta: NsMeta },
    /// The owners of the undo slots of a set's page (`None`: no page).
    SemOwners { ns: String, id: i32, owners: Option<Vec<Option<u32>>> },
    /// A namespace was removed (its parts go with it).
    NamespaceGone(String),
    /// The processes and counters after an event.
    Processes(ProcsEntry),
    /// A snapshot's first record: it covers journal records up to `upto`.
    Snapshot { upto: u64 },
    /// Every POSIX queue handle after an event.
    MqHandles(Vec<MqHandleEntry>),
    /// The answer to a request that must not be applied twice
    /// ([`uipc_proto::Request::Once`]), in the record of its effect.
    Answer(AnswerEntry),
    /// The state pages whose objects this record (or, in a snapshot, an
    /// earlier one) holds newer than any publish before it: a page whose
    /// header shows a smaller stamp was not published since (the daemon
    /// died between its write and its publish), and its object's recorded
    /// state is the one to restore.
    Stamps(Vec<PageStamp>),
}

/// A recorded answer ([`Entry::Answer`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AnswerEntry {
    /// The client's number for itself, and the process it is.
    pub(crate) client: u64,
    pub(crate) pid: u32,
    /// The request's number.
    pub(crate) seq: u64,
    /// The encoded response.
    pub(crate) response: Vec<u8>,
    /// It carried descriptors, which a replay cannot carry: the request is
    /// then answered again in its non-creating form (an open of what the
    /// first made).
    pub(crate) had_fds: bool,
}

/// The stamp of an object's state page ([`Entry::Stamps`]): the page kind
/// (`semp`, `msgp`, `mqp`) and object of a namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct PageStamp {
    pub(crate) ns: String,
    pub(crate) kind: String,
    pub(crate) id: u64,
    pub(crate) stamp: u64,
}

/// What the daemon keeps of a namespace besides its objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NsMeta {
    /// Ends with the last process that joined it.
    pub(crate) ephemeral: bool,
    /// Segments held by attaches granted and not yet reported (each hold
    /// counts in `nattch` until the client reports; a restart releases it).
    pub(crate) holds: Vec<i32>,
}

/// One namespace after replay.
#[derive(Debug, Default)]
pub(crate) struct NsRecord {
    pub(crate) meta: NsMeta,
    /// The last recorded value of each part.
    pub(crate) parts: BTreeMap<Part, Vec<u8>>,
    /// The undo-slot owners of each set's page.
    pub(crate) sem_owners: BTreeMap<i32, Vec<Option<u32>>>,
}

/// What a state directory holds after replay.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) namespaces: BTreeMap<String, NsRecord>,
    pub(crate) procs: ProcsEntry,
    pub(crate) mq_handles: Vec<MqHandleEntry>,
    /// The last answer recorded for each client, by (pid, client).
    pub(crate) answers: BTreeMap<(u32, u64), AnswerEntry>,
    /// The last stamp recorded for each page: (namespace, kind, id).
    pub(crate) stamps: BTreeMap<(String, String, u64), u64>,
}

impl State {
    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Part { ns, part, value } => {
                self.namespaces.entry(ns).or_default().parts.insert(part, value);
            }
            Entry::NsMeta { ns, meta } => self.namespaces.entry(ns).or_default().meta = meta,
            Entry::SemOwners { ns, id, owners } => {
                let owners_of = &mut self.namespaces.entry(ns).or_default().sem_owners;
                match owners {
                    Some(o) => owners_of.insert(id, o),
                    None => owners_of.remove(&id),
                };
            }
            Entry::NamespaceGone(name) => {
                self.stamps.retain(|(ns, _, _), _| *ns != name);
                self.namespaces.remove(&name);
            }
            Entry::Processes(p) => self.procs = p,
            Entry::MqHandles(h) => self.mq_handles = h,
            Entry::Answer(a) => {
                self.answers.insert((a.pid, a.client), a);
            }
            Entry::Stamps(list) => {
                for s in list {
                    self.stamps.insert((s.ns, s.kind, s.id), s.stamp);
                }
            }
            Entry::Snapshot { .. } => {}
        }
    }
}

/// Where a durable daemon writes (STYLE: persistence as a trait, with a
/// versioned, checksummed format).
pub(crate) trait Store {
    /// Appends `entries`, one event's, as one record with one `write`.
    ///
    /// # Errors
    /// The write's.
    fn append(&mut self, entries: &[Entry]) -> std::io::Result<()>;

    /// Whether the journal has grown enough to be compacted.
    fn wants_compaction(&self) -> bool;

    /// Replaces snapshot and journal by a snapshot made of `entries` (the
    /// whole state).
    ///
    /// # Errors
    /// The writes' or the rename's.
    fn compact(&mut self, entries: &[Entry]) -> std::io::Result<()>;

    /// Called as an event's replies are about to leave (a test hook's
    /// crash point; nothing otherwise).
    fn before_reply(&mut self) {}

    /// Called as a request is taken up (a test hook's crash point).
    fn before_request(&mut self) {}
}

/// The test hook's crash: SIGKILL to the daemon itself.
fn crash_now() {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::Kill);
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bitwise by
/// table: the checksum of every record.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    const fn table() -> [u32; 256] {
        let mut t = [0u32; 256];
        let mut i = 0u32;
        while i < 256 {
            let mut c = i;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0x82F6_3B78 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i as usize] = c;
            i += 1;
        }
        t
    }
    static TABLE: [u32; 256] = table();
    let mut crc = !0u32;
    for &b in data {
        let low = crc.to_le_bytes()[0];
        crc = TABLE[usize::from(low ^ b)] ^ (crc >> 8);
    }
    !crc
}

/// Appends the framed record of `entries` numbered `seq` to `out`: one
/// event's entries are one record, whole or not at all.
fn frame(out: &mut Vec<u8>, seq: u64, entries: &[Entry]) -> std::io::Result<()> {
    let payload = postcard::to_allocvec(entries).map_err(std::io::Error::other)?;
    let len = u32::try_from(payload.len()).map_err(|_| std::io::Error::other("record too large"))?;
    let mut summed = Vec::with_capacity(8 + payload.len());
    summed.extend_from_slice(&seq.to_le_bytes());
    summed.extend_from_slice(&payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c(&summed).to_le_bytes());
    out.extend_from_slice(&summed);
    Ok(())
}

/// The records of `bytes` in order, and the length of the valid prefix.
/// Reading stops at the first record whose length or checksum fails.
fn records(bytes: &[u8]) -> (Vec<(u64, Vec<Entry>)>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + RECORD_HEADER) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let Ok(len) = usize::try_from(len) else { break };
        if len > MAX_RECORD {
            break;
        }
        let Some(summed) = bytes.get(at + 8..at + RECORD_HEADER + len) else { break };
        if crc32c(summed) != crc {
            break;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&summed[..8]);
        let Ok(entry) = postcard::from_bytes::<Vec<Entry>>(&summed[8..]) else { break };
        out.push((u64::from_le_bytes(seq), entry));
        at += RECORD_HEADER + len;
    }
    (out, at)
}

/// A state directory's metadata (see the module's documentation).
pub(crate) struct DirStore {
    meta: PathBuf,
    journal: File,
    /// The next record's sequence number.
    seq: u64,
    journal_len: u64,
    snapshot_len: u64,
    /// Test hook (`UIPC_TEST_CRASH_AT_WRITE=N`): at the `N`th append the
    /// daemon kills itself with SIGKILL where `UIPC_TEST_CRASH_WHERE`
    /// says ([`CrashPoint`]); appends count from when the file
    /// `UIPC_TEST_CRASH_ARM` exists, if given.
    crash_at: Option<u64>,
    crash_where: CrashPoint,
    crash_arm: Option<PathBuf>,
    appends: u64,
    /// The hook's crash waits for the next reply ([`Store::before_reply`])
    /// or request ([`Store::before_request`]).
    crash_at_reply: bool,
    crash_at_request: bool,
    /// The journal is compacted past this many bytes (at least; and past
    /// four times the snapshot). `UIPC_TEST_JOURNAL_MAX` lowers it.
    journal_max: u64,
}

/// Where the test hook kills the daemon (`UIPC_TEST_CRASH_WHERE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrashPoint {
    /// `mid-write` (the default): half the record written.
    MidWrite,
    /// `after-write`: the whole record written, before the pages of the
    /// event are published and before its replies leave.
    AfterWrite,
    /// `before-reply`: the record written and the pages published, just
    /// before the event's replies leave.
    BeforeReply,
    /// `next-request`: the event served and answered; the daemon dies as
    /// it takes up the next request, from any client.
    NextRequest,
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> DaemonError {
    DaemonError(format!("{what} {}: {e}", path.display()))
}

impl DirStore {
    /// Opens the metadata of state directory `dir` (making it new if the
    /// directory has none) and replays it.
    ///
    /// # Errors
    /// A directory of another format version, or I/O errors.
    pub(crate) fn open(dir: &Path) -> Result<(DirStore, State), DaemonError> {
        let version = dir.join("VERSION");
        match fs::read_to_string(&version) {
            Ok(text) => {
                let mut lines = text.lines();
                let magic = lines.next().unwrap_or_default();
                let found = lines.next().and_then(|l| l.trim().parse::<u32>().ok());
                let older = found.filter(|f| READS_ALSO.contains(f));
                if magic != MAGIC || !(found == Some(FORMAT) || older.is_some()) {
                    let found = found.map_or_else(|| format!("{:?}", text.trim()), |v| v.to_string());
                    return Err(DaemonError(format!(
                        "state directory {} has format version {found}; this uipc reads versions {READS_ALSO:?} and \
                         {FORMAT} and writes version {FORMAT} only: refusing to guess (use a uipc that matches it, \
                         or another directory)",
                        dir.display()
                    )));
                }
                if let Some(older) = older {
                    info!(dir = %dir.display(), "state directory of format {older}: read, and written as {FORMAT} from now on");
                    fs::write(&version, format!("{MAGIC}\n{FORMAT}\n")).map_err(|e| io("writing", &version, e))?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::write(&version, format!("{MAGIC}\n{FORMAT}\n")).map_err(|e| io("writing", &version, e))?;
            }
            Err(e) => return Err(io("reading", &version, e)),
        }
        let meta = dir.join("meta");
        fs::create_dir_all(&meta).map_err(|e| io("creating", &meta, e))?;
        let mut state = State::default();
        let mut upto = 0;
        let snap_path = meta.join("snapshot");
        let snapshot_len = match fs::read(&snap_path) {
            Ok(bytes) => {
                let (recs, good) = records(&bytes);
                if good != bytes.len() {
                    // The snapshot is written whole and renamed into place:
                    // a bad one is not a crash's doing.
                    warn!(path = %snap_path.display(), dropped = bytes.len() - good, "snapshot: bytes past the last good record ignored");
                }
                for e in recs.into_iter().flat_map(|(_, r)| r) {
                    if let Entry::Snapshot { upto: u } = e {
                        upto = u;
                    }
                    state.apply(e);
                }
                bytes.len() as u64
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io("reading", &snap_path, e)),
        };
        let journal_path = meta.join("journal");
        let mut journal = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&journal_path)
            .map_err(|e| io("opening", &journal_path, e))?;
        let mut bytes = Vec::new();
        journal.read_to_end(&mut bytes).map_err(|e| io("reading", &journal_path, e))?;
        let (recs, good) = records(&bytes);
        let mut seq = upto + 1;
        let mut replayed = 0usize;
        for (s, r) in recs {
            seq = seq.max(s + 1);
            if s > upto {
                for e in r {
                    state.apply(e);
                }
                replayed += 1;
            }
        }
        if good != bytes.len() {
            warn!(
                path = %journal_path.display(),
                kept = good,
                dropped = bytes.len() - good,
                "journal: a torn or corrupt record ends it; the tail is cut and the last consistent state used"
            );
            journal.set_len(good as u64).map_err(|e| io("truncating", &journal_path, e))?;
        }
        if !state.namespaces.is_empty() || replayed > 0 {
            info!(namespaces = state.namespaces.len(), journal_records = replayed, "state directory replayed");
        }
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        let store = DirStore {
            meta,
            journal,
            seq,
            journal_len: good as u64,
            snapshot_len,
            crash_at: env("UIPC_TEST_CRASH_AT_WRITE"),
            crash_where: match std::env::var("UIPC_TEST_CRASH_WHERE").as_deref() {
                Ok("after-write") => CrashPoint::AfterWrite,
                Ok("before-reply") => CrashPoint::BeforeReply,
                Ok("next-request") => CrashPoint::NextRequest,
                _ => CrashPoint::MidWrite,
            },
            crash_arm: std::env::var_os("UIPC_TEST_CRASH_ARM").map(PathBuf::from),
            appends: 0,
            crash_at_reply: false,
            crash_at_request: false,
            journal_max: env("UIPC_TEST_JOURNAL_MAX").unwrap_or(4 << 20),
        };
        Ok((store, state))
    }
}

impl Store for DirStore {
    fn append(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        frame(&mut buf, self.seq, entries)?;
        self.seq += 1;
        if self.crash_at.is_some() && self.crash_arm.as_ref().is_none_or(|p| p.exists()) {
            self.appends += 1;
        }
        let crash = self.crash_at == Some(self.appends);
        if crash && self.crash_where == CrashPoint::MidWrite {
            // The test hook: a daemon killed in the middle of its write.
            let _ = self.journal.write_all(&buf[..buf.len() / 2]);
            crash_now();
        }
        // One write (O_APPEND): a record is whole or torn, never interleaved.
        self.journal.write_all(&buf)?;
        self.journal_len += buf.len() as u64;
        if crash && self.crash_where == CrashPoint::AfterWrite {
            crash_now();
        }
        self.crash_at_reply |= crash && self.crash_where == CrashPoint::BeforeReply;
        self.crash_at_request |= crash && self.crash_where == CrashPoint::NextRequest;
        Ok(())
    }

    fn before_reply(&mut self) {
        if self.crash_at_reply {
            crash_now();
        }
    }

    fn before_request(&mut self) {
        if self.crash_at_request {
            crash_now();
        }
    }

    fn wants_compaction(&self) -> bool {
        self.journal_len > self.journal_max.max(self.snapshot_len.saturating_mul(4))
    }

    fn compact(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let upto = self.seq.saturating_sub(1);
        frame(&mut buf, 0, &[Entry::Snapshot { upto }])?;
        frame(&mut buf, 0, entries)?;
        let tmp = self.meta.join("snapshot.tmp");
        fs::write(&tmp, &buf)?;
        fs::rename(&tmp, self.meta.join("snapshot"))?;
        // Records up to `upto` are in the snapshot: a crash before this
        // truncation replays none of them (they are skipped by number).
        self.journal.set_len(0)?;
        self.journal_len = 0;
        self.snapshot_len = buf.len() as u64;
        Ok(())
    }
}

/// The names of the files a restarted daemon found in `dir` that no
/// restored object uses: left by a crash between creating a file and
/// recording it. They are removed.
pub(crate) fn sweep(dir: &Path, used: &BTreeSet<String>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !used.contains(&name) {
            info!(file = %e.path().display(), "state directory: a file no object uses (a crash before it was recorded) is removed");
            if let Err(err) = fs::remove_file(e.path()) {
                error!(file = %e.path().display(), "cannot remove: {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The catalogue's check value of CRC-32C ("123456789").
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn directories_of_formats_2_and_3_are_read_and_become_4() {
        for older in READS_ALSO {
            let dir = std::env::temp_dir().join(format!("uipc-persist-v{older}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("meta")).unwrap();
            fs::write(dir.join("VERSION"), format!("uipc-state-dir\n{older}\n")).unwrap();
            let mut journal = Vec::new();
            let procs = ProcsEntry { next_ephemeral: 7, next_mq_handle: 9, procs: Vec::new() };
            frame(&mut journal, 1, &[Entry::Processes(procs.clone())]).unwrap();
            fs::write(dir.join("meta/journal"), &journal).unwrap();
            let (_store, state) = DirStore::open(&dir).unwrap();
            assert_eq!(state.procs, procs);
            assert!(state.mq_handles.is_empty() && state.answers.is_empty() && state.stamps.is_empty());
            assert_eq!(fs::read_to_string(dir.join("VERSION")).unwrap(), format!("uipc-state-dir\n{FORMAT}\n"));
            fs::write(dir.join("VERSION"), "uipc-state-dir\n1\n").unwrap();
            assert!(DirStore::open(&dir).is_err(), "format 1 is refused");
            let _ = fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn answers_and_stamps_replay_to_the_last_of_each() {
        let mut buf = Vec::new();
        let answer = |seq| AnswerEntry { client: 5, pid: 1, seq, response: seq.to_le_bytes().to_vec(), had_fds: false };
        let stamp = |id, stamp| PageStamp { ns: "a".into(), kind: "semp".into(), id, stamp };
        frame(&mut buf, 1, &[Entry::Answer(answer(1)), Entry::Stamps(vec![stamp(3, 1), stamp(4, 1)])]).unwrap();
        frame(&mut buf, 2, &[Entry::Answer(answer(2)), Entry::Stamps(vec![stamp(3, 2)])]).unwrap();
        let mut state = State::default();
        for e in records(&buf).0.into_iter().flat_map(|(_, entries)| entries) {
            state.apply(e);
        }
        assert_eq!(state.answers.get(&(1, 5)), Some(&answer(2)));
        let key = |id| ("a".to_owned(), "semp".to_owned(), id);
        assert_eq!((state.stamps.get(&key(3)), state.stamps.get(&key(4))), (Some(&2), Some(&1)));
        state.apply(Entry::NamespaceGone("a".into()));
        assert!(state.stamps.is_empty(), "a namespace's removal drops its pages' stamps");
    }

    #[test]
    fn records_stop_at_a_torn_or_corrupt_one() {
        let mut buf = Vec::new();
        for seq in 1..=3 {
            frame(&mut buf, seq, &[Entry::NamespaceGone(format!("ns{seq}"))]).unwrap();
        }
        let (all, good) = records(&buf);
        assert_eq!((all.len(), good), (3, buf.len()));
        for cut in 1..buf.len() {
            let (some, good) = records(&buf[..cut]);
            assert!(some.len() < 3 && good <= cut);
        }
        let mut bad = buf.clone();
        let last = bad.len() - 2;
        bad[last] ^= 1;
        let (some, _) = records(&bad);
        assert_eq!(some.len(), 2);
    }
}
