//! A timed semop on an otherwise idle daemon: the timer alone must answer
//! it (regression: replies produced by timer expiry were only sent when some
//! other event woke the loop, so the caller slept forever).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{watchdog, TestDaemon};
use uipc_abi::{Errno, Sembuf};

#[test]
fn a_timed_semop_times_out_on_an_idle_daemon() {
    let _w = watchdog("timed_semop", 60);
    let d = TestDaemon::start("timeout");
    let c = d.client();
    let id = c.semget(0, 1, 0o600).unwrap();
    let take = [Sembuf { sem_num: 0, sem_op: -1, sem_flg: 0 }];
    // SEM-WAIT-5: a timeout that expires → EAGAIN, nothing applied.
    assert_eq!(c.semtimedop(id, &take, Duration::from_millis(1)), Err(Errno::EAGAIN));
    assert_eq!(c.semtimedop(id, &take, Duration::ZERO), Err(Errno::EAGAIN));
    assert_eq!(c.sem_getval(id, 0), Ok(0));
    assert_eq!(c.waiters(), Ok(vec![]));
    // Posted first, the same call completes at once.
    c.sem_setval(id, 0, 1).unwrap();
    assert_eq!(c.semtimedop(id, &take, Duration::from_secs(30)), Ok(()));
    c.sem_remove(id).unwrap();
}
