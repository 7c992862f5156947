//! The message-queue model on SPEC section 4's own examples (the
//! differential suite checks the same against the kernel; these run
//! without root), and a proptest of its invariants against a plain
//! reference queue.
#![allow(clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use uipc_abi::{Errno, IPC_NOWAIT, MSG_COPY, MSG_EXCEPT, MSG_NOERROR};
use uipc_core::cred::{CapSet, Cred, Gid, Pid, Uid};
use uipc_core::perm::PermUpdate;
use uipc_core::sysv::msg::{Message, MsgCmd, MsgCtlOut, MsgSet, MsgText};
use uipc_core::wait::{Interrupt, Outcome, WaiterId, Wakeup};
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

fn user(pid: u32, uid: u32) -> Cred {
    Cred {
        pid: Pid(pid),
        euid: Uid(uid),
        egid: Gid(uid),
        groups: vec![],
        caps: CapSet(0),
        memlock_limit: 0,
        posix: uipc_core::PosixIds::from_effective(Uid(uid), Gid(uid)),
    }
}

const NOW: Time = Time(100);

fn snd(ns: &mut Ns, pid: u32, id: i32, mtype: i64, text: &[u8], flags: i32) -> Result<Outcome<i64>, Errno> {
    ns.msgsnd(&cred(pid), NOW, id, MsgText::Read(mtype, text), i64::try_from(text.len()).unwrap(), flags)
}

fn rcv(ns: &mut Ns, pid: u32, id: i32, size: i64, msgtyp: i64, flags: i32) -> Result<Outcome<Message>, Errno> {
    ns.msgrcv(&cred(pid), NOW, id, size, msgtyp, flags, true)
}

fn got(r: Result<Outcome<Message>, Errno>) -> (i64, Vec<u8>) {
    match r {
        Ok(Outcome::Done(m)) => (m.mtype, m.data),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn blocked<T: std::fmt::Debug>(o: Result<Outcome<T>, Errno>) -> WaiterId {
    match o {
        Ok(Outcome::Blocked(w)) => w,
        other => panic!("expected to block, got {other:?}"),
    }
}

fn stat(ns: &mut Ns, id: i32) -> uipc_abi::Msqid64Ds {
    match ns.msgctl(&cred(1), NOW, id, MsgCmd::IpcStat, None).unwrap().1 {
        MsgCtlOut::Ds(ds) => ds,
        other => panic!("{other:?}"),
    }
}

fn set(ns: &mut Ns, id: i32, mode: u32, qbytes: u64) {
    let s = MsgSet { perm: PermUpdate { uid: 0, gid: 0, mode }, qbytes };
    ns.msgctl(&cred(1), NOW, id, MsgCmd::IpcSet, Some(s)).unwrap();
}

fn new_queue(ns: &mut Ns) -> i32 {
    ns.msgget(&cred(1), NOW, 0, 0o666).unwrap().0
}

#[test]
fn selection_by_type_follows_find_msg() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = new_queue(&mut ns);
    for t in [5, 3, 7, 3, 1, 2] {
        snd(&mut ns, 2, id, t, &[u8::try_from(t).unwrap()], 0).unwrap();
    }
    // MSG-TYPE-3: the lowest type ≤ 4 is 1; then among ≤ 4: 2, then the oldest 3.
    assert_eq!(got(rcv(&mut ns, 3, id, 8, -4, 0)).0, 1);
    assert_eq!(got(rcv(&mut ns, 3, id, 8, -4, 0)).0, 2);
    // MSG-TYPE-2 with MSG_EXCEPT: first type other than 5 (the 3 queued second).
    assert_eq!(got(rcv(&mut ns, 3, id, 8, 5, MSG_EXCEPT)).0, 3);
    // MSG-TYPE-3: LONG_MIN is LONG_MAX: the lowest type overall.
    assert_eq!(got(rcv(&mut ns, 3, id, 8, i64::MIN, 0)).0, 3);
    // MSG-TYPE-4: MSG_COPY by position; out of range is ENOMSG.
    assert_eq!(got(rcv(&mut ns, 3, id, 8, 1, MSG_COPY | IPC_NOWAIT)).0, 7);
    assert_eq!(rcv(&mut ns, 3, id, 8, 2, MSG_COPY | IPC_NOWAIT), Err(Errno::ENOMSG));
    assert_eq!(rcv(&mut ns, 3, id, 8, -1, MSG_COPY | IPC_NOWAIT), Err(Errno::ENOMSG));
    assert_eq!(rcv(&mut ns, 3, id, 8, 0, MSG_COPY), Err(Errno::EINVAL));
    // MSG-TYPE-1: 0 with MSG_EXCEPT is still "any".
    assert_eq!(got(rcv(&mut ns, 3, id, 8, 0, MSG_EXCEPT)).0, 5);
    assert_eq!(stat(&mut ns, id).msg_qnum, 1);
}

#[test]
fn e2big_leaves_the_message_and_noerror_truncates() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = new_queue(&mut ns);
    snd(&mut ns, 2, id, 1, b"hello world", 0).unwrap();
    assert_eq!(rcv(&mut ns, 3, id, 4, 0, 0), Err(Errno::E2BIG));
    let ds = stat(&mut ns, id);
    assert_eq!((ds.msg_qnum, ds.msg_cbytes, ds.msg_lrpid, ds.msg_rtime), (1, 11, 0, 0));
    // MSG_COPY with MSG_NOERROR into a too-small scratch buffer: EINVAL.
    assert_eq!(rcv(&mut ns, 3, id, 4, 0, MSG_COPY | IPC_NOWAIT | MSG_NOERROR), Err(Errno::EINVAL));
    assert_eq!(got(rcv(&mut ns, 3, id, 4, 0, MSG_NOERROR)), (1, b"hell".to_vec()));
    let ds = stat(&mut ns, id);
    assert_eq!((ds.msg_qnum, ds.msg_cbytes, ds.msg_lrpid, ds.msg_lspid), (0, 0, 3, 2));
}

#[test]
fn capacity_counts_messages_too() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = new_queue(&mut ns);
    set(&mut ns, id, 0o666, 3);
    for _ in 0..3 {
        snd(&mut ns, 2, id, 1, b"", IPC_NOWAIT).unwrap();
    }
    // MSG-CAP-1: qbytes = 3 → the 4th zero-length message does not fit.
    assert_eq!(snd(&mut ns, 2, id, 1, b"", IPC_NOWAIT), Err(Errno::EAGAIN));
    // MSG-CAP-2: lowering below usage discards nothing.
    set(&mut ns, id, 0o666, 0);
    assert_eq!(stat(&mut ns, id).msg_qnum, 3);
}

#[test]
fn hand_off_skips_a_too_small_receiver_with_e2big() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = new_queue(&mut ns);
    let small = blocked(rcv(&mut ns, 2, id, 1, 0, 0));
    let other_type = blocked(rcv(&mut ns, 3, id, 64, 9, 0));
    let big = blocked(rcv(&mut ns, 4, id, 64, 0, 0));
    assert_eq!(snd(&mut ns, 5, id, 1, b"abc", 0), Ok(Outcome::Done(0)));
    let msg = Message { mtype: 1, data: b"abc".to_vec() };
    assert_eq!(
        ns.take_wakeups(),
        vec![Wakeup::new(small, Err(Errno::E2BIG)), Wakeup { waiter: big, result: Ok(3), message: Some(msg) }]
    );
    // MSG-PIPE-2: never queued; rtime and lrpid are the receiver's.
    let ds = stat(&mut ns, id);
    assert_eq!((ds.msg_qnum, ds.msg_cbytes, ds.msg_lrpid, ds.msg_lspid, ds.msg_rtime), (0, 0, 4, 5, 100));
    // The type-9 receiver still sleeps; a type-9 message goes to it.
    snd(&mut ns, 5, id, 9, b"x", 0).unwrap();
    assert_eq!(ns.take_wakeups()[0].waiter, other_type);
    assert_eq!(ns.msg_interrupt(other_type, Interrupt::Signal), None);
}

#[test]
fn a_receive_wakes_the_senders_that_fit() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = new_queue(&mut ns);
    set(&mut ns, id, 0o666, 10);
    snd(&mut ns, 2, id, 1, &[0; 10], 0).unwrap();
    let a = blocked(snd(&mut ns, 3, id, 2, &[1; 6], 0));
    let b = blocked(snd(&mut ns, 4, id, 3, &[2; 4], 0));
    let c = blocked(snd(&mut ns, 5, id, 4, &[3; 5], 0));
    // MSG-PIPE-4: full of other messages: a sleeping receiver does not help a sender.
    got(rcv(&mut ns, 6, id, 64, 0, 0));
    // All three fit the empty queue; a (6) then b (4) send; c (5) no longer fits.
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(a, Ok(0)), Wakeup::new(b, Ok(0))]);
    let ds = stat(&mut ns, id);
    assert_eq!((ds.msg_qnum, ds.msg_cbytes, ds.msg_lspid), (2, 10, 4));
    assert_eq!(got(rcv(&mut ns, 6, id, 64, 0, 0)), (2, vec![1; 6]));
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(c, Ok(0))]);
    assert_eq!(got(rcv(&mut ns, 6, id, 64, 0, 0)), (3, vec![2; 4]));
    assert_eq!(got(rcv(&mut ns, 6, id, 64, 0, 0)), (4, vec![3; 5]));
}

#[test]
fn ipc_set_rechecks_receivers_and_wakes_senders() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = new_queue(&mut ns);
    set(&mut ns, id, 0o666, 0);
    let stranger = blocked(ns.msgrcv(&user(2, 1000), NOW, id, 8, 0, 0, true));
    let root = blocked(rcv(&mut ns, 3, id, 8, 0, 0));
    let sender = blocked(snd(&mut ns, 4, id, 1, b"hi", 0));
    // MSG-CTL-2: the stranger loses read permission (EACCES); qbytes 16 lets the sender in,
    // whose message goes straight to the root receiver.
    set(&mut ns, id, 0o600, 16);
    let msg = Message { mtype: 1, data: b"hi".to_vec() };
    assert_eq!(
        ns.take_wakeups(),
        vec![
            Wakeup::new(stranger, Err(Errno::EACCES)),
            Wakeup { waiter: root, result: Ok(2), message: Some(msg) },
            Wakeup::new(sender, Ok(0))
        ]
    );
}

#[test]
fn rmid_wakes_every_sleeper_with_eidrm() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = new_queue(&mut ns);
    set(&mut ns, id, 0o666, 0);
    let r = blocked(rcv(&mut ns, 2, id, 8, 0, 0));
    let s = blocked(snd(&mut ns, 3, id, 1, b"x", 0));
    ns.msgctl(&cred(1), NOW, id, MsgCmd::IpcRmid, None).unwrap();
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(r, Err(Errno::EIDRM)), Wakeup::new(s, Err(Errno::EIDRM))]);
    assert_eq!(ns.msgctl(&cred(1), NOW, id, MsgCmd::IpcStat, None), Err(Errno::EINVAL));
}

#[test]
fn check_order_of_msgsnd_and_msgrcv() {
    let mut ns = IpcNamespace::new(HeapMemory);
    // MSG-SND-1..5.
    assert_eq!(ns.msgsnd(&cred(1), NOW, -1, MsgText::Unreadable, -1, 0), Err(Errno::EFAULT));
    assert_eq!(ns.msgsnd(&cred(1), NOW, 5, MsgText::TypeOnly(0), 8193, 0), Err(Errno::EINVAL));
    assert_eq!(ns.msgsnd(&cred(1), NOW, 5, MsgText::TypeOnly(0), 1, 0), Err(Errno::EINVAL));
    assert_eq!(ns.msgsnd(&cred(1), NOW, 5, MsgText::TypeOnly(1), 1, 0), Err(Errno::EFAULT));
    assert_eq!(ns.msgsnd(&cred(1), NOW, 5, MsgText::Read(1, b"x"), 1, 0), Err(Errno::EINVAL));
    // MSG-RCV-1..3.
    assert_eq!(ns.msgrcv(&cred(1), NOW, -1, 8, 0, MSG_COPY, false), Err(Errno::EINVAL));
    assert_eq!(ns.msgrcv(&cred(1), NOW, 5, 8, 0, MSG_COPY | MSG_EXCEPT | IPC_NOWAIT, false), Err(Errno::EINVAL));
    assert_eq!(ns.msgrcv(&cred(1), NOW, 5, 8, 0, MSG_COPY | IPC_NOWAIT, false), Err(Errno::EFAULT));
    assert_eq!(ns.msgrcv(&cred(1), NOW, 5, 8, 0, 0, false), Err(Errno::EINVAL));
    let id = ns.msgget(&cred(1), NOW, 0, 0o600).unwrap().0;
    assert_eq!(ns.msgrcv(&user(2, 1000), NOW, id, 8, 0, 0, true), Err(Errno::EACCES));
    assert_eq!(ns.msgsnd(&user(2, 1000), NOW, id, MsgText::Read(1, b""), 0, 0), Err(Errno::EACCES));
    assert_eq!(ns.msgrcv(&cred(1), NOW, id, 8, 0, IPC_NOWAIT, true), Err(Errno::ENOMSG));
    // MSG-CTL-2: qbytes above msgmnb needs CAP_SYS_RESOURCE (checked before uid validity).
    let nocap = Cred { caps: CapSet(0), ..cred(1) };
    let s = MsgSet { perm: PermUpdate { uid: u32::MAX, gid: 0, mode: 0 }, qbytes: 16385 };
    assert_eq!(ns.msgctl(&nocap, NOW, id, MsgCmd::IpcSet, Some(s)), Err(Errno::EPERM));
    assert_eq!(ns.msgctl(&cred(1), NOW, id, MsgCmd::IpcSet, Some(s)), Err(Errno::EINVAL));
    assert_eq!(ns.msgctl(&cred(1), NOW, id, MsgCmd::IpcSet, None), Err(Errno::EFAULT));
    assert_eq!(MsgCmd::decode(0, -1), Err(Errno::EINVAL));
    assert_eq!(MsgCmd::decode(0, 0x100 | 2), Err(Errno::EINVAL));
}

#[test]
fn msg_info_counts_the_namespace() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let a = new_queue(&mut ns);
    let b = new_queue(&mut ns);
    snd(&mut ns, 2, a, 1, b"abc", 0).unwrap();
    snd(&mut ns, 2, b, 1, b"de", 0).unwrap();
    let (max, out) = ns.msgctl(&cred(1), NOW, 0, MsgCmd::MsgInfo, None).unwrap();
    let MsgCtlOut::Info(info) = out else { panic!() };
    assert_eq!((max, info.msgpool, info.msgmap, info.msgtql), (1, 2, 2, 5));
    let (_, out) = ns.msgctl(&cred(1), NOW, 0, MsgCmd::IpcInfo, None).unwrap();
    let MsgCtlOut::Info(info) = out else { panic!() };
    assert_eq!((info.msgpool, info.msgmap, info.msgtql, info.msgseg, info.msgssz), (512_000, 16384, 16384, 65535, 16));
    ns.msgctl(&cred(1), NOW, a, MsgCmd::IpcRmid, None).unwrap();
    let (_, out) = ns.msgctl(&cred(1), NOW, 0, MsgCmd::MsgInfo, None).unwrap();
    let MsgCtlOut::Info(info) = out else { panic!() };
    assert_eq!((info.msgpool, info.msgmap, info.msgtql), (1, 1, 2));
}

#[test]
fn versions_advance_with_changes_only() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = new_queue(&mut ns);
    let v0 = ns.msg_version(id).unwrap();
    stat(&mut ns, id);
    assert_eq!(rcv(&mut ns, 2, id, 8, 0, IPC_NOWAIT), Err(Errno::ENOMSG));
    assert_eq!(ns.msg_version(id).unwrap(), v0);
    snd(&mut ns, 2, id, 1, b"x", 0).unwrap();
    let v1 = ns.msg_version(id).unwrap();
    assert!(v1.0 > v0.0);
    got(rcv(&mut ns, 2, id, 8, 0, MSG_COPY | IPC_NOWAIT));
    assert_eq!(ns.msg_version(id).unwrap(), v1);
}

#[test]
fn proc_view_has_the_kernel_layout() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = ns.msgget(&cred(1), NOW, 119, 0o1600 | 0o600).unwrap().0;
    snd(&mut ns, 29018, id, 1, &[0; 15], 0).unwrap();
    let text = ns.proc_sysvipc_msg();
    assert_eq!(
        text.lines().nth(1).unwrap(),
        "       119          0   600          15          1 29018     0     0     0     0     0        100          0        100"
    );
}

/// One step of the random sequence (no sleeping: `IPC_NOWAIT` everywhere).
#[derive(Clone, Debug)]
enum Step {
    Send(i64, usize),
    Recv(i64, i64, i32),
    SetQbytes(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1i64..5, 0usize..3000).prop_map(|(t, n)| Step::Send(t, n)),
        (-6i64..6, 0i64..4000, prop_oneof![Just(0), Just(MSG_NOERROR), Just(MSG_EXCEPT), Just(MSG_COPY)])
            .prop_map(|(t, n, f)| Step::Recv(t, n, f)),
        (0u64..40000).prop_map(Step::SetQbytes),
    ]
}

/// The plain reference: a vector of (type, bytes).
fn reference_recv(q: &mut Vec<(i64, Vec<u8>)>, t: i64, size: i64, flags: i32) -> Result<(i64, Vec<u8>), Errno> {
    let pos = if flags & MSG_COPY != 0 {
        usize::try_from(t).ok().filter(|&i| i < q.len())
    } else if t == 0 {
        (!q.is_empty()).then_some(0)
    } else if t < 0 {
        let lim = -t;
        let best = q.iter().filter(|m| m.0 <= lim).map(|m| m.0).min();
        best.and_then(|b| q.iter().position(|m| m.0 == b))
    } else if flags & MSG_EXCEPT != 0 {
        q.iter().position(|m| m.0 != t)
    } else {
        q.iter().position(|m| m.0 == t)
    };
    let Some(i) = pos else { return Err(Errno::ENOMSG) };
    let size = usize::try_from(size).unwrap();
    if q[i].1.len() > size && flags & MSG_NOERROR == 0 {
        return Err(Errno::E2BIG);
    }
    let (mtype, mut data) = q[i].clone();
    data.truncate(size);
    if flags & MSG_COPY == 0 {
        q.remove(i);
    }
    Ok((mtype, data))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the sequence: the text received is the text sent (through
    /// arena compaction and growth), qnum/cbytes/MSG_INFO agree with a
    /// plain reference queue, and the arena stays bounded.
    #[test]
    fn queue_matches_a_plain_reference(steps in proptest::collection::vec(step(), 1..120)) {
        let mut ns = IpcNamespace::new(HeapMemory);
        let id = new_queue(&mut ns);
        let mut model: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut qbytes = 16384u64;
        let mut serial = 0u8;
        for s in steps {
            match s {
                Step::Send(t, n) => {
                    serial = serial.wrapping_add(1);
                    let text: Vec<u8> = (0..n).map(|i| serial.wrapping_add(u8::try_from(i % 251).unwrap())).collect();
                    let cbytes: usize = model.iter().map(|m| m.1.len()).sum();
                    let fits = u64::try_from(n + cbytes).unwrap() <= qbytes && u64::try_from(model.len() + 1).unwrap() <= qbytes;
                    let r = snd(&mut ns, 2, id, t, &text, IPC_NOWAIT);
                    if fits {
                        prop_assert_eq!(r, Ok(Outcome::Done(0)));
                        model.push((t, text));
                    } else {
                        prop_assert_eq!(r, Err(Errno::EAGAIN));
                    }
                }
                Step::Recv(t, n, f) => {
                    let mut copy = model.clone();
                    let want = reference_recv(&mut copy, t, n, f);
                    let r = rcv(&mut ns, 3, id, n, t, f | IPC_NOWAIT);
                    match (want, r) {
                        (Ok((mtype, data)), Ok(Outcome::Done(m))) => {
                            prop_assert_eq!(mtype, m.mtype);
                            prop_assert_eq!(data, m.data);
                            model = copy;
                        }
                        // MSG_COPY|MSG_NOERROR into a too-small scratch buffer.
                        (Ok(_), Err(Errno::EINVAL)) => prop_assert!(f & MSG_COPY != 0),
                        (Err(e), r) => prop_assert_eq!(Err(e), r.map(|_| ())),
                        (w, r) => prop_assert!(false, "{:?} vs {:?}", w, r),
                    }
                }
                Step::SetQbytes(b) => {
                    set(&mut ns, id, 0o666, b);
                    qbytes = b;
                }
            }
            let ds = stat(&mut ns, id);
            let cbytes: usize = model.iter().map(|m| m.1.len()).sum();
            prop_assert_eq!(ds.msg_qnum, u64::try_from(model.len()).unwrap());
            prop_assert_eq!(ds.msg_cbytes, u64::try_from(cbytes).unwrap());
            let (_, out) = ns.msgctl(&cred(1), NOW, 0, MsgCmd::MsgInfo, None).unwrap();
            let MsgCtlOut::Info(info) = out else { panic!() };
            prop_assert_eq!(i64::from(info.msgtql), i64::try_from(cbytes).unwrap());
            prop_assert_eq!(i64::from(info.msgmap), i64::try_from(model.len()).unwrap());
            // Bounded: it doubles only while the live text (at most 40000
            // bytes) would fill more than half of it.
            prop_assert!(ns.msg_arena_size(id).unwrap() <= 4 * 40000 + 4096);
        }
    }
}

#[test]
fn a_receive_of_the_blocking_message_wakes_the_first_sender() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = new_queue(&mut ns);
    set(&mut ns, id, 0o600, 4);
    snd(&mut ns, 2, id, 1, b"full", 0).unwrap();
    let s1 = blocked(snd(&mut ns, 3, id, 2, b"ab", 0));
    let s2 = blocked(snd(&mut ns, 4, id, 3, b"cdef", 0));
    assert_eq!(got(rcv(&mut ns, 5, id, 64, 0, 0)), (1, b"full".to_vec()));
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(s1, Ok(0))]);
    assert_eq!(got(rcv(&mut ns, 5, id, 64, 0, 0)), (2, b"ab".to_vec()));
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(s2, Ok(0))]);
}

#[test]
fn exit_drops_a_process_sleepers_and_teardown_wakes_the_rest() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let id = new_queue(&mut ns);
    let gone = blocked(rcv(&mut ns, 2, id, 8, 0, 0));
    let stays = blocked(rcv(&mut ns, 3, id, 8, 0, 0));
    ns.exit(Pid(2), NOW);
    // The dead receiver is no longer offered messages: the next goes to pid 3.
    snd(&mut ns, 4, id, 1, b"x", 0).unwrap();
    assert_eq!(
        ns.take_wakeups(),
        vec![Wakeup { waiter: stays, result: Ok(1), message: Some(Message { mtype: 1, data: b"x".to_vec() }) }]
    );
    assert_eq!(ns.msg_interrupt(gone, Interrupt::Signal), None);
    set(&mut ns, id, 0o666, 0);
    let r = blocked(rcv(&mut ns, 5, id, 8, 0, 0));
    let s = blocked(snd(&mut ns, 6, id, 1, b"y", 0));
    snd(&mut ns, 6, id, 1, b"z", IPC_NOWAIT).unwrap_err();
    // NS-9: the namespace's end frees every queue; sleepers get EIDRM.
    ns.free_ipcs();
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(r, Err(Errno::EIDRM)), Wakeup::new(s, Err(Errno::EIDRM))]);
    assert_eq!(ns.object_counts().msg, 0);
}
