//! Queries answered without a round trip (`docs/architecture.md`, "Queries
//! without a round trip"): after the first, a client answers them from the
//! namespace's status region — no request leaves the process
//! (`uipc_client::requests_sent`) — and every answer is the daemon's own
//! (asked through a raw connection, which the count does not see).
//!
//! One test per file: the request count is the whole process's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use uipc_client::requests_sent;
use uipc_proto::{CtlOut, Request, Response};

/// The daemon's answer to `shmctl(0, IPC_INFO)`, through a raw connection.
fn daemon_shm_info(raw: &mut Raw) -> (i64, CtlOut) {
    match raw.call(&Request::ShmCtl { id: 0, cmd: uipc_abi::IPC_INFO, set: None }) {
        Response::Ctl { ret, out } => (ret, out),
        r => panic!("IPC_INFO: {r:?}"),
    }
}

#[test]
fn info_queries_are_answered_from_the_status_region() {
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
