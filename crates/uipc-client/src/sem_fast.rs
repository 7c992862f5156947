//! Semaphores without a round trip (`docs/architecture.md`, "The data
//! plane"): a set's state page, granted once by the daemon, lets this
//! process run `semop`s that complete or fail at once, and answer
//! `GETVAL`, `GETALL`, `GETPID`, `GETNCNT`, `GETZCNT` (and, for `sem_query`, `IPC_STAT`), in
//! its own address space.
//!
//! A grant is used only while it is current: same process (not a forked
//! child), same connection generation (namespace), same credentials (the
//! [`CredKey`]), and the page's permission version unchanged. Anything
//! else — no grant, a stale one, an operation that would sleep, sleepers
//! parked on the set, a removed or damaged set — goes to the daemon, which
//! decides as before (and grants anew where it may).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use uipc_abi::{Errno, Sembuf, GETALL, GETNCNT, GETPID, GETVAL, GETZCNT};
use uipc_core::cred::Pid;
use uipc_core::sysv::sem::Timeout;
use uipc_core::time::Time;
use uipc_proto::{Request, Response, SemOut};
use uipc_sys::sem_page::{SemFast, SemField, SemGrant, SemPage, UNDO_SLOTS};
use uipc_sys::state_page::REMOVED;

use crate::creds::CredKey;
use crate::grants::{Grant, Grants, SPIN};
use crate::liveness::Liveness;
use crate::Client;

/// After this many calls sent to the daemon, a set whose grant was
/// refused is asked for again (its permissions may have changed).
pub(crate) const RETRY_REFUSED: u32 = 64;

/// Whose grant it is (of a set's page, or a queue's: `msg_fast`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) pid: u32,
    generation: u64,
    cred: CredKey,
}

#[derive(Debug)]
struct Held {
    page: SemPage,
    grant: SemGrant,
    key: Key,
}

impl Grant for Held {
    /// The holder's key, the permission version the grant was given at,
    /// and the set not removed.
    fn current(&self, holder: Key) -> bool {
        self.key == holder && self.page.perm_version() == self.grant.perm_version && self.page.flags() & REMOVED == 0
    }
}

/// The grants of a client, by set.
#[derive(Debug, Default)]
pub(crate) struct SemGrants {
    sets: Grants<i32, Held>,
    /// Pidfds of other processes holding undo adjustments on granted sets.
    live: Mutex<Liveness>,
}

impl Client {
    pub(crate) fn grant_key(&self) -> Key {
        Key {
            pid: uipc_sys::proc::cached_pid(),
            generation: self.generation.load(Ordering::Acquire),
            cred: CredKey::now(),
        }
    }

    /// Runs `f` with the current grant of set `id`, asking the daemon
    /// for one if there is none (or a stale one); `None` if the daemon
    /// must serve the call.
    fn with_sem_held<T>(&self, id: i32, f: impl FnOnce(&Held) -> Option<T>) -> Option<T> {
        let key = self.grant_key();
        self.sem.sets.with(id, key, || self.ask_grant(id, key), f)
    }

    /// `IPC_STAT` of set `id` from its page (`sem_query`'s live entries),
    /// under this process's current grant of it — asked for if it has none
    /// or a stale one, as `GETVAL` does; `None` if the daemon must answer.
    pub(crate) fn sem_page_stat(&self, id: i32) -> Option<uipc_abi::Semid64Ds> {
        self.with_sem_held(id, |held| self.stat_held(held))
    }

    fn stat_held(&self, held: &Held) -> Option<uipc_abi::Semid64Ds> {
        held.page.unchanged(|| {
            // Any undo record's exit sets sem_otime (exit_sem()), whatever
            // its adjustments.
            let mut pids = [0; UNDO_SLOTS];
            let n = held.page.record_holders(held.key.pid, &mut pids)?;
            if n > 0 {
                let mut live = self.sem.live.lock().unwrap_or_else(|e| e.into_inner());
                if !pids[..n].iter().all(|&pid| live.alive(pid)) {
                    return None;
                }
            }
            held.page.stat(&held.grant)
        })
    }

    fn ask_grant(&self, id: i32, key: Key) -> Option<Arc<Held>> {
        let (resp, fd) = self.call_with_fd(&Request::SemGrant { id }).ok()?;
        let Response::SemGrant { alter, read, perm_version, slot } = resp else { return None };
        let page = SemPage::open(std::os::fd::AsFd::as_fd(&fd?), alter).ok()?;
        let slot = slot.and_then(|s| usize::try_from(s).ok());
        Some(Arc::new(Held { page, grant: SemGrant { alter, read, perm_version, slot }, key }))
    }

    /// Whether every other process whose exit would change set `held`'s
    /// values (an undo slot with an adjustment) is still alive; if one has
    /// exited, the daemon answers, having applied its undo first (a
    /// process reaped by `wait()` has had its undo applied, in the kernel).
    fn undo_holders_alive(&self, held: &Held) -> bool {
        let mut pids = [0; UNDO_SLOTS];
        let Some(n) = held.page.undo_holders(held.key.pid, held.grant.slot, &mut pids) else { return false };
        if n == 0 {
            return true;
        }
        let mut live = self.sem.live.lock().unwrap_or_else(|e| e.into_inner());
        pids[..n].iter().all(|&pid| live.alive(pid))
    }

    /// `semtimedop(id, sops, timeout)` in this process, if it can be
    /// decided here: `None` sends the call to the daemon.
    ///
    /// An operation that would sleep first watches the page for
    /// [`SPIN`] (yielding the CPU), retrying whenever it changes: a
    /// partner on another CPU usually posts within microseconds, which
    /// then costs no round trip and no sleep. This is still before the
    /// call would sleep, so a signal in that time runs its handler and the
    /// call goes on, as a signal just before a blocking `semop` does.
    ///
    /// The result is `semop`'s 0 as `()`: eight bytes, returned in a
    /// register through every layer (a wider one was copied through the
    /// stack at each, and its reloads stalled).
    pub fn semop_fast(&self, id: i32, sops: &[Sembuf], timeout: Option<(i64, i64)>) -> Option<Result<(), Errno>> {
        self.with_sem_held(id, |held| self.semop_held(held, id, sops, timeout))
    }

    fn semop_held(
        &self,
        held: &Held,
        id: i32,
        sops: &[Sembuf],
        timeout: Option<(i64, i64)>,
    ) -> Option<Result<(), Errno>> {
        if !self.undo_holders_alive(held) {
            return None;
        }
        let timeout = timeout.map(|(sec, nsec)| Timeout { sec, nsec });
        let now = || Time(uipc_sys::proc::now_seconds());
        let mut deadline = None;
        loop {
            let seen = held.page.watch_mark(sops);
            match held.page.semop(&held.grant, id, sops, timeout, Pid(held.key.pid), now) {
                SemFast::Done(r) => return Some(r),
                SemFast::Daemon => return None,
                SemFast::Sleep => {}
            }
            let until = *deadline.get_or_insert_with(|| Instant::now() + SPIN);
            if Instant::now() >= until {
                return None;
            }
            while held.page.watch_mark(sops) == seen {
                if Instant::now() >= until {
                    return None;
                }
                std::thread::yield_now();
            }
        }
    }

    /// `semctl(id, semnum, cmd)` for the queries a page answers (`GETVAL`,
    /// `GETPID`, `GETNCNT`, `GETZCNT`, `GETALL`), if it can be
    /// answered here: `None` sends the call to the daemon.
    pub fn semctl_fast(&self, id: i32, semnum: i32, cmd: i32) -> Option<Result<(i64, SemOut), Errno>> {
        if cmd == GETALL {
            return self.read_held(id, |held| held.page.get_all(&held.grant).map(|v| Ok((0, SemOut::Values(v)))));
        }
        self.sem_value_fast(id, semnum, cmd).map(|r| r.map(|v| (v, SemOut::None)))
    }

    /// `semctl(id, semnum, cmd)` for the queries of one value a page
    /// answers (`GETVAL`, `GETPID`, `GETNCNT`, `GETZCNT`), if it can be
    /// answered here: `None` for any other command, or to send the call to
    /// the daemon.
    pub fn sem_value_fast(&self, id: i32, semnum: i32, cmd: i32) -> Option<Result<i64, Errno>> {
        let field = match cmd {
            GETVAL => SemField::Val,
            GETPID => SemField::Pid,
            GETNCNT => SemField::Ncnt,
            GETZCNT => SemField::Zcnt,
            // IPC_STAT: `sem_query` (the status region, or this page).
            _ => return None,
        };
        self.read_held(id, |held| held.page.get(&held.grant, semnum, field))
    }

    /// `read` of set `id`'s page under this process's current grant, if no
    /// other undo holder has exited and no change began or ended meanwhile;
    /// `None` for the daemon.
    fn read_held<T>(&self, id: i32, read: impl FnOnce(&Held) -> Option<T>) -> Option<T> {
        if id < 0 {
            return None;
        }
        self.with_sem_held(id, |held| held.page.unchanged(|| self.undo_holders_alive(held).then(|| read(held))?))
    }
}
