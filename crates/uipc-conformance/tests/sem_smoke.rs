//! Tests of the kernel oracle's semaphore operations: does the agent really
//! run semget/semop/semtimedop/semctl, see a process asleep in semop, and
//! interrupt it with a signal? Kernel only (no uipc backend is involved).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use uipc_abi::{
    Errno, GETALL, GETNCNT, GETPID, GETVAL, GETZCNT, IPC_CREAT, IPC_INFO, IPC_PRIVATE, IPC_RMID, SEM_INFO, SEM_STAT_ANY,
};
use uipc_testkit::backend::Started;
use uipc_testkit::op::{SemBuf, Timeout};
use uipc_testkit::sandbox::oracle_unavailable;
use uipc_testkit::{transcript_of, Backend, Identity, KernelBackend, Op, Session};

const AGENT: &str = env!("CARGO_BIN_EXE_uipc-kernel-agent");

/// `IPC_NOWAIT` as a `sem_flg`.
const NOWAIT: i16 = 0o4000;

/// Runs `body` on a fresh kernel oracle; skips (passing) where the oracle
/// cannot run. Panics with the transcript if the body panicked.
fn on_kernel(name: &str, body: impl Fn(&mut Session)) -> Vec<String> {
    if let Some(why) = oracle_unavailable() {
        eprintln!("SKIP {name}: {why}");
        return Vec::new();
    }
    let mut k = KernelBackend::start(AGENT).expect("agent starts");
    let t = transcript_of(&mut k, &body);
    if std::env::var_os("UIPC_SHOW_TRANSCRIPT").is_some() {
        eprintln!("{name}:\n  {}", t.join("\n  "));
    }
    if t.last().is_some_and(|l| l.starts_with("PANIC")) {
        panic!("{name}:\n{}", t.join("\n"));
    }
    t
}

#[test]
fn semget_semop_getval_getall_stat_info() {
    let t = on_kernel("basics", |s| {
        let p = s.root();
        let id = s.semget(p, IPC_PRIVATE, 2, IPC_CREAT | 0o600).unwrap();
        assert_eq!(id, 0, "first id of a fresh namespace");
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(0));
        assert_eq!(s.semop(p, id, &[(0, 3, 0), (1, 1, 0)]), Ok(0));
        assert_eq!(s.semctl(p, id, 0, GETVAL), Ok(3));
        assert_eq!(s.semctl(p, id, 1, GETVAL), Ok(1));
        assert_eq!(s.semctl(p, id, 2, GETVAL), Err(Errno::EINVAL));
        assert_eq!(s.semctl(p, id, 0, GETPID), Ok(i64::from(s.pid(p))));
        assert_eq!(s.semop(p, id, &[(0, -4, NOWAIT)]), Err(Errno::EAGAIN));
        assert_eq!(s.semop(p, id, &[(2, 1, 0)]), Err(Errno::EFBIG));
        assert_eq!(s.semctl_getall(p, id), Ok(vec![3, 1]));
        assert_eq!(s.semctl_setall(p, id, &[7, 9]), Ok(0));
        assert_eq!(s.semctl_getall(p, id), Ok(vec![7, 9]));
        assert_eq!(s.semctl_setall(p, id, &[32768, 0]), Err(Errno::ERANGE));
        assert_eq!(s.semctl_setval(p, id, 1, 5), Ok(0));
        assert_eq!(s.semctl_setval(p, id, 1, -1), Err(Errno::ERANGE));
        assert_eq!(s.semctl(p, id, 1, GETVAL), Ok(5));

        let ds = s.sem_stat(p, id).unwrap();
        assert_eq!((ds.nsems, ds.mode & 0o777, ds.uid, ds.cuid, ds.unused_or), (2, 0o600, 0, 0, 0));
        assert!(ds.otime > 0 && ds.ctime > 0);
        let (ret, any) = s.semctl_stat(p, id & 0x7fff, SEM_STAT_ANY).unwrap();
        assert_eq!((ret, any), (i64::from(id), ds));
        assert_eq!(s.semctl_set(p, id, 1, 2, 0o640), Ok(0));
        let ds = s.sem_stat(p, id).unwrap();
        assert_eq!((ds.uid, ds.gid, ds.mode & 0o777), (1, 2, 0o640));

        let (_, info) = s.sem_info(p, IPC_INFO).unwrap();
        assert_eq!((info.semvmx, info.semaem, info.semusz), (32767, 32767, 20));
        let (_, info) = s.sem_info(p, SEM_INFO).unwrap();
        assert_eq!((info.semusz, info.semaem), (1, 2), "SEM_INFO: sets and semaphores in use");

        assert_eq!(s.semctl_fault(p, id, 0, GETALL), Err(Errno::EFAULT));
        assert_eq!(s.semtimedop_fault(p, id, &[(0, 1, 0)]), Err(Errno::EFAULT));
        assert_eq!(s.semtimedop(p, id, &[(0, 1, 0)], Some((0, 1_000_000_000))), Err(Errno::EINVAL));

        // GETALL of a set larger than the small control buffer.
        let big = s.semget(p, IPC_PRIVATE, 300, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.semop(p, big, &[(299, 2, 0)]), Ok(0));
        let all = s.semctl_getall(p, big).unwrap();
        assert_eq!(all.len(), 300);
        assert_eq!((all[0], all[299]), (0, 2));
        let mut values = vec![1u16; 300];
        values[150] = 150;
        assert_eq!(s.semctl_setall(p, big, &values), Ok(0));
        assert_eq!(s.semctl(p, big, 150, GETVAL), Ok(150));
        assert_eq!(s.semctl(p, big, 299, GETVAL), Ok(1));
    });
    if !t.is_empty() {
        assert!(t.iter().any(|l| l.contains("GETPID) -> pid:P0")), "GETPID as a pid fact:\n{}", t.join("\n"));
    }
}

#[test]
fn blocked_semop_completed_by_a_post_with_hand_off() {
    let t = on_kernel("hand-off", |s| {
        let p0 = s.root();
        let p1 = s.root();
        let id = s.semget(p0, IPC_PRIVATE, 1, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.semop_async(p1, id, &[(0, -1, 0)], None), None, "P1 sleeps");
        assert_eq!(s.semctl(p0, id, 0, GETNCNT), Ok(1));
        assert_eq!(s.semctl(p0, id, 0, GETZCNT), Ok(0));
        assert_eq!(s.semop(p0, id, &[(0, 1, 0)]), Ok(0));
        // The poster applied P1's decrement on its behalf: nothing is left.
        assert_eq!(s.semop(p0, id, &[(0, -1, NOWAIT)]), Err(Errno::EAGAIN));
        assert_eq!(s.finish(p1), Ok(0));
        assert_eq!(s.semctl(p0, id, 0, GETVAL), Ok(0));
        assert_eq!(s.semctl(p0, id, 0, GETNCNT), Ok(0));
        assert_eq!(s.semctl(p0, id, 0, GETPID), Ok(i64::from(s.pid(p1))));

        // Wait-for-zero sleepers count in GETZCNT; a call that completes at once is Some.
        assert_eq!(s.semop_async(p1, id, &[(0, 0, 0)], None), Some(Ok(0)));
        s.semctl_setval(p0, id, 0, 2).unwrap();
        assert_eq!(s.semop_async(p1, id, &[(0, 0, 0)], None), None);
        assert_eq!(s.semctl(p0, id, 0, GETZCNT), Ok(1));
        assert_eq!(s.semop(p0, id, &[(0, -2, 0)]), Ok(0));
        assert_eq!(s.finish(p1), Ok(0));
        assert_eq!(s.semctl(p0, id, 0, GETZCNT), Ok(0));
    });
    if !t.is_empty() {
        let joined = t.join("\n");
        assert!(joined.contains("P1 semop(0, [{0, -1, 0o0}]) blocks"), "{joined}");
        assert!(joined.contains("P1 semop(0, [{0, -1, 0o0}]) finished -> 0"), "{joined}");
        assert!(joined.contains("GETPID) -> pid:P1"), "{joined}");
    }
}

#[test]
fn signal_interrupts_a_sleeping_semop_also_after_fork_and_exec() {
    on_kernel("eintr", |s| {
        let p0 = s.root();
        let p1 = s.user(1000, 1000);
        let id = s.semget(p0, IPC_PRIVATE, 1, IPC_CREAT | 0o666).unwrap();
        // An idle process survives the signal.
        s.signal(p1);
        assert_eq!(s.semop(p1, id, &[(0, 1, 0)]), Ok(0));
        assert_eq!(s.semop_async(p1, id, &[(0, -2, 0)], None), None);
        s.signal(p1);
        assert_eq!(s.finish(p1), Err(Errno::EINTR));
        assert_eq!(s.semctl(p0, id, 0, GETNCNT), Ok(0));
        assert_eq!(s.semctl(p0, id, 0, GETVAL), Ok(1), "an interrupted semop changes nothing");

        let c = s.fork(p1);
        assert_eq!(s.semop_async(c, id, &[(0, -2, 0)], None), None);
        s.signal(c);
        assert_eq!(s.finish(c), Err(Errno::EINTR));

        s.exec(p1);
        s.signal(p1);
        assert_eq!(s.semop_async(p1, id, &[(0, -2, 0)], None), None);
        s.signal(p1);
        assert_eq!(s.finish(p1), Err(Errno::EINTR));
        assert_eq!(s.semop(p1, id, &[(0, -1, NOWAIT)]), Ok(0));
    });
}

#[test]
fn semtimedop_times_out_with_eagain() {
    on_kernel("timeout", |s| {
        let p = s.root();
        let id = s.semget(p, IPC_PRIVATE, 1, IPC_CREAT | 0o600).unwrap();
        // {0, 0} that would block: EAGAIN at once.
        assert_eq!(s.semtimedop(p, id, &[(0, -1, 0)], Some((0, 0))), Err(Errno::EAGAIN));
        // A short sleep, run to its end by the plain call.
        assert_eq!(s.semtimedop(p, id, &[(0, -1, 0)], Some((0, 20_000_000))), Err(Errno::EAGAIN));
        // Started: asleep (or already timed out on a slow machine), then EAGAIN.
        match s.semop_async(p, id, &[(0, -1, 0)], Some((0, 300_000_000))) {
            None => assert_eq!(s.finish(p), Err(Errno::EAGAIN)),
            Some(r) => assert_eq!(r, Err(Errno::EAGAIN)),
        }
        assert_eq!(s.semctl(p, id, 0, GETNCNT), Ok(0));
        // A timeout that is not needed is still validated.
        assert_eq!(s.semtimedop(p, id, &[(0, 1, 0)], Some((-1, 0))), Err(Errno::EINVAL));
        assert_eq!(s.semtimedop(p, id, &[(0, 1, 0)], Some((1, 0))), Ok(0));
    });
}

#[test]
fn rmid_wakes_sleepers_with_eidrm() {
    on_kernel("eidrm", |s| {
        let p0 = s.root();
        let p1 = s.root();
        let p2 = s.root();
        let id = s.semget(p0, 0x5e11, 2, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.semop_async(p1, id, &[(0, -1, 0)], None), None);
        assert_eq!(s.semop_async(p2, id, &[(1, 0, 0), (0, -1, 0)], Some((30, 0))), None);
        s.semctl_setval(p0, id, 1, 1).unwrap();
        assert_eq!(s.semctl(p0, id, 1, GETZCNT), Ok(1));
        assert_eq!(s.semctl(p0, id, 0, GETNCNT), Ok(1));
        assert_eq!(s.semctl(p0, id, 0, IPC_RMID), Ok(0));
        assert_eq!(s.finish(p1), Err(Errno::EIDRM));
        assert_eq!(s.finish(p2), Err(Errno::EIDRM));
        assert_eq!(s.semctl(p0, id, 0, GETVAL), Err(Errno::EINVAL));
    });
}

/// The harness refuses, promptly, what it cannot do: a plain call that
/// sleeps, calls in a sleeping process, finish without a sleeping call.
#[test]
fn harness_errors_instead_of_hanging() {
    if let Some(why) = oracle_unavailable() {
        eprintln!("SKIP harness errors: {why}");
        return;
    }
    let mut k = KernelBackend::start(AGENT).expect("agent starts");
    let p = k.spawn(&Identity::root()).unwrap();
    let id = k.call(p, &Op::SemGet { key: 0, nsems: 1, flags: IPC_CREAT | 0o600 }).unwrap().ret.unwrap();
    let id = i32::try_from(id).unwrap();
    let down = Op::SemOp { id, sops: vec![SemBuf { num: 0, op: -1, flg: 0 }], timeout: None };
    assert!(k.finish(p).is_err(), "nothing to finish");
    let e = k.call(p, &down).unwrap_err();
    assert!(e.contains("blocked"), "{e}");
    // The process is asleep: other calls are refused, a signal ends the sleep.
    assert!(k.call(p, &Op::SemGet { key: 0, nsems: 1, flags: 0 }).is_err());
    assert!(k.start(p, &down).is_err());
    k.call(p, &Op::Signal).unwrap();
    assert_eq!(k.finish(p).unwrap().ret, Err(Errno::EINTR.raw()));
    let other = k.start(p, &Op::SemGet { key: 0, nsems: 1, flags: 0 }).unwrap();
    assert!(matches!(other, Started::Done(uipc_testkit::Reply { ret: Ok(_), .. })), "{other:?}");
    let timed = Op::SemOp {
        id,
        sops: vec![SemBuf { num: 0, op: -1, flg: 0 }],
        timeout: Some(Timeout::Val { sec: 0, nsec: 1 }),
    };
    assert_eq!(k.call(p, &timed).unwrap().ret, Err(Errno::EAGAIN.raw()));
    // Killing a sleeping process works.
    assert_eq!(k.start(p, &down).unwrap(), Started::Blocked);
    k.call(p, &Op::Kill).unwrap();
}
