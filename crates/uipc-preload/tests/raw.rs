//! Raw system calls through the shim, against the kernel: C programs that
//! make every System V IPC call through libc's `syscall()` run natively in
//! a fresh IPC namespace and with `LD_PRELOAD=libuipc_preload.so` under a
//! seccomp filter that kills them at any of the kernel's IPC calls; the two
//! outputs must be the same line for line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

/// Whether this process is root (the programs change ids and capabilities).
fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIP: not root");
    }
    root
}

/// Every System V call through `syscall()`, as root then as nobody
/// (dropped with raw `setresuid`), with raw `capset` in between.
#[test]
fn every_ipc_call_through_syscall_matches_the_kernel() {
    if root() {
        differential("raw_syscall");
    }
}

/// Raw `clone` and `clone3` (fork-like) with and without `CLONE_NEWIPC`:
/// the child starts in a fresh namespace, keeping its inherited mapping.
#[test]
fn raw_clone_newipc_starts_the_child_in_a_fresh_namespace() {
    if root() {
        differential("raw_clone");
    }
}
