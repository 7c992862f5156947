//! Shared memory across processes through the shim, against the kernel
//! (`tests/c/counter_life.c`, run natively in `unshare --ipc` and under the
//! shim with the kernel's IPC calls denied; the outputs must be equal):
//! four forked processes count to exactly 20000 in one segment (under a
//! `SEM_UNDO` semaphore, and atomically); then attach, fork, exec, exit and
//! SIGKILL sequences with `nattch` printed at every step; and segment
//! queries as others change the segment (`tests/c/shm_stat.c`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn a_shared_counter_and_attach_fork_exec_exit_kill_match_the_kernel() {
    differential("counter_life");
}

/// `tests/c/shm_stat.c`: `IPC_STAT`/`SHM_STAT`/`SHM_STAT_ANY` answered from
/// the status region (a caller's second ask) after another process's
/// `IPC_SET` (`EACCES` at once), `IPC_RMID`, attach, detach and death while
/// attached, after the caller's own credential drop, from a forked child,
/// and across `unshare(CLONE_NEWIPC)`: every field as the kernel's.
#[test]
fn shm_stat_from_the_status_region_matches_the_kernel() {
    differential("shm_stat");
}

/// `tests/c/ipc_info.c`: `IPC_INFO`, `SHM_INFO`, `SEM_INFO`, `MSG_INFO`
/// (each asked twice: under the shim the second may come from the
/// namespace's status region) as objects of each kind are created and
/// removed, as the limits change, as uid 1000, and after
/// `unshare(CLONE_NEWIPC)`: every field and value as the kernel's.
#[test]
fn ipc_info_commands_match_the_kernel() {
    differential("ipc_info");
}

/// `tests/c/shm_attach.c`: attach, re-attach and detach (under the shim,
/// made in the process itself through the segment's attach page), with
/// `nattch`, `lpid`, `atime` and `dtime` read after every call by the
/// caller and by a process that never attached: fork (the child inherits,
/// detaches, exits attached), a holder SIGKILLed, `munmap`/`mprotect` of
/// part of an attach, a fixed-address attach beside them, four threads at
/// once, `IPC_RMID` then the last detach, uid 1000, and a privilege drop
/// halfway — every value as the kernel's.
#[test]
fn attach_and_detach_in_the_caller_match_the_kernel() {
    differential("shm_attach");
}
