//! Generated differential test: random System V semaphore sequences —
//! several processes and uids, semget/semop/semtimedop/semctl, sleepers
//! woken by other processes' operations, SETVAL/SETALL, IPC_RMID, signals,
//! SEM_UNDO applied at exit and kill, fork/exec, `kernel.sem` lowered to hit
//! EINVAL/ENOSPC/E2BIG — run on the kernel and on uipc, compared call by
//! call. proptest shrinks a failing sequence to a minimal one.
//!
//! Nothing here depends on timing or on the kernel's scheduling:
//! * a `semop` that may sleep is started with `semop_async`; a process left
//!   asleep is only ever signalled-and-finished (`finish` then answers 0 if
//!   some later operation completed its call on its behalf, EINTR if not),
//!   finished after an `IPC_RMID` of its set (EIDRM, or 0 if it completed
//!   earlier), or killed; it is never given another call while asleep;
//! * `semtimedop` only ever gets a zero timeout (`{0, 0}`): it completes or
//!   fails with EAGAIN at once;
//! * exit and kill return once the process is gone (its SEM_UNDO applied).
//!
//! `UIPC_SEM_PROPTEST_CASES` sets the number of sequences (default 1000).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use uipc_abi::{
    GETNCNT, GETPID, GETVAL, GETZCNT, IPC_CREAT, IPC_EXCL, IPC_INFO, IPC_RMID, IPC_STAT, SEM_INFO, SEM_STAT,
    SEM_STAT_ANY, SEM_UNDO,
};
use uipc_testkit::{Identity, Proc, Session};

/// `IPC_NOWAIT` as a `sem_flg`.
const NW: i16 = 0o4000;

/// At most this many live processes (forks stop there).
const MAX_PROCS: usize = 6;

/// A semaphore number: `In(k)` is `k` modulo the set's size (always in
/// range when the size is known), `Raw(n)` is `n` as it is (mostly out of
/// range; -1 becomes 65535 as a `sem_num`).
#[derive(Clone, Copy, Debug)]
enum Num {
    In(u16),
    Raw(i32),
}

#[derive(Clone, Debug)]
enum Step {
    Get {
        who: usize,
        key: i32,
        nsems: i32,
        flags: i32,
    },
    /// `semop` (or `semtimedop` with a `{0, 0}` timeout) with `(num, op, flg)`.
    Op {
        who: usize,
        set: usize,
        sops: Vec<(Num, i16, i16)>,
        zero_timeout: bool,
    },
    /// GETVAL, GETPID, GETNCNT or GETZCNT.
    Query {
        who: usize,
        set: usize,
        num: Num,
        cmd: i32,
    },
    GetAll {
        who: usize,
        set: usize,
    },
    SetVal {
        who: usize,
        set: usize,
        num: Num,
        val: i32,
    },
    SetAll {
        who: usize,
        set: usize,
        vals: Vec<u16>,
    },
    /// IPC_STAT (by id) or SEM_STAT/SEM_STAT_ANY (by slot index `set`).
    Stat {
        who: usize,
        set: usize,
        cmd: i32,
    },
    Set {
        who: usize,
        set: usize,
        uid: u32,
        mode: u32,
    },
    Rmid {
        who: usize,
        set: usize,
    },
    Info {
        who: usize,
        cmd: i32,
    },
    Signal {
        who: usize,
    },
    Fork {
        who: usize,
    },
    Exec {
        who: usize,
    },
    Exit {
        who: usize,
    },
    Kill {
        who: usize,
    },
    /// `kernel.sem` = "semmsl semmns semopm semmni".
    Sysctl {
        msl: u32,
        mns: u32,
        opm: u32,
        mni: u32,
    },
}

fn key() -> impl Strategy<Value = i32> {
    prop_oneof![Just(0), Just(0x7001), Just(0x7002)]
}

fn mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => Just(0o666u32),
        2 => Just(0o600),
        3 => Just(0o660),
        1 => Just(0o640),
        1 => Just(0o644),
        1 => Just(0o400),
        1 => Just(0o222),
        1 => Just(0o000),
    ]
}

fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        24 => (0u16..4).prop_map(Num::In),
        1 => prop_oneof![Just(-1), Just(1), Just(3), Just(4), Just(100)].prop_map(Num::Raw),
    ]
}

fn sop() -> impl Strategy<Value = (Num, i16, i16)> {
    (num(), -3i16..=3, prop_oneof![Just(0i16), Just(NW), Just(SEM_UNDO), Just(NW | SEM_UNDO)])
}

/// The set a step names: an index into the ids seen so far (usually), or a
/// bad id.
fn set() -> impl Strategy<Value = usize> {
    prop_oneof![36 => 0usize..6, 1 => Just(6usize), 1 => Just(7usize)]
}

/// The first step: a set is created.
fn first_get() -> impl Strategy<Value = Step> {
    (0usize..3, key(), 1i32..=4, prop_oneof![3 => Just(0o666u32), 1 => mode()]).prop_map(|(who, key, nsems, mode)| {
        Step::Get { who, key, nsems, flags: IPC_CREAT | i32::try_from(mode).unwrap() }
    })
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0usize..MAX_PROCS;
    prop_oneof![
        4 => (who.clone(), key(), prop_oneof![8 => 1i32..=4, 1 => Just(0), 1 => Just(5)],
              prop::bool::weighted(0.7), prop::bool::weighted(0.15), mode())
            .prop_map(|(who, key, nsems, creat, excl, mode)| Step::Get {
                who,
                key,
                nsems,
                flags: (if creat { IPC_CREAT } else { 0 }) | (if excl { IPC_EXCL } else { 0 }) | i32::try_from(mode).unwrap(),
            }),
        20 => (who.clone(), set(), prop::collection::vec(sop(), 1..=3), prop::bool::weighted(0.15))
            .prop_map(|(who, set, sops, zero_timeout)| Step::Op { who, set, sops, zero_timeout }),
        5 => (who.clone(), set(), num(), prop_oneof![Just(GETVAL), Just(GETPID), Just(GETNCNT), Just(GETZCNT)])
            .prop_map(|(who, set, num, cmd)| Step::Query { who, set, num, cmd }),
        2 => (who.clone(), set()).prop_map(|(who, set)| Step::GetAll { who, set }),
        4 => (who.clone(), set(), num(), prop_oneof![8 => 0i32..=5, 1 => Just(40000), 1 => Just(-1)])
            .prop_map(|(who, set, num, val)| Step::SetVal { who, set, num, val }),
        2 => (who.clone(), set(), prop::collection::vec(prop_oneof![9 => 0u16..=5, 1 => Just(40000u16)], 1..=4))
            .prop_map(|(who, set, vals)| Step::SetAll { who, set, vals }),
        1 => (who.clone(), prop_oneof![0usize..6, 6usize..8], prop_oneof![Just(IPC_STAT), Just(SEM_STAT), Just(SEM_STAT_ANY)])
            .prop_map(|(who, set, cmd)| Step::Stat { who, set, cmd }),
        1 => (who.clone(), set(), prop_oneof![Just(0u32), Just(1000), Just(1001)], mode())
            .prop_map(|(who, set, uid, mode)| Step::Set { who, set, uid, mode }),
        1 => (who.clone(), set()).prop_map(|(who, set)| Step::Rmid { who, set }),
        1 => (who.clone(), prop_oneof![Just(SEM_INFO), Just(IPC_INFO)]).prop_map(|(who, cmd)| Step::Info { who, cmd }),
        2 => who.clone().prop_map(|who| Step::Signal { who }),
        1 => who.clone().prop_map(|who| Step::Fork { who }),
        1 => who.clone().prop_map(|who| Step::Exec { who }),
        1 => who.clone().prop_map(|who| Step::Exit { who }),
        1 => who.prop_map(|who| Step::Kill { who }),
        1 => (
            prop_oneof![3 => Just(32000u32), 1 => Just(2), 1 => Just(3)],
            prop_oneof![3 => Just(1_024_000_000u32), 1 => Just(5), 1 => Just(8)],
            prop_oneof![3 => Just(500u32), 1 => Just(1), 1 => Just(2)],
            prop_oneof![3 => Just(32000u32), 1 => Just(1), 1 => Just(2)],
        )
            .prop_map(|(msl, mns, opm, mni)| Step::Sysctl { msl, mns, opm, mni }),
    ]
}

/// The generator's view of the session: who is alive, who is asleep in a
/// started `semop` (and on which id), which ids exist and their sizes.
struct World {
    live: Vec<Proc>,
    /// Asleep processes (by index) and the id of the set they sleep on.
    asleep: BTreeMap<usize, i32>,
    /// Every id a semget returned, in order (removed ones included).
    ids: Vec<i32>,
    /// Size of each id, from the semget that created it.
    nsems: BTreeMap<i32, i32>,
    /// The ids removed by an IPC_RMID of the sequence.
    removed: Vec<i32>,
}

impl World {
    /// The id a step's `set` names: 0..5 one not removed (if any), 5 any
    /// id seen (removed ones too), 6 and 7 bad ids.
    fn id(&self, set: usize) -> i32 {
        let alive: Vec<i32> = self.ids.iter().copied().filter(|id| !self.removed.contains(id)).collect();
        match set {
            6 => -1,
            7 => 12345,
            _ if self.ids.is_empty() => 0,
            i if i < 5 && !alive.is_empty() => alive[i % alive.len()],
            i => self.ids[i % self.ids.len()],
        }
    }

    fn num(&self, id: i32, n: Num) -> i32 {
        match n {
            Num::In(k) => self.nsems.get(&id).map_or(i32::from(k), |&m| i32::from(k) % m),
            Num::Raw(r) => r,
        }
    }

    fn is_asleep(&self, p: Proc) -> bool {
        self.asleep.contains_key(&p.0)
    }

    /// Any live process.
    fn any(&self, who: usize) -> Proc {
        self.live[who % self.live.len()]
    }

    /// Interrupts `p` if it is asleep and collects its call's result (0 if
    /// it was completed meanwhile, EINTR otherwise).
    fn wake(&mut self, s: &mut Session, p: Proc) {
        if self.asleep.remove(&p.0).is_some() {
            s.signal(p);
            let _ = s.finish(p);
        }
    }

    /// A live process that is not asleep (one is woken if all are).
    fn awake(&mut self, s: &mut Session, who: usize) -> Proc {
        let awake: Vec<Proc> = self.live.iter().copied().filter(|&p| !self.is_asleep(p)).collect();
        if awake.is_empty() {
            let p = self.any(who);
            self.wake(s, p);
            p
        } else {
            awake[who % awake.len()]
        }
    }
}

/// A semaphore number as a `sem_num` (u16): -1 is 65535.
fn sem_num(n: i32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Interprets a sequence in a session. Never panics on a result: every
/// outcome goes to the transcript.
fn run(s: &mut Session, steps: &[Step]) {
    let root = s.root();
    let alice = s.spawn(Identity::user(1000, 1000));
    let bob = s.spawn(Identity::user(1001, 1001).with_groups(&[1000]));
    let mut w = World {
        live: vec![root, alice, bob],
        asleep: BTreeMap::new(),
        ids: Vec::new(),
        nsems: BTreeMap::new(),
        removed: Vec::new(),
    };
    for st in steps {
        match *st {
            Step::Get { who, key, nsems, flags } => {
                let p = w.awake(s, who);
                if let Ok(id) = s.semget(p, key, nsems, flags) {
                    if !w.ids.contains(&id) {
                        // A new id comes only from a creation: nsems is its size.
                        w.ids.push(id);
                        w.nsems.insert(id, nsems);
                    }
                }
            }
            Step::Op { who, set, ref sops, zero_timeout } => {
                let p = w.awake(s, who);
                let id = w.id(set);
                let sops: Vec<(u16, i16, i16)> =
                    sops.iter().map(|&(n, op, flg)| (sem_num(w.num(id, n)), op, flg)).collect();
                if zero_timeout {
                    let _ = s.semtimedop(p, id, &sops, Some((0, 0)));
                } else if s.semop_async(p, id, &sops, None).is_none() {
                    w.asleep.insert(p.0, id);
                }
            }
            Step::Query { who, set, num, cmd } => {
                let p = w.awake(s, who);
                let id = w.id(set);
                let _ = s.semctl(p, id, w.num(id, num), cmd);
            }
            Step::GetAll { who, set } => {
                let p = w.awake(s, who);
                let _ = s.semctl_getall(p, w.id(set));
            }
            Step::SetVal { who, set, num, val } => {
                let p = w.awake(s, who);
                let id = w.id(set);
                let _ = s.semctl_setval(p, id, w.num(id, num), val);
            }
            Step::SetAll { who, set, ref vals } => {
                let p = w.awake(s, who);
                let _ = s.semctl_setall(p, w.id(set), vals);
            }
            Step::Stat { who, set, cmd } => {
                let p = w.awake(s, who);
                let id = if cmd == IPC_STAT { w.id(set) } else { i32::try_from(set).unwrap() };
                let _ = s.semctl_stat(p, id, cmd);
            }
            Step::Set { who, set, uid, mode } => {
                let p = w.awake(s, who);
                let _ = s.semctl_set(p, w.id(set), uid, uid, mode);
            }
            Step::Rmid { who, set } => {
                let p = w.awake(s, who);
                let id = w.id(set);
                if s.semctl(p, id, 0, IPC_RMID).is_ok() {
                    w.removed.push(id);
                    // Every sleeper on the set has been woken (EIDRM, or 0
                    // if its call had been completed before).
                    let sleepers: Vec<usize> = w.asleep.iter().filter(|&(_, &on)| on == id).map(|(&q, _)| q).collect();
                    for q in sleepers {
                        w.asleep.remove(&q);
                        let _ = s.finish(Proc(q));
                    }
                }
            }
            Step::Info { who, cmd } => {
                let p = w.awake(s, who);
                let _ = s.sem_info(p, cmd);
            }
            Step::Signal { who } => {
                let p = w.any(who);
                if w.is_asleep(p) {
                    w.wake(s, p);
                } else {
                    // An idle process is unaffected.
                    s.signal(p);
                }
            }
            Step::Fork { who } => {
                if w.live.len() < MAX_PROCS {
                    let p = w.awake(s, who);
                    let c = s.fork(p);
                    w.live.push(c);
                }
            }
            Step::Exec { who } => {
                let p = w.awake(s, who);
                s.exec(p);
            }
            Step::Exit { who } => {
                if w.live.len() > 1 {
                    let p = w.any(who);
                    w.wake(s, p);
                    s.exit(p);
                    w.live.retain(|&q| q != p);
                }
            }
            Step::Kill { who } => {
                if w.live.len() > 1 {
                    // Asleep or not: a killed sleeper is simply gone.
                    let p = w.any(who);
                    s.kill(p);
                    w.asleep.remove(&p.0);
                    w.live.retain(|&q| q != p);
                }
            }
            Step::Sysctl { msl, mns, opm, mni } => {
                let _ = s.sysctl_set("kernel.sem", &format!("{msl} {mns} {opm} {mni}"));
            }
        }
    }
    // Every sleeper is collected, then the final state is read by a fresh
    // root process: every semaphore's value and pid, every slot, the totals.
    let sleepers: Vec<Proc> = w.asleep.keys().map(|&q| Proc(q)).collect();
    for p in sleepers {
        w.wake(s, p);
    }
    let observer = s.root();
    let mut ids = w.ids.clone();
    ids.dedup();
    for id in ids {
        if let Ok(vals) = s.semctl_getall(observer, id) {
            for n in 0..vals.len() {
                let _ = s.semctl(observer, id, i32::try_from(n).unwrap(), GETPID);
            }
        }
    }
    for i in 0..4 {
        let _ = s.semctl_stat(observer, i, SEM_STAT_ANY);
    }
    let _ = s.sem_info(observer, SEM_INFO);
}

#[test]
fn random_sem_sequences() {
    let cases = std::env::var("UIPC_SEM_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let strategy = (first_get(), prop::collection::vec(step(), 1..40)).prop_map(|(first, mut rest)| {
        rest.insert(0, first);
        rest
    });
    let result = runner.run(&strategy, |steps| {
        uipc_testkit::conformance!("RANDOM-SEM", |s| run(s, &steps));
        Ok(())
    });
    if let Err(e) = result {
        panic!("random sem sequences: {e}");
    }
    eprintln!("random_sem_sequences: {cases} sequences compared");
}
