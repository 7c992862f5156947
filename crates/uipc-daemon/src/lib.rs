//! The uipc daemon: the I/O shell around `uipc-core`.
//!
//! One thread runs one event loop that owns every namespace. It accepts
//! connections on a Unix socket, learns each caller's identity from the
//! kernel (`SO_PEERCRED`, `SO_PEERGROUPS`, the peer's capability set and
//! `RLIMIT_MEMLOCK`), decodes frames, maps each request to one core call, and
//! sends the reply — with the segment's descriptor for an attach. It follows
//! each process's life with a pidfd: an exit detaches its mappings and
//! orphans the segments it created.
//!
//! # Protocol, as numbered steps
//! 1. The client connects; the daemon reads its credentials and opens a
//!    pidfd on its pid.
//! 2. The client sends `Hello { version, namespace }`; the namespace is
//!    created on first use (`Join` is the same but only enters one that
//!    exists). Namespace management (`NsCreate`, `NsList`, `NsShow`,
//!    `NsRemove`) may come before or after it; nothing else may come
//!    before it. A namespace removed under a connection answers `EIDRM`
//!    to every later call.
//! 3. Each request gets exactly one response, in order. `ShmAt` answers
//!    `Attach` with the memory's descriptor (re-opened read-only for
//!    `SHM_RDONLY`); the client maps it and reports the address with
//!    `ShmAtDone`, which commits the attach (or aborts it).
//! 4. A client that forked reports the child (`Forked`); a client about to
//!    exec says so (`Exec`). The child talks on a connection of its own.
//! 5. When a process's last connection closes, its mappings are released
//!    (as exec does); when its pidfd fires, it exited: mappings and created
//!    segments are settled as `exit()` settles them.
//!
//! Lock order: there are no locks; the loop is the only owner of the state.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
mod dispatch;
mod durable;
mod memory;
mod mq;
mod mq_pages;
mod msg_pages;
mod msg_status;
mod namespaces;
mod persist;
mod sem_pages;
mod sem_status;
mod server;
mod shm_pages;
mod shm_status;
mod status;

use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub use memory::DaemonMemory;
pub use server::Daemon;

/// How to run a daemon.
#[derive(Debug)]
pub struct Config {
    /// The socket to listen on.
    pub socket: PathBuf,
    /// Where segment memory lives as files (tmpfs); memfds if `None`.
    pub state_dir: Option<PathBuf>,
    /// Written with `READY\n` and closed once the socket accepts connections.
    pub ready_fd: Option<OwnedFd>,
    /// The daemon shuts down when this descriptor hangs up or becomes
    /// readable (the read end of a pipe its starter holds): a private
    /// daemon then never outlives whoever started it. A daemon with a
    /// lifeline is embedded: it does not take SIGTERM/SIGINT, which stay the
    /// host process's; a standalone daemon (no lifeline) stops on either.
    pub lifeline: Option<OwnedFd>,
}

pub use uipc_proto::default_socket_path;

/// Why the daemon could not run.
#[derive(Debug)]
pub struct DaemonError(pub String);

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DaemonError {}

/// Runs a daemon until SIGTERM or SIGINT (standalone) or its lifeline ends.
///
/// # Errors
/// When the socket cannot be bound (another daemon answers there, no
/// permission) or the state directory cannot be used.
pub fn run(config: Config) -> Result<(), DaemonError> {
    Daemon::bind(config)?.serve()
}

/// A daemon served by a thread of this process, with a lifeline this
/// handle holds: `uipc run`'s private daemon, and the tests' daemons. It is
/// bound (accepting connections) when [`spawn`](Embedded::spawn) returns,
/// and stops when the handle is [stopped](Embedded::stop) or dropped.
#[derive(Debug)]
pub struct Embedded {
    socket: PathBuf,
    /// Our end of the lifeline: hanging it up stops the daemon.
    lifeline: Option<std::os::unix::net::UnixStream>,
    thread: Option<std::thread::JoinHandle<Result<(), DaemonError>>>,
}

impl Embedded {
    /// Binds a daemon on `socket` in a new thread; `configure` may adjust it
    /// before it serves (an audit log, say).
    ///
    /// # Errors
    /// As [`run`]'s binding; the thread could not be started.
    pub fn spawn(
        socket: PathBuf,
        configure: impl FnOnce(Daemon) -> Daemon + Send + 'static,
    ) -> Result<Embedded, DaemonError> {
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(|e| DaemonError(format!("lifeline: {e}")))?;
        let config = Config { socket: socket.clone(), state_dir: None, ready_fd: None, lifeline: Some(theirs.into()) };
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("uipc-daemon".into())
            // `Daemon` is not Send: it is bound on the thread that serves it.
            .spawn(move || match Daemon::bind(config) {
                Ok(d) => {
                    let _ = tx.send(Ok(()));
                    configure(d).serve()
                }
                Err(e) => {
                    let _ = tx.send(Err(e.0.clone()));
                    Err(e)
                }
            })
            .map_err(|e| DaemonError(format!("daemon thread: {e}")))?;
        match rx.recv() {
            Ok(Ok(())) => Ok(Embedded { socket, lifeline: Some(ours), thread: Some(thread) }),
            Ok(Err(msg)) => {
                let _ = thread.join();
                Err(DaemonError(msg))
            }
            Err(_) => {
                let _ = thread.join();
                Err(DaemonError("the daemon thread ended before binding".into()))
            }
        }
    }

    /// The socket it serves on.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Hangs up the lifeline and waits for the daemon to finish.
    ///
    /// # Errors
    /// The daemon's own error, or its thread's panic.
    pub fn stop(mut self) -> Result<(), DaemonError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), DaemonError> {
        self.lifeline.take();
        match self.thread.take().map(std::thread::JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(DaemonError("the daemon thread panicked".into())),
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
