//! SPEC 1.2, the `xxxget` algorithm and its error order, through `shmget`.
//! The section's steps carry no identifiers; these tests use `COM-GET/…`.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_CREAT, IPC_EXCL, IPC_PRIVATE, SHM_HUGETLB, SHM_NORESERVE};
use uipc_testkit::Identity;

const K: i32 = 0x6e7;

/// Existing key: EEXIST, then the size check (EINVAL), then the permission
/// check (EACCES); flg 0 requests nothing.
#[test]
fn com_get_order() {
    uipc_testkit::conformance!("COM-GET/order", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(r, K, 8192, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.shmget(u, K, 16384, IPC_CREAT | IPC_EXCL | 0o600), Err(Errno::EEXIST));
        assert_eq!(s.shmget(u, K, 16384, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shmget(u, K, 16384, 0), Err(Errno::EINVAL));
        assert_eq!(s.shmget(u, K, 4096, 0o600), Err(Errno::EACCES));
        assert_eq!(s.shmget(u, K, 8192, 0o004), Err(Errno::EACCES));
        assert_eq!(s.shmget(u, K, 8192, 0), Ok(id));
        assert_eq!(s.shmget(u, K, 0, IPC_CREAT), Ok(id));
        // IPC_EXCL without IPC_CREAT is no error.
        assert_eq!(s.shmget(u, K, 0, IPC_EXCL), Ok(id));
        // Absent key: ENOENT without IPC_CREAT, whatever else is set.
        assert_eq!(s.shmget(u, K + 1, 4096, 0o600), Err(Errno::ENOENT));
        assert_eq!(s.shmget(u, K + 1, 4096, IPC_EXCL | 0o600), Err(Errno::ENOENT));
        assert_eq!(s.shmget(u, K + 1, 0, 0), Err(Errno::ENOENT));
    });
}

/// IPC_PRIVATE always creates, whatever IPC_CREAT/IPC_EXCL say.
#[test]
fn com_get_private_always_creates() {
    uipc_testkit::conformance!("COM-GET/private", |s| {
        let r = s.root();
        let a = s.shmget(r, IPC_PRIVATE, 4096, IPC_CREAT | IPC_EXCL | 0o600).unwrap();
        let b = s.shmget(r, IPC_PRIVATE, 4096, IPC_CREAT | IPC_EXCL | 0o600).unwrap();
        let c = s.shmget(r, IPC_PRIVATE, 4096, 0).unwrap();
        assert!(a != b && b != c && a != c);
        assert_eq!(s.shm_stat(r, c).unwrap().mode, 0);
    });
}

/// The stored mode is `flg & 0777`, with no umask applied.
#[test]
fn com_get_mode_no_umask() {
    uipc_testkit::conformance!("COM-GET/no-umask", |s| {
        let r = s.root();
        for mode in [0o777, 0o666, 0o002, 0o020, 0o000] {
            let id = s.shmget(r, IPC_PRIVATE, 4096, mode).unwrap();
            assert_eq!(s.shm_stat(r, id).unwrap().mode, u32::try_from(mode).unwrap());
        }
    });
}

/// On an existing object the mode bits, SHM_HUGETLB and SHM_NORESERVE are
/// ignored, and shmmax is not consulted.
#[test]
fn com_get_existing_ignores_flags() {
    uipc_testkit::conformance!("COM-GET/existing-flags", |s| {
        let r = s.root();
        let id = s.shmget(r, K, 8192, IPC_CREAT | 0o640).unwrap();
        assert_eq!(s.shmget(r, K, 0, IPC_CREAT | 0o777 | SHM_HUGETLB | SHM_NORESERVE), Ok(id));
        assert_eq!(s.shmget(r, K, 0, IPC_CREAT | 0o600 | (25 << 26)), Ok(id));
        assert_eq!(s.shm_stat(r, id).unwrap().mode, 0o640);
        s.sysctl_set("kernel.shmmax", "4096").unwrap();
        assert_eq!(s.shmget(r, K, 8192, 0), Ok(id));
        assert_eq!(s.shmget(r, K, u64::MAX, IPC_CREAT), Err(Errno::EINVAL));
        assert_eq!(s.shmget(r, K, 8193, 0), Err(Errno::EINVAL));
    });
}

/// Creation records uid = cuid = euid and gid = cgid = egid (never a
/// supplementary group).
#[test]
fn com_get_creator_ids() {
    uipc_testkit::conformance!("COM-GET/creator", |s| {
        let u = s.spawn(Identity::user(1000, 1000).with_groups(&[2000, 3000]));
        let id = s.shmget(u, K, 4096, IPC_CREAT | 0o600).unwrap();
        let ds = s.shm_stat(u, id).unwrap();
        assert_eq!((ds.uid, ds.gid, ds.cuid, ds.cgid), (1000, 1000, 1000, 1000));
    });
}
