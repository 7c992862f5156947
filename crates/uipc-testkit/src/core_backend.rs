//! The core backend.
use crate::backend::Backend;
use crate::op::{Identity, Op, Reply};

/// Runs operations on uipc-core.
pub struct CoreBackend {}

impl CoreBackend {
    /// A fresh namespace.
    pub fn new() -> CoreBackend {
        CoreBackend {}
    }
}

impl Backend for CoreBackend {
    fn name(&self) -> &'static str {
        "core"
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
