//! COM-CTL-1..4 (SPEC 1.5), COM-PID-1 and COM-TIME-1 (SPEC 1.6), through
//! `shmctl`.
//!
//! Not covered: COM-CTL-5 (a stat racing with IPC_RMID gives EIDRM) needs two
//! calls in flight at once, which the kit's one-call-at-a-time sessions
//! cannot produce.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_64, IPC_CREAT, IPC_INFO, IPC_PRIVATE, IPC_RMID, IPC_STAT, SHM_INFO, SHM_STAT, SHM_STAT_ANY};

/// `id < 0` and `cmd < 0` are EINVAL first, for every command; unknown
/// commands (IPC_64 or-ed in included, on x86_64) are EINVAL.
#[test]
fn com_ctl_1_bad_id_and_cmd() {
    uipc_testkit::conformance!("COM-CTL-1", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 4096, 0o600).unwrap();
        assert_eq!(s.shmctl(r, -1, IPC_RMID), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_stat(r, -1, IPC_STAT).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_stat(r, -1, SHM_STAT_ANY).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shm_ipc_info(r, -1).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shm_info(r, -1).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shmctl(r, i32::MIN, IPC_INFO), Err(Errno::EINVAL));
        assert_eq!(s.shmctl(r, id, -1), Err(Errno::EINVAL));
        assert_eq!(s.shmctl(r, id, i32::MIN), Err(Errno::EINVAL));
        for cmd in [4, 5, 10, 16, 99, IPC_64, IPC_RMID | IPC_64, IPC_INFO | IPC_64] {
            assert_eq!(s.shmctl(r, id, cmd), Err(Errno::EINVAL), "cmd {cmd:#x}");
        }
        assert_eq!(s.shmctl_stat(r, id, IPC_STAT | IPC_64).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_stat(r, id, SHM_STAT | IPC_64).map(drop), Err(Errno::EINVAL));
        // Nothing was removed.
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
    });
}

/// IPC_STAT takes an id (seq checked) and returns 0; SHM_STAT and
/// SHM_STAT_ANY take an index (masked, seq ignored) and return the full id.
#[test]
fn com_ctl_2_stat_by_index() {
    uipc_testkit::conformance!("COM-CTL-2", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        s.sysctl_set("kernel.shm_next_id", &((2 << 15) | 3).to_string()).unwrap();
        let id = s.shmget(r, IPC_PRIVATE, 4096, 0o600).unwrap();
        assert_eq!(id, 65539);
        let full = i64::from(id);
        assert_eq!(s.shmctl_stat(r, id, IPC_STAT).unwrap().0, 0);
        assert_eq!(s.shmctl_stat(r, 3, SHM_STAT).unwrap().0, full);
        assert_eq!(s.shmctl_stat(r, id, SHM_STAT).unwrap().0, full);
        assert_eq!(s.shmctl_stat(r, 3 + (7 << 15), SHM_STAT).unwrap().0, full);
        assert_eq!(s.shmctl_stat(r, 3, SHM_STAT_ANY).unwrap().0, full);
        assert_eq!(s.shmctl_stat(r, 3, IPC_STAT).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_stat(r, 4, SHM_STAT).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_stat(r, 0, SHM_STAT_ANY).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_stat(u, 3, SHM_STAT).map(drop), Err(Errno::EACCES));
        assert_eq!(s.shmctl_stat(u, id, IPC_STAT).map(drop), Err(Errno::EACCES));
        let (ret, ds) = s.shmctl_stat(u, 3, SHM_STAT_ANY).unwrap();
        assert_eq!((ret, ds.segsz, ds.mode), (full, 4096, 0o600));
    });
}

/// IPC_INFO and SHM_INFO ignore the id (≥ 0) and return the highest index
/// in use, 0 when none.
#[test]
fn com_ctl_3_info_highest_index() {
    uipc_testkit::conformance!("COM-CTL-3", |s| {
        let r = s.root();
        assert_eq!(s.shm_ipc_info(r, 0).unwrap().0, 0);
        assert_eq!(s.shm_info(r, 0).unwrap().0, 0);
        for want in 0..6 {
            assert_eq!(s.shmget(r, IPC_PRIVATE, 1, 0o600), Ok(want));
        }
        assert_eq!(s.shmctl(r, 0, IPC_RMID), Ok(0));
        assert_eq!(s.shmctl(r, 1, IPC_RMID), Ok(0));
        assert_eq!(s.shm_ipc_info(r, 0).unwrap().0, 5);
        assert_eq!(s.shm_ipc_info(r, 12345).unwrap().0, 5);
        let (ret, info) = s.shm_info(r, 77).unwrap();
        assert_eq!((ret, info.used_ids, info.shm_tot), (5, 4, 4));
        assert_eq!(s.shmctl(r, 5, IPC_RMID), Ok(0));
        assert_eq!(s.shm_info(r, 0).unwrap().0, 4);
        for id in 2..5 {
            assert_eq!(s.shmctl(r, id, IPC_RMID), Ok(0));
        }
        assert_eq!(s.shm_ipc_info(r, 0).unwrap().0, 0);
        assert_eq!(s.shm_info(r, 0).unwrap().1.used_ids, 0);
    });
}

/// A bad output pointer is EFAULT, after the lookup and permission check.
#[test]
fn com_ctl_4_efault() {
    uipc_testkit::conformance!("COM-CTL-4", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(r, IPC_PRIVATE, 4096, 0o600).unwrap();
        for cmd in [IPC_STAT, SHM_STAT, SHM_STAT_ANY, IPC_INFO, SHM_INFO] {
            assert_eq!(s.shmctl_fault(r, id, cmd), Err(Errno::EFAULT), "cmd {cmd}");
        }
        assert_eq!(s.shmctl(r, id, IPC_STAT), Err(Errno::EFAULT));
        assert_eq!(s.shmctl(r, id, IPC_INFO), Err(Errno::EFAULT));
        assert_eq!(s.shmctl_fault(r, 999, IPC_STAT), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_fault(r, 999, SHM_STAT), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_fault(u, id, IPC_STAT), Err(Errno::EACCES));
        assert_eq!(s.shmctl_fault(u, id, SHM_STAT_ANY), Err(Errno::EFAULT));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
    });
}

/// cpid and lpid keep naming processes that have exited.
#[test]
fn com_pid_1_dead_pids() {
    uipc_testkit::conformance!("COM-PID-1", |s| {
        let r = s.root();
        let creator = s.root();
        let id = s.shmget(creator, 0x91d, 4096, IPC_CREAT | 0o600).unwrap();
        s.exit(creator);
        let child = s.fork(r);
        let a = s.shmat(child, id, 0, 0).unwrap();
        let _ = a;
        s.exit(child);
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!(ds.cpid, i32::try_from(s.pid(creator)).unwrap());
        assert_eq!(ds.lpid, i32::try_from(s.pid(child)).unwrap());
        assert_eq!(ds.nattch, 0);
    });
}

/// Times are seconds, 0 until first set.
#[test]
fn com_time_1_never_then_now() {
    uipc_testkit::conformance!("COM-TIME-1", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 4096, 0o600).unwrap();
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.atime, ds.dtime), (0, 0));
        assert_ne!(ds.ctime, 0);
        let a = s.shmat(r, id, 0, 0).unwrap();
        let ds = s.shm_stat(r, id).unwrap();
        assert_ne!(ds.atime, 0);
        assert_eq!(ds.dtime, 0);
        assert_eq!(s.shmdt(r, a), Ok(()));
        let ds = s.shm_stat(r, id).unwrap();
        assert!(ds.atime != 0 && ds.dtime != 0 && ds.ctime != 0);
    });
}
