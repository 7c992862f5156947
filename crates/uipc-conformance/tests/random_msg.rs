//! Generated differential test: random System V message-queue sequences —
//! several processes and uids, msgget/msgsnd/msgrcv/msgctl with every
//! flag and `msgtyp` kind, receivers asleep with different filters handed
//! messages by later sends (or skipped with E2BIG), IPC_SET of owners,
//! modes and qbytes, IPC_RMID under sleepers, signals, kills, `kernel.msg*`
//! lowered — run on the kernel and on uipc, compared call by call. proptest
//! shrinks a failing sequence to a minimal one.
//!
//! Nothing here depends on the kernel's scheduling:
//! * a `msgrcv` that may sleep is started with `msgrcv_async`; the kernel
//!   hands a message to a sleeper inside the sender's call, so who gets
//!   what is decided by the calls' order alone. A sleeper is only ever
//!   signalled-and-finished (the message it was handed, else EINTR),
//!   finished after an IPC_RMID of its queue (EIDRM, or its message), or
//!   killed;
//! * every `msgsnd` has IPC_NOWAIT: a sender woken by a receive retries by
//!   itself, when its scheduler runs it, so a sleeping sender would race
//!   with the next step (the named tests in msg_ops.rs drive sleeping
//!   senders where the outcome does not depend on that);
//! * IPC_SET is only made with no receiver asleep on the queue (they are
//!   signalled and finished first): it makes sleeping receivers re-run
//!   their loop by themselves, which would race with a signal or a send.
//!
//! `UIPC_MSG_PROPTEST_CASES` sets the number of sequences (default 1000).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use uipc_abi::{
    IPC_CREAT, IPC_EXCL, IPC_INFO, IPC_NOWAIT, IPC_RMID, IPC_STAT, MSG_COPY, MSG_EXCEPT, MSG_INFO, MSG_NOERROR,
    MSG_STAT, MSG_STAT_ANY,
};
use uipc_testkit::{Identity, Proc, Session};

/// At most this many live processes.
const PROCS: usize = 5;

#[derive(Clone, Debug)]
enum Step {
    Get { who: usize, key: i32, flags: i32 },
    Snd { who: usize, q: usize, mtype: i64, len: usize },
    Rcv { who: usize, q: usize, size: u64, msgtyp: i64, flags: i32 },
    Stat { who: usize, q: usize, cmd: i32 },
    Set { who: usize, q: usize, uid: u32, mode: u32, qbytes: u64 },
    Rmid { who: usize, q: usize },
    Info { who: usize, cmd: i32 },
    Signal { who: usize },
    Kill { who: usize },
    Sysctl { name: &'static str, value: u32 },
}

fn key() -> impl Strategy<Value = i32> {
    prop_oneof![Just(0), Just(0x6d01), Just(0x6d02)]
}

fn mode() -> impl Strategy<Value = u32> {
    prop_oneof![6 => Just(0o666u32), 2 => Just(0o600), 2 => Just(0o660), 1 => Just(0o644), 1 => Just(0o622), 1 => Just(0o000)]
}

/// The queue a step names: an index into the ids seen so far, or a bad id.
fn q() -> impl Strategy<Value = usize> {
    prop_oneof![30 => 0usize..6, 1 => Just(6usize), 1 => Just(7usize)]
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0usize..PROCS;
    prop_oneof![
        3 => (who.clone(), key(), prop::bool::weighted(0.7), prop::bool::weighted(0.15), mode()).prop_map(
            |(who, key, creat, excl, mode)| Step::Get {
                who,
                key,
                flags: (if creat { IPC_CREAT } else { 0 }) | (if excl { IPC_EXCL } else { 0 }) | i32::try_from(mode).unwrap(),
            }
        ),
        20 => (who.clone(), q(), prop_oneof![12 => 1i64..=4, 1 => Just(0i64), 1 => Just(-2i64)],
               prop_oneof![6 => 0usize..=8, 2 => 9usize..=40, 1 => Just(200usize)])
            .prop_map(|(who, q, mtype, len)| Step::Snd { who, q, mtype, len }),
        16 => (
            who.clone(),
            q(),
            prop_oneof![6 => Just(64u64), 2 => 0u64..=8, 1 => Just(u64::MAX)],
            prop_oneof![6 => Just(0i64), 6 => 1i64..=4, 4 => -4i64..=-1, 1 => Just(i64::MIN), 1 => Just(9i64)],
            prop_oneof![
                6 => Just(0),
                6 => Just(IPC_NOWAIT),
                2 => Just(MSG_NOERROR),
                2 => Just(MSG_EXCEPT),
                1 => Just(MSG_EXCEPT | IPC_NOWAIT),
                2 => Just(MSG_COPY | IPC_NOWAIT),
                1 => Just(MSG_COPY),
                1 => Just(MSG_COPY | MSG_NOERROR | IPC_NOWAIT),
            ]
        )
            .prop_map(|(who, q, size, msgtyp, flags)| Step::Rcv { who, q, size, msgtyp, flags }),
        2 => (who.clone(), prop_oneof![0usize..6, 6usize..8], prop_oneof![Just(IPC_STAT), Just(MSG_STAT), Just(MSG_STAT_ANY)])
            .prop_map(|(who, q, cmd)| Step::Stat { who, q, cmd }),
        2 => (who.clone(), q(), prop_oneof![Just(0u32), Just(1000), Just(1001)], mode(),
              prop_oneof![Just(0u64), Just(3), Just(16), Just(64), Just(16384), Just(16385)])
            .prop_map(|(who, q, uid, mode, qbytes)| Step::Set { who, q, uid, mode, qbytes }),
        1 => (who.clone(), q()).prop_map(|(who, q)| Step::Rmid { who, q }),
        1 => (who.clone(), prop_oneof![Just(IPC_INFO), Just(MSG_INFO)]).prop_map(|(who, cmd)| Step::Info { who, cmd }),
        3 => who.clone().prop_map(|who| Step::Signal { who }),
        1 => who.prop_map(|who| Step::Kill { who }),
        1 => prop_oneof![
            (prop_oneof![Just(4u32), Just(8192)]).prop_map(|value| Step::Sysctl { name: "kernel.msgmax", value }),
            (prop_oneof![Just(10u32), Just(16384)]).prop_map(|value| Step::Sysctl { name: "kernel.msgmnb", value }),
            (prop_oneof![Just(1u32), Just(32000)]).prop_map(|value| Step::Sysctl { name: "kernel.msgmni", value }),
        ],
    ]
}

/// The generator's view of the session: who is alive, who is asleep in a
/// started `msgrcv` (and on which id), which ids exist.
struct World {
    live: Vec<Proc>,
    asleep: BTreeMap<usize, i32>,
    ids: Vec<i32>,
    removed: Vec<i32>,
}

impl World {
    /// 0..5 an id not removed (if any), 5 any id seen, 6 and 7 bad ids.
    fn id(&self, q: usize) -> i32 {
        let alive: Vec<i32> = self.ids.iter().copied().filter(|id| !self.removed.contains(id)).collect();
        match q {
            6 => -1,
            7 => 12345,
            _ if self.ids.is_empty() => 0,
            i if i < 5 && !alive.is_empty() => alive[i % alive.len()],
            i => self.ids[i % self.ids.len()],
        }
    }

    fn any(&self, who: usize) -> Proc {
        self.live[who % self.live.len()]
    }

    /// Interrupts `p` if asleep and collects its call (a message handed
    /// over, else EINTR).
    fn wake(&mut self, s: &mut Session, p: Proc) {
        if self.asleep.remove(&p.0).is_some() {
            s.signal(p);
            let _ = s.finish_msg(p);
        }
    }

    /// A live process that is not asleep (one is woken if all are).
    fn awake(&mut self, s: &mut Session, who: usize) -> Proc {
        let awake: Vec<Proc> = self.live.iter().copied().filter(|p| !self.asleep.contains_key(&p.0)).collect();
        if awake.is_empty() {
            let p = self.any(who);
            self.wake(s, p);
            p
        } else {
            awake[who % awake.len()]
        }
    }
}

/// Message text `len` bytes long, different per step.
fn text(n: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + u8::try_from((n + i) % 26).unwrap()).collect()
}

/// Interprets a sequence in a session. Never panics on a result: every
/// outcome goes to the transcript.
fn run(s: &mut Session, steps: &[Step]) {
    let root = s.root();
    let alice = s.spawn(Identity::user(1000, 1000));
    let bob = s.spawn(Identity::user(1001, 1001).with_groups(&[1000]));
    let carol = s.root();
    let mut w =
        World { live: vec![root, alice, bob, carol], asleep: BTreeMap::new(), ids: Vec::new(), removed: Vec::new() };
    // A queue to start with.
    if let Ok(id) = s.msgget(root, 0, 0o666) {
        w.ids.push(id);
    }
    for (n, st) in steps.iter().enumerate() {
        match *st {
            Step::Get { who, key, flags } => {
                let p = w.awake(s, who);
                if let Ok(id) = s.msgget(p, key, flags) {
                    if !w.ids.contains(&id) || w.removed.contains(&id) {
                        w.removed.retain(|&r| r != id);
                        w.ids.push(id);
                    }
                }
            }
            Step::Snd { who, q, mtype, len } => {
                let p = w.awake(s, who);
                let id = w.id(q);
                // A receiver handed the message (or woken with E2BIG) stays
                // "asleep" for the world: it is collected by a later
                // signal-and-finish, which then answers its real result.
                let _ = s.msgsnd(p, id, mtype, &text(n, len), IPC_NOWAIT);
            }
            Step::Rcv { who, q, size, msgtyp, flags } => {
                let p = w.awake(s, who);
                let id = w.id(q);
                if s.msgrcv_async(p, id, size, msgtyp, flags).is_none() {
                    w.asleep.insert(p.0, id);
                }
            }
            Step::Stat { who, q, cmd } => {
                let p = w.awake(s, who);
                let id = if cmd == IPC_STAT { w.id(q) } else { i32::try_from(q).unwrap() };
                let _ = s.msgctl_stat(p, id, cmd);
            }
            Step::Set { who, q, uid, mode, qbytes } => {
                let id = w.id(q);
                let sleepers: Vec<usize> = w.asleep.iter().filter(|&(_, &on)| on == id).map(|(&q, _)| q).collect();
                for q in sleepers {
                    w.wake(s, Proc(q));
                }
                let p = w.awake(s, who);
                let _ = s.msgctl_set(p, id, uid, uid, mode, qbytes);
            }
            Step::Rmid { who, q } => {
                let p = w.awake(s, who);
                let id = w.id(q);
                if s.msgctl(p, id, IPC_RMID).is_ok() {
                    w.removed.push(id);
                    let sleepers: Vec<usize> = w.asleep.iter().filter(|&(_, &on)| on == id).map(|(&q, _)| q).collect();
                    for q in sleepers {
                        w.asleep.remove(&q);
                        let _ = s.finish_msg(Proc(q));
                    }
                }
            }
            Step::Info { who, cmd } => {
                let p = w.awake(s, who);
                let _ = s.msg_info(p, cmd);
            }
            Step::Signal { who } => {
                let p = w.any(who);
                if w.asleep.contains_key(&p.0) {
                    w.wake(s, p);
                } else {
                    s.signal(p);
                }
            }
            Step::Kill { who } => {
                if w.live.len() > 2 {
                    let p = w.any(who);
                    s.kill(p);
                    w.asleep.remove(&p.0);
                    w.live.retain(|&q| q != p);
                }
            }
            Step::Sysctl { name, value } => {
                let _ = s.sysctl_set(name, &value.to_string());
            }
        }
    }
    // Every sleeper is collected, then a fresh root process reads the
    // final state: every slot, the totals, every queue's messages in order.
    let sleepers: Vec<Proc> = w.asleep.keys().map(|&q| Proc(q)).collect();
    for p in sleepers {
        w.wake(s, p);
    }
    let observer = s.root();
    for i in 0..6 {
        let _ = s.msgctl_stat(observer, i, MSG_STAT_ANY);
    }
    let _ = s.msg_info(observer, MSG_INFO);
    let mut ids = w.ids.clone();
    ids.dedup();
    for id in ids {
        for pos in 0..8 {
            if s.msgrcv(observer, id, 1024, pos, MSG_COPY | IPC_NOWAIT).is_err() {
                break;
            }
        }
    }
}

#[test]
fn random_msg_sequences() {
    let cases = std::env::var("UIPC_MSG_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let strategy = prop::collection::vec(step(), 1..30);
    let result = runner.run(&strategy, |steps| {
        uipc_testkit::conformance!("RANDOM-MSG", |s| run(s, &steps));
        Ok(())
    });
    if let Err(e) = result {
        panic!("random msg sequences: {e}");
    }
    eprintln!("random_msg_sequences: {cases} sequences compared");
}
