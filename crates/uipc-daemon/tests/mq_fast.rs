//! POSIX message queues' data plane (`docs/architecture.md`, "The data
//! plane"): sends and receives that do not sleep run in the caller on the
//! queue's state page — no request leaves the process
//! (`uipc_client::requests_sent`) — with the errors the description's
//! access mode gives, the readiness level moved on the caller's side and
//! `mq_curmsgs` the daemon's own right after; a receiver parked in the
//! daemon sends the next send there (hand-off order); a process killed
//! while holding the queue's lock, mid-change or after moving the level,
//! leaves the queue as it was, and the next caller proceeds.
//!
//! The request count is the whole process's: the tests take turns (`ONE`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use common::*;
use uipc_abi::Errno;
use uipc_client::{requests_sent, Client, MqHandle};
use uipc_proto::{Request, Response};
use uipc_sys::mq_page::MqQueuePage;

static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

const O_RDONLY: i32 = 0;
const O_RDWR: i32 = 2;
const O_CREAT: i32 = 0o100;

/// `poll` of `fd`: (readable, writable).
fn readiness(fd: BorrowedFd<'_>) -> (bool, bool) {
    let mut p =
        libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(&fd), events: libc::POLLIN | libc::POLLOUT, revents: 0 };
    // SAFETY: one pollfd, no wait.
    assert!(unsafe { libc::poll(&mut p, 1, 0) } >= 0);
    (p.revents & libc::POLLIN != 0, p.revents & libc::POLLOUT != 0)
}

fn receive(c: &Client, h: MqHandle, fd: BorrowedFd<'_>) -> Option<Result<(u32, Vec<u8>), Errno>> {
    let mut scratch = Vec::new();
    let r = c.mq_receive_fast(h, fd, 64, None, &mut scratch, false)?;
    Some(r.map(|(prio, n)| (prio, scratch[..n].to_vec())))
}

fn curmsgs(c: &Client, h: MqHandle) -> i64 {
    c.mq_getsetattr(h, None).unwrap().curmsgs
}

#[test]
fn fast_sends_and_receives_send_no_request() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let _w = watchdog("fast_sends_and_receives_send_no_request", 60);
    let d = TestDaemon::start("mqfast-count");
    let c = d.client();
    let (h, fd) = c.mq_open(b"count", O_CREAT | O_RDWR, 0o600, Some((4, 64))).unwrap();
    let (r, rfd) = c.mq_open(b"count", O_RDONLY, 0, None).unwrap();
    // The first call asks for the grant (each description once).
    assert_eq!(c.mq_send_fast(h, fd.as_fd(), b"warm", 1, None), Some(Ok(())));
    assert_eq!(receive(&c, r, rfd.as_fd()), Some(Ok((1, b"warm".to_vec()))));

    let before = requests_sent();
    for round in 0..50u32 {
        for i in 0..4u32 {
            let text = format!("m{round}.{i}");
            assert_eq!(c.mq_send_fast(h, fd.as_fd(), text.as_bytes(), i, None), Some(Ok(())));
        }
        // Full, blocking: it would sleep (the daemon's, even with a deadline
        // already past: the sleep times out there).
        assert_eq!(c.mq_send_fast(h, fd.as_fd(), b"x", 0, Some((1, 0))), None);
        assert_eq!(readiness(rfd.as_fd()), (true, false), "round {round}: full");
        // O_RDONLY cannot send, whatever the queue holds.
        assert_eq!(c.mq_send_fast(r, rfd.as_fd(), b"x", 0, None), Some(Err(Errno::EBADF)));
        for i in (0..4u32).rev() {
            let want = format!("m{round}.{i}");
            assert_eq!(receive(&c, r, rfd.as_fd()), Some(Ok((i, want.into_bytes()))));
            assert_eq!(readiness(fd.as_fd()), (i > 0, true), "round {round}: after a receive");
        }
        // Empty, blocking: the daemon's (it would sleep).
        assert_eq!(receive(&c, h, fd.as_fd()), None);
    }
    assert_eq!(requests_sent(), before, "a fast send or receive went to the daemon");

    // The daemon's answer right after fast sends.
    for i in 0..3 {
        assert_eq!(c.mq_send_fast(h, fd.as_fd(), b"c", 0, None), Some(Ok(())));
        assert_eq!(curmsgs(&c, h), i + 1);
    }
}

/// A receiver parked in the daemon sets `SLEEPERS`: the next send goes to
/// the daemon, which hands the message to it; then sends are fast again.
#[test]
fn a_receiver_parked_in_the_daemon_gets_the_next_send() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let _w = watchdog("a_receiver_parked_in_the_daemon_gets_the_next_send", 60);
    let d = TestDaemon::start("mqfast-park");
    let c = d.client();
    let (h, fd) = c.mq_open(b"park", O_CREAT | O_RDWR, 0o600, Some((4, 64))).unwrap();
    assert_eq!(c.mq_send_fast(h, fd.as_fd(), b"warm", 1, None), Some(Ok(())));
    assert_eq!(receive(&c, h, fd.as_fd()), Some(Ok((1, b"warm".to_vec()))));
    // A raw connection of this process holds the description too.
    let mut parked = d.raw();
    let mut admin = d.raw();
    parked.send(&Request::MqReceive { handle: h.0, len: 64, deadline: None });
    while admin.call(&Request::Waiters) != Response::Pids(vec![std::process::id()]) {
        std::thread::yield_now();
    }
    assert_eq!(c.mq_send_fast(h, fd.as_fd(), b"handed", 7, None), None, "a sleeper waits: the daemon's");
    c.sleeper().unwrap().mq_send(h, b"handed", 7, None).unwrap();
    assert_eq!(parked.recv().unwrap().0, Response::Msg { mtype: 7, data: b"handed".to_vec() });
    assert_eq!(curmsgs(&c, h), 0);
    assert_eq!(readiness(fd.as_fd()), (false, true));
    assert_eq!(c.mq_send_fast(h, fd.as_fd(), b"after", 2, None), Some(Ok(())));
    assert_eq!(readiness(fd.as_fd()), (true, true));
}

/// A process that dies holding a queue's lock — before its pre-image
/// counted, with it valid and the control block untouched or torn, or
/// after it moved the level but before its commit: the next caller takes
/// the lock and proceeds, the queue is as before, and the level follows
/// the queue by the daemon's next event on it.
#[test]
fn a_holder_killed_mid_change_is_rolled_back() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let _w = watchdog("a_holder_killed_mid_change_is_rolled_back", 120);
    let d = TestDaemon::start("mqfast-kill");
    let c = d.client();
    let (h, fd) = c.mq_open(b"kill", O_CREAT | O_RDWR, 0o600, Some((8, 64))).unwrap();
    for (p, text) in [(1, &b"one"[..]), (2, b"two"), (3, b"three")] {
        assert_eq!(c.mq_send_fast(h, fd.as_fd(), text, p, None), Some(Ok(())));
    }
    let mut raw = d.raw();
    raw.send(&Request::MqGrant { handle: h.0 });
    let (resp, mut fds) = raw.recv().unwrap();
    assert!(matches!(resp, Response::MqGrant { read: true, write: true, .. }), "{resp:?}");
    let page = MqQueuePage::open(fds.pop().unwrap().as_fd()).unwrap();
    let mover = uipc_sys::mqfd::open_description(fd.as_fd(), true, false).unwrap();

    for stage in 0..4 {
        die_in_child(|| {
            if let Ok((guard, _)) = page.lock(Duration::from_secs(5)) {
                page.with_body(&guard, |b| {
                    use uipc_core::sysv::msg_page::PageBytes;
                    let mut ctrl = [0u8; 88];
                    if stage == 3 {
                        // A receive's level move made, its commit not.
                        let _ = uipc_sys::mqfd::set_level(
                            mover.as_fd(),
                            uipc_sys::mqfd::Level::Some,
                            uipc_sys::mqfd::Level::Empty,
                        );
                    } else if b.read(32, &mut ctrl).is_ok() {
                        // Stage 0: died before the pre-image counted;
                        // 1: pre-image valid, control block untouched;
                        // 2: pre-image valid, control block torn.
                        let _ = b.write(128, &ctrl);
                        if stage >= 1 {
                            let _ = b.set_u64(120, 1);
                        }
                        if stage >= 2 {
                            let _ = b.write(32, &[0xee; 56]);
                        }
                    }
                });
                std::mem::forget(guard);
            }
        });
        // The daemon's next event puts the pipe where the queue is.
        assert_eq!(curmsgs(&c, h), 3, "after a death at stage {stage}");
        assert_eq!(readiness(fd.as_fd()), (true, true), "after a death at stage {stage}");
        // The next caller takes the dead holder's lock and carries on.
        assert_eq!(c.mq_send_fast(h, fd.as_fd(), b"four", 0, None), Some(Ok(())));
        assert_eq!(curmsgs(&c, h), 4);
        let mut last = None;
        for _ in 0..4 {
            last = receive(&c, h, fd.as_fd());
        }
        assert_eq!(last, Some(Ok((0, b"four".to_vec()))));
        for (p, text) in [(1, &b"one"[..]), (2, b"two"), (3, b"three")] {
            assert_eq!(c.mq_send_fast(h, fd.as_fd(), text, p, None), Some(Ok(())));
        }
    }
    for (p, want) in [(3, &b"three"[..]), (2, b"two"), (1, b"one")] {
        assert_eq!(receive(&c, h, fd.as_fd()), Some(Ok((p, want.to_vec()))));
    }
    assert_eq!(readiness(fd.as_fd()), (false, true));
    // The daemon never counted the queue damaged.
    assert_eq!(curmsgs(&c, h), 0);
}
