//! POSIX message queues through the shim, against the kernel: each C
//! program in `tests/c/mq_*.c` runs natively in a fresh IPC namespace
//! (`unshare --ipc`, root only) and with `LD_PRELOAD=libuipc_preload.so`
//! against an in-process daemon, under a seccomp filter that kills it on
//! any of the kernel's System V or POSIX message queue calls; the two
//! standard outputs must be the same line for line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn mq_open_send_receive_notify_and_the_descriptor_match_the_kernel() {
    differential("mq_basic");
}

#[test]
fn epoll_ordered_sleepers_notification_elsewhere_and_a_signal_storm_match_the_kernel() {
    differential("mq_multi");
}
