//! A program under `uipc run` that drops root (`setgroups`, `setgid`,
//! `setuid`) is judged by its new ids at its next call, as by the kernel —
//! also with the private daemon, whose socket lies in a directory only the
//! program's original user may enter (the shim asks the daemon to re-read
//! the credentials on the connection it has; it needs no new one). Compared
//! with the same program in a fresh kernel IPC namespace.
//!
//! Needs root and a C compiler; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;

#[test]
fn dropping_root_loses_root_rights_at_the_next_call() {
    let Some(shim) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built beside the test");
        return;
    };
    if !Command::new("unshare").args(["--ipc", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("SKIP: needs root (unshare --ipc, setuid)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("uipc-droproot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("drop_root");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drop_root.c");
    if !Command::new("cc").arg("-o").arg(&prog).arg(&src).status().is_ok_and(|s| s.success()) {
        eprintln!("SKIP: no C compiler");
        return;
    }
    let native = Command::new("unshare").arg("--ipc").arg(&prog).output().unwrap();
    let ours = Command::new(env!("CARGO_BIN_EXE_uipc"))
        .args(["run", "--ns", "new", "--deny-kernel-ipc", "--preload"])
        .arg(&shim)
        .arg("--socket")
        .arg(dir.join("nobody-answers.sock"))
        .arg("--")
        .arg(&prog)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    let (k, u) = (text(&native), text(&ours));
    assert!(k.contains("as nobody: semget -1 (Permission denied)"), "kernel run:\n{k}");
    assert_eq!(u, k, "uipc (left) vs the kernel (right)");
}
