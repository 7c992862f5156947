//! Where segment memory comes from: a small trait, so the core owns no memory
//! of its own (DESIGN "Memory").

use std::sync::{Arc, Mutex};

use uipc_abi::{Errno, PAGE_SIZE};

use crate::perm::FilePerm;

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

    /// POSIX shared memory: the owner, group and mode the region's file
    /// carries now, if the provider keeps them with the memory (a memfd
    /// `fchmod`ed or `fchown`ed through any descriptor shows it here). `None`:
    /// the core's own record is the identity.
    fn file_perm(&self, _region: &Self::Region) -> Option<FilePerm> {
        None
    }

    /// POSIX shared memory: gives the region's file the identity of a new
    /// object, so the kernel reports and checks it on every descriptor
    /// (`fstat`, `fchmod`, `fchown`).
    ///
    /// # Errors
    /// The provider cannot (no such notion, or no `CAP_CHOWN`): the core
    /// then keeps the identity itself.
    fn set_file_perm(&mut self, _region: &Self::Region, _perm: FilePerm) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    /// POSIX shared memory: sets the region's size (`ftruncate`): growth
    /// reads zeros, shrinking drops the tail (SPEC PSHM-SIZE-2).
    ///
    /// # Errors
    /// As `ftruncate(2)`.
    fn truncate(&mut self, region: &Self::Region, len: u64) -> Result<(), Errno>;

    /// POSIX shared memory: stores `data` at `off`, growing the region if
    /// needed (`pwrite`): how a named semaphore's `sem_t` is written.
    ///
    /// # Errors
    /// As `pwrite(2)`.
    fn write_at(&mut self, region: &Self::Region, off: u64, data: &[u8]) -> Result<(), Errno>;

    /// POSIX shared memory: the region's object lost its name
    /// (`shm_unlink`); a provider with named files removes the file, so
    /// `fstat` shows `st_nlink` 0.
    fn unlinked(&mut self, _region: &Self::Region) {}

    /// Reads `len` bytes of `region` at byte `off` (message queues keep
    /// their messages' text in regions, `sysv::msg`, and write it with
    /// [`write_at`](Self::write_at)).
    ///
    /// # Errors
    /// `EFAULT` past the region's end; the provider's I/O error otherwise.
    fn read(&self, region: &Self::Region, off: u64, len: u64) -> Result<Vec<u8>, Errno>;
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
    /// The identity a POSIX shm object's file carries.
    owner: Option<FilePerm>,
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

    /// The length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The identity (POSIX shm), as `fstat` would show it.
    pub fn owner(&self) -> Option<FilePerm> {
        self.owner
    }

    /// Changes the identity, as `fchmod`/`fchown` on a descriptor would.
    pub fn set_owner(&mut self, owner: FilePerm) {
        self.owner = Some(owner);
    }

    /// Resizes to `len` bytes: new bytes are zero, dropped ones are gone
    /// (a shrink then grow reads zeros, PSHM-SIZE-2).
    pub fn resize(&mut self, len: u64) -> Option<()> {
        let len = usize::try_from(len).ok()?;
        self.bytes.try_reserve(len.saturating_sub(self.bytes.len())).ok()?;
        self.bytes.resize(len, 0);
        let pages = len.div_ceil(usize::try_from(PAGE_SIZE).unwrap_or(4096));
        self.touched.resize(pages, false);
        Some(())
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
        Ok(Arc::new(Mutex::new(HeapPages { bytes, touched: vec![false; pages], owner: None })))
    }

    fn resident_pages(&self, region: &HeapRegion) -> u64 {
        let pages = region.lock().unwrap_or_else(|e| e.into_inner());
        pages.touched.iter().filter(|t| **t).count() as u64
    }

    fn file_perm(&self, region: &HeapRegion) -> Option<FilePerm> {
        region.lock().unwrap_or_else(|e| e.into_inner()).owner
    }

    fn set_file_perm(&mut self, region: &HeapRegion, perm: FilePerm) -> Result<(), Errno> {
        region.lock().unwrap_or_else(|e| e.into_inner()).set_owner(perm);
        Ok(())
    }

    fn truncate(&mut self, region: &HeapRegion, len: u64) -> Result<(), Errno> {
        // ftruncate(2): EFBIG for a length the file cannot have.
        region.lock().unwrap_or_else(|e| e.into_inner()).resize(len).ok_or(Errno::EFBIG)
    }

    fn write_at(&mut self, region: &HeapRegion, off: u64, data: &[u8]) -> Result<(), Errno> {
        let mut pages = region.lock().unwrap_or_else(|e| e.into_inner());
        let end = off.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        if end > pages.len() {
            pages.resize(end).ok_or(Errno::EFBIG)?;
        }
        pages.write(off, data).ok_or(Errno::EFBIG)
    }

    fn read(&self, region: &HeapRegion, off: u64, len: u64) -> Result<Vec<u8>, Errno> {
        region.lock().unwrap_or_else(|e| e.into_inner()).read(off, len).ok_or(Errno::EFAULT)
    }
}
