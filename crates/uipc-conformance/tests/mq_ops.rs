//! POSIX message queues, sending, receiving, notification registration,
//! `mq_getsetattr`, `mq_unlink` and `mq_close` (SPEC 5.4–5.9): one named
//! test per MQ-SND-*, MQ-RCV-*, MQ-NOT-*, MQ-ATTR-G-*, MQ-UNL-* and
//! MQ-CLOSE-* rule, through the C library on the kernel (the oracle, in a
//! fresh IPC namespace) and on uipc's core, daemon and preload backends.
//! A call meant to sleep is started and seen asleep (the kit watches the
//! process, never a fixed delay), then woken by another process; otherwise a
//! full or empty queue is non-blocking, or timed with a deadline already
//! past (`ETIMEDOUT` at once, as the kernel).
//!
//! Rules, or the parts of them, a session cannot express (no pointers to
//! unmapped memory, no signal handlers, no scheduling priorities, no `dup`,
//! `fork`, `poll`, `read` or mounts on mq descriptors), and the C
//! differentials (`crates/uipc-preload/tests/c`, run natively and under the
//! shim by `tests/mq.rs`) that cover them:
//! - `EFAULT` of MQ-SND-1/5, MQ-RCV-1/6, MQ-NOT-1, MQ-ATTR-G-1: not covered.
//! - MQ-SND-6/MQ-RCV-4 `EINTR` and `SA_RESTART`: `mq_basic.c`
//!   `interrupted()` (the kit's signal has no `SA_RESTART` variant).
//! - MQ-WAIT-1 by scheduling priority (nice, RT): a listed deviation (FIFO);
//!   FIFO among equals is [`mq_wait_1_sleepers_served_in_arrival_order`],
//!   and `mq_multi.c` `ordered_senders()`.
//! - MQ-NOT-3 `SIGEV_THREAD`: `mq_basic.c` `thread_notify()`.
//! - MQ-NOT-9 signal delivery, `si_*` fields, no delivery after execve:
//!   `mq_basic.c` `notify()`, `mq_multi.c` `notify_other()`, `after_exec()`.
//! - MQ-NOT-10 a `dup`'s close, a child's close: `mq_basic.c` `notify()`,
//!   `mq_multi.c` `notify_other()`; here two `mq_open`s of one queue.
//! - MQ-ATTR-G-3 sharing by `dup`/`fork`, `F_GETFL`: `mq_basic.c`
//!   `messages()`, `sleepers()`.
//! - MQ-FD-1 readiness: `mq_basic.c` `readiness()`, `mq_multi.c`
//!   `epoll_loop()`; MQ-FD-2 `read`/`lseek` status: `mq_basic.c`;
//!   MQ-FD-3 fork/exec: `mq_multi.c`; MQ-FD-4: `mq_basic.c` `unshared()`.
//! - MQ-FS-3: [`mq_fs_3_status_line_qsize_and_registration`] (a read of a
//!   fresh descriptor; offsets and `lseek`: `mq_basic.c`).
//! - MQ-FS-1/2/4 (the mqueue filesystem, status line, times): `mq_basic.c`
//!   and `mq_limits.c` read the status line (MQ-FS-3); the mount (MQ-FS-1/2)
//!   is a listed deviation (docs/deviations.md, "POSIX message queues");
//!   the inode times of MQ-FS-4 are not compared anywhere.
#![allow(clippy::unwrap_used)]

use uipc_abi::pshm::{O_CREAT, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};
use uipc_abi::{Errno, SIGEV_NONE, SIGEV_SIGNAL};
use uipc_testkit::{Mqd, Proc, Session};

/// `mq_flags` with `O_NONBLOCK`.
const NB: i64 = O_NONBLOCK as i64;

/// A deadline long past (1970): a call that would sleep times out at once.
const PAST: (i64, i64) = (1, 0);
/// Deadlines `timespec64_valid()` rejects.
const INVALID: [(i64, i64); 3] = [(0, 1_000_000_000), (0, -1), (-1, 0)];

/// A fresh queue "/q" of 2 messages of 8 bytes, mode 0666, and its descriptor.
fn queue(s: &mut Session, p: Proc, oflag: i32) -> Mqd {
    s.mq_open(p, "/q", oflag | O_CREAT, 0o666, Some((2, 8))).unwrap()
}

#[test]
fn mq_snd_1_deadline_checked_even_when_not_full() {
    uipc_testkit::conformance!("MQ-SND-1", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR);
        for d in INVALID {
            assert_eq!(s.mq_timedsend(p, q, b"x", 0, d), Err(Errno::EINVAL));
        }
        // Before EBADF too.
        assert_eq!(s.mq_timedsend(p, Mqd::BAD, b"x", 0, INVALID[0]), Err(Errno::EINVAL));
        assert_eq!(s.mq_getattr(p, q).unwrap()[3], 0);
        assert_eq!(s.mq_timedsend(p, q, b"x", 0, PAST), Ok(()));
        assert_eq!(s.mq_timedsend(p, q, b"y", 0, (0, 999_999_999)), Ok(()));
    });
}

#[test]
fn mq_snd_2_priority_before_the_descriptor() {
    uipc_testkit::conformance!("MQ-SND-2", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDONLY);
        assert_eq!(s.mq_send(p, Mqd::BAD, b"x", 32768), Err(Errno::EINVAL));
        assert_eq!(s.mq_send(p, q, b"x", 32768), Err(Errno::EINVAL));
        assert_eq!(s.mq_send(p, q, b"x", u32::MAX), Err(Errno::EINVAL));
        assert_eq!(s.mq_send(p, q, b"x", 32767), Err(Errno::EBADF));
        let w = s.mq_open(p, "/q", O_WRONLY, 0, None).unwrap();
        assert_eq!(s.mq_send(p, w, b"x", 32767), Ok(()));
    });
}

#[test]
fn mq_snd_3_bad_or_read_only_descriptor() {
    uipc_testkit::conformance!("MQ-SND-3", |s| {
        let p = s.root();
        let r = queue(s, p, O_RDONLY);
        assert_eq!(s.mq_send(p, Mqd::BAD, b"x", 0), Err(Errno::EBADF));
        assert_eq!(s.mq_send(p, r, b"x", 0), Err(Errno::EBADF));
        // EBADF before EMSGSIZE.
        assert_eq!(s.mq_send(p, r, &[0; 9], 0), Err(Errno::EBADF));
        s.mq_close(p, r).unwrap();
        assert_eq!(s.mq_send(p, r, b"x", 0), Err(Errno::EBADF));
    });
}

#[test]
fn mq_snd_4_message_size() {
    uipc_testkit::conformance!("MQ-SND-4", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR | O_NONBLOCK);
        assert_eq!(s.mq_send(p, q, &[7; 9], 0), Err(Errno::EMSGSIZE));
        assert_eq!(s.mq_send(p, q, &[7; 8], 0), Ok(()));
        assert_eq!(s.mq_send(p, q, b"", 0), Ok(()));
        // EMSGSIZE before EAGAIN of the full queue.
        assert_eq!(s.mq_send(p, q, &[7; 9], 0), Err(Errno::EMSGSIZE));
        assert_eq!(s.mq_receive(p, q, 8), Ok((vec![7; 8], 0)));
        assert_eq!(s.mq_receive(p, q, 8), Ok((vec![], 0)));
    });
}

#[test]
fn mq_snd_6_full_queue_eagain_or_etimedout() {
    uipc_testkit::conformance!("MQ-SND-6", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR | O_NONBLOCK);
        s.mq_send(p, q, b"1", 0).unwrap();
        s.mq_send(p, q, b"2", 0).unwrap();
        assert_eq!(s.mq_send(p, q, b"3", 0), Err(Errno::EAGAIN));
        assert_eq!(s.mq_timedsend(p, q, b"3", 0, PAST), Err(Errno::EAGAIN));
        // A blocking description: the past deadline times out at once.
        let b = s.mq_open(p, "/q", O_WRONLY, 0, None).unwrap();
        assert_eq!(s.mq_timedsend(p, b, b"3", 0, PAST), Err(Errno::ETIMEDOUT));
        assert_eq!(s.mq_getattr(p, b), Ok([0, 2, 8, 2]));
        assert_eq!(s.mq_receive(p, q, 8), Ok((b"1".to_vec(), 0)));
        assert_eq!(s.mq_timedsend(p, b, b"3", 0, PAST), Ok(()));
    });
}

#[test]
fn mq_snd_7_insertion_order_and_notification_on_empty() {
    uipc_testkit::conformance!("MQ-SND-7", |s| {
        let p = s.root();
        let o = s.root();
        let q = s.mq_open(p, "/q", O_RDWR | O_CREAT | O_NONBLOCK, 0o600, Some((4, 8))).unwrap();
        let oq = s.mq_open(o, "/q", O_RDONLY, 0, None).unwrap();
        // Registered on an empty queue: the first send fires it (one-shot).
        s.mq_notify(o, oq, Some((SIGEV_NONE, 0))).unwrap();
        s.mq_send(p, q, b"a", 3).unwrap();
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 0))), Ok(()));
        // Not empty: the next sends do not fire.
        s.mq_send(p, q, b"b", 3).unwrap();
        s.mq_send(p, q, b"c", 9).unwrap();
        assert_eq!(s.mq_notify(o, oq, Some((SIGEV_NONE, 0))), Err(Errno::EBUSY));
        assert_eq!(s.mq_receive(p, q, 8), Ok((b"c".to_vec(), 9)));
        assert_eq!(s.mq_receive(p, q, 8), Ok((b"a".to_vec(), 3)));
        assert_eq!(s.mq_receive(p, q, 8), Ok((b"b".to_vec(), 3)));
        // Emptied and refilled: now it fires.
        s.mq_send(p, q, b"d", 0).unwrap();
        assert_eq!(s.mq_notify(o, oq, Some((SIGEV_NONE, 0))), Ok(()));
    });
}

#[test]
fn mq_rcv_1_deadline_checked_even_when_not_empty() {
    uipc_testkit::conformance!("MQ-RCV-1", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR);
        s.mq_send(p, q, b"m", 1).unwrap();
        for d in INVALID {
            assert_eq!(s.mq_timedreceive(p, q, 8, d), Err(Errno::EINVAL));
        }
        assert_eq!(s.mq_timedreceive(p, Mqd::BAD, 8, INVALID[1]), Err(Errno::EINVAL));
        assert_eq!(s.mq_timedreceive(p, q, 8, PAST), Ok((b"m".to_vec(), 1)));
    });
}

#[test]
fn mq_rcv_2_bad_or_write_only_descriptor() {
    uipc_testkit::conformance!("MQ-RCV-2", |s| {
        let p = s.root();
        let w = queue(s, p, O_WRONLY);
        s.mq_send(p, w, b"m", 1).unwrap();
        assert_eq!(s.mq_receive(p, Mqd::BAD, 8), Err(Errno::EBADF));
        assert_eq!(s.mq_receive(p, w, 8), Err(Errno::EBADF));
        // EBADF before EMSGSIZE.
        assert_eq!(s.mq_receive(p, w, 1), Err(Errno::EBADF));
        assert_eq!(s.mq_getattr(p, w), Ok([0, 2, 8, 1]));
    });
}

#[test]
fn mq_rcv_3_buffer_smaller_than_msgsize() {
    uipc_testkit::conformance!("MQ-RCV-3", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR | O_NONBLOCK);
        // Before EAGAIN of the empty queue.
        assert_eq!(s.mq_receive(p, q, 7), Err(Errno::EMSGSIZE));
        s.mq_send(p, q, b"m", 0).unwrap();
        assert_eq!(s.mq_receive(p, q, 7), Err(Errno::EMSGSIZE));
        assert_eq!(s.mq_receive(p, q, 0), Err(Errno::EMSGSIZE));
        assert_eq!(s.mq_getattr(p, q), Ok([NB, 2, 8, 1]));
        assert_eq!(s.mq_receive(p, q, 1 << 20), Ok((b"m".to_vec(), 0)));
    });
}

#[test]
fn mq_rcv_4_empty_queue_eagain_or_etimedout() {
    uipc_testkit::conformance!("MQ-RCV-4", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR | O_NONBLOCK);
        assert_eq!(s.mq_receive(p, q, 8), Err(Errno::EAGAIN));
        assert_eq!(s.mq_timedreceive(p, q, 8, PAST), Err(Errno::EAGAIN));
        let b = s.mq_open(p, "/q", O_RDONLY, 0, None).unwrap();
        assert_eq!(s.mq_timedreceive(p, b, 8, PAST), Err(Errno::ETIMEDOUT));
        s.mq_send(p, q, b"m", 0).unwrap();
        assert_eq!(s.mq_timedreceive(p, b, 8, PAST), Ok((b"m".to_vec(), 0)));
    });
}

#[test]
fn mq_rcv_5_highest_priority_oldest_first() {
    uipc_testkit::conformance!("MQ-RCV-5", |s| {
        let p = s.root();
        let u = s.user(1000, 1000);
        let q = s.mq_open(p, "/q", O_RDWR | O_CREAT, 0o666, Some((8, 8))).unwrap();
        let r = s.mq_open(u, "/q", O_RDONLY | O_NONBLOCK, 0, None).unwrap();
        for (m, prio) in [("p1a", 1), ("p5", 5), ("p1b", 1), ("p0", 0), ("top", 32767), ("p1c", 1)] {
            s.mq_send(p, q, m.as_bytes(), prio).unwrap();
        }
        for (m, prio) in [("top", 32767), ("p5", 5), ("p1a", 1), ("p1b", 1), ("p1c", 1), ("p0", 0)] {
            assert_eq!(s.mq_receive(u, r, 8), Ok((m.as_bytes().to_vec(), prio)));
        }
        assert_eq!(s.mq_receive(u, r, 8), Err(Errno::EAGAIN));
    });
}

#[test]
fn mq_rcv_6_length_and_priority_returned() {
    uipc_testkit::conformance!("MQ-RCV-6", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR);
        s.mq_send(p, q, b"", 12).unwrap();
        s.mq_send(p, q, b"12345678", 4).unwrap();
        assert_eq!(s.mq_receive(p, q, 8), Ok((vec![], 12)));
        assert_eq!(s.mq_receive(p, q, 100), Ok((b"12345678".to_vec(), 4)));
    });
}

#[test]
fn mq_not_2_sigevent_checked_before_the_descriptor() {
    uipc_testkit::conformance!("MQ-NOT-2", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR);
        for how in [(3, 0), (-1, 0), (4, 0), (SIGEV_SIGNAL, 65), (SIGEV_SIGNAL, -1), (SIGEV_SIGNAL, 1000)] {
            assert_eq!(s.mq_notify(p, Mqd::BAD, Some(how)), Err(Errno::EINVAL));
            assert_eq!(s.mq_notify(p, q, Some(how)), Err(Errno::EINVAL));
        }
        // Signal 0 is accepted (and sends nothing when fired); 64 is valid.
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_SIGNAL, 0))), Ok(()));
        s.mq_send(p, q, b"m", 0).unwrap();
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_SIGNAL, 64))), Ok(()));
        assert_eq!(s.mq_notify(p, q, None), Ok(()));
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 12345))), Ok(()));
    });
}

#[test]
fn mq_not_4_bad_descriptor_any_access_mode() {
    uipc_testkit::conformance!("MQ-NOT-4", |s| {
        let p = s.root();
        assert_eq!(s.mq_notify(p, Mqd::BAD, Some((SIGEV_NONE, 0))), Err(Errno::EBADF));
        assert_eq!(s.mq_notify(p, Mqd::BAD, None), Err(Errno::EBADF));
        let w = queue(s, p, O_WRONLY);
        assert_eq!(s.mq_notify(p, w, Some((SIGEV_NONE, 0))), Ok(()));
        assert_eq!(s.mq_notify(p, w, None), Ok(()));
        let n = s.mq_open(p, "/q", 3, 0, None);
        assert_eq!(n, Err(Errno::EINVAL));
        let r = s.mq_open(p, "/q", O_RDONLY, 0, None).unwrap();
        assert_eq!(s.mq_notify(p, r, Some((SIGEV_NONE, 0))), Ok(()));
        s.mq_close(p, r).unwrap();
        assert_eq!(s.mq_notify(p, r, None), Err(Errno::EBADF));
    });
}

#[test]
fn mq_not_5_null_from_a_non_owner_does_nothing() {
    uipc_testkit::conformance!("MQ-NOT-5", |s| {
        let p = s.root();
        let o = s.root();
        let q = queue(s, p, O_RDWR);
        let oq = s.mq_open(o, "/q", O_RDWR, 0, None).unwrap();
        // Nobody registered: NULL succeeds.
        assert_eq!(s.mq_notify(p, q, None), Ok(()));
        s.mq_notify(o, oq, Some((SIGEV_NONE, 0))).unwrap();
        assert_eq!(s.mq_notify(p, q, None), Ok(()));
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 0))), Err(Errno::EBUSY));
        // The owner's NULL removes it.
        assert_eq!(s.mq_notify(o, oq, None), Ok(()));
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 0))), Ok(()));
    });
}

#[test]
fn mq_not_6_already_registered_ebusy() {
    uipc_testkit::conformance!("MQ-NOT-6", |s| {
        let p = s.root();
        let o = s.user(1000, 1000);
        let q = queue(s, p, O_RDWR);
        let oq = s.mq_open(o, "/q", O_RDONLY, 0, None).unwrap();
        s.mq_notify(p, q, Some((SIGEV_SIGNAL, 0))).unwrap();
        // The caller itself, through another descriptor too, and anybody else.
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_SIGNAL, 0))), Err(Errno::EBUSY));
        let q2 = s.mq_open(p, "/q", O_WRONLY, 0, None).unwrap();
        assert_eq!(s.mq_notify(p, q2, Some((SIGEV_NONE, 0))), Err(Errno::EBUSY));
        assert_eq!(s.mq_notify(o, oq, Some((SIGEV_NONE, 0))), Err(Errno::EBUSY));
        // EINVAL of the sigevent before EBUSY.
        assert_eq!(s.mq_notify(o, oq, Some((7, 0))), Err(Errno::EINVAL));
    });
}

#[test]
fn mq_not_7_the_calling_process_is_registered() {
    uipc_testkit::conformance!("MQ-NOT-7", |s| {
        let p = s.root();
        let o = s.user(1000, 1000);
        let q = queue(s, p, O_RDWR);
        let oq = s.mq_open(o, "/q", O_RDONLY, 0, None).unwrap();
        // A process that cannot write the queue registers on its read-only descriptor.
        s.mq_notify(o, oq, Some((SIGEV_NONE, 0))).unwrap();
        // Its registration: p's NULL does nothing, o's removes it.
        s.mq_notify(p, q, None).unwrap();
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 0))), Err(Errno::EBUSY));
        s.mq_notify(o, oq, None).unwrap();
        s.mq_notify(p, q, Some((SIGEV_NONE, 0))).unwrap();
        assert_eq!(s.mq_notify(o, oq, Some((SIGEV_NONE, 0))), Err(Errno::EBUSY));
    });
}

#[test]
fn mq_not_8_fires_once_on_insert_into_empty() {
    uipc_testkit::conformance!("MQ-NOT-8", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR);
        s.mq_send(p, q, b"1", 0).unwrap();
        // Registered on a non-empty queue: sends do not fire until it empties and refills.
        s.mq_notify(p, q, Some((SIGEV_NONE, 0))).unwrap();
        s.mq_send(p, q, b"2", 0).unwrap();
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 0))), Err(Errno::EBUSY));
        s.mq_receive(p, q, 8).unwrap();
        s.mq_receive(p, q, 8).unwrap();
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 0))), Err(Errno::EBUSY));
        s.mq_send(p, q, b"3", 0).unwrap();
        // Fired and consumed.
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 0))), Ok(()));
        s.mq_receive(p, q, 8).unwrap();
        // A failed send does not fire.
        assert_eq!(s.mq_send(p, q, &[0; 9], 0), Err(Errno::EMSGSIZE));
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 0))), Err(Errno::EBUSY));
    });
}

#[test]
fn mq_not_9_sigev_none_consumed_without_a_signal() {
    uipc_testkit::conformance!("MQ-NOT-9", |s| {
        let p = s.root();
        let o = s.root();
        let q = queue(s, p, O_RDWR);
        let oq = s.mq_open(o, "/q", O_RDONLY, 0, None).unwrap();
        s.mq_notify(o, oq, Some((SIGEV_NONE, 0))).unwrap();
        s.mq_send(p, q, b"1", 0).unwrap();
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_SIGNAL, 0))), Ok(()));
        s.mq_receive(o, oq, 8).unwrap();
        // SIGEV_SIGNAL with signal 0: consumed, nothing sent.
        s.mq_send(p, q, b"2", 0).unwrap();
        assert_eq!(s.mq_notify(o, oq, Some((SIGEV_NONE, 0))), Ok(()));
    });
}

#[test]
fn mq_not_10_owner_closing_any_descriptor_drops_it() {
    uipc_testkit::conformance!("MQ-NOT-10", |s| {
        let p = s.root();
        let o = s.root();
        let q = queue(s, p, O_RDWR);
        let a = s.mq_open(o, "/q", O_RDONLY, 0, None).unwrap();
        let b = s.mq_open(o, "/q", O_WRONLY, 0, None).unwrap();
        s.mq_notify(o, a, Some((SIGEV_NONE, 0))).unwrap();
        // Another process closing its descriptor: kept.
        let c = s.mq_open(p, "/q", O_RDONLY, 0, None).unwrap();
        s.mq_close(p, c).unwrap();
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 0))), Err(Errno::EBUSY));
        // The owner closing another descriptor of the queue: dropped.
        s.mq_close(o, b).unwrap();
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 0))), Ok(()));
        // Destroyed with the queue: a new queue of the name has none.
        s.mq_unlink(p, "/q").unwrap();
        s.mq_close(p, q).unwrap();
        s.mq_close(o, a).unwrap();
        let n = queue(s, p, O_RDWR);
        assert_eq!(s.mq_notify(p, n, Some((SIGEV_NONE, 0))), Ok(()));
    });
}

#[test]
fn mq_attr_g_1_flags_checked_before_the_descriptor() {
    uipc_testkit::conformance!("MQ-ATTR-G-1", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR);
        for f in [1, 0o2000, NB | 0o100, -1, i64::MIN] {
            assert_eq!(s.mq_setattr(p, Mqd::BAD, f), Err(Errno::EINVAL));
            assert_eq!(s.mq_setattr(p, q, f), Err(Errno::EINVAL));
        }
        assert_eq!(s.mq_setattr(p, Mqd::BAD, NB), Err(Errno::EBADF));
        assert_eq!(s.mq_getattr(p, Mqd::BAD), Err(Errno::EBADF));
        assert_eq!(s.mq_getattr(p, q), Ok([0, 2, 8, 0]));
    });
}

#[test]
fn mq_attr_g_2_old_attributes_before_the_change() {
    uipc_testkit::conformance!("MQ-ATTR-G-2", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR | O_NONBLOCK);
        s.mq_send(p, q, b"m", 0).unwrap();
        assert_eq!(s.mq_setattr(p, q, 0), Ok([NB, 2, 8, 1]));
        assert_eq!(s.mq_setattr(p, q, NB), Ok([0, 2, 8, 1]));
        assert_eq!(s.mq_getattr(p, q), Ok([NB, 2, 8, 1]));
        let w = s.mq_open(p, "/q", O_WRONLY, 0, None).unwrap();
        assert_eq!(s.mq_getattr(p, w), Ok([0, 2, 8, 1]));
    });
}

#[test]
fn mq_attr_g_3_only_the_descriptions_o_nonblock_changes() {
    uipc_testkit::conformance!("MQ-ATTR-G-3", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR);
        let other = s.mq_open(p, "/q", O_RDWR, 0, None).unwrap();
        assert_eq!(s.mq_setattr(p, q, NB), Ok([0, 2, 8, 0]));
        assert_eq!(s.mq_receive(p, q, 8), Err(Errno::EAGAIN));
        // Another open description keeps its own flag.
        assert_eq!(s.mq_getattr(p, other), Ok([0, 2, 8, 0]));
        assert_eq!(s.mq_timedreceive(p, other, 8, PAST), Err(Errno::ETIMEDOUT));
        s.mq_send(p, q, b"1", 0).unwrap();
        s.mq_send(p, q, b"2", 0).unwrap();
        assert_eq!(s.mq_send(p, q, b"3", 0), Err(Errno::EAGAIN));
        assert_eq!(s.mq_setattr(p, q, 0), Ok([NB, 2, 8, 2]));
        assert_eq!(s.mq_timedsend(p, q, b"3", 0, PAST), Err(Errno::ETIMEDOUT));
        assert_eq!(s.mq_getattr(p, q), Ok([0, 2, 8, 2]));
    });
}

#[test]
fn mq_unl_1_slash_and_eacces_through_glibc() {
    uipc_testkit::conformance!("MQ-UNL-1", |s| {
        let p = s.root();
        let u = s.user(1000, 1000);
        let q = queue(s, p, O_RDWR);
        assert_eq!(s.mq_unlink(p, "q"), Err(Errno::EINVAL));
        // The kernel's EPERM (sticky root directory) as glibc reports it.
        assert_eq!(s.mq_unlink(u, "/q"), Err(Errno::EACCES));
        assert_eq!(s.mq_unlink(p, "/q"), Ok(()));
        s.mq_close(p, q).unwrap();
    });
}

#[test]
fn mq_unl_2_absent_names_and_the_sticky_directory() {
    uipc_testkit::conformance!("MQ-UNL-2", |s| {
        let p = s.root();
        let u = s.user(1000, 1000);
        let v = s.user(1001, 1000);
        assert_eq!(s.mq_unlink(p, "/absent"), Err(Errno::ENOENT));
        assert_eq!(s.mq_unlink(p, "/"), Err(Errno::ENOENT));
        assert_eq!(s.mq_unlink(p, "/a/b"), Err(Errno::EACCES));
        assert_eq!(s.mq_unlink(p, "/.."), Err(Errno::EACCES));
        let q = s.mq_open(u, "/users", O_RDWR | O_CREAT, 0o666, Some((2, 8))).unwrap();
        // Not the owner (even with write permission on the queue): refused.
        assert_eq!(s.mq_unlink(v, "/users"), Err(Errno::EACCES));
        assert_eq!(s.mq_unlink(u, "/users"), Ok(()));
        assert_eq!(s.mq_unlink(u, "/users"), Err(Errno::ENOENT));
        let r = s.mq_open(u, "/root-may", O_RDWR | O_CREAT, 0o600, Some((2, 8))).unwrap();
        assert_eq!(s.mq_unlink(p, "/root-may"), Ok(()));
        s.mq_close(u, q).unwrap();
        s.mq_close(u, r).unwrap();
    });
}

#[test]
fn mq_unl_3_name_gone_queue_lives_on() {
    uipc_testkit::conformance!("MQ-UNL-3", |s| {
        let p = s.root();
        let old = queue(s, p, O_RDWR | O_NONBLOCK);
        s.mq_send(p, old, b"old", 1).unwrap();
        s.mq_unlink(p, "/q").unwrap();
        assert_eq!(s.mq_open(p, "/q", O_RDWR, 0, None), Err(Errno::ENOENT));
        let new = s.mq_open(p, "/q", O_RDWR | O_CREAT | O_NONBLOCK, 0o600, Some((3, 4))).unwrap();
        assert_eq!(s.mq_getattr(p, new), Ok([NB, 3, 4, 0]));
        s.mq_send(p, old, b"more", 2).unwrap();
        assert_eq!(s.mq_getattr(p, old), Ok([NB, 2, 8, 2]));
        assert_eq!(s.mq_receive(p, old, 8), Ok((b"more".to_vec(), 2)));
        assert_eq!(s.mq_receive(p, old, 8), Ok((b"old".to_vec(), 1)));
        assert_eq!(s.mq_receive(p, new, 8), Err(Errno::EAGAIN));
        s.mq_close(p, old).unwrap();
        assert_eq!(s.mq_getattr(p, new), Ok([NB, 3, 4, 0]));
    });
}

#[test]
fn mq_close_1_ebadf_and_registration_removed() {
    uipc_testkit::conformance!("MQ-CLOSE-1", |s| {
        let p = s.root();
        let o = s.root();
        let q = queue(s, p, O_RDWR);
        assert_eq!(s.mq_close(p, Mqd::BAD), Err(Errno::EBADF));
        let oq = s.mq_open(o, "/q", O_RDONLY, 0, None).unwrap();
        s.mq_notify(o, oq, Some((SIGEV_NONE, 0))).unwrap();
        assert_eq!(s.mq_close(o, oq), Ok(()));
        assert_eq!(s.mq_close(o, oq), Err(Errno::EBADF));
        assert_eq!(s.mq_notify(p, q, Some((SIGEV_NONE, 0))), Ok(()));
        assert_eq!(s.mq_close(p, q), Ok(()));
        assert_eq!(s.mq_getattr(p, q), Err(Errno::EBADF));
    });
}

#[test]
fn mq_snd_7_hand_off_to_a_sleeping_receiver_fires_no_notification() {
    uipc_testkit::conformance!("MQ-SND-7/MQ-NOT-8 hand-off", |s| {
        let p = s.root();
        let r = s.root();
        let q = queue(s, p, O_RDWR);
        let rq = s.mq_open(r, "/q", O_RDONLY, 0, None).unwrap();
        s.mq_notify(p, q, Some((SIGEV_NONE, 0))).unwrap();
        assert_eq!(s.mq_receive_async(r, rq, 8), None);
        s.mq_send(p, q, b"handed", 7).unwrap();
        assert_eq!(s.finish_mq(r), Ok((b"handed".to_vec(), 7)));
        // Never queued: empty, and the registration is still there.
        assert_eq!(s.mq_getattr(p, q), Ok([0, 2, 8, 0]));
        assert_eq!(s.mq_notify(r, rq, Some((SIGEV_NONE, 0))), Err(Errno::EBUSY));
        s.mq_send(p, q, b"queued", 0).unwrap();
        assert_eq!(s.mq_notify(r, rq, Some((SIGEV_NONE, 0))), Ok(()));
    });
}

#[test]
fn mq_rcv_5_a_receive_completes_a_sleeping_sender() {
    uipc_testkit::conformance!("MQ-RCV-5 sleeping sender", |s| {
        let p = s.root();
        let w = s.root();
        let q = queue(s, p, O_RDWR);
        let wq = s.mq_open(w, "/q", O_WRONLY, 0, None).unwrap();
        s.mq_send(p, q, b"1", 1).unwrap();
        s.mq_send(p, q, b"2", 1).unwrap();
        assert_eq!(s.mq_send_async(w, wq, b"late", 9), None);
        assert_eq!(s.mq_receive(p, q, 8), Ok((b"1".to_vec(), 1)));
        assert_eq!(s.finish(w), Ok(0));
        assert_eq!(s.mq_getattr(p, q), Ok([0, 2, 8, 2]));
        assert_eq!(s.mq_receive(p, q, 8), Ok((b"late".to_vec(), 9)));
        assert_eq!(s.mq_receive(p, q, 8), Ok((b"2".to_vec(), 1)));
    });
}

#[test]
fn mq_wait_1_sleepers_served_in_arrival_order() {
    uipc_testkit::conformance!("MQ-WAIT-1", |s| {
        let p = s.root();
        let a = s.root();
        let b = s.root();
        let q = queue(s, p, O_RDWR);
        let aq = s.mq_open(a, "/q", O_RDWR, 0, None).unwrap();
        let bq = s.mq_open(b, "/q", O_RDWR, 0, None).unwrap();
        // Receivers of equal scheduling priority: first come, first served.
        assert_eq!(s.mq_receive_async(a, aq, 8), None);
        assert_eq!(s.mq_receive_async(b, bq, 8), None);
        s.mq_send(p, q, b"first", 1).unwrap();
        assert_eq!(s.finish_mq(a), Ok((b"first".to_vec(), 1)));
        s.mq_send(p, q, b"second", 2).unwrap();
        assert_eq!(s.finish_mq(b), Ok((b"second".to_vec(), 2)));
        // Senders likewise.
        s.mq_send(p, q, b"x", 0).unwrap();
        s.mq_send(p, q, b"y", 0).unwrap();
        assert_eq!(s.mq_send_async(b, bq, b"from-b", 0), None);
        assert_eq!(s.mq_send_async(a, aq, b"from-a", 0), None);
        assert_eq!(s.mq_receive(p, q, 8), Ok((b"x".to_vec(), 0)));
        assert_eq!(s.finish(b), Ok(0));
        assert_eq!(s.mq_receive(p, q, 8), Ok((b"y".to_vec(), 0)));
        assert_eq!(s.finish(a), Ok(0));
        assert_eq!(s.mq_receive(p, q, 8), Ok((b"from-b".to_vec(), 0)));
        assert_eq!(s.mq_receive(p, q, 8), Ok((b"from-a".to_vec(), 0)));
    });
}

#[test]
fn mq_snd_6_rcv_4_a_signal_ends_the_sleep_with_eintr() {
    uipc_testkit::conformance!("MQ-SND-6/MQ-RCV-4 EINTR", |s| {
        let p = s.root();
        let q = queue(s, p, O_RDWR);
        let r = s.root();
        let rq = s.mq_open(r, "/q", O_RDWR, 0, None).unwrap();
        assert_eq!(s.mq_receive_async(r, rq, 8), None);
        s.signal(r);
        assert_eq!(s.finish_mq(r), Err(Errno::EINTR));
        s.mq_send(p, q, b"1", 0).unwrap();
        s.mq_send(p, q, b"2", 0).unwrap();
        assert_eq!(s.mq_send_async(r, rq, b"3", 0), None);
        s.signal(r);
        assert_eq!(s.finish(r), Err(Errno::EINTR));
        assert_eq!(s.mq_getattr(p, q), Ok([0, 2, 8, 2]));
    });
}

/// The status line as a fresh descriptor of "/q" reads it.
fn status(s: &mut Session, p: Proc) -> String {
    let d = s.mq_open(p, "/q", O_RDONLY, 0, None).unwrap();
    let line = s.mq_read(p, d).unwrap();
    s.mq_close(p, d).unwrap();
    line
}

#[test]
fn mq_fs_3_status_line_qsize_and_registration() {
    uipc_testkit::conformance!("MQ-FS-3", |s| {
        let p = s.root();
        let o = s.root();
        let q = s.mq_open(p, "/q", O_RDWR | O_CREAT, 0o600, Some((4, 16))).unwrap();
        status(s, p);
        s.mq_send(p, q, b"abcdef", 1).unwrap();
        s.mq_send(p, q, b"", 2).unwrap();
        s.mq_send(p, q, b"0123456789abcdef", 3).unwrap();
        status(s, p);
        let oq = s.mq_open(o, "/q", O_RDONLY, 0, None).unwrap();
        s.mq_notify(o, oq, Some((SIGEV_SIGNAL, 10))).unwrap();
        status(s, p);
        s.mq_notify(o, oq, None).unwrap();
        s.mq_notify(p, q, Some((SIGEV_NONE, 0))).unwrap();
        status(s, o);
        s.mq_notify(p, q, None).unwrap();
        s.mq_notify(o, oq, Some((SIGEV_SIGNAL, 0))).unwrap();
        status(s, p);
        s.mq_receive(p, q, 16).unwrap();
        status(s, p);
    });
}
