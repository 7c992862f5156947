//! Where segment memory comes from: a small trait, so the core owns no memory
//! of its own (DESIGN "Memory").

use std::sync::{Arc, Mutex};

use uipc_abi::{Errno, PAGE_SIZE};

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

    /// Pages of `region` that hold memory (were touched): `shm_rss` of
    /// `SHM_INFO` and the `rss` column of `/proc/sysvipc/shm`.
    fn resident_pages(&self, region: &Self::Region) -> u64;
}

/// In-process memory, for tests and embedders that map nothing.
#[derive(Debug, Default)]
pub struct HeapMemory;

/// A [`HeapMemory`] region.
pub type HeapRegion = Arc<Mutex<HeapPages>>;

/// The bytes of a [`HeapMemory`] region, and which pages were touched
/// (a first access to a shmem page allocates it, read or write).
#[derive(Debug)]
pub struct HeapPages {
    bytes: Vec<u8>,
    touched: Vec<bool>,
}

impl HeapPages {
    fn touch(&mut self, off: usize, len: usize) {
        let page = usize::try_from(PAGE_SIZE).unwrap_or(4096);
        let end = (off + len).div_ceil(page);
        for t in &mut self.touched[off / page..end] {
            *t = true;
        }
    }

    /// Copies `len` bytes at `off`, or `None` past the end.
    pub fn read(&mut self, off: u64, len: u64) -> Option<Vec<u8>> {
        let (off, len) = (usize::try_from(off).ok()?, usize::try_from(len).ok()?);
        let out = self.bytes.get(off..off.checked_add(len)?)?.to_vec();
        self.touch(off, len);
        Some(out)
    }

    /// Stores `data` at `off`; `None` past the end.
    pub fn write(&mut self, off: u64, data: &[u8]) -> Option<()> {
        let off = usize::try_from(off).ok()?;
        self.bytes.get_mut(off..off.checked_add(data.len())?)?.copy_from_slice(data);
        self.touch(off, data.len());
        Some(())
    }
}

impl Memory for HeapMemory {
    type Region = HeapRegion;

    fn allocate(&mut self, len: u64) -> Result<HeapRegion, Errno> {
        let len = usize::try_from(len).map_err(|_| Errno::ENOMEM)?;
        let mut bytes = Vec::new();
        // SPEC SHM-GET-5: allocation failure → ENOMEM.
        bytes.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
        bytes.resize(len, 0);
        let pages = len.div_ceil(usize::try_from(PAGE_SIZE).unwrap_or(4096));
        Ok(Arc::new(Mutex::new(HeapPages { bytes, touched: vec![false; pages] })))
    }

    fn resident_pages(&self, region: &HeapRegion) -> u64 {
        let pages = region.lock().unwrap_or_else(|e| e.into_inner());
        pages.touched.iter().filter(|t| **t).count() as u64
    }
}
