//! The POSIX message queue model: the rules of SPEC section 5 that need no
//! kernel to state (the differential suite checks them against Linux), and
//! invariants under random operation sequences.
#![allow(clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use uipc_core::cred::{CapSet, Cred, Gid, Pid, PosixIds, Uid};
use uipc_core::posix::mqueue::{
    Deadline, MqCreateAttr, MqDescId, MqNotification, NotifyHow, Received, O_CREAT, O_EXCL, O_NONBLOCK,
};
use uipc_core::sysv::msg::Message;
use uipc_core::wait::{Interrupt, Outcome, Wakeup};
use uipc_core::{Errno, HeapMemory, IpcNamespace, Time};

const CAP_SYS_RESOURCE: u64 = 1 << 24;
const O_RDONLY: i32 = 0;
const O_WRONLY: i32 = 1;
const O_RDWR: i32 = 2;

fn user(pid: u32, uid: u32) -> Cred {
    Cred {
        pid: Pid(pid),
        euid: Uid(uid),
        egid: Gid(uid),
        groups: vec![],
        caps: CapSet::EMPTY,
        memlock_limit: 0,
        posix: PosixIds { umask: 0, ..PosixIds::from_effective(Uid(uid), Gid(uid)) },
    }
}

fn root(pid: u32) -> Cred {
    Cred { caps: CapSet(!CAP_SYS_RESOURCE), ..user(pid, 0) }
}

fn ns() -> IpcNamespace<HeapMemory> {
    IpcNamespace::new(HeapMemory)
}

const T: Time = Time(100);

fn attr(maxmsg: i64, msgsize: i64) -> Option<MqCreateAttr> {
    Some(MqCreateAttr { maxmsg, msgsize })
}

fn open(ns: &mut IpcNamespace<HeapMemory>, c: &Cred, name: &str, oflag: i32, a: Option<MqCreateAttr>) -> MqDescId {
    ns.mq_open(c, T, name.as_bytes(), oflag, 0o600, a).unwrap().desc
}

fn send(ns: &mut IpcNamespace<HeapMemory>, c: &Cred, d: MqDescId, msg: &[u8], prio: u32) -> Result<Outcome<()>, Errno> {
    ns.mq_timedsend(c, T, d, false, msg.to_vec(), prio, None)
}

fn recv(ns: &mut IpcNamespace<HeapMemory>, c: &Cred, d: MqDescId) -> Result<Outcome<Received>, Errno> {
    ns.mq_timedreceive(c, T, d, false, 8192, None)
}

#[test]
fn mq_attr_1_defaults_and_limits() {
    let mut ns = ns();
    let r = root(1);
    let d = open(&mut ns, &r, "q", O_CREAT | O_RDWR, None);
    let a = ns.mq_getsetattr(&r, T, d, false, None).unwrap();
    assert_eq!((a.maxmsg, a.msgsize, a.curmsgs, a.flags), (10, 8192, 0, 0));
    // MQ-ATTR-2/3: non-positive, over msg_max/msgsize_max without CAP_SYS_RESOURCE.
    for (m, s) in [(0, 1), (1, 0), (-1, 1), (11, 1), (1, 8193)] {
        assert_eq!(ns.mq_open(&r, T, b"x", O_CREAT | O_RDWR, 0o600, attr(m, s)), Err(Errno::EINVAL), "{m} {s}");
    }
    // With CAP_SYS_RESOURCE the hard limits apply.
    let strong = Cred { caps: CapSet(u64::MAX), ..root(1) };
    assert!(ns.mq_open(&strong, T, b"big", O_CREAT | O_RDWR, 0o600, attr(100, 100)).is_ok());
    assert_eq!(ns.mq_open(&strong, T, b"x", O_CREAT | O_RDWR, 0o600, attr(65537, 1)), Err(Errno::EINVAL));
    ns.sysctl_write(&r, "fs.mqueue.msg_default", "3").unwrap();
    let d = open(&mut ns, &r, "small", O_CREAT | O_RDWR, None);
    assert_eq!(ns.mq_getsetattr(&r, T, d, false, None).unwrap().maxmsg, 3);
}

#[test]
fn mq_open_5_existing_queue_order() {
    let mut ns = ns();
    let r = root(1);
    open(&mut ns, &r, "q", O_CREAT | O_RDWR, None);
    assert_eq!(ns.mq_open(&r, T, b"q", O_CREAT | O_EXCL | 3, 0o600, None), Err(Errno::EEXIST));
    assert_eq!(ns.mq_open(&r, T, b"q", 3, 0o600, None), Err(Errno::EINVAL));
    let other = user(2, 1000);
    assert_eq!(ns.mq_open(&other, T, b"q", O_RDONLY, 0, None), Err(Errno::EACCES));
    assert_eq!(ns.mq_open(&other, T, b"nope", O_RDONLY, 0, None), Err(Errno::ENOENT));
    // Root without CAP_DAC_OVERRIDE is an ordinary user for the mode bits.
    let weak_root = Cred { caps: CapSet::EMPTY, ..user(3, 0) };
    let u = user(4, 1000);
    ns.mq_open(&u, T, b"mine", O_CREAT | O_RDWR, 0o600, None).unwrap();
    assert_eq!(ns.mq_open(&weak_root, T, b"mine", O_RDONLY, 0, None), Err(Errno::EACCES));
    assert!(ns.mq_open(&r, T, b"mine", O_RDWR, 0, None).is_ok());
}

#[test]
fn mq_open_6_mode_umask_and_accmode_3() {
    let mut ns = ns();
    let mut c = user(1, 1000);
    c.posix.umask = 0o022;
    let o = ns.mq_open(&c, T, b"q", O_CREAT | 3, 0o7777 | 0o10000, None).unwrap();
    let q = ns.mq_queue(o.queue).unwrap();
    assert_eq!(q.perm().mode, 0o7755);
    assert_eq!(q.perm().uid, Uid(1000));
    // Neither read nor write.
    assert_eq!(send(&mut ns, &c, o.desc, b"x", 0), Err(Errno::EBADF));
    assert_eq!(recv(&mut ns, &c, o.desc), Err(Errno::EBADF));
    let w = open(&mut ns, &c, "q", O_WRONLY, None);
    assert_eq!(recv(&mut ns, &c, w), Err(Errno::EBADF));
    assert_eq!(send(&mut ns, &c, w, b"x", 0), Ok(Outcome::Done(())));
}

#[test]
fn mq_open_4_queues_max_counts_unlinked_open_queues() {
    let mut ns = ns();
    let r = root(1);
    ns.sysctl_write(&r, "fs.mqueue.queues_max", "2").unwrap();
    open(&mut ns, &r, "a", O_CREAT | O_RDWR, attr(1, 1));
    let b = open(&mut ns, &r, "b", O_CREAT | O_RDWR, attr(1, 1));
    ns.mq_unlink(&r, b"b").unwrap();
    assert_eq!(ns.mq_open(&r, T, b"c", O_CREAT | O_RDWR, 0o600, attr(1, 1)), Err(Errno::ENOSPC));
    ns.mq_close(&r, b).unwrap();
    assert!(ns.mq_open(&r, T, b"c", O_CREAT | O_RDWR, 0o600, attr(1, 1)).is_ok());
}

#[test]
fn mq_attr_5_rlimit_msgqueue_is_emfile() {
    let mut ns = ns();
    let r = root(1);
    // Default queues cost 10*8192 + 10*48 + 10*48 = 82880 bytes: nine fit in 819200.
    for i in 0..9 {
        open(&mut ns, &r, &format!("q{i}"), O_CREAT | O_RDWR, None);
    }
    assert_eq!(ns.mq_charged(Uid(0)), 9 * 82880);
    assert_eq!(ns.mq_open(&r, T, b"q9", O_CREAT | O_RDWR, 0o600, None), Err(Errno::EMFILE));
    // Another user has a budget of its own.
    assert!(ns.mq_open(&user(2, 1000), T, b"u", O_CREAT | O_RDWR, 0o600, None).is_ok());
    // Destroying a queue returns its charge.
    ns.mq_unlink(&r, b"q0").unwrap();
    let d = ns.mq_held_by(Pid(1))[0].0;
    ns.mq_close(&r, d).unwrap();
    assert!(ns.mq_open(&r, T, b"q9", O_CREAT | O_RDWR, 0o600, None).is_ok());
}

#[test]
fn mq_rcv_5_priority_order_fifo_within() {
    let mut ns = ns();
    let r = root(1);
    let d = open(&mut ns, &r, "q", O_CREAT | O_RDWR, None);
    for (m, p) in [(&b"a1"[..], 1), (b"b5", 5), (b"c1", 1), (b"d5", 5), (b"e0", 0)] {
        assert_eq!(send(&mut ns, &r, d, m, p), Ok(Outcome::Done(())));
    }
    assert_eq!(ns.mq_queue(ns.mq_desc(d).unwrap().queue()).unwrap().qsize(), 10);
    let got: Vec<(Vec<u8>, u32)> = (0..5)
        .map(|_| match recv(&mut ns, &r, d).unwrap() {
            Outcome::Done(m) => (m.data, m.prio),
            Outcome::Blocked(_) => panic!("blocked"),
        })
        .collect();
    let want: Vec<(Vec<u8>, u32)> = [("b5", 5), ("d5", 5), ("a1", 1), ("c1", 1), ("e0", 0)]
        .iter()
        .map(|(m, p)| (m.as_bytes().to_vec(), *p))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn mq_snd_rcv_error_order() {
    let mut ns = ns();
    let r = root(1);
    let d = open(&mut ns, &r, "q", O_CREAT | O_RDWR, attr(1, 4));
    let bad = Some(Deadline { sec: 0, nsec: 1_000_000_000 });
    // MQ-SND-1 before MQ-SND-2 before MQ-SND-3.
    assert_eq!(ns.mq_timedsend(&r, T, MqDescId(99), false, vec![], 32768, bad), Err(Errno::EINVAL));
    assert_eq!(ns.mq_timedsend(&r, T, MqDescId(99), false, vec![], 32768, None), Err(Errno::EINVAL));
    assert_eq!(ns.mq_timedsend(&r, T, MqDescId(99), false, vec![], 0, None), Err(Errno::EBADF));
    assert_eq!(ns.mq_timedsend(&r, T, d, false, vec![0; 5], 0, None), Err(Errno::EMSGSIZE));
    // The deadline is checked even when the queue has room (MQ-SND-1).
    assert_eq!(ns.mq_timedsend(&r, T, d, false, vec![], 0, Some(Deadline { sec: -1, nsec: 0 })), Err(Errno::EINVAL));
    assert_eq!(ns.mq_timedsend(&r, T, d, false, vec![], 0, None), Ok(Outcome::Done(())));
    assert_eq!(ns.mq_timedsend(&r, T, d, true, vec![], 0, None), Err(Errno::EAGAIN));
    // MQ-RCV-3: the buffer must hold mq_msgsize, whatever is waiting.
    assert_eq!(ns.mq_timedreceive(&r, T, d, false, 3, None), Err(Errno::EMSGSIZE));
    assert!(matches!(ns.mq_timedreceive(&r, T, d, false, 4, None), Ok(Outcome::Done(_))));
    assert_eq!(ns.mq_timedreceive(&r, T, d, true, 4, None), Err(Errno::EAGAIN));
    // A process that holds no descriptor of the description: EBADF.
    assert_eq!(ns.mq_timedreceive(&user(7, 0), T, d, true, 4, None), Err(Errno::EBADF));
}

#[test]
fn mq_snd_7_hand_off_to_sleeping_receiver_no_notification() {
    let mut ns = ns();
    let (a, b) = (root(1), root(2));
    let d = open(&mut ns, &a, "q", O_CREAT | O_RDWR, None);
    let e = ns.mq_open(&b, T, b"q", O_RDWR, 0, None).unwrap().desc;
    ns.mq_notify(&a, T, d, Some(NotifyHow::Signal { signo: 10, value: 7 })).unwrap();
    let Ok(Outcome::Blocked(w)) = recv(&mut ns, &b, e) else { panic!("receiver must sleep") };
    assert_eq!(send(&mut ns, &a, d, b"hi", 3), Ok(Outcome::Done(())));
    assert_eq!(
        ns.take_wakeups(),
        vec![Wakeup { waiter: w, result: Ok(2), message: Some(Message { mtype: 3, data: b"hi".to_vec() }) }]
    );
    assert!(ns.mq_take_notifications().is_empty());
    // The registration stays, and fires on the next insertion into the empty queue.
    send(&mut ns, &b, e, b"x", 0).unwrap();
    let n = ns.mq_take_notifications();
    let queue = ns.mq_desc(d).unwrap().queue();
    assert_eq!(
        n,
        vec![MqNotification {
            queue,
            owner: Pid(1),
            how: NotifyHow::Signal { signo: 10, value: 7 },
            sender: Pid(2),
            sender_uid: Uid(0)
        }]
    );
    // One-shot.
    assert_eq!(ns.mq_queue(queue).unwrap().notify_owner(), None);
}

#[test]
fn mq_not_8_fires_only_on_empty_to_nonempty() {
    let mut ns = ns();
    let a = root(1);
    let d = open(&mut ns, &a, "q", O_CREAT | O_RDWR, None);
    send(&mut ns, &a, d, b"x", 0).unwrap();
    ns.mq_notify(&a, T, d, Some(NotifyHow::Signal { signo: 10, value: 0 })).unwrap();
    send(&mut ns, &a, d, b"y", 0).unwrap();
    assert!(ns.mq_take_notifications().is_empty());
    recv(&mut ns, &a, d).unwrap();
    recv(&mut ns, &a, d).unwrap();
    send(&mut ns, &a, d, b"z", 0).unwrap();
    assert_eq!(ns.mq_take_notifications().len(), 1);
}

#[test]
fn mq_not_5_6_10_registration_rules() {
    let mut ns = ns();
    let (a, b) = (root(1), root(2));
    let d = open(&mut ns, &a, "q", O_CREAT | O_RDWR, None);
    let e = ns.mq_open(&b, T, b"q", O_RDONLY, 0, None).unwrap().desc;
    ns.mq_notify(&a, T, d, Some(NotifyHow::None)).unwrap();
    assert_eq!(ns.mq_notify(&a, T, d, Some(NotifyHow::None)), Err(Errno::EBUSY));
    assert_eq!(ns.mq_notify(&b, T, e, Some(NotifyHow::None)), Err(Errno::EBUSY));
    // NULL from a non-owner: success, no effect.
    assert_eq!(ns.mq_notify(&b, T, e, None), Ok(()));
    let queue = ns.mq_desc(d).unwrap().queue();
    assert_eq!(ns.mq_queue(queue).unwrap().notify_owner().map(|o| o.0), Some(Pid(1)));
    // A close by another process keeps it; the owner's close of a dup drops it.
    ns.mq_close(&b, e).unwrap();
    assert!(ns.mq_queue(queue).unwrap().notify_owner().is_some());
    ns.mq_dup(&a, d).unwrap();
    ns.mq_close(&a, d).unwrap();
    assert_eq!(ns.mq_queue(queue).unwrap().notify_owner(), None);
    // Still open through the other descriptor.
    assert!(send(&mut ns, &a, d, b"x", 0).is_ok());
    // A forked child's close does not drop the parent's registration.
    ns.mq_notify(&a, T, d, Some(NotifyHow::None)).unwrap();
    ns.fork(&a, T, Pid(3));
    ns.mq_close(&root(3), d).unwrap();
    assert!(ns.mq_queue(queue).unwrap().notify_owner().is_some());
    // The status line shows the registration.
    let line = ns.mq_read_status(&a, T, d).unwrap();
    assert_eq!(line, "QSIZE:1          NOTIFY:1     SIGNO:0     NOTIFY_PID:1     \n");
    assert_eq!(line.len(), 60);
}

#[test]
fn mq_unl_3_unlinked_queue_lives_while_open() {
    let mut ns = ns();
    let a = root(1);
    let d = open(&mut ns, &a, "q", O_CREAT | O_RDWR, None);
    ns.mq_unlink(&a, b"q").unwrap();
    assert_eq!(ns.mq_unlink(&a, b"q"), Err(Errno::ENOENT));
    let e = open(&mut ns, &a, "q", O_CREAT | O_EXCL | O_RDWR, None);
    send(&mut ns, &a, d, b"old", 0).unwrap();
    assert!(matches!(recv(&mut ns, &a, d), Ok(Outcome::Done(m)) if m.data == b"old"));
    assert_eq!(ns.mq_timedreceive(&a, T, e, true, 8192, None), Err(Errno::EAGAIN));
    assert_eq!(ns.mq_queue_count(), 2);
    ns.mq_close(&a, d).unwrap();
    assert_eq!(ns.mq_queue_count(), 1);
    // Unlink by a stranger: EPERM (sticky root).
    assert_eq!(ns.mq_unlink(&user(5, 1000), b"q"), Err(Errno::EPERM));
}

#[test]
fn blocked_senders_and_receivers_woken_in_order_with_timeouts() {
    let mut ns = ns();
    let a = root(1);
    let d = open(&mut ns, &a, "q", O_CREAT | O_RDWR, attr(1, 8));
    send(&mut ns, &a, d, b"0", 0).unwrap();
    let Ok(Outcome::Blocked(s1)) = send(&mut ns, &a, d, b"1", 0) else { panic!() };
    let Ok(Outcome::Blocked(s2)) = send(&mut ns, &a, d, b"2", 0) else { panic!() };
    let Ok(Outcome::Blocked(s3)) = send(&mut ns, &a, d, b"3", 0) else { panic!() };
    assert_eq!(ns.mq_interrupt(s2, Interrupt::Timeout), Some(Err(Errno::ETIMEDOUT)));
    assert!(matches!(ns.mq_timedreceive(&a, T, d, false, 8, None), Ok(Outcome::Done(m)) if m.data == b"0"));
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(s1, Ok(0))]);
    // Completed: an interrupt now changes nothing.
    assert_eq!(ns.mq_interrupt(s1, Interrupt::Signal), None);
    assert!(matches!(ns.mq_timedreceive(&a, T, d, false, 8, None), Ok(Outcome::Done(m)) if m.data == b"1"));
    assert_eq!(ns.take_wakeups(), vec![Wakeup::new(s3, Ok(0))]);
    assert!(matches!(ns.mq_timedreceive(&a, T, d, false, 8, None), Ok(Outcome::Done(m)) if m.data == b"3"));
    let Ok(Outcome::Blocked(r1)) = ns.mq_timedreceive(&a, T, d, false, 8, None) else { panic!() };
    let Ok(Outcome::Blocked(r2)) = ns.mq_timedreceive(&a, T, d, false, 8, None) else { panic!() };
    assert_eq!(ns.interrupt(r1, Interrupt::Signal), Some(Err(Errno::EINTR)));
    send(&mut ns, &a, d, b"x", 0).unwrap();
    let w = ns.take_wakeups();
    assert_eq!((w.len(), w[0].waiter, w[0].result), (1, r2, Ok(1)));
    assert_eq!(w[0].message.as_ref().map(|m| m.data.clone()), Some(b"x".to_vec()));
}

#[test]
fn mq_attr_g_getsetattr() {
    let mut ns = ns();
    let a = root(1);
    let d = open(&mut ns, &a, "q", O_CREAT | O_RDWR | O_NONBLOCK, None);
    assert!(ns.mq_desc(d).unwrap().nonblock());
    assert_eq!(ns.mq_getsetattr(&a, T, MqDescId(77), true, Some(1)), Err(Errno::EINVAL));
    assert_eq!(ns.mq_getsetattr(&a, T, MqDescId(77), true, Some(0)), Err(Errno::EBADF));
    let old = ns.mq_getsetattr(&a, T, d, true, Some(0)).unwrap();
    assert_eq!(old.flags, i64::from(O_NONBLOCK));
    assert!(!ns.mq_desc(d).unwrap().nonblock());
}

#[test]
fn exec_and_exit_close_descriptors_and_drop_registrations() {
    let mut ns = ns();
    let a = root(1);
    let d = open(&mut ns, &a, "q", O_CREAT | O_RDWR, None);
    ns.mq_unlink(&a, b"q").unwrap();
    ns.fork(&a, T, Pid(2));
    ns.mq_notify(&a, T, d, Some(NotifyHow::None)).unwrap();
    ns.exec(Pid(1), T);
    let queue = ns.mq_desc(d).unwrap().queue();
    assert_eq!(ns.mq_queue(queue).unwrap().notify_owner(), None);
    assert_eq!(ns.mq_queue_count(), 1);
    ns.exit(Pid(2), T);
    assert_eq!(ns.mq_queue_count(), 0);
    assert_eq!(ns.mq_charged(Uid(0)), 0);
}

#[derive(Clone, Debug)]
enum Op {
    Open(u8, bool),
    Unlink(u8),
    Close(u8),
    Send(u8, u8, u16),
    Recv(u8, bool),
    Interrupt(u8),
    Notify(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3u8, any::<bool>()).prop_map(|(n, c)| Op::Open(n, c)),
        (0..3u8).prop_map(Op::Unlink),
        (0..6u8).prop_map(Op::Close),
        (0..6u8, 0..4u8, 0..4u16).prop_map(|(d, l, p)| Op::Send(d, l, p)),
        (0..6u8, any::<bool>()).prop_map(|(d, b)| Op::Recv(d, b)),
        (0..8u8).prop_map(Op::Interrupt),
        (0..6u8).prop_map(Op::Notify),
    ]
}

proptest! {
    /// Whatever happens: every message sent is received exactly once or is
    /// still queued; curmsgs never exceeds maxmsg; a queue with sleeping
    /// receivers is empty and one with sleeping senders full; the queue
    /// count and the charge go back to zero once everything is closed.
    #[test]
    fn messages_are_conserved(ops in proptest::collection::vec(op(), 1..80)) {
        let mut ns = ns();
        let a = root(1);
        let mut descs: Vec<MqDescId> = Vec::new();
        let mut waiters = Vec::new();
        let mut sent = 0u64;
        let mut got = 0u64;
        let mut pending_sends = std::collections::BTreeSet::new();
        for op in ops {
            match op {
                Op::Open(n, c) => {
                    let flags = if c { O_CREAT | O_RDWR } else { O_RDWR };
                    if let Ok(o) = ns.mq_open(&a, T, format!("q{n}").as_bytes(), flags, 0o600, attr(2, 4)) {
                        descs.push(o.desc);
                    }
                }
                Op::Unlink(n) => { let _ = ns.mq_unlink(&a, format!("q{n}").as_bytes()); }
                Op::Close(i) => {
                    if let Some(d) = descs.get(usize::from(i)).copied() {
                        // Sleepers hold their descriptors: close only idle ones.
                        if waiters.is_empty() && ns.mq_close(&a, d).is_ok() {
                            descs.remove(usize::from(i));
                        }
                    }
                }
                Op::Send(i, len, prio) => {
                    if let Some(d) = descs.get(usize::from(i)).copied() {
                        match ns.mq_timedsend(&a, T, d, false, vec![7; usize::from(len)], u32::from(prio), None) {
                            Ok(Outcome::Done(())) => sent += 1,
                            Ok(Outcome::Blocked(w)) => { waiters.push(w); pending_sends.insert(w); }
                            Err(_) => {}
                        }
                    }
                }
                Op::Recv(i, nb) => {
                    if let Some(d) = descs.get(usize::from(i)).copied() {
                        match ns.mq_timedreceive(&a, T, d, nb, 4, None) {
                            Ok(Outcome::Done(_)) => got += 1,
                            Ok(Outcome::Blocked(w)) => waiters.push(w),
                            Err(_) => {}
                        }
                    }
                }
                Op::Interrupt(i) => {
                    if let Some(w) = waiters.get(usize::from(i)).copied() {
                        if ns.interrupt(w, Interrupt::Signal).is_some() {
                            pending_sends.remove(&w);
                        }
                        waiters.retain(|x| *x != w);
                    }
                }
                Op::Notify(i) => {
                    if let Some(d) = descs.get(usize::from(i)).copied() {
                        let _ = ns.mq_notify(&a, T, d, Some(NotifyHow::None));
                    }
                }
            }
            for w in ns.take_wakeups() {
                prop_assert!(w.result.is_ok());
                if pending_sends.remove(&w.waiter) {
                    sent += 1;
                } else {
                    prop_assert!(w.message.is_some());
                    got += 1;
                }
                waiters.retain(|x| *x != w.waiter);
            }
            let mut queued = 0u64;
            let mut seen = std::collections::BTreeSet::new();
            for d in &descs {
                let q = ns.mq_desc(*d).unwrap().queue();
                let queue = ns.mq_queue(q).unwrap();
                prop_assert!(queue.curmsgs() <= queue.maxmsg());
                let (s, r) = queue.sleepers();
                prop_assert!(r.is_empty() || queue.curmsgs() == 0);
                prop_assert!(s.is_empty() || queue.curmsgs() == queue.maxmsg());
                prop_assert_eq!(queue.messages().count(), usize::try_from(queue.curmsgs()).unwrap());
                if seen.insert(q) {
                    queued += u64::try_from(queue.curmsgs()).unwrap();
                }
            }
            // Messages of queues nobody holds open any more are gone with them.
            if ns.mq_queue_count() == i64::try_from(seen.len()).unwrap() {
                prop_assert!(sent >= got + queued);
            }
        }
        for w in waiters {
            let _ = ns.interrupt(w, Interrupt::Signal);
        }
        for d in descs {
            ns.mq_close(&a, d).unwrap();
        }
        for n in 0..3 {
            let _ = ns.mq_unlink(&a, format!("q{n}").as_bytes());
        }
        prop_assert_eq!(ns.mq_queue_count(), 0);
        prop_assert_eq!(ns.mq_charged(Uid(0)), 0);
    }
}
