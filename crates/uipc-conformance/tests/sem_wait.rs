//! SEM-WAIT-1..6 (SPEC 3.4): sleeping operations, hand-off, wake-up order,
//! GETNCNT/GETZCNT of sleepers, and how a sleep ends (completion, IPC_RMID,
//! timeout, signal).
//!
//! Not covered: SA_RESTART (the kit's SIGUSR1 handler never has it, so
//! "never restarted even with SA_RESTART" is not driven); spurious wake-ups;
//! whether the timeout struct is written back (the kit does not return it).
//! Durations are never asserted: a tiny timeout is only checked to give EAGAIN.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, GETNCNT, GETPID, GETVAL, GETZCNT, IPC_PRIVATE, IPC_RMID, SEM_UNDO};

/// `IPC_NOWAIT` as a `sem_flg`.
const NW: i16 = 0o4000;

fn pid(s: &uipc_testkit::Session, p: uipc_testkit::Proc) -> i64 {
    i64::from(s.pid(p))
}

/// The waker applies the sleeper's operation: the poster's own `-1
/// IPC_NOWAIT` right after its `+1` finds 0 (EAGAIN); sempid is the sleeper.
#[test]
fn sem_wait_1_handoff() {
    uipc_testkit::conformance!("SEM-WAIT-1", |s| {
        let p = s.root();
        let w = s.root();
        let id = s.semget(p, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop_async(w, id, &[(0, -1, 0)], None), None);
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(1));
        assert_eq!(s.sem_stat(p, id).unwrap().otime, 0);
        assert_eq!(s.semop(p, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.semop(p, id, &[(0, -1, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.semctl(p, id, 0, GETVAL), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, w)));
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(0));
        assert_eq!(s.finish(w), Ok(0));
        assert_ne!(s.sem_stat(p, id).unwrap().otime, 0);
    });
}

/// Hand-off of a wait-for-zero: the sleeper completed when the value hit 0,
/// even if the value is non-zero again when it returns.
#[test]
fn sem_wait_1_handoff_zero() {
    uipc_testkit::conformance!("SEM-WAIT-1/zero", |s| {
        let p = s.root();
        let z = s.root();
        let id = s.semget(p, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semctl_setval(p, id, 0, 1), Ok(0));
        assert_eq!(s.semop_async(z, id, &[(0, 0, 0)], None), None);
        assert_eq!(s.semctl(p, id, 0, GETZCNT), Ok(1));
        assert_eq!(s.semop(p, id, &[(0, -1, 0)]), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, z)));
        assert_eq!(s.semop(p, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.finish(z), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETZCNT), Ok(0));
    });
}

/// The hand-off also records the sleeper's SEM_UNDO adjustment: it is undone
/// when the sleeper exits.
#[test]
fn sem_wait_1_handoff_semadj() {
    uipc_testkit::conformance!("SEM-WAIT-1/semadj", |s| {
        let p = s.root();
        let w = s.root();
        let id = s.semget(p, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop_async(w, id, &[(0, -1, SEM_UNDO)], None), None);
        assert_eq!(s.semop(p, id, &[(0, 3, 0)]), Ok(0));
        assert_eq!(s.finish(w), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETVAL), Ok(2));
        s.exit(w);
        assert_eq!(s.semctl(p, id, 0, GETVAL), Ok(3));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, w)));
    });
}

/// Sleepers that can all complete are served in arrival order, one per post.
#[test]
fn sem_wait_2_fifo() {
    uipc_testkit::conformance!("SEM-WAIT-2/fifo", |s| {
        let p = s.root();
        let a = s.root();
        let b = s.root();
        let c = s.root();
        let id = s.semget(p, IPC_PRIVATE, 1, 0o600).unwrap();
        for w in [a, b, c] {
            assert_eq!(s.semop_async(w, id, &[(0, -1, 0)], None), None);
        }
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(3));
        for (n, w) in [a, b, c].into_iter().enumerate() {
            assert_eq!(s.semop(p, id, &[(0, 1, 0)]), Ok(0));
            assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, w)));
            assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(2 - i64::try_from(n).unwrap()));
            assert_eq!(s.finish(w), Ok(0));
        }
        assert_eq!(s.semctl(p, id, 0, GETVAL), Ok(0));
    });
}

/// One post large enough for everyone completes every sleeper in the same
/// call; the last one served is the last to arrive.
#[test]
fn sem_wait_2_one_post_many() {
    uipc_testkit::conformance!("SEM-WAIT-2/many", |s| {
        let p = s.root();
        let a = s.root();
        let b = s.root();
        let c = s.root();
        let id = s.semget(p, IPC_PRIVATE, 1, 0o600).unwrap();
        for w in [a, b, c] {
            assert_eq!(s.semop_async(w, id, &[(0, -1, 0)], None), None);
        }
        assert_eq!(s.semop(p, id, &[(0, 4, 0)]), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETVAL), Ok(1));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, c)));
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(0));
        for w in [a, b, c] {
            assert_eq!(s.finish(w), Ok(0));
        }
    });
}

/// No starvation protection: a head that cannot complete is skipped.
/// A(-2) then B(-1) at 0: +1 completes B; +2 then completes A.
#[test]
fn sem_wait_2_skip_head() {
    uipc_testkit::conformance!("SEM-WAIT-2/skip", |s| {
        let p = s.root();
        let a = s.root();
        let b = s.root();
        let id = s.semget(p, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop_async(a, id, &[(0, -2, 0)], None), None);
        assert_eq!(s.semop_async(b, id, &[(0, -1, 0)], None), None);
        assert_eq!(s.semop(p, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, b)));
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(1));
        assert_eq!(s.finish(b), Ok(0));
        assert_eq!(s.semop(p, id, &[(0, 2, 0)]), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, a)));
        assert_eq!(s.finish(a), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETVAL), Ok(0));
    });
}

/// Multi-op arrays share the FIFO: C=[s0 -1, s1 -1] then D=[s0 -1];
/// s0 +1 completes D while C keeps waiting; then s1 +1, s0 +1 complete C.
#[test]
fn sem_wait_2_complex() {
    uipc_testkit::conformance!("SEM-WAIT-2/complex", |s| {
        let p = s.root();
        let c = s.root();
        let d = s.root();
        let id = s.semget(p, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semop_async(c, id, &[(0, -1, 0), (1, -1, 0)], None), None);
        assert_eq!(s.semop_async(d, id, &[(0, -1, 0)], None), None);
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(2));
        assert_eq!(s.semop(p, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.finish(d), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, d)));
        // C was evaluated before D (blocking on s1), and again after D's
        // completion restarted the scan (blocking on s0 once more): the
        // counts follow the last evaluation (SEM-WAIT-3/4).
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(1));
        assert_eq!(s.semctl(p, id, 1, GETNCNT), Ok(0));
        assert_eq!(s.semop(p, id, &[(1, 1, 0)]), Ok(0));
        assert_eq!(s.semctl(p, id, 1, GETVAL), Ok(1));
        assert_eq!(s.semop(p, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.finish(c), Ok(0));
        assert_eq!(s.semctl_getall(p, id).unwrap(), vec![0, 0]);
        assert_eq!(s.semctl(p, id, 1, GETPID), Ok(pid(s, c)));
    });
}

/// Chains complete within the waking call: B=[s0 -1, s1 +1] completing lets
/// A=[s1 -1] (queued earlier) complete too.
#[test]
fn sem_wait_3_chain() {
    uipc_testkit::conformance!("SEM-WAIT-3/chain", |s| {
        let p = s.root();
        let a = s.root();
        let b = s.root();
        let id = s.semget(p, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semop_async(a, id, &[(1, -1, 0)], None), None);
        assert_eq!(s.semop_async(b, id, &[(0, -1, 0), (1, 1, 0)], None), None);
        assert_eq!(s.semop(p, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.semctl_getall(p, id).unwrap(), vec![0, 0]);
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, b)));
        assert_eq!(s.semctl(p, id, 1, GETPID), Ok(pid(s, a)));
        assert_eq!(s.finish(a), Ok(0));
        assert_eq!(s.finish(b), Ok(0));
    });
}

/// A completed sleeper that brings a value to 0 wakes the wait-for-zero
/// sleepers of that semaphore in the same call.
#[test]
fn sem_wait_3_chain_to_zero() {
    uipc_testkit::conformance!("SEM-WAIT-3/zero-chain", |s| {
        let p = s.root();
        let z = s.root();
        let d = s.root();
        let id = s.semget(p, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semctl_setval(p, id, 1, 1), Ok(0));
        assert_eq!(s.semop_async(z, id, &[(1, 0, 0)], None), None);
        assert_eq!(s.semop_async(d, id, &[(0, -1, 0), (1, -1, 0)], None), None);
        assert_eq!(s.semop(p, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.finish(d), Ok(0));
        assert_eq!(s.finish(z), Ok(0));
        assert_eq!(s.semctl(p, id, 1, GETPID), Ok(pid(s, z)));
        assert_eq!(s.semctl(p, id, 1, GETZCNT), Ok(0));
    });
}

/// Wait-for-zero sleepers are woken when the value is 0 after a change, all
/// of them, in arrival order; a transient 0 inside one array is not seen.
#[test]
fn sem_wait_3_zero_waiters() {
    uipc_testkit::conformance!("SEM-WAIT-3/zero", |s| {
        let p = s.root();
        let z1 = s.root();
        let z2 = s.root();
        let id = s.semget(p, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semctl_setval(p, id, 0, 1), Ok(0));
        assert_eq!(s.semop_async(z1, id, &[(0, 0, 0)], None), None);
        assert_eq!(s.semop_async(z2, id, &[(0, 0, 0)], None), None);
        assert_eq!(s.semctl(p, id, 0, GETZCNT), Ok(2));
        assert_eq!(s.semop(p, id, &[(0, -1, 0), (0, 1, 0)]), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETZCNT), Ok(2));
        assert_eq!(s.semop(p, id, &[(0, -1, 0)]), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETZCNT), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, z2)));
        assert_eq!(s.finish(z1), Ok(0));
        assert_eq!(s.finish(z2), Ok(0));
    });
}

/// GETNCNT/GETZCNT count each sleeper once, on the semaphore of its first
/// blocking op as of its last evaluation.
#[test]
fn sem_wait_4_counts() {
    uipc_testkit::conformance!("SEM-WAIT-4", |s| {
        let p = s.root();
        let t = s.root();
        let n = s.root();
        let id = s.semget(p, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semctl_setval(p, id, 0, 1), Ok(0));
        // [s1 -1, s0 0]: both would block; only s1 counts.
        assert_eq!(s.semop_async(t, id, &[(1, -1, 0), (0, 0, 0)], None), None);
        assert_eq!(s.semop_async(n, id, &[(1, -2, 0)], None), None);
        assert_eq!(s.semctl(p, id, 1, GETNCNT), Ok(2));
        assert_eq!(s.semctl(p, id, 0, GETZCNT), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(0));
        assert_eq!(s.semctl(p, id, 1, GETZCNT), Ok(0));
        // s1 = 1: t gets past its first op and now blocks on s0's zero op;
        // n still cannot complete.
        assert_eq!(s.semctl_setval(p, id, 1, 1), Ok(0));
        assert_eq!(s.semctl(p, id, 1, GETNCNT), Ok(1));
        assert_eq!(s.semctl(p, id, 0, GETZCNT), Ok(1));
        assert_eq!(s.semctl(p, id, 1, GETVAL), Ok(1));
        // An interrupted sleeper no longer counts.
        s.signal(n);
        assert_eq!(s.finish(n), Err(Errno::EINTR));
        assert_eq!(s.semctl(p, id, 1, GETNCNT), Ok(0));
        assert_eq!(s.semctl_setval(p, id, 0, 0), Ok(0));
        assert_eq!(s.finish(t), Ok(0));
        assert_eq!(s.semctl_getall(p, id).unwrap(), vec![0, 0]);
        assert_eq!(s.semctl(p, id, 0, GETZCNT), Ok(0));
    });
}

/// IPC_RMID ends every sleep with EIDRM: decrementers, wait-for-zero,
/// multi-op arrays and timed sleeps.
#[test]
fn sem_wait_5_rmid() {
    uipc_testkit::conformance!("SEM-WAIT-5/rmid", |s| {
        let p = s.root();
        let a = s.root();
        let b = s.root();
        let c = s.root();
        let d = s.root();
        let id = s.semget(p, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semctl_setval(p, id, 1, 1), Ok(0));
        assert_eq!(s.semop_async(a, id, &[(0, -1, 0)], None), None);
        assert_eq!(s.semop_async(b, id, &[(1, 0, 0)], None), None);
        assert_eq!(s.semop_async(c, id, &[(1, -1, SEM_UNDO), (0, -1, 0)], None), None);
        assert_eq!(s.semop_async(d, id, &[(0, -5, 0)], Some((600, 0))), None);
        assert_eq!(s.semctl(p, id, 0, IPC_RMID), Ok(0));
        for w in [a, b, c, d] {
            assert_eq!(s.finish(w), Err(Errno::EIDRM));
        }
        assert_eq!(s.semctl(p, id, 0, GETVAL), Err(Errno::EINVAL));
        assert_eq!(s.semop(a, id, &[(0, 1, 0)]), Err(Errno::EINVAL));
    });
}

/// A semtimedop that would block and times out → EAGAIN, including a {0,0}
/// timeout; nothing changes (otime stays never, no sleeper left).
#[test]
fn sem_wait_5_timeout() {
    uipc_testkit::conformance!("SEM-WAIT-5/timeout", |s| {
        let p = s.root();
        let id = s.semget(p, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semtimedop(p, id, &[(0, -1, 0)], Some((0, 0))), Err(Errno::EAGAIN));
        assert_eq!(s.semtimedop(p, id, &[(0, -1, 0)], Some((0, 1_000_000))), Err(Errno::EAGAIN));
        assert_eq!(s.semtimedop(p, id, &[(1, 1, 0), (0, -1, 0)], Some((0, 1))), Err(Errno::EAGAIN));
        assert_eq!(s.semctl_setval(p, id, 1, 1), Ok(0));
        assert_eq!(s.semtimedop(p, id, &[(1, 0, 0)], Some((0, 1_000_000))), Err(Errno::EAGAIN));
        assert_eq!(s.semctl_getall(p, id).unwrap(), vec![0, 1]);
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(0));
        assert_eq!(s.semctl(p, id, 1, GETZCNT), Ok(0));
        assert_eq!(s.sem_stat(p, id).unwrap().otime, 0);
    });
}

/// A timed sleeper completed before its timeout returns 0.
#[test]
fn sem_wait_5_timed_completes() {
    uipc_testkit::conformance!("SEM-WAIT-5/timed-ok", |s| {
        let p = s.root();
        let w = s.root();
        let id = s.semget(p, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop_async(w, id, &[(0, -1, 0)], Some((600, 0))), None);
        assert_eq!(s.semop(p, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.finish(w), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, w)));
    });
}

/// A signal ends the sleep with EINTR; nothing was applied and the sleeper
/// is gone from the counts and the queue.
#[test]
fn sem_wait_5_eintr() {
    uipc_testkit::conformance!("SEM-WAIT-5/eintr", |s| {
        let p = s.root();
        let w = s.root();
        let id = s.semget(p, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop_async(w, id, &[(0, -1, SEM_UNDO)], None), None);
        s.signal(w);
        assert_eq!(s.finish(w), Err(Errno::EINTR));
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(0));
        assert_eq!(s.semop(p, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETVAL), Ok(1));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, p)));
        // A timed sleep is interrupted the same way.
        assert_eq!(s.semop_async(w, id, &[(0, -2, 0)], Some((600, 0))), None);
        s.signal(w);
        assert_eq!(s.finish(w), Err(Errno::EINTR));
        // The interrupted process still works; it holds no adjustment.
        assert_eq!(s.semop(w, id, &[(0, -1, 0)]), Ok(0));
        s.exit(w);
        assert_eq!(s.semctl(p, id, 0, GETVAL), Ok(0));
    });
}

/// An operation that already happened is not reported as EINTR: post first,
/// then signal — the sleeper returns 0 and the value stays taken.
#[test]
fn sem_wait_5_done_before_signal() {
    uipc_testkit::conformance!("SEM-WAIT-5/no-eintr", |s| {
        let p = s.root();
        let w = s.root();
        let z = s.root();
        let id = s.semget(p, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semctl_setval(p, id, 1, 1), Ok(0));
        assert_eq!(s.semop_async(w, id, &[(0, -1, 0)], None), None);
        assert_eq!(s.semop_async(z, id, &[(1, 0, 0)], None), None);
        assert_eq!(s.semop(p, id, &[(0, 1, 0), (1, -1, 0)]), Ok(0));
        s.signal(w);
        s.signal(z);
        assert_eq!(s.finish(w), Ok(0));
        assert_eq!(s.finish(z), Ok(0));
        assert_eq!(s.semctl_getall(p, id).unwrap(), vec![0, 0]);
    });
}

/// SETVAL/SETALL that let a sleeper complete: sempid = the sleeper, otime
/// set; when nobody completes, otime is not touched.
#[test]
fn sem_wait_6_setval_setall() {
    uipc_testkit::conformance!("SEM-WAIT-6", |s| {
        let p = s.root();
        let w = s.root();
        let id = s.semget(p, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semop_async(w, id, &[(0, -2, 0)], None), None);
        assert_eq!(s.semctl_setval(p, id, 0, 1), Ok(0));
        assert_eq!(s.sem_stat(p, id).unwrap().otime, 0);
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, p)));
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(1));
        assert_eq!(s.semctl_setval(p, id, 0, 3), Ok(0));
        assert_eq!(s.finish(w), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETVAL), Ok(1));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(pid(s, w)));
        assert_ne!(s.sem_stat(p, id).unwrap().otime, 0);
        // SETALL: a fresh set, a sleeper on s1.
        let id2 = s.semget(p, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semop_async(w, id2, &[(1, -1, 0), (0, 0, 0)], None), None);
        assert_eq!(s.semctl_setall(p, id2, &[1, 1]), Ok(0));
        assert_eq!(s.sem_stat(p, id2).unwrap().otime, 0);
        assert_eq!(s.semctl(p, id2, 0, GETZCNT), Ok(1));
        assert_eq!(s.semctl_setall(p, id2, &[0, 1]), Ok(0));
        assert_eq!(s.finish(w), Ok(0));
        assert_eq!(s.semctl_getall(p, id2).unwrap(), vec![0, 0]);
        assert_eq!(s.semctl(p, id2, 0, GETPID), Ok(pid(s, w)));
        assert_eq!(s.semctl(p, id2, 1, GETPID), Ok(pid(s, w)));
        assert_ne!(s.sem_stat(p, id2).unwrap().otime, 0);
    });
}
