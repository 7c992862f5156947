//! The kernel backend (the oracle): see the agent binary.
use crate::backend::Backend;
use crate::op::{Identity, Op, Reply};

/// Runs operations for real in processes inside a fresh IPC namespace.
pub struct KernelBackend {}

impl KernelBackend {
    /// Starts the agent in a fresh IPC namespace.
    pub fn start() -> Result<KernelBackend, String> {
        Err("not written yet".into())
    }
}

impl Backend for KernelBackend {
    fn name(&self) -> &'static str {
        "kernel"
    }
    fn spawn(&mut self, _who: &Identity) -> Result<u32, String> {
        Err("todo".into())
    }
    fn call(&mut self, _pid: u32, _op: &Op) -> Result<Reply, String> {
        Err("todo".into())
    }
    fn sysctl_set(&mut self, _name: &str, _value: &str) -> Result<Result<(), i32>, String> {
        Err("todo".into())
    }
    fn sysctl_get(&mut self, _name: &str) -> Result<Result<String, i32>, String> {
        Err("todo".into())
    }
}
