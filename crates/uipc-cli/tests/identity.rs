//! Identities under `uipc run` with a private daemon, against the kernel:
//! `tests/c/identity.c` runs in a fresh kernel IPC namespace (`unshare
//! --ipc`) and under `uipc run --ns new --deny-kernel-ipc` (any leak to
//! the kernel is ENOSYS, and the outputs would differ), and both print the
//! same, for a process that is nobody from the start (exec'd through
//! `setpriv`), one that drops with `setuid` or su-style with `setresuid`
//! before its first call, and one that drops halfway. The private daemon's
//! socket lies in a directory root made, and the namespace (`--ns new`) is
//! root's 0700 one: nobody reaches both, as the kernel's namespace is the
//! process's whatever its ids.
//!
//! Then: a process outside the `uipc run` tree cannot talk to the private
//! daemon, while a double-forked descendant (re-parented) still can.
//!
//! Needs root, `setpriv` and a C compiler; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use uipc_testsupport::{skip_unless_root, watchdog, TempDir};

/// Compiles `tests/c/<name>.c` into `dir`; `None` (with a message) without `cc`.
fn compile(name: &str, dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{name}.c"));
    let out = dir.join(name);
    match Command::new("cc").args(["-O1", "-Wall", "-Werror", "-pthread", "-o"]).arg(&out).arg(&src).output() {
        Err(e) => {
            eprintln!("SKIP: no C compiler ({e})");
            None
        }
        Ok(o) => {
            assert!(o.status.success(), "cc {name}:\n{}", String::from_utf8_lossy(&o.stderr));
            Some(out)
        }
    }
}

/// `uipc run --ns new --deny-kernel-ipc` with the shim and a private daemon.
fn uipc_run(shim: &Path, dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_uipc"));
    c.args(["run", "--ns", "new", "--deny-kernel-ipc", "--preload"])
        .arg(shim)
        .arg("--socket")
        .arg(dir.join("nobody-answers.sock"))
        .arg("--");
    c
}

fn output(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs `PROG MODE` on the kernel and under uipc; both must pass and agree;
/// returns the kernel's output.
fn compare(name: &str, mode: &str) -> Option<String> {
    let _w = watchdog("identity", 120);
    let Some(shim) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built beside the test");
        return None;
    };
    if skip_unless_root("identity", "setuid, unshare --ipc") || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("SKIP: needs root and /usr/bin/setpriv");
        return None;
    }
    let dir = TempDir::new(&format!("{name}-{mode}"));
    let prog = compile(name, &dir.0)?;
    let native = Command::new("unshare").arg("--ipc").arg(&prog).arg(mode).output().unwrap();
    let ours = uipc_run(&shim, &dir.0).arg(&prog).arg(mode).output().unwrap();
    let (k, u) = (output(&native), output(&ours));
    assert!(native.status.success() && k.ends_with("ok\n"), "kernel run ({mode}):\n{k}");
    assert_eq!(u, k, "uipc (left) vs the kernel (right), {name} {mode}");
    Some(k)
}

/// Runs `identity MODE` on the kernel and under uipc; both must pass and agree.
fn differential(mode: &str) {
    let Some(k) = compare("identity", mode) else { return };
    // The kernel's verdicts are the expected ones (not a vacuous comparison).
    assert!(k.contains("shmctl IPC_STAT                      -> EACCES"), "kernel run ({mode}):\n{k}");
    assert!(k.contains("semctl IPC_RMID                      -> EPERM"), "kernel run ({mode}):\n{k}");
    assert!(k.contains("own set: sleeper woke: 0 0"), "kernel run ({mode}):\n{k}");
}

/// Save, set and restore of the IPC sysctls through `/proc` (`open`,
/// `write`, `fopen`, `access`), with the kernel's validation and, as
/// nobody, its `EACCES`.
#[test]
fn sysctls_written_through_proc() {
    let Some(k) = compare("sysctl_proc", "-") else { return };
    assert!(k.contains("shmget after shm_next_id 100 -> 100"), "{k}");
    assert!(k.contains("write kernel/shmmni=7\n: open EACCES"), "{k}");
}

#[test]
fn nobody_from_the_start() {
    differential("exec-nobody");
}

#[test]
fn setuid_before_the_first_call() {
    differential("setuid");
}

#[test]
fn setresuid_su_style_before_the_first_call() {
    differential("setresuid");
}

#[test]
fn drop_halfway_after_calls_as_root() {
    differential("half");
}

/// A program that reports its socket, then waits for a line on stdin;
/// meanwhile a double-forked grandchild (re-parented to `uipc run`, the
/// subreaper) makes a call after its parent is gone.
const TREE_PROGRAM: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("socket %s\n", getenv("UIPC_SOCKET"));
    int ready[2];
    if (pipe(ready)) return 1;
    pid_t mid = fork();
    if (mid == 0) {
        setsid();
        if (fork() == 0) {
            /* Told once the middle process is reaped: re-parented by then. */
            pid_t runner;
            if (read(ready[0], &runner, sizeof runner) != sizeof runner) _exit(3);
            int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
            printf("orphan: parent is uipc run: %s, shmget %s\n",
                   getppid() == runner ? "yes" : "no", id >= 0 ? "ok" : strerror(errno));
            _exit(0);
        }
        _exit(0);
    }
    waitpid(mid, NULL, 0);
    pid_t runner = getppid();
    if (write(ready[1], &runner, sizeof runner) != sizeof runner) return 1;
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    printf("program: shmget %s\n", id >= 0 ? "ok" : strerror(errno));
    char line[16];
    if (!fgets(line, sizeof line, stdin)) return 1;
    printf("done\n");
    return 0;
}
"#;

#[test]
fn outside_the_tree_no_connection() {
    let _w = watchdog("outsider", 120);
    let Some(shim) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built beside the test");
        return;
    };
    let dir = TempDir::new("outsider");
    let src = dir.0.join("tree.c");
    std::fs::write(&src, TREE_PROGRAM).unwrap();
    let prog = dir.0.join("tree");
    match Command::new("cc").args(["-O1", "-o"]).arg(&prog).arg(&src).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("cc: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!("SKIP: no C compiler ({e})");
            return;
        }
    }
    let mut child = uipc_run(&shim, &dir.0)
        .arg(&prog)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let socket = PathBuf::from(line.trim().strip_prefix("socket ").unwrap());
    assert!(socket.exists(), "the private daemon's socket {}", socket.display());
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        lines.push(l);
    }
    // This test process is outside the tree (it is `uipc run`'s parent).
    let refused = uipc_client::Client::connect_to(&socket, "default");
    assert!(refused.is_err(), "a process outside the tree was served");
    let admin = uipc_client::Admin::connect(&socket).and_then(|mut a| a.ns_list());
    assert!(admin.is_err(), "a process outside the tree listed namespaces: {admin:?}");
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let all = format!("{}{rest}", lines.concat());
    assert!(status.success(), "uipc run: {status}\n{all}");
    assert!(all.contains("program: shmget ok"), "{all}");
    assert!(all.contains("orphan: parent is uipc run: yes, shmget ok"), "{all}");
    assert!(all.contains("done"), "{all}");
}
