//! System V message queues' data plane: sends and receives that do not
//! sleep run in the caller on the queue's state page (the daemon stopped
//! with SIGSTOP cannot serve them, yet they complete); they interleave with
//! callers parked in the daemon in the kernel's hand-off order; a process
//! killed while holding a queue's lock mid-change leaves the queue as it
//! was, and the next caller proceeds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::BufReader;
use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use rustix::process::{kill_process, Pid, Signal};
use uipc_abi::{Errno, IPC_NOWAIT, MSG_EXCEPT, MSG_NOERROR};
use uipc_client::{Client, MsgId};
use uipc_daemon::{Config, Daemon};
use uipc_proto::{Request, Response};
use uipc_sys::msg_page::MsgQueuePage;

const ENTRY: &str = "probe_entry_msg_fast";

/// Probe entry point, not a test on its own: a daemon process on
/// `UIPC_SOCKET` that says `READY` and serves until killed.
#[test]
fn probe_entry_msg_fast() {
    if let Some(socket) = probe_socket("daemon") {
        let _w = watchdog("probe daemon", 120);
        let ready = std::io::stdout().as_fd().try_clone_to_owned().unwrap();
        let d = Daemon::bind(Config { socket, state_dir: None, ready_fd: Some(ready), lifeline: None }).unwrap();
        d.serve().unwrap();
    }
}

fn queue(c: &Client) -> MsgId {
    c.msgget(uipc_abi::IPC_PRIVATE, uipc_abi::IPC_CREAT | 0o600).unwrap()
}

/// With the daemon stopped, granted sends and receives still complete:
/// they run in this process, with the errnos the model gives (`EAGAIN`
/// when full, `ENOMSG`, `E2BIG`), and the daemon, continued, reports the
/// queue exactly as they left it.
#[test]
fn sends_and_receives_run_without_the_daemon() {
    let _w = watchdog("sends_and_receives_run_without_the_daemon", 120);
    let dir = TempDir::new("msgfast");
    let socket = dir.0.join("d.sock");
    let mut cmd = probe_command(ENTRY, "daemon", &socket);
    cmd.stdout(Stdio::piped()).stdin(Stdio::null());
    let mut child = Reaper(Some(cmd.spawn().unwrap()));
    let c = child.0.as_mut().unwrap();
    let daemon = Pid::from_child(c);
    let mut out = BufReader::new(c.stdout.take().unwrap());
    wait_for_line(&mut out, "READY");
    let client = Client::connect_to(&socket, "default").unwrap();
    let id = queue(&client);
    // The first call asks for the grant.
    client.msgsnd(id, 9, b"first", IPC_NOWAIT).unwrap();

    kill_process(daemon, Signal::Stop).unwrap();
    let me = std::process::id();
    assert_eq!(client.msgrcv(id, 64, 9, IPC_NOWAIT).unwrap().data, b"first");
    let mut sent = 0u64;
    // 16384 bytes: 160 messages of 100 bytes fill it, the 164th does not fit.
    loop {
        let text = [u8::try_from(sent % 251).unwrap(); 100];
        match client.msgsnd(id, 1 + i64::try_from(sent % 3).unwrap(), &text, IPC_NOWAIT) {
            Ok(()) => sent += 1,
            Err(e) => {
                assert_eq!(e, Errno::EAGAIN);
                break;
            }
        }
    }
    assert_eq!(sent, 163);
    assert_eq!(client.msgrcv(id, 10, 2, IPC_NOWAIT), Err(Errno::E2BIG));
    assert_eq!(client.msgrcv(id, 200, 7, IPC_NOWAIT), Err(Errno::ENOMSG));
    let m = client.msgrcv(id, 10, 2, IPC_NOWAIT | MSG_NOERROR).unwrap();
    assert_eq!((m.mtype, m.data), (2, vec![1; 10]));
    let m = client.msgrcv(id, 200, 1, IPC_NOWAIT | MSG_EXCEPT).unwrap();
    assert_eq!((m.mtype, m.data.len()), (3, 100));
    let m = client.msgrcv(id, 200, -1, IPC_NOWAIT).unwrap();
    assert_eq!((m.mtype, m.data), (1, vec![0; 100]));
    kill_process(daemon, Signal::Cont).unwrap();

    let ds = client.msg_stat(id).unwrap();
    assert_eq!((ds.msg_qnum, ds.msg_cbytes), (160, 16000));
    assert_eq!((ds.msg_lspid, ds.msg_lrpid), (i32::try_from(me).unwrap(), i32::try_from(me).unwrap()));
    assert!(ds.msg_stime > 0 && ds.msg_rtime >= ds.msg_stime);
    // And the daemon's own path sees the same messages, in order.
    let mut raw = common::Raw::connect(&socket);
    raw.hello("default");
    let r = raw.call(&Request::MsgRcv { id: id.0, msgsz: 200, msgtyp: 0, flags: IPC_NOWAIT, readable: true });
    assert_eq!(r, Response::Msg { mtype: 1, data: vec![3; 100] });
    drop(child);
}

fn waiters(admin: &mut Raw, n: usize) {
    while admin.call(&Request::Waiters) != Response::Pids(vec![std::process::id(); n]) {
        std::thread::yield_now();
    }
}

/// A receiver parked in the daemon gets the message meant for it (handed
/// over, `pipelined_send()`), while the fast path's messages of other types
/// stay queued in order; a sender parked on a full queue is woken by a
/// receive and its message lands after the others.
#[test]
fn fast_paths_interleave_with_callers_parked_in_the_daemon() {
    let _w = watchdog("fast_paths_interleave_with_callers_parked_in_the_daemon", 120);
    let d = TestDaemon::start("msgfast-park");
    let client = d.client();
    let id = queue(&client);
    client.msgsnd(id, 1, b"a0", IPC_NOWAIT).unwrap();
    let mut parked = d.raw();
    let mut admin = d.raw();
    parked.send(&Request::MsgRcv { id: id.0, msgsz: 64, msgtyp: 5, flags: 0, readable: true });
    waiters(&mut admin, 1);
    for i in 1..4 {
        client.msgsnd(id, 1, format!("a{i}").as_bytes(), IPC_NOWAIT).unwrap();
    }
    client.msgsnd(id, 5, b"for the sleeper", IPC_NOWAIT).unwrap();
    assert_eq!(parked.recv().unwrap().0, Response::Msg { mtype: 5, data: b"for the sleeper".to_vec() });
    for i in 0..4 {
        assert_eq!(client.msgrcv(id, 64, 0, IPC_NOWAIT).unwrap().data, format!("a{i}").as_bytes());
    }
    assert_eq!(client.msgrcv(id, 64, 0, IPC_NOWAIT), Err(Errno::ENOMSG));

    // Full queue: a sender parks; a receive wakes it; FIFO order holds.
    let set = uipc_proto::MsgSetArg { perm: uipc_proto::PermSet { uid: 0, gid: 0, mode: 0o600 }, qbytes: 8 };
    client.msgctl(id.0, uipc_abi::IPC_SET, Some(set)).unwrap();
    client.msgsnd(id, 1, b"1234", IPC_NOWAIT).unwrap();
    client.msgsnd(id, 1, b"5678", IPC_NOWAIT).unwrap();
    assert_eq!(client.msgsnd(id, 1, b"x", IPC_NOWAIT), Err(Errno::EAGAIN));
    let mut sender = d.raw();
    sender.send(&Request::MsgSnd { id: id.0, mtype: Some(1), msgsz: 4, text: Some(b"9abc".to_vec()), flags: 0 });
    waiters(&mut admin, 1);
    assert_eq!(client.msgrcv(id, 64, 0, IPC_NOWAIT).unwrap().data, b"1234");
    assert_eq!(sender.recv().unwrap().0, Response::Value(0));
    assert_eq!(client.msgrcv(id, 64, 0, IPC_NOWAIT).unwrap().data, b"5678");
    assert_eq!(client.msgrcv(id, 64, 0, IPC_NOWAIT).unwrap().data, b"9abc");
    let ds = client.msg_stat(id).unwrap();
    assert_eq!((ds.msg_qnum, ds.msg_cbytes, ds.msg_qbytes), (0, 0, 8));
}

/// A process that dies holding a queue's lock in the middle of a commit
/// (pre-image saved, control block half rewritten, SIGKILL): the next
/// caller — the client's fast path or the daemon — proceeds, and the
/// queue is exactly as before the interrupted change.
#[test]
fn a_holder_killed_mid_change_is_rolled_back() {
    let _w = watchdog("a_holder_killed_mid_change_is_rolled_back", 120);
    let d = TestDaemon::start("msgfast-kill");
    let client = d.client();
    let id = queue(&client);
    for (t, text) in [(1, &b"one"[..]), (2, b"two"), (3, b"three")] {
        client.msgsnd(id, t, text, IPC_NOWAIT).unwrap();
    }
    let mut raw = d.raw();
    raw.send(&Request::MsgGrant { id: id.0 });
    let (resp, mut fds) = raw.recv().unwrap();
    assert!(matches!(resp, Response::MsgGrant { receive: true, .. }), "{resp:?}");
    let page = MsgQueuePage::open(fds.pop().unwrap().as_fd(), true).unwrap();

    for stage in 0..3 {
        die_in_child(|| {
            let held = page.lock(Duration::from_secs(5));
            if let Ok((guard, _)) = held {
                page.with_body(&guard, |b| {
                    use uipc_core::sysv::msg_page::PageBytes;
                    let mut ctrl = [0u8; 112];
                    if b.read(32, &mut ctrl).is_ok() {
                        // Stage 0: died before the pre-image counted;
                        // 1: pre-image valid, control block untouched;
                        // 2: pre-image valid, control block torn.
                        let _ = b.write(152, &ctrl);
                        if stage >= 1 {
                            let _ = b.set_u64(144, 1);
                        }
                        if stage >= 2 {
                            let _ = b.write(32, &[0xee; 56]);
                        }
                    }
                });
                std::mem::forget(guard);
            }
        });
        // The next caller takes the dead holder's lock and carries on.
        client.msgsnd(id, 4, b"four", IPC_NOWAIT).unwrap();
        let ds = client.msg_stat(id).unwrap();
        assert_eq!((ds.msg_qnum, ds.msg_cbytes), (4, 15), "after a death at stage {stage}");
        assert_eq!(client.msgrcv(id, 64, 4, IPC_NOWAIT).unwrap().data, b"four");
    }
    for (t, want) in [(1, &b"one"[..]), (2, b"two"), (3, b"three")] {
        let m = client.msgrcv(id, 64, 0, IPC_NOWAIT).unwrap();
        assert_eq!((m.mtype, m.data.as_slice()), (t, want));
    }
    // The daemon never counted the queue damaged.
    assert_eq!(client.msgrcv(id, 64, 0, IPC_NOWAIT), Err(Errno::ENOMSG));
}
