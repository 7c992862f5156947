//! The daemon's memory: memfds, or files in a state directory.

use uipc_abi::Errno;
use uipc_core::perm::FilePerm;
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

    fn file_perm(&self, region: &SharedRegion) -> Option<FilePerm> {
        region.file_perm()
    }

    fn set_file_perm(&mut self, region: &SharedRegion, perm: FilePerm) -> Result<(), Errno> {
        region.set_file_perm(perm)
    }

    fn truncate(&mut self, region: &SharedRegion, len: u64) -> Result<(), Errno> {
        region.truncate(len)
    }

    fn write_at(&mut self, region: &SharedRegion, off: u64, data: &[u8]) -> Result<(), Errno> {
        region.write_at(off, data)
    }

    fn unlinked(&mut self, region: &SharedRegion) {
        match self {
            DaemonMemory::Memfd(m) => m.unlinked(region),
            DaemonMemory::Dir(m) => m.unlinked(region),
        }
    }

    fn read(&self, region: &SharedRegion, off: u64, len: u64) -> Result<Vec<u8>, Errno> {
        region.read_at(off, len)
    }
}
