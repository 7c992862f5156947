//! State pages (`docs/architecture.md`, "The data plane") in the hands of
//! a client that misbehaves: a process killed while it holds a semaphore
//! set's page lock in the middle of a change, one that stops while holding
//! it, and one that writes garbage over a set's or a message queue's page
//! it was granted write access to. The next caller proceeds (within the daemon's lock
//! bound, under a watchdog here), the values are consistent (the dead
//! writer's change rolled back), a page that cannot be trusted makes only
//! its own set damaged (`EIDRM`, removable), and the daemon serves every
//! other object and never panics (the daemon's thread is joined, its
//! result checked, when each test ends).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use uipc_abi::{Errno, Sembuf, IPC_CREAT};
use uipc_client::{Client, SemCtlArg, SemId};
use uipc_proto::{Request, Response};
use uipc_sys::sem_page::SemPage;
use uipc_sys::state_page::{Kind, StatePage, BODY};

const ENTRY: &str = "probe_entry_page_faults";

/// The byte offset of semaphore `n`'s value in a set's page: the body's
/// per-semaphore records (`semval`, `sempid`, `semncnt`, `semzcnt`, 16
/// bytes) start 64 bytes into the body (`uipc_sys::sem_page`'s layout).
fn value_off(n: usize) -> usize {
    BODY + 64 + 16 * n
}

/// Asks for set `id`'s page over a raw connection: the grant and the
/// page's descriptor.
fn grant(raw: &mut Raw, id: i32) -> (Response, OwnedFd) {
    raw.send(&Request::SemGrant { id });
    let (resp, mut fds) = raw.recv().expect("daemon closed the connection");
    assert!(matches!(resp, Response::SemGrant { .. }), "SemGrant answered {resp:?}");
    assert_eq!(fds.len(), 1, "SemGrant must carry the page's descriptor");
    (resp, fds.pop().unwrap())
}

/// A set of `vals.len()` semaphores with those values.
fn set_with(c: &Client, vals: &[u16]) -> SemId {
    let id = c.semget(0, i32::try_from(vals.len()).unwrap(), IPC_CREAT | 0o600).unwrap();
    c.semctl(id.0, 0, uipc_abi::SETALL, SemCtlArg::Array(Some(vals.to_vec()))).unwrap();
    id
}

fn getall(c: &Client, id: SemId, n: usize) -> Vec<i32> {
    (0..n).map(|k| c.sem_getval(id, i32::try_from(k).unwrap()).unwrap()).collect()
}

/// `{num, op, IPC_NOWAIT}`: a test's semop never sleeps.
fn op(num: u16, op: i16) -> Sembuf {
    Sembuf { sem_num: num, sem_op: op, sem_flg: i16::try_from(uipc_abi::IPC_NOWAIT).unwrap() }
}

/// Probe entry point, not a test on its own: does its work only when a
/// test of this file re-executes the binary with `UIPC_PROBE` set. Takes
/// the lock of set `ID`'s page, begins a change (value 0 saved in the
/// journal, then overwritten with 30000), says `locked`, and waits to be
/// killed or stopped.
#[test]
fn probe_entry_page_faults() {
    if probe_socket("truncate").is_some() {
        let _w = watchdog("probe truncate", 60);
        truncate_own_daemons_page();
        return;
    }
    let Some(socket) = probe_socket("lock_holder") else { return };
    let _w = watchdog("probe lock_holder", 60);
    let id = i32::try_from(probe_arg("ID")).unwrap();
    let mut raw = Raw::connect(&socket);
    raw.hello("default");
    let (resp, fd) = grant(&mut raw, id);
    assert!(matches!(resp, Response::SemGrant { alter: true, .. }), "root's grant: {resp:?}");
    let page = SemPage::open(fd.as_fd(), true).unwrap();
    let (mut guard, _) = page.lock(Duration::from_secs(10)).unwrap();
    guard.save(value_off(0), 8).unwrap();
    // As a holder writes a value: in the data bits of the word it holds
    // (`state_page`'s fast words), the hold bit kept.
    let word = guard.page().u32_at(value_off(0));
    word.store((word.load(Ordering::Relaxed) & !0xffff) | 30000, Ordering::Relaxed);
    let mut out = std::io::stdout();
    writeln!(out, "locked").unwrap();
    out.flush().unwrap();
    loop {
        std::thread::park();
    }
}

/// Starts the lock holder on set `id`; returns when it holds the lock
/// mid-change.
fn start_holder(d: &TestDaemon, id: SemId) -> Reaper {
    let mut cmd = probe_command(ENTRY, "lock_holder", &d.socket);
    cmd.env("UIPC_ARG_ID", id.0.to_string()).stdin(Stdio::null()).stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    wait_for_line(&mut out, "locked");
    Reaper(Some(child))
}

/// A process SIGKILLed while it holds a set's page lock in the middle of
/// a change: the next semop proceeds, and the dead process's change never
/// shows — whether the next locker is the daemon (a client without a
/// grant yet) or a client on its fast path (granted before the kill),
/// and whether that next semop is an array (which takes the lock) or a
/// single operation (which would swap without it, and finds the dead
/// holder's hold on the value).
#[test]
fn a_lock_holder_killed_mid_change_is_rolled_back() {
    let _w = watchdog("a_lock_holder_killed_mid_change_is_rolled_back", 60);
    let d = TestDaemon::start("semlockkill");
    for (granted_before, single_first) in [(false, false), (true, false), (false, true), (true, true)] {
        let c = d.client();
        let id = set_with(&c, &[5, 7]);
        if granted_before {
            c.semop(id, &[op(0, -1), op(0, 1)]).unwrap();
        }
        let mut holder = start_holder(&d, id);
        let mut child = holder.0.take().unwrap();
        child.kill().unwrap();
        let st = child.wait().unwrap();
        assert!(!st.success(), "the holder was killed: {st:?}");
        if single_first {
            c.semop(id, &[op(0, -1)]).unwrap();
            assert_eq!(getall(&c, id, 2), [4, 7], "granted before: {granted_before}: after a single operation");
            c.semop(id, &[op(1, 1)]).unwrap();
        } else {
            c.semop(id, &[op(0, -1), op(1, 1)]).unwrap();
        }
        assert_eq!(getall(&c, id, 2), [4, 8], "granted before: {granted_before}: the dead holder's 30000 rolled back");
        // Another client (through the daemon) sees the same.
        assert_eq!(getall(&d.client(), id, 2), [4, 8]);
        // And again: the lock is consistent and free.
        c.semop(id, &[op(0, 1)]).unwrap();
        assert_eq!(getall(&c, id, 2), [5, 8]);
        c.sem_remove(id).unwrap();
    }
}

/// A process that stops while it holds a set's page lock: after the
/// daemon's bound the set is damaged (`EIDRM` for its calls, removable),
/// and every other set is served before and after.
#[test]
fn a_stuck_lock_holder_damages_only_its_set() {
    let _w = watchdog("a_stuck_lock_holder_damages_only_its_set", 60);
    let d = TestDaemon::start("semlockstuck");
    let c = d.client();
    let stuck = set_with(&c, &[5]);
    let other = set_with(&c, &[3]);
    let _holder = start_holder(&d, stuck);
    c.semop(other, &[op(0, -1)]).unwrap();
    assert_eq!(c.semop(stuck, &[op(0, -1)]), Err(Errno::EIDRM), "a set whose lock stays held");
    assert_eq!(c.sem_getval(stuck, 0), Err(Errno::EIDRM));
    c.semop(other, &[op(0, -1)]).unwrap();
    assert_eq!(c.sem_getval(other, 0), Ok(1));
    c.sem_remove(stuck).unwrap();
    assert_eq!(c.sem_getval(stuck, 0), Err(Errno::EINVAL), "removed");
    let fresh = set_with(&c, &[2]);
    c.semop(fresh, &[op(0, -2)]).unwrap();
    assert_eq!(c.sem_getval(fresh, 0), Ok(0));
    for id in [other, fresh] {
        c.sem_remove(id).unwrap();
    }
}

/// A small deterministic generator of garbage.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }
}

/// Ways to scribble over a page: `(what, first byte, end, under the
/// page's lock)`. Under the lock, the scribbler's unlock commits its
/// garbage (no in-flight record is left to roll back).
fn scribbles(page_len: usize) -> Vec<(&'static str, usize, usize, bool)> {
    vec![
        ("a value out of range", value_off(0), value_off(0) + 4, false),
        ("a value out of range, under the lock", value_off(1), value_off(1) + 4, true),
        ("the body", BODY, page_len, false),
        ("the body, under the lock", BODY, page_len, true),
        ("the header and the body", 0, page_len, false),
        ("the header and the body, again", 0, page_len, false),
        ("the header and the body, once more", 0, page_len, false),
    ]
}

/// A client granted write access writes garbage over its set's page (a
/// value out of range; the whole body; the header too; with and without
/// the page's lock): that set answers `EIDRM` and can be removed; every
/// other set keeps its values and is served; new sets work; the daemon
/// never panics.
#[test]
fn garbage_over_a_writable_page_damages_only_that_set() {
    let _w = watchdog("garbage_over_a_writable_page_damages_only_that_set", 120);
    let d = TestDaemon::start("semscribble");
    let c = d.client();
    let bystander = set_with(&c, &[4, 5, 6]);
    let mut raw = d.raw();
    // UIPC_TEST_SEED=N tries other garbage.
    let mut rng = Garbage(std::env::var("UIPC_TEST_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed));
    for (what, from, to, locked) in scribbles(usize::try_from(SemPage::len_for(3)).unwrap()) {
        let victim = set_with(&c, &[1, 2, 3]);
        let (_, fd) = grant(&mut raw, victim.0);
        let page = SemPage::open(fd.as_fd(), true).unwrap();
        let raw_page = StatePage::open(fd.as_fd(), Kind::SemSet, true).unwrap();
        let guard = locked.then(|| page.lock(Duration::from_secs(10)).unwrap().0);
        for at in (from..to).step_by(4) {
            let v = if from == to - 4 { 40_000 } else { rng.next() };
            raw_page.u32_at(at).store(v, Ordering::Relaxed);
        }
        drop(guard);
        assert_eq!(c.semop(victim, &[op(0, 0)]), Err(Errno::EIDRM), "{what}: a damaged set's semop");
        assert_eq!(c.sem_getval(victim, 0), Err(Errno::EIDRM), "{what}: GETVAL");
        assert_eq!(getall(&c, bystander, 3), [4, 5, 6], "{what}: the bystander's values");
        c.semop(bystander, &[op(1, -1), op(1, 1)]).unwrap();
        c.sem_remove(victim).unwrap();
        assert_eq!(c.sem_getval(victim, 0), Err(Errno::EINVAL), "{what}: removed");
    }
    let fresh = set_with(&c, &[1]);
    c.semop(fresh, &[op(0, -1)]).unwrap();
    let seg = c.shmget(0, 4096, IPC_CREAT | 0o600).unwrap();
    c.shm_remove(seg).unwrap();
    for id in [bystander, fresh] {
        c.sem_remove(id).unwrap();
    }
}

/// In a probe (whose embedded daemon may die of it without taking the
/// test binary along): a client granted write access truncates the page's
/// file. Either the file refuses (sealed), or the set is damaged; the
/// daemon must not touch memory that is gone (`SIGBUS`).
fn truncate_own_daemons_page() {
    let d = TestDaemon::start("semtruncate");
    let c = d.client();
    let bystander = set_with(&c, &[4]);
    let victim = set_with(&c, &[1, 2, 3]);
    let mut raw = d.raw();
    let (_, fd) = grant(&mut raw, victim.0);
    match rustix::fs::ftruncate(&fd, 0) {
        Ok(()) => {
            assert_eq!(c.semop(victim, &[op(0, 0)]), Err(Errno::EIDRM), "a truncated page's set");
            c.sem_remove(victim).unwrap();
        }
        Err(e) => {
            assert_eq!(e, rustix::io::Errno::PERM, "ftruncate of a sealed page");
            assert_eq!(getall(&c, victim, 3), [1, 2, 3]);
            c.sem_remove(victim).unwrap();
        }
    }
    assert_eq!(c.sem_getval(bystander, 0), Ok(4));
    c.sem_remove(bystander).unwrap();
}

/// A client granted write access truncates the page's file: the daemon
/// survives (the probe that embeds it exits normally) and serves on.
#[test]
fn truncating_a_writable_page_does_not_kill_the_daemon() {
    let _w = watchdog("truncating_a_writable_page_does_not_kill_the_daemon", 60);
    let dir = TempDir::new("semtruncate-probe");
    let out = probe_command(ENTRY, "truncate", &dir.0.join("unused.sock")).stdin(Stdio::null()).output().unwrap();
    check_output(&out);
}

/// A client granted write access to a message queue's page writes garbage
/// over it (the body; the header too): that queue answers `EIDRM` and can
/// be removed; another queue keeps its message and is served; the daemon
/// never panics.
#[test]
fn garbage_over_a_writable_queue_page_damages_only_that_queue() {
    let _w = watchdog("garbage_over_a_writable_queue_page_damages_only_that_queue", 120);
    let d = TestDaemon::start("msgscribble");
    let c = d.client();
    let nowait = uipc_abi::IPC_NOWAIT;
    let bystander = c.msgget(0, IPC_CREAT | 0o600).unwrap();
    c.msgsnd(bystander, 5, b"kept", 0).unwrap();
    let mut raw = d.raw();
    let mut rng = Garbage(0x5eed);
    for (what, from_header) in
        [("the body", false), ("the header and the body", true), ("the header and the body, again", true)]
    {
        let victim = c.msgget(0, IPC_CREAT | 0o600).unwrap();
        c.msgsnd(victim, 1, b"queued", 0).unwrap();
        raw.send(&Request::MsgGrant { id: victim.0 });
        let (resp, mut fds) = raw.recv().expect("daemon closed the connection");
        assert!(matches!(resp, Response::MsgGrant { .. }), "MsgGrant answered {resp:?}");
        let fd = fds.pop().expect("MsgGrant carries the page's descriptor");
        let len = usize::try_from(rustix::fs::fstat(&fd).unwrap().st_size).unwrap();
        let page = StatePage::open(fd.as_fd(), Kind::MsgQueue, true).unwrap();
        for at in (if from_header { 0 } else { BODY }..len).step_by(4) {
            page.u32_at(at).store(rng.next(), Ordering::Relaxed);
        }
        assert_eq!(c.msgsnd(victim, 1, b"more", nowait), Err(Errno::EIDRM), "{what}: a damaged queue's msgsnd");
        assert_eq!(c.msgrcv(victim, 64, 0, nowait).map(|m| m.data), Err(Errno::EIDRM), "{what}: msgrcv");
        assert_eq!(c.msg_stat(victim).map(|ds| ds.msg_qnum), Err(Errno::EIDRM), "{what}: IPC_STAT");
        let m = c.msgrcv(bystander, 64, 5, nowait).unwrap();
        assert_eq!(m.data, b"kept", "{what}: the bystander's message");
        c.msgsnd(bystander, 5, b"kept", 0).unwrap();
        c.msg_remove(victim).unwrap();
        assert_eq!(c.msg_stat(victim).map(|ds| ds.msg_qnum), Err(Errno::EINVAL), "{what}: removed");
    }
    let fresh = c.msgget(0, IPC_CREAT | 0o600).unwrap();
    c.msgsnd(fresh, 1, b"new", nowait).unwrap();
    assert_eq!(c.msgrcv(fresh, 64, 0, nowait).unwrap().data, b"new");
    for id in [bystander, fresh] {
        c.msg_remove(id).unwrap();
    }
}
