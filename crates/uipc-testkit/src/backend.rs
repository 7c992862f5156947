//! The [`Backend`] trait: something that can run IPC operations in processes.

pub use crate::op::Started;
use crate::op::{Identity, Op, Reply};

/// An implementation under test (or the kernel, the oracle).
///
/// Errors of type `String` are harness failures (a lost agent, a broken
/// pipe), never IPC errors: those travel in [`Reply::ret`].
pub trait Backend {
    /// Short name used in reports and in `known-deviations.toml`: `kernel`, `core`.
    fn name(&self) -> &'static str;

    /// Starts a new process with identity `who` in the test's namespace and
    /// returns its pid.
    fn spawn(&mut self, who: &Identity) -> Result<u32, String>;

    /// Performs `op` in process `pid`. An operation that sleeps (a `semop`
    /// nobody completes) must not hang: it is a harness failure once a
    /// watchdog expires (use [`Backend::start`] for calls meant to sleep).
    fn call(&mut self, pid: u32, op: &Op) -> Result<Reply, String>;

    /// Starts `op` in process `pid` and returns once it has completed
    /// ([`Started::Done`]) or the process is known to be asleep inside the
    /// call ([`Started::Blocked`]); then [`Backend::finish`] collects its
    /// reply. One call in flight per process; meanwhile only
    /// [`Op::Signal`] and [`Op::Kill`] may be performed in it.
    fn start(&mut self, pid: u32, op: &Op) -> Result<Started, String> {
        let _ = (pid, op);
        Err(format!("start: unsupported by the {} backend", self.name()))
    }

    /// The reply of `pid`'s call that [`Backend::start`] left
    /// [`Started::Blocked`]; it must have been woken, timed out or
    /// interrupted by now (or very soon: a watchdog makes a call that
    /// stays asleep a harness failure).
    fn finish(&mut self, pid: u32) -> Result<Reply, String> {
        let _ = pid;
        Err(format!("finish: unsupported by the {} backend", self.name()))
    }

    /// Writes the namespace sysctl `name` (dotted, e.g. `kernel.shmmni`) as
    /// the namespace's root. `Ok(Err(errno))` is the write's failure.
    fn sysctl_set(&mut self, name: &str, value: &str) -> Result<Result<(), i32>, String>;

    /// Reads the namespace sysctl `name`, trimmed.
    fn sysctl_get(&mut self, name: &str) -> Result<Result<String, i32>, String>;
}
