//! POSIX shared memory and named semaphores through the shim, against
//! glibc over the kernel's tmpfs: each C program in `tests/c/pshm*.c` runs
//! natively with a private tmpfs on `/dev/shm` (a fresh mount namespace)
//! and with `LD_PRELOAD=libuipc_preload.so` against an in-process daemon,
//! with `/dev/shm` an empty read-only tmpfs and the kernel's System V IPC
//! calls killed; the two standard outputs must be the same line for line.
//! Root only (mount namespaces, identities); skipped with a message
//! otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

/// Every PSHM-NAME/OPEN/SIZE/MAP/STAT/UNL rule, as root, as nobody, and
/// as a root process that drops to nobody halfway.
#[test]
fn pshm_rules_match_glibc_on_tmpfs() {
    differential_posix("pshm");
}

/// Every PSEM rule (names, open, close, unlink; root and nobody), then two
/// processes handing semaphores back and forth 100,000 times and four
/// counting under one as a mutex: no post lost.
#[test]
fn named_semaphores_match_glibc_on_tmpfs() {
    differential_posix("psem");
}
