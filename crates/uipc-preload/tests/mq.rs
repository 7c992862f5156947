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

/// poll (every bit), select and epoll of four descriptions of one queue in
/// two processes follow each send and receive by either process through
/// empty, neither, full and back, and empty <-> full for a queue of one.
#[test]
fn readiness_of_every_description_in_two_processes_matches_the_kernel() {
    differential("mq_levels");
}

/// Sends and receives that do not sleep (on the queue's state page under
/// the shim): forked and threaded senders and receivers with counts and
/// checksums, another process's readiness and `mq_curmsgs` after each
/// call, `mq_notify` fired by a send to the empty queue, each
/// description's access mode and `O_NONBLOCK`, uid 1000, and processes
/// SIGKILLed mid-call.
#[test]
fn fast_sends_and_receives_match_the_kernel() {
    differential("mq_fast");
}

#[test]
fn proc_sys_fs_mqueue_shows_the_namespace_values() {
    let _w = watchdog("cat /proc/sys/fs/mqueue", 60);
    let d = TestDaemon::start("mq-sysctl");
    let c = uipc_client::Client::connect_to(&d.socket, "default").unwrap();
    c.sysctl_write("fs.mqueue.msg_default", "7").unwrap();
    c.sysctl_write("fs.mqueue.queues_max", "3").unwrap();
    let out = std::process::Command::new("cat")
        .args(["/proc/sys/fs/mqueue/msg_default", "/proc/sys/fs/mqueue/queues_max"])
        .env("LD_PRELOAD", shim())
        .env("UIPC_SOCKET", &d.socket)
        .env("UIPC_NAMESPACE", "default")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "7\n3\n");
}

#[test]
fn namespace_limits_queues_max_and_rlimit_msgqueue_match_the_kernel() {
    differential_with("mq_limits", |c| {
        for (name, value) in [
            ("fs.mqueue.queues_max", "3"),
            ("fs.mqueue.msg_max", "20"),
            ("fs.mqueue.msgsize_max", "1024"),
            ("fs.mqueue.msg_default", "4"),
            ("fs.mqueue.msgsize_default", "256"),
        ] {
            c.sysctl_write(name, value).unwrap();
        }
    });
}
