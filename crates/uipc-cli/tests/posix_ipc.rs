//! PyPI `posix_ipc`'s own message-queue tests (`tests/test_message_queues.py`
//! of its 1.3.2 source, which `scripts/install-deps.sh` keeps in
//! `/var/cache/uipc/posix_ipc-1.3.2` or `$UIPC_POSIX_IPC_SRC`) — sends,
//! receives, priorities, timeouts, attributes, `request_notification` with
//! a signal and with threads — run natively in a fresh IPC namespace and
//! under `uipc run --deny-kernel-ipc`: both must pass every test. Skipped
//! with a message without python3, the module or its tests, or without
//! `unshare --ipc`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

fn source() -> PathBuf {
    std::env::var_os("UIPC_POSIX_IPC_SRC")
        .map_or_else(|| PathBuf::from("/var/cache/uipc/posix_ipc-1.3.2"), PathBuf::from)
}

/// unittest's summary ("Ran N tests", "OK"), from its stderr.
fn summary(what: &str, out: &Output) -> (bool, String) {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{what}: {}\n{err}", out.status);
    let ran = err.lines().find(|l| l.starts_with("Ran ")).map(|l| l.split(" in ").next().unwrap_or(l).to_owned());
    (out.status.success() && err.trim_end().ends_with("OK"), ran.unwrap_or_default())
}

#[test]
fn posix_ipc_message_queue_tests_pass_under_uipc_as_natively() {
    let _w = uipc_testsupport::watchdog("posix_ipc tests", 300);
    let src = source();
    if !src.join("tests/test_message_queues.py").exists() {
        eprintln!("SKIP: posix_ipc's tests not found in {} (scripts/install-deps.sh)", src.display());
        return;
    }
    if !Command::new("python3").args(["-c", "import posix_ipc"]).status().is_ok_and(|s| s.success()) {
        eprintln!("SKIP: python3 module posix_ipc missing (scripts/install-deps.sh)");
        return;
    }
    let Some(lib) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built (run the whole workspace's tests)");
        return;
    };
    if !Command::new("unshare").args(["--ipc", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("SKIP: unshare --ipc not permitted (not root)");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("uipc-posix-ipc-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let native = Command::new("unshare")
        .args(["--ipc", "python3", "-m", "unittest", "tests.test_message_queues"])
        .current_dir(&src)
        .output()
        .unwrap();
    let (native_ok, native_ran) = summary("native", &native);
    assert!(native_ok, "posix_ipc's tests fail natively");
    let uipc = Command::new(env!("CARGO_BIN_EXE_uipc"))
        .args(["run", "--deny-kernel-ipc", "--ns", "new", "--preload"])
        .arg(&lib)
        .args(["--", "python3", "-m", "unittest", "tests.test_message_queues"])
        .current_dir(&src)
        .env_remove("UIPC_SOCKET")
        .env("XDG_RUNTIME_DIR", &scratch)
        .output()
        .unwrap();
    let (ok, ran) = summary("uipc run --deny-kernel-ipc", &uipc);
    assert!(ok, "posix_ipc's tests fail under uipc");
    assert_eq!(ran, native_ran, "a different number of tests ran");
    let _ = std::fs::remove_dir_all(&scratch);
}
