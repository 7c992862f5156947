//! util-linux golden test (issue 4): unmodified `ipcmk`, `ipcs`, `lsipc` and
//! `ipcrm` under `uipc run --deny-kernel-ipc` (the kernel's IPC system calls
//! fail with `ENOSYS`, so everything they show comes from uipc) print what
//! the same sequence prints natively in a fresh IPC namespace
//! (`unshare --ipc`), once pids, the random key and times are masked.
//!
//! The sequence is `tests/utillinux/sequence.sh`: `ipcmk -M 4096 -p 0640`;
//! a helper process (`tests/utillinux/holder.c`) attaches the segment and
//! holds it (nattch 1) while `ipcs -m`, `-m -i ID`, `-m -p`, `-m -c`,
//! `-m -b`, `-m -t`, `-m -u`, `-m -l`, `lsipc -m --json --bytes` and
//! `lsipc -m -i ID` list it; the helper detaches (nattch 0); `ipcrm -m ID`
//! removes it. `ipcs` and `lsipc` read `/proc/sysvipc/shm` and
//! `/proc/sys/kernel/shm*` (served by the shim) and call `shmctl(SHM_INFO)`
//! (`-u`); `ipcmk` and `ipcrm` call `shmget` and `shmctl(IPC_RMID)`.
//!
//! The same for semaphores (`tests/utillinux/sem.sh`): `ipcmk -S 3`, one
//! `semop` of +2 on semaphore 1 by a helper (`semadd.c`), then `ipcs -s`,
//! `-s -i ID` (values and last pids through `semctl(GETVAL/GETPID/…)`),
//! `-s -c`, `-s -t`, `-s -u` (`SEM_INFO`), `-s -l`, `lsipc -s --json`,
//! `lsipc -s -i ID`, `ipcrm -s ID`.
//!
//! And for message queues (`tests/utillinux/msg.sh`): `ipcmk -Q`, a helper
//! (`msgsend.c`) that sends, receives and sends again, then `ipcs -q`,
//! `-q -i ID`, `-q -c`, `-q -t`, `-q -p`, `-q -u` (`MSG_INFO`), `-q -l`,
//! `lsipc -q --json`, `lsipc -q -i ID`, `lsipc -g`, `ipcrm -q ID`.
//!
//! Run as root and as `nobody` (uid 65534), so the owner columns are not
//! only root's. Needs root (for `unshare --ipc` and `setpriv`), a C
//! compiler, util-linux, and `libuipc_preload.so` built beside the test
//! (the workspace's tests build it); otherwise it skips with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Generous: only a hung tool or daemon reaches it.
const WATCHDOG: Duration = Duration::from_secs(120);

/// `nobody` on Debian (and most distributions).
const NOBODY: u32 = 65534;

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/utillinux")
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    for tool in ["ipcs", "lsipc", "ipcmk", "ipcrm", "setpriv", "unshare", "sed", "awk", "mkfifo"] {
        if !succeeds(Command::new("sh").args(["-c", &format!("command -v {tool}")])) {
            return Some(format!("{tool} not found"));
        }
    }
    if !succeeds(Command::new("unshare").args(["--ipc", "true"])) {
        return Some("unshare --ipc fails (not root?)".into());
    }
    let nobody = NOBODY.to_string();
    if !succeeds(Command::new("setpriv").args(["--reuid", &nobody, "--regid", &nobody, "--clear-groups", "true"])) {
        return Some("setpriv to nobody fails (no CAP_SETUID?)".into());
    }
    None
}

/// A scratch directory in the temporary directory (reachable by `nobody`,
/// unlike a target directory under a private home), owned by `uid`.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, uid: u32) -> Scratch {
        let dir = std::env::temp_dir().join(format!("uipc-utillinux-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies `from` into `dir` with mode 0755 (so `nobody` may run it).
fn install(from: &Path, dir: &Path) -> PathBuf {
    let to = dir.join(from.file_name().unwrap());
    std::fs::copy(from, &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    to
}

/// Waits for `child` under a watchdog that kills it and fails the test.
fn wait_watched(what: &str, child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send(());
        out.unwrap()
    });
    if rx.recv_timeout(WATCHDOG).is_err() {
        let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        panic!("{what} (pid {pid}) did not finish within {WATCHDOG:?}");
    }
    waiter.join().unwrap()
}

/// `setpriv` arguments that make the rest of the command run as `uid`.
fn as_user(uid: u32) -> Vec<String> {
    let id = uid.to_string();
    ["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups", "--"].map(String::from).into()
}

/// Runs `sh SCRIPT HELPER` in `dir` behind `prefix` (a command line that
/// ends by running its arguments).
fn sequence(what: &str, dir: &Path, prefix: &[String], script: &str, helper: &str) -> String {
    let mut cmd = Command::new(&prefix[0]);
    cmd.args(&prefix[1..]).arg("sh").arg(dir.join(script)).arg(dir.join(helper));
    cmd.current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // Nobody answers here: `uipc run` starts a private daemon of its own
    // (its socket directory in the scratch directory).
    cmd.env("UIPC_SOCKET", "/nonexistent/uipc.sock").env("XDG_RUNTIME_DIR", dir).env("LC_ALL", "C");
    let out = wait_watched(what, cmd.spawn().unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The whitespace-separated columns of the first row after `marker`'s
/// output whose first column is `first`.
fn row_after<'a>(out: &'a str, marker: &str, first: &str) -> Vec<&'a str> {
    let section = out.split(marker).nth(1).unwrap_or_else(|| panic!("no {marker:?} in:\n{out}"));
    let section = section.split("\n$ ").next().unwrap();
    section
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first:?} after {marker:?} in:\n{out}"))
}

/// Runs `tests/utillinux/SCRIPT` with the helper built from `HELPER.c` as
/// `uid`, natively in a fresh IPC namespace and under
/// `uipc run --deny-kernel-ipc`; returns (native, uipc) output, or `None`
/// when the test cannot run here.
fn native_and_uipc(name: &str, uid: u32, script: &str, helper: &str) -> Option<(String, String)> {
    if let Some(why) = missing() {
        eprintln!("SKIP: {why}");
        return None;
    }
    let Some(lib) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built (run the whole workspace's tests)");
        return None;
    };
    let scratch = Scratch::new(name, uid);
    let dir = &scratch.0;
    install(&tests_dir().join(script), dir);
    let cc = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(dir.join(helper))
        .arg(tests_dir().join(format!("{helper}.c")))
        .status();
    if !cc.is_ok_and(|s| s.success()) {
        eprintln!("SKIP: no C compiler");
        return None;
    }
    let uipc = install(Path::new(env!("CARGO_BIN_EXE_uipc")), dir);
    let lib = install(&lib, dir);

    // Natively: a fresh IPC namespace (made as root), then the user.
    let native = [["unshare", "--ipc"].map(String::from).to_vec(), as_user(uid)].concat();
    let native = sequence("native (unshare --ipc)", dir, &native, script, helper);
    // Under uipc: the user runs `uipc run` (whose private daemon runs as the user).
    let run = [uipc.to_str().unwrap(), "run", "--deny-kernel-ipc", "--preload", lib.to_str().unwrap(), "--"];
    let run = [as_user(uid), run.map(String::from).to_vec()].concat();
    let ours = sequence("uipc run --deny-kernel-ipc", dir, &run, script, helper);
    Some((native, ours))
}

/// `ipcmk -M`, a holder attached, `ipcs -m …`, `lsipc -m …`, `ipcrm -m`.
fn golden_shm(name: &str, uid: u32, owner: &str) {
    let Some((native, ours)) = native_and_uipc(name, uid, "sequence.sh", "holder") else {
        return;
    };
    // What the issue asks for, checked on uipc's output directly (the
    // comparison below would also pass if both sides were wrong the same way).
    assert!(ours.starts_with("Shared memory id: 0\n"), "{ours}");
    assert_eq!(row_after(&ours, "$ ipcs -m\n", "KEY"), ["KEY", "0", owner, "640", "4096", "1"], "{ours}");
    assert_eq!(row_after(&ours, "# holder detached\n$ ipcs -m\n", "KEY"), ["KEY", "0", owner, "640", "4096", "0"]);
    for field in [
        format!(r#""owner": "{owner}""#),
        r#""perms": "rw-r-----""#.into(),
        r#""size": "4096""#.into(),
        r#""nattch": "1""#.into(),
        r#""cpid": "CREATOR""#.into(),
        r#""lpid": "HOLDER""#.into(),
    ] {
        assert!(ours.contains(&field), "lsipc --json lacks {field}:\n{ours}");
    }
    let removed = ours.rsplit("$ ipcrm -m 0\n").next().unwrap();
    assert!(!removed.contains("KEY"), "the segment is still listed after ipcrm:\n{removed}");
    assert!(!ours.contains("exit status"), "a tool failed:\n{ours}");

    assert_eq!(native, ours, "native (left) and uipc (right) differ");
}

/// `ipcmk -S 3`, one semop of +2 on semaphore 1, `ipcs -s …`, `lsipc -s …`, `ipcrm -s`.
fn golden_sem(name: &str, uid: u32, owner: &str) {
    let Some((native, ours)) = native_and_uipc(name, uid, "sem.sh", "semadd") else {
        return;
    };
    assert!(ours.starts_with("Semaphore id: 0\n"), "{ours}");
    assert_eq!(row_after(&ours, "$ ipcs -s\n", "KEY"), ["KEY", "0", owner, "640", "3"], "{ours}");
    // semnum value ncount zcount pid (semctl GETVAL/GETNCNT/GETZCNT/GETPID).
    assert_eq!(row_after(&ours, "$ ipcs -s -i 0\n", "1"), ["1", "2", "0", "0", "ADDER"], "{ours}");
    for field in [format!(r#""owner": "{owner}""#), r#""perms": "rw-r-----""#.into(), r#""nsems": "3""#.into()] {
        assert!(ours.contains(&field), "lsipc --json lacks {field}:\n{ours}");
    }
    let removed = ours.rsplit("$ ipcrm -s 0\n").next().unwrap();
    assert!(!removed.contains("KEY"), "the set is still listed after ipcrm:\n{removed}");
    assert!(!ours.contains("exit status"), "a tool failed:\n{ours}");

    assert_eq!(native, ours, "native (left) and uipc (right) differ");
}

#[test]
fn shm_ipcmk_ipcs_lsipc_ipcrm_as_root_match_the_kernel() {
    golden_shm("shm-root", 0, "root");
}

#[test]
fn shm_ipcmk_ipcs_lsipc_ipcrm_as_nobody_match_the_kernel() {
    golden_shm("shm-nobody", NOBODY, "nobody");
}

#[test]
fn sem_ipcmk_ipcs_lsipc_ipcrm_as_root_match_the_kernel() {
    golden_sem("sem-root", 0, "root");
}

#[test]
fn sem_ipcmk_ipcs_lsipc_ipcrm_as_nobody_match_the_kernel() {
    golden_sem("sem-nobody", NOBODY, "nobody");
}

/// `ipcmk -Q`, a send, a receive and a send by a helper, `ipcs -q …`, `lsipc -q …`, `ipcrm -q`.
fn golden_msg(name: &str, uid: u32, owner: &str) {
    let Some((native, ours)) = native_and_uipc(name, uid, "msg.sh", "msgsend") else {
        return;
    };
    assert!(ours.starts_with("Message queue id: 0\n"), "{ours}");
    assert_eq!(row_after(&ours, "$ ipcs -q\n", "KEY"), ["KEY", "0", owner, "640", "11", "1"], "{ours}");
    assert_eq!(row_after(&ours, "$ ipcs -q -p\n", "0"), ["0", owner, "SENDER", "SENDER"], "{ours}");
    for field in [format!(r#""owner": "{owner}""#), r#""perms": "rw-r-----""#.into(), r#""msgs": "1""#.into()] {
        assert!(ours.contains(&field), "lsipc --json lacks {field}:\n{ours}");
    }
    let removed = ours.rsplit("$ ipcrm -q 0\n").next().unwrap();
    assert!(!removed.contains("KEY"), "the queue is still listed after ipcrm:\n{removed}");
    assert!(!ours.contains("exit status"), "a tool failed:\n{ours}");

    assert_eq!(native, ours, "native (left) and uipc (right) differ");
}

#[test]
fn msg_ipcmk_ipcs_lsipc_ipcrm_as_root_match_the_kernel() {
    golden_msg("msg-root", 0, "root");
}

#[test]
fn msg_ipcmk_ipcs_lsipc_ipcrm_as_nobody_match_the_kernel() {
    golden_msg("msg-nobody", NOBODY, "nobody");
}
