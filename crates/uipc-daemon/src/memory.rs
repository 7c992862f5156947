//! The daemon's memory: memfds, or files in a state directory.

use uipc_abi::Errno;
use uipc_core::Memory;
use uipc_sys::memfd::{DirMemory, MemfdMemory, SharedRegion};

/// Segment memory for one namespace.
#[derive(Debug)]
pub enum DaemonMemory {
    /// Anonymous memfds.
    Memfd(MemfdMemory),
    /// Files in a (tmpfs) directory, which outlive the daemon.
    Dir(DirMemory),
}

impl Memory for DaemonMemory {
    type Region = SharedRegion;

    fn allocate(&mut self, len: u64) -> Result<SharedRegion, Errno> {
        match self {
            DaemonMemory::Memfd(m) => m.allocate(len),
            DaemonMemory::Dir(m) => m.allocate(len),
        }
    }

    fn resident_pages(&self, region: &SharedRegion) -> u64 {
        region.resident_pages()
    }
}
