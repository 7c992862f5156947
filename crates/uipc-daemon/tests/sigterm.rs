//! SIGTERM and SIGINT stop a daemon process cleanly: exit status 0, socket
//! file removed, clients see the connection end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufReader, Read};
use std::os::fd::AsFd;
use std::process::Stdio;

use common::*;
use rustix::process::{kill_process, Pid, Signal};
use uipc_abi::{IPC_CREAT, IPC_PRIVATE};
use uipc_daemon::{Config, Daemon};

const ENTRY: &str = "probe_entry_sigterm";

/// Probe entry point, not a test on its own: does its work only when a
/// test of this file re-executes the binary with `UIPC_PROBE` set. Runs a
/// daemon on `UIPC_SOCKET` that says `READY` on stdout (through
/// `Config::ready_fd`) and serves until a signal stops it.
#[test]
fn probe_entry_sigterm() {
    if let Some(socket) = probe_socket("daemon") {
        // Only against a parent that died: the parent signals us long before.
        let _w = watchdog("probe daemon", 60);
        let ready = std::io::stdout().as_fd().try_clone_to_owned().unwrap();
        let d = Daemon::bind(Config { socket, state_dir: None, ready_fd: Some(ready), lifeline: None }).unwrap();
        d.serve().unwrap();
        println!("SERVED");
    }
}

#[test]
fn signals_stop_the_daemon_cleanly() {
    let _w = watchdog("signals_stop_the_daemon_cleanly", 120);
    for sig in [Signal::Term, Signal::Int] {
        let dir = TempDir::new("sig");
        let socket = dir.0.join("d.sock");
        let mut cmd = probe_command(ENTRY, "daemon", &socket);
        cmd.stdout(Stdio::piped()).stdin(Stdio::null());
        let mut child = Reaper(Some(cmd.spawn().unwrap()));
        let c = child.0.as_mut().unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        wait_for_line(&mut out, "READY");
        assert!(socket.exists());

        // A working daemon, with a client connected and attached.
        let client = uipc_client::Client::connect_to(&socket, "default").unwrap();
        let id = client.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
        let mut m = client.attach(id, 0).unwrap();
        m[0] = 1;
        assert_eq!(client.shm_stat(id).unwrap().shm_nattch, 1);

        let pid = Pid::from_child(c);
        kill_process(pid, sig).unwrap();
        let status = child.0.take().unwrap().wait().unwrap();
        assert_eq!(status.code(), Some(0), "daemon exit after {sig:?}: {status}");
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        assert!(rest.contains("SERVED"), "serve() did not return Ok: {rest}");
        assert!(!socket.exists(), "socket file left behind after {sig:?}");
        // The client sees the daemon gone; the mapping still goes away.
        assert!(client.sync().is_err());
        drop(m);
        assert!(uipc_client::Client::connect_to(&socket, "default").is_err());
    }
}
