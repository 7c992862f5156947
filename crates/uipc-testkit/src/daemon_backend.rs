//! The daemon backend: the same agent, its workers calling uipc through
//! `uipc-client`, against one daemon per test process; each test gets a
//! namespace of its own, fresh like the kernel's `unshare(CLONE_NEWIPC)`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

use crate::kernel::KernelBackend;

/// The shared daemon: its socket, and the process with the pipe that keeps
/// it alive (its standard input is its lifeline: it ends with us).
struct SharedDaemon {
    socket: PathBuf,
    _process: Mutex<(Child, ChildStdin)>,
}

static DAEMON: OnceLock<Result<SharedDaemon, String>> = OnceLock::new();
static NEXT_NAMESPACE: AtomicU64 = AtomicU64::new(0);

fn start_daemon(agent: &str) -> Result<SharedDaemon, String> {
    let dir = std::env::temp_dir().join(format!("uipc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let socket = dir.join("uipc.sock");
    let mut child = Command::new(agent)
        .arg("--serve-daemon")
        .arg(&socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the test daemon: {e}"))?;
    let stdin = child.stdin.take().ok_or("daemon has no stdin")?;
    let stdout = child.stdout.take().ok_or("daemon has no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    // Readiness is a line on its stdout, never a sleep; the timeout is a watchdog.
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) if line.trim() == "READY" => Ok(SharedDaemon { socket, _process: Mutex::new((child, stdin)) }),
        Ok(line) => Err(format!("test daemon did not start: {line:?}")),
        Err(_) => {
            let _ = child.kill();
            Err("test daemon did not report READY within 30 s".into())
        }
    }
}

/// The shared daemon's socket (starting the daemon on first use) and a
/// namespace of its own for one test session.
pub(crate) fn fresh_namespace(agent: &str) -> Result<(String, String), String> {
    let daemon = DAEMON.get_or_init(|| start_daemon(agent)).as_ref().map_err(Clone::clone)?;
    let ns = format!("test-{}", NEXT_NAMESPACE.fetch_add(1, Ordering::Relaxed));
    let socket = daemon.socket.to_str().ok_or("socket path is not UTF-8")?;
    Ok((socket.to_owned(), ns))
}

/// Starts a daemon-backed session: the agent in `--daemon` mode on a fresh namespace.
pub fn start(agent: &str) -> Result<KernelBackend, String> {
    let (socket, ns) = fresh_namespace(agent)?;
    KernelBackend::start_with(agent, &["--daemon", &socket, &ns], "daemon")
}
