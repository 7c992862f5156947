//! What Linux keeps per thread, through the shim against the kernel: each
//! C program runs natively in a fresh IPC namespace (`unshare --ipc`) and
//! under `LD_PRELOAD=libuipc_preload.so` with the kernel's IPC calls
//! denied; the outputs must be the same line for line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

/// Credentials: a thread's own `capset` changes its verdicts only.
#[test]
fn credentials_are_per_thread() {
    if uipc_testsupport::skip_unless_root("credentials_are_per_thread", "setuid, CAP_IPC_OWNER") {
        return;
    }
    differential("thread_creds");
}

/// Namespaces: a thread's `unshare(CLONE_NEWIPC)` moves it alone (and the
/// threads and children it makes); children of glibc's `clone` and of
/// `syscall(SYS_clone3)` with `CLONE_NEWIPC` start in a fresh namespace.
#[test]
fn namespaces_are_per_thread_and_fresh_for_clone_children() {
    if uipc_testsupport::skip_unless_root("namespaces_are_per_thread", "unshare(CLONE_NEWIPC) natively") {
        return;
    }
    differential("thread_ns");
}

/// `setns(pidfd, CLONE_NEWIPC)`: a child joins another process's
/// namespace, a thread alone, nobody gets `EPERM`.
#[test]
fn setns_with_a_pidfd_joins_that_process_namespace() {
    if uipc_testsupport::skip_unless_root("setns_with_a_pidfd", "setns natively needs CAP_SYS_ADMIN") {
        return;
    }
    differential("setns");
}
