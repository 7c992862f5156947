//! Generated differential test: random System V shared memory sequences —
//! several processes and uids, get/at/dt/munmap/ctl/fork/exec/exit, limits
//! lowered to hit ENOSPC/EINVAL — run on the kernel and on uipc, compared
//! call by call. proptest shrinks a failing sequence to a minimal one.
//!
//! `UIPC_PROPTEST_CASES` sets the number of sequences (default 2000).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use uipc_abi::{IPC_CREAT, IPC_EXCL, IPC_STAT, SHM_EXEC, SHM_LOCK, SHM_RDONLY, SHM_STAT, SHM_STAT_ANY, SHM_UNLOCK};
use uipc_testkit::{Identity, Proc, Session};

const PAGE: u64 = 4096;

#[derive(Clone, Debug)]
enum Step {
    Get { who: usize, key: i32, size: u64, flags: i32 },
    At { who: usize, seg: usize, flags: i32 },
    Dt { who: usize, att: usize },
    Munmap { who: usize, att: usize, first_page: u64, pages: u64 },
    Stat { who: usize, seg: usize, cmd: i32 },
    Set { who: usize, seg: usize, uid: u32, mode: u32 },
    Rmid { who: usize, seg: usize },
    Lock { who: usize, seg: usize, cmd: i32 },
    Info { who: usize },
    Write { who: usize, att: usize, offset: u64, byte: u8 },
    Read { who: usize, att: usize, offset: u64 },
    Fork { who: usize },
    Exec { who: usize },
    Exit { who: usize },
    Sysctl { name: &'static str, value: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0usize..8;
    let idx = 0usize..6;
    let mode =
        prop_oneof![Just(0o600u32), Just(0o644), Just(0o666), Just(0o640), Just(0o400), Just(0o000), Just(0o777)];
    prop_oneof![
        4 => (who.clone(), 0i32..4, prop_oneof![Just(0u64), Just(1), Just(100), Just(4096), Just(4097), Just(8192), Just(12288)],
              any::<bool>(), prop::bool::weighted(0.2), mode.clone())
            .prop_map(|(who, k, size, creat, excl, mode)| Step::Get {
                who,
                key: if k == 0 { 0 } else { 0x5000 + k },
                size,
                flags: (if creat { IPC_CREAT } else { 0 }) | (if excl { IPC_EXCL } else { 0 }) | i32::try_from(mode).unwrap(),
            }),
        4 => (who.clone(), idx.clone(), prop_oneof![Just(0), Just(SHM_RDONLY), Just(SHM_EXEC)])
            .prop_map(|(who, seg, flags)| Step::At { who, seg, flags }),
        2 => (who.clone(), idx.clone()).prop_map(|(who, att)| Step::Dt { who, att }),
        1 => (who.clone(), idx.clone(), 0u64..3, 1u64..3)
            .prop_map(|(who, att, first_page, pages)| Step::Munmap { who, att, first_page, pages }),
        3 => (who.clone(), idx.clone(), prop_oneof![Just(IPC_STAT), Just(SHM_STAT), Just(SHM_STAT_ANY)])
            .prop_map(|(who, seg, cmd)| Step::Stat { who, seg, cmd }),
        1 => (who.clone(), idx.clone(), prop_oneof![Just(0u32), Just(1000), Just(1001)], mode)
            .prop_map(|(who, seg, uid, mode)| Step::Set { who, seg, uid, mode }),
        2 => (who.clone(), idx.clone()).prop_map(|(who, seg)| Step::Rmid { who, seg }),
        1 => (who.clone(), idx.clone(), prop_oneof![Just(SHM_LOCK), Just(SHM_UNLOCK)])
            .prop_map(|(who, seg, cmd)| Step::Lock { who, seg, cmd }),
        1 => who.clone().prop_map(|who| Step::Info { who }),
        2 => (who.clone(), idx.clone(), 0u64..3 * PAGE, any::<u8>())
            .prop_map(|(who, att, offset, byte)| Step::Write { who, att, offset, byte }),
        2 => (who.clone(), idx.clone(), 0u64..3 * PAGE).prop_map(|(who, att, offset)| Step::Read { who, att, offset }),
        1 => who.clone().prop_map(|who| Step::Fork { who }),
        1 => who.clone().prop_map(|who| Step::Exec { who }),
        1 => who.prop_map(|who| Step::Exit { who }),
        1 => prop_oneof![
            (0u64..4).prop_map(|v| Step::Sysctl { name: "kernel.shmmni", value: v }),
            (0u64..2).prop_map(|v| Step::Sysctl { name: "kernel.shm_rmid_forced", value: v }),
            (1u64..5).prop_map(|v| Step::Sysctl { name: "kernel.shmall", value: v }),
            prop_oneof![Just(100u64), Just(4096)].prop_map(|v| Step::Sysctl { name: "kernel.shmmax", value: v }),
        ],
    ]
}

/// What the generator may still do with an attach address. Addresses that
/// were unmapped are never touched again: the kernel may have reused them
/// for another mapping (its placement policy is not part of the contract).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Whole: loads, stores, munmap and shmdt.
    Intact,
    /// Punched (its first page still mapped): only shmdt.
    DetachOnly,
}

#[derive(Clone, Copy)]
struct Att {
    p: Proc,
    addr: u64,
    /// Pages of the mapping: ranges the generator touches stay inside it
    /// (next to it may lie another attach in one backend and a gap in another).
    pages: u64,
    state: Use,
}

/// The `n`-th attach of `p` usable as `want` (Intact also allows DetachOnly uses).
fn nth_att(atts: &[Att], p: Proc, n: usize, detach: bool) -> Option<usize> {
    let mine: Vec<usize> =
        (0..atts.len()).filter(|&i| atts[i].p == p && (atts[i].state == Use::Intact || detach)).collect();
    (!mine.is_empty()).then(|| mine[n % mine.len()])
}

/// Interprets a sequence in a session. Never panics on a result: every
/// outcome goes to the transcript.
fn run(s: &mut Session, steps: &[Step]) {
    let root = s.root();
    let alice = s.spawn(Identity::user(1000, 1000));
    let bob = s.spawn(Identity::user(1001, 1001).with_groups(&[1000]));
    let mut live: Vec<Proc> = vec![root, alice, bob];
    let mut segs: Vec<i32> = Vec::new();
    let mut atts: Vec<Att> = Vec::new();
    let seg = |segs: &Vec<i32>, i: usize| segs.get(i).copied().unwrap_or(i32::try_from(i).unwrap() * 32768 + 77);
    for st in steps {
        let pick = |w: usize| live[w % live.len()];
        match *st {
            Step::Get { who, key, size, flags } => {
                if let Ok(id) = s.shmget(pick(who), key, size, flags) {
                    if !segs.contains(&id) {
                        segs.push(id);
                    }
                }
            }
            Step::At { who, seg: i, flags } => {
                let p = pick(who);
                let id = seg(&segs, i);
                if let Ok(addr) = s.shmat(p, id, 0, flags) {
                    let pages = s.shmctl_stat(p, id % 32768, SHM_STAT_ANY).map_or(1, |(_, ds)| ds.segsz.div_ceil(PAGE));
                    atts.push(Att { p, addr, pages, state: Use::Intact });
                }
            }
            Step::Dt { who, att } => {
                if let Some(i) = nth_att(&atts, pick(who), att, true) {
                    let _ = s.shmdt(pick(who), atts[i].addr);
                    atts.remove(i);
                }
            }
            Step::Munmap { who, att, first_page, pages } => {
                if let Some(i) = nth_att(&atts, pick(who), att, false) {
                    let first_page = first_page % atts[i].pages;
                    let pages = pages.min(atts[i].pages - first_page);
                    let _ = s.munmap(pick(who), atts[i].addr + first_page * PAGE, pages * PAGE);
                    if first_page == 0 {
                        atts.remove(i);
                    } else {
                        atts[i].state = Use::DetachOnly;
                    }
                }
            }
            Step::Stat { who, seg: i, cmd } => {
                let id = if cmd == IPC_STAT { seg(&segs, i) } else { i32::try_from(i).unwrap() };
                let _ = s.shmctl_stat(pick(who), id, cmd);
            }
            Step::Set { who, seg: i, uid, mode } => {
                let _ = s.shmctl_set(pick(who), seg(&segs, i), uid, uid, mode);
            }
            Step::Rmid { who, seg: i } => {
                let _ = s.shmctl(pick(who), seg(&segs, i), uipc_abi::IPC_RMID);
            }
            Step::Lock { who, seg: i, cmd } => {
                let _ = s.shmctl(pick(who), seg(&segs, i), cmd);
            }
            Step::Info { who } => {
                let _ = s.shm_info(pick(who), 0);
                let _ = s.shm_ipc_info(pick(who), 0);
            }
            Step::Write { who, att, offset, byte } => {
                if let Some(i) = nth_att(&atts, pick(who), att, false) {
                    let _ = s.write(pick(who), atts[i].addr + offset % (atts[i].pages * PAGE), &[byte]);
                }
            }
            Step::Read { who, att, offset } => {
                if let Some(i) = nth_att(&atts, pick(who), att, false) {
                    let _ = s.read(pick(who), atts[i].addr + offset % (atts[i].pages * PAGE), 1);
                }
            }
            Step::Fork { who } => {
                let p = pick(who);
                if live.len() < 8 {
                    let c = s.fork(p);
                    let inherited: Vec<Att> = atts.iter().filter(|a| a.p == p).map(|a| Att { p: c, ..*a }).collect();
                    atts.extend(inherited);
                    live.push(c);
                }
            }
            Step::Exec { who } => {
                let p = pick(who);
                s.exec(p);
                atts.retain(|a| a.p != p);
            }
            Step::Exit { who } => {
                if live.len() > 1 {
                    let p = pick(who);
                    s.exit(p);
                    live.retain(|q| *q != p);
                    atts.retain(|a| a.p != p);
                }
            }
            Step::Sysctl { name, value } => {
                let _ = s.sysctl_set(name, &value.to_string());
            }
        }
    }
    // Final state: every slot's stat and the totals, seen by a live process.
    let last = live[0];
    for i in 0..8 {
        let _ = s.shmctl_stat(last, i, SHM_STAT_ANY);
    }
    let _ = s.shm_info(last, 0);
}

#[test]
fn random_shm_sequences() {
    let cases = std::env::var("UIPC_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&prop::collection::vec(step(), 1..25), |steps| {
        uipc_testkit::conformance!("RANDOM-SHM", |s| run(s, &steps));
        Ok(())
    });
    if let Err(e) = result {
        panic!("random shm sequences: {e}");
    }
    eprintln!("random_shm_sequences: {cases} sequences compared");
}
