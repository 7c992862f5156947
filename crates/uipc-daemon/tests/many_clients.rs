//! Many clients at once: 1,000 connections of one process, and 200
//! processes connecting together.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufReader, Read, Write};
use std::process::Stdio;
use std::time::Instant;

use common::*;
use uipc_abi::{IPC_CREAT, IPC_EXCL, IPC_PRIVATE};
use uipc_client::{Client, ShmId};

const ENTRY: &str = "probe_entry_many";

/// Probe entry point, not a test on its own: does its work only when a
/// test of this file re-executes the binary with `UIPC_PROBE` set.
#[test]
fn probe_entry_many() {
    if let Some(socket) = probe_socket("many") {
        let _w = watchdog("probe many", 60);
        let key = i32::try_from(probe_arg("KEY")).unwrap();
        let index = u32::try_from(probe_arg("INDEX")).unwrap();
        let c = Client::connect_to(&socket, "default").unwrap();
        println!("CONNECTED");
        std::io::stdout().flush().unwrap();
        // Go on when the parent says so (closes our stdin): every probe is
        // connected at that point.
        let mut rest = Vec::new();
        std::io::stdin().read_to_end(&mut rest).unwrap();
        let id = c.shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0o600).unwrap();
        let mut m = c.attach(id, 0).unwrap();
        m[..4].copy_from_slice(&index.to_le_bytes());
        drop(m);
        assert_eq!(c.shm_stat(id).unwrap().shm_nattch, 0);
        println!("DONE");
    }
}

fn raise_nofile_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        setrlimit(Resource::Nofile, Rlimit { current: lim.maximum, maximum: lim.maximum }).unwrap();
    }
    let lim = getrlimit(Resource::Nofile);
    if let Some(n) = lim.current {
        assert!(n >= 4000, "RLIMIT_NOFILE {n} is too low for 1,000 connections (both ends here)");
    }
}

#[test]
fn a_thousand_concurrent_connections() {
    let _w = watchdog("a_thousand_concurrent_connections", 240);
    raise_nofile_limit();
    let d = TestDaemon::start("1000");
    const N: usize = 1000;
    let t = Instant::now();
    let clients: Vec<Client> = (0..N).map(|_| d.client()).collect();
    let connected = t.elapsed();

    // Every connection open at once; four threads drive them interleaved.
    let ids: Vec<(usize, ShmId)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let clients = &clients;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for i in (w..N).step_by(4) {
                        let c = &clients[i];
                        let id = c.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
                        let mut m = c.attach(id, 0).unwrap();
                        m[..4].copy_from_slice(&u32::try_from(i).unwrap().to_le_bytes());
                        drop(m);
                        mine.push((i, id));
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(ids.len(), N);
    let mut distinct: Vec<i32> = ids.iter().map(|(_, id)| id.0).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), N, "ids handed out twice");

    // All still connected: each stats its segment, another reads it back.
    let me = i32::try_from(std::process::id()).unwrap();
    for &(i, id) in &ids {
        let ds = clients[i].shm_stat(id).unwrap();
        assert_eq!((ds.shm_segsz, ds.shm_nattch, ds.shm_cpid), (4096, 0, me));
        let other = &clients[(i + 1) % N];
        let m = other.attach_read_only(id, 0).unwrap();
        assert_eq!(m[..4], u32::try_from(i).unwrap().to_le_bytes());
    }
    drop(clients);
    eprintln!("1000 connections: connected in {connected:?}, all done in {:?}", t.elapsed());

    let c = d.client();
    c.sync().unwrap();
    let (_, info) = c.shm_info().unwrap();
    assert_eq!(info.used_ids, 1000, "segments must outlive the connections");
    for &(_, id) in &ids {
        assert_eq!(c.shm_stat(id).unwrap().shm_nattch, 0);
        c.shm_remove(id).unwrap();
    }
    assert_eq!(c.shm_info().unwrap().1.used_ids, 0);
}

#[test]
fn two_hundred_processes_at_once() {
    let _w = watchdog("two_hundred_processes_at_once", 240);
    raise_nofile_limit();
    let d = TestDaemon::start("200");
    const N: usize = 200;
    let t = Instant::now();
    let base = 0x2000_0000 + i32::try_from(std::process::id() & 0xffff).unwrap() * 1024;
    let mut children = Vec::new();
    for i in 0..N {
        let mut cmd = probe_command(ENTRY, "many", &d.socket);
        cmd.env("UIPC_ARG_KEY", (base + i32::try_from(i).unwrap()).to_string())
            .env("UIPC_ARG_INDEX", i.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        children.push(Reaper(Some(cmd.spawn().unwrap())));
    }
    let mut outs = Vec::new();
    for ch in &mut children {
        let c = ch.0.as_mut().unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        wait_for_line(&mut out, "CONNECTED");
        outs.push(out);
    }
    let all_connected = t.elapsed();
    // Every probe holds a connection now: let them all go.
    for ch in &mut children {
        drop(ch.0.as_mut().unwrap().stdin.take());
    }
    let mut pids = Vec::new();
    for (ch, out) in children.iter_mut().zip(&mut outs) {
        let mut child = ch.0.take().unwrap();
        pids.push(i32::try_from(child.id()).unwrap());
        let status = child.wait().unwrap();
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        assert!(status.success() && rest.contains("DONE"), "probe failed ({status}):\n{rest}");
    }
    eprintln!("200 processes: all connected after {all_connected:?}, all done in {:?}", t.elapsed());

    let c = d.client();
    c.sync().unwrap();
    assert_eq!(c.shm_info().unwrap().1.used_ids, 200);
    for (i, pid) in pids.iter().enumerate() {
        let id = c.shmget(base + i32::try_from(i).unwrap(), 0, 0o600).unwrap();
        let ds = c.shm_stat(id).unwrap();
        assert_eq!((ds.shm_nattch, ds.shm_cpid, ds.shm_lpid), (0, *pid, *pid));
        let m = c.attach_read_only(id, 0).unwrap();
        assert_eq!(m[..4], u32::try_from(i).unwrap().to_le_bytes());
        drop(m);
        c.shm_remove(id).unwrap();
    }
    assert_eq!(c.shm_info().unwrap().1.used_ids, 0);
}
