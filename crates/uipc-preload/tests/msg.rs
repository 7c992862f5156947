//! System V message queues through the shim, against the kernel: each C
//! program in `tests/c/msg_*.c` runs natively in a fresh IPC namespace
//! (`unshare --ipc`, root only) and with `LD_PRELOAD=libuipc_preload.so`
//! against an in-process daemon, under a seccomp filter that kills it on
//! any of the kernel's System V IPC calls; the two standard outputs must be
//! the same line for line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn msg_errnos_and_queue_state_match_the_kernel() {
    differential("msg_errno");
}

#[test]
fn a_signal_storm_loses_and_duplicates_no_message() {
    differential("msg_storm");
}

/// msgsnd/msgrcv (with and without `IPC_NOWAIT`) racing `IPC_RMID`, and as
/// nobody racing the `IPC_SET` that revokes write, then read and write:
/// only 0/`EIDRM`/`EINVAL`; `EACCES` for every call begun after `IPC_SET`
/// returned; each racer receives exactly what it sent.
#[test]
fn msgsnd_and_msgrcv_racing_rmid_and_ipc_set() {
    if uipc_testsupport::skip_unless_root("msgsnd_and_msgrcv_racing_rmid_and_ipc_set", "racers setuid to nobody") {
        return;
    }
    differential("msg_race");
}

/// The fast path (sends and receives on the state page) racing IPC_SET and
/// IPC_RMID, and EFAULT for buffers unmapped or made read-only after use.
#[test]
fn fast_path_races_control_calls_and_checks_buffers() {
    differential("msg_fast_race");
}

/// `tests/c/msg_stat.c`: `IPC_STAT`/`MSG_STAT`/`MSG_STAT_ANY` (each asked
/// twice: under the shim the second may come from the status region) as
/// root and uid 1000, after sends, receives, `IPC_SET`, `IPC_RMID`, from a
/// forked child, across `unshare(CLONE_NEWIPC)`, and while another process
/// sends and receives in a loop (every answer a consistent snapshot:
/// `cbytes` is 16 × `qnum`): every field as the kernel's.
#[test]
fn msg_stat_matches_the_kernel() {
    differential("msg_stat");
}
