//! SEM-GET-1..4 (SPEC 3.1): `semget`'s argument checks, their order against
//! the common `xxxget` algorithm (1.2), and the state of a new set.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, GETNCNT, GETPID, GETVAL, GETZCNT, IPC_CREAT, IPC_EXCL, IPC_PRIVATE, SEM_INFO};

const K: i32 = 0x5e61;

/// `nsems < 0 || nsems > semmsl` → EINVAL before anything else, even for an
/// existing key and even with IPC_CREAT|IPC_EXCL (which would be EEXIST).
#[test]
fn sem_get_1_nsems_range_first() {
    uipc_testkit::conformance!("SEM-GET-1", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.semget(r, K, 4, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.semget(r, K, 32001, 0), Err(Errno::EINVAL));
        assert_eq!(s.semget(r, K, -1, 0), Err(Errno::EINVAL));
        assert_eq!(s.semget(r, K, i32::MIN, 0), Err(Errno::EINVAL));
        assert_eq!(s.semget(r, K, -1, IPC_CREAT | IPC_EXCL | 0o600), Err(Errno::EINVAL));
        assert_eq!(s.semget(r, K, 32001, IPC_CREAT | IPC_EXCL | 0o600), Err(Errno::EINVAL));
        // Before the permission check too.
        assert_eq!(s.semget(u, K, -1, 0o600), Err(Errno::EINVAL));
        // Absent key: EINVAL, not ENOENT.
        assert_eq!(s.semget(r, K + 1, -1, 0), Err(Errno::EINVAL));
        assert_eq!(s.semget(r, IPC_PRIVATE, 32001, 0o600), Err(Errno::EINVAL));
        // semmsl itself is fine.
        assert!(s.semget(r, IPC_PRIVATE, 32000, 0o600).is_ok());
        assert_eq!(s.semget(r, K, 4, 0), Ok(id));
    });
}

/// Existing key: EEXIST, then nsems > existing (EINVAL), then permission
/// (EACCES); nsems 0 and flg 0 are fine when not creating.
#[test]
fn sem_get_2_existing_order() {
    uipc_testkit::conformance!("SEM-GET-2", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.semget(r, K, 3, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.semget(u, K, 4, IPC_CREAT | IPC_EXCL | 0o600), Err(Errno::EEXIST));
        assert_eq!(s.semget(u, K, 4, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.semget(u, K, 4, 0), Err(Errno::EINVAL));
        assert_eq!(s.semget(u, K, 3, 0o600), Err(Errno::EACCES));
        assert_eq!(s.semget(u, K, 0, 0o004), Err(Errno::EACCES));
        assert_eq!(s.semget(u, K, 0, 0), Ok(id));
        assert_eq!(s.semget(u, K, 3, 0), Ok(id));
        assert_eq!(s.semget(r, K, 0, IPC_CREAT), Ok(id));
        assert_eq!(s.semget(r, K, 2, IPC_EXCL | 0o600), Ok(id));
        assert_eq!(s.semget(r, K + 1, 0, 0), Err(Errno::ENOENT));
        assert_eq!(s.semget(r, K + 1, 3, IPC_EXCL | 0o600), Err(Errno::ENOENT));
    });
}

/// Creation: nsems 0 → EINVAL (also for IPC_PRIVATE and before ENOSPC).
#[test]
fn sem_get_3_zero_nsems() {
    uipc_testkit::conformance!("SEM-GET-3/zero", |s| {
        let r = s.root();
        assert_eq!(s.semget(r, IPC_PRIVATE, 0, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.semget(r, K, 0, IPC_CREAT | 0o600), Err(Errno::EINVAL));
        assert_eq!(s.semget(r, K, 0, 0), Err(Errno::ENOENT));
        s.sysctl_set("kernel.sem", "32000 1024000000 500 0").unwrap();
        assert_eq!(s.semget(r, IPC_PRIVATE, 0, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.semget(r, IPC_PRIVATE, 1, 0o600), Err(Errno::ENOSPC));
    });
}

/// Creation: `used_sems + nsems > semmns` → ENOSPC; removal gives the
/// semaphores back.
#[test]
fn sem_get_3_semmns() {
    uipc_testkit::conformance!("SEM-GET-3/semmns", |s| {
        let r = s.root();
        s.sysctl_set("kernel.sem", "32000 10 500 32000").unwrap();
        let a = s.semget(r, IPC_PRIVATE, 6, 0o600).unwrap();
        assert_eq!(s.semget(r, IPC_PRIVATE, 5, 0o600), Err(Errno::ENOSPC));
        assert_eq!(s.semget(r, K, 5, IPC_CREAT | 0o600), Err(Errno::ENOSPC));
        let b = s.semget(r, K, 4, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.semget(r, IPC_PRIVATE, 1, 0o600), Err(Errno::ENOSPC));
        // A lookup is not a creation: semmns does not apply.
        assert_eq!(s.semget(r, K, 4, IPC_CREAT | 0o600), Ok(b));
        assert_eq!(s.sem_info(r, SEM_INFO).unwrap().1.semaem, 10);
        assert_eq!(s.semctl(r, a, 0, uipc_abi::IPC_RMID), Ok(0));
        assert_eq!(s.sem_info(r, SEM_INFO).unwrap().1.semaem, 4);
        assert!(s.semget(r, IPC_PRIVATE, 6, 0o600).is_ok());
    });
}

/// Creation: `in_use >= semmni` → ENOSPC; checked after the semmns check
/// (both are ENOSPC) and only on creation.
#[test]
fn sem_get_3_semmni() {
    uipc_testkit::conformance!("SEM-GET-3/semmni", |s| {
        let r = s.root();
        s.sysctl_set("kernel.sem", "32000 1024000000 500 2").unwrap();
        let a = s.semget(r, K, 1, IPC_CREAT | 0o600).unwrap();
        s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semget(r, IPC_PRIVATE, 1, 0o600), Err(Errno::ENOSPC));
        assert_eq!(s.semget(r, K + 1, 1, IPC_CREAT | 0o600), Err(Errno::ENOSPC));
        assert_eq!(s.semget(r, K, 1, IPC_CREAT | 0o600), Ok(a));
        // EEXIST is decided before any creation limit.
        assert_eq!(s.semget(r, K, 1, IPC_CREAT | IPC_EXCL | 0o600), Err(Errno::EEXIST));
        assert_eq!(s.semctl(r, a, 0, uipc_abi::IPC_RMID), Ok(0));
        assert!(s.semget(r, IPC_PRIVATE, 1, 0o600).is_ok());
    });
}

/// A new set: every value 0, sempid 0, no sleepers, otime never, ctime now,
/// mode = flg & 0777 (no umask), uid = cuid = euid, gid = cgid = egid.
#[test]
fn sem_get_4_new_set() {
    uipc_testkit::conformance!("SEM-GET-4", |s| {
        let u = s.user(1000, 1000);
        let r = s.root();
        let id = s.semget(u, K, 3, IPC_CREAT | 0o7664).unwrap();
        assert_eq!(s.semctl_getall(u, id).unwrap(), vec![0, 0, 0]);
        for n in 0..3 {
            assert_eq!(s.semctl(u, id, n, GETVAL), Ok(0));
            assert_eq!(s.semctl(u, id, n, GETPID), Ok(0));
            assert_eq!(s.semctl(u, id, n, GETNCNT), Ok(0));
            assert_eq!(s.semctl(u, id, n, GETZCNT), Ok(0));
        }
        let ds = s.sem_stat(u, id).unwrap();
        assert_eq!((ds.key, ds.mode, ds.nsems, ds.otime), (K, 0o664, 3, 0));
        assert_eq!((ds.uid, ds.gid, ds.cuid, ds.cgid), (1000, 1000, 1000, 1000));
        assert_ne!(ds.ctime, 0);
        assert_eq!(ds.unused_or, 0);
        for mode in [0o777, 0o002, 0o000] {
            let p = s.semget(u, IPC_PRIVATE, 1, mode).unwrap();
            assert_eq!(s.sem_stat(r, p).unwrap().mode, u32::try_from(mode).unwrap());
        }
    });
}
