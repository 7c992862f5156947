//! The state page of a POSIX message queue against the model: the same
//! random non-sleeping sends, receives, attribute reads and `mq_notify`
//! registrations run on a model-only namespace and on a namespace whose
//! queue has a page, each call on the page either through the fast path
//! (`mq_send_fast`/`mq_receive_fast`, as a client runs it) or through the
//! model between `mq_adopt` and `mq_publish` (as the daemon runs it).
//! Every result, every byte, every notification and the queue's final
//! state must agree. Also: a writer that dies at any point of its
//! operation leaves the page as before or as after it (never between),
//! and a damaged page is reported, never trusted.
#![allow(clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use uipc_core::cred::{CapSet, Cred, Gid, Pid, PosixIds, Uid};
use uipc_core::posix::mq_page::{
    self, mq_receive_fast, mq_send_fast, MqAccess, MqGeometry, MqLevel, MqPage, PAGE_BODY_MAX,
};
use uipc_core::posix::mqueue::{Deadline, MqCreateAttr, MqDescId, NotifyHow, Received, O_CREAT};
use uipc_core::sysv::msg::Fast;
use uipc_core::sysv::msg_page::PageBytes;
use uipc_core::wait::Outcome;
use uipc_core::{Errno, HeapMemory, IpcNamespace, Time};

type Ns = IpcNamespace<HeapMemory>;

const O_RDONLY: i32 = 0;
const O_WRONLY: i32 = 1;
const O_RDWR: i32 = 2;
const MAXMSG: i64 = 5;
const MSGSIZE: i64 = 64;

fn cred(pid: u32) -> Cred {
    Cred {
        pid: Pid(pid),
        euid: Uid(0),
        egid: Gid(0),
        groups: vec![],
        caps: CapSet(u64::MAX),
        memlock_limit: 0,
        posix: PosixIds::from_effective(Uid(0), Gid(0)),
    }
}

/// Messages in receive order, `curmsgs`, `qsize`, the inode's times.
type State = (Vec<(u32, Vec<u8>)>, i64, u64, (Time, Time, Time));

/// A namespace with one queue and three descriptions of it (read-write,
/// write-only, read-only), all held by process 2.
struct Setup {
    ns: Ns,
    queue: u64,
    descs: [MqDescId; 3],
}

impl Setup {
    fn new(maxmsg: i64, msgsize: i64) -> Setup {
        let mut ns: Ns = IpcNamespace::new(HeapMemory);
        let attr = Some(MqCreateAttr { maxmsg, msgsize });
        let o = ns.mq_open(&cred(2), Time(1), b"q", O_CREAT | O_RDWR, 0o600, attr).unwrap();
        let w = ns.mq_open(&cred(2), Time(1), b"q", O_WRONLY, 0, None).unwrap().desc;
        let r = ns.mq_open(&cred(2), Time(1), b"q", O_RDONLY, 0, None).unwrap().desc;
        Setup { ns, queue: o.queue, descs: [o.desc, w, r] }
    }

    /// The queue's state as the model has it.
    fn state(&self) -> State {
        let q = self.ns.mq_queue(self.queue).unwrap();
        (q.messages().map(|(p, m)| (p, m.to_vec())).collect(), q.curmsgs(), q.qsize(), q.times())
    }
}

/// A queue's page as the daemon keeps it.
struct Paged {
    s: Setup,
    page: Vec<u8>,
}

impl Paged {
    fn new(maxmsg: i64, msgsize: i64) -> Paged {
        let mut s = Setup::new(maxmsg, msgsize);
        let geo = s.ns.mq_page_geometry(s.queue).unwrap().unwrap();
        let mut page = vec![0xa5; usize::try_from(geo.body_len()).unwrap()];
        s.ns.mq_page_init(s.queue, &mut page[..]).unwrap();
        Paged { s, page }
    }

    /// A host call: adopt, the call, publish.
    fn host<T>(&mut self, f: impl FnOnce(&mut Ns, &[MqDescId; 3]) -> T) -> T {
        self.s.ns.mq_adopt(self.s.queue, &mut self.page[..]).unwrap();
        let r = f(&mut self.s.ns, &self.s.descs);
        self.s.ns.mq_publish(self.s.queue, &mut self.page[..]).unwrap();
        r
    }

    fn level_word(&mut self) -> MqLevel {
        let p = MqPage::open(&mut self.page[..]).unwrap();
        MqLevel::from_word(p.ctrl().level).unwrap()
    }
}

fn access(d: usize, nonblock: bool, move_level: bool) -> MqAccess {
    MqAccess { read: d != 1, write: d != 2, nonblock, move_level }
}

#[derive(Clone, Debug)]
enum Step {
    /// Description, priority, length, deadline, fast, may move the level.
    Send(usize, u32, usize, Option<Deadline>, bool, bool),
    /// Description, buffer length, deadline, fast, may move the level.
    Recv(usize, usize, Option<Deadline>, bool, bool),
    /// Register (or remove) process 2's notification.
    Notify(bool),
    /// `mq_getattr`.
    GetAttr,
}

fn deadline() -> impl Strategy<Value = Option<Deadline>> {
    prop_oneof![
        6 => Just(None),
        1 => Just(Some(Deadline { sec: 5, nsec: 0 })),
        1 => Just(Some(Deadline { sec: -1, nsec: 0 })),
        1 => Just(Some(Deadline { sec: 1, nsec: 1_000_000_000 })),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let prio = prop_oneof![8 => 0u32..4, 1 => Just(32767u32), 1 => Just(32768u32), 1 => 0u32..40000];
    let desc = prop_oneof![6 => Just(0usize), 1 => Just(1), 1 => Just(2)];
    prop_oneof![
        5 => (desc.clone(), prio, 0usize..=66, deadline(), any::<bool>(), any::<bool>())
            .prop_map(|(d, p, n, dl, f, m)| Step::Send(d, p, n, dl, f, m)),
        5 => (desc, prop_oneof![Just(64usize), Just(63), 0usize..200], deadline(), any::<bool>(), any::<bool>())
            .prop_map(|(d, n, dl, f, m)| Step::Recv(d, n, dl, f, m)),
        1 => any::<bool>().prop_map(Step::Notify),
        1 => Just(Step::GetAttr),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_fast_path_on_a_page_agrees_with_the_model(steps in proptest::collection::vec(step(), 1..120)) {
        let mut model = Setup::new(MAXMSG, MSGSIZE);
        let mut paged = Paged::new(MAXMSG, MSGSIZE);
        let mut serial = 0u8;
        for (n, s) in steps.into_iter().enumerate() {
            let now = Time(10 + i64::try_from(n).unwrap());
            match s {
                Step::Send(d, prio, len, dl, fast, mv) => {
                    serial = serial.wrapping_add(1);
                    let text: Vec<u8> = (0..len).map(|i| serial.wrapping_add(u8::try_from(i % 251).unwrap())).collect();
                    let want = model.ns.mq_timedsend(&cred(2), now, model.descs[d], true, text.clone(), prio, dl);
                    let mut got = None;
                    if fast {
                        match mq_send_fast(&mut paged.page[..], access(d, true, mv), now, prio, &text, dl) {
                            Ok(Fast::Done(m)) => {
                                prop_assert!(mv || m.from == m.to, "a level move only when allowed");
                                got = Some(Ok(Outcome::Done(())));
                            }
                            Err(e) => got = Some(Err(e)),
                            Ok(Fast::Host) => {}
                        }
                    }
                    let got = match got {
                        Some(g) => g,
                        None => paged.host(|ns, ds| ns.mq_timedsend(&cred(2), now, ds[d], true, text, prio, dl)),
                    };
                    prop_assert_eq!(want, got);
                }
                Step::Recv(d, len, dl, fast, mv) => {
                    let want = model.ns.mq_timedreceive(&cred(2), now, model.descs[d], true, len as u64, dl);
                    let want = want.map(|o| match o { Outcome::Done(m) => m, Outcome::Blocked(_) => panic!() });
                    let mut got = None;
                    if fast {
                        let mut buf = vec![0u8; len];
                        match mq_receive_fast(&mut paged.page[..], access(d, true, mv), now, &mut buf, dl) {
                            Ok(Fast::Done((prio, k, m))) => {
                                prop_assert!(mv || m.from == m.to);
                                got = Some(Ok(Received { data: buf[..k].to_vec(), prio }));
                            }
                            Err(e) => got = Some(Err(e)),
                            Ok(Fast::Host) => {}
                        }
                    }
                    let got = match got {
                        Some(g) => g,
                        None => paged
                            .host(|ns, ds| ns.mq_timedreceive(&cred(2), now, ds[d], true, len as u64, dl))
                            .map(|o| match o { Outcome::Done(m) => m, Outcome::Blocked(_) => panic!() }),
                    };
                    prop_assert_eq!(want, got);
                }
                Step::Notify(on) => {
                    let how = on.then_some(NotifyHow::Signal { signo: 10, value: 0 });
                    let want = model.ns.mq_notify(&cred(2), now, model.descs[0], how);
                    let got = paged.host(|ns, ds| ns.mq_notify(&cred(2), now, ds[0], how));
                    prop_assert_eq!(want, got);
                }
                Step::GetAttr => {
                    let want = model.ns.mq_getsetattr(&cred(2), now, model.descs[0], false, None);
                    let got = paged.host(|ns, ds| ns.mq_getsetattr(&cred(2), now, ds[0], false, None));
                    prop_assert_eq!(want, got);
                }
            }
            prop_assert_eq!(model.ns.mq_take_notifications(), paged.s.ns.mq_take_notifications());
            // The level word is always the queue's level.
            let level = paged.level_word();
            prop_assert_eq!(level, MqPage::open(&mut paged.page[..]).unwrap().level_now());
            paged.s.ns.mq_adopt(paged.s.queue, &mut paged.page[..]).unwrap();
            prop_assert_eq!(model.state(), paged.s.state());
        }
    }
}

fn filled() -> Paged {
    let mut p = Paged::new(MAXMSG, MSGSIZE);
    for (prio, text) in [(1, &b"one"[..]), (3, b"three"), (1, b"uno"), (2, b"two")] {
        let r = mq_send_fast(&mut p.page[..], access(0, false, true), Time(5), prio, text, None);
        assert!(matches!(r, Ok(Fast::Done(_))), "{r:?}");
    }
    p
}

#[test]
fn receives_take_the_oldest_of_the_highest_priority() {
    let mut p = filled();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while let Ok(Fast::Done((prio, n, _))) =
        mq_receive_fast(&mut p.page[..], access(0, true, true), Time(6), &mut buf, None)
    {
        got.push((prio, buf[..n].to_vec()));
    }
    let want: Vec<(u32, Vec<u8>)> =
        vec![(3, b"three".to_vec()), (2, b"two".to_vec()), (1, b"one".to_vec()), (1, b"uno".to_vec())];
    assert_eq!(got, want);
    assert_eq!(mq_receive_fast(&mut p.page[..], access(0, true, true), Time(6), &mut buf, None), Err(Errno::EAGAIN));
}

#[test]
fn without_the_right_to_move_the_level_a_change_of_level_is_the_hosts() {
    let mut p = Paged::new(2, 8);
    let a = access(0, true, false);
    // Empty → some: the host's.
    assert_eq!(mq_send_fast(&mut p.page[..], a, Time(5), 0, b"a", None), Ok(Fast::Host));
    p.host(|ns, ds| ns.mq_timedsend(&cred(2), Time(5), ds[0], true, b"a".to_vec(), 0, None)).unwrap();
    assert_eq!(p.level_word(), MqLevel::Some);
    // Some → full: the host's as well; some → some does not exist with maxmsg 2.
    assert_eq!(mq_send_fast(&mut p.page[..], a, Time(5), 0, b"b", None), Ok(Fast::Host));
    // With the right, the move is reported and the word follows.
    let r = mq_send_fast(&mut p.page[..], access(0, true, true), Time(5), 0, b"b", None);
    assert!(matches!(r, Ok(Fast::Done(m)) if m.from == MqLevel::Some && m.to == MqLevel::Full), "{r:?}");
    assert_eq!(p.level_word(), MqLevel::Full);
    // Full and non-blocking: EAGAIN in the caller; blocking: the host's.
    assert_eq!(mq_send_fast(&mut p.page[..], a, Time(5), 0, b"c", None), Err(Errno::EAGAIN));
    assert_eq!(mq_send_fast(&mut p.page[..], access(0, false, true), Time(5), 0, b"c", None), Ok(Fast::Host));
}

#[test]
fn a_send_to_the_empty_queue_with_a_registration_is_the_hosts() {
    let mut p = Paged::new(4, 8);
    let how = Some(NotifyHow::Signal { signo: 10, value: 0 });
    p.host(|ns, ds| ns.mq_notify(&cred(2), Time(5), ds[0], how)).unwrap();
    assert_eq!(mq_send_fast(&mut p.page[..], access(0, true, true), Time(5), 0, b"a", None), Ok(Fast::Host));
    p.host(|ns, ds| ns.mq_timedsend(&cred(2), Time(5), ds[0], true, b"a".to_vec(), 0, None)).unwrap();
    assert_eq!(p.s.ns.mq_take_notifications().len(), 1);
    // Fired: the registration is gone, and the page says so.
    assert!(matches!(mq_send_fast(&mut p.page[..], access(0, true, true), Time(5), 0, b"b", None), Ok(Fast::Done(_))));
}

/// Bytes whose writes stop landing after a budget: a writer killed at
/// that point.
struct Dying<'a> {
    b: &'a mut [u8],
    budget: usize,
}

impl PageBytes for Dying<'_> {
    fn size(&self) -> usize {
        self.b.len()
    }
    fn read(&self, off: usize, out: &mut [u8]) -> Result<(), Errno> {
        self.b.read(off, out)
    }
    fn write(&mut self, off: usize, data: &[u8]) -> Result<(), Errno> {
        if self.budget == 0 {
            return Ok(());
        }
        self.budget -= 1;
        self.b.write(off, data)
    }
}

/// A writer killed after any number of its writes: after the next
/// locker's recovery the queue is as before the operation or as after it,
/// and whole.
#[test]
fn a_writer_killed_anywhere_leaves_the_operation_done_or_undone() {
    type Op = fn(&mut dyn PageBytes) -> bool;
    let ops: [Op; 3] = [
        // An append, a send that rebuilds the index, a receive.
        |b| matches!(mq_send_fast(b, access(0, true, true), Time(9), 1, b"tail", None), Ok(Fast::Done(_))),
        |b| matches!(mq_send_fast(b, access(0, true, true), Time(9), 9, b"front", None), Ok(Fast::Done(_))),
        |b| {
            let mut buf = [0u8; 64];
            matches!(mq_receive_fast(b, access(0, true, true), Time(9), &mut buf, None), Ok(Fast::Done(_)))
        },
    ];
    for op in ops {
        let before = {
            let mut p = filled();
            p.s.ns.mq_adopt(p.s.queue, &mut p.page[..]).unwrap();
            p.s.state()
        };
        let after = {
            let mut p = filled();
            assert!(op(&mut Dying { b: &mut p.page[..], budget: usize::MAX }));
            p.s.ns.mq_adopt(p.s.queue, &mut p.page[..]).unwrap();
            p.s.state()
        };
        assert_ne!(before, after);
        for budget in 0..64 {
            let mut p = filled();
            op(&mut Dying { b: &mut p.page[..], budget });
            mq_page::recover(&mut p.page[..]).unwrap();
            p.s.ns.mq_adopt(p.s.queue, &mut p.page[..]).unwrap();
            let st = p.s.state();
            assert!(st == before || st == after, "budget {budget}: {st:?}");
        }
    }
}

/// Garbage in a page: the fast path goes to the host or answers as for a
/// sound queue, the host's adopt reports `EUCLEAN` and leaves its model as
/// it was, or adopts a consistent queue; nothing panics.
#[test]
fn a_damaged_page_is_reported_and_never_trusted() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..600 {
        let mut p = filled();
        p.s.ns.mq_adopt(p.s.queue, &mut p.page[..]).unwrap();
        let before = p.s.state();
        let len = p.page.len();
        for _ in 0..1 + round % 8 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let at = usize::try_from(rng % if round % 2 == 0 { 600 } else { len as u64 }).unwrap();
            p.page[at] = u8::try_from(rng >> 56).unwrap();
        }
        let mut buf = [0u8; 64];
        let _ = mq_receive_fast(&mut p.page[..], access(0, true, true), Time(6), &mut buf, None);
        let _ = mq_send_fast(&mut p.page[..], access(0, true, true), Time(6), 7, b"abc", None);
        match p.s.ns.mq_adopt(p.s.queue, &mut p.page[..]) {
            Ok(()) => {
                let (msgs, cur, qsize, _) = p.s.state();
                assert_eq!(msgs.len(), usize::try_from(cur).unwrap());
                assert!(cur <= MAXMSG);
                assert_eq!(msgs.iter().map(|(_, m)| m.len() as u64).sum::<u64>(), qsize);
                assert!(msgs.windows(2).all(|w| w[0].0 >= w[1].0), "delivery order");
                assert!(msgs.iter().all(|(p, m)| *p < 32768 && m.len() <= 64));
            }
            Err(e) => {
                assert_eq!(e, Errno::EUCLEAN);
                assert_eq!(p.s.state(), before);
            }
        }
    }
}

#[test]
fn a_short_page_is_refused_and_big_queues_get_none() {
    let p = filled();
    let mut short = p.page[..p.page.len() - 1].to_vec();
    assert_eq!(MqPage::open(&mut short[..]).map(|_| ()), Err(Errno::EUCLEAN));
    let s = Setup::new(10, 8192);
    assert!(s.ns.mq_page_geometry(s.queue).unwrap().is_some_and(|g| g.body_len() <= PAGE_BODY_MAX));
    // 200 messages of 8 KiB: past the bound, the daemon keeps the queue.
    assert_eq!(MqGeometry::for_queue(200, 8192), None);
    assert_eq!(MqGeometry::for_queue(0, 8192), None);
}
