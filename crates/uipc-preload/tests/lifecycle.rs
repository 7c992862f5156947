//! Shared memory across processes through the shim, against the kernel
//! (`tests/c/counter_life.c`, run natively in `unshare --ipc` and under the
//! shim with the kernel's IPC calls denied; the outputs must be equal):
//! four forked processes count to exactly 20000 in one segment (under a
//! `SEM_UNDO` semaphore, and atomically); then attach, fork, exec, exit and
//! SIGKILL sequences with `nattch` printed at every step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn a_shared_counter_and_attach_fork_exec_exit_kill_match_the_kernel() {
    differential("counter_life");
}
