//! Unmodified C programs, run with `LD_PRELOAD=libuipc_preload.so` against
//! an in-process daemon. Each program installs a seccomp filter that kills
//! it on any of the kernel's shm system calls, so a pass also proves that
//! the shim never called the kernel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

mod common;

use common::*;

/// Compiles and runs the program with the shim against `socket`; asserts
/// it exits 0 and printed "ok".
fn run(name: &str, socket: &Path) {
    let _w = watchdog("a preloaded C program", 120);
    let dir = TempDir::new(name);
    let Some(bin) = compile(name, &dir.0) else { return };
    let out = Command::new(&bin)
        .env("LD_PRELOAD", shim())
        .env("UIPC_SOCKET", socket)
        .env("UIPC_NAMESPACE", "default")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{name}: {}\n{stdout}{stderr}", out.status);
    assert!(out.status.success() && stdout.contains("ok"), "{name} failed: {}\n{stdout}{stderr}", out.status);
}

#[test]
fn fork_counts_the_child_at_once() {
    let d = TestDaemon::start("fork");
    run("fork", &d.socket);
}

#[test]
fn errnos_match_linux() {
    let d = TestDaemon::start("errno");
    run("errno", &d.socket);
}

#[test]
fn threads_attach_and_detach() {
    let d = TestDaemon::start("threads");
    run("threads", &d.socket);
}

#[test]
fn no_daemon_gives_enosys() {
    let dir = TempDir::new("nodaemon-sock");
    run("nodaemon", &dir.0.join("nobody.sock"));
}
