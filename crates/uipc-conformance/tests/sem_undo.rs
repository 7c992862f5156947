//! SEM-UNDO-1..5 (SPEC 3.6, and the semaphore column of section 9): SEM_UNDO
//! adjustments and when they are applied — at exit, at SIGKILL, kept across
//! exec, not inherited by fork, cleared by SETVAL/SETALL, dropped with the set.
//!
//! Not covered, because the kit drives whole processes only: undo lists
//! shared by `CLONE_SYSVSEM` threads and applied when the last sharer exits
//! (SEM-UNDO-2's thread half), application at `unshare(CLONE_NEWIPC |
//! CLONE_SYSVSEM)` or `setns` (SEM-UNDO-3's first clause), and
//! `clone(CLONE_NEWIPC|CLONE_SYSVSEM)` → EINVAL and `unshare(CLONE_NEWIPC)`
//! applying the list at once (SEM-UNDO-5). The kit has no threads, no
//! `unshare` and no `clone` flags.
//! The adjustment range (ERANGE) is in sem_op.rs (`SEM-EVAL-2/semadj`).
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, GETNCNT, GETPID, GETVAL, IPC_PRIVATE, IPC_RMID, SEM_UNDO};

const UNDO: i16 = SEM_UNDO;

fn pid(s: &uipc_testkit::Session, p: uipc_testkit::Proc) -> i64 {
    i64::from(s.pid(p))
}

/// One record per set, accumulating every SEM_UNDO op (`semadj -= sem_op`);
/// at exit each non-zero adjustment is added back, with sempid = the exiting
/// process; semaphores whose adjustment is 0 keep their sempid.
#[test]
fn sem_undo_1_exit() {
    uipc_testkit::conformance!("SEM-UNDO-1", |s| {
        let r = s.root();
        let p = s.root();
        let a = s.semget(r, IPC_PRIVATE, 3, 0o600).unwrap();
        let b = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semctl_setall(r, a, &[0, 5, 0]), Ok(0));
        assert_eq!(s.semop(p, a, &[(0, 1, UNDO)]), Ok(0));
        assert_eq!(s.semop(p, a, &[(0, 1, UNDO), (1, -2, UNDO)]), Ok(0));
        assert_eq!(s.semop(p, a, &[(0, -1, UNDO), (2, 1, UNDO)]), Ok(0));
        assert_eq!(s.semop(p, a, &[(2, -1, UNDO), (0, 3, 0)]), Ok(0));
        assert_eq!(s.semop(p, b, &[(0, 7, UNDO)]), Ok(0));
        assert_eq!(s.semop(r, a, &[(2, 1, 0)]), Ok(0));
        assert_eq!(s.semctl_getall(r, a).unwrap(), vec![4, 3, 1]);
        s.exit(p);
        // s0: adjustment -1; s1: +2; s2: 0 (untouched, sempid stays r).
        assert_eq!(s.semctl_getall(r, a).unwrap(), vec![3, 5, 1]);
        assert_eq!(s.semctl(r, a, 0, GETPID), Ok(pid(s, p)));
        assert_eq!(s.semctl(r, a, 1, GETPID), Ok(pid(s, p)));
        assert_eq!(s.semctl(r, a, 2, GETPID), Ok(pid(s, r)));
        assert_eq!(s.semctl(r, b, 0, GETVAL), Ok(0));
        assert_ne!(s.sem_stat(r, b).unwrap().otime, 0);
    });
}

/// SIGKILL applies the undo list like exit.
#[test]
fn sem_undo_2_kill() {
    uipc_testkit::conformance!("SEM-UNDO-2/kill", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.semget(r, IPC_PRIVATE, 1, 0o666).unwrap();
        assert_eq!(s.semop(u, id, &[(0, 3, UNDO)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, 1, 0)]), Ok(0));
        s.kill(u);
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(1));
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(pid(s, u)));
    });
}

/// fork gives the child an empty undo list: its exit undoes only its own
/// operations; the parent's are undone at the parent's exit.
#[test]
fn sem_undo_2_fork() {
    uipc_testkit::conformance!("SEM-UNDO-2/fork", |s| {
        let r = s.root();
        let p = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop(p, id, &[(0, 2, UNDO)]), Ok(0));
        let c = s.fork(p);
        s.exit(c);
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(2));
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(pid(s, p)));
        let c2 = s.fork(p);
        assert_eq!(s.semop(c2, id, &[(0, 1, UNDO)]), Ok(0));
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(3));
        s.exit(c2);
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(2));
        s.exit(p);
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(0));
    });
}

/// execve keeps the undo list: the adjustment survives exec, further SEM_UNDO
/// ops add to it, and exit applies the total.
#[test]
fn sem_undo_2_exec() {
    uipc_testkit::conformance!("SEM-UNDO-2/exec", |s| {
        let r = s.root();
        let p = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop(p, id, &[(0, 2, UNDO)]), Ok(0));
        s.exec(p);
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(2));
        assert_eq!(s.semop(p, id, &[(0, 1, UNDO)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, 4, 0)]), Ok(0));
        s.exit(p);
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(4));
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(pid(s, p)));
    });
}

/// Application clamps into [0, 32767] and never blocks: 1 + (-5) → 0 and
/// 32765 + 5 → 32767.
#[test]
fn sem_undo_3_clamp() {
    uipc_testkit::conformance!("SEM-UNDO-3/clamp", |s| {
        let r = s.root();
        let p = s.root();
        let id = s.semget(r, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semctl_setall(r, id, &[0, 5]), Ok(0));
        assert_eq!(s.semop(p, id, &[(0, 5, UNDO), (1, -5, UNDO)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, -4, 0), (1, 32765, 0)]), Ok(0));
        s.exit(p);
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![0, 32767]);
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(pid(s, p)));
        assert_eq!(s.semctl(r, id, 1, GETPID), Ok(pid(s, p)));
    });
}

/// Exit-time undo re-examines the sleepers: a decrementer and a
/// wait-for-zero sleeper complete (sempid = each of them).
#[test]
fn sem_undo_3_wakes_sleepers() {
    uipc_testkit::conformance!("SEM-UNDO-3/wake", |s| {
        let r = s.root();
        let p = s.root();
        let w = s.root();
        let z = s.root();
        let id = s.semget(r, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semop(r, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.semop(p, id, &[(0, -1, UNDO), (1, 1, UNDO)]), Ok(0));
        assert_eq!(s.semop_async(w, id, &[(0, -1, 0)], None), None);
        assert_eq!(s.semop_async(z, id, &[(1, 0, 0)], None), None);
        s.kill(p);
        assert_eq!(s.finish(w), Ok(0));
        assert_eq!(s.finish(z), Ok(0));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![0, 0]);
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(pid(s, w)));
        assert_eq!(s.semctl(r, id, 1, GETPID), Ok(pid(s, z)));
        assert_eq!(s.semctl(r, id, 0, GETNCNT), Ok(0));
    });
}

/// A set removed while a process holds an undo record for it: the record is
/// dropped silently; the process's other records still apply at exit.
#[test]
fn sem_undo_3_removed_set() {
    uipc_testkit::conformance!("SEM-UNDO-3/removed", |s| {
        let r = s.root();
        let p = s.root();
        let a = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        let b = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop(p, a, &[(0, 1, UNDO)]), Ok(0));
        assert_eq!(s.semop(p, b, &[(0, 2, UNDO)]), Ok(0));
        assert_eq!(s.semctl(r, a, 0, IPC_RMID), Ok(0));
        assert_eq!(s.semop(p, a, &[(0, 1, UNDO)]), Err(Errno::EINVAL));
        let c = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semctl_setval(r, c, 0, 3), Ok(0));
        s.exit(p);
        assert_eq!(s.semctl(r, b, 0, GETVAL), Ok(0));
        assert_eq!(s.semctl(r, c, 0, GETVAL), Ok(3));
        assert_eq!(s.semctl(r, c, 0, GETPID), Ok(pid(s, r)));
    });
}

/// A record for a removed set is not applied to a new set that reuses the
/// id (made with kernel.sem_next_id): the new set starts a fresh record.
#[test]
fn sem_undo_3_reused_id() {
    uipc_testkit::conformance!("SEM-UNDO-3/reused-id", |s| {
        let r = s.root();
        let p = s.root();
        s.sysctl_set("kernel.sem_next_id", "5").unwrap();
        let a = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(a, 5);
        assert_eq!(s.semop(p, a, &[(0, 2, UNDO)]), Ok(0));
        assert_eq!(s.semctl(r, a, 0, IPC_RMID), Ok(0));
        s.sysctl_set("kernel.sem_next_id", "5").unwrap();
        let b = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(b, a);
        assert_eq!(s.semop(r, b, &[(0, 3, 0)]), Ok(0));
        assert_eq!(s.semop(p, b, &[(0, 1, UNDO)]), Ok(0));
        s.exit(p);
        assert_eq!(s.semctl(r, b, 0, GETVAL), Ok(3));
    });
}

/// SETVAL clears that semaphore's adjustment in every process's record;
/// SETALL clears all of them; other semaphores' adjustments stay.
#[test]
fn sem_undo_4_setval_setall_clear() {
    uipc_testkit::conformance!("SEM-UNDO-4", |s| {
        let r = s.root();
        let p = s.root();
        let q = s.root();
        let c = s.root();
        let id = s.semget(r, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semctl_setall(r, id, &[10, 10]), Ok(0));
        assert_eq!(s.semop(p, id, &[(0, -3, UNDO), (1, -1, UNDO)]), Ok(0));
        assert_eq!(s.semop(q, id, &[(0, -2, UNDO)]), Ok(0));
        assert_eq!(s.semctl_setval(r, id, 0, 5), Ok(0));
        s.exit(p);
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![5, 10]);
        s.exit(q);
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![5, 10]);
        // SETVAL before the op does not matter: the op's adjustment applies.
        assert_eq!(s.semctl_setval(c, id, 0, 10), Ok(0));
        assert_eq!(s.semop(c, id, &[(0, -10, UNDO), (1, 2, UNDO)]), Ok(0));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![0, 12]);
        let d = s.fork(c);
        assert_eq!(s.semop(d, id, &[(1, 1, UNDO)]), Ok(0));
        assert_eq!(s.semctl_setall(r, id, &[0, 4]), Ok(0));
        s.exit(d);
        s.exit(c);
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![0, 4]);
    });
}

/// The classic example: SETVAL 10 then -10 with SEM_UNDO; after exit the
/// value is 10 again.
#[test]
fn sem_undo_4_example() {
    uipc_testkit::conformance!("SEM-UNDO-4/example", |s| {
        let r = s.root();
        let c = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semctl_setval(c, id, 0, 10), Ok(0));
        assert_eq!(s.semop(c, id, &[(0, -10, UNDO)]), Ok(0));
        s.exit(c);
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(10));
    });
}

/// SIGKILL of a process asleep in semop: it leaves the queue (counts drop,
/// a later post is not handed to it) and its undo list is applied.
#[test]
fn sem_undo_2_kill_while_asleep() {
    uipc_testkit::conformance!("SEM-UNDO-2/kill-asleep", |s| {
        let r = s.root();
        let w = s.root();
        let id = s.semget(r, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semop(w, id, &[(1, 4, UNDO)]), Ok(0));
        assert_eq!(s.semop_async(w, id, &[(0, -1, UNDO)], None), None);
        assert_eq!(s.semctl(r, id, 0, GETNCNT), Ok(1));
        s.kill(w);
        assert_eq!(s.semctl(r, id, 0, GETNCNT), Ok(0));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![0, 0]);
        assert_eq!(s.semctl(r, id, 1, GETPID), Ok(pid(s, w)));
        assert_eq!(s.semop(r, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(1));
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(pid(s, r)));
    });
}
