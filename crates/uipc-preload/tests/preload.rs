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

/// A root program that changes its ids, groups and capabilities between
/// calls: each call is judged with the credentials of that moment, as by
/// the kernel (the program's output natively in a fresh IPC namespace is
/// the reference).
#[test]
fn credential_changes_apply_at_the_next_call() {
    let euid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:").and_then(|s| s.split_whitespace().nth(1).map(str::to_owned)));
    if euid.as_deref() != Some("0") {
        eprintln!("SKIP creds: not root");
        return;
    }
    let probe = Command::new("unshare").args(["--ipc", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP creds: unshare --ipc not permitted");
        return;
    }
    let _w = watchdog("creds", 120);
    let d = TestDaemon::start("creds");
    let dir = TempDir::new("creds");
    let Some(bin) = compile("creds", &dir.0) else { return };
    let native = Command::new("unshare").arg("--ipc").arg(&bin).output().unwrap();
    let shimmed = Command::new(&bin)
        .arg("shim")
        .env("LD_PRELOAD", shim())
        .env("UIPC_SOCKET", &d.socket)
        .env("UIPC_NAMESPACE", "default")
        .output()
        .unwrap();
    let (n, s) = (String::from_utf8_lossy(&native.stdout), String::from_utf8_lossy(&shimmed.stdout));
    eprintln!(
        "kernel:\n{n}{}\nuipc:\n{s}{}",
        String::from_utf8_lossy(&native.stderr),
        String::from_utf8_lossy(&shimmed.stderr)
    );
    assert!(native.status.success() && n.ends_with("ok\n"), "the program failed natively");
    // The program must have seen denials, or it tests nothing.
    assert!(n.contains("Permission denied"), "no step was denied natively");
    assert_eq!(s, n, "uipc's answers differ from the kernel's");
    assert!(shimmed.status.success());
}
