//! SHM-CTL-STAT, -SET, -RMID, -INFO, -LOCK (SPEC 2.4).
#![allow(clippy::unwrap_used)]

use uipc_abi::{
    Errno, IPC_CREAT, IPC_PRIVATE, IPC_RMID, IPC_STAT, SHM_DEST, SHM_LOCK, SHM_LOCKED, SHM_STAT, SHM_STAT_ANY,
    SHM_UNLOCK,
};
use uipc_testkit::op::cap;
use uipc_testkit::Identity;

const PAGE: u64 = 4096;
const K: i32 = 0xc71;
const SHMMAX_DEFAULT: u64 = 18_446_744_073_692_774_399;

/// IPC_STAT (id, returns 0) and SHM_STAT (index, returns the id) need read
/// permission, SHM_STAT_ANY none; a removed-but-attached segment shows key 0
/// and SHM_DEST.
#[test]
fn shm_ctl_stat() {
    uipc_testkit::conformance!("SHM-CTL-STAT", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let grp = s.user(1001, 1000);
        let stranger = s.user(1001, 1001);
        let id = s.shmget(u, K, 5000, IPC_CREAT | 0o640).unwrap();
        let (ret, ds) = s.shmctl_stat(r, id, IPC_STAT).unwrap();
        assert_eq!((ret, ds.key, ds.segsz, ds.mode), (0, K, 5000, 0o640));
        assert_eq!(s.shmctl_stat(grp, id, IPC_STAT).unwrap().0, 0);
        assert_eq!(s.shmctl_stat(grp, id, SHM_STAT).unwrap().0, i64::from(id));
        assert_eq!(s.shmctl_stat(stranger, id, IPC_STAT).map(drop), Err(Errno::EACCES));
        assert_eq!(s.shmctl_stat(stranger, id, SHM_STAT).map(drop), Err(Errno::EACCES));
        assert_eq!(s.shmctl_stat(stranger, id, SHM_STAT_ANY).unwrap().0, i64::from(id));
        let a = s.shmat(u, id, 0, 0).unwrap();
        assert_eq!(s.shmctl(u, id, IPC_RMID), Ok(0));
        let ds = s.shm_stat(u, id).unwrap();
        assert_eq!((ds.key, ds.mode, ds.nattch), (0, SHM_DEST | 0o640, 1));
        let (ret, ds) = s.shmctl_stat(stranger, id, SHM_STAT_ANY).unwrap();
        assert_eq!((ret, ds.key), (i64::from(id), 0));
        assert_eq!(s.shmdt(u, a), Ok(()));
    });
}

/// IPC_SET works on a SHM_DEST segment and keeps SHM_DEST and SHM_LOCKED.
#[test]
fn shm_ctl_set() {
    uipc_testkit::conformance!("SHM-CTL-SET", |s| {
        let r = s.root();
        let id = s.shmget(r, K, PAGE, IPC_CREAT | 0o600).unwrap();
        let a = s.shmat(r, id, 0, 0).unwrap();
        assert_eq!(s.shmctl(r, id, SHM_LOCK), Ok(0));
        assert_eq!(s.shmctl(r, id, IPC_RMID), Ok(0));
        assert_eq!(s.shmctl_set(r, id, 1000, 1000, 0o644), Ok(0));
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.uid, ds.gid, ds.mode), (1000, 1000, SHM_DEST | SHM_LOCKED | 0o644));
        assert_ne!(ds.ctime, 0);
        assert_eq!(s.shmdt(r, a), Ok(()));
        assert_eq!(s.shmctl_set(r, id, 1000, 1000, 0o644), Err(Errno::EINVAL));
    });
}

/// IPC_RMID with attachments: SHM_DEST, key 0 (the key is free), the id
/// stays usable (stat, set, attach, repeated RMID) until the last detach;
/// without attachments: destroyed at once.
#[test]
fn shm_ctl_rmid() {
    uipc_testkit::conformance!("SHM-CTL-RMID", |s| {
        let r = s.root();
        let id = s.shmget(r, K, PAGE, IPC_CREAT | 0o600).unwrap();
        let a = s.shmat(r, id, 0, 0).unwrap();
        assert_eq!(s.write(r, a, b"x"), Ok(()));
        assert_eq!(s.shmctl(r, id, IPC_RMID), Ok(0));
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.key, ds.mode, ds.nattch), (0, SHM_DEST | 0o600, 1));
        assert_eq!(s.shmget(r, K, 0, 0), Err(Errno::ENOENT));
        let id2 = s.shmget(r, K, PAGE, IPC_CREAT | 0o600).unwrap();
        assert_ne!(id, id2);
        let b = s.shmat(r, id, 0, 0).unwrap();
        assert_eq!(s.read(r, b, 1).unwrap(), b"x");
        assert_eq!(s.shmctl_set(r, id, 0, 0, 0o640), Ok(0));
        assert_eq!(s.shmctl(r, id, IPC_RMID), Ok(0));
        assert_eq!(s.shm_info(r, 0).unwrap().1.used_ids, 2);
        assert_eq!(s.shmdt(r, a), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 1);
        assert_eq!(s.shmdt(r, b), Ok(()));
        assert_eq!(s.shm_stat(r, id).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shmat(r, id, 0, 0), Err(Errno::EINVAL));
        assert_eq!(s.shmctl(r, id, IPC_RMID), Err(Errno::EINVAL));
        let (_, info) = s.shm_info(r, 0).unwrap();
        assert_eq!((info.used_ids, info.shm_tot), (1, 1));
        assert_eq!(s.shmctl(r, id2, IPC_RMID), Ok(0));
        assert_eq!(s.shm_stat(r, id2).map(drop), Err(Errno::EINVAL));
        let (_, info) = s.shm_info(r, 0).unwrap();
        assert_eq!((info.used_ids, info.shm_tot), (0, 0));
    });
}

/// IPC_INFO reports the namespace limits (shmseg = shmmni, shmmin = 1);
/// SHM_INFO the usage.
#[test]
fn shm_ctl_info() {
    uipc_testkit::conformance!("SHM-CTL-INFO", |s| {
        let r = s.root();
        let (ret, i) = s.shm_ipc_info(r, 0).unwrap();
        assert_eq!(ret, 0);
        assert_eq!((i.shmmax, i.shmmin, i.shmmni, i.shmseg, i.shmall), (SHMMAX_DEFAULT, 1, 4096, 4096, SHMMAX_DEFAULT));
        s.sysctl_set("kernel.shmmax", "65536").unwrap();
        s.sysctl_set("kernel.shmall", "100").unwrap();
        s.sysctl_set("kernel.shmmni", "7").unwrap();
        let (_, i) = s.shm_ipc_info(r, 0).unwrap();
        assert_eq!((i.shmmax, i.shmmin, i.shmmni, i.shmseg, i.shmall), (65536, 1, 7, 7, 100));
        s.shmget(r, IPC_PRIVATE, PAGE + 1, 0o600).unwrap();
        s.shmget(r, IPC_PRIVATE, PAGE + 1, 0o600).unwrap();
        let (ret, info) = s.shm_info(r, 0).unwrap();
        assert_eq!(ret, 1);
        assert_eq!((info.used_ids, info.shm_tot, info.shm_swp), (2, 4, 0));
        assert_eq!((info.swap_attempts, info.swap_successes), (0, 0));
    });
}

/// SHM_INFO's shm_rss counts the pages the segments hold in memory: pages
/// touched by a write or a read, never those left alone.
#[test]
fn shm_ctl_info_rss() {
    uipc_testkit::conformance!("SHM-CTL-INFO/rss", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 4 * PAGE, 0o600).unwrap();
        assert_eq!(s.shm_info(r, 0).unwrap().1.shm_rss, 0);
        let a = s.shmat(r, id, 0, 0).unwrap();
        assert_eq!(s.shm_info(r, 0).unwrap().1.shm_rss, 0);
        assert_eq!(s.write(r, a, b"x"), Ok(()));
        assert_eq!(s.shm_info(r, 0).unwrap().1.shm_rss, 1);
        assert_eq!(s.read(r, a + 2 * PAGE, 1).unwrap(), vec![0]);
        let rss = s.shm_info(r, 0).unwrap().1.shm_rss;
        s.note(format!("rss after a read fault: {rss}"));
    });
}

/// SHM_LOCK/SHM_UNLOCK: owner (uid or cuid) or CAP_IPC_LOCK, no mode-bit
/// check; toggle SHM_LOCKED (02000); idempotent.
#[test]
fn shm_ctl_lock() {
    uipc_testkit::conformance!("SHM-CTL-LOCK", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let v = s.user(1001, 1001);
        let nolock = s.spawn(Identity::root().without_caps(&[cap::IPC_LOCK]));
        assert_eq!(s.shmctl(r, 9999, SHM_LOCK), Err(Errno::EINVAL));
        assert_eq!(s.shmctl(r, -1, SHM_LOCK), Err(Errno::EINVAL));
        let id = s.shmget(r, IPC_PRIVATE, PAGE, 0o666).unwrap();
        assert_eq!(s.shmctl(r, id, SHM_LOCK), Ok(0));
        assert_eq!(s.shm_stat(r, id).unwrap().mode, SHM_LOCKED | 0o666);
        assert_eq!(s.shmctl(r, id, SHM_LOCK), Ok(0));
        assert_eq!(s.shmctl(u, id, SHM_LOCK), Err(Errno::EPERM));
        assert_eq!(s.shmctl(u, id, SHM_UNLOCK), Err(Errno::EPERM));
        assert_eq!(s.shmctl(r, id, SHM_UNLOCK), Ok(0));
        assert_eq!(s.shm_stat(r, id).unwrap().mode, 0o666);
        assert_eq!(s.shmctl(r, id, SHM_UNLOCK), Ok(0));
        // An unprivileged owner may lock within RLIMIT_MEMLOCK.
        let mine = s.shmget(u, IPC_PRIVATE, PAGE, 0o600).unwrap();
        assert_eq!(s.shmctl(u, mine, SHM_LOCK), Ok(0));
        assert_eq!(s.shm_stat(u, mine).unwrap().mode, SHM_LOCKED | 0o600);
        assert_eq!(s.shmctl(v, mine, SHM_UNLOCK), Err(Errno::EPERM));
        assert_eq!(s.shmctl(nolock, mine, SHM_UNLOCK), Err(Errno::EPERM));
        // Handing the segment to 1001 makes 1001 an owner.
        assert_eq!(s.shmctl_set(u, mine, 1001, 1001, 0o600), Ok(0));
        assert_eq!(s.shmctl(v, mine, SHM_UNLOCK), Ok(0));
        assert_eq!(s.shm_stat(u, mine).unwrap().mode, 0o600);
        // Root without CAP_IPC_LOCK is an owner of its own segment only.
        let its = s.shmget(nolock, IPC_PRIVATE, PAGE, 0o600).unwrap();
        assert_eq!(s.shmctl(nolock, its, SHM_LOCK), Ok(0));
        assert_eq!(s.shmctl(nolock, id, SHM_LOCK), Ok(0));
        assert_eq!(s.shmctl(nolock, mine, SHM_LOCK), Err(Errno::EPERM));
        // A SHM_DEST segment may be locked too.
        let a = s.shmat(r, id, 0, 0).unwrap();
        assert_eq!(s.shmctl(r, id, IPC_RMID), Ok(0));
        assert_eq!(s.shmctl(r, id, SHM_UNLOCK), Ok(0));
        assert_eq!(s.shmctl(r, id, SHM_LOCK), Ok(0));
        assert_eq!(s.shm_stat(r, id).unwrap().mode, SHM_DEST | SHM_LOCKED | 0o666);
        assert_eq!(s.shmdt(r, a), Ok(()));
    });
}
