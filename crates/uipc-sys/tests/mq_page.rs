//! A POSIX message queue's state page in real processes: a sender
//! SIGKILLed with the page's lock held and its change half written leaves
//! the lock to the next caller, who proceeds on the queue as it was before
//! that send; sends and receives from forked processes on one page lose and
//! duplicate nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::fd::AsFd;
use std::time::Duration;

use uipc_abi::Errno;
use uipc_core::cred::{CapSet, Cred, Gid, Pid, PosixIds, Uid};
use uipc_core::posix::mq_page::{mq_send_fast, MqAccess};
use uipc_core::posix::mqueue::{MqCreateAttr, O_CREAT};
use uipc_core::sysv::msg_page::PageBytes;
use uipc_core::{HeapMemory, IpcNamespace, Time};
use uipc_sys::mq_page::{MqGrant, MqQueuePage};
use uipc_sys::state_page::Locked;

const GRANT: MqGrant = MqGrant { read: true, write: true, perm_version: 0 };

fn cred() -> Cred {
    Cred {
        pid: Pid(2),
        euid: Uid(0),
        egid: Gid(0),
        groups: vec![],
        caps: CapSet(u64::MAX),
        memlock_limit: 0,
        posix: PosixIds::from_effective(Uid(0), Gid(0)),
    }
}

/// A queue of `maxmsg` messages of 64 bytes with a page, as the daemon
/// makes it.
fn queue(maxmsg: i64) -> (IpcNamespace<HeapMemory>, u64, std::os::fd::OwnedFd, MqQueuePage) {
    let mut ns = IpcNamespace::new(HeapMemory);
    let attr = Some(MqCreateAttr { maxmsg, msgsize: 64 });
    let q = ns.mq_open(&cred(), Time(1), b"q", O_CREAT | 2, 0o600, attr).unwrap().queue;
    let geo = ns.mq_page_geometry(q).unwrap().unwrap();
    let fd = uipc_sys::memfd::anonymous("mq-page-test", 0o600).unwrap();
    rustix::fs::ftruncate(&fd, MqQueuePage::len_for(geo)).unwrap();
    let page = MqQueuePage::create(fd.as_fd(), geo).unwrap();
    let (g, _) = page.lock(Duration::from_secs(5)).unwrap();
    page.with_body(&g, |b| ns.mq_page_init(q, b)).unwrap();
    drop(g);
    (ns, q, fd, page)
}

/// Writes that stop after a budget, then the writer stops for good.
struct Partial<'a, B: PageBytes + ?Sized> {
    b: &'a mut B,
    budget: usize,
}

impl<B: PageBytes + ?Sized> PageBytes for Partial<'_, B> {
    fn size(&self) -> usize {
        self.b.size()
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

fn fork_child(f: impl FnOnce()) -> libc::pid_t {
    let mut p = [0; 2];
    // SAFETY: `p` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
    // SAFETY: the child runs `f` (the page, a pipe) and pauses.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        f();
        // SAFETY: a one-byte write, then pause until killed.
        unsafe {
            libc::write(p[1], b"x".as_ptr().cast(), 1);
            loop {
                libc::pause();
            }
        }
    }
    let mut b = [0u8; 1];
    // SAFETY: a one-byte read into a live buffer; closing our descriptors.
    unsafe {
        assert_eq!(libc::read(p[0], b.as_mut_ptr().cast(), 1), 1);
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
fn a_sender_killed_holding_the_lock_mid_commit_is_rolled_back() {
    let _w = uipc_testsupport::watchdog("mq_page kill", 60);
    let access = MqAccess { read: true, write: true, nonblock: true, move_level: true };
    // Every point of death inside a send to a queue holding two messages.
    for budget in 0..12 {
        let (mut ns, q, fd, page) = queue(4);
        for m in [&b"first"[..], b"second"] {
            assert_eq!(page.send(&GRANT, true, Time(2), 1, m, None, Some(&|_| {})), Some(Ok(())));
        }
        let other = MqQueuePage::open(fd.as_fd()).unwrap();
        let pid = fork_child(|| {
            let (g, _) = other.lock(Duration::from_secs(5)).unwrap();
            other.with_body(&g, |b| {
                let _ = mq_send_fast(&mut Partial { b, budget }, access, Time(3), 5, b"urgent", None);
            });
            std::mem::forget(g); // dies holding the lock
        });
        kill_and_reap(pid);
        // The next caller proceeds: the lock is repaired, the send undone
        // unless it had committed.
        let (g, how) = page.lock(Duration::from_secs(5)).unwrap();
        assert_eq!(how, Locked::Repaired);
        page.with_body(&g, |b| ns.mq_adopt(q, b)).unwrap();
        drop(g);
        let msgs: Vec<(u32, Vec<u8>)> = ns.mq_queue(q).unwrap().messages().map(|(p, m)| (p, m.to_vec())).collect();
        let before = vec![(1, b"first".to_vec()), (1, b"second".to_vec())];
        let mut after = before.clone();
        after.insert(0, (5, b"urgent".to_vec()));
        assert!(msgs == before || msgs == after, "budget {budget}: {msgs:?}");
        let mut buf = [0u8; 64];
        let got = page.receive(&GRANT, true, Time(4), &mut buf, None, Some(&|_| {})).unwrap().unwrap();
        assert_eq!((got.0, &buf[..got.1]), (msgs[0].0, &msgs[0].1[..]));
    }
}

#[test]
fn forked_senders_and_receivers_lose_and_duplicate_nothing() {
    let _w = uipc_testsupport::watchdog("mq_page race", 120);
    let (mut ns, q, fd, page) = queue(8);
    const PER: u32 = 2000;
    let mut kids = Vec::new();
    let mut rep = [0; 2];
    // SAFETY: `rep` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe(rep.as_mut_ptr()) }, 0);
    for k in 0..3u32 {
        let fd = fd.try_clone().unwrap();
        // SAFETY: the child uses its page mapping and exits with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let p = MqQueuePage::open(fd.as_fd()).unwrap();
            let mut sent = 0;
            let mut got = 0u64;
            let mut sum = 0u64;
            let mut buf = [0u8; 64];
            while sent < PER || got < u64::from(PER) {
                if sent < PER {
                    let v = (k << 16) | sent;
                    if let Some(Ok(())) = p.send(&GRANT, true, Time(5), sent % 3, &v.to_le_bytes(), None, Some(&|_| {}))
                    {
                        sent += 1;
                    }
                }
                if let Some(Ok((_, n))) = p.receive(&GRANT, true, Time(5), &mut buf, None, Some(&|_| {})) {
                    assert_eq!(n, 4);
                    got += 1;
                    sum = sum.wrapping_add(u64::from(u32::from_le_bytes(buf[..4].try_into().unwrap())));
                }
            }
            // Count and checksum to the parent.
            let mut r = [0u8; 16];
            r[..8].copy_from_slice(&got.to_le_bytes());
            r[8..].copy_from_slice(&sum.to_le_bytes());
            // SAFETY: a 16-byte write of a live buffer (atomic on a pipe), then _exit.
            unsafe {
                libc::write(rep[1], r.as_ptr().cast(), 16);
                libc::_exit(0)
            };
        }
        kids.push(pid);
    }
    for pid in kids {
        let mut st = 0;
        // SAFETY: reaps this test's own child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, "child status {st:#x}");
    }
    let (mut got, mut sum) = (0u64, 0u64);
    for _ in 0..3 {
        let mut r = [0u8; 16];
        // SAFETY: a 16-byte read into a live buffer.
        assert_eq!(unsafe { libc::read(rep[0], r.as_mut_ptr().cast(), 16) }, 16);
        got += u64::from_le_bytes(r[..8].try_into().unwrap());
        sum = sum.wrapping_add(u64::from_le_bytes(r[8..].try_into().unwrap()));
    }
    let want: u64 = (0..3u64).flat_map(|k| (0..u64::from(PER)).map(move |i| (k << 16) | i)).sum();
    assert_eq!((got, sum), (3 * u64::from(PER), want));
    // Everything sent was received once: the queue is empty and whole.
    let (g, _) = page.lock(Duration::from_secs(5)).unwrap();
    page.with_body(&g, |b| ns.mq_adopt(q, b)).unwrap();
    drop(g);
    assert_eq!(ns.mq_queue(q).unwrap().curmsgs(), 0);
    assert_eq!(ns.mq_queue(q).unwrap().qsize(), 0);
}
