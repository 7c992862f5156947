//! SEM-CTL-1..9 (SPEC 3.5): `semctl` commands, their error order and what
//! they change.
//!
//! Not covered: EIDRM for a removal racing with SETVAL or a stat (needs a
//! race); ctime changes (SEM-CTL-6/9) are not observable in transcripts,
//! which normalise every recent time to "now" — only "otime stays never" is.
#![allow(clippy::unwrap_used)]

use uipc_abi::{
    Errno, GETALL, GETNCNT, GETPID, GETVAL, GETZCNT, IPC_64, IPC_CREAT, IPC_INFO, IPC_PRIVATE, IPC_RMID, IPC_SET,
    IPC_STAT, SEM_INFO, SEM_STAT, SEM_STAT_ANY, SETALL,
};

fn pid(s: &uipc_testkit::Session, p: uipc_testkit::Proc) -> i64 {
    i64::from(s.pid(p))
}

/// `semid < 0` → EINVAL first, for every command (the *_INFO ones too);
/// unknown commands and IPC_64-or-ed commands → EINVAL.
#[test]
fn sem_ctl_negative_id_and_unknown_cmd() {
    uipc_testkit::conformance!("SEM-CTL/badid", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        for cmd in [GETVAL, GETPID, GETNCNT, GETZCNT, IPC_RMID, 99, -1] {
            assert_eq!(s.semctl(r, -1, 0, cmd), Err(Errno::EINVAL));
        }
        assert_eq!(s.sem_info(r, IPC_INFO).map(|(v, _)| v), Ok(0));
        assert_eq!(s.semctl_fault(r, -1, 0, IPC_INFO), Err(Errno::EINVAL));
        assert_eq!(s.semctl_fault(r, -1, 0, IPC_SET), Err(Errno::EINVAL));
        assert_eq!(s.semctl_setval(r, -1, 0, 1), Err(Errno::EINVAL));
        assert_eq!(s.semctl(r, id, 0, 99), Err(Errno::EINVAL));
        assert_eq!(s.semctl(r, id, 0, -1), Err(Errno::EINVAL));
        assert_eq!(s.semctl(r, id, 0, IPC_64 | IPC_RMID), Err(Errno::EINVAL));
        assert_eq!(s.semctl(r, id, 0, IPC_64 | GETVAL), Err(Errno::EINVAL));
        assert!(s.sem_stat(r, id).is_ok());
    });
}

/// GETVAL/GETPID/GETNCNT/GETZCNT: lookup (EINVAL), read permission (EACCES),
/// then the semnum range (EINVAL); GETPID is 0 until an operation.
#[test]
fn sem_ctl_1_get_one() {
    uipc_testkit::conformance!("SEM-CTL-1", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.semget(r, IPC_PRIVATE, 2, 0o600).unwrap();
        let wo = s.semget(r, IPC_PRIVATE, 2, 0o622).unwrap();
        let rd = s.semget(r, IPC_PRIVATE, 2, 0o644).unwrap();
        for cmd in [GETVAL, GETPID, GETNCNT, GETZCNT] {
            assert_eq!(s.semctl(r, id + 7, 0, cmd), Err(Errno::EINVAL));
            assert_eq!(s.semctl(u, id, 5, cmd), Err(Errno::EACCES));
            assert_eq!(s.semctl(u, id, -1, cmd), Err(Errno::EACCES));
            assert_eq!(s.semctl(u, wo, 0, cmd), Err(Errno::EACCES));
            assert_eq!(s.semctl(u, rd, 2, cmd), Err(Errno::EINVAL));
            assert_eq!(s.semctl(u, rd, -1, cmd), Err(Errno::EINVAL));
            assert_eq!(s.semctl(u, rd, 1, cmd), Ok(0));
            assert_eq!(s.semctl(r, id, 2, cmd), Err(Errno::EINVAL));
        }
        assert_eq!(s.semop(r, rd, &[(1, 5, 0)]), Ok(0));
        assert_eq!(s.semctl(u, rd, 1, GETVAL), Ok(5));
        assert_eq!(s.semctl(u, rd, 1, GETPID), Ok(pid(s, r)));
        assert_eq!(s.semctl(u, rd, 0, GETPID), Ok(0));
    });
}

/// GETALL: read permission; EFAULT for a bad buffer (after the checks).
#[test]
fn sem_ctl_2_getall() {
    uipc_testkit::conformance!("SEM-CTL-2", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.semget(r, IPC_PRIVATE, 3, 0o604).unwrap();
        assert_eq!(s.semctl_setall(r, id, &[1, 32767, 0]), Ok(0));
        assert_eq!(s.semctl_getall(u, id).unwrap(), vec![1, 32767, 0]);
        assert_eq!(s.semctl_fault(r, id, 0, GETALL), Err(Errno::EFAULT));
        assert_eq!(s.semctl_fault(r, id + 1, 0, GETALL), Err(Errno::EINVAL));
        let priv_ = s.semget(r, IPC_PRIVATE, 3, 0o600).unwrap();
        assert_eq!(s.semctl_getall(u, priv_), Err(Errno::EACCES));
        assert_eq!(s.semctl_fault(u, priv_, 0, GETALL), Err(Errno::EACCES));
        assert_eq!(s.semctl_getall(r, id + 32768), Err(Errno::EINVAL));
    });
}

/// SETVAL: the value range (ERANGE) before even the id lookup; then lookup,
/// semnum range (EINVAL) before write permission (EACCES). Effect: value,
/// sempid = caller; otime untouched when nobody completes.
#[test]
fn sem_ctl_3_setval() {
    uipc_testkit::conformance!("SEM-CTL-3", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.semget(r, IPC_PRIVATE, 2, 0o644).unwrap();
        assert_eq!(s.semctl_setval(r, id + 99, 0, 32768), Err(Errno::ERANGE));
        assert_eq!(s.semctl_setval(r, id + 99, 0, -1), Err(Errno::ERANGE));
        assert_eq!(s.semctl_setval(u, id, 9, i32::MIN), Err(Errno::ERANGE));
        assert_eq!(s.semctl_setval(r, id + 99, 0, 1), Err(Errno::EINVAL));
        assert_eq!(s.semctl_setval(u, id, 2, 1), Err(Errno::EINVAL));
        assert_eq!(s.semctl_setval(u, id, -1, 1), Err(Errno::EINVAL));
        assert_eq!(s.semctl_setval(u, id, 1, 1), Err(Errno::EACCES));
        assert_eq!(s.semctl_setval(r, id, 2, 1), Err(Errno::EINVAL));
        assert_eq!(s.semctl_setval(r, id, 1, 32767), Ok(0));
        assert_eq!(s.semctl_setval(r, id, 0, 0), Ok(0));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![0, 32767]);
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(pid(s, r)));
        assert_eq!(s.semctl(r, id, 1, GETPID), Ok(pid(s, r)));
        assert_eq!(s.sem_stat(r, id).unwrap().otime, 0);
        let w = s.semget(r, IPC_PRIVATE, 1, 0o666).unwrap();
        assert_eq!(s.semctl_setval(u, w, 0, 3), Ok(0));
        assert_eq!(s.semctl(r, w, 0, GETPID), Ok(pid(s, u)));
    });
}

/// SETALL: lookup, write permission, copy-in (EFAULT), then any value >
/// 32767 → ERANGE with nothing changed. Effect: every value, every sempid.
#[test]
fn sem_ctl_4_setall() {
    uipc_testkit::conformance!("SEM-CTL-4", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let a = s.root();
        let id = s.semget(r, IPC_PRIVATE, 3, 0o644).unwrap();
        assert_eq!(s.semctl_setall(r, id + 1, &[0, 0, 0]), Err(Errno::EINVAL));
        assert_eq!(s.semctl_setall(u, id, &[40000, 0, 0]), Err(Errno::EACCES));
        assert_eq!(s.semctl_fault(u, id, 0, SETALL), Err(Errno::EACCES));
        assert_eq!(s.semctl_fault(r, id + 1, 0, SETALL), Err(Errno::EINVAL));
        assert_eq!(s.semctl_fault(r, id, 0, SETALL), Err(Errno::EFAULT));
        assert_eq!(s.semop(a, id, &[(2, 9, 0)]), Ok(0));
        assert_eq!(s.semctl_setall(r, id, &[1, 2, 32768]), Err(Errno::ERANGE));
        assert_eq!(s.semctl_setall(r, id, &[65535, 2, 3]), Err(Errno::ERANGE));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![0, 0, 9]);
        assert_eq!(s.semctl(r, id, 2, GETPID), Ok(pid(s, a)));
        assert_eq!(s.semctl_setall(r, id, &[32767, 0, 5]), Ok(0));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![32767, 0, 5]);
        for n in 0..3 {
            assert_eq!(s.semctl(r, id, n, GETPID), Ok(pid(s, r)));
        }
    });
}

/// IPC_STAT takes an id (read permission); SEM_STAT a slot index (read
/// permission) and returns the full id; SEM_STAT_ANY skips the permission.
#[test]
fn sem_ctl_5_stat() {
    uipc_testkit::conformance!("SEM-CTL-5", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        let id = s.semget(r, 0x5e6c, 4, IPC_CREAT | 0o640).unwrap();
        assert_eq!(s.semctl(r, id, 0, IPC_RMID), Ok(0));
        let id = s.semget(r, 0x5e6c, 4, IPC_CREAT | 0o640).unwrap();
        let idx = id % 32768;
        let (v, ds) = s.semctl_stat(r, id, IPC_STAT).unwrap();
        assert_eq!((v, ds.key, ds.nsems, ds.mode, ds.otime, ds.unused_or), (0, 0x5e6c, 4, 0o640, 0, 0));
        assert_eq!(s.semctl_stat(r, idx, SEM_STAT).unwrap().0, i64::from(id));
        assert_eq!(s.semctl_stat(r, idx, SEM_STAT_ANY).unwrap().0, i64::from(id));
        // SEM_STAT ignores the seq: a full id is masked to its slot.
        assert_eq!(s.semctl_stat(r, idx + 32768 * 5, SEM_STAT).unwrap().0, i64::from(id));
        assert_eq!(s.semctl_stat(r, id + 32768, IPC_STAT).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.semctl_stat(u, id, IPC_STAT).map(drop), Err(Errno::EACCES));
        assert_eq!(s.semctl_stat(u, idx, SEM_STAT).map(drop), Err(Errno::EACCES));
        assert_eq!(s.semctl_stat(u, idx, SEM_STAT_ANY).unwrap().0, i64::from(id));
        assert_eq!(s.semctl_stat(r, idx + 1, SEM_STAT).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.semctl_stat(r, idx + 1, SEM_STAT_ANY).map(drop), Err(Errno::EINVAL));
        // A bad buffer: EFAULT after the checks.
        assert_eq!(s.semctl_fault(r, id, 0, IPC_STAT), Err(Errno::EFAULT));
        assert_eq!(s.semctl_fault(u, id, 0, IPC_STAT), Err(Errno::EACCES));
        assert_eq!(s.semctl_fault(r, idx, 0, SEM_STAT_ANY), Err(Errno::EFAULT));
        // otime once operated.
        assert_eq!(s.semop(r, id, &[(3, 1, 0)]), Ok(0));
        assert_ne!(s.sem_stat(r, id).unwrap().otime, 0);
    });
}

/// IPC_SET: the buffer is read before the lookup (EFAULT); ownership
/// (EPERM); only uid, gid and the low 9 mode bits change; cuid/cgid stay.
#[test]
fn sem_ctl_6_set() {
    uipc_testkit::conformance!("SEM-CTL-6", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let v = s.user(2000, 2000);
        let id = s.semget(r, IPC_PRIVATE, 1, 0o666).unwrap();
        assert_eq!(s.semctl_fault(r, id + 1, 0, IPC_SET), Err(Errno::EFAULT));
        assert_eq!(s.semctl_set(r, id + 1, 0, 0, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.semctl_set(u, id, 1000, 1000, 0o600), Err(Errno::EPERM));
        assert_eq!(s.semctl_set(r, id, 1000, 1000, 0o7640), Ok(0));
        let ds = s.sem_stat(r, id).unwrap();
        assert_eq!((ds.uid, ds.gid, ds.cuid, ds.cgid, ds.mode), (1000, 1000, 0, 0, 0o640));
        // The new owner may IPC_SET; another user may not.
        assert_eq!(s.semctl_set(u, id, 1000, 2000, 0o640), Ok(0));
        assert_eq!(s.semctl_set(v, id, 2000, 2000, 0o666), Err(Errno::EPERM));
        // v is in the new group: group read.
        assert_eq!(s.semctl_getall(v, id).unwrap(), vec![0]);
        // An unmappable uid → EINVAL, nothing changed.
        assert_eq!(s.semctl_set(u, id, u32::MAX, 1000, 0o600), Err(Errno::EINVAL));
        let ds = s.sem_stat(r, id).unwrap();
        assert_eq!((ds.uid, ds.gid, ds.mode, ds.otime), (1000, 2000, 0o640, 0));
    });
}

/// IPC_RMID: ownership (EPERM even with mode 0666), then the id is invalid at
/// once and the key free; the semaphores are given back.
#[test]
fn sem_ctl_7_rmid() {
    uipc_testkit::conformance!("SEM-CTL-7", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.semget(r, 0x5e67, 3, IPC_CREAT | 0o666).unwrap();
        assert_eq!(s.semctl(u, id, 0, IPC_RMID), Err(Errno::EPERM));
        assert_eq!(s.semctl(u, id + 1, 0, IPC_RMID), Err(Errno::EINVAL));
        assert_eq!(s.sem_info(r, SEM_INFO).unwrap().1.semaem, 3);
        // The semnum argument is ignored.
        assert_eq!(s.semctl(r, id, 77, IPC_RMID), Ok(0));
        assert_eq!(s.semctl(r, id, 0, IPC_RMID), Err(Errno::EINVAL));
        assert_eq!(s.semctl(r, id, 0, GETVAL), Err(Errno::EINVAL));
        assert_eq!(s.semget(r, 0x5e67, 0, 0), Err(Errno::ENOENT));
        let (_, info) = s.sem_info(r, SEM_INFO).unwrap();
        assert_eq!((info.semusz, info.semaem), (0, 0));
        let id2 = s.semget(u, 0x5e67, 1, IPC_CREAT | 0o600).unwrap();
        assert_ne!(id2, id);
        // A creator that is no longer uid keeps the right through cuid.
        assert_eq!(s.semctl_set(u, id2, 0, 0, 0o600), Ok(0));
        assert_eq!(s.semctl(u, id2, 0, IPC_RMID), Ok(0));
    });
}

/// IPC_INFO / SEM_INFO: the limits, the compile-time constants, the
/// per-command semusz/semaem, and the highest slot index in use.
#[test]
fn sem_ctl_8_info() {
    uipc_testkit::conformance!("SEM-CTL-8", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let (v, i) = s.sem_info(u, IPC_INFO).unwrap();
        assert_eq!(v, 0);
        assert_eq!((i.semmni, i.semmns, i.semmsl, i.semopm), (32000, 1024000000, 32000, 500));
        assert_eq!((i.semmap, i.semmnu, i.semume, i.semvmx), (1024000000, 1024000000, 500, 32767));
        assert_eq!((i.semusz, i.semaem), (20, 32767));
        let (v, i) = s.sem_info(u, SEM_INFO).unwrap();
        assert_eq!((v, i.semusz, i.semaem), (0, 0, 0));
        for n in [3, 5, 1] {
            s.semget(r, IPC_PRIVATE, n, 0o600).unwrap();
        }
        let last = s.semget(r, IPC_PRIVATE, 2, 0o600).unwrap();
        let first = last - 3;
        assert_eq!(s.semctl(r, first + 1, 0, IPC_RMID), Ok(0));
        let (v, i) = s.sem_info(u, SEM_INFO).unwrap();
        assert_eq!((v, i.semusz, i.semaem), (i64::from(last % 32768), 3, 6));
        assert_eq!((i.semmni, i.semmap, i.semvmx), (32000, 1024000000, 32767));
        let (v, i) = s.sem_info(u, IPC_INFO).unwrap();
        assert_eq!((v, i.semusz, i.semaem), (i64::from(last % 32768), 20, 32767));
        // The id is ignored (a non-negative one).
        assert_eq!(s.semctl_fault(r, 12345, 0, SEM_INFO), Err(Errno::EFAULT));
        assert_eq!(s.semctl_fault(r, 12345, 0, IPC_INFO), Err(Errno::EFAULT));
    });
}

/// otime changes only through operations: SETVAL, SETALL, IPC_SET, the
/// GET commands and failed semops leave it "never".
#[test]
fn sem_ctl_9_otime() {
    uipc_testkit::conformance!("SEM-CTL-9", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semctl_setval(r, id, 0, 4), Ok(0));
        assert_eq!(s.semctl_setall(r, id, &[1, 0]), Ok(0));
        assert_eq!(s.semctl_set(r, id, 0, 0, 0o660), Ok(0));
        for cmd in [GETVAL, GETPID, GETNCNT, GETZCNT] {
            s.semctl(r, id, 0, cmd).unwrap();
        }
        s.semctl_getall(r, id).unwrap();
        assert_eq!(s.semop(r, id, &[(1, -1, 0o4000)]), Err(Errno::EAGAIN));
        assert_eq!(s.semop(r, id, &[(0, 32767, 0)]), Err(Errno::ERANGE));
        let ds = s.sem_stat(r, id).unwrap();
        assert_eq!(ds.otime, 0);
        assert_ne!(ds.ctime, 0);
        assert_eq!(s.semop(r, id, &[(0, -1, 0)]), Ok(0));
        assert_ne!(s.sem_stat(r, id).unwrap().otime, 0);
    });
}
