//! COM-OWN-1..4 (SPEC 1.4): the ownership check of IPC_SET/IPC_RMID and the
//! IPC_SET update rules.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_CREAT, IPC_PRIVATE, IPC_RMID, IPC_SET, SHM_LOCK, SHM_UNLOCK};
use uipc_testkit::op::cap;
use uipc_testkit::Identity;

const K: i32 = 0x0e0;

/// Owner (uid or cuid) or CAP_SYS_ADMIN; CAP_IPC_OWNER does not help.
#[test]
fn com_own_1_who_may() {
    uipc_testkit::conformance!("COM-OWN-1", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let no_owner_cap = s.spawn(Identity::root().without_caps(&[cap::IPC_OWNER]));
        let no_admin = s.spawn(Identity::root().without_caps(&[cap::SYS_ADMIN]));
        let id = s.shmget(r, K, 4096, IPC_CREAT | 0o666).unwrap();
        assert_eq!(s.shmctl_set(u, id, 1000, 1000, 0o666), Err(Errno::EPERM));
        assert_eq!(s.shmctl(u, id, IPC_RMID), Err(Errno::EPERM));
        let mine = s.shmget(u, IPC_PRIVATE, 4096, 0o600).unwrap();
        // CAP_IPC_OWNER without CAP_SYS_ADMIN: may read, may not change.
        assert!(s.shm_stat(no_admin, mine).is_ok());
        assert_eq!(s.shmctl_set(no_admin, mine, 1000, 1000, 0o644), Err(Errno::EPERM));
        assert_eq!(s.shmctl(no_admin, mine, IPC_RMID), Err(Errno::EPERM));
        // … but its own segment (cuid 0) is fine.
        assert_eq!(s.shmctl_set(no_admin, id, 0, 0, 0o644), Ok(0));
        // CAP_SYS_ADMIN without CAP_IPC_OWNER: may change and remove.
        assert_eq!(s.shmctl_set(no_owner_cap, mine, 1000, 1000, 0o644), Ok(0));
        assert_eq!(s.shmctl(no_owner_cap, mine, IPC_RMID), Ok(0));
        assert_eq!(s.shm_stat(r, mine).map(drop), Err(Errno::EINVAL));
    });
}

/// IPC_SET copies uid, gid and the low 9 mode bits; SHM_DEST and
/// SHM_LOCKED survive; cuid/cgid never change; an unmappable id is EINVAL
/// and changes nothing.
#[test]
fn com_own_2_set_copies() {
    uipc_testkit::conformance!("COM-OWN-2", |s| {
        let r = s.root();
        let id = s.shmget(r, K, 4096, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.shmctl_set(r, id, 1000, 2000, 0xffff), Ok(0));
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.uid, ds.gid, ds.cuid, ds.cgid, ds.mode), (1000, 2000, 0, 0, 0o777));
        assert_eq!(s.shmctl(r, id, SHM_LOCK), Ok(0));
        assert_eq!(s.shm_stat(r, id).unwrap().mode, 0o2777);
        assert_eq!(s.shmctl_set(r, id, 1000, 2000, 0), Ok(0));
        assert_eq!(s.shm_stat(r, id).unwrap().mode, 0o2000);
        assert_eq!(s.shmctl(r, id, SHM_UNLOCK), Ok(0));
        assert_eq!(s.shm_stat(r, id).unwrap().mode, 0);
        let a = s.shmat(r, id, 0, 0).unwrap();
        assert_eq!(s.shmctl(r, id, IPC_RMID), Ok(0));
        assert_eq!(s.shmctl_set(r, id, 1000, 2000, 0o640 | 0o7000), Ok(0));
        assert_eq!(s.shm_stat(r, id).unwrap().mode, 0o1640);
        // (uid_t)-1 / (gid_t)-1: EINVAL, nothing changed (not even the valid half).
        assert_eq!(s.shmctl_set(r, id, u32::MAX, 0, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_set(r, id, 1001, u32::MAX, 0o600), Err(Errno::EINVAL));
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.uid, ds.gid, ds.mode), (1000, 2000, 0o1640));
        assert_eq!(s.shmdt(r, a), Ok(()));
        assert_eq!(s.shm_stat(r, id).map(drop), Err(Errno::EINVAL));
    });
}

/// A successful IPC_SET updates ctime; the new uid is an owner, and the
/// creator stays one through cuid.
#[test]
fn com_own_3_new_owner() {
    uipc_testkit::conformance!("COM-OWN-3", |s| {
        let u0 = s.user(1000, 1000);
        let u1 = s.user(1001, 1001);
        let u2 = s.user(1002, 1002);
        let id = s.shmget(u0, K, 4096, IPC_CREAT | 0o644).unwrap();
        assert_ne!(s.shm_stat(u0, id).unwrap().ctime, 0);
        assert_eq!(s.shmctl_set(u1, id, 1001, 1001, 0o644), Err(Errno::EPERM));
        assert_eq!(s.shmctl_set(u0, id, 1001, 1001, 0o644), Ok(0));
        let ds = s.shm_stat(u0, id).unwrap();
        assert_eq!((ds.uid, ds.cuid), (1001, 1000));
        assert_ne!(ds.ctime, 0);
        assert_eq!(s.shmctl_set(u1, id, 1001, 1001, 0o640), Ok(0));
        assert_eq!(s.shmctl_set(u0, id, 1002, 1002, 0o640), Ok(0));
        assert_eq!(s.shmctl_set(u1, id, 1001, 1001, 0o640), Err(Errno::EPERM));
        assert_eq!(s.shmctl(u1, id, IPC_RMID), Err(Errno::EPERM));
        assert_eq!(s.shmctl(u2, id, IPC_RMID), Ok(0));
    });
}

/// IPC_SET: copy-in (EFAULT) before the lookup, then lookup (EINVAL),
/// ownership (EPERM), uid/gid validity (EINVAL). IPC_RMID ignores the buffer.
#[test]
fn com_own_4_set_order() {
    uipc_testkit::conformance!("COM-OWN-4", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(r, K, 4096, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.shmctl_fault(r, -1, IPC_SET), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_fault(r, 12345, IPC_SET), Err(Errno::EFAULT));
        assert_eq!(s.shmctl_fault(u, id, IPC_SET), Err(Errno::EFAULT));
        assert_eq!(s.shmctl_set(r, 12345, 0, 0, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_set(u, id, u32::MAX, 0, 0o600), Err(Errno::EPERM));
        assert_eq!(s.shmctl_set(r, id, u32::MAX, 0, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_fault(u, id, IPC_RMID), Err(Errno::EPERM));
        assert_eq!(s.shmctl_fault(r, id, IPC_RMID), Ok(0));
        assert_eq!(s.shmget(r, K, 0, 0), Err(Errno::ENOENT));
    });
}
