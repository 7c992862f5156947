//! `munmap` of System V attachments.
//!
//! In Linux an attach is a memory area of the segment's file; `munmap` of
//! part of it splits the area, and `nattch` counts areas (`shm_open()` on
//! every split, `shm_close()` on every area removed: SPEC SHM-DT-3..5). The
//! daemon's model follows those splits when told (`Munmap`), so the shim
//! wraps `munmap`: the kernel unmaps (the system call itself, as the C
//! library's `munmap` is nothing more), then, if the range touches memory
//! this process attached, the daemon is told.
//!
//! Which ranges to report is decided locally, so that `munmap` of ordinary
//! memory costs nothing: a list of the ranges this process attached (and
//! inherited through `fork`, which copies it) that no `munmap` or `shmdt`
//! has removed yet. It may hold more than is still attached (a fragment
//! that `shmdt` removed with its attach): reporting such a range is
//! harmless, the daemon finds nothing there.
//!
//! `mprotect` is wrapped the same way: a protection change of part of an
//! attach splits it (or moves a boundary into a neighbour of the same
//! attach), which the daemon's model follows when told (`Mprotect`).
//!
//! # Known missing features
//! - `mremap` is not reported (docs/deviations.md, SHM-DT-5).
//! - An `mprotect` that fails part-way (a hole in the range) may have
//!   changed some mappings in the kernel; it is not reported.
//! - Raw `syscall(SYS_munmap, …)` is not seen.
//!
//! # References
//!  - [munmap(2)](https://man7.org/linux/man-pages/man2/munmap.2.html),
//!    Linux `ipc/shm.c`: `shm_open()`, `shm_close()`

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use libc::size_t;
use uipc_abi::Errno;
use uipc_client::Client;

use crate::ret;

/// `[start, end)` ranges this process attached and has not unmapped.
/// Changed only inside the fork gate, so `fork` never copies it locked.
static RANGES: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
/// Whether `RANGES` was ever non-empty: the fast path of `munmap`.
static ANY: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread is already reporting an unmap (no re-entry).
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

fn ranges() -> std::sync::MutexGuard<'static, Vec<(u64, u64)>> {
    RANGES.lock().unwrap_or_else(|e| e.into_inner())
}

/// `shmat` through the client, noting the attached range. Call inside the
/// fork gate.
///
/// # Errors
/// shmat(2)'s.
pub(crate) fn attach(c: &Client, id: c_int, addr: u64, flags: c_int) -> Result<u64, Errno> {
    let m = c.attach_raw(id, addr, flags)?;
    let len = m.map_len();
    let at = m.into_raw();
    ranges().push((at, at.saturating_add(len)));
    ANY.store(true, Ordering::Release);
    Ok(at)
}

/// After a successful `shmdt(addr)`: the attach that started at `addr` is
/// gone. Call inside the fork gate.
pub(crate) fn detached(addr: u64) {
    ranges().retain(|&(start, _)| start != addr);
}

/// Removes `[start, end)` from the list; whether it overlapped any range.
fn cut(list: &mut Vec<(u64, u64)>, start: u64, end: u64) -> bool {
    let mut hit = false;
    let mut out = Vec::with_capacity(list.len() + 1);
    for &(s, e) in list.iter() {
        if e <= start || end <= s {
            out.push((s, e));
            continue;
        }
        hit = true;
        if s < start {
            out.push((s, start));
        }
        if end < e {
            out.push((end, e));
        }
    }
    *list = out;
    hit
}

/// Tells the daemon about an unmap of `[addr, addr + len)` that touched
/// attached memory.
fn report(addr: u64, len: u64) {
    let Some(c) = crate::CLIENT.get() else { return };
    let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
    let end = addr.saturating_add(len.div_ceil(uipc_abi::PAGE_SIZE) * uipc_abi::PAGE_SIZE);
    if cut(&mut ranges(), addr, end) {
        // The memory is gone whatever the daemon says; a daemon that went
        // away has nothing left to count.
        let _ = c.unmapped(addr, len);
    }
}

/// Tells the daemon about a protection change of `[addr, addr + len)`
/// that touched attached memory.
fn report_protect(addr: u64, len: u64, prot: c_int) {
    let Some(c) = crate::CLIENT.get() else { return };
    let _gate = crate::GATE.read().unwrap_or_else(|e| e.into_inner());
    let end = addr.saturating_add(len.div_ceil(uipc_abi::PAGE_SIZE) * uipc_abi::PAGE_SIZE);
    let touches = ranges().iter().any(|&(s, e)| s < end && addr < e);
    if let (true, Ok(prot)) = (touches, u32::try_from(prot)) {
        let _ = c.protected(addr, len, prot);
    }
}

/// `mprotect(addr, len, prot)` — changes the protection of the pages in
/// `[addr, addr + len)`; a System V attach in the range is split as Linux
/// splits it (`nattch` follows).
///
/// # Errors
/// mprotect(2)'s, from the kernel: `EACCES` (write access to a read-only
/// attach), `EINVAL`, `ENOMEM`.
///
/// # Safety
/// As mprotect(2): access to the range changes.
#[no_mangle]
pub unsafe extern "C" fn mprotect(addr: *mut c_void, len: size_t, prot: c_int) -> c_int {
    let (a, l) = (addr as usize as u64, len as u64);
    // SAFETY: the caller's mprotect(2) contract.
    let r = unsafe { uipc_sys::map::protect_bits(a, l, prot) };
    crate::usermem::mappings_changed();
    if let Err(e) = r {
        return ret::int(Err(e));
    }
    if ANY.load(Ordering::Acquire) && !BUSY.get() {
        BUSY.set(true);
        report_protect(a, l, prot);
        BUSY.set(false);
    }
    0
}

/// `munmap(addr, len)` — removes the mappings in `[addr, addr + len)`; a
/// System V attach in the range is split or closed as Linux does it
/// (`nattch` follows).
///
/// # Errors
/// munmap(2)'s, from the kernel: `EINVAL` for an unaligned `addr`, a zero
/// `len` or a range outside the address space.
///
/// # Safety
/// As munmap(2): the memory in the range goes away.
#[no_mangle]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: size_t) -> c_int {
    // Pointer and size_t are plain numbers to the kernel and the daemon.
    let (a, l) = (addr as usize as u64, len as u64);
    // SAFETY: the caller's munmap(2) contract: it gives the range up.
    let r = unsafe { uipc_sys::map::unmap(a, l) };
    crate::usermem::mappings_changed();
    if let Err(e) = r {
        return ret::int(Err(e));
    }
    if ANY.load(Ordering::Acquire) && !BUSY.get() {
        BUSY.set(true);
        report(a, l);
        BUSY.set(false);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cut_splits_trims_and_misses() {
        let mut l = vec![(0x1000, 0x4000), (0x8000, 0x9000)];
        assert!(cut(&mut l, 0x2000, 0x3000));
        assert_eq!(l, vec![(0x1000, 0x2000), (0x3000, 0x4000), (0x8000, 0x9000)]);
        assert!(!cut(&mut l, 0x4000, 0x8000));
        assert!(cut(&mut l, 0x0, 0x8800));
        assert_eq!(l, vec![(0x8800, 0x9000)]);
    }
}
