//! The [`Backend`] trait: something that can run IPC operations in processes.

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

    /// Performs `op` in process `pid`.
    fn call(&mut self, pid: u32, op: &Op) -> Result<Reply, String>;

    /// Writes the namespace sysctl `name` (dotted, e.g. `kernel.shmmni`) as
    /// the namespace's root. `Ok(Err(errno))` is the write's failure.
    fn sysctl_set(&mut self, name: &str, value: &str) -> Result<Result<(), i32>, String>;

    /// Reads the namespace sysctl `name`, trimmed.
    fn sysctl_get(&mut self, name: &str) -> Result<Result<String, i32>, String>;
}
