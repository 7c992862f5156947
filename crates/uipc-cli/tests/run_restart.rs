//! `uipc run`'s private daemon is a process of its own, restarted on the
//! same state when it dies while the program runs (issue 15 item 4): a C
//! program's segment, semaphore set (with `SEM_UNDO` adjustments, one of
//! a child that exits after a kill), message queue and POSIX message
//! queue (its descriptor kept open by the program throughout) come through
//! `kill -9` of the daemon, round after round, and the program goes on
//! making objects; the restarted daemon still refuses a process outside
//! the run's tree; restarts are bounded; the run's directory is removed
//! at the end. The same C program run in a fresh kernel IPC namespace
//! (nobody killed) passes the same checks.
//!
//! Needs a C compiler and the shim; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

/// Generous: only a hung `uipc run` or daemon reaches it.
const WATCHDOG: Duration = Duration::from_secs(120);

/// `uipc run`'s bound (`run.rs`, `MAX_RESTARTS`): this many restarts
/// within its window, then no more.
const MAX_RESTARTS: usize = 5;

/// A directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("restart-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles `tests/c/NAME.c`; `None` without a C compiler.
fn compile(name: &str, dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{name}.c"));
    let out = dir.join(name);
    match Command::new("cc").args(["-O1", "-Wall", "-o"]).arg(&out).arg(&src).output() {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => panic!("cc {}: {}", src.display(), String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!("SKIP: no C compiler ({e})");
            None
        }
    }
}

/// Lines of a child's stream, read by a thread of their own.
fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A `uipc run` with its program's stdin, stdout and its own stderr in
/// reach; killed if dropped unfinished.
struct Run {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    /// Every line of stderr seen so far.
    err_seen: Vec<String>,
}

impl Run {
    fn start(shim: &Path, socket_dir: &Path, program: &[&std::ffi::OsStr]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_uipc"));
        cmd.args(["run", "--ns", "new", "--deny-kernel-ipc", "--preload"]).arg(shim);
        // Nobody answers there: `uipc run` starts its private daemon.
        cmd.arg("--socket").arg(socket_dir.join("nobody-answers.sock")).arg("--").args(program);
        cmd.env_remove("UIPC_LOG");
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdin = child.stdin.take();
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        Run { child: Some(child), stdin, out, err, err_seen: Vec::new() }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The program's next line of output.
    fn line(&mut self) -> String {
        match self.out.recv_timeout(WATCHDOG) {
            Ok(l) => l,
            Err(e) => panic!("no line from the program ({e}); stderr so far: {:?}", self.drain_err()),
        }
    }

    /// Reads stderr until a line containing `what`.
    fn err_line(&mut self, what: &str) -> String {
        loop {
            match self.err.recv_timeout(WATCHDOG) {
                Ok(l) => {
                    self.err_seen.push(l.clone());
                    if l.contains(what) {
                        return l;
                    }
                }
                Err(e) => panic!("no {what:?} on uipc run's stderr ({e}); seen: {:?}", self.err_seen),
            }
        }
    }

    fn drain_err(&mut self) -> Vec<String> {
        while let Ok(l) = self.err.try_recv() {
            self.err_seen.push(l);
        }
        self.err_seen.clone()
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    /// The private daemon now serving: `uipc run`'s child running `uipc daemon`.
    fn daemon_pid(&self) -> u32 {
        let run = self.pid();
        let mut found = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{run}/task")).unwrap() {
            let children = std::fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
            for pid in children.split_whitespace().map(|p| p.parse::<u32>().unwrap()) {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if cmdline.split(|b| *b == 0).nth(1) == Some(b"daemon") {
                    found.push(pid);
                }
            }
        }
        assert_eq!(found.len(), 1, "uipc run's daemon children: {found:?}");
        found[0]
    }

    /// Ends stdin and waits for `uipc run` to exit.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>, Vec<String>) {
        drop(self.stdin.take());
        let mut child = self.child.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let pid = child.id();
        let waiter = std::thread::spawn(move || {
            let s = child.wait().unwrap();
            let _ = tx.send(());
            s
        });
        if rx.recv_timeout(WATCHDOG).is_err() {
            let _ = kill_process(Pid::from_raw(i32::try_from(pid).unwrap()).unwrap(), Signal::Kill);
            panic!("uipc run (pid {pid}) did not finish; stderr: {:?}", self.drain_err());
        }
        let status = waiter.join().unwrap();
        let out: Vec<String> = self.out.iter().collect();
        let err: Vec<String> = self.err_seen.iter().cloned().chain(self.err.iter()).collect();
        (status, out, err)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn kill9(pid: u32) {
    kill_process(Pid::from_raw(i32::try_from(pid).unwrap()).unwrap(), Signal::Kill).unwrap();
}

#[test]
fn the_programs_objects_survive_kills_of_the_private_daemon() {
    const ROUNDS: usize = 3;
    let Some(shim) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built beside the test");
        return;
    };
    let dir = scratch("objects");
    let Some(prog) = compile("crash_restart", &dir) else { return };
    let rounds = ROUNDS.to_string();

    // The oracle: the kernel, in an IPC namespace of its own where one can
    // be made (root), passes the program's checks with nobody killed.
    if Command::new("unshare").args(["--ipc", "true"]).status().is_ok_and(|s| s.success()) {
        let mut k = Command::new("unshare")
            .arg("--ipc")
            .arg(&prog)
            .arg(&rounds)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        k.stdin.take().unwrap().write_all("go\n".repeat(ROUNDS).as_bytes()).unwrap();
        let out = k.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.ends_with("ok\n"), "the kernel run: {}\n{text}", out.status);
    } else {
        eprintln!("note: no kernel run (unshare --ipc needs root)");
    }

    let mut run = Run::start(&shim, &dir, &[prog.as_os_str(), rounds.as_ref()]);
    let socket = PathBuf::from(run.line().strip_prefix("socket ").unwrap());
    let mut killed = Vec::new();
    for round in 0..ROUNDS {
        assert_eq!(run.line(), format!("ready {round}"));
        let daemon = run.daemon_pid();
        assert!(!killed.contains(&daemon), "daemon {daemon} was killed already");
        kill9(daemon);
        killed.push(daemon);
        let line = run.err_line("restarted it on the same state");
        assert!(line.contains(&format!("(pid {daemon}) was killed by signal 9")), "{line}");
        // The restarted daemon serves only the run's tree: this test
        // process is outside it (`uipc run`'s parent).
        let outsider = uipc_client::Client::connect_to(&socket, "default");
        assert!(outsider.is_err(), "the restarted daemon served a process outside the tree");
        run.say("go");
    }
    assert_eq!(run.line(), "ok");
    let (status, out, err) = run.finish();
    assert_eq!(status.code(), Some(0), "uipc run: {status}; stdout {out:?}; stderr {err:?}");
    assert_eq!(err.iter().filter(|l| l.contains("restarted it")).count(), ROUNDS, "{err:?}");
    assert!(!err.iter().any(|l| l.contains("WARN") || l.contains("ERROR")), "{err:?}");
    let run_dir = socket.parent().unwrap();
    assert!(!run_dir.exists(), "{} outlived uipc run", run_dir.display());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn restarts_are_bounded() {
    let Some(shim) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built beside the test");
        return;
    };
    let dir = scratch("bound");
    let script = r#"echo "socket $UIPC_SOCKET"; read -r x; exit 7"#;
    let program: Vec<&std::ffi::OsStr> = ["sh", "-c", script].into_iter().map(std::ffi::OsStr::new).collect();
    let mut run = Run::start(&shim, &dir, &program);
    let socket = PathBuf::from(run.line().strip_prefix("socket ").unwrap());
    for _ in 0..MAX_RESTARTS {
        kill9(run.daemon_pid());
        run.err_line("restarted it on the same state");
    }
    let last = run.daemon_pid();
    kill9(last);
    let line = run.err_line("giving up");
    assert!(line.contains(&format!("(pid {last}) was killed by signal 9")), "{line}");
    assert!(line.contains(&format!("restarted {MAX_RESTARTS} times")), "{line}");
    // No daemon any more: the program still runs, and ends as it will.
    assert!(!std::fs::read_dir(format!("/proc/{}/task", run.pid())).unwrap().any(|t| {
        std::fs::read_to_string(t.unwrap().path().join("children"))
            .unwrap_or_default()
            .split_whitespace()
            .any(|p| std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default().starts_with(b"uipc\0daemon"))
    }));
    run.say("done");
    let (status, _, err) = run.finish();
    assert_eq!(status.code(), Some(7), "uipc run: {status}; stderr {err:?}");
    assert!(status.signal().is_none());
    assert_eq!(err.iter().filter(|l| l.contains("restarted it")).count(), MAX_RESTARTS, "{err:?}");
    let run_dir = socket.parent().unwrap();
    assert!(!run_dir.exists(), "{} outlived uipc run", run_dir.display());
    let _ = std::fs::remove_dir_all(&dir);
}
