//! Whether other processes have exited, as a fast path must know before
//! it answers from shared state that their exit changes: the daemon
//! applies an exit (`exit_sem()`'s undo, `exit_shm()`'s detaches) when it
//! reads the process's pidfd, a little after `wait()` may have returned to
//! someone, while the kernel applies it before the process is a zombie. A
//! reader that finds such a process exited asks the daemon, which settles
//! exits before the requests of the same wakeup.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

/// At most this many other processes' pidfds are kept.
const MAX_PIDFDS: usize = 64;

/// Pidfds of the processes asked about, kept for the next question.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// The process the descriptors were opened in (a forked child starts
    /// afresh).
    owner: u32,
    pidfds: HashMap<u32, OwnedFd>,
}

impl Liveness {
    /// Whether process `pid` has not exited (a zombie has): `pidfd_open`
    /// once, then `poll` of the kept descriptor.
    pub(crate) fn alive(&mut self, pid: u32) -> bool {
        let me = uipc_sys::proc::cached_pid();
        if self.owner != me {
            self.owner = me;
            self.pidfds.clear();
        }
        if !self.pidfds.contains_key(&pid) {
            let Ok(fd) = uipc_sys::proc::pidfd_open(pid) else { return false };
            if self.pidfds.len() >= MAX_PIDFDS {
                self.pidfds.clear();
            }
            self.pidfds.insert(pid, fd);
        }
        let exited = self.pidfds.get(&pid).is_none_or(|fd| uipc_sys::proc::pidfd_exited(fd.as_fd()).unwrap_or(true));
        if exited {
            // A later process may take the number: look afresh next time.
            self.pidfds.remove(&pid);
        }
        !exited
    }

    /// Forgets every descriptor.
    pub(crate) fn clear(&mut self) {
        self.pidfds.clear();
    }
}
