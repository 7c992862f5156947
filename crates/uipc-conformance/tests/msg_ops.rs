//! System V message queues (SPEC section 4): one named test per MSG-* rule,
//! run on the kernel (the oracle, in a fresh IPC namespace) and on uipc's
//! core, daemon and preload backends, compared call by call — values,
//! errnos, every `msqid_ds` field (pids as process names, times as facts).
//!
//! Not covered here: `EINTR` after a stop/continue or an ignored signal
//! (transparent restart); MSG-RCV-14's thread id (the kit's processes are
//! single-threaded, so the receiving thread's id is its process id: the
//! hand-off tests show `lrpid` = the receiver, which also holds for a
//! TGID); `ENOMEM` of a failed allocation; the `EIDRM` of a race (COM-CTL-5).
#![allow(clippy::unwrap_used)]

use uipc_abi::{
    Errno, IPC_CREAT, IPC_EXCL, IPC_INFO, IPC_NOWAIT, IPC_PRIVATE, IPC_RMID, IPC_SET, IPC_STAT, MSG_COPY, MSG_EXCEPT,
    MSG_INFO, MSG_NOERROR, MSG_STAT, MSG_STAT_ANY,
};
use uipc_testkit::{Proc, Session};

const NW: i32 = IPC_NOWAIT;

/// A fresh queue of mode 0666 with capacity `qbytes`.
fn queue(s: &mut Session, p: Proc, qbytes: u64) -> i32 {
    let id = s.msgget(p, IPC_PRIVATE, 0o666).unwrap();
    assert_eq!(s.msgctl_set(p, id, 0, 0, 0o666, qbytes), Ok(0));
    id
}

#[test]
fn msg_get_1_key_rules_and_msgmni() {
    uipc_testkit::conformance!("MSG-GET-1", |s| {
        let p = s.root();
        let u = s.user(1000, 1000);
        const K: i32 = 0x4d53_4701;
        assert_eq!(s.msgget(p, K, 0o600), Err(Errno::ENOENT));
        let id = s.msgget(p, K, IPC_CREAT | 0o640).unwrap();
        assert_eq!(s.msgget(p, K, IPC_CREAT | IPC_EXCL | 0o600), Err(Errno::EEXIST));
        assert_eq!(s.msgget(p, K, 0o777), Ok(id));
        assert_eq!(s.msgget(u, K, 0o400), Err(Errno::EACCES));
        assert_eq!(s.msgget(u, K, 0), Ok(id));
        assert!(s.msgget(p, IPC_PRIVATE, IPC_CREAT | IPC_EXCL | 0o600).is_ok());
        s.sysctl_set("kernel.msgmni", "2").unwrap();
        assert_eq!(s.msgget(p, IPC_PRIVATE, 0o600), Err(Errno::ENOSPC));
        assert_eq!(s.msgget(p, K, 0), Ok(id));
        s.sysctl_set("kernel.msgmni", "0").unwrap();
        assert_eq!(s.msgget(p, K + 1, IPC_CREAT | 0o600), Err(Errno::ENOSPC));
    });
}

#[test]
fn msg_get_2_new_queue_fields_and_msgmnb_at_creation() {
    uipc_testkit::conformance!("MSG-GET-2", |s| {
        let p = s.root();
        s.sysctl_set("kernel.msgmnb", "1000").unwrap();
        let a = s.msgget(p, 77, IPC_CREAT | 0o1640).unwrap();
        s.msg_stat(p, a).unwrap();
        s.sysctl_set("kernel.msgmnb", "2000").unwrap();
        assert_eq!(s.msg_stat(p, a).unwrap().qbytes, 1000);
        let b = s.msgget(p, IPC_PRIVATE, 0o600).unwrap();
        assert_eq!(s.msg_stat(p, b).unwrap().qbytes, 2000);
    });
}

#[test]
fn msg_snd_1_to_4_check_order() {
    uipc_testkit::conformance!("MSG-SND-1..4", |s| {
        let p = s.root();
        let id = queue(s, p, 16384);
        // EFAULT of mtype comes before every EINVAL.
        assert_eq!(s.msgsnd_fault(p, -1, 1, 0), Err(Errno::EFAULT));
        assert_eq!(s.msgsnd(p, id, 1, &[0; 8193], 0), Err(Errno::EINVAL));
        assert_eq!(s.msgsnd(p, -1, 1, b"x", 0), Err(Errno::EINVAL));
        assert_eq!(s.msgsnd(p, id, 0, b"x", 0), Err(Errno::EINVAL));
        assert_eq!(s.msgsnd(p, id + 5, -3, b"x", 0), Err(Errno::EINVAL));
        s.sysctl_set("kernel.msgmax", "4").unwrap();
        assert_eq!(s.msgsnd(p, id, 1, b"12345", 0), Err(Errno::EINVAL));
        assert_eq!(s.msgsnd(p, id, 1, b"1234", 0), Ok(0));
        assert_eq!(s.msg_stat(p, id).unwrap().qnum, 1);
    });
}

#[test]
fn msg_snd_5_6_lookup_permission_full() {
    uipc_testkit::conformance!("MSG-SND-5/6", |s| {
        let p = s.root();
        let u = s.user(1000, 1000);
        let id = s.msgget(p, IPC_PRIVATE, 0o644).unwrap();
        assert_eq!(s.msgsnd(p, id + 32768, 1, b"x", 0), Err(Errno::EINVAL));
        assert_eq!(s.msgsnd(u, id, 1, b"x", NW), Err(Errno::EACCES));
        assert_eq!(s.msgctl_set(p, id, 0, 0, 0o644, 1), Ok(0));
        assert_eq!(s.msgsnd(p, id, 1, b"", NW), Ok(0));
        assert_eq!(s.msgsnd(p, id, 1, b"", NW), Err(Errno::EAGAIN));
        // Permission is checked before fullness.
        assert_eq!(s.msgsnd(u, id, 1, b"", NW), Err(Errno::EACCES));
    });
}

#[test]
fn msg_snd_6_sleeper_woken_by_removal_and_signal() {
    uipc_testkit::conformance!("MSG-SND-6/wake", |s| {
        let p = s.root();
        let w = s.root();
        let v = s.root();
        let id = queue(s, p, 0);
        assert_eq!(s.msgsnd_async(w, id, 1, b"a", 0), None);
        assert_eq!(s.msgsnd_async(v, id, 1, b"b", 0), None);
        s.signal(v);
        assert_eq!(s.finish(v), Err(Errno::EINTR));
        assert_eq!(s.msgctl(p, id, IPC_RMID), Ok(0));
        assert_eq!(s.finish(w), Err(Errno::EIDRM));
    });
}

#[test]
fn msg_snd_7_stats_and_zero_length() {
    uipc_testkit::conformance!("MSG-SND-7", |s| {
        let p = s.root();
        let q = s.root();
        let id = queue(s, p, 100);
        assert_eq!(s.msgsnd(q, id, 3, b"", 0), Ok(0));
        assert_eq!(s.msgsnd(q, id, 3, b"abc", 0), Ok(0));
        s.msg_stat(p, id).unwrap();
        assert_eq!(s.msgrcv(p, id, 10, 0, 0), Ok((3, vec![])));
    });
}

#[test]
fn msg_rcv_1_to_3_check_order() {
    uipc_testkit::conformance!("MSG-RCV-1..3", |s| {
        let p = s.root();
        let id = queue(s, p, 100);
        assert_eq!(s.msgrcv(p, -1, 8, 0, NW).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.msgrcv(p, id, u64::MAX, 0, NW).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.msgrcv(p, id, 8, 0, MSG_COPY).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.msgrcv(p, id, 8, 0, MSG_COPY | MSG_EXCEPT | NW).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.msgrcv_fault(p, id + 9, 8, 0, MSG_COPY | NW), Err(Errno::EFAULT));
        assert_eq!(s.msgrcv(p, id + 9, 8, 0, NW).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.msgrcv(p, id, 8, 0, NW).map(drop), Err(Errno::ENOMSG));
    });
}

#[test]
fn msg_rcv_4_e2big_keeps_the_message_noerror_truncates() {
    uipc_testkit::conformance!("MSG-RCV-4", |s| {
        let p = s.root();
        let u = s.user(1000, 1000);
        let id = s.msgget(p, IPC_PRIVATE, 0o622).unwrap();
        assert_eq!(s.msgsnd(u, id, 5, b"hello world", 0), Ok(0));
        assert_eq!(s.msgrcv(u, id, 64, 0, NW).map(drop), Err(Errno::EACCES));
        assert_eq!(s.msgrcv(p, id, 4, 0, NW).map(drop), Err(Errno::E2BIG));
        s.msg_stat(p, id).unwrap();
        assert_eq!(s.msgrcv(p, id, 4, 0, MSG_COPY | MSG_NOERROR | NW).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.msgrcv(p, id, 4, 5, MSG_NOERROR | NW), Ok((5, b"hell".to_vec())));
        s.msg_stat(p, id).unwrap();
    });
}

#[test]
fn msg_rcv_4_sleepers_end_by_removal_signal_or_permission() {
    uipc_testkit::conformance!("MSG-RCV-4/wake", |s| {
        let p = s.root();
        let a = s.root();
        let b = s.root();
        let u = s.user(1000, 1000);
        let id = queue(s, p, 100);
        assert_eq!(s.msgrcv_async(u, id, 8, 0, 0), None);
        assert_eq!(s.msgrcv_async(a, id, 8, 0, 0), None);
        assert_eq!(s.msgrcv_async(b, id, 8, 0, 0), None);
        s.signal(b);
        assert_eq!(s.finish_msg(b), Err(Errno::EINTR));
        // IPC_SET makes every receiver re-check: the user loses read permission.
        assert_eq!(s.msgctl_set(p, id, 0, 0, 0o600, 100), Ok(0));
        assert_eq!(s.finish_msg(u), Err(Errno::EACCES));
        assert_eq!(s.msgctl(p, id, IPC_RMID), Ok(0));
        assert_eq!(s.finish_msg(a), Err(Errno::EIDRM));
    });
}

#[test]
fn msg_rcv_5_copy_out_failure_loses_the_message() {
    uipc_testkit::conformance!("MSG-RCV-5", |s| {
        let p = s.root();
        let id = queue(s, p, 100);
        assert_eq!(s.msgsnd(p, id, 1, b"lost", 0), Ok(0));
        assert_eq!(s.msgsnd(p, id, 2, b"kept", 0), Ok(0));
        assert_eq!(s.msgrcv_fault(p, id, 8, 1, NW), Err(Errno::EFAULT));
        s.msg_stat(p, id).unwrap();
        assert_eq!(s.msgrcv(p, id, 8, 0, NW), Ok((2, b"kept".to_vec())));
    });
}

#[test]
fn msg_rcv_6_stats_only_on_removal() {
    uipc_testkit::conformance!("MSG-RCV-6", |s| {
        let p = s.root();
        let r = s.root();
        let id = queue(s, p, 100);
        assert_eq!(s.msgsnd(p, id, 1, b"12345", 0), Ok(0));
        assert_eq!(s.msgrcv(r, id, 2, 0, NW).map(drop), Err(Errno::E2BIG));
        assert_eq!(s.msgrcv(r, id, 2, 9, NW).map(drop), Err(Errno::ENOMSG));
        assert_eq!(s.msgrcv(r, id, 8, 0, MSG_COPY | NW), Ok((1, b"12345".to_vec())));
        s.msg_stat(p, id).unwrap();
        assert_eq!(s.msgrcv(r, id, 8, 0, NW), Ok((1, b"12345".to_vec())));
        s.msg_stat(p, id).unwrap();
    });
}

/// Sends messages of types `types` (text = the type's digit).
fn fill(s: &mut Session, p: Proc, id: i32, types: &[i64]) {
    for t in types {
        assert_eq!(s.msgsnd(p, id, *t, t.to_string().as_bytes(), 0), Ok(0));
    }
}

#[test]
fn msg_type_1_zero_is_any_even_with_except() {
    uipc_testkit::conformance!("MSG-TYPE-1", |s| {
        let p = s.root();
        let id = queue(s, p, 1000);
        fill(s, p, id, &[4, 2, 3]);
        assert_eq!(s.msgrcv(p, id, 8, 0, NW).unwrap().0, 4);
        assert_eq!(s.msgrcv(p, id, 8, 0, MSG_EXCEPT | NW).unwrap().0, 2);
    });
}

#[test]
fn msg_type_2_equal_and_except() {
    uipc_testkit::conformance!("MSG-TYPE-2", |s| {
        let p = s.root();
        let id = queue(s, p, 1000);
        fill(s, p, id, &[4, 2, 4, 3]);
        assert_eq!(s.msgrcv(p, id, 8, 3, NW).unwrap().0, 3);
        assert_eq!(s.msgrcv(p, id, 8, 4, MSG_EXCEPT | NW).unwrap().0, 2);
        assert_eq!(s.msgrcv(p, id, 8, 4, MSG_EXCEPT | NW).map(drop), Err(Errno::ENOMSG));
        assert_eq!(s.msgrcv(p, id, 8, 4, NW).unwrap().0, 4);
    });
}

#[test]
fn msg_type_3_lowest_at_most_and_long_min() {
    uipc_testkit::conformance!("MSG-TYPE-3", |s| {
        let p = s.root();
        let id = queue(s, p, 1000);
        fill(s, p, id, &[5, 3, 7, 3, 9, 1]);
        assert_eq!(s.msgrcv(p, id, 8, -4, MSG_EXCEPT | NW).unwrap().0, 1);
        assert_eq!(s.msgrcv(p, id, 8, -4, NW).unwrap().0, 3);
        assert_eq!(s.msgrcv(p, id, 8, -2, NW).map(drop), Err(Errno::ENOMSG));
        assert_eq!(s.msgrcv(p, id, 8, i64::MIN, NW).unwrap().0, 3);
        assert_eq!(s.msgrcv(p, id, 8, -8, NW).unwrap().0, 5);
        assert_eq!(s.msgrcv(p, id, 8, i64::MIN, NW).unwrap().0, 7);
    });
}

#[test]
fn msg_type_4_copy_by_position() {
    uipc_testkit::conformance!("MSG-TYPE-4", |s| {
        let p = s.root();
        let id = queue(s, p, 1000);
        fill(s, p, id, &[5, 3, 7]);
        assert_eq!(s.msgrcv(p, id, 8, 0, MSG_COPY | NW).unwrap().0, 5);
        assert_eq!(s.msgrcv(p, id, 8, 2, MSG_COPY | NW).unwrap().0, 7);
        assert_eq!(s.msgrcv(p, id, 8, 3, MSG_COPY | NW).map(drop), Err(Errno::ENOMSG));
        assert_eq!(s.msgrcv(p, id, 8, -1, MSG_COPY | NW).map(drop), Err(Errno::ENOMSG));
        assert_eq!(s.msgrcv(p, id, 8, 1, MSG_COPY | MSG_NOERROR | NW).unwrap().0, 3);
        s.msg_stat(p, id).unwrap();
    });
}

#[test]
fn msg_type_5_filters_of_several_sleeping_receivers() {
    uipc_testkit::conformance!("MSG-TYPE-5", |s| {
        let p = s.root();
        let r2 = s.root();
        let rx = s.root();
        let rle = s.root();
        let rany = s.root();
        let id = queue(s, p, 1000);
        assert_eq!(s.msgrcv_async(r2, id, 8, 2, 0), None);
        assert_eq!(s.msgrcv_async(rx, id, 8, 2, MSG_EXCEPT), None);
        assert_eq!(s.msgrcv_async(rle, id, 8, -1, 0), None);
        assert_eq!(s.msgrcv_async(rany, id, 8, 0, 0), None);
        // Each message goes to the first sleeper (in arrival order) whose filter takes it.
        assert_eq!(s.msgsnd(p, id, 2, b"two", 0), Ok(0));
        assert_eq!(s.finish_msg(r2), Ok((2, b"two".to_vec())));
        assert_eq!(s.msgsnd(p, id, 1, b"one", 0), Ok(0));
        assert_eq!(s.finish_msg(rx), Ok((1, b"one".to_vec())));
        assert_eq!(s.msgsnd(p, id, 2, b"two", 0), Ok(0));
        assert_eq!(s.finish_msg(rany), Ok((2, b"two".to_vec())));
        assert_eq!(s.msgsnd(p, id, 3, b"three", 0), Ok(0));
        s.msg_stat(p, id).unwrap();
        assert_eq!(s.msgsnd(p, id, 1, b"one", 0), Ok(0));
        assert_eq!(s.finish_msg(rle), Ok((1, b"one".to_vec())));
        s.msg_stat(p, id).unwrap();
    });
}

#[test]
fn msg_cap_1_bytes_and_count_bounded_by_qbytes() {
    uipc_testkit::conformance!("MSG-CAP-1", |s| {
        let p = s.root();
        let id = queue(s, p, 3);
        for _ in 0..3 {
            assert_eq!(s.msgsnd(p, id, 1, b"", NW), Ok(0));
        }
        assert_eq!(s.msgsnd(p, id, 1, b"", NW), Err(Errno::EAGAIN));
        let id2 = queue(s, p, 10);
        assert_eq!(s.msgsnd(p, id2, 1, b"123456", NW), Ok(0));
        assert_eq!(s.msgsnd(p, id2, 1, b"12345", NW), Err(Errno::EAGAIN));
        assert_eq!(s.msgsnd(p, id2, 1, b"1234", NW), Ok(0));
        let id3 = queue(s, p, 0);
        assert_eq!(s.msgsnd(p, id3, 1, b"", NW), Err(Errno::EAGAIN));
    });
}

#[test]
fn msg_cap_2_lowering_qbytes_discards_nothing() {
    uipc_testkit::conformance!("MSG-CAP-2", |s| {
        let p = s.root();
        let id = queue(s, p, 100);
        fill(s, p, id, &[1, 2, 3]);
        assert_eq!(s.msgctl_set(p, id, 0, 0, 0o666, 1), Ok(0));
        s.msg_stat(p, id).unwrap();
        assert_eq!(s.msgsnd(p, id, 1, b"", NW), Err(Errno::EAGAIN));
        assert_eq!(s.msgrcv(p, id, 8, 0, NW).unwrap().0, 1);
    });
}

#[test]
fn msg_cap_3_senders_woken_when_space_appears() {
    uipc_testkit::conformance!("MSG-CAP-3", |s| {
        let p = s.root();
        let a = s.root();
        let b = s.root();
        let c = s.root();
        let id = queue(s, p, 10);
        assert_eq!(s.msgsnd(p, id, 1, b"0123456789", 0), Ok(0));
        assert_eq!(s.msgsnd_async(a, id, 2, b"aaaaaa", 0), None);
        assert_eq!(s.msgsnd_async(b, id, 3, b"bbbb", 0), None);
        // c's 11 bytes never fit a 10-byte queue: it is passed over.
        assert_eq!(s.msgsnd_async(c, id, 4, b"ccccccccccc", 0), None);
        // The receive empties the queue: a (6) and b (4) both fit and send
        // (in which order, the kernel's scheduler decides: only what does
        // not depend on it is compared).
        assert_eq!(s.msgrcv(p, id, 64, 0, 0).unwrap().0, 1);
        assert_eq!(s.finish(a), Ok(0));
        assert_eq!(s.finish(b), Ok(0));
        // (lspid is whichever sent last: MSG_INFO's totals are what is sure.)
        let (_, info) = s.msg_info(p, MSG_INFO).unwrap();
        assert_eq!((info.msgmap, info.msgtql), (2, 10));
        assert_eq!(s.msgrcv(p, id, 64, 2, 0).unwrap().1, b"aaaaaa".to_vec());
        assert_eq!(s.msgrcv(p, id, 64, 3, 0).unwrap().1, b"bbbb".to_vec());
        s.signal(c);
        assert_eq!(s.finish(c), Err(Errno::EINTR));
    });
}

#[test]
fn msg_cap_3_ipc_set_raising_qbytes_wakes_senders() {
    uipc_testkit::conformance!("MSG-CAP-3/ipc_set", |s| {
        let p = s.root();
        let a = s.root();
        let b = s.root();
        let id = queue(s, p, 0);
        assert_eq!(s.msgsnd_async(a, id, 1, b"aa", 0), None);
        assert_eq!(s.msgsnd_async(b, id, 2, b"bbbbb", 0), None);
        // Room for a's message only (b's 5 bytes exceed 4).
        assert_eq!(s.msgctl_set(p, id, 0, 0, 0o666, 4), Ok(0));
        assert_eq!(s.finish(a), Ok(0));
        s.msg_stat(p, id).unwrap();
        // Lowering qbytes under a sleeper: it stays asleep, then removal ends it.
        assert_eq!(s.msgctl_set(p, id, 0, 0, 0o666, 1), Ok(0));
        assert_eq!(s.msgrcv(p, id, 8, 0, NW).unwrap().0, 1);
        s.msg_stat(p, id).unwrap();
        assert_eq!(s.msgctl(p, id, IPC_RMID), Ok(0));
        assert_eq!(s.finish(b), Err(Errno::EIDRM));
    });
}

#[test]
fn msg_pipe_1_e2big_skip_on_hand_off() {
    uipc_testkit::conformance!("MSG-PIPE-1", |s| {
        let p = s.root();
        let small = s.root();
        let big = s.root();
        let id = queue(s, p, 100);
        assert_eq!(s.msgrcv_async(small, id, 1, 0, 0), None);
        assert_eq!(s.msgrcv_async(big, id, 8, 0, 0), None);
        assert_eq!(s.msgsnd(p, id, 7, b"abc", 0), Ok(0));
        assert_eq!(s.finish_msg(small), Err(Errno::E2BIG));
        assert_eq!(s.finish_msg(big), Ok((7, b"abc".to_vec())));
        s.msg_stat(p, id).unwrap();
        // With nobody else asleep the too-big message is queued.
        assert_eq!(s.msgrcv_async(small, id, 1, 0, 0), None);
        assert_eq!(s.msgsnd(p, id, 8, b"xyz", 0), Ok(0));
        assert_eq!(s.finish_msg(small), Err(Errno::E2BIG));
        s.msg_stat(p, id).unwrap();
        // MSG_NOERROR takes it, cut.
        assert_eq!(s.msgrcv_async(small, id, 1, 9, MSG_NOERROR), None);
        assert_eq!(s.msgsnd(p, id, 9, b"long", 0), Ok(0));
        assert_eq!(s.finish_msg(small), Ok((9, b"l".to_vec())));
    });
}

#[test]
fn msg_pipe_2_hand_off_never_queues() {
    uipc_testkit::conformance!("MSG-PIPE-2", |s| {
        let p = s.root();
        let r = s.root();
        let id = queue(s, p, 100);
        assert_eq!(s.msgrcv_async(r, id, 8, 0, 0), None);
        assert_eq!(s.msgsnd(p, id, 1, b"direct", 0), Ok(0));
        s.msg_stat(p, id).unwrap();
        assert_eq!(s.finish_msg(r), Ok((1, b"direct".to_vec())));
        let (_, info) = s.msg_info(p, MSG_INFO).unwrap();
        assert_eq!((info.msgmap, info.msgtql), (0, 0));
    });
}

#[test]
fn msg_pipe_3_unmatched_message_is_queued() {
    uipc_testkit::conformance!("MSG-PIPE-3", |s| {
        let p = s.root();
        let r = s.root();
        let id = queue(s, p, 100);
        assert_eq!(s.msgrcv_async(r, id, 8, 5, 0), None);
        assert_eq!(s.msgsnd(p, id, 4, b"four", 0), Ok(0));
        s.msg_stat(p, id).unwrap();
        assert_eq!(s.msgsnd(p, id, 5, b"five", 0), Ok(0));
        assert_eq!(s.finish_msg(r), Ok((5, b"five".to_vec())));
    });
}

#[test]
fn msg_pipe_4_capacity_before_hand_off() {
    uipc_testkit::conformance!("MSG-PIPE-4", |s| {
        let p = s.root();
        let r = s.root();
        let id = queue(s, p, 4);
        assert_eq!(s.msgsnd(p, id, 1, b"full", 0), Ok(0));
        assert_eq!(s.msgrcv_async(r, id, 8, 2, 0), None);
        assert_eq!(s.msgsnd(p, id, 2, b"x", NW), Err(Errno::EAGAIN));
        assert_eq!(s.msgrcv(p, id, 8, 1, 0).unwrap().0, 1);
        assert_eq!(s.msgsnd(p, id, 2, b"x", NW), Ok(0));
        assert_eq!(s.finish_msg(r), Ok((2, b"x".to_vec())));
    });
}

#[test]
fn msg_ctl_1_stat_commands() {
    uipc_testkit::conformance!("MSG-CTL-1", |s| {
        let p = s.root();
        let u = s.user(1000, 1000);
        let a = s.msgget(p, 11, IPC_CREAT | 0o600).unwrap();
        let b = s.msgget(p, 12, IPC_CREAT | 0o644).unwrap();
        assert_eq!(s.msgctl(p, -1, IPC_STAT), Err(Errno::EINVAL));
        assert_eq!(s.msgctl(p, a, -1), Err(Errno::EINVAL));
        assert_eq!(s.msgctl(p, a, 99), Err(Errno::EINVAL));
        assert_eq!(s.msgctl(p, a, IPC_STAT | 0x100), Err(Errno::EINVAL));
        assert_eq!(s.msgctl_fault(p, a, IPC_STAT), Err(Errno::EFAULT));
        assert_eq!(s.msgctl_stat(u, a, IPC_STAT).map(drop), Err(Errno::EACCES));
        s.msgctl_stat(u, b, IPC_STAT).unwrap();
        assert_eq!(s.msgctl_stat(u, 0, MSG_STAT).map(drop), Err(Errno::EACCES));
        s.msgctl_stat(u, 0, MSG_STAT_ANY).unwrap();
        s.msgctl_stat(u, 1, MSG_STAT).unwrap();
        assert_eq!(s.msgctl_stat(p, 5, MSG_STAT).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.msgctl_stat(p, a + 32768, IPC_STAT).map(drop), Err(Errno::EINVAL));
        s.msgctl_stat(p, a + 32768, MSG_STAT).unwrap();
    });
}

#[test]
fn msg_ctl_2_ipc_set_rules() {
    uipc_testkit::conformance!("MSG-CTL-2", |s| {
        let p = s.root();
        let u = s.user(1000, 1000);
        let id = s.msgget(p, IPC_PRIVATE, 0o666).unwrap();
        assert_eq!(s.msgctl_fault(p, id + 7, IPC_SET), Err(Errno::EFAULT));
        assert_eq!(s.msgctl_set(p, id + 7, 0, 0, 0o600, 10), Err(Errno::EINVAL));
        assert_eq!(s.msgctl_set(u, id, 0, 0, 0o600, 10), Err(Errno::EPERM));
        // Above msgmnb needs CAP_SYS_RESOURCE (root here may lack it: the
        // backends read the capability set), checked before the uid's validity.
        let over = s.msgctl_set(p, id, u32::MAX, 0, 0o600, 16385);
        s.note(format!("qbytes 16385 with uid -1: {over:?}"));
        assert_eq!(s.msgctl_set(p, id, u32::MAX, 0, 0o600, 100), Err(Errno::EINVAL));
        assert_eq!(s.msgctl_set(p, id, 1000, 1000, 0o7640, 16384), Ok(0));
        s.msg_stat(p, id).unwrap();
        // The new owner may IPC_SET; a zeroed qbytes sets 0.
        assert_eq!(s.msgctl_set(u, id, 1000, 1000, 0o600, 0), Ok(0));
        s.msg_stat(p, id).unwrap();
    });
}

#[test]
fn msg_ctl_3_rmid_with_sleepers_on_both_sides() {
    uipc_testkit::conformance!("MSG-CTL-3", |s| {
        let p = s.root();
        let r1 = s.root();
        let r2 = s.root();
        let w = s.root();
        let u = s.user(1000, 1000);
        let id = queue(s, p, 1);
        assert_eq!(s.msgsnd(p, id, 1, b"", 0), Ok(0));
        assert_eq!(s.msgrcv_async(r1, id, 8, 2, 0), None);
        assert_eq!(s.msgrcv_async(r2, id, 8, 3, 0), None);
        assert_eq!(s.msgsnd_async(w, id, 4, b"", 0), None);
        assert_eq!(s.msgctl(u, id, IPC_RMID), Err(Errno::EPERM));
        assert_eq!(s.msgctl(p, id, IPC_RMID), Ok(0));
        assert_eq!(s.finish_msg(r1), Err(Errno::EIDRM));
        assert_eq!(s.finish_msg(r2), Err(Errno::EIDRM));
        assert_eq!(s.finish(w), Err(Errno::EIDRM));
        assert_eq!(s.msgctl(p, id, IPC_STAT), Err(Errno::EINVAL));
        assert_eq!(s.msgsnd(p, id, 1, b"", NW), Err(Errno::EINVAL));
        let (_, info) = s.msg_info(p, MSG_INFO).unwrap();
        assert_eq!((info.msgpool, info.msgmap), (0, 0));
    });
}

#[test]
fn msg_ctl_4_info_commands() {
    uipc_testkit::conformance!("MSG-CTL-4", |s| {
        let p = s.root();
        s.msg_info(p, IPC_INFO).unwrap();
        s.msg_info(p, MSG_INFO).unwrap();
        let a = queue(s, p, 100);
        let b = queue(s, p, 100);
        let c = queue(s, p, 100);
        fill(s, p, a, &[1, 2]);
        fill(s, p, c, &[3]);
        assert_eq!(s.msgctl(p, b, IPC_RMID), Ok(0));
        s.msg_info(p, IPC_INFO).unwrap();
        s.msg_info(p, MSG_INFO).unwrap();
        assert_eq!(s.msgctl_fault(p, 0, MSG_INFO), Err(Errno::EFAULT));
        s.sysctl_set("kernel.msgmax", "100").unwrap();
        s.sysctl_set("kernel.msgmnb", "200").unwrap();
        s.msg_info(p, IPC_INFO).unwrap();
    });
}

#[test]
fn msg_rcv_14_lrpid_of_hand_off_is_the_receiver() {
    uipc_testkit::conformance!("MSG-RCV-14", |s| {
        let p = s.root();
        let r = s.root();
        let id = queue(s, p, 100);
        assert_eq!(s.msgrcv_async(r, id, 8, 0, 0), None);
        assert_eq!(s.msgsnd(p, id, 1, b"x", 0), Ok(0));
        assert_eq!(s.finish_msg(r).unwrap().0, 1);
        let ds = s.msg_stat(p, id).unwrap();
        assert_eq!(i64::from(ds.lrpid), i64::from(s.pid(r)));
        assert_eq!(s.msgsnd(p, id, 1, b"x", 0), Ok(0));
        assert_eq!(s.msgrcv(p, id, 8, 0, 0).unwrap().0, 1);
        let ds = s.msg_stat(p, id).unwrap();
        assert_eq!(i64::from(ds.lrpid), i64::from(s.pid(p)));
    });
}

#[test]
fn msg_lifecycle_exit_while_asleep_and_fork() {
    uipc_testkit::conformance!("MSG/exit", |s| {
        let p = s.root();
        let r = s.root();
        let id = queue(s, p, 100);
        assert_eq!(s.msgrcv_async(r, id, 8, 0, 0), None);
        s.kill(r);
        // The dead receiver took nothing: the message is queued.
        assert_eq!(s.msgsnd(p, id, 1, b"kept", 0), Ok(0));
        let c = s.fork(p);
        assert_eq!(s.msgrcv(c, id, 8, 0, NW), Ok((1, b"kept".to_vec())));
        s.msg_stat(p, id).unwrap();
        // A zeroed IPC_SET buffer sets qbytes 0 and mode 0.
        assert_eq!(s.msgctl_set(p, id, 0, 0, 0, 0), Ok(0));
        s.msg_stat(p, id).unwrap();
    });
}
