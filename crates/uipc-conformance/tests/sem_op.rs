//! SEM-OP-1..12 (SPEC 3.2, the argument and error order of
//! `semop`/`semtimedop`) and SEM-EVAL-1..6 (3.3, evaluation of an array).
//!
//! Not covered: a bad `sops` pointer (SEM-OP-2's "even with a bad sops
//! pointer", SEM-OP-4's EFAULT) — the kit always passes a real array;
//! allocation failure (SEM-OP-7's ENOMEM); SEM-OP-11's EIDRM, which needs a
//! removal racing with the call (the sleeper's EIDRM is in sem_wait.rs).
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, GETNCNT, GETPID, GETVAL, IPC_PRIVATE, IPC_RMID, SEM_UNDO};

/// `IPC_NOWAIT` as a `sem_flg`.
const NW: i16 = 0o4000;
const UNDO: i16 = SEM_UNDO;

fn pid(s: &uipc_testkit::Session, p: uipc_testkit::Proc) -> i64 {
    i64::from(s.pid(p))
}

/// semtimedop: a bad timeout pointer → EFAULT before everything else
/// (too many ops, no ops, a negative id).
#[test]
fn sem_op_1_timeout_efault_first() {
    uipc_testkit::conformance!("SEM-OP-1", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        let many = vec![(0, 1, 0); 501];
        assert_eq!(s.semtimedop_fault(r, id, &many), Err(Errno::EFAULT));
        assert_eq!(s.semtimedop_fault(r, id, &[]), Err(Errno::EFAULT));
        assert_eq!(s.semtimedop_fault(r, -1, &[(0, 1, 0)]), Err(Errno::EFAULT));
        assert_eq!(s.semtimedop_fault(r, id, &[(7, 1, 0)]), Err(Errno::EFAULT));
        assert_eq!(s.semtimedop_fault(r, id, &[(0, 1, 0)]), Err(Errno::EFAULT));
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(0));
    });
}

/// `nsops > semopm` (500) → E2BIG, before a negative or unknown id and a
/// bad timeout value.
#[test]
fn sem_op_2_e2big() {
    uipc_testkit::conformance!("SEM-OP-2", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        let many = vec![(0, 0, 0); 501];
        assert_eq!(s.semop(r, id, &many), Err(Errno::E2BIG));
        assert_eq!(s.semop(r, -1, &many), Err(Errno::E2BIG));
        assert_eq!(s.semop(r, id + 12345, &many), Err(Errno::E2BIG));
        assert_eq!(s.semtimedop(r, id, &many, Some((-1, 0))), Err(Errno::E2BIG));
        let ok = vec![(0, 0, 0); 500];
        assert_eq!(s.semop(r, id, &ok), Ok(0));
    });
}

/// `nsops == 0` → EINVAL (before the id and the timeout checks).
#[test]
fn sem_op_3_no_ops() {
    uipc_testkit::conformance!("SEM-OP-3", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop(r, id, &[]), Err(Errno::EINVAL));
        assert_eq!(s.semtimedop(r, id, &[], Some((0, 0))), Err(Errno::EINVAL));
        assert_eq!(s.semtimedop(r, id, &[], Some((-1, 0))), Err(Errno::EINVAL));
    });
}

/// `semid < 0` → EINVAL, before the semaphore-number check.
#[test]
fn sem_op_5_negative_id() {
    uipc_testkit::conformance!("SEM-OP-5", |s| {
        let r = s.root();
        s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop(r, -1, &[(0, 1, 0)]), Err(Errno::EINVAL));
        assert_eq!(s.semop(r, i32::MIN, &[(65535, 1, UNDO)]), Err(Errno::EINVAL));
    });
}

/// An invalid timeout value → EINVAL, even when the array would not block,
/// and before the lookup, EFBIG and EACCES; nothing is applied. A valid one
/// on an array that does not block changes nothing.
#[test]
fn sem_op_6_timeout_value() {
    uipc_testkit::conformance!("SEM-OP-6", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        for t in [(-1, 0), (0, -1), (0, 1_000_000_000), (i64::MIN, 0), (1, i64::MAX)] {
            assert_eq!(s.semtimedop(r, id, &[(0, 1, 0)], Some(t)), Err(Errno::EINVAL));
        }
        assert_eq!(s.semtimedop(r, id, &[(9, 1, 0)], Some((-1, 0))), Err(Errno::EINVAL));
        assert_eq!(s.semtimedop(u, id, &[(0, 1, 0)], Some((0, -1))), Err(Errno::EINVAL));
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(0));
        assert_eq!(s.semtimedop(r, id, &[(0, 1, 0)], Some((0, 999_999_999))), Ok(0));
        assert_eq!(s.semtimedop(r, id, &[(0, 1, 0)], Some((0, 0))), Ok(0));
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(2));
    });
}

/// SEM_UNDO on an id that names no set → EINVAL (the undo record lookup),
/// like the plain lookup; a stale id too.
#[test]
fn sem_op_7_undo_bad_id() {
    uipc_testkit::conformance!("SEM-OP-7", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop(r, id + 1, &[(0, 1, UNDO)]), Err(Errno::EINVAL));
        assert_eq!(s.semop(r, id, &[(0, 1, UNDO)]), Ok(0));
        assert_eq!(s.semctl(r, id, 0, IPC_RMID), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, 1, UNDO)]), Err(Errno::EINVAL));
        assert_eq!(s.semop(r, id, &[(0, 1, UNDO), (5, 1, 0)]), Err(Errno::EINVAL));
    });
}

/// The lookup checks the seq: a stale id (same slot, older seq), a removed
/// id and an empty slot → EINVAL, even with sem_num out of range.
#[test]
fn sem_op_8_lookup() {
    uipc_testkit::conformance!("SEM-OP-8", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop(r, id + 32768, &[(0, 1, 0)]), Err(Errno::EINVAL));
        assert_eq!(s.semop(r, id + 5, &[(0, 1, 0)]), Err(Errno::EINVAL));
        assert_eq!(s.semctl(r, id, 0, IPC_RMID), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, 1, 0)]), Err(Errno::EINVAL));
        assert_eq!(s.semop(r, id, &[(3, 1, 0)]), Err(Errno::EINVAL));
    });
}

/// Any `sem_num >= nsems` → EFBIG, checked before the permission; the other
/// ops of the array are not applied.
#[test]
fn sem_op_9_efbig() {
    uipc_testkit::conformance!("SEM-OP-9", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.semget(r, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semop(r, id, &[(0, 1, 0), (2, 1, 0)]), Err(Errno::EFBIG));
        assert_eq!(s.semop(r, id, &[(65535, 0, NW)]), Err(Errno::EFBIG));
        assert_eq!(s.semop(r, id, &[(2, 1, UNDO)]), Err(Errno::EFBIG));
        assert_eq!(s.semop(u, id, &[(2, 1, 0)]), Err(Errno::EFBIG));
        assert_eq!(s.semop(u, id, &[(1, 1, 0)]), Err(Errno::EACCES));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![0, 0]);
    });
}

/// Permission: write ("alter") if any op is non-zero, else read.
#[test]
fn sem_op_10_permission() {
    uipc_testkit::conformance!("SEM-OP-10", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let ro = s.semget(r, IPC_PRIVATE, 2, 0o444).unwrap();
        let wo = s.semget(r, IPC_PRIVATE, 2, 0o222).unwrap();
        assert_eq!(s.semop(u, ro, &[(0, 0, 0), (1, 0, 0)]), Ok(0));
        assert_eq!(s.semop(u, ro, &[(0, 1, 0)]), Err(Errno::EACCES));
        assert_eq!(s.semop(u, ro, &[(0, -1, NW)]), Err(Errno::EACCES));
        assert_eq!(s.semop(u, ro, &[(0, 0, 0), (1, 1, 0)]), Err(Errno::EACCES));
        assert_eq!(s.semop(u, wo, &[(0, 0, 0)]), Err(Errno::EACCES));
        assert_eq!(s.semop(u, wo, &[(0, 1, 0)]), Ok(0));
        // Write alone suffices for a mixed array, even one with zero ops.
        assert_eq!(s.semop(u, wo, &[(1, 0, 0), (0, -1, 0)]), Ok(0));
        // Permission comes before evaluation (EAGAIN, ERANGE).
        assert_eq!(s.semop(u, ro, &[(0, -1, NW)]), Err(Errno::EACCES));
        assert_eq!(s.semop(u, ro, &[(0, 32767, 0), (0, 1, 0)]), Err(Errno::EACCES));
        // Root (CAP_IPC_OWNER) passes whatever the mode.
        let none = s.semget(u, IPC_PRIVATE, 1, 0o000).unwrap();
        assert_eq!(s.semop(u, none, &[(0, 0, 0)]), Err(Errno::EACCES));
        assert_eq!(s.semop(r, none, &[(0, 1, 0)]), Ok(0));
    });
}

/// Evaluation results in order: ERANGE, EAGAIN, success.
#[test]
fn sem_op_12_evaluation_results() {
    uipc_testkit::conformance!("SEM-OP-12", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop(r, id, &[(0, -1, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.semop(r, id, &[(0, 32767, 0)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, 1, 0)]), Err(Errno::ERANGE));
        assert_eq!(s.semop(r, id, &[(0, 0, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.semop(r, id, &[(0, -32767, 0)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, 0, 0)]), Ok(0));
    });
}

/// All or nothing: a failing array leaves every value as it was.
#[test]
fn sem_eval_1_atomic() {
    uipc_testkit::conformance!("SEM-EVAL-1", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 3, 0o600).unwrap();
        assert_eq!(s.semctl_setall(r, id, &[1, 0, 32767]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, 1, 0), (1, -1, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.semop(r, id, &[(0, -1, 0), (1, 5, 0), (2, 1, 0)]), Err(Errno::ERANGE));
        assert_eq!(s.semop(r, id, &[(0, -1, 0), (1, 1, 0), (2, 0, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![1, 0, 32767]);
        assert_eq!(s.semop(r, id, &[(0, -1, 0), (1, 1, 0), (2, -7, 0)]), Ok(0));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![0, 1, 32760]);
    });
}

/// Per op, with the values as changed by earlier ops of the same call; the
/// SEMVMX bound; wait-for-zero on a value made non-zero earlier.
#[test]
fn sem_eval_2_running_values() {
    uipc_testkit::conformance!("SEM-EVAL-2", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop(r, id, &[(0, 2, 0), (0, -2, 0), (0, 0, 0)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, 1, 0), (0, 0, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.semop(r, id, &[(0, 30000, 0), (0, 2767, 0)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, -1, 0), (0, 2, 0)]), Err(Errno::ERANGE));
        assert_eq!(s.semop(r, id, &[(0, -1, 0), (0, 1, 0)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, -32767, 0), (0, 32767, 0), (0, -32767, 0)]), Ok(0));
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(0));
    });
}

/// SEM_UNDO: the new adjustment `semadj - sem_op` must stay within
/// [-32768, 32767], else ERANGE — also for a negative sem_op.
#[test]
fn sem_eval_2_semadj_range() {
    uipc_testkit::conformance!("SEM-EVAL-2/semadj", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 2, 0o600).unwrap();
        // Upper bound: adj 32767 after -32767, then one more -1 → 32768.
        assert_eq!(s.semop(r, id, &[(0, 32767, 0)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, -32767, UNDO)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, -1, UNDO)]), Err(Errno::ERANGE));
        assert_eq!(s.semop(r, id, &[(0, -1, UNDO | NW)]), Err(Errno::ERANGE));
        assert_eq!(s.semop(r, id, &[(0, -1, 0)]), Ok(0));
        // Lower bound: adj -32767, then +1 → -32768 is fine, +1 more is not.
        assert_eq!(s.semop(r, id, &[(1, 32767, UNDO)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(1, -1, 0)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(1, 1, UNDO)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(1, -1, 0)]), Ok(0));
        assert_eq!(s.semop(r, id, &[(1, 1, UNDO)]), Err(Errno::ERANGE));
        // Within one array, the running adjustment counts.
        assert_eq!(s.semop(r, id, &[(1, -1, UNDO), (1, 1, UNDO), (1, 1, UNDO)]), Err(Errno::ERANGE));
        assert_eq!(s.semop(r, id, &[(1, -1, UNDO), (1, 1, UNDO)]), Ok(0));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![0, 32766]);
    });
}

/// The first failing op decides: a blocking op before an overflowing one
/// sleeps; an overflow before a blocking op is ERANGE; IPC_NOWAIT counts only
/// on the op that blocks.
#[test]
fn sem_eval_3_first_failure_decides() {
    uipc_testkit::conformance!("SEM-EVAL-3", |s| {
        let r = s.root();
        let w = s.root();
        let id = s.semget(r, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semctl_setval(r, id, 0, 32767), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, 1, 0), (1, -1, NW)]), Err(Errno::ERANGE));
        assert_eq!(s.semop(r, id, &[(1, -1, NW), (0, 1, 0)]), Err(Errno::EAGAIN));
        // NOWAIT on an op that does not block does not stop the sleep.
        assert_eq!(s.semop(r, id, &[(1, -1, NW), (0, 1, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.semop_async(w, id, &[(1, -1, 0), (0, 1, NW)], None), None);
        assert_eq!(s.semctl(r, id, 1, GETNCNT), Ok(1));
        s.signal(w);
        assert_eq!(s.finish(w), Err(Errno::EINTR));
        assert_eq!(s.semop_async(w, id, &[(0, -1, NW), (1, -1, 0)], None), None);
        s.signal(w);
        assert_eq!(s.finish(w), Err(Errno::EINTR));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![32767, 0]);
    });
}

/// A negative sem_op never overflows: -32768 on any value blocks or EAGAINs.
#[test]
fn sem_eval_4_negative_never_erange() {
    uipc_testkit::conformance!("SEM-EVAL-4", |s| {
        let r = s.root();
        let id = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop(r, id, &[(0, -32768, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.semctl_setval(r, id, 0, 32767), Ok(0));
        assert_eq!(s.semop(r, id, &[(0, -32768, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.semop(r, id, &[(0, -32768, NW | UNDO)]), Err(Errno::EAGAIN));
        assert_eq!(s.semctl(r, id, 0, GETVAL), Ok(32767));
    });
}

/// Duplicates: `[+1, -1, 0]` on a semaphore at 0 succeeds; a failing array
/// leaves values and semadj untouched (checked through exit-time undo).
#[test]
fn sem_eval_5_duplicates() {
    uipc_testkit::conformance!("SEM-EVAL-5", |s| {
        let r = s.root();
        let c = s.root();
        let id = s.semget(r, IPC_PRIVATE, 2, 0o600).unwrap();
        assert_eq!(s.semop(r, id, &[(0, 1, 0), (0, -1, 0), (0, 0, 0)]), Ok(0));
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(pid(s, r)));
        assert_eq!(s.semctl_setval(r, id, 0, 5), Ok(0));
        assert_eq!(s.semop(c, id, &[(0, 1, UNDO), (0, 1, UNDO), (1, -1, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.semop(c, id, &[(0, -2, UNDO), (0, 32767, UNDO)]), Err(Errno::ERANGE));
        assert_eq!(s.semop(c, id, &[(1, 0, UNDO)]), Ok(0));
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![5, 0]);
        s.exit(c);
        assert_eq!(s.semctl_getall(r, id).unwrap(), vec![5, 0]);
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(pid(s, r)));
    });
}

/// Success: sempid = caller for every semaphore named (wait-for-zero ops
/// included), not for the others; otime = now, also for an array of
/// wait-for-zero ops only; a failed call changes neither.
#[test]
fn sem_eval_6_sempid_and_otime() {
    uipc_testkit::conformance!("SEM-EVAL-6", |s| {
        let r = s.root();
        let a = s.root();
        let b = s.root();
        let id = s.semget(r, IPC_PRIVATE, 3, 0o600).unwrap();
        assert_eq!(s.semop(a, id, &[(0, -1, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.sem_stat(r, id).unwrap().otime, 0);
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(0));
        assert_eq!(s.semop(a, id, &[(1, 0, 0), (2, 0, 0)]), Ok(0));
        assert_ne!(s.sem_stat(r, id).unwrap().otime, 0);
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(0));
        assert_eq!(s.semctl(r, id, 1, GETPID), Ok(pid(s, a)));
        assert_eq!(s.semctl(r, id, 2, GETPID), Ok(pid(s, a)));
        assert_eq!(s.semop(b, id, &[(0, 1, 0), (1, 0, 0)]), Ok(0));
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(pid(s, b)));
        assert_eq!(s.semctl(r, id, 1, GETPID), Ok(pid(s, b)));
        assert_eq!(s.semctl(r, id, 2, GETPID), Ok(pid(s, a)));
        assert_eq!(s.semop(a, id, &[(2, 1, 0), (0, 0, NW)]), Err(Errno::EAGAIN));
        assert_eq!(s.semctl(r, id, 2, GETPID), Ok(pid(s, a)));
        assert_eq!(s.semctl(r, id, 0, GETPID), Ok(pid(s, b)));
        // otime on a fresh set through a wait-for-zero-only array.
        let z = s.semget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.semop(b, z, &[(0, 0, 0)]), Ok(0));
        assert_ne!(s.sem_stat(r, z).unwrap().otime, 0);
        assert_eq!(s.semctl(r, z, 0, GETPID), Ok(pid(s, b)));
    });
}
