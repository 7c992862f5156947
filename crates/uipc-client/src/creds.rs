//! Credentials current at every call.
//!
//! Linux checks the caller's *current* credentials at every IPC call
//! (`ipcperms()` reads `current_euid()`, `in_group_p()`, `ns_capable()`),
//! and credentials are per thread: glibc's `setuid` family (and
//! `setgroups`) applies a change to every thread of the process (its
//! "setxid" broadcast), while a raw `syscall(SYS_setresuid, …)` or
//! `capset` changes only the calling thread's. The daemon learns a
//! connection's credentials from the kernel when it is made
//! (`SO_PEERCRED`) and, on [`Request::Recheck`](uipc_proto::Request),
//! from `/proc/PID/task/TID/status` — 12 to 20 µs a read here, too much to
//! pay at every call.
//!
//! So the process keeps a *credential generation*: whoever changes
//! credentials calls [`credentials_changed`] once the change succeeded
//! (the shim's `set*id`, `setgroups` and `capset` wrappers, its raw
//! `syscall()` wrapper); every connection remembers the generation (and,
//! once any thread changed its own credentials alone, the thread) whose
//! credentials the daemon holds for it, and sends `Recheck` with the
//! calling thread's id before its next request when that differs. Cost:
//! an atomic load per call; one extra round trip on each connection after
//! a change; and, in a process where some thread changed its credentials
//! alone, a `gettid()` per call and a `Recheck` whenever the thread using
//! a connection changes.
//!
//! The generation is the client's word: a process that runs hostile code
//! can withhold it, as it can use every descriptor and mapping it got
//! before dropping privileges (`docs/deviations.md`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Advanced by every credential change of this process.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Set once some thread changed its credentials alone: from then on a
/// connection's credentials are those of one thread.
static PER_THREAD: AtomicBool = AtomicBool::new(false);

/// How far a credential change reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredScope {
    /// Every thread of the process (glibc's `setuid` family and
    /// `setgroups`, which apply the change to all threads).
    Process,
    /// The calling thread only (`capset`, or a `set*id` system call made
    /// without glibc's wrapper).
    Thread,
}

/// Tells every connection of this process that credentials changed (call
/// it after a successful `setuid`, `setgroups`, `capset`…): the daemon
/// re-reads the calling thread's credentials before the next request on
/// each connection.
pub fn credentials_changed(scope: CredScope) {
    if scope == CredScope::Thread {
        PER_THREAD.store(true, Ordering::Release);
    }
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Whose credentials, as of which change, a connection's daemon record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CredKey {
    generation: u64,
    /// The thread, once credentials may differ between threads.
    tid: Option<u32>,
}

impl CredKey {
    /// The key of the calling thread now.
    pub(crate) fn now() -> CredKey {
        let generation = GENERATION.load(Ordering::Acquire);
        let tid = PER_THREAD.load(Ordering::Acquire).then(uipc_sys::proc::gettid);
        CredKey { generation, tid }
    }

    /// Whether a connection made now (`SO_PEERCRED` of the calling thread,
    /// the process's `CapEff`) has exactly these credentials.
    pub(crate) fn connect_suffices(self) -> bool {
        self.tid.is_none()
    }
}
