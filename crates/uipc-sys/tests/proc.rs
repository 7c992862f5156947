//! Facts about real child processes: a pidfd before and after the child
//! exits, its parent and start time (with a `comm` full of parentheses and
//! spaces), its capabilities and its memory-lock limit, also for a child of
//! another uid.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uipc_abi::Errno;
use uipc_sys::proc::{pidfd_exited, pidfd_open, proc_caps, proc_memlock_limit, proc_parent, proc_start_time};

/// A watchdog bound for waits that could otherwise hang the suite; never a
/// claim about how fast anything is.
const WATCHDOG: Duration = Duration::from_secs(30);

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `sh -c SCRIPT` (which should print a line when ready, then wait on
/// stdin); returns once the line is read.
fn sh_child(prefix: &[&str], script: &str) -> Child {
    let (prog, args) = match prefix.split_first() {
        Some((p, rest)) => (*p, rest.to_vec()),
        None => ("/bin/sh", Vec::new()),
    };
    let mut cmd = Command::new(prog);
    cmd.args(args);
    if !prefix.is_empty() {
        cmd.arg("/bin/sh");
    }
    let mut child = cmd.args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "child failed to start");
    child
}

/// Ends a child started by [`sh_child`]: feeds its `read` a line and reaps it.
fn finish(mut child: Child) {
    child.stdin.take().unwrap().write_all(b"bye\n").unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn pidfd_reports_exit() {
    let mut child = sh_child(&[], "echo ready; read x");
    let pidfd = pidfd_open(child.id()).unwrap();
    assert_eq!(pidfd_exited(pidfd.as_fd()), Ok(false));
    child.stdin.as_mut().unwrap().write_all(b"bye\n").unwrap();
    // Exited but not reaped yet: a zombie counts as exited.
    let deadline = Instant::now() + WATCHDOG;
    while !pidfd_exited(pidfd.as_fd()).unwrap() {
        assert!(Instant::now() < deadline, "watchdog: child did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(pidfd_exited(pidfd.as_fd()), Ok(true));
    // Reaped: the pid names nothing now (unless reused, which a pidfd would
    // not follow).
    assert!(matches!(pidfd_open(child.id()).map(drop), Err(Errno::ESRCH) | Ok(())));
}

#[test]
fn no_such_process() {
    // Above PID_MAX_LIMIT (2^22): never a pid.
    let pid = 1 << 30;
    assert_eq!(pidfd_open(pid).map(drop), Err(Errno::ESRCH));
    assert_eq!(proc_parent(pid), Err(Errno::ESRCH));
    assert_eq!(proc_start_time(pid), Err(Errno::ESRCH));
    assert_eq!(proc_caps(pid), Err(Errno::ESRCH));
    assert_eq!(proc_memlock_limit(pid), Err(Errno::ESRCH));
    assert_eq!(proc_parent(0), Err(Errno::ESRCH));
    assert_eq!(proc_parent(u32::MAX), Err(Errno::ESRCH));
}

#[test]
fn parent_and_start_time_of_a_child_with_a_strange_name() {
    // `comm` is the executable's file name: give it spaces and parentheses.
    let dir = std::env::temp_dir().join(format!("uipc-proc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let odd = dir.join("a) 1 (b) ) x");
    let _ = std::fs::remove_file(&odd);
    std::os::unix::fs::symlink("/bin/sh", &odd).unwrap();
    let mut child = Command::new(&odd)
        .args(["-c", "echo ready; read x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let pid = child.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(stat.contains("(a) 1 (b) ) x)"), "comm is not the odd name: {stat}");

    assert_eq!(proc_parent(pid), Ok(std::process::id()));
    let start = proc_start_time(pid).unwrap();
    let ours = proc_start_time(std::process::id()).unwrap();
    assert!(start >= ours && ours > 0, "child {start}, us {ours}");
    assert_eq!(proc_start_time(pid), Ok(start));
    finish(child);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn own_capabilities_and_limit() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    assert_eq!(proc_caps(std::process::id()), Ok(u64::from_str_radix(cap, 16).unwrap()));
    let lim = rustix::process::getrlimit(rustix::process::Resource::Memlock).current.unwrap_or(u64::MAX);
    assert_eq!(proc_memlock_limit(std::process::id()), Ok(lim));
    assert_eq!(
        proc_parent(std::process::id()),
        Ok(rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()).unsigned_abs())
    );
}

#[test]
fn memlock_limit_of_a_child() {
    let child = sh_child(&[], "ulimit -l 64 && echo ready; read x");
    assert_eq!(proc_memlock_limit(child.id()), Ok(64 * 1024));
    finish(child);
    // RLIM_INFINITY reads as u64::MAX; a soft limit may rise to the hard one
    // without privilege.
    if rustix::process::getrlimit(rustix::process::Resource::Memlock).maximum.is_none() {
        let child = sh_child(&[], "ulimit -S -l unlimited && echo ready; read x");
        assert_eq!(proc_memlock_limit(child.id()), Ok(u64::MAX));
        finish(child);
    } else {
        eprintln!("skipped the RLIM_INFINITY case: our hard RLIMIT_MEMLOCK is finite");
    }
}

#[test]
fn another_users_caps_and_limit() {
    if !is_root() {
        eprintln!("skipped: needs root (setpriv to uid 1000)");
        return;
    }
    if !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: no setpriv");
        return;
    }
    // prlimit on another uid's process needs CAP_SYS_RESOURCE: this reads
    // through /proc/PID/limits when we lack it.
    let child = sh_child(
        &["/usr/bin/setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups"],
        "ulimit -l 128 && echo ready; read x",
    );
    assert_eq!(proc_caps(child.id()), Ok(0));
    assert_eq!(proc_memlock_limit(child.id()), Ok(128 * 1024));
    assert_eq!(proc_parent(child.id()), Ok(std::process::id()));
    finish(child);
}
