//! Attach and detach without a round trip (`docs/architecture.md`,
//! "Attach and detach without a round trip"): a client that holds a
//! segment's memory and its attach page attaches and detaches without a
//! request (`uipc_client::requests_sent`), a create/attach/detach/remove
//! cycle costs two, and every `IPC_STAT` — the client's own and the
//! daemon's, asked through a raw connection the count does not see —
//! shows the attachments made in the caller. A holder that scribbles over
//! the page damages that segment's page only: the daemon keeps serving it
//! (from the model) and every other segment.
//!
//! The request count is the whole process's: the tests take turns (`ONE`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use uipc_abi::{Shmid64Ds, IPC_CREAT, IPC_PRIVATE, IPC_RMID, IPC_STAT};
use uipc_client::requests_sent;
use uipc_proto::{CtlOut, Request, Response};

static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The daemon's `IPC_STAT` of `id`, through a raw connection.
fn daemon_stat(raw: &mut Raw, id: i32) -> Result<Shmid64Ds, i32> {
    match raw.call(&Request::ShmCtl { id, cmd: IPC_STAT, set: None }) {
        Response::Ctl { out: CtlOut::ShmDs(ds), .. } => Ok(ds),
        Response::Error(e) => Err(e),
        r => panic!("IPC_STAT: {r:?}"),
    }
}

/// What attaches change: `(nattch, lpid, atime, dtime)`.
fn attach_fields(ds: &Shmid64Ds) -> (u64, i32, i64, i64) {
    (ds.shm_nattch, ds.shm_lpid, ds.shm_atime, ds.shm_dtime)
}

#[test]
fn attach_and_detach_send_no_request_and_the_lifecycle_two() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let _w = watchdog("attach", 60);
    let d = TestDaemon::start("attach");
    let client = d.client();
    let mut raw = d.raw();
    let me = i32::try_from(std::process::id()).unwrap();

    // The lifecycle: shmget (creating: memory and page) and IPC_RMID.
    for _ in 0..3 {
        let before = requests_sent();
        let id = client.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap().0;
        let at = client.shmat(id, 0, 0).unwrap();
        client.shmdt(at).unwrap();
        client.shmctl(id, IPC_RMID, None).unwrap();
        assert_eq!(requests_sent() - before, 2, "create, attach, detach, remove");
        assert_eq!(daemon_stat(&mut raw, id), Err(uipc_abi::Errno::EINVAL.raw()));
    }

    // Re-attaches and detaches: no request; every answer the daemon's.
    let id = client.shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0o600).unwrap().0;
    let mut held = Vec::new();
    // The first IPC_STAT asks the daemon (the read grant), later ones not.
    client.shmctl(id, IPC_STAT, None).unwrap();
    let before = requests_sent();
    for round in 0..50 {
        held.push(client.shmat(id, 0, 0).unwrap());
        if round % 3 == 2 {
            client.shmdt(held.remove(0)).unwrap();
        }
        let (_, out) = client.shmctl(id, IPC_STAT, None).unwrap();
        let CtlOut::ShmDs(mine) = out else { panic!("{out:?}") };
        let theirs = daemon_stat(&mut raw, id).unwrap();
        assert_eq!(attach_fields(&mine), attach_fields(&theirs), "round {round}");
        assert_eq!(mine.shm_nattch, u64::try_from(held.len()).unwrap());
        assert_eq!(mine.shm_lpid, me);
        assert!(mine.shm_atime > 0);
    }
    assert_eq!(requests_sent(), before, "attaches, detaches and IPC_STAT went to the daemon");
    for at in held.drain(..) {
        client.shmdt(at).unwrap();
    }
    assert_eq!(requests_sent(), before);
    let theirs = daemon_stat(&mut raw, id).unwrap();
    assert_eq!(theirs.shm_nattch, 0);
    assert!(theirs.shm_dtime > 0);

    // Removed while attached: the last detach goes to the daemon, which
    // destroys the segment at once.
    let a = client.shmat(id, 0, 0).unwrap();
    client.shmctl(id, IPC_RMID, None).unwrap();
    assert_eq!(daemon_stat(&mut raw, id).unwrap().shm_nattch, 1);
    client.shmdt(a).unwrap();
    assert_eq!(daemon_stat(&mut raw, id), Err(uipc_abi::Errno::EINVAL.raw()));
}

#[test]
fn a_scribbled_attach_page_damages_only_its_segment() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let _w = watchdog("attach scribble", 60);
    let d = TestDaemon::start("attach-scribble");
    let mut raw = d.raw();
    let client = d.client();
    let other = client.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap().0;
    let other_at = client.shmat(other, 0, 0).unwrap();

    raw.send(&Request::ShmGetGrant { key: IPC_PRIVATE, size: 4096, flags: IPC_CREAT | 0o600 });
    let (resp, fds) = raw.recv().expect("daemon closed the connection");
    let Response::ShmGranted { value, .. } = resp else { panic!("{resp:?}") };
    assert_eq!(fds.len(), 2, "the memory and the attach page");
    let id = i32::try_from(value).unwrap();
    let page = std::fs::File::from(fds.into_iter().nth(1).unwrap());
    let before = daemon_stat(&mut raw, id).unwrap();
    // Garbage over the body (past the 128-byte header): counts in slots
    // nobody owns, a daemon count that is not the daemon's.
    page.write_all_at(&[0xa5; 2048], 128).unwrap();
    // The segment is still served, from the model.
    let after = daemon_stat(&mut raw, id).unwrap();
    assert_eq!(attach_fields(&before), attach_fields(&after));
    match raw.call(&Request::ShmCtl { id, cmd: IPC_RMID, set: None }) {
        Response::Ctl { .. } => {}
        r => panic!("IPC_RMID of the damaged segment: {r:?}"),
    }
    // Every other segment as before, its attaches in the caller still.
    let n = requests_sent();
    let at = client.shmat(other, 0, 0).unwrap();
    client.shmdt(at).unwrap();
    assert_eq!(requests_sent(), n);
    assert_eq!(daemon_stat(&mut raw, other).unwrap().shm_nattch, 1);
    client.shmdt(other_at).unwrap();
    client.shmctl(other, IPC_RMID, None).unwrap();
}
