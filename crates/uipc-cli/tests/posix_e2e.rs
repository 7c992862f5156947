//! Python's `multiprocessing` (Queue, Lock, Semaphore, Pool.map,
//! `shared_memory.SharedMemory`) where `/dev/shm` does not exist: the
//! script `tests/posix/mp_check.py` runs natively with a private tmpfs on
//! `/dev/shm` (the expected output), then in a mount namespace whose `/dev`
//! has no `shm` (`tests/posix/no-dev-shm.sh`) under
//! `uipc run --deny-kernel-ipc` (the same output), and natively there (it
//! fails: glibc's `sem_open` finds no `/dev/shm`). Root only (mount
//! namespaces); skipped with a message otherwise, or without python3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/posix"))
}

fn show(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{what}: {}\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn python_multiprocessing_without_dev_shm_under_uipc_as_natively_with_it() {
    let _w = uipc_testsupport::watchdog("python multiprocessing", 300);
    if !Command::new("unshare").args(["--mount", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("SKIP: unshare --mount not permitted (not root)");
        return;
    }
    if !Command::new("python3")
        .arg("-c")
        .arg("import multiprocessing.shared_memory")
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("SKIP: no python3 with multiprocessing.shared_memory");
        return;
    }
    let Some(lib) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built (run the whole workspace's tests)");
        return;
    };
    let script = dir().join("mp_check.py");
    let no_dev_shm = dir().join("no-dev-shm.sh");
    let scratch = std::env::temp_dir().join(format!("uipc-mp-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();

    let native = Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg("mount --make-rprivate / && mount -t tmpfs -o mode=1777 uipc-test /dev/shm && exec \"$@\"")
        .args(["sh", "python3"])
        .arg(&script)
        .output()
        .unwrap();
    let expected = show("native, with /dev/shm", &native);
    assert!(native.status.success() && expected.ends_with("ok\n"), "the native run failed");

    let uipc = Command::new("unshare")
        .args(["--mount", "sh"])
        .arg(&no_dev_shm)
        .arg(env!("CARGO_BIN_EXE_uipc"))
        .args(["run", "--deny-kernel-ipc", "--preload"])
        .arg(&lib)
        .args(["--", "python3"])
        .arg(&script)
        .env_remove("UIPC_SOCKET")
        .env("XDG_RUNTIME_DIR", &scratch)
        .output()
        .unwrap();
    let ours = show("uipc run --deny-kernel-ipc, no /dev/shm", &uipc);
    assert!(uipc.status.success(), "under uipc without /dev/shm: {}", uipc.status);
    assert_eq!(ours, expected, "uipc (left) and native with /dev/shm (right) differ");

    // The same namespace without uipc: glibc's sem_open has no /dev/shm.
    let bare = Command::new("unshare")
        .args(["--mount", "sh"])
        .arg(&no_dev_shm)
        .args(["sh", "-c", "test ! -e /dev/shm && exec \"$@\"", "sh", "python3"])
        .arg(&script)
        .output()
        .unwrap();
    show("native, no /dev/shm", &bare);
    let err = String::from_utf8_lossy(&bare.stderr);
    assert!(!bare.status.success(), "python multiprocessing worked without /dev/shm and without uipc");
    assert!(err.contains("SemLock") && err.contains("No such file or directory"), "unexpected failure: {err}");
    let _ = std::fs::remove_dir_all(&scratch);
}
