//! The event loop: listener, connections, pidfds, signals.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};
use uipc_abi::Errno;
use uipc_core::cred::{CapSet, Cred, Gid, Pid, PosixIds, Uid};
use uipc_core::sysv::shm::PendingAttach;
use uipc_core::wait::{Interrupt, Message, WaiterId};
use uipc_core::{IpcNamespace, Time};
use uipc_proto::{Request, Response, HEADER, MAX_FRAME};
use uipc_sys::memfd::{DirMemory, MemfdMemory, SharedRegion};
use uipc_sys::poll::Poller;
use uipc_sys::{net, proc};

use crate::memory::DaemonMemory;
use crate::{Config, DaemonError};

const LISTENER: u64 = 0;
const SIGNALS: u64 = 1;
const LIFELINE: u64 = 2;

/// How long the event loop keeps polling after it handled an event before
/// it sleeps (see [`Daemon::serve`]).
const SPIN: Duration = Duration::from_micros(50);
/// Tokens of connections and pidfds start here.
const FIRST_TOKEN: u64 = 3;
/// Replies a connection may have waiting to be sent before the daemon stops
/// reading its requests: a client that never reads cannot make the daemon
/// buffer without bound.
const MAX_QUEUED: usize = 64;

/// One frame waiting to be sent, with the descriptor that goes with its first byte.
struct Outgoing {
    bytes: Vec<u8>,
    sent: usize,
    /// Descriptors beside the frame (sent with its first bytes).
    fds: Vec<OwnedFd>,
}

/// One client connection.
pub(crate) struct Conn {
    stream: UnixStream,
    pub(crate) cred: Cred,
    /// The namespace joined by `Hello`.
    pub(crate) ns: Option<String>,
    inbuf: Vec<u8>,
    out: VecDeque<Outgoing>,
    /// Attaches granted and not yet reported back, by token.
    pub(crate) pending: BTreeMap<u64, PendingAttach<SharedRegion>>,
    pub(crate) next_token: u64,
    /// What epoll watches for this connection: (readable, writable).
    watching: (bool, bool),
    /// The caller is asleep in a request (a semop): no reply until it
    /// finishes; only `Cancel` may come meanwhile.
    pub(crate) parked: Option<WaiterId>,
    /// The tag of the request being served, from the
    /// [`Request::Once`] before it: its answer is recorded
    /// ([`Daemon::note_answer`]).
    pub(crate) once: Option<(u64, u64)>,
}

/// A process the daemon knows, by pid.
pub(crate) struct ProcRec {
    pub(crate) pidfd: OwnedFd,
    token: u64,
    /// Open connections of this process.
    conns: usize,
    /// Namespaces where it may hold state.
    pub(crate) namespaces: BTreeSet<String>,
}

/// What a token names.
#[derive(Clone, Copy)]
enum Source {
    Conn,
    Pidfd(u32),
}

/// The daemon's whole state.
pub struct Daemon {
    listener: UnixListener,
    socket: PathBuf,
    poller: Poller,
    /// The read end the signal handlers write to; held open for epoll.
    _signal_pipe: UnixStream,
    /// See [`Config::lifeline`]; held open for epoll.
    _lifeline: Option<OwnedFd>,
    /// The SIGTERM/SIGINT registrations, removed when the daemon is dropped
    /// (an embedder's process gets its signals back).
    signal_ids: Vec<signal_hook::SigId>,
    pub(crate) state_dir: Option<PathBuf>,
    next_token: u64,
    sources: BTreeMap<u64, Source>,
    pub(crate) conns: BTreeMap<u64, Conn>,
    pub(crate) procs: BTreeMap<u32, ProcRec>,
    pub(crate) namespaces: BTreeMap<String, IpcNamespace<DaemonMemory>>,
    /// Who sleeps where: (namespace, waiter) → connection.
    pub(crate) parked: BTreeMap<(String, WaiterId), u64>,
    /// Timeouts of sleepers, by deadline (stale entries are skipped).
    pub(crate) timers: BTreeMap<(Instant, u64), (String, WaiterId)>,
    /// Connections with replies to send or requests to resume.
    dirty: Vec<u64>,
    /// What the daemon knows of each namespace beyond its objects.
    pub(crate) ns_meta: BTreeMap<String, crate::namespaces::NsMeta>,
    /// The number in the next ephemeral namespace's name.
    pub(crate) next_ephemeral: u64,
    /// Where audit records go (`uipc daemon --audit`).
    pub(crate) audit: Option<crate::audit::Audit>,
    /// A private daemon's process tree: only this process and its
    /// descendants may connect ([`Daemon::only_tree`]).
    pub(crate) tree: Option<u32>,
    /// Open message queue descriptions handed to clients, by handle.
    pub(crate) mq_handles: BTreeMap<u64, crate::mq::MqHandle>,
    /// The next message queue handle.
    pub(crate) next_mq_handle: u64,
    /// The write ends of `SIGEV_THREAD` registrations' pipes, by (namespace, queue).
    pub(crate) mq_notify_pipes: BTreeMap<(String, u64), crate::mq::NotifyPipe>,
    /// The pipe of each queue (namespace, inode) that has handles.
    pub(crate) mq_pipes: BTreeMap<(String, u64), crate::mq::MqPipe>,
    /// The state pages of semaphore sets (the data plane).
    pub(crate) sem_pages: crate::sem_pages::SemPages,
    /// The state pages of message queues (the data plane).
    pub(crate) msg_pages: crate::msg_pages::MsgPages,
    /// The state pages of POSIX message queues (the data plane).
    pub(crate) mq_pages: crate::mq_pages::MqPages,
    pub(crate) shm_pages: crate::shm_pages::ShmPages,
    /// A second descriptor for the reply being queued.
    pub(crate) extra_fd: Option<OwnedFd>,
    /// The segment status regions of namespaces (the data plane).
    pub(crate) shm_regions: crate::shm_status::ShmRegions,
    /// Semaphore status regions (the `sem_status` module).
    pub(crate) sem_regions: crate::sem_status::SemRegions,
    /// Per namespace, the sets some process holds a writable grant of.
    pub(crate) sem_live: std::collections::HashMap<String, BTreeSet<i32>>,
    /// Message queue status regions (the `msg_status` module).
    pub(crate) msg_regions: crate::msg_status::MsgRegions,
    /// Per namespace, the queues some process holds a page grant of.
    pub(crate) msg_live: std::collections::HashMap<String, BTreeSet<i32>>,
    /// Where state pages are made (files in the state directory, if any).
    pub(crate) page_files: crate::durable::PageFiles,
    /// The state directory's journal and what was last written to it.
    pub(crate) durable: crate::durable::Durable,
}

fn err(what: &str, e: impl std::fmt::Display) -> DaemonError {
    DaemonError(format!("{what}: {e}"))
}

/// Wall-clock seconds: the time every core call takes.
pub(crate) fn now() -> Time {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Time(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Creates the socket's directory with safe permissions (0700 for a
/// per-user runtime directory, 0755 for a system one) and removes a stale
/// socket; refuses if a daemon answers there.
fn prepare_socket(path: &Path) -> Result<(), DaemonError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let mode = if rustix::process::geteuid().is_root() { 0o755 } else { 0o700 };
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)
                .map_err(|e| err(&format!("creating {}", dir.display()), e))?;
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(DaemonError(format!("a daemon already answers on {}", path.display())));
        }
        std::fs::remove_file(path).map_err(|e| err(&format!("removing stale {}", path.display()), e))?;
    }
    Ok(())
}

/// The credentials thread `tid` of process `pid` has now, from
/// `/proc/PID/task/TID/status` (after a `setuid`, `SO_PEERCRED` still
/// tells the ones it connected with).
pub(crate) fn cred_now(pid: Pid, tid: u32) -> Result<Cred, Errno> {
    let (ids, caps) = proc::proc_task_cred(pid.0, tid)?;
    Ok(Cred {
        pid,
        euid: Uid(ids.euid),
        egid: Gid(ids.egid),
        groups: ids.groups.into_iter().map(Gid).collect(),
        caps: CapSet(caps),
        memlock_limit: proc::proc_memlock_limit(pid.0)?,
        posix: PosixIds {
            ruid: Uid(ids.ruid),
            fsuid: Uid(ids.fsuid),
            fsgid: Gid(ids.fsgid),
            umask: ids.umask,
            msgqueue_limit: proc::proc_msgqueue_limit(pid.0)?,
        },
    })
}

fn cred_of(stream: &UnixStream) -> Result<Cred, Errno> {
    let peer = net::peer_cred(stream.as_fd())?;
    let groups = net::peer_groups(stream.as_fd())?;
    Ok(Cred {
        pid: Pid(peer.pid),
        euid: Uid(peer.uid),
        egid: Gid(peer.gid),
        groups: groups.into_iter().map(Gid).collect(),
        caps: CapSet(proc::proc_caps(peer.pid)?),
        memlock_limit: proc::proc_memlock_limit(peer.pid)?,
        // Read afresh by the calls that need them (posix_ids_now).
        posix: PosixIds::from_effective(Uid(peer.uid), Gid(peer.gid)),
    })
}

impl Daemon {
    /// Binds the socket and prepares the loop.
    ///
    /// # Errors
    /// See [`run`](crate::run).
    pub fn bind(config: Config) -> Result<Daemon, DaemonError> {
        prepare_socket(&config.socket)?;
        let listener =
            UnixListener::bind(&config.socket).map_err(|e| err(&format!("binding {}", config.socket.display()), e))?;
        // Anyone may connect: IPC permissions decide what they may do.
        std::fs::set_permissions(&config.socket, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| err("socket permissions", e))?;
        listener.set_nonblocking(true).map_err(|e| err("listener", e))?;
        if let Some(dir) = &config.state_dir {
            std::fs::create_dir_all(dir).map_err(|e| err(&format!("state directory {}", dir.display()), e))?;
        }
        // One memfd per segment and per named POSIX object: as many as the
        // hard limit allows (a failure only leaves the soft limit).
        if let Err(e) = proc::raise_nofile_limit() {
            warn!("RLIMIT_NOFILE stays as it is: {e:?}");
        }
        let (signals, signal_writer) = UnixStream::pair().map_err(|e| err("signal pipe", e))?;
        signals.set_nonblocking(true).map_err(|e| err("signal pipe", e))?;
        let mut signal_ids = Vec::new();
        // An embedded daemon (one with a lifeline) leaves the host's signals
        // alone: a SIGTERM meant for `uipc run`'s program must not stop it.
        let claims_signals = config.lifeline.is_none();
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT].into_iter().filter(|_| claims_signals) {
            let w = signal_writer.try_clone().map_err(|e| err("signal pipe", e))?;
            signal_ids.push(signal_hook::low_level::pipe::register(sig, w).map_err(|e| err("signal handler", e))?);
        }
        let poller = Poller::new().map_err(|e| err("epoll", e))?;
        poller.add(listener.as_fd(), LISTENER, false).map_err(|e| err("epoll", e))?;
        if claims_signals {
            // Without handlers the pipe's write end is gone: not a signal.
            poller.add(signals.as_fd(), SIGNALS, false).map_err(|e| err("epoll", e))?;
        }
        if let Some(fd) = &config.lifeline {
            poller.add(fd.as_fd(), LIFELINE, false).map_err(|e| err("epoll", e))?;
        }
        let mut daemon = Daemon {
            listener,
            socket: config.socket,
            poller,
            _signal_pipe: signals,
            _lifeline: config.lifeline,
            signal_ids,
            state_dir: config.state_dir,
            next_token: FIRST_TOKEN,
            sources: BTreeMap::new(),
            conns: BTreeMap::new(),
            procs: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            parked: BTreeMap::new(),
            timers: BTreeMap::new(),
            dirty: Vec::new(),
            ns_meta: BTreeMap::new(),
            next_ephemeral: 1,
            audit: None,
            tree: None,
            mq_handles: BTreeMap::new(),
            next_mq_handle: 1,
            mq_notify_pipes: BTreeMap::new(),
            mq_pipes: BTreeMap::new(),
            sem_pages: crate::sem_pages::SemPages::default(),
            msg_pages: crate::msg_pages::MsgPages::default(),
            mq_pages: crate::mq_pages::MqPages::default(),
            shm_pages: crate::shm_pages::ShmPages::default(),
            extra_fd: None,
            shm_regions: crate::shm_status::ShmRegions::default(),
            sem_regions: crate::sem_status::SemRegions::default(),
            sem_live: std::collections::HashMap::new(),
            msg_regions: crate::msg_status::MsgRegions::default(),
            msg_live: std::collections::HashMap::new(),
            page_files: crate::durable::PageFiles::default(),
            durable: crate::durable::Durable::default(),
        };
        if let Some(dir) = daemon.state_dir.clone() {
            daemon.page_files.dir = Some(dir.clone());
            let (store, state) = crate::persist::DirStore::open(&dir)?;
            daemon.restore(Box::new(store), state);
        }
        // The namespace clients get by default: the daemon's, open to all.
        daemon.namespace("default").map_err(|e| err("the default namespace", e))?;
        daemon.persist();
        info!(socket = %daemon.socket.display(), "listening");
        if let Some(fd) = config.ready_fd {
            let mut f = std::fs::File::from(fd);
            // A caller that stopped waiting is not our failure.
            let _ = f.write_all(b"READY\n");
        }
        Ok(daemon)
    }

    /// Makes this a private daemon of the process tree rooted at `root`
    /// (`uipc run`): a connection is accepted only from `root` or a
    /// process that descends from it (its `PPid` chain, read from `/proc`
    /// when it connects), whatever its credentials; any other is closed
    /// at once. `root` should be a child subreaper
    /// (`PR_SET_CHILD_SUBREAPER`), so that a descendant whose parent
    /// exits (a double-forking daemon) is re-parented to it and stays in
    /// the tree. See `docs/architecture.md`, "Who may connect".
    pub fn only_tree(mut self, root: u32) -> Daemon {
        self.tree = Some(root);
        self
    }

    /// Serves until SIGTERM or SIGINT; removes the socket on the way out.
    ///
    /// # Errors
    /// Only if epoll itself fails.
    pub fn serve(mut self) -> Result<(), DaemonError> {
        // Until when the loop polls instead of sleeping: a client's next
        // request, which often follows its last answer within microseconds,
        // then finds the daemon awake (waking a sleeping CPU costs tens of
        // them on a virtual machine; DESIGN's "spinning briefly").
        let mut awake_until = Instant::now();
        loop {
            let timeout = self.timers.keys().next().map_or(-1, |(deadline, _)| {
                let left = deadline.saturating_duration_since(Instant::now());
                i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
            });
            let mut events = Vec::new();
            while events.is_empty() && Instant::now() < awake_until && !self.timers_due() {
                events = self.poller.wait(0).map_err(|e| err("epoll_wait", e))?;
                if events.is_empty() {
                    // Lets a client on this CPU run.
                    std::thread::yield_now();
                }
            }
            if events.is_empty() {
                events = self.poller.wait(timeout).map_err(|e| err("epoll_wait", e))?;
            }
            if !events.is_empty() {
                awake_until = Instant::now() + SPIN;
            }
            // Exits first: a process whose pidfd is readable is settled (its
            // undo records applied, its attachments released) before any
            // request of the same wakeup, which may come from a parent that
            // has already reaped it — the kernel runs exit_sem() before the
            // parent's wait() can return. Stable: other events keep their order.
            events.sort_by_key(|ev| !matches!(self.sources.get(&ev.token), Some(Source::Pidfd(_))));
            // Expired timeouts answer their sleepers, events or not.
            self.expire_timers();
            self.pump_dirty();
            for ev in events {
                match ev.token {
                    LISTENER => self.accept_all(),
                    SIGNALS | LIFELINE => {
                        info!("signal or lifeline: shutting down");
                        let _ = std::fs::remove_file(&self.socket);
                        // A state directory keeps every object for the next daemon.
                        self.page_files.unlinks.keep_all();
                        return Ok(());
                    }
                    token => match self.sources.get(&token).copied() {
                        Some(Source::Conn) => {
                            if ev.readable || ev.hangup {
                                self.read_conn(token);
                            } else if ev.writable {
                                self.pump(token);
                            }
                        }
                        Some(Source::Pidfd(pid)) => self.process_exited(pid),
                        None => {}
                    },
                }
                self.pump_dirty();
            }
        }
    }

    /// Closes every connection chosen by `which` whose peer has closed its
    /// end, after answering what it sent before closing.
    fn settle_hung_up(&mut self, which: impl Fn(&Conn) -> bool) {
        let hung: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| which(c) && net::peer_closed(c.stream.as_fd()).unwrap_or(false))
            .map(|(t, _)| *t)
            .collect();
        for token in hung {
            // What it sent before closing is answered, then its end of
            // file closes it; read_conn stops early after a short read.
            for _ in 0..8 {
                if !self.conns.contains_key(&token) {
                    break;
                }
                self.read_conn(token);
            }
        }
    }

    /// Whether a semtimedop timeout is due (the spin must not delay it).
    fn timers_due(&self) -> bool {
        self.timers.keys().next().is_some_and(|(deadline, _)| *deadline <= Instant::now())
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn accept_all(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // EMFILE and friends: drop this round, keep serving others.
                    warn!("accept: {e}");
                    return;
                }
            };
            if let Err(e) = self.adopt(stream) {
                debug!("refused a connection: {e:?}");
            }
        }
    }

    /// Registers a new connection and its process.
    fn adopt(&mut self, stream: UnixStream) -> Result<(), Errno> {
        stream.set_nonblocking(true).map_err(|_| Errno::EIO)?;
        let cred = cred_of(&stream)?;
        let pid = cred.pid.0;
        if let Some(root) = self.tree {
            // A process outside a private daemon's tree is not served: the
            // stream is dropped (closed) unanswered.
            if !proc::descends_from(pid, root).unwrap_or(false) {
                info!(pid, "refused: not in the process tree of this private daemon");
                return Err(Errno::EACCES);
            }
        }
        // A process that exec'd connects anew after the kernel closed its
        // old connections (close-on-exec): those are settled first, so the
        // exec releases its attachments (its last connection closing)
        // before the new program's first call, whatever order the loop
        // would have seen the hang-up and this connection in.
        self.settle_hung_up(|c| c.cred.pid.0 == pid);
        self.track_process(pid)?;
        let token = self.token();
        self.poller.add(stream.as_fd(), token, false)?;
        if let Some(p) = self.procs.get_mut(&pid) {
            p.conns += 1;
        }
        debug!(pid, uid = cred.euid.0, token, "connected");
        self.sources.insert(token, Source::Conn);
        self.conns.insert(
            token,
            Conn {
                stream,
                cred,
                ns: None,
                inbuf: Vec::new(),
                out: VecDeque::new(),
                pending: BTreeMap::new(),
                next_token: 1,
                watching: (true, false),
                parked: None,
                once: None,
            },
        );
        Ok(())
    }

    /// Makes sure `pid` has a record with a watched pidfd.
    pub(crate) fn track_process(&mut self, pid: u32) -> Result<(), Errno> {
        if self.procs.contains_key(&pid) {
            return Ok(());
        }
        let pidfd = proc::pidfd_open(pid)?;
        let token = self.token();
        self.poller.add(pidfd.as_fd(), token, false)?;
        self.sources.insert(token, Source::Pidfd(pid));
        self.procs.insert(pid, ProcRec { pidfd, token, conns: 0, namespaces: BTreeSet::new() });
        self.touch_procs();
        Ok(())
    }

    /// Joins `cred` to namespace `name`: enters it if its owner and mode
    /// admit the caller, or creates it (owned by the caller, mode 0755:
    /// others may join, as the kernel lets any process share its parent's
    /// namespace) if it does not exist.
    pub(crate) fn join(&mut self, cred: &Cred, name: &str) -> Result<(), Errno> {
        if let Some(ns) = self.namespaces.get(name) {
            if self.already_in(cred, name) {
                return Ok(());
            }
            return uipc_core::perm::ns_may_enter(cred, &ns.owner);
        }
        let ns = self.namespace(name)?;
        ns.owner = uipc_core::perm::NamespaceOwner { uid: cred.euid, gid: cred.egid, mode: 0o755 };
        Ok(())
    }

    /// The namespace `name`, created on first use.
    pub(crate) fn namespace(&mut self, name: &str) -> Result<&mut IpcNamespace<DaemonMemory>, Errno> {
        if !self.namespaces.contains_key(name) {
            let memory = match &self.state_dir {
                Some(dir) => {
                    let d = dir.join("ns").join(name);
                    std::fs::create_dir_all(&d).map_err(|_| Errno::EIO)?;
                    DaemonMemory::Dir(DirMemory::deferred(d, self.page_files.unlinks.clone()))
                }
                None => DaemonMemory::Memfd(MemfdMemory),
            };
            info!(namespace = name, "namespace created");
            let mut ns = IpcNamespace::new(memory);
            if self.durable.store.is_some() {
                // A state directory records the parts each event changes.
                ns.track_changes();
            }
            self.namespaces.insert(name.to_owned(), ns);
            self.touch_ns(name);
        }
        self.namespaces.get_mut(name).ok_or(Errno::EIO)
    }

    fn read_conn(&mut self, token: u64) {
        let mut buf = [0u8; 16 * 1024];
        let mut closed = false;
        let Some(conn) = self.conns.get_mut(&token) else { return };
        // Never buffer more than one frame's worth ahead.
        while conn.inbuf.len() <= HEADER + MAX_FRAME {
            // Descriptors a client sends are never wanted: recv_msg with no
            // room for them closes them and fails the connection.
            match net::recv_msg(conn.stream.as_fd(), &mut buf, 0) {
                Ok((0, _)) => {
                    closed = true;
                    break;
                }
                Ok((n, _)) => {
                    conn.inbuf.extend_from_slice(&buf[..n]);
                    if n < buf.len() {
                        break;
                    }
                }
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    debug!(token, "recv: {e:?}");
                    closed = true;
                    break;
                }
            }
        }
        self.pump(token);
        if closed {
            self.close_conn(token);
        }
    }

    /// Answers the buffered requests of `token` and sends what can be sent,
    /// until the replies back up ([`MAX_QUEUED`]) or no whole request is
    /// left; then sets what epoll watches accordingly.
    fn pump(&mut self, token: u64) {
        loop {
            if let Err(e) = self.handle_frames(token) {
                debug!(token, "protocol error: {e}");
                self.close_conn(token);
                return;
            }
            if !self.flush(token) {
                self.close_conn(token);
                return;
            }
            let Some(conn) = self.conns.get(&token) else { return };
            let more = conn.out.len() < MAX_QUEUED && matches!(uipc_proto::decode::<Request>(&conn.inbuf), Ok(Some(_)));
            if !more {
                break;
            }
        }
        let Some(conn) = self.conns.get_mut(&token) else { return };
        let want = (conn.out.len() < MAX_QUEUED && conn.inbuf.len() <= HEADER + MAX_FRAME, !conn.out.is_empty());
        if want != conn.watching {
            conn.watching = want;
            let _ = self.poller.modify(conn.stream.as_fd(), token, want.0, want.1);
        }
    }

    /// Decodes and answers whole frames buffered on `token`, while fewer
    /// than [`MAX_QUEUED`] replies wait to be sent.
    fn handle_frames(&mut self, token: u64) -> Result<(), uipc_proto::ProtoError> {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else { return Ok(()) };
            if conn.out.len() >= MAX_QUEUED {
                return Ok(());
            }
            let Some((req, used)) = uipc_proto::decode::<Request>(&conn.inbuf)? else { return Ok(()) };
            conn.inbuf.drain(..used);
            if conn.parked.is_some() && req != Request::Cancel {
                // Step 3 of the protocol: a sleeping caller can only cancel.
                return Err(uipc_proto::ProtoError::Malformed);
            }
            if let Request::Once { client, seq } = req {
                conn.once = Some((client, seq));
                continue;
            }
            if let Some(store) = self.durable.store.as_mut() {
                store.before_request();
            }
            // A request sent again after a restart, whose answer was
            // recorded with its effect: that answer, not a second effect.
            let req = match self.replay(token, req) {
                Ok(()) => continue,
                Err(req) => req,
            };
            if let Some((resp, fd)) = self.dispatch(token, req) {
                self.queue(token, &resp, fd);
            }
        }
    }

    pub(crate) fn queue(&mut self, token: u64, resp: &Response, fd: Option<OwnedFd>) {
        match uipc_proto::encode(resp) {
            // A reply may carry a second descriptor (a creating shmget's
            // attach page, after the memory).
            Ok(bytes) => {
                let fds = fd.into_iter().chain(self.extra_fd.take()).collect();
                self.queue_bytes(token, bytes, fds);
            }
            Err(e) => warn!("cannot encode a response: {e}"),
        }
    }

    /// Queues an encoded reply.
    pub(crate) fn queue_bytes(&mut self, token: u64, bytes: Vec<u8>, fds: Vec<OwnedFd>) {
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.out.push_back(Outgoing { bytes, sent: 0, fds });
        }
    }

    /// Sends what can be sent now; `false` if the connection failed.
    fn flush(&mut self, token: u64) -> bool {
        // Write-ahead: what the event changed is recorded before its replies leave.
        self.persist();
        let Some(conn) = self.conns.get_mut(&token) else { return true };
        if let (false, Some(store)) = (conn.out.is_empty(), self.durable.store.as_mut()) {
            store.before_reply();
        }
        while let Some(front) = conn.out.front_mut() {
            let fds: Vec<_> = front.fds.iter().map(|f| f.as_fd()).collect();
            match net::send_msg(conn.stream.as_fd(), &front.bytes[front.sent..], &fds) {
                Ok(n) => {
                    front.sent += n;
                    front.fds.clear();
                    if front.sent == front.bytes.len() {
                        conn.out.pop_front();
                    }
                }
                Err(Errno::EAGAIN) => break,
                Err(_) => return false,
            }
        }
        true
    }

    /// Forgets a connection: aborts its pending attaches and, if it was its
    /// process's last, releases the process's mappings (the process exec'd
    /// or let go of uipc).
    fn close_conn(&mut self, token: u64) {
        let Some(conn) = self.conns.remove(&token) else { return };
        self.sources.remove(&token);
        let _ = self.poller.delete(conn.stream.as_fd());
        let pid = conn.cred.pid.0;
        let t = now();
        if let Some(name) = conn.ns.as_deref() {
            if let Some(w) = conn.parked {
                self.parked.remove(&(name.to_owned(), w));
            }
            let held: Vec<i32> = conn.pending.values().map(|p| p.id.0).collect();
            self.shm_enter(name, &crate::shm_pages::Scope::Segs(held), Pid(pid));
            self.with_sem_pages(name, |d| {
                if let Some(ns) = d.namespaces.get_mut(name) {
                    for (_, pending) in conn.pending {
                        ns.shmat_abort(t, pending);
                    }
                    // The sleeper is gone with its connection.
                    if let Some(w) = conn.parked {
                        ns.interrupt(w, Interrupt::Signal);
                    }
                }
            });
            self.shm_leave(name);
        }
        debug!(pid, token, "disconnected");
        if let Some(name) = conn.ns.as_deref() {
            self.touch_ns(name);
        }
        self.touch_process(pid);
        if let Some(p) = self.procs.get_mut(&pid) {
            p.conns = p.conns.saturating_sub(1);
            if p.conns == 0 {
                for name in p.namespaces.clone() {
                    self.shm_enter(&name, &crate::shm_pages::Scope::Process(Vec::new()), Pid(pid));
                    self.with_sem_pages(&name, |d| {
                        if let Some(ns) = d.namespaces.get_mut(&name) {
                            ns.exec(Pid(pid), t);
                        }
                        d.shm_pages_release(Pid(pid));
                    });
                    self.shm_leave(&name);
                }
            }
        }
        self.status_publish_for(pid, conn.ns.as_deref());
    }

    /// The process exited: its connections are closed (aborting attaches it
    /// left pending), then it is settled in every namespace it used.
    pub(crate) fn process_exited(&mut self, pid: u32) {
        let tokens: Vec<u64> = self.conns.iter().filter(|(_, c)| c.cred.pid.0 == pid).map(|(t, _)| *t).collect();
        for token in tokens {
            self.close_conn(token);
        }
        self.durable.answers.retain(|(owner, _), _| *owner != pid);
        let Some(p) = self.procs.remove(&pid) else { return };
        self.sources.remove(&p.token);
        let _ = self.poller.delete(p.pidfd.as_fd());
        self.settle_exit(pid, &p.namespaces, now());
        debug!(pid, "process exited");
        for name in &p.namespaces {
            self.status_publish(name);
        }
        self.end_ephemeral(&p.namespaces, pid);
    }

    /// Settles every process whose pidfd says it has exited, and closes
    /// every connection whose peer has closed its end (the `Sync`
    /// barrier): after a barrier, an `execve` that closed a process's last
    /// connection (close-on-exec) has released its attachments, however
    /// the event loop would have ordered that hang-up.
    pub(crate) fn reap(&mut self) {
        self.settle_hung_up(|_| true);
        let gone: Vec<u32> = self
            .procs
            .iter()
            .filter(|(_, p)| proc::pidfd_exited(p.pidfd.as_fd()).unwrap_or(false))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in gone {
            self.process_exited(pid);
        }
    }

    pub(crate) fn conn_mut(&mut self, token: u64) -> Option<&mut Conn> {
        self.conns.get_mut(&token)
    }

    /// Parks connection `token`'s caller as `waiter` in namespace `ns`,
    /// with a deadline for a timed wait.
    pub(crate) fn park(&mut self, token: u64, ns: &str, waiter: WaiterId, timeout: Option<Duration>) {
        if let Some(c) = self.conns.get_mut(&token) {
            c.parked = Some(waiter);
        }
        self.parked.insert((ns.to_owned(), waiter), token);
        if let Some(t) = timeout {
            let deadline =
                Instant::now().checked_add(t).unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 32));
            let seq = self.token();
            self.timers.insert((deadline, seq), (ns.to_owned(), waiter));
        }
    }

    /// Sends each finished sleeper of namespace `ns` its reply.
    pub(crate) fn deliver(&mut self, ns: &str) {
        let Some(space) = self.namespaces.get_mut(ns) else { return };
        let mut answers = Vec::new();
        for w in space.take_wakeups() {
            answers.push((w.waiter, w.result, w.message));
        }
        for (waiter, result, message) in answers {
            self.answer_parked(ns, waiter, result, message);
        }
        self.mq_sync(ns);
    }

    /// Replies to the parked caller `waiter` of `ns`.
    pub(crate) fn answer_parked(
        &mut self,
        ns: &str,
        waiter: WaiterId,
        result: Result<i64, Errno>,
        message: Option<Message>,
    ) {
        let Some(token) = self.parked.remove(&(ns.to_owned(), waiter)) else { return };
        if let Some(c) = self.conns.get_mut(&token) {
            c.parked = None;
        }
        // A woken receiver (msgrcv, mq_receive) gets the message it was handed.
        let resp = match (result, message) {
            (Ok(_), Some(m)) => Response::Msg { mtype: m.mtype, data: m.data },
            (Ok(v), None) => Response::Value(v),
            (Err(e), _) => Response::Error(e.raw()),
        };
        self.note_answer(token, &resp, false);
        self.queue(token, &resp, None);
        self.dirty.push(token);
    }

    /// Sends the replies queued for other connections than the one being
    /// served (finished sleepers) and resumes reading them.
    fn pump_dirty(&mut self) {
        while let Some(token) = self.dirty.pop() {
            self.pump(token);
        }
    }

    /// Times out the sleepers whose deadline passed (`EAGAIN`).
    fn expire_timers(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (ns, w) = entry.remove();
            self.touch_ns(&ns);
            self.with_sem_pages(&ns, |d| {
                let result = d.namespaces.get_mut(&ns).and_then(|space| space.interrupt(w, Interrupt::Timeout));
                if let Some(r) = result {
                    d.answer_parked(&ns, w, r, None);
                }
            });
        }
    }

    /// Takes the pending attach `tok` of connection `token`.
    pub(crate) fn conns_pending_take(&mut self, token: u64, tok: u64) -> Option<PendingAttach<SharedRegion>> {
        self.conns.get_mut(&token)?.pending.remove(&tok)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for id in self.signal_ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
