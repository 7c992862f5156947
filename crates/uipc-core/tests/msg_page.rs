//! The state page of a System V message queue against the model: the same
//! random non-sleeping sends, receives and `IPC_SET`s run on a model-only
//! namespace and on a namespace whose queue has a page, each call on the
//! page either through the fast path (`msgsnd_fast`/`msgrcv_fast` on the
//! page, as a client runs it) or through the model between `msg_adopt`
//! and `msg_publish` (as the daemon runs it). Every result, every byte
//! and the final `msqid_ds` must agree. Also: a writer that dies inside a
//! commit is rolled back, and a damaged page is reported, never trusted.
#![allow(clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use uipc_abi::{Errno, Msqid64Ds, IPC_NOWAIT, MSG_COPY, MSG_EXCEPT, MSG_NOERROR};
use uipc_core::cred::{CapSet, Cred, Gid, Pid, Uid};
use uipc_core::perm::PermUpdate;
use uipc_core::sysv::msg::{msgrcv_fast, msgsnd_fast, Fast, MsgCmd, MsgCtlOut, MsgSet, MsgText};
use uipc_core::sysv::msg_page::{self, MsgPage, PageBytes};
use uipc_core::wait::Outcome;
use uipc_core::{HeapMemory, IpcNamespace, Time};

type Ns = IpcNamespace<HeapMemory>;

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

fn stat(ns: &mut Ns, id: i32) -> Msqid64Ds {
    match ns.msgctl(&cred(1), Time(1), id, MsgCmd::IpcStat, None).unwrap().1 {
        MsgCtlOut::Ds(d) => d,
        o => panic!("{o:?}"),
    }
}

/// A queue's page as the daemon keeps it: re-formatted when the queue
/// outgrows it.
struct Paged {
    ns: Ns,
    id: i32,
    page: Vec<u8>,
}

impl Paged {
    fn new() -> Paged {
        let mut ns = IpcNamespace::new(HeapMemory);
        let id = ns.msgget(&cred(1), Time(1), 0, 0o1666).unwrap().0;
        let mut p = Paged { ns, id, page: Vec::new() };
        p.reformat();
        p
    }

    fn reformat(&mut self) {
        let geo = self.ns.msg_page_geometry(self.id).unwrap().unwrap();
        self.page = vec![0xa5; usize::try_from(geo.body_len()).unwrap()];
        self.ns.msg_page_init(self.id, &mut self.page[..]).unwrap();
    }

    /// A host call: adopt, the call, publish (growing the page if needed).
    fn host<T>(&mut self, f: impl FnOnce(&mut Ns, i32) -> T) -> T {
        self.ns.msg_adopt(self.id, &mut self.page[..]).unwrap();
        let r = f(&mut self.ns, self.id);
        let geo = self.ns.msg_page_geometry(self.id).unwrap().unwrap();
        let cur = MsgPage::open(&mut self.page[..]).unwrap().geometry();
        if geo.idx_cap > cur.idx_cap || geo.arena_cap > cur.arena_cap {
            self.reformat();
        } else {
            self.ns.msg_publish(self.id, &mut self.page[..]).unwrap();
        }
        r
    }
}

#[derive(Clone, Debug)]
enum Step {
    Send(i64, usize, bool),
    Recv(i64, i64, i32, bool),
    SetQbytes(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1i64..5, 0usize..700, any::<bool>()).prop_map(|(t, n, f)| Step::Send(t, n, f)),
        4 => (-6i64..6, 0i64..800, prop_oneof![Just(0), Just(MSG_NOERROR), Just(MSG_EXCEPT), Just(MSG_COPY)], any::<bool>())
            .prop_map(|(t, n, f, fast)| Step::Recv(t, n, f, fast)),
        1 => prop_oneof![Just(0u64), Just(1), 1u64..6000, Just(16384), 16384u64..40000].prop_map(Step::SetQbytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_fast_path_on_a_page_agrees_with_the_model(steps in proptest::collection::vec(step(), 1..150)) {
        let mut model: Ns = IpcNamespace::new(HeapMemory);
        let mid = model.msgget(&cred(1), Time(1), 0, 0o1666).unwrap().0;
        let mut paged = Paged::new();
        let mut serial = 0u8;
        for (n, s) in steps.into_iter().enumerate() {
            let now = Time(10 + i64::try_from(n).unwrap());
            match s {
                Step::Send(t, len, fast) => {
                    serial = serial.wrapping_add(1);
                    let text: Vec<u8> = (0..len).map(|i| serial.wrapping_add(u8::try_from(i % 251).unwrap())).collect();
                    let sz = i64::try_from(len).unwrap();
                    let want = model.msgsnd(&cred(2), now, mid, MsgText::Read(t, &text), sz, IPC_NOWAIT);
                    let mut got = None;
                    if fast {
                        match msgsnd_fast(&mut paged.page[..], Pid(2), now, paged.id, MsgText::Read(t, &text), sz, IPC_NOWAIT) {
                            Ok(Fast::Done(())) => got = Some(Ok(Outcome::Done(0))),
                            Err(e) => got = Some(Err(e)),
                            Ok(Fast::Host) => {}
                        }
                    }
                    let got = match got {
                        Some(g) => g,
                        None => paged.host(|ns, id| ns.msgsnd(&cred(2), now, id, MsgText::Read(t, &text), sz, IPC_NOWAIT)),
                    };
                    prop_assert_eq!(want, got);
                }
                Step::Recv(t, sz, f, fast) => {
                    let want = model.msgrcv(&cred(3), now, mid, sz, t, f | IPC_NOWAIT, true);
                    let want = want.map(|o| match o { Outcome::Done(m) => (m.mtype, m.data), Outcome::Blocked(_) => panic!() });
                    let mut got = None;
                    if fast {
                        let mut buf = vec![0u8; usize::try_from(sz).unwrap()];
                        match msgrcv_fast(&mut paged.page[..], Pid(3), now, paged.id, sz, t, f | IPC_NOWAIT, &mut buf) {
                            Ok(Fast::Done((mtype, n))) => got = Some(Ok((mtype, buf[..n].to_vec()))),
                            Err(e) => got = Some(Err(e)),
                            Ok(Fast::Host) => {}
                        }
                    }
                    let got = match got {
                        Some(g) => g,
                        None => paged
                            .host(|ns, id| ns.msgrcv(&cred(3), now, id, sz, t, f | IPC_NOWAIT, true))
                            .map(|o| match o { Outcome::Done(m) => (m.mtype, m.data), Outcome::Blocked(_) => panic!() }),
                    };
                    prop_assert_eq!(want, got);
                }
                Step::SetQbytes(b) => {
                    let set = MsgSet { perm: PermUpdate { uid: 0, gid: 0, mode: 0o666 }, qbytes: b };
                    let want = model.msgctl(&cred(1), now, mid, MsgCmd::IpcSet, Some(set));
                    let got = paged.host(|ns, id| ns.msgctl(&cred(1), now, id, MsgCmd::IpcSet, Some(set)));
                    prop_assert_eq!(want, got);
                }
            }
            let before = paged.ns.msg_version(paged.id).unwrap().0;
            let got = paged.host(stat);
            prop_assert_eq!(stat(&mut model, mid), got);
            // A read changes nothing, so the page version does not move either.
            prop_assert!(paged.ns.msg_version(paged.id).unwrap().0 >= before);
        }
    }
}

fn filled() -> Paged {
    let mut p = Paged::new();
    for (t, text) in [(1, &b"one"[..]), (2, b"two"), (3, b"three")] {
        let r = msgsnd_fast(
            &mut p.page[..],
            Pid(2),
            Time(5),
            p.id,
            MsgText::Read(t, text),
            i64::try_from(text.len()).unwrap(),
            0,
        );
        assert_eq!(r, Ok(Fast::Done(())));
    }
    p
}

/// A writer that dies inside its commit (pre-image stored, control block
/// half written) leaves the valid word set: the page is refused until the
/// next locker recovers it, and then the operation did not happen.
#[test]
fn a_commit_interrupted_by_death_is_rolled_back() {
    let mut p = filled();
    let good = p.page.clone();
    // Run a receive of the middle message on a copy, then splice its
    // effect in halfway: pre-image + valid word, half the control block.
    let mut after = p.page.clone();
    let mut buf = [0u8; 16];
    assert_eq!(msgrcv_fast(&mut after[..], Pid(3), Time(6), p.id, 16, 2, 0, &mut buf), Ok(Fast::Done((2, 3))));
    let ctrl = 32..32 + 14 * 8;
    let mut torn = good.clone();
    torn[144..152].copy_from_slice(&1u64.to_le_bytes());
    torn[152..152 + 14 * 8].copy_from_slice(&good[ctrl.clone()]);
    let half = ctrl.start + 7 * 8;
    torn[ctrl.start..half].copy_from_slice(&after[ctrl.start..half]);
    // The other halves the receive wrote are past what is live.
    torn[320..].copy_from_slice(&after[320..]);
    assert!(MsgPage::open(&mut torn[..]).is_err(), "a page with a commit in flight is not used");
    assert_eq!(msgsnd_fast(&mut torn[..], Pid(2), Time(7), p.id, MsgText::Read(1, b"x"), 1, 0), Ok(Fast::Host));
    assert_eq!(msg_page::recover(&mut torn[..]), Ok(true));
    assert_eq!(msg_page::recover(&mut torn[..]), Ok(false));
    p.page = torn;
    p.ns.msg_adopt(p.id, &mut p.page[..]).unwrap();
    let ds = stat(&mut p.ns, p.id);
    assert_eq!((ds.msg_qnum, ds.msg_cbytes, ds.msg_lrpid), (3, 11, 0));
    for (t, want) in [(1, &b"one"[..]), (2, b"two"), (3, b"three")] {
        let mut buf = [0u8; 16];
        let r = msgrcv_fast(&mut p.page[..], Pid(3), Time(8), p.id, 16, t, 0, &mut buf);
        assert_eq!(r, Ok(Fast::Done((t, want.len()))));
        assert_eq!(&buf[..want.len()], want);
    }
}

/// Garbage in a page: the fast path goes to the host, the host's adopt
/// reports `EUCLEAN` and leaves its model as it was; nothing panics.
#[test]
fn a_damaged_page_is_reported_and_never_trusted() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..400 {
        let mut p = filled();
        let before = stat(&mut p.ns, p.id);
        let len = p.page.len();
        for _ in 0..1 + round % 8 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Mostly the header, control block and index, where damage matters.
            let at = usize::try_from(rng % if round % 2 == 0 { 400 } else { len as u64 }).unwrap();
            p.page[at] = u8::try_from(rng >> 56).unwrap();
        }
        let mut buf = [0u8; 64];
        let _ = msgrcv_fast(&mut p.page[..], Pid(3), Time(6), p.id, 64, 0, IPC_NOWAIT, &mut buf);
        let _ = msgsnd_fast(&mut p.page[..], Pid(2), Time(6), p.id, MsgText::Read(1, b"abc"), 3, IPC_NOWAIT);
        match p.ns.msg_adopt(p.id, &mut p.page[..]) {
            Ok(()) => {
                // Whatever was adopted is a consistent queue.
                let ds = stat(&mut p.ns, p.id);
                let mut total = 0;
                for _ in 0..ds.msg_qnum {
                    let m = p.ns.msgrcv(&cred(3), Time(9), p.id, 1 << 20, 0, IPC_NOWAIT, true).unwrap();
                    let Outcome::Done(m) = m else { panic!() };
                    assert!(m.mtype >= 1);
                    total += m.data.len() as u64;
                }
                assert_eq!(total, ds.msg_cbytes);
            }
            Err(e) => {
                assert_eq!(e, Errno::EUCLEAN);
                assert_eq!(stat(&mut p.ns, p.id), before);
            }
        }
    }
}

/// Fast-path writes through `[u8]` stay within the page's length: a page
/// truncated under its geometry is refused.
#[test]
fn a_short_page_is_refused() {
    let p = filled();
    let mut short = p.page[..p.page.len() - 1].to_vec();
    assert_eq!(MsgPage::open(&mut short[..]).map(|_| ()), Err(Errno::EUCLEAN));
    assert_eq!(short.as_slice().size(), p.page.len() - 1);
}
