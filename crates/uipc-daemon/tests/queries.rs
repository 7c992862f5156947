//! Queries answered without a round trip (`docs/architecture.md`, "Queries
//! without a round trip"): after the first, a client answers them from the
//! namespace's status region — no request leaves the process
//! (`uipc_client::requests_sent`) — and every answer is the daemon's own
//! (asked through a raw connection, which the count does not see).
//!
//! The request count is the whole process's: the tests take turns (`ONE`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use uipc_client::requests_sent;
use uipc_proto::{CtlOut, Request, Response, SemCtlArg, SemOut};

/// The daemon's answer to `shmctl(0, IPC_INFO)`, through a raw connection.
fn daemon_shm_info(raw: &mut Raw) -> (i64, CtlOut) {
    match raw.call(&Request::ShmCtl { id: 0, cmd: uipc_abi::IPC_INFO, set: None }) {
        Response::Ctl { ret, out } => (ret, out),
        r => panic!("IPC_INFO: {r:?}"),
    }
}

/// Held by each test: the request count is the process's.
static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn info_queries_are_answered_from_the_status_region() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let _w = watchdog("queries", 60);
    let d = TestDaemon::start("queries");
    let client = d.client();
    let mut raw = d.raw();

    // shmctl(IPC_INFO): the first call fetches the region, later ones read it.
    let (ret, info) = client.shm_ipc_info().unwrap();
    let before = requests_sent();
    for round in 0..3 {
        for _ in 0..100 {
            let (r, i) = client.shm_ipc_info().unwrap();
            assert_eq!(CtlOut::Shminfo(i), daemon_shm_info(&mut raw).1);
            assert_eq!(r, daemon_shm_info(&mut raw).0);
        }
        assert_eq!(requests_sent(), before, "round {round}: IPC_INFO went to the daemon");
        // Changes made by another connection show at once.
        match round {
            0 => {
                raw.shmget_created(&Request::ShmGet { key: 0, size: 4096, flags: 0o1600 });
                raw.shmget_created(&Request::ShmGet { key: 0, size: 4096, flags: 0o1600 });
            }
            1 => {
                let r = raw.call(&Request::SysctlWrite { name: "kernel.shmmax".into(), value: "123456".into() });
                assert!(matches!(r, Response::Value(_)), "sysctl write: {r:?}");
            }
            _ => {}
        }
    }
    let (ret2, info2) = client.shm_ipc_info().unwrap();
    assert_eq!((ret, ret2), (0, 1), "the highest index in use");
    assert_ne!(info.shmmax, info2.shmmax);
    assert_eq!(info2.shmmax, 123_456);
}

/// The daemon's answer to `semctl(id, 0, cmd)`, through a raw connection.
fn daemon_semctl(raw: &mut Raw, id: i32, cmd: i32) -> Result<(i64, SemOut), i32> {
    match raw.call(&Request::SemCtl { id, semnum: 0, cmd, arg: SemCtlArg::None }) {
        Response::SemCtl { ret, out } => Ok((ret, out)),
        Response::Error(e) => Err(e),
        r => panic!("semctl: {r:?}"),
    }
}

fn raw_semget(raw: &mut Raw, nsems: i32) -> i32 {
    match raw.call(&Request::SemGet { key: 0, nsems, flags: 0o1600 }) {
        Response::Value(v) => i32::try_from(v).unwrap(),
        r => panic!("semget: {r:?}"),
    }
}

/// Asks `client` for `semctl(id, 0, cmd)` `n` times, each answer equal to
/// the daemon's; returns how many requests the client sent meanwhile.
fn sem_asks(client: &uipc_client::Client, raw: &mut Raw, id: i32, cmd: i32, n: usize) -> u64 {
    let before = requests_sent();
    for _ in 0..n {
        let ours = client.semctl(id, 0, cmd, SemCtlArg::None).map_err(|e| e.raw());
        let sent = requests_sent();
        assert_eq!(ours, daemon_semctl(raw, id, cmd), "semctl({id}, {cmd})");
        assert_eq!(requests_sent(), sent);
    }
    requests_sent() - before
}

#[test]
fn semaphore_queries_are_answered_from_the_status_region() {
    use uipc_abi::{IPC_INFO, IPC_STAT, SEM_INFO, SEM_STAT, SEM_STAT_ANY};
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let _w = watchdog("sem queries", 60);
    let d = TestDaemon::start("semq");
    let client = d.client();
    let mut raw = d.raw();
    let a = raw_semget(&mut raw, 3);
    let b = raw_semget(&mut raw, 2);

    // *_INFO: the header, after one request for the region.
    for cmd in [IPC_INFO, SEM_INFO] {
        sem_asks(&client, &mut raw, 0, cmd, 1);
        assert_eq!(sem_asks(&client, &mut raw, 0, cmd, 50), 0, "cmd {cmd}");
    }
    // *_STAT: the first asks (the read grant), the rest read the entry.
    for (id, cmd) in [(a, IPC_STAT), (a & 0x7fff, SEM_STAT), (b & 0x7fff, SEM_STAT_ANY), (b, IPC_STAT)] {
        sem_asks(&client, &mut raw, id, cmd, 1);
        assert_eq!(sem_asks(&client, &mut raw, id, cmd, 50), 0, "semctl({id}, {cmd})");
    }
    // Changes by another connection show at once: a semop (sem_otime),
    // IPC_SET (ctime, mode: the grant is renewed once), a new set, a removal.
    raw.call(&Request::SemOp { id: a, nsops: 1, sops: Some(vec![(0, 1, 0)]), timeout: None });
    assert_eq!(sem_asks(&client, &mut raw, a & 0x7fff, SEM_STAT, 20), 0);
    let set = uipc_proto::PermSet { uid: 0, gid: 0, mode: 0o644 };
    raw.call(&Request::SemCtl { id: a, semnum: 0, cmd: uipc_abi::IPC_SET, arg: SemCtlArg::Set(set) });
    assert_eq!(sem_asks(&client, &mut raw, a & 0x7fff, SEM_STAT, 20), 1, "IPC_SET renews the grant");
    assert_eq!(sem_asks(&client, &mut raw, a & 0x7fff, SEM_STAT_ANY, 20), 0);
    let c = raw_semget(&mut raw, 7);
    assert_eq!(sem_asks(&client, &mut raw, 0, SEM_INFO, 20), 0);
    assert_eq!(sem_asks(&client, &mut raw, c & 0x7fff, SEM_STAT_ANY, 20), 0);
    raw.call(&Request::SemCtl { id: b, semnum: 0, cmd: uipc_abi::IPC_RMID, arg: SemCtlArg::None });
    // A vacant slot is the daemon's EINVAL, every time.
    assert_eq!(sem_asks(&client, &mut raw, b & 0x7fff, SEM_STAT_ANY, 5), 5);
    assert_eq!(sem_asks(&client, &mut raw, 0, SEM_INFO, 20), 0);

    // A set another process may change in its page (a writable grant):
    // the entry's sem_otime may be stale, so the client answers from the
    // page, which it asks for once.
    raw.send(&Request::SemGrant { id: c });
    match raw.recv() {
        Some((Response::SemGrant { alter: true, .. }, fds)) => assert_eq!(fds.len(), 1),
        r => panic!("grant: {r:?}"),
    }
    assert_eq!(sem_asks(&client, &mut raw, c & 0x7fff, SEM_STAT_ANY, 1), 1);
    assert_eq!(sem_asks(&client, &mut raw, c & 0x7fff, SEM_STAT_ANY, 20), 0);
    // Its own fast-path semop moves sem_otime in the page: seen at once.
    client.semop(uipc_client::SemId(c), &[uipc_client::Sembuf { sem_num: 0, sem_op: 1, sem_flg: 0 }]).unwrap();
    sem_asks(&client, &mut raw, c & 0x7fff, SEM_STAT, 1);
    assert_eq!(sem_asks(&client, &mut raw, c & 0x7fff, SEM_STAT, 20), 0);
    assert_eq!(sem_asks(&client, &mut raw, c, IPC_STAT, 20), 0);
}

/// The daemon's answer to `msgctl(id, cmd)`, through a raw connection.
fn daemon_msgctl(raw: &mut Raw, id: i32, cmd: i32) -> Result<(i64, uipc_proto::MsgOut), i32> {
    match raw.call(&Request::MsgCtl { id, cmd, set: None }) {
        Response::MsgCtl { ret, out } => Ok((ret, out)),
        Response::Error(e) => Err(e),
        r => panic!("msgctl: {r:?}"),
    }
}

/// As [`sem_asks`], for `msgctl(id, cmd)`.
fn msg_asks(client: &uipc_client::Client, raw: &mut Raw, id: i32, cmd: i32, n: usize) -> u64 {
    let before = requests_sent();
    for _ in 0..n {
        let ours = client.msgctl(id, cmd, None).map_err(|e| e.raw());
        let sent = requests_sent();
        assert_eq!(ours, daemon_msgctl(raw, id, cmd), "msgctl({id}, {cmd})");
        assert_eq!(requests_sent(), sent);
    }
    requests_sent() - before
}

#[test]
fn message_queue_queries_are_answered_from_the_status_region() {
    use uipc_abi::{IPC_INFO, IPC_STAT, MSG_INFO, MSG_STAT, MSG_STAT_ANY};
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let _w = watchdog("msg queries", 60);
    let d = TestDaemon::start("msgq");
    let client = d.client();
    let mut raw = d.raw();
    let msgget = |raw: &mut Raw| match raw.call(&Request::MsgGet { key: 0, flags: 0o1600 }) {
        Response::Value(v) => i32::try_from(v).unwrap(),
        r => panic!("msgget: {r:?}"),
    };
    let a = msgget(&mut raw);
    let b = msgget(&mut raw);
    let send = |raw: &mut Raw, id: i32| {
        let r = raw.call(&Request::MsgSnd { id, mtype: Some(1), msgsz: 5, text: Some(b"hello".to_vec()), flags: 0 });
        assert!(matches!(r, Response::Value(0)), "msgsnd: {r:?}");
    };
    send(&mut raw, a);
    send(&mut raw, a);

    for cmd in [IPC_INFO, MSG_INFO] {
        msg_asks(&client, &mut raw, 0, cmd, 1);
        assert_eq!(msg_asks(&client, &mut raw, 0, cmd, 30), 0, "cmd {cmd}");
    }
    for (id, cmd) in [(a, IPC_STAT), (a & 0x7fff, MSG_STAT), (b & 0x7fff, MSG_STAT_ANY)] {
        msg_asks(&client, &mut raw, id, cmd, 1);
        assert_eq!(msg_asks(&client, &mut raw, id, cmd, 30), 0, "msgctl({id}, {cmd})");
    }
    // Sends by another connection (through the daemon) show at once.
    send(&mut raw, a);
    assert_eq!(msg_asks(&client, &mut raw, a & 0x7fff, MSG_STAT, 20), 0);
    assert_eq!(msg_asks(&client, &mut raw, 0, MSG_INFO, 20), 0);

    // A queue whose page another process may write (a grant): its
    // counts may be newer in the page, so the daemon answers, and
    // MSG_INFO's totals too; IPC_INFO and the other queue stay local.
    raw.send(&Request::MsgGrant { id: b });
    match raw.recv() {
        Some((Response::MsgGrant { .. }, fds)) => assert_eq!(fds.len(), 1),
        r => panic!("grant: {r:?}"),
    }
    assert_eq!(msg_asks(&client, &mut raw, b & 0x7fff, MSG_STAT_ANY, 5), 5);
    assert_eq!(msg_asks(&client, &mut raw, 0, MSG_INFO, 5), 5);
    assert_eq!(msg_asks(&client, &mut raw, 0, IPC_INFO, 5), 0);
    assert_eq!(msg_asks(&client, &mut raw, a & 0x7fff, MSG_STAT, 5), 0);
    // Removed: the live queue is forgotten, MSG_INFO is local again.
    raw.call(&Request::MsgCtl { id: b, cmd: uipc_abi::IPC_RMID, set: None });
    assert_eq!(msg_asks(&client, &mut raw, b & 0x7fff, MSG_STAT_ANY, 3), 3, "a vacant slot is the daemon's");
    assert_eq!(msg_asks(&client, &mut raw, 0, MSG_INFO, 20), 0);
}
