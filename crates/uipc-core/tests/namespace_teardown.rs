//! `IpcNamespace::free_ipcs()`: a namespace's teardown removes every set
//! (its sleepers get EIDRM) and every segment (its memory goes with the
//! last reference), as `ipc/namespace.c:free_ipcs()` does.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, Sembuf};
use uipc_core::cred::{CapSet, Cred, Gid, Pid, Uid};
use uipc_core::wait::Outcome;
use uipc_core::{HeapMemory, IpcNamespace, Time};

fn root(pid: u32) -> Cred {
    Cred {
        pid: Pid(pid),
        euid: Uid(0),
        egid: Gid(0),
        groups: vec![],
        caps: CapSet(u64::MAX),
        memlock_limit: 0,
        posix: uipc_core::PosixIds::from_effective(Uid(0), Gid(0)),
    }
}

#[test]
fn teardown_wakes_every_sleeper_with_eidrm_and_empties_the_namespace() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let t = Time(1);
    let a = ns.semget(&root(1), t, 0, 2, 0o1600).unwrap();
    let b = ns.semget(&root(1), t, 0x77, 1, 0o1600).unwrap();
    ns.shmget(&root(1), t, 0x77, 1 << 16, 0o1600).unwrap();
    let down = |n| [Sembuf { sem_num: n, sem_op: -1, sem_flg: 0 }];
    let mut sleepers = Vec::new();
    for (pid, id, n) in [(2, a.0, 0), (3, a.0, 1), (4, b.0, 0)] {
        match ns.semtimedop(&root(pid), t, id, 1, Some(&down(n)), None).unwrap() {
            Outcome::Blocked(w) => sleepers.push(w),
            Outcome::Done(v) => panic!("a decrement of 0 completed: {v}"),
        }
    }
    let before = ns.object_counts();
    assert_eq!((before.shm, before.sem, before.shm_bytes), (1, 2, 1 << 16));
    ns.free_ipcs();
    let mut woken: Vec<_> = ns.take_wakeups().into_iter().map(|w| (w.waiter, w.result)).collect();
    woken.sort();
    let want: Vec<_> = sleepers.iter().map(|w| (*w, Err(Errno::EIDRM))).collect();
    assert_eq!(woken, want);
    let after = ns.object_counts();
    assert_eq!((after.shm, after.sem, after.shm_bytes), (0, 0, 0));
    // The keys are free again, and the ids start from scratch.
    assert_eq!(ns.semget(&root(1), t, 0x77, 0, 0).err(), Some(Errno::ENOENT));
    assert_eq!(ns.shmget(&root(1), t, 0x77, 0, 0).err(), Some(Errno::ENOENT));
}
