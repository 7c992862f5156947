//! Copies from and to the caller's buffers, `EFAULT` where the kernel
//! gives it, without a system call per copy in the common case.
//!
//! A checked copy (`process_vm_readv`/`process_vm_writev` on this process,
//! `uipc_sys::map::{read_at, write_at}`) costs a system call — more than a
//! whole message-queue operation on a state page. So each thread remembers
//! the pages of the last range a checked copy read, and of the last one it
//! wrote, with the *mapping generation* of the time: every `munmap`,
//! `mprotect` and `shmdt` this library sees advances the generation. A copy
//! inside a remembered range at the same generation is done directly (the
//! pages were readable, or writable, and nothing that this process asked
//! for has changed its mappings since); any other goes through the checked
//! copy, which remembers its range when it succeeds.
//!
//! # Known missing features
//! Mapping changes this library does not see — `mmap(MAP_FIXED)` or
//! `mremap` over a buffer, raw `syscall(SYS_munmap, …)`, the C library's
//! internal unmaps of freed memory, or another thread unmapping the buffer
//! during the call — leave a remembered range stale: a buffer made
//! inaccessible that way and then passed again faults (`SIGSEGV`) where
//! the kernel would give `EFAULT` (docs/deviations.md).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use uipc_abi::{Errno, PAGE_SIZE};

/// Advanced by every mapping change this library sees.
static GENERATION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Pages `[start, end)` a checked read covered, and the generation then.
    static READABLE: Cell<(u64, u64, u64)> = const { Cell::new((0, 0, 0)) };
    /// The same for a checked write.
    static WRITABLE: Cell<(u64, u64, u64)> = const { Cell::new((0, 0, 0)) };
}

/// Some mapping of this process changed (`munmap`, `mprotect`, `shmdt`):
/// every remembered range is stale.
pub(crate) fn mappings_changed() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

fn pages(addr: u64, len: usize) -> Option<(u64, u64)> {
    let end = addr.checked_add(u64::try_from(len).ok()?)?;
    Some((addr & !(PAGE_SIZE - 1), end.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1)))
}

fn known(cache: &'static std::thread::LocalKey<Cell<(u64, u64, u64)>>, addr: u64, len: usize) -> bool {
    let (start, end, generation) = cache.get();
    generation == GENERATION.load(Ordering::Acquire)
        && addr >= start
        && addr.checked_add(len as u64).is_some_and(|e| e <= end)
}

fn remember(cache: &'static std::thread::LocalKey<Cell<(u64, u64, u64)>>, addr: u64, len: usize, generation: u64) {
    if let Some((start, end)) = pages(addr, len) {
        cache.set((start, end, generation));
    }
}

/// The caller's bytes `[addr, addr + len)` in place, if a checked read
/// covered their pages at the current mapping generation.
///
/// # Safety
/// The slice aliases the calling program's memory: use it only within the
/// current call (the program may change the bytes concurrently, as it may
/// while the kernel copies them).
pub(crate) unsafe fn readable<'a>(addr: u64, len: usize) -> Option<&'a [u8]> {
    if len == 0 || !known(&READABLE, addr, len) {
        return None;
    }
    let from = std::ptr::with_exposed_provenance::<u8>(usize::try_from(addr).ok()?);
    // SAFETY: readable pages (as in `read`), `len` bytes; the caller's contract.
    Some(unsafe { std::slice::from_raw_parts(from, len) })
}

/// The caller's bytes `[addr, addr + len)` in place, writable, if a
/// checked write covered their pages at the current mapping generation.
///
/// # Safety
/// As [`readable`]; and nothing Rust code uses lies in the range.
pub(crate) unsafe fn writable<'a>(addr: u64, len: usize) -> Option<&'a mut [u8]> {
    if len == 0 || !known(&WRITABLE, addr, len) {
        return None;
    }
    let to = std::ptr::with_exposed_provenance_mut::<u8>(usize::try_from(addr).ok()?);
    // SAFETY: writable pages (as in `write_parts`), `len` bytes; the caller's contract.
    Some(unsafe { std::slice::from_raw_parts_mut(to, len) })
}

/// Reads `len` bytes at `addr` of this process: `EFAULT` where a load
/// would fault (as `copy_from_user`).
///
/// # Errors
/// `EFAULT`; the checked copy's other errors.
pub(crate) fn read(addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
    if len > 0 && known(&READABLE, addr, len) {
        let from = std::ptr::with_exposed_provenance::<u8>(usize::try_from(addr).map_err(|_| Errno::EFAULT)?);
        let mut out = vec![0u8; len];
        // SAFETY: the pages of [addr, addr + len) were readable at this
        // mapping generation (a checked copy read them) and no mapping
        // change this library sees happened since (the module's caveats
        // aside); the bytes are copied, never referenced, so a concurrent
        // writer in the caller's program changes only what we read.
        unsafe { std::ptr::copy_nonoverlapping(from, out.as_mut_ptr(), len) };
        return Ok(out);
    }
    let generation = GENERATION.load(Ordering::Acquire);
    let out = uipc_sys::map::read_at(addr, len)?;
    remember(&READABLE, addr, len, generation);
    Ok(out)
}

/// Writes `head` then `tail` at `addr` of this process, as one range:
/// `EFAULT` where a store would fault (as `copy_to_user`; a prefix may
/// have been written).
///
/// # Errors
/// `EFAULT`; the checked copy's other errors.
///
/// # Safety
/// As [`uipc_sys::map::write_at`]: nothing Rust code uses lies in the range.
pub(crate) unsafe fn write_parts(addr: u64, head: &[u8], tail: &[u8]) -> Result<(), Errno> {
    let len = head.len() + tail.len();
    if len > 0 && known(&WRITABLE, addr, len) {
        let to = std::ptr::with_exposed_provenance_mut::<u8>(usize::try_from(addr).map_err(|_| Errno::EFAULT)?);
        // SAFETY: the pages were writable at this mapping generation (a
        // checked copy wrote them) and the caller guarantees no Rust value
        // lives there.
        unsafe {
            std::ptr::copy_nonoverlapping(head.as_ptr(), to, head.len());
            std::ptr::copy_nonoverlapping(tail.as_ptr(), to.add(head.len()), tail.len());
        }
        return Ok(());
    }
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(head);
    bytes.extend_from_slice(tail);
    let bytes = bytes.as_slice();
    let generation = GENERATION.load(Ordering::Acquire);
    // SAFETY: the caller's contract, passed on.
    unsafe { uipc_sys::map::write_at(addr, bytes) }?;
    remember(&WRITABLE, addr, bytes.len(), generation);
    Ok(())
}
