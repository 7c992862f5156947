//! State pages: a writer SIGKILLed with the lock held and a change half
//! made leaves the lock to the next locker, who finds the change rolled
//! back; readers never see a half-made change; a read-only mapping cannot
//! lock; a scribbled header is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use uipc_abi::Errno;
use uipc_sys::state_page::{page_len, Kind, Locked, StatePage, BODY};

fn new_page() -> (std::os::fd::OwnedFd, StatePage) {
    let fd = uipc_sys::memfd::anonymous("state-page-test", 0o600).unwrap();
    let len = page_len(64, 256);
    rustix::fs::ftruncate(&fd, len).unwrap();
    let page = StatePage::create(fd.as_fd(), len, Kind::SemSet, 256).unwrap();
    (fd, page)
}

/// Forks a child that runs `f` and then waits to be killed; returns its pid
/// once `f` is done (a pipe says so).
fn child_that(f: impl FnOnce()) -> libc::pid_t {
    let mut p = [0; 2];
    // SAFETY: `p` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
    // SAFETY: the test binary's other threads are the harness's; the child
    // only runs `f` (atomics on the page) and then sleeps in pause().
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        f();
        // SAFETY: a one-byte write from a live buffer, then pause().
        unsafe {
            libc::write(p[1], b"x".as_ptr().cast(), 1);
            loop {
                libc::pause();
            }
        }
    }
    let mut b = [0u8; 1];
    // SAFETY: a one-byte read into a live buffer.
    assert_eq!(unsafe { libc::read(p[0], b.as_mut_ptr().cast(), 1) }, 1);
    // SAFETY: closing descriptors this function opened.
    unsafe {
        libc::close(p[0]);
        libc::close(p[1]);
    }
    pid
}

fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: signals and reaps this test's own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
    }
}

#[test]
fn a_writer_killed_mid_change_is_rolled_back() {
    let _w = uipc_testsupport::watchdog("state_page rollback", 30);
    let (_fd, page) = new_page();
    let v = BODY;
    page.u64_at(v).store(7, Ordering::Relaxed);
    let pid = child_that(|| {
        let (mut g, how) = page.lock(None).unwrap();
        assert_eq!(how, Locked::Clean);
        g.save(v, 8).unwrap();
        g.page().u64_at(v).store(99, Ordering::Relaxed);
        std::mem::forget(g); // dies holding the lock, change in flight
    });
    // A reader sees the change in flight and gives up rather than read it.
    assert_eq!(page.read(|p| p.u64_at(v).load(Ordering::Relaxed)), None);
    kill_and_reap(pid);
    let (g, how) = page.lock(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(how, Locked::Repaired);
    assert_eq!(g.page().u64_at(v).load(Ordering::Relaxed), 7);
    drop(g);
    assert_eq!(page.read(|p| p.u64_at(v).load(Ordering::Relaxed)), Some(7));
    // And the lock works as before.
    let (g, how) = page.lock(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(how, Locked::Clean);
    drop(g);
}

#[test]
fn a_committed_change_stays_and_a_live_holder_bounds_the_wait() {
    let _w = uipc_testsupport::watchdog("state_page commit", 30);
    let (fd, page) = new_page();
    let v = BODY + 8;
    {
        let (mut g, _) = page.lock(None).unwrap();
        g.save(v, 8).unwrap();
        g.page().u64_at(v).store(5, Ordering::Relaxed);
    }
    assert_eq!(page.read(|p| p.u64_at(v).load(Ordering::Relaxed)), Some(5));
    let other = StatePage::open(fd.as_fd(), Kind::SemSet, true).unwrap();
    let pid = child_that(|| {
        let g = other.lock(None).unwrap();
        std::mem::forget(g);
    });
    // Held by a live process: a bounded wait times out.
    assert_eq!(page.lock(Some(Duration::from_millis(50))).err(), Some(Errno::ETIMEDOUT));
    kill_and_reap(pid);
    let (_g, how) = page.lock(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(how, Locked::Repaired);
    assert_eq!(page.u64_at(v).load(Ordering::Relaxed), 5);
}

#[test]
fn read_only_mappings_cannot_lock_and_bad_headers_are_refused() {
    let (fd, _page) = new_page();
    let ro = StatePage::open(fd.as_fd(), Kind::SemSet, false).unwrap();
    assert_eq!(ro.lock(None).err(), Some(Errno::EBADF));
    assert_eq!(StatePage::open(fd.as_fd(), Kind::MsgQueue, false).err(), Some(Errno::EPROTO));
    let junk = uipc_sys::memfd::anonymous("junk", 0o600).unwrap();
    rustix::fs::ftruncate(&junk, 4096).unwrap();
    assert_eq!(StatePage::open(junk.as_fd(), Kind::SemSet, false).err(), Some(Errno::EPROTO));
}

#[test]
fn a_full_journal_refuses_before_anything_changes() {
    let (_fd, page) = new_page();
    let (mut g, _) = page.lock(None).unwrap();
    assert_eq!(g.save(BODY, 64), Ok(()));
    assert_eq!(g.save(BODY, 64), Ok(()));
    assert_eq!(g.save(BODY, 64), Ok(()));
    assert_eq!(g.save(BODY, 64), Err(Errno::ENOSPC));
    assert_eq!(g.save(0, 8), Err(Errno::EINVAL));
}
