//! COM-PERM-1..4 (SPEC 1.3): the access check `ipcperms`, with real users
//! and groups.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_CREAT, IPC_PRIVATE, IPC_RMID, IPC_STAT, SHM_EXEC, SHM_RDONLY, SHM_STAT, SHM_STAT_ANY};
use uipc_testkit::op::cap;
use uipc_testkit::Identity;

const K: i32 = 0x9e4;

/// The requested mode is folded into one rwx triad; flg 0 requests nothing.
#[test]
fn com_perm_1_folded_request() {
    uipc_testkit::conformance!("COM-PERM-1", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(r, K, 4096, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.shmget(u, K, 0, 0), Ok(id));
        assert_eq!(s.shmget(u, K, 0, 0o004), Err(Errno::EACCES));
        assert_eq!(s.shmget(u, K, 0, 0o400), Err(Errno::EACCES));
        // Mode 0604: "other" may read, so an "owner read" request passes.
        let id2 = s.shmget(r, K + 1, 4096, IPC_CREAT | 0o604).unwrap();
        assert_eq!(s.shmget(u, K + 1, 0, 0o400), Ok(id2));
        assert_eq!(s.shmget(u, K + 1, 0, 0o444), Ok(id2));
        assert_eq!(s.shmget(u, K + 1, 0, 0o020), Err(Errno::EACCES));
        assert_eq!(s.shmget(u, K + 1, 0, 0o404 | 0o002), Err(Errno::EACCES));
    });
}

/// A matching owner class that lacks a bit is denied, even if "group" or
/// "other" grants it.
#[test]
fn com_perm_2_owner_lacks_bit() {
    uipc_testkit::conformance!("COM-PERM-2/owner-lacks-bit", |s| {
        let owner = s.user(1000, 1000);
        let other = s.user(1001, 1001);
        let id = s.shmget(owner, K, 4096, IPC_CREAT | 0o466).unwrap();
        assert_eq!(s.shmget(owner, K, 0, 0o400), Ok(id));
        assert_eq!(s.shmget(owner, K, 0, 0o600), Err(Errno::EACCES));
        assert_eq!(s.shmat(owner, id, 0, 0), Err(Errno::EACCES));
        let a = s.shmat(owner, id, 0, SHM_RDONLY).unwrap();
        let b = s.shmat(other, id, 0, 0).unwrap();
        assert_eq!(s.shmdt(owner, a), Ok(()));
        assert_eq!(s.shmdt(other, b), Ok(()));
    });
}

/// Owner class: euid equals uid *or* cuid.
#[test]
fn com_perm_2_uid_or_cuid() {
    uipc_testkit::conformance!("COM-PERM-2/uid-or-cuid", |s| {
        let r = s.root();
        let u0 = s.user(1000, 1000);
        let u1 = s.user(1001, 1001);
        let u2 = s.user(1002, 1002);
        // Created by root, handed to 1001: 1001 is owner through uid.
        let a = s.shmget(r, K, 4096, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.shmctl_set(r, a, 1001, 0, 0o600), Ok(0));
        assert_eq!(s.shmget(u1, K, 0, 0o600), Ok(a));
        let at = s.shmat(u1, a, 0, 0).unwrap();
        assert_eq!(s.shmdt(u1, at), Ok(()));
        assert_eq!(s.shmget(u0, K, 0, 0o400), Err(Errno::EACCES));
        // Created by 1000, handed to 1001: 1000 keeps owner rights through cuid.
        let b = s.shmget(u0, K + 1, 4096, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.shmctl_set(u0, b, 1001, 1001, 0o600), Ok(0));
        assert_eq!(s.shmget(u0, K + 1, 0, 0o600), Ok(b));
        assert_eq!(s.shmget(u1, K + 1, 0, 0o600), Ok(b));
        assert_eq!(s.shmget(u2, K + 1, 0, 0o400), Err(Errno::EACCES));
    });
}

/// Group class: egid or a supplementary group equal to gid or cgid.
#[test]
fn com_perm_2_group() {
    uipc_testkit::conformance!("COM-PERM-2/group", |s| {
        let owner = s.user(1000, 1000);
        let id = s.shmget(owner, K, 4096, IPC_CREAT | 0o640).unwrap();
        // cgid 1000 stays, gid becomes 2000.
        assert_eq!(s.shmctl_set(owner, id, 1000, 2000, 0o640), Ok(0));
        let via_cgid = s.user(1001, 1000);
        let via_gid = s.user(1001, 2000);
        let via_supp_gid = s.spawn(Identity::user(1001, 3000).with_groups(&[2000]));
        let via_supp_cgid = s.spawn(Identity::user(1001, 3000).with_groups(&[4000, 1000]));
        let stranger = s.spawn(Identity::user(1001, 3000).with_groups(&[4000]));
        for p in [via_cgid, via_gid, via_supp_gid, via_supp_cgid] {
            assert_eq!(s.shmget(p, K, 0, 0o400), Ok(id));
            assert_eq!(s.shmget(p, K, 0, 0o200), Err(Errno::EACCES));
        }
        assert_eq!(s.shmget(stranger, K, 0, 0o004), Err(Errno::EACCES));
        assert_eq!(s.shmget(stranger, K, 0, 0), Ok(id));
        // A matching group class that lacks a bit is denied even if "other" has it.
        assert_eq!(s.shmctl_set(owner, id, 1000, 2000, 0o606), Ok(0));
        assert_eq!(s.shmget(via_gid, K, 0, 0o004), Err(Errno::EACCES));
        assert_eq!(s.shmget(stranger, K, 0, 0o006), Ok(id));
    });
}

/// CAP_IPC_OWNER overrides the mode bits; root without it is an ordinary
/// "other".
#[test]
fn com_perm_3_cap_ipc_owner() {
    uipc_testkit::conformance!("COM-PERM-3", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let nocap = s.spawn(Identity::root().without_caps(&[cap::IPC_OWNER]));
        let id = s.shmget(u, K, 4096, IPC_CREAT).unwrap();
        assert_eq!(s.shm_stat(r, id).unwrap().mode, 0);
        // The owner itself is refused everything the mode does not give.
        assert_eq!(s.shmget(u, K, 0, 0o400), Err(Errno::EACCES));
        assert_eq!(s.shmget(r, K, 0, 0o666), Ok(id));
        let a = s.shmat(r, id, 0, SHM_EXEC).unwrap();
        assert_eq!(s.shmdt(r, a), Ok(()));
        assert!(s.shm_stat(r, id).is_ok());
        assert_eq!(s.shmctl_stat(r, id, SHM_STAT).unwrap().0, i64::from(id));
        assert_eq!(s.shmget(nocap, K, 0, 0o400), Err(Errno::EACCES));
        assert_eq!(s.shmget(nocap, K, 0, 0), Ok(id));
        assert_eq!(s.shmat(nocap, id, 0, SHM_RDONLY), Err(Errno::EACCES));
        assert_eq!(s.shmctl_stat(nocap, id, IPC_STAT).map(drop), Err(Errno::EACCES));
        assert_eq!(s.shmctl_stat(nocap, id, SHM_STAT).map(drop), Err(Errno::EACCES));
        assert_eq!(s.shmctl_stat(nocap, id, SHM_STAT_ANY).unwrap().0, i64::from(id));
        // Root without CAP_IPC_OWNER on its own segment: the owner bits decide.
        let own = s.shmget(nocap, IPC_PRIVATE, 4096, 0o400).unwrap();
        assert!(s.shmat(nocap, own, 0, SHM_RDONLY).is_ok());
        assert_eq!(s.shmat(nocap, own, 0, 0), Err(Errno::EACCES));
    });
}

/// shmat needs read, plus write unless SHM_RDONLY.
#[test]
fn com_perm_4_shmat_access() {
    uipc_testkit::conformance!("COM-PERM-4/shmat", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(r, IPC_PRIVATE, 4096, 0o644).unwrap();
        assert_eq!(s.shmat(u, id, 0, 0), Err(Errno::EACCES));
        let a = s.shmat(u, id, 0, SHM_RDONLY).unwrap();
        assert_eq!(s.shmdt(u, a), Ok(()));
        let w = s.shmget(r, IPC_PRIVATE, 4096, 0o622).unwrap();
        assert_eq!(s.shmat(u, w, 0, SHM_RDONLY), Err(Errno::EACCES));
        assert_eq!(s.shmat(u, w, 0, 0), Err(Errno::EACCES));
    });
}

/// SHM_EXEC needs the execute bit (shmctl(2) says otherwise; the kernel wins).
#[test]
fn com_perm_4_shm_exec() {
    uipc_testkit::conformance!("COM-PERM-4/shm-exec", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(r, IPC_PRIVATE, 4096, 0o666).unwrap();
        assert_eq!(s.shmat(u, id, 0, SHM_EXEC), Err(Errno::EACCES));
        assert_eq!(s.shmat(u, id, 0, SHM_EXEC | SHM_RDONLY), Err(Errno::EACCES));
        assert_eq!(s.shmctl_set(r, id, 0, 0, 0o777), Ok(0));
        let a = s.shmat(u, id, 0, SHM_EXEC).unwrap();
        assert_eq!(s.shmdt(u, a), Ok(()));
        assert_eq!(s.shmctl_set(r, id, 0, 0, 0o555), Ok(0));
        let b = s.shmat(u, id, 0, SHM_EXEC | SHM_RDONLY).unwrap();
        assert_eq!(s.shmdt(u, b), Ok(()));
        assert_eq!(s.shmat(u, id, 0, SHM_EXEC), Err(Errno::EACCES));
    });
}

/// IPC_STAT and SHM_STAT need read; SHM_STAT_ANY and the *_INFO commands
/// need nothing.
#[test]
fn com_perm_4_stat_access() {
    uipc_testkit::conformance!("COM-PERM-4/stat", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(r, IPC_PRIVATE, 4096, 0o222).unwrap();
        assert_eq!(s.shmctl_stat(u, id, IPC_STAT).map(drop), Err(Errno::EACCES));
        assert_eq!(s.shmctl_stat(u, id, SHM_STAT).map(drop), Err(Errno::EACCES));
        assert_eq!(s.shmctl_stat(u, id, SHM_STAT_ANY).unwrap().0, i64::from(id));
        assert_eq!(s.shm_ipc_info(u, id).unwrap().0, 0);
        assert_eq!(s.shm_info(u, id).unwrap().0, 0);
    });
}

/// IPC_SET and IPC_RMID depend on ownership, not on the mode bits.
#[test]
fn com_perm_4_set_rmid_ignore_mode() {
    uipc_testkit::conformance!("COM-PERM-4/set-rmid", |s| {
        let u = s.user(1000, 1000);
        let other = s.user(1001, 1001);
        let id = s.shmget(u, IPC_PRIVATE, 4096, 0).unwrap();
        assert_eq!(s.shmctl_set(u, id, 1000, 1000, 0), Ok(0));
        let open = s.shmget(u, IPC_PRIVATE, 4096, 0o666).unwrap();
        assert_eq!(s.shmctl(other, open, IPC_RMID), Err(Errno::EPERM));
        assert_eq!(s.shmctl(u, id, IPC_RMID), Ok(0));
    });
}
