//! SHM-LIFE-1..5 (SPEC 2.5, and the shm column of section 9): fork, exec,
//! exit and kill against attachments; persistence; use after removal.
//!
//! Not covered: the thread rows of section 9 (thread exit does nothing, the
//! last thread's exit does) — the kit has no threads.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_CREAT, IPC_PRIVATE, IPC_RMID, SHM_DEST, SHM_RDONLY};

const PAGE: u64 = 4096;

fn pid(s: &uipc_testkit::Session, p: uipc_testkit::Proc) -> i32 {
    i32::try_from(s.pid(p)).unwrap()
}

/// Destruction happens at IPC_RMID with nattch 0, or at the detach that
/// takes a SHM_DEST segment to nattch 0; it frees the slot and shm_tot.
#[test]
fn shm_life_1_destruction() {
    uipc_testkit::conformance!("SHM-LIFE-1", |s| {
        let r = s.root();
        let a = s.shmget(r, IPC_PRIVATE, 2 * PAGE, 0o600).unwrap();
        let b = s.shmget(r, IPC_PRIVATE, 3 * PAGE, 0o600).unwrap();
        assert_eq!(s.shm_info(r, 0).unwrap().1.shm_tot, 5);
        assert_eq!(s.shmctl(r, a, IPC_RMID), Ok(0));
        assert_eq!(s.shm_info(r, 0).unwrap().1.shm_tot, 3);
        let at = s.shmat(r, b, 0, 0).unwrap();
        assert_eq!(s.shmctl(r, b, IPC_RMID), Ok(0));
        let (_, info) = s.shm_info(r, 0).unwrap();
        assert_eq!((info.used_ids, info.shm_tot), (1, 3));
        assert_eq!(s.shmdt(r, at), Ok(()));
        let (_, info) = s.shm_info(r, 0).unwrap();
        assert_eq!((info.used_ids, info.shm_tot), (0, 0));
        assert_eq!(s.shm_stat(r, b).map(drop), Err(Errno::EINVAL));
    });
}

/// fork: the child inherits every mapping (same addresses, same
/// protections): nattch += 1 per mapping, atime now, lpid = the parent.
#[test]
fn shm_life_2_fork() {
    uipc_testkit::conformance!("SHM-LIFE-2", |s| {
        let p = s.root();
        let id = s.shmget(p, IPC_PRIVATE, 3 * PAGE, 0o600).unwrap();
        let f = s.find_free(p, 4 * PAGE);
        assert_eq!(s.shmat(p, id, f, 0), Ok(f));
        let ro = s.shmat(p, id, 0, SHM_RDONLY).unwrap();
        assert_eq!(s.munmap(p, f + PAGE, PAGE), Ok(()));
        assert_eq!(s.write(p, f, b"parent"), Ok(()));
        assert_eq!(s.shm_stat(p, id).unwrap().nattch, 3);
        let c = s.fork(p);
        let ds = s.shm_stat(p, id).unwrap();
        assert_eq!((ds.nattch, ds.lpid), (6, pid(s, p)));
        assert_ne!(ds.atime, 0);
        assert_eq!(s.read(c, f, 6).unwrap(), b"parent");
        assert_eq!(s.read(c, ro, 6).unwrap(), b"parent");
        assert_eq!(s.write(c, f + 2 * PAGE, b"child"), Ok(()));
        assert_eq!(s.read(p, f + 2 * PAGE, 5).unwrap(), b"child");
        assert_eq!(s.write(c, ro, b"x"), Err(Errno::EFAULT));
        assert_eq!(s.read(c, f + PAGE, 1), Err(Errno::EFAULT));
        // The child's shmdt removes both of its fragments.
        assert_eq!(s.shmdt(c, f), Ok(()));
        let ds = s.shm_stat(p, id).unwrap();
        assert_eq!((ds.nattch, ds.lpid), (4, pid(s, c)));
        assert_eq!(s.read(p, f + 2 * PAGE, 5).unwrap(), b"child");
    });
}

/// exec detaches everything, as shmdt does (lpid = the exec'ing process).
#[test]
fn shm_life_3_exec() {
    uipc_testkit::conformance!("SHM-LIFE-3/exec", |s| {
        let p = s.root();
        let id = s.shmget(p, IPC_PRIVATE, PAGE, 0o600).unwrap();
        s.shmat(p, id, 0, 0).unwrap();
        s.shmat(p, id, 0, SHM_RDONLY).unwrap();
        let c = s.fork(p);
        assert_eq!(s.shm_stat(p, id).unwrap().nattch, 4);
        s.exec(c);
        let ds = s.shm_stat(p, id).unwrap();
        assert_eq!((ds.nattch, ds.lpid), (2, pid(s, c)));
        assert_ne!(ds.dtime, 0);
        // The exec'd process keeps serving and has no attachment left.
        let again = s.shmat(c, id, 0, 0).unwrap();
        assert_eq!(s.shm_stat(p, id).unwrap().nattch, 3);
        assert_eq!(s.shmdt(c, again), Ok(()));
    });
}

/// exit detaches everything (lpid = the exiting process).
#[test]
fn shm_life_3_exit() {
    uipc_testkit::conformance!("SHM-LIFE-3/exit", |s| {
        let p = s.root();
        let id = s.shmget(p, IPC_PRIVATE, PAGE, 0o600).unwrap();
        s.shmat(p, id, 0, 0).unwrap();
        let c = s.fork(p);
        s.shmat(c, id, 0, 0).unwrap();
        assert_eq!(s.shm_stat(p, id).unwrap().nattch, 3);
        s.exit(c);
        let ds = s.shm_stat(p, id).unwrap();
        assert_eq!((ds.nattch, ds.lpid), (1, pid(s, c)));
    });
}

/// SIGKILL detaches like exit.
#[test]
fn shm_life_3_kill() {
    uipc_testkit::conformance!("SHM-LIFE-3/kill", |s| {
        let p = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(p, IPC_PRIVATE, PAGE, 0o666).unwrap();
        s.shmat(u, id, 0, 0).unwrap();
        s.shmat(u, id, 0, 0).unwrap();
        s.kill(u);
        let ds = s.shm_stat(p, id).unwrap();
        assert_eq!((ds.nattch, ds.lpid), (0, pid(s, u)));
        assert_ne!(ds.dtime, 0);
    });
}

/// The last detach by exit, exec or kill destroys a SHM_DEST segment.
#[test]
fn shm_life_3_destroy_on_exit() {
    uipc_testkit::conformance!("SHM-LIFE-3/dest", |s| {
        let p = s.root();
        let a = s.shmget(p, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let b = s.shmget(p, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let c = s.shmget(p, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let xa = s.fork(p);
        let xb = s.fork(p);
        let xc = s.fork(p);
        s.shmat(xa, a, 0, 0).unwrap();
        s.shmat(xb, b, 0, 0).unwrap();
        s.shmat(xc, c, 0, 0).unwrap();
        for id in [a, b, c] {
            assert_eq!(s.shmctl(p, id, IPC_RMID), Ok(0));
            assert_eq!(s.shm_stat(p, id).unwrap().mode, SHM_DEST | 0o600);
        }
        s.exit(xa);
        s.exec(xb);
        s.kill(xc);
        for id in [a, b, c] {
            assert_eq!(s.shm_stat(p, id).map(drop), Err(Errno::EINVAL));
        }
        assert_eq!(s.shm_info(p, 0).unwrap().1.used_ids, 0);
    });
}

/// Removal does not invalidate mappings; after destruction a new segment
/// (same key, next slot) never shows the old contents.
#[test]
fn shm_life_4_use_after_rmid() {
    uipc_testkit::conformance!("SHM-LIFE-4", |s| {
        let p = s.root();
        let id = s.shmget(p, 0x11f4, PAGE, IPC_CREAT | 0o600).unwrap();
        let a = s.shmat(p, id, 0, 0).unwrap();
        assert_eq!(s.write(p, a, b"data"), Ok(()));
        assert_eq!(s.shmctl(p, id, IPC_RMID), Ok(0));
        assert_eq!(s.write(p, a + 4, b"more"), Ok(()));
        assert_eq!(s.read(p, a, 8).unwrap(), b"datamore");
        let c = s.fork(p);
        assert_eq!(s.read(c, a, 8).unwrap(), b"datamore");
        assert_eq!(s.write(c, a, b"DATA"), Ok(()));
        assert_eq!(s.shmdt(p, a), Ok(()));
        assert_eq!(s.shm_stat(p, id).unwrap().nattch, 1);
        s.exit(c);
        assert_eq!(s.shm_stat(p, id).map(drop), Err(Errno::EINVAL));
        let id2 = s.shmget(p, 0x11f4, PAGE, IPC_CREAT | 0o600).unwrap();
        let b = s.shmat(p, id2, 0, 0).unwrap();
        assert_eq!(s.read(p, b, 8).unwrap(), vec![0; 8]);
    });
}

/// Segments persist with nattch 0 and no process until removed.
#[test]
fn shm_life_5_persistence() {
    uipc_testkit::conformance!("SHM-LIFE-5", |s| {
        let p = s.root();
        let q = s.root();
        let id = s.shmget(q, 0x11f5, PAGE, IPC_CREAT | 0o600).unwrap();
        let a = s.shmat(q, id, 0, 0).unwrap();
        assert_eq!(s.write(q, a, b"kept"), Ok(()));
        assert_eq!(s.shmdt(q, a), Ok(()));
        s.exit(q);
        assert_eq!(s.shmget(p, 0x11f5, 0, 0), Ok(id));
        let ds = s.shm_stat(p, id).unwrap();
        assert_eq!((ds.nattch, ds.cpid, ds.lpid), (0, pid(s, q), pid(s, q)));
        let b = s.shmat(p, id, 0, 0).unwrap();
        assert_eq!(s.read(p, b, 4).unwrap(), b"kept");
    });
}
