//! Helpers of the `uipc ns` / `uipc sysctl` tests: a `uipc daemon` process
//! of the test's own, the `uipc` binary run (optionally as another user
//! through setpriv(1)), the daemon's descriptors and segment memory as
//! /proc shows them, and a watchdog.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub use uipc_testsupport::watchdog;

/// Prints a skip message and returns `true` when not root.
pub fn skip_unless_root(test: &str) -> bool {
    uipc_testsupport::skip_unless_root(test, "other users' processes, unshare --ipc")
}

/// The `uipc` binary.
pub fn uipc_bin() -> &'static str {
    env!("CARGO_BIN_EXE_uipc")
}

/// A `uipc daemon` process with its socket in a directory of its own;
/// killed and its directory removed on drop.
pub struct DaemonProc {
    pub child: Child,
    pub dir: PathBuf,
    pub socket: PathBuf,
}

impl DaemonProc {
    /// Starts `uipc daemon [extra]` and waits for its READY line (written
    /// to a pipe by `--ready-fd`).
    pub fn start(tag: &str, extra: &[&str]) -> DaemonProc {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ns-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Searchable by the uid-1000 probes.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let socket = dir.join("d.sock");
        // `--ready-fd` takes an inherited descriptor above 2: the shell
        // puts the pipe there, then becomes the daemon (same pid).
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"b=$1; s=$2; shift 2; exec "$b" daemon --socket "$s" --ready-fd 3 "$@" 3>&1 >/dev/null"#)
            .arg("sh")
            .arg(uipc_bin())
            .arg(&socket)
            .args(extra)
            .env_remove("UIPC_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line, "READY\n", "the daemon did not start");
        DaemonProc { child, dir, socket }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `uipc ARGS --socket S` as this user.
    pub fn uipc(&self, args: &[&str]) -> Output {
        self.uipc_as(None, args)
    }

    /// `uipc ARGS` as `uid` (gid = uid, no supplementary groups) when given.
    pub fn uipc_as(&self, uid: Option<u32>, args: &[&str]) -> Output {
        let mut cmd = match uid {
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.args([format!("--reuid={u}"), format!("--regid={u}"), "--clear-groups".into()]).arg(uipc_bin());
                c
            }
            None => Command::new(uipc_bin()),
        };
        cmd.args(args).env("UIPC_SOCKET", &self.socket).env_remove("UIPC_NAMESPACE").stdin(Stdio::null());
        cmd.output().unwrap()
    }

    /// A client of namespace `ns`.
    pub fn client(&self, ns: &str) -> uipc_client::Client {
        uipc_client::Client::connect_to(&self.socket, ns).unwrap()
    }

    /// Descriptors the daemon holds open, and the bytes of the memfds
    /// among them (segment memory).
    pub fn resources(&self) -> (usize, u64) {
        let dir = format!("/proc/{}/fd", self.pid());
        let mut fds = 0;
        let mut memfd_bytes = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            fds += 1;
            if std::fs::read_link(&path).is_ok_and(|t| t.to_string_lossy().starts_with("/memfd:")) {
                memfd_bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            }
        }
        (fds, memfd_bytes)
    }

    /// Waits, by barriers on `observer` (each settles every exited process
    /// and the hang-ups seen so far), until the daemon's resources equal
    /// `want`; returns the last measure.
    pub fn settle_to(&self, observer: &uipc_client::Client, want: (usize, u64)) -> (usize, u64) {
        let mut last = self.resources();
        for _ in 0..500 {
            observer.sync().unwrap();
            last = self.resources();
            if last == want {
                break;
            }
            std::thread::yield_now();
        }
        last
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "uipc failed ({}): {}{}", o.status, stdout(o), stderr(o));
    stdout(o)
}

/// Asserts a failure told in exactly one line on stderr, without a panic;
/// returns that line.
pub fn one_line_failure(o: &Output) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "expected a failure, got success: {}", stdout(o));
    assert_eq!(o.status.code().map(|c| c != 0), Some(true), "not a plain non-zero exit: {}", o.status);
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "a panic: {err}");
    err.trim_end().to_owned()
}
