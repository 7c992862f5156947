//! Where segment memory comes from: a small trait, so the core owns no memory
//! of its own (DESIGN "Memory").

use uipc_abi::Errno;

/// A source of zero-filled memory regions for segments.
///
/// The daemon backs regions with memfds or files in its state directory
/// (`uipc_sys::memfd`); tests and embedders may use [`HeapMemory`].
pub trait Memory {
    /// One region. The core keeps one clone per segment and hands clones to
    /// whoever maps it; the memory is freed when the last clone is dropped.
    type Region: Clone;

    /// Allocates `len` bytes (a whole number of pages), zero-filled.
    ///
    /// # Errors
    /// `ENOMEM` (or `ENFILE`) when the memory cannot be had: SPEC SHM-GET-5.
    fn allocate(&mut self, len: u64) -> Result<Self::Region, Errno>;
}

/// In-process memory: each region is a shared, locked byte vector.
#[derive(Debug, Default)]
pub struct HeapMemory;

/// A [`HeapMemory`] region.
pub type HeapRegion = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

impl Memory for HeapMemory {
    type Region = HeapRegion;

    fn allocate(&mut self, len: u64) -> Result<HeapRegion, Errno> {
        let len = usize::try_from(len).map_err(|_| Errno::ENOMEM)?;
        let mut v = Vec::new();
        // SPEC SHM-GET-5: allocation failure → ENOMEM.
        v.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
        v.resize(len, 0);
        Ok(std::sync::Arc::new(std::sync::Mutex::new(v)))
    }
}
