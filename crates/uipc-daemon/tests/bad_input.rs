//! Malformed, misordered, abandoned and excessive input: the daemon drops
//! (or answers) the offender, leaks nothing, and keeps serving everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::Stdio;

use common::*;
use uipc_abi::{Errno, IPC_CREAT, IPC_PRIVATE};
use uipc_client::{Client, ShmId};
use uipc_proto::{Request, Response, MAX_FRAME, VERSION};

const ENTRY: &str = "probe_entry_bad_input";

/// Probe entry point, not a test on its own: does its work only when a
/// test of this file re-executes the binary with `UIPC_PROBE` set.
#[test]
fn probe_entry_bad_input() {
    if let Some(socket) = probe_socket("vanish") {
        let _w = watchdog("probe vanish", 60);
        probe_vanish(&socket);
    }
}

/// Gets an attach granted, says so, waits for its stdin to close, and
/// exits without ever answering `ShmAtDone`.
fn probe_vanish(socket: &std::path::Path) {
    let id = i32::try_from(probe_arg("ID")).unwrap();
    let mut raw = Raw::connect(socket);
    raw.hello("default");
    raw.send(&Request::ShmAt { id, addr: 0, flags: 0 });
    let (resp, fds) = raw.recv().expect("daemon closed the connection");
    assert!(matches!(resp, Response::Attach { .. }), "expected Attach, got {resp:?}");
    assert_eq!(fds.len(), 1);
    println!("GRANTED");
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    // Vanish: no ShmAtDone, no orderly teardown.
    std::process::exit(0);
}

/// Another client, old or new, is still served correctly.
fn assert_served(d: &TestDaemon, old: &Client) {
    let c = d.client();
    let id = c.shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0o600).unwrap();
    assert_eq!(c.shm_stat(id).unwrap().shm_segsz, 8192);
    assert_eq!(old.shm_stat(id).unwrap().shm_segsz, 8192);
    let mut m = old.attach(id, 0).unwrap();
    m[0] = 7;
    assert_eq!(c.shm_stat(id).unwrap().shm_nattch, 1);
    drop(m);
    c.shm_remove(id).unwrap();
    assert_eq!(old.shm_stat(id).err(), Some(Errno::EINVAL));
}

/// Calls `sync` until `done()` holds (each call lets the daemon's loop run
/// once more); gives up after a bounded number of rounds.
fn settle(c: &Client, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..2000 {
        if done() {
            return true;
        }
        c.sync().unwrap();
    }
    done()
}

#[test]
fn oversized_length_prefix_closes_without_reading_the_payload() {
    let _w = watchdog("oversized_length_prefix", 60);
    let d = TestDaemon::start("big");
    let old = d.client();
    let mut raw = d.raw();
    // Only the prefix is sent: a daemon waiting for the payload would never
    // close (and the read would time out).
    let len = u32::try_from(MAX_FRAME + 1).unwrap();
    raw.send_bytes(&header(len));
    raw.expect_closed();
    let mut raw = Raw::connect(&d.socket);
    raw.send_bytes(&header(u32::MAX));
    raw.expect_closed();
    assert_served(&d, &old);
}

#[test]
fn garbage_frame_closes() {
    let _w = watchdog("garbage_frame", 60);
    let d = TestDaemon::start("garbage");
    let old = d.client();
    for payload in [&[0xffu8; 16][..], &[0x00, 0xff, 0xff, 0xff, 0xff, 0xff], &[0x7f; 3]] {
        let mut raw = d.raw();
        let mut frame = header(u32::try_from(payload.len()).unwrap()).to_vec();
        frame.extend_from_slice(payload);
        raw.send_bytes(&frame);
        raw.expect_closed();
    }
    // Also before Hello, and a valid message with trailing bytes.
    let mut raw = Raw::connect(&d.socket);
    raw.send_bytes(&[4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    raw.expect_closed();
    let mut raw = d.raw();
    let mut frame = uipc_proto::encode(&Request::Sync).unwrap();
    frame[0] += 1;
    frame.push(0);
    raw.send_bytes(&frame);
    raw.expect_closed();
    assert_served(&d, &old);
}

#[test]
fn truncated_frame_then_disconnect() {
    let _w = watchdog("truncated_frame", 60);
    let d = TestDaemon::start("trunc");
    let old = d.client();
    let id = old.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
    let mut raw = d.raw();
    // Hold a pending attach, so that the daemon's handling of the close is
    // visible (the hold goes away with the connection).
    raw.send(&Request::ShmAt { id: id.0, addr: 0, flags: 0 });
    let (resp, _fds) = raw.recv().unwrap();
    assert!(matches!(resp, Response::Attach { .. }), "{resp:?}");
    assert_eq!(old.shm_stat(id).unwrap().shm_nattch, 1);
    let mut partial = header(100).to_vec();
    partial.extend_from_slice(&[1; 10]);
    raw.send_bytes(&partial);
    drop(raw);
    assert!(settle(&old, || old.shm_stat(id).unwrap().shm_nattch == 0), "the closed connection's attach is held");
    assert_served(&d, &old);
    // A prefix cut short, too.
    let mut raw = d.raw();
    raw.send_bytes(&[5, 0]);
    drop(raw);
    assert_served(&d, &old);
}

fn send_with_fds(raw: &Raw, frame: &[u8], fds: &[BorrowedFd<'_>]) {
    let n = uipc_sys::net::send_msg(raw.stream.as_fd(), frame, fds).unwrap();
    assert_eq!(n, frame.len());
}

#[test]
fn descriptors_sent_to_the_daemon_are_not_kept() {
    let _w = watchdog("descriptors_sent", 60);
    let d = TestDaemon::start("fds");
    let old = d.client();
    // A file of our own, so that other tests' descriptors do not count.
    let path = d.dir.0.join("bait");
    std::fs::write(&path, b"bait").unwrap();
    assert_eq!(fds_open_on(&path), 0);

    for (count, after_hello) in [(3, true), (1, true), (3, false), (200, true)] {
        let mut raw = Raw::connect(&d.socket);
        let frame = if after_hello {
            raw.hello("default");
            uipc_proto::encode(&Request::Sync).unwrap()
        } else {
            uipc_proto::encode(&Request::Hello { version: VERSION, namespace: "default".into() }).unwrap()
        };
        {
            let files: Vec<_> = (0..count).map(|_| std::fs::File::open(&path).unwrap()).collect();
            let fds: Vec<_> = files.iter().map(|f| f.as_fd()).collect();
            send_with_fds(&raw, &frame, &fds);
        }
        // Answered or closed: either way the daemon has received them.
        match raw.recv() {
            None => {}
            Some((resp, got)) => {
                assert!(got.is_empty());
                assert!(matches!(resp, Response::Value(0) | Response::Welcome { .. }), "{resp:?}");
            }
        }
        assert!(settle(&old, || fds_open_on(&path) == 0), "the daemon keeps {} descriptors", fds_open_on(&path));
        drop(raw);
        assert_served(&d, &old);
        assert_eq!(fds_open_on(&path), 0);
    }
}

#[test]
fn request_before_hello_is_refused() {
    let _w = watchdog("request_before_hello", 60);
    let d = TestDaemon::start("nohello");
    let old = d.client();
    let mut raw = Raw::connect(&d.socket);
    let eperm = Response::Error(Errno::EPERM.raw());
    assert_eq!(raw.call(&Request::ShmGet { key: IPC_PRIVATE, size: 4096, flags: IPC_CREAT | 0o600 }), eperm);
    assert_eq!(raw.call(&Request::Sync), eperm);
    assert_eq!(raw.call(&Request::ShmCtl { id: 0, cmd: uipc_abi::SHM_INFO, set: None }), eperm);
    assert_eq!(raw.call(&Request::ShmAt { id: 0, addr: 0, flags: 0 }), eperm);
    // Nothing was created.
    assert_eq!(old.shm_info().unwrap().1.used_ids, 0);
    // The connection is still usable: Hello, then requests.
    raw.hello("default");
    raw.shmget_created(&Request::ShmGet { key: IPC_PRIVATE, size: 4096, flags: IPC_CREAT | 0o600 });
    assert_eq!(old.shm_info().unwrap().1.used_ids, 1);
    assert_served(&d, &old);
}

#[test]
fn bad_hello_is_refused() {
    let _w = watchdog("bad_hello", 60);
    let d = TestDaemon::start("badhello");
    let old = d.client();
    let mut raw = Raw::connect(&d.socket);
    for version in [0, VERSION + 1, u16::MAX] {
        let r = raw.call(&Request::Hello { version, namespace: "default".into() });
        assert_eq!(r, Response::Error(Errno::EPROTO.raw()), "version {version}");
    }
    let long = "x".repeat(300);
    for name in ["a/b", "", long.as_str(), "/", ".", "..", "a\0b", &"y".repeat(256)] {
        let r = raw.call(&Request::Hello { version: VERSION, namespace: name.into() });
        assert_eq!(r, Response::Error(Errno::EINVAL.raw()), "namespace {name:?}");
    }
    // Still not in a session.
    assert_eq!(raw.call(&Request::Sync), Response::Error(Errno::EPERM.raw()));
    // The longest valid name works, and a second Hello is refused.
    raw.hello(&"z".repeat(255));
    assert_eq!(raw.call(&Request::Sync), Response::Value(0));
    let r = raw.call(&Request::Hello { version: VERSION, namespace: "default".into() });
    assert_eq!(r, Response::Error(Errno::EINVAL.raw()));
    // The client library reports the errnos.
    assert_eq!(Client::connect_to(&d.socket, "a/b").err(), Some(Errno::EINVAL));
    assert_served(&d, &old);
}

/// Tags (`Request::Once`) out of their place — alone, twice in a row,
/// before a query, last before a hang-up — are harmless: the request after
/// the last one is served as usual, nothing is answered for the tag
/// itself, and everyone else is served.
#[test]
fn stray_once_frames_are_harmless() {
    let _w = watchdog("stray_once_frames", 60);
    let d = TestDaemon::start("once");
    let old = d.client();
    let mut raw = Raw::connect(&d.socket);
    raw.hello("default");
    raw.send(&Request::Once { client: 1, seq: 1 });
    raw.send(&Request::Once { client: 1, seq: 2 });
    raw.shmget_created(&Request::ShmGet { key: IPC_PRIVATE, size: 4096, flags: IPC_CREAT | 0o600 });
    raw.send(&Request::Once { client: 1, seq: 2 });
    assert_eq!(raw.call(&Request::Sync), Response::Value(0), "a tagged query is answered");
    // The same tag again, on a daemon without a state directory: nothing
    // was recorded, so the request is served anew.
    raw.send(&Request::Once { client: 1, seq: 2 });
    raw.shmget_created(&Request::ShmGet { key: IPC_PRIVATE, size: 4096, flags: IPC_CREAT | 0o600 });
    assert_eq!(old.shm_info().unwrap().1.used_ids, 2);
    raw.send(&Request::Once { client: 1, seq: 3 });
    drop(raw);
    assert!(settle(&old, || old.sync().is_ok()));
    assert_served(&d, &old);
}

/// A process that got an attach granted and exits without `ShmAtDone`
/// leaves no attachment behind; with IPC_RMID meanwhile, the segment goes.
#[test]
fn client_vanishing_mid_attach() {
    let _w = watchdog("client_vanishing_mid_attach", 120);
    let d = TestDaemon::start("vanish");
    let old = d.client();
    for rmid in [false, true] {
        let id = old.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
        let mut cmd = probe_command(ENTRY, "vanish", &d.socket);
        cmd.env("UIPC_ARG_ID", id.0.to_string()).stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = Reaper(Some(cmd.spawn().unwrap()));
        let c = child.0.as_mut().unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        wait_for_line(&mut out, "GRANTED");
        assert_eq!(old.shm_stat(id).unwrap().shm_nattch, 1, "a granted attach holds the segment");
        if rmid {
            old.shm_remove(id).unwrap();
            // Held by the pending attach: still there, marked for destruction.
            let ds = old.shm_stat(id).unwrap();
            assert_eq!(ds.shm_nattch, 1);
            assert_ne!(ds.shm_perm.mode & uipc_abi::SHM_DEST, 0);
        }
        drop(c.stdin.take());
        let status = child.0.take().unwrap().wait().unwrap();
        assert!(status.success(), "probe failed: {status}");
        old.sync().unwrap();
        if rmid {
            assert_eq!(old.shm_stat(id).err(), Some(Errno::EINVAL), "removed segment outlives its vanished attacher");
        } else {
            let ds = old.shm_stat(id).unwrap();
            assert_eq!(ds.shm_nattch, 0, "a vanished client's pending attach is still counted");
            old.shm_remove(id).unwrap();
        }
    }
    assert_eq!(old.shm_info().unwrap().1.used_ids, 0);
    assert_served(&d, &old);
}

#[test]
fn pipelined_flood_is_answered_in_order() {
    let _w = watchdog("pipelined_flood", 120);
    let d = TestDaemon::start("flood");
    let old = d.client();
    let keys: Vec<i32> = (0..10).map(|_| unique_key()).collect();
    let ids: Vec<ShmId> = keys.iter().map(|&k| old.shmget(k, 4096, IPC_CREAT | 0o600).unwrap()).collect();
    let mut raw = d.raw();
    const N: usize = 10_000;
    let mut flood = Vec::new();
    for i in 0..N {
        let req = if i % 7 == 3 {
            Request::ShmGet { key: keys[i % 10] ^ 0x0100_0000, size: 0, flags: 0 }
        } else {
            Request::ShmGet { key: keys[i % 10], size: 0, flags: 0 }
        };
        flood.extend_from_slice(&uipc_proto::encode(&req).unwrap());
    }
    // The daemon stops reading once 64 replies wait unread (backpressure),
    // so the flood is written by another thread while this one reads.
    let mut writer = raw.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &flood).unwrap());
    for i in 0..N {
        let (resp, fds) = raw.recv().unwrap_or_else(|| panic!("closed after {i} responses"));
        assert!(fds.is_empty());
        let want =
            if i % 7 == 3 { Response::Error(Errno::ENOENT.raw()) } else { Response::Value(i64::from(ids[i % 10].0)) };
        assert_eq!(resp, want, "response {i}");
    }
    sender.join().unwrap();
    assert_eq!(raw.call(&Request::Sync), Response::Value(0));
    assert_served(&d, &old);
}
