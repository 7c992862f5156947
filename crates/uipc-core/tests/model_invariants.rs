//! Property test of the core alone (no kernel needed): arbitrary operations
//! with arbitrary argument values never panic, and after every step the
//! model's bookkeeping is consistent — each segment's `nattch` equals the
//! number of mappings of it across all processes, `SHM_INFO`'s `used_ids`
//! and `shm_tot` equal the count and page sum of the segments.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use uipc_core::cred::{CapSet, Cred, Gid, Pid, Uid};
use uipc_core::perm::PermUpdate;
use uipc_core::sysv::shm::{ShmCmd, ShmCtlOut};
use uipc_core::{HeapMemory, IpcNamespace, Time};

#[derive(Clone, Debug)]
enum Op {
    Get(usize, i32, u64, i32),
    At(usize, i32, u64, i32, bool),
    Dt(usize, u64),
    Munmap(usize, u64, u64),
    Ctl(usize, i32, i32, u32, u32, u32),
    Fork(usize),
    Exec(usize),
    Exit(usize),
    Sysctl(u8, String),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let small_id = prop_oneof![0i32..4, Just(32768), Just(-1), any::<i32>()];
    let addr = prop_oneof![Just(0u64), (0u64..64).prop_map(|p| 0x1000_0000 + p * 4096), any::<u64>()];
    let value = prop_oneof![
        Just("1".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("x".to_string()),
        Just("4096".to_string()),
        Just("99999999999999999999".to_string())
    ];
    prop_oneof![
        (0usize..4, -2i32..3, prop_oneof![0u64..20000, any::<u64>()], any::<i32>())
            .prop_map(|(w, k, s, f)| Op::Get(w, k, s, f)),
        (0usize..4, small_id.clone(), addr.clone(), any::<i32>(), any::<bool>())
            .prop_map(|(w, i, a, f, ok)| Op::At(w, i, a, f, ok)),
        (0usize..4, addr.clone()).prop_map(|(w, a)| Op::Dt(w, a)),
        (0usize..4, addr, prop_oneof![1u64..20000, any::<u64>()]).prop_map(|(w, a, l)| Op::Munmap(w, a, l)),
        (0usize..4, small_id, -1i32..22, any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(w, i, c, u, g, m)| Op::Ctl(w, i, c, u, g, m)),
        (0usize..4).prop_map(Op::Fork),
        (0usize..4).prop_map(Op::Exec),
        (0usize..4).prop_map(Op::Exit),
        (0u8..5, value).prop_map(|(n, v)| Op::Sysctl(n, v)),
    ]
}

fn cred(pid: u32, uid: u32) -> Cred {
    Cred {
        pid: Pid(pid),
        euid: Uid(uid),
        egid: Gid(uid),
        groups: vec![],
        caps: if uid == 0 { CapSet(u64::MAX) } else { CapSet::EMPTY },
        memlock_limit: 8 << 20,
        posix: uipc_core::PosixIds::from_effective(Uid(uid), Gid(uid)),
    }
}

fn check_invariants(ns: &mut IpcNamespace<HeapMemory>, pids: &[u32]) {
    let root = cred(1, 0);
    let mut count = 0;
    let mut pages = 0;
    // SHM_INFO returns the highest slot index in use.
    let max_idx = ns.shmctl(&root, Time(1), 0, ShmCmd::ShmInfo, None).unwrap().0;
    for idx in 0..=max_idx {
        if let Ok((id, ShmCtlOut::Ds(ds))) = ns.shmctl(&root, Time(1), idx, ShmCmd::ShmStatAny, None) {
            count += 1;
            pages += ds.shm_segsz.div_ceil(4096);
            let maps: usize =
                pids.iter().map(|&p| ns.shm_mappings(Pid(p)).iter().filter(|v| v.id.0 == id).count()).sum();
            assert_eq!(ds.shm_nattch, maps as u64, "nattch of {id} vs its mappings");
        }
    }
    if let Ok((_, ShmCtlOut::ShmInfo(info))) = ns.shmctl(&root, Time(1), 0, ShmCmd::ShmInfo, None) {
        assert_eq!(info.used_ids, count);
        assert_eq!(info.shm_tot, pages);
    }
}

fn step(
    ns: &mut IpcNamespace<HeapMemory>,
    pids: &mut Vec<(u32, u32)>,
    next: &mut u32,
    next_addr: &mut u64,
    now: Time,
    op: Op,
) {
    const SYSCTLS: [&str; 5] =
        ["kernel.shmmni", "kernel.shm_rmid_forced", "kernel.shmall", "kernel.shmmax", "kernel.shm_next_id"];
    let who = |w: usize| {
        let (p, u) = pids[w % pids.len()];
        cred(p, u)
    };
    match op {
        Op::Get(w, k, s, f) => {
            let _ = ns.shmget(&who(w), now, k, s, f);
        }
        Op::At(w, id, a, f, ok) => {
            let c = who(w);
            if let Ok(pending) = ns.shmat_prepare(&c, id, a, f) {
                if ok {
                    let at = pending.addr.unwrap_or_else(|| {
                        *next_addr += 1 << 24;
                        *next_addr
                    });
                    let _ = ns.shmat_commit(&c, now, pending, at);
                } else {
                    ns.shmat_abort(now, pending);
                }
            }
        }
        Op::Dt(w, a) => {
            let _ = ns.shmdt(&who(w), now, a);
        }
        Op::Munmap(w, a, l) => {
            let _ = ns.munmap(&who(w), now, a, l);
        }
        Op::Ctl(w, id, c, uid, gid, mode) => {
            if let Ok(cmd) = ShmCmd::decode(id, c) {
                let _ = ns.shmctl(&who(w), now, id, cmd, Some(PermUpdate { uid, gid, mode }));
            }
        }
        Op::Fork(w) => {
            let c = who(w);
            *next += 1;
            ns.fork(&c, now, Pid(*next));
            pids.push((*next, c.euid.0));
        }
        Op::Exec(w) => ns.exec(who(w).pid, now),
        Op::Exit(w) => {
            if pids.len() > 1 {
                let (p, _) = pids.remove(w % pids.len());
                ns.exit(Pid(p), now);
            }
        }
        Op::Sysctl(n, v) => {
            let _ = ns.sysctl_write(&cred(1, 0), SYSCTLS[usize::from(n)], &v);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_operations_keep_the_model_consistent(ops in prop::collection::vec(arb_op(), 1..40)) {
        let mut ns = IpcNamespace::new(HeapMemory);
        let mut pids: Vec<(u32, u32)> = vec![(10, 0), (11, 1000), (12, 1001)];
        let (mut next, mut next_addr) = (100u32, 0x7000_0000_0000u64);
        for (i, op) in ops.into_iter().enumerate() {
            step(&mut ns, &mut pids, &mut next, &mut next_addr, Time(i64::try_from(i).unwrap()), op);
            let all: Vec<u32> = pids.iter().map(|(p, _)| *p).collect();
            check_invariants(&mut ns, &all);
        }
    }
}
