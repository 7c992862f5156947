//! SPEC 2.6, `kernel.shm_rmid_forced`. The section's bullets carry no
//! identifiers; these tests use `SHM-FORCED/a`, `/b`, `/c` for its (a), (b),
//! (c) and SHM-AT-10 covers the failed-attach case.
//!
//! Not covered: the per-thread creator link (a segment orphaned when the
//! creating *thread* exits while its process lives on) — the kit has no
//! threads; and `unshare(CLONE_NEWIPC)` as a cleanup trigger — the kit has
//! no unshare.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_PRIVATE};

const PAGE: u64 = 4096;

/// (a) With the knob at 1, nattch reaching 0 destroys the segment, even
/// without IPC_RMID and with its creator alive; a never-attached segment of
/// a live creator survives.
#[test]
fn shm_forced_a_detach() {
    uipc_testkit::conformance!("SHM-FORCED/a", |s| {
        let p = s.root();
        s.sysctl_set("kernel.shm_rmid_forced", "1").unwrap();
        let a = s.shmget(p, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let kept = s.shmget(p, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let b = s.shmget(p, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let at = s.shmat(p, a, 0, 0).unwrap();
        assert_eq!(s.shmdt(p, at), Ok(()));
        assert_eq!(s.shm_stat(p, a).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(p, kept).unwrap().nattch, 0);
        // Last detach by exit.
        let bt = s.shmat(p, b, 0, 0).unwrap();
        let c = s.fork(p);
        assert_eq!(s.shmdt(p, bt), Ok(()));
        assert_eq!(s.shm_stat(p, b).unwrap().nattch, 1);
        s.exit(c);
        assert_eq!(s.shm_stat(p, b).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shm_info(p, 0).unwrap().1.used_ids, 1);
    });
}

/// (b) With the knob at 1, a process's exit destroys the segments it created
/// that have nattch 0; attached ones survive until their last detach. With
/// the knob at 0 nothing happens at exit.
#[test]
fn shm_forced_b_creator_exit() {
    uipc_testkit::conformance!("SHM-FORCED/b", |s| {
        let p = s.root();
        let q0 = s.root();
        let kept = s.shmget(q0, IPC_PRIVATE, PAGE, 0o600).unwrap();
        s.exit(q0);
        assert_eq!(s.shm_stat(p, kept).unwrap().nattch, 0);
        s.sysctl_set("kernel.shm_rmid_forced", "1").unwrap();
        let q = s.root();
        let idle = s.shmget(q, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let used = s.shmget(q, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let at = s.shmat(p, used, 0, 0).unwrap();
        s.exit(q);
        assert_eq!(s.shm_stat(p, idle).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(p, used).unwrap().nattch, 1);
        assert_eq!(s.shmdt(p, at), Ok(()));
        assert_eq!(s.shm_stat(p, used).map(drop), Err(Errno::EINVAL));
    });
}

/// (c) Writing 1 destroys at once every segment with nattch 0 whose creator
/// has exited; segments of live creators and attached ones survive.
#[test]
fn shm_forced_c_switch_on() {
    uipc_testkit::conformance!("SHM-FORCED/c", |s| {
        let p = s.root();
        let q = s.root();
        let orphan = s.shmget(q, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let attached = s.shmget(q, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let live = s.shmget(p, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let at = s.shmat(p, attached, 0, 0).unwrap();
        s.exit(q);
        assert_eq!(s.shm_info(p, 0).unwrap().1.used_ids, 3);
        s.sysctl_set("kernel.shm_rmid_forced", "1").unwrap();
        assert_eq!(s.shm_stat(p, orphan).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(p, attached).unwrap().nattch, 1);
        assert_eq!(s.shm_stat(p, live).unwrap().nattch, 0);
        assert_eq!(s.shmdt(p, at), Ok(()));
        assert_eq!(s.shm_stat(p, attached).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(p, live).unwrap().nattch, 0);
        // Switching off and on again: `live`'s creator is still alive.
        s.sysctl_set("kernel.shm_rmid_forced", "0").unwrap();
        s.sysctl_set("kernel.shm_rmid_forced", "1").unwrap();
        assert_eq!(s.shm_stat(p, live).unwrap().nattch, 0);
    });
}
