//! End to end: unmodified Debian `fakeroot` (its SysV flavour: `faked-sysv`
//! talks to every faked process over a System V message queue and a
//! semaphore) under `uipc run --deny-kernel-ipc` fakes owners and device
//! nodes as it does natively; with the kernel's IPC calls denied and no
//! shim it cannot start ("Function not implemented"). Skipped, with a
//! message, where `fakeroot-sysv` is not installed (`scripts/install-deps.sh`
//! installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

const SCRIPT: &str = "touch f; chown 123:456 f; mknod d c 1 3; stat -c '%A %u %g %t:%T %n' d f";

fn fakeroot() -> Option<&'static str> {
    let found = Path::new("/usr/bin/fakeroot-sysv").exists();
    if !found {
        eprintln!("SKIP: fakeroot-sysv not installed (Debian package fakeroot)");
    }
    found.then_some("/usr/bin/fakeroot-sysv")
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("uipc-fakeroot-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uipc_run(lib: &Path, dir: &Path, runtime: &Path, fr: &str) -> Output {
    let _w = uipc_testsupport::watchdog("fakeroot under uipc", 120);
    Command::new(env!("CARGO_BIN_EXE_uipc"))
        .args(["run", "--deny-kernel-ipc", "--preload"])
        .arg(lib)
        .args(["--", fr, "sh", "-c", SCRIPT])
        .current_dir(dir)
        .env_remove("UIPC_SOCKET")
        .env("XDG_RUNTIME_DIR", runtime)
        .output()
        .unwrap()
}

#[test]
fn fakeroot_fakes_owners_and_devices_under_uipc_as_natively() {
    let Some(fr) = fakeroot() else { return };
    let Some(lib) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built (run the whole workspace's tests)");
        return;
    };
    let native_dir = scratch("native");
    let native = Command::new(fr).args(["sh", "-c", SCRIPT]).current_dir(&native_dir).output().unwrap();
    assert!(native.status.success(), "native fakeroot: {native:?}");
    let dir = scratch("uipc");
    let runtime = scratch("runtime");
    let under = uipc_run(&lib, &dir, &runtime, fr);
    assert!(under.status.success(), "fakeroot under uipc: {under:?}");
    let (native, under) = (String::from_utf8_lossy(&native.stdout), String::from_utf8_lossy(&under.stdout));
    assert_eq!(under, native);
    assert_eq!(under, "crw-r--r-- 0 0 1:3 d\n-rw-r--r-- 123 456 0:0 f\n");
    let _ = std::fs::remove_dir_all(&native_dir);
    let _ = std::fs::remove_dir_all(&runtime);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fakeroot_fails_with_enosys_when_the_kernel_calls_are_denied_without_uipc() {
    let Some(fr) = fakeroot() else { return };
    let dir = scratch("denied");
    let _w = uipc_testsupport::watchdog("fakeroot without the shim", 120);
    let out = Command::new(env!("CARGO_BIN_EXE_uipc"))
        .args(["run", "--deny-kernel-ipc", "--preload", "/nonexistent/libuipc_preload.so", "--", fr, "true"])
        .current_dir(&dir)
        .env("UIPC_SOCKET", "/nonexistent/uipc.sock")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "fakeroot started without uipc: {out:?}");
    assert!(err.contains("while creating message channels: Function not implemented"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
