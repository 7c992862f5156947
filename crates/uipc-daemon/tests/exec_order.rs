//! An `execve` releases a process's attachments when its last connection
//! closes (close-on-exec). The daemon must see that even when the new
//! program's connection is accepted before the old connection's hang-up is
//! read: the daemon (a separate process) is stopped with SIGSTOP while the
//! test connects anew and only then closes its attaching connection, so
//! both wait in the same wake-up in the inverted order. After SIGCONT the
//! new connection must see `nattch` 0, as a program after `execve` sees on
//! the kernel (checked against the kernel by the preload tests'
//! `counter_life.c`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::BufReader;
use std::process::Stdio;

use common::*;
use uipc_abi::{IPC_CREAT, IPC_PRIVATE, IPC_STAT};
use uipc_proto::{CtlOut, Request, Response};

const ENTRY: &str = "probe_entry_exec_order";

/// Probe entry point: the daemon, as a process of its own (its standard
/// input is its lifeline).
#[test]
fn probe_entry_exec_order() {
    if let Some(socket) = probe_socket("daemon") {
        let lifeline = std::os::fd::AsFd::as_fd(&std::io::stdin()).try_clone_to_owned().ok();
        let config = uipc_daemon::Config { socket, state_dir: None, ready_fd: None, lifeline };
        let daemon = uipc_daemon::Daemon::bind(config).unwrap();
        println!("READY");
        daemon.serve().unwrap();
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

#[test]
fn a_hang_up_read_after_the_next_connection_still_releases_the_attachments() {
    let _w = watchdog("exec_order", 60);
    let dir = TempDir::new("exec-order");
    let socket = dir.0.join("d.sock");
    let mut cmd = probe_command(ENTRY, "daemon", &socket);
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let daemon = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    wait_for_line(&mut out, "READY");
    let _reaper = Reaper(Some(child));

    // Connection A attaches a segment (the mapping itself is not needed).
    let mut a = Raw::connect(&socket);
    a.hello("default");
    let (id, _memory) = a.shmget_created(&Request::ShmGet { key: IPC_PRIVATE, size: 4096, flags: IPC_CREAT | 0o600 });
    a.send(&Request::ShmAt { id, addr: 0, flags: 0 });
    let token = match a.recv().unwrap().0 {
        Response::Attach { token, .. } => token,
        other => panic!("shmat: {other:?}"),
    };
    assert_eq!(a.call(&Request::ShmAtDone { token, result: Ok(0x7000_0000_0000) }), Response::Value(0x7000_0000_0000));
    let nattch = |r: &mut Raw| match r.call(&Request::ShmCtl { id, cmd: IPC_STAT, set: None }) {
        Response::Ctl { out: CtlOut::ShmDs(ds), .. } => ds.shm_nattch,
        other => panic!("IPC_STAT: {other:?}"),
    };
    assert_eq!(nattch(&mut a), 1);

    // While the daemon cannot run: the new connection first, then A's close.
    signal(daemon, "-STOP");
    // Stopped for certain (state T) before anything else happens.
    while !std::fs::read_to_string(format!("/proc/{daemon}/stat"))
        .unwrap()
        .rsplit(')')
        .next()
        .unwrap()
        .starts_with(" T")
    {
        std::thread::yield_now();
    }
    let mut b = Raw::connect(&socket);
    drop(a);
    signal(daemon, "-CONT");
    b.hello("default");
    assert_eq!(nattch(&mut b), 0, "the process's last connection closed: its attachments go, as at exec");
}
