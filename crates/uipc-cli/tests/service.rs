//! `uipc daemon` started as a systemd service (a child of PID 1 with
//! `INVOCATION_ID` set, as systemd starts every unit; `dist/uipc.service`)
//! keeps a state directory by default — `$RUNTIME_DIRECTORY/state` — so its
//! objects outlive its crash with no option given (issue 15 item 1);
//! `--no-state-dir` opts out, and a daemon that merely inherited the
//! variable from its parent keeps none.
//!
//! The daemon is made a child of PID 1 by starting it from a shell that
//! exits at once (it is re-parented, and execs the daemon only then);
//! where a subreaper would adopt it instead, the test says so and skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use uipc_client::Client;

const KEY: i32 = 0x5e41;

/// A directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("service-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The parent pid of `pid` (field 4 of `/proc/PID/stat`).
fn ppid(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Starts `uipc daemon --socket SOCKET EXTRA…` as systemd would start a
/// service (its environment, re-parented to PID 1), waits until it
/// answers, and returns its pid — `None` if it was adopted by another
/// process than PID 1 (a subreaper).
fn start_as_service(runtime: &Path, socket: &Path, extra: &[&str]) -> Option<u32> {
    let out = Command::new("sh")
        .arg("-c")
        // The daemon starts only once its shell is gone and it has been
        // re-parented (its parent at startup is what it judges by).
        .arg(
            r#"exe=$0; sock=$1; shift; extra="$*"
            ( n=0
              while [ $n -lt 100000 ]; do
                  read -r l </proc/self/stat; set -- $l; [ "$4" = 1 ] && break; n=$((n + 1))
              done
              exec "$exe" daemon --socket "$sock" $extra </dev/null >/dev/null 2>&1 ) &
            echo $!"#,
        )
        .arg(env!("CARGO_BIN_EXE_uipc"))
        .arg(socket)
        .args(extra)
        .env("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
        .env("RUNTIME_DIRECTORY", runtime)
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let start = Instant::now();
    while Client::connect_to(socket, "default").is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "the daemon never answered");
        std::thread::sleep(Duration::from_millis(5));
    }
    if ppid(pid) != 1 {
        kill9(pid);
        return None;
    }
    Some(pid)
}

fn kill9(pid: u32) {
    let _ = kill_process(Pid::from_raw(i32::try_from(pid).unwrap()).unwrap(), Signal::Kill);
    // Re-parented: PID 1 reaps it; wait until it is gone.
    let start = Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(start.elapsed() < Duration::from_secs(20), "daemon {pid} did not die");
        std::thread::yield_now();
    }
}

#[test]
fn a_service_daemon_keeps_its_objects_across_a_crash_by_default() {
    let dir = scratch("default");
    let (runtime, socket) = (dir.join("run"), dir.join("uipc.sock"));
    std::fs::create_dir_all(&runtime).unwrap();
    let Some(pid) = start_as_service(&runtime, &socket, &[]) else {
        eprintln!("SKIP: the daemon was adopted by a subreaper, not PID 1: not a service's parentage");
        return;
    };
    assert!(runtime.join("state/VERSION").exists(), "no state directory in $RUNTIME_DIRECTORY");
    let c = Client::connect_to(&socket, "default").unwrap();
    let set = c.semget(KEY, 1, uipc_abi::IPC_CREAT | 0o600).unwrap();
    c.sem_setval(set, 0, 5).unwrap();
    drop(c);
    kill9(pid);
    let pid = start_as_service(&runtime, &socket, &[]).unwrap();
    let c = Client::connect_to(&socket, "default").unwrap();
    assert_eq!(c.semget(KEY, 0, 0), Ok(set), "the set outlived the crash");
    assert_eq!(c.sem_getval(set, 0), Ok(5));
    kill9(pid);

    // --no-state-dir: none, and nothing survives.
    let (runtime, socket) = (dir.join("run2"), dir.join("uipc2.sock"));
    std::fs::create_dir_all(&runtime).unwrap();
    let pid = start_as_service(&runtime, &socket, &["--no-state-dir"]).unwrap();
    assert!(!runtime.join("state").exists(), "--no-state-dir made a state directory");
    kill9(pid);

    // A daemon that inherited the variable but is no service's: none.
    let (runtime, socket) = (dir.join("run3"), dir.join("uipc3.sock"));
    std::fs::create_dir_all(&runtime).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_uipc"))
        .args(["daemon", "--socket"])
        .arg(&socket)
        .env("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
        .env("RUNTIME_DIRECTORY", &runtime)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while Client::connect_to(&socket, "default").is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "the daemon never answered");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!runtime.join("state").exists(), "a daemon started by a test took itself for a service");
    let _ = child.kill();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
