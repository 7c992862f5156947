//! The semaphore model on SPEC's own examples (the differential suite
//! checks the same against the kernel; these run without root).
#![allow(clippy::unwrap_used, clippy::panic)]

use uipc_abi::{Errno, Sembuf, SEM_UNDO};
use uipc_core::cred::{CapSet, Cred, Gid, Pid, Uid};
use uipc_core::sysv::sem::{SemArg, SemCmd, SemCtlOut};
use uipc_core::wait::{Interrupt, Outcome, WaiterId, Wakeup};
use uipc_core::{HeapMemory, IpcNamespace, Time};

fn cred(pid: u32) -> Cred {
    Cred {
        pid: Pid(pid),
        euid: Uid(0),
        egid: Gid(0),
        groups: vec![],
        caps: CapSet(u64::MAX),
        memlock_limit: 0,
        posix: uipc_core::PosixIds::from_effective(Uid(0), Gid(0)),
    }
}

fn op(num: u16, op: i16, flg: i16) -> Sembuf {
    Sembuf { sem_num: num, sem_op: op, sem_flg: flg }
}

const NOW: Time = Time(100);
/// `IPC_NOWAIT` as a `sem_flg`.
const NOWAIT: i16 = 0o4000;

fn semop(ns: &mut IpcNamespace<HeapMemory>, pid: u32, id: i32, sops: &[Sembuf]) -> Result<Outcome<i64>, Errno> {
    ns.semtimedop(&cred(pid), NOW, id, sops.len(), Some(sops), None)
}

fn get(ns: &mut IpcNamespace<HeapMemory>, id: i32, num: i32, cmd: SemCmd) -> i64 {
    ns.semctl(&cred(1), NOW, id, num, cmd, SemArg::None).unwrap().0
}

fn blocked(o: Result<Outcome<i64>, Errno>) -> WaiterId {
    match o {
        Ok(Outcome::Blocked(w)) => w,
        other => panic!("expected to block, got {other:?}"),
    }
}

#[test]
fn hand_off_completes_the_sleeper_before_the_poster_can_take_it_back() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = ns.semget(&cred(1), NOW, 0, 1, 0o600).unwrap().0;
    let w = blocked(semop(&mut ns, 2, id, &[op(0, -1, 0)]));
    assert_eq!(get(&mut ns, id, 0, SemCmd::GetNcnt), 1);
    assert_eq!(semop(&mut ns, 3, id, &[op(0, 1, 0)]), Ok(Outcome::Done(0)));
    // SEM-WAIT-1: the waker applied the sleeper's -1; the poster's own -1 fails.
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(w, Ok(0))]);
    assert_eq!(semop(&mut ns, 3, id, &[op(0, -1, NOWAIT)]), Err(Errno::EAGAIN));
    assert_eq!(get(&mut ns, id, 0, SemCmd::GetPid), 2, "sempid is the sleeper's");
}

#[test]
fn fifo_skips_a_sleeper_that_cannot_complete() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = ns.semget(&cred(1), NOW, 0, 1, 0o600).unwrap().0;
    let a = blocked(semop(&mut ns, 2, id, &[op(0, -2, 0)]));
    let b = blocked(semop(&mut ns, 3, id, &[op(0, -1, 0)]));
    semop(&mut ns, 4, id, &[op(0, 1, 0)]).unwrap();
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(b, Ok(0))]);
    semop(&mut ns, 4, id, &[op(0, 2, 0)]).unwrap();
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(a, Ok(0))]);
}

#[test]
fn a_complex_sleeper_waits_while_a_simple_one_completes() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = ns.semget(&cred(1), NOW, 0, 2, 0o600).unwrap().0;
    let c = blocked(semop(&mut ns, 2, id, &[op(0, -1, 0), op(1, -1, 0)]));
    let d = blocked(semop(&mut ns, 3, id, &[op(0, -1, 0)]));
    semop(&mut ns, 4, id, &[op(0, 1, 0)]).unwrap();
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(d, Ok(0))]);
    // GETNCNT counts C on semaphore 0: its first blocking op is there.
    assert_eq!(get(&mut ns, id, 0, SemCmd::GetNcnt), 1);
    assert_eq!(get(&mut ns, id, 1, SemCmd::GetNcnt), 0);
    semop(&mut ns, 4, id, &[op(0, 1, 0), op(1, 1, 0)]).unwrap();
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(c, Ok(0))]);
}

#[test]
fn first_failing_op_decides() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = ns.semget(&cred(1), NOW, 0, 2, 0o600).unwrap().0;
    ns.semctl(&cred(1), NOW, id, 0, SemCmd::SetVal, SemArg::Val(32767)).unwrap();
    // [sem1 -1 (blocks), sem0 +1 (overflow)] sleeps.
    let w = blocked(semop(&mut ns, 2, id, &[op(1, -1, 0), op(0, 1, 0)]));
    assert_eq!(ns.sem_interrupt(w, Interrupt::Signal), Some(Err(Errno::EINTR)));
    assert_eq!(semop(&mut ns, 2, id, &[op(0, 1, 0), op(1, -1, NOWAIT)]), Err(Errno::ERANGE));
    assert_eq!(semop(&mut ns, 2, id, &[op(1, -1, NOWAIT), op(0, 1, 0)]), Err(Errno::EAGAIN));
}

#[test]
fn removal_wakes_every_sleeper_with_eidrm() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = ns.semget(&cred(1), NOW, 0, 2, 0o600).unwrap().0;
    let a = blocked(semop(&mut ns, 2, id, &[op(0, -1, 0)]));
    let b = blocked(semop(&mut ns, 3, id, &[op(0, -1, 0), op(1, 0, 0)]));
    ns.semctl(&cred(1), NOW, 1, 0, SemCmd::IpcRmid, SemArg::None).unwrap_err();
    ns.semctl(&cred(1), NOW, id, 0, SemCmd::IpcRmid, SemArg::None).unwrap();
    let mut woken = ns.take_wakeups();
    woken.sort_by_key(|w| w.waiter);
    assert_eq!(woken, vec![Wakeup::new(a, Err(Errno::EIDRM)), Wakeup::new(b, Err(Errno::EIDRM))]);
    assert_eq!(ns.sem_interrupt(a, Interrupt::Signal), None, "a finished call is never interrupted");
}

#[test]
fn undo_is_applied_at_exit_with_clamping() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = ns.semget(&cred(1), NOW, 0, 1, 0o600).unwrap().0;
    ns.semctl(&cred(1), NOW, id, 0, SemCmd::SetVal, SemArg::Val(5)).unwrap();
    semop(&mut ns, 2, id, &[op(0, -5, SEM_UNDO)]).unwrap();
    ns.semctl(&cred(1), NOW, id, 0, SemCmd::SetVal, SemArg::Val(1)).unwrap();
    // SETVAL cleared the adjustment: the exit adds nothing.
    ns.exit(Pid(2), Time(200));
    assert_eq!(get(&mut ns, id, 0, SemCmd::GetVal), 1);
    ns.semctl(&cred(1), NOW, id, 0, SemCmd::SetVal, SemArg::Val(0)).unwrap();
    semop(&mut ns, 3, id, &[op(0, 1, SEM_UNDO)]).unwrap();
    semop(&mut ns, 4, id, &[op(0, -1, 0)]).unwrap();
    // 0 + (-1) clamps to 0 (SEM-UNDO-3), and sempid is the exiting process.
    ns.exit(Pid(3), Time(300));
    assert_eq!(get(&mut ns, id, 0, SemCmd::GetVal), 0);
    assert_eq!(get(&mut ns, id, 0, SemCmd::GetPid), 3);
    match ns.semctl(&cred(1), NOW, id, 0, SemCmd::IpcStat, SemArg::None).unwrap().1 {
        SemCtlOut::Ds(ds) => assert_eq!(ds.sem_otime, 300, "exit-time undo stamps otime"),
        other => panic!("{other:?}"),
    }
}

/// The set's version (the sequence number a reader of its plain-data state
/// checks) advances with every observable change and never with a read or a
/// call that failed.
#[test]
fn version_advances_with_every_change_and_only_then() {
    use uipc_core::perm::PermUpdate;
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = ns.semget(&cred(1), NOW, 0, 2, 0o600).unwrap().0;
    let mut last = ns.sem_version(id).unwrap();
    let mut expect = |ns: &mut IpcNamespace<HeapMemory>, changed: bool, what: &str| {
        let now = ns.sem_version(id).unwrap();
        assert_eq!(now != last, changed, "{what}: version {last} -> {now}");
        last = now;
    };
    // Reads.
    get(&mut ns, id, 0, SemCmd::GetVal);
    ns.semctl(&cred(1), NOW, id, 0, SemCmd::GetAll, SemArg::None).unwrap();
    ns.semctl(&cred(1), NOW, id, 0, SemCmd::IpcStat, SemArg::None).unwrap();
    expect(&mut ns, false, "reads");
    // Failures.
    assert_eq!(semop(&mut ns, 2, id, &[op(0, -1, NOWAIT)]), Err(Errno::EAGAIN));
    assert!(ns.semctl(&cred(1), NOW, id, 5, SemCmd::SetVal, SemArg::Val(1)).is_err());
    expect(&mut ns, false, "failed calls");
    // Changes: semop (alter and wait-for-zero), SETVAL, SETALL, IPC_SET, a hand-off, undo at exit.
    semop(&mut ns, 2, id, &[op(0, 1, SEM_UNDO)]).unwrap();
    expect(&mut ns, true, "semop +1");
    semop(&mut ns, 2, id, &[op(1, 0, 0)]).unwrap();
    expect(&mut ns, true, "wait-for-zero (otime)");
    ns.semctl(&cred(1), NOW, id, 1, SemCmd::SetVal, SemArg::Val(3)).unwrap();
    expect(&mut ns, true, "SETVAL");
    ns.semctl(&cred(1), NOW, id, 0, SemCmd::SetAll, SemArg::Array(Some(&[0, 0]))).unwrap();
    expect(&mut ns, true, "SETALL");
    let update = PermUpdate { uid: 0, gid: 0, mode: 0o640 };
    ns.semctl(&cred(1), NOW, id, 0, SemCmd::IpcSet, SemArg::Set(update)).unwrap();
    expect(&mut ns, true, "IPC_SET");
    let w = blocked(semop(&mut ns, 3, id, &[op(0, -1, 0)]));
    expect(&mut ns, false, "a caller going to sleep");
    semop(&mut ns, 4, id, &[op(0, 1, SEM_UNDO)]).unwrap();
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(w, Ok(0))]);
    expect(&mut ns, true, "post with hand-off");
    ns.exit(Pid(4), Time(200));
    expect(&mut ns, true, "undo applied at exit");
    ns.exit(Pid(9), Time(200));
    expect(&mut ns, false, "exit of a process with no undo");
}

/// `unshare(CLONE_SYSVSEM)` applies the undo records as exit does, but
/// another thread of the process still asleep in semop stays asleep
/// (`ksys_unshare()` calls `exit_sem()` only).
#[test]
fn unshare_applies_undo_but_keeps_the_process_sleepers() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = ns.semget(&cred(1), NOW, 0, 2, 0o600).unwrap().0;
    semop(&mut ns, 2, id, &[op(0, 3, SEM_UNDO)]).unwrap();
    let w = blocked(semop(&mut ns, 2, id, &[op(1, -1, 0)]));
    ns.unshare(Pid(2), Time(200), false);
    assert_eq!(get(&mut ns, id, 0, SemCmd::GetVal), 0, "the +3 was undone");
    assert_eq!(get(&mut ns, id, 1, SemCmd::GetNcnt), 1, "the other thread still sleeps");
    ns.unshare(Pid(2), Time(300), true);
    assert_eq!(get(&mut ns, id, 0, SemCmd::GetVal), 0, "nothing left to undo");
    semop(&mut ns, 3, id, &[op(1, 1, 0)]).unwrap();
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(w, Ok(0))]);
}
