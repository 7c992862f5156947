//! Message queues through the daemon: a sleeping msgrcv parks its
//! connection and is answered with the message handed to it; `Cancel`
//! gives `EINTR` only when nothing happened yet; sleeping senders are
//! answered when space appears; removal answers every sleeper `EIDRM`.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{watchdog, TestDaemon};
use uipc_abi::{Errno, IPC_NOWAIT, IPC_RMID, IPC_STAT};
use uipc_proto::{MsgOut, MsgSetArg, PermSet, Request, Response};

fn rcv(id: i32, msgsz: i64, msgtyp: i64, flags: i32) -> Request {
    Request::MsgRcv { id, msgsz, msgtyp, flags, readable: true }
}

fn snd(id: i32, mtype: i64, text: &[u8], flags: i32) -> Request {
    let msgsz = i64::try_from(text.len()).unwrap();
    Request::MsgSnd { id, mtype: Some(mtype), msgsz, text: Some(text.to_vec()), flags }
}

fn new_queue(d: &TestDaemon) -> i32 {
    match d.raw().call(&Request::MsgGet { key: 0, flags: 0o600 }) {
        Response::Value(v) => i32::try_from(v).unwrap(),
        r => panic!("{r:?}"),
    }
}

#[test]
fn a_sleeping_receiver_is_handed_the_message() {
    let _w = watchdog("msg", 60);
    let d = TestDaemon::start("msg-handoff");
    let id = new_queue(&d);
    let mut small = d.raw();
    let mut big = d.raw();
    let mut sender = d.raw();
    let mut admin = d.raw();
    small.send(&rcv(id, 1, 0, 0));
    // In this order: the daemon reads connections in no fixed order.
    while admin.call(&Request::Waiters) != Response::Pids(vec![std::process::id()]) {
        std::thread::yield_now();
    }
    big.send(&rcv(id, 64, 0, 0));
    while admin.call(&Request::Waiters) != Response::Pids(vec![std::process::id(); 2]) {
        std::thread::yield_now();
    }
    assert_eq!(sender.call(&snd(id, 7, b"abc", 0)), Response::Value(0));
    assert_eq!(small.recv().unwrap().0, Response::Error(Errno::E2BIG.raw()));
    assert_eq!(big.recv().unwrap().0, Response::Msg { mtype: 7, data: b"abc".to_vec() });
    let Response::MsgCtl { out: MsgOut::MsgDs(ds), .. } = admin.call(&Request::MsgCtl { id, cmd: IPC_STAT, set: None })
    else {
        panic!()
    };
    assert_eq!((ds.msg_qnum, ds.msg_cbytes), (0, 0));
}

#[test]
fn cancel_gives_eintr_only_if_nothing_happened() {
    let _w = watchdog("msg", 60);
    let d = TestDaemon::start("msg-cancel");
    let id = new_queue(&d);
    let mut r = d.raw();
    r.send(&rcv(id, 64, 0, 0));
    r.send(&Request::Cancel);
    assert_eq!(r.recv().unwrap().0, Response::Error(Errno::EINTR.raw()));
    assert_eq!(r.recv().unwrap().0, Response::Value(0));
    // Handed over before the Cancel is read: the message is delivered.
    r.send(&rcv(id, 64, 0, 0));
    let mut admin = d.raw();
    while admin.call(&Request::Waiters) != Response::Pids(vec![std::process::id()]) {
        std::thread::yield_now();
    }
    assert_eq!(d.raw().call(&snd(id, 1, b"kept", 0)), Response::Value(0));
    r.send(&Request::Cancel);
    assert_eq!(r.recv().unwrap().0, Response::Msg { mtype: 1, data: b"kept".to_vec() });
    assert_eq!(r.recv().unwrap().0, Response::Value(0));
}

#[test]
fn senders_sleep_on_a_full_queue_and_removal_wakes_everyone() {
    let _w = watchdog("msg", 60);
    let d = TestDaemon::start("msg-full");
    let id = new_queue(&d);
    let mut admin = d.raw();
    let set = MsgSetArg { perm: PermSet { uid: 0, gid: 0, mode: 0o600 }, qbytes: 4 };
    assert!(matches!(admin.call(&Request::MsgCtl { id, cmd: 1, set: Some(set) }), Response::MsgCtl { .. }));
    assert_eq!(admin.call(&snd(id, 1, b"full", 0)), Response::Value(0));
    assert_eq!(admin.call(&snd(id, 1, b"x", IPC_NOWAIT)), Response::Error(Errno::EAGAIN.raw()));
    let mut s1 = d.raw();
    let mut s2 = d.raw();
    s1.send(&snd(id, 2, b"ab", 0));
    // s1 sleeps first (the daemon reads connections in no fixed order).
    while admin.call(&Request::Waiters) != Response::Pids(vec![std::process::id()]) {
        std::thread::yield_now();
    }
    s2.send(&snd(id, 3, b"cdef", 0));
    while admin.call(&Request::Waiters) != Response::Pids(vec![std::process::id(); 2]) {
        std::thread::yield_now();
    }
    // The receive makes room for s1 (2 bytes); s2 (4) no longer fits after it.
    assert_eq!(admin.call(&rcv(id, 64, 0, 0)), Response::Msg { mtype: 1, data: b"full".to_vec() });
    assert_eq!(s1.recv().unwrap().0, Response::Value(0));
    assert_eq!(admin.call(&Request::Waiters), Response::Pids(vec![std::process::id()]));
    let mut r = d.raw();
    assert_eq!(r.call(&rcv(id, 64, 0, 0)), Response::Msg { mtype: 2, data: b"ab".to_vec() });
    assert_eq!(s2.recv().unwrap().0, Response::Value(0));
    // Now a receiver and a sender sleep; IPC_RMID wakes both with EIDRM.
    assert_eq!(r.call(&rcv(id, 64, 0, 0)), Response::Msg { mtype: 3, data: b"cdef".to_vec() });
    let set = MsgSetArg { perm: PermSet { uid: 0, gid: 0, mode: 0o600 }, qbytes: 0 };
    assert!(matches!(admin.call(&Request::MsgCtl { id, cmd: 1, set: Some(set) }), Response::MsgCtl { .. }));
    r.send(&rcv(id, 64, 0, 0));
    while admin.call(&Request::Waiters) != Response::Pids(vec![std::process::id()]) {
        std::thread::yield_now();
    }
    s1.send(&snd(id, 1, b"", 0));
    while admin.call(&Request::Waiters) != Response::Pids(vec![std::process::id(); 2]) {
        std::thread::yield_now();
    }
    assert!(matches!(admin.call(&Request::MsgCtl { id, cmd: IPC_RMID, set: None }), Response::MsgCtl { .. }));
    assert_eq!(r.recv().unwrap().0, Response::Error(Errno::EIDRM.raw()));
    assert_eq!(s1.recv().unwrap().0, Response::Error(Errno::EIDRM.raw()));
}

#[test]
fn bad_message_requests_get_errors_not_crashes() {
    let _w = watchdog("msg", 60);
    let d = TestDaemon::start("msg-bad");
    let id = new_queue(&d);
    let mut c = d.raw();
    let huge = Request::MsgSnd { id, mtype: Some(1), msgsz: i64::MAX, text: None, flags: 0 };
    assert_eq!(c.call(&huge), Response::Error(Errno::EINVAL.raw()));
    let lying = Request::MsgSnd { id, mtype: Some(1), msgsz: 10, text: Some(vec![1, 2]), flags: 0 };
    assert_eq!(c.call(&lying), Response::Error(Errno::EFAULT.raw()));
    assert_eq!(c.call(&rcv(id, i64::MIN, i64::MIN, -1)), Response::Error(Errno::EINVAL.raw()));
    assert_eq!(c.call(&rcv(id, 8, i64::MIN, IPC_NOWAIT)), Response::Error(Errno::ENOMSG.raw()));
    assert_eq!(c.call(&Request::MsgCtl { id, cmd: 1, set: None }), Response::Error(Errno::EFAULT.raw()));
    assert_eq!(c.call(&Request::MsgCtl { id: -1, cmd: 99, set: None }), Response::Error(Errno::EINVAL.raw()));
    // The client API agrees.
    let client = d.client();
    let q = client.msgget(0, 0o600).unwrap();
    client.msgsnd(q, 5, b"hello", 0).unwrap();
    let m = client.msgrcv(q, 3, 0, uipc_abi::MSG_NOERROR).unwrap();
    assert_eq!((m.mtype, m.data), (5, b"hel".to_vec()));
    assert_eq!(client.msg_stat(q).unwrap().msg_qnum, 0);
    client.msg_remove(q).unwrap();
    assert_eq!(client.msg_stat(q), Err(Errno::EINVAL));
}
