//! `uipc run`: exit statuses and signals pass through, a private daemon
//! lives exactly as long as the program, an answering daemon is used, and
//! `--deny-kernel-ipc` makes the kernel's IPC calls fail with `ENOSYS`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Generous: only a hung `uipc run` (a daemon that never stops) reaches it.
const WATCHDOG: Duration = Duration::from_secs(120);

/// A directory of this test's own, short enough for a socket path.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `uipc run [opts] -- program...`, with no shim and no daemon in reach
/// unless the test says otherwise.
fn uipc_run(opts: &[&str], program: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uipc"));
    cmd.arg("run").arg("--preload").arg("/nonexistent/libuipc_preload.so");
    cmd.args(opts).arg("--").args(program);
    // Nobody listens here: `uipc run` must start its own daemon.
    cmd.env("UIPC_SOCKET", "/nonexistent/uipc.sock");
    cmd.stdin(Stdio::null());
    cmd
}

/// Waits for `child` under a watchdog that kills it and fails the test.
fn wait_watched(mut child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let waiter = std::thread::spawn(move || {
        let read = |r: Option<Box<dyn std::io::Read + Send>>| {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                r.read_to_end(&mut v).unwrap();
            }
            v
        };
        let err = std::thread::spawn(move || read(stderr.map(|e| Box::new(e) as _)));
        let out = read(stdout.map(|o| Box::new(o) as _));
        let status = child.wait().unwrap();
        let _ = tx.send(());
        Output { status, stdout: out, stderr: err.join().unwrap() }
    });
    if rx.recv_timeout(WATCHDOG).is_err() {
        let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        panic!("uipc run (pid {pid}) did not finish within {WATCHDOG:?}");
    }
    waiter.join().unwrap()
}

fn run_watched(mut cmd: Command) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_watched(child)
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn exit_status_passes_through() {
    let out = run_watched(uipc_run(&[], &["sh", "-c", "exit 7"]));
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    let out = run_watched(uipc_run(&[], &["true"]));
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn death_by_signal_passes_through() {
    let out = run_watched(uipc_run(&[], &["sh", "-c", "kill -TERM $$"]));
    assert_eq!(out.status.signal(), Some(15), "{}", describe(&out));
}

#[test]
fn a_missing_program_is_127_like_a_shell() {
    let out = run_watched(uipc_run(&[], &["/nonexistent/program"]));
    assert_eq!(out.status.code(), Some(127), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("command not found"), "{}", describe(&out));
    assert!(!stderr.contains("panicked"), "{}", describe(&out));
}

#[test]
fn the_missing_shim_is_a_warning() {
    let out = run_watched(uipc_run(&[], &["sh", "-c", "test -z \"$LD_PRELOAD\""]));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"), "{}", describe(&out));
}

#[test]
fn a_present_shim_is_prepended_to_ld_preload() {
    // An empty file as the "shim": the loader reports that it cannot be
    // preloaded and ignores it, and the program still sees the variable.
    let dir = scratch("shim");
    let lib = dir.join("libuipc_preload.so");
    std::fs::write(&lib, b"").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uipc"));
    cmd.args(["run", "--preload"]).arg(&lib);
    cmd.args(["--", "sh", "-c", "echo \"$LD_PRELOAD\""]);
    cmd.env("UIPC_SOCKET", "/nonexistent/uipc.sock").env("LD_PRELOAD", "/other.so");
    let out = run_watched(cmd);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout_of(&out), format!("{}:/other.so", lib.display()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_private_daemon_lives_as_long_as_the_program() {
    let out = run_watched(uipc_run(
        &["--ns", "t1"],
        &["sh", "-c", "test -S \"$UIPC_SOCKET\" && echo \"$UIPC_SOCKET\" && echo \"$UIPC_NAMESPACE\""],
    ));
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout_of(&out);
    let mut lines = text.lines();
    let socket = PathBuf::from(lines.next().unwrap());
    assert_eq!(lines.next(), Some("t1"));
    assert_ne!(socket, Path::new("/nonexistent/uipc.sock"));
    assert!(!socket.exists(), "{} outlived uipc run", socket.display());
    let dir = socket.parent().unwrap();
    assert!(!dir.exists(), "{} outlived uipc run", dir.display());
}

#[test]
fn an_answering_daemon_is_used() {
    let dir = scratch("shared");
    let socket = dir.join("uipc.sock");
    let (ours, theirs) = UnixStream::pair().unwrap();
    let config = uipc_daemon::Config {
        socket: socket.clone(),
        state_dir: None,
        ready_fd: None,
        lifeline: Some(OwnedFd::from(theirs)),
    };
    let (tx, rx) = mpsc::channel();
    let daemon = std::thread::spawn(move || match uipc_daemon::Daemon::bind(config) {
        Ok(d) => {
            tx.send(true).unwrap();
            d.serve()
        }
        Err(e) => {
            tx.send(false).unwrap();
            Err(e)
        }
    });
    assert!(rx.recv().unwrap(), "the test's daemon did not bind");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uipc"));
    cmd.args(["run", "--preload", "/nonexistent/libuipc_preload.so", "--socket"]).arg(&socket);
    cmd.args(["--", "sh", "-c", "echo \"$UIPC_SOCKET\""]);
    cmd.env("UIPC_SOCKET", "/nonexistent/uipc.sock");
    let out = run_watched(cmd);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(PathBuf::from(stdout_of(&out)), socket);
    // Still ours, still there.
    assert!(UnixStream::connect(&socket).is_ok());

    // The same through $UIPC_SOCKET.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uipc"));
    cmd.args(["run", "--preload", "/nonexistent/libuipc_preload.so", "--", "sh", "-c", "echo \"$UIPC_SOCKET\""]);
    cmd.env("UIPC_SOCKET", &socket);
    let out = run_watched(cmd);
    assert_eq!(PathBuf::from(stdout_of(&out)), socket, "{}", describe(&out));

    drop(ours);
    daemon.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn signals_sent_to_uipc_run_reach_the_program() {
    // The private daemon must keep serving while the program handles the
    // signal: its socket is still there inside the trap (3 if not).
    let script = r#"trap 'test -S "$UIPC_SOCKET" && exit 9 || exit 3' TERM; echo ready; while :; do sleep 0.05; done"#;
    let mut cmd = uipc_run(&[], &["sh", "-c", script]);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let killed = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(killed.success());
    let out = wait_watched(child);
    assert_eq!(out.status.code(), Some(9), "{}", describe(&out));
}

fn python3() -> bool {
    let found = Command::new("python3").args(["-c", "pass"]).stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        eprintln!("skipped: python3 not found");
    }
    found
}

/// Calls shmget, msgget and semget (IPC_PRIVATE) through libc and prints
/// `result errno` for each, removing whatever was created.
const IPC_PROBE: &str = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
IPC_RMID = 0
for name, call, rm in (
    ("shm", lambda: libc.shmget(0, 4096, 0o1600), lambda i: libc.shmctl(i, IPC_RMID, None)),
    ("msg", lambda: libc.msgget(0, 0o1600), lambda i: libc.msgctl(i, IPC_RMID, None)),
    ("sem", lambda: libc.semget(0, 1, 0o1600), lambda i: libc.semctl(i, 0, IPC_RMID)),
):
    ctypes.set_errno(0)
    r = call()
    e = ctypes.get_errno()
    if r >= 0:
        rm(r)
    print(name, r, e)
"#;

fn probe(deny: bool) -> Vec<(String, i64, i64)> {
    let opts: &[&str] = if deny { &["--deny-kernel-ipc"] } else { &[] };
    let out = run_watched(uipc_run(opts, &["python3", "-c", IPC_PROBE]));
    assert!(out.status.success(), "{}", describe(&out));
    stdout_of(&out)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn deny_kernel_ipc_makes_the_kernel_calls_enosys() {
    if !python3() {
        return;
    }
    let denied = probe(true);
    assert_eq!(denied.len(), 3);
    for (name, r, e) in &denied {
        assert_eq!((*r, *e), (-1, 38), "{name}get under --deny-kernel-ipc");
    }
    let allowed = probe(false);
    let shm = allowed.iter().find(|(n, _, _)| n == "shm").unwrap();
    assert!(shm.1 >= 0, "shmget without the filter: {allowed:?}");
}
