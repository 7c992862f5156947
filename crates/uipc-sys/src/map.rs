//! Shared mappings of segment memory, for the client and the shim.
//!
//! Addresses are plain `u64`s, never references or pointers: shared memory
//! changes under the program's feet (other processes write it, `shmdt` and
//! `shmat(SHM_REMAP)` remove or replace it), so Rust code must never hold a
//! reference into it. The bytes are reached only through [`read_at`] and
//! [`write_at`], which fail with `EFAULT` where a load or store would raise
//! `SIGSEGV`.
//!
//! # Soundness
//!
//! Calls that can remove, replace or write memory at an address the caller
//! names ([`map_shared`] with [`Placement::Fixed`], [`unmap`], [`protect`],
//! [`write_at`]) are `unsafe fn`s. The caller guarantees that no Rust
//! reference, and no memory Rust code uses otherwise (stack, heap, code,
//! statics), lies in the range: in practice, that the range is one that
//! this module mapped (or a range the caller reserved for it).
//!
//! # References
//!  - [mmap(2)], [mprotect(2)], [munmap(2)], [process_vm_readv(2)],
//!    [proc_pid_fd(5)]
//!
//! [mmap(2)]: https://man7.org/linux/man-pages/man2/mmap.2.html
//! [mprotect(2)]: https://man7.org/linux/man-pages/man2/mprotect.2.html
//! [munmap(2)]: https://man7.org/linux/man-pages/man2/munmap.2.html
//! [process_vm_readv(2)]: https://man7.org/linux/man-pages/man2/process_vm_readv.2.html
//! [proc_pid_fd(5)]: https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno as RErrno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use uipc_abi::Errno;

fn errno(e: RErrno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

fn last_errno() -> Errno {
    Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
}

/// An address or length as the kernel's `usize`; `EINVAL` where it cannot be one.
fn to_usize(v: u64) -> Result<usize, Errno> {
    usize::try_from(v).map_err(|_| Errno::EINVAL)
}

/// A user address as the pointer type system calls take.
fn to_ptr(addr: u64) -> Result<*mut libc::c_void, Errno> {
    // An integer-to-pointer cast is the point: the kernel, not Rust,
    // dereferences it.
    Ok(to_usize(addr)? as *mut libc::c_void)
}

/// `open("/proc/self/fd/N", O_RDONLY | O_CLOEXEC)` — a new, read-only open
/// file description of the file `fd` refers to (a memfd, or a file in a
/// tmpfs directory).
///
/// A shared mapping of the result can never become writable: `mmap` with
/// `PROT_WRITE | MAP_SHARED` and `mprotect(PROT_WRITE)` both fail with
/// `EACCES`, since the mapping lacks `VM_MAYWRITE`. This is what the daemon
/// hands a client that attaches with `SHM_RDONLY` or may only read.
///
/// The reopen checks the file's mode against the caller, like any `open`.
/// Conversely, whoever holds the result may reopen it the same way with
/// `O_RDWR` if the file's mode lets them (a memfd is created `0777`): make
/// the file inaccessible to the receiver's uid (`fchmod(fd, 0600)`, daemon
/// owned) before handing the read-only descriptor over.
///
/// # Errors
/// `EACCES` if the file's mode denies reading; `ENOENT` if `fd` is not
/// open or `/proc` is not mounted; `EMFILE`, `ENFILE`.
///
/// # References
///  - [proc_pid_fd(5)](https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html),
///    [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html) (`EACCES`: "`MAP_SHARED` was requested and
///    `PROT_WRITE` is set, but fd is not open in read/write (`O_RDWR`) mode"),
///    [mprotect(2)](https://man7.org/linux/man-pages/man2/mprotect.2.html)
#[doc(alias = "open")]
pub fn reopen_read_only(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    reopen(fd, OFlags::RDONLY.bits())
}

/// `open("/proc/self/fd/N", flags | O_CLOEXEC)` — a new open file
/// description of the file `fd` refers to, with its own access mode,
/// status flags and offset: what each `shm_open` of a POSIX shared memory
/// object gets (the inode's permissions are checked, against the caller's
/// credentials).
///
/// # Errors
/// As `open(2)` (`EACCES` where the file's mode refuses the caller).
#[doc(alias = "open")]
pub fn reopen(fd: BorrowedFd<'_>, flags: u32) -> Result<OwnedFd, Errno> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let flags = OFlags::from_bits_retain(flags) | OFlags::CLOEXEC;
    loop {
        match rustix::fs::open(path.as_str(), flags, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(RErrno::INTR) => {}
            Err(e) => return Err(errno(e)),
        }
    }
}

/// Access to a mapping's pages: the model's type (`mprotect`'s bits).
pub use uipc_core::mm::Prot;

fn prot_flags(prot: Prot) -> ProtFlags {
    let mut f = ProtFlags::empty();
    f.set(ProtFlags::READ, prot.read);
    f.set(ProtFlags::WRITE, prot.write);
    f.set(ProtFlags::EXEC, prot.exec);
    f
}

fn mprotect_flags(prot: Prot) -> MprotectFlags {
    let mut f = MprotectFlags::empty();
    f.set(MprotectFlags::READ, prot.read);
    f.set(MprotectFlags::WRITE, prot.write);
    f.set(MprotectFlags::EXEC, prot.exec);
    f
}

/// Where [`map_shared`] puts a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The kernel chooses (`addr = NULL`).
    Anywhere,
    /// Exactly at this address, replacing whatever is mapped there
    /// (`MAP_FIXED`). See the module's "Soundness".
    Fixed(u64),
    /// Exactly at this address, failing with `EEXIST` if anything is mapped
    /// in the range (`MAP_FIXED_NOREPLACE`). `shmat` reports that case as
    /// `EINVAL`; the caller translates.
    FixedNoReplace(u64),
    /// uipc's own mappings in a program (state pages, status regions):
    /// away from where the kernel puts the program's `mmap(NULL)` and
    /// `shmat(NULL)`, so that a range the program found free (a mapping
    /// made and removed) stays free for its `MAP_FIXED` or `shmat` at an
    /// address, as under the kernel, whose IPC maps nothing. A hint (no
    /// `MAP_FIXED`): the kernel honours it when the range is free, else
    /// places the mapping as for [`Anywhere`](Self::Anywhere).
    Aside,
}

/// Where the next [`Placement::Aside`] mapping goes (0: not chosen yet):
/// from a random page of the TiB above 16 TiB, far below the kernel's
/// top-down mmap area (under the stack, near 128 TiB) and a PIE's
/// executable and heap (from ~85 TiB); the cursor moves past each.
static ASIDE_NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const ASIDE_BASE: u64 = 0x1000_0000_0000;

/// The address for an [`Placement::Aside`] mapping of `len` bytes.
fn aside(len: u64) -> u64 {
    use std::sync::atomic::Ordering;
    let room = len.saturating_add(uipc_abi::PAGE_SIZE);
    if ASIDE_NEXT.load(Ordering::Relaxed) == 0 {
        let offset = (crate::proc::random_u64() % (1 << 40)) & !(uipc_abi::PAGE_SIZE - 1);
        let _ = ASIDE_NEXT.compare_exchange(0, ASIDE_BASE + offset, Ordering::Relaxed, Ordering::Relaxed);
    }
    ASIDE_NEXT.fetch_add(room, Ordering::Relaxed)
}

/// `mmap(at, len, prot, MAP_SHARED [| MAP_FIXED | MAP_FIXED_NOREPLACE], fd, 0)`
/// — maps the first `len` bytes of `fd`, shared with every other mapping
/// of the file; returns the address.
///
/// # Safety
/// With [`Placement::Fixed`], the caller guarantees that nothing Rust code
/// uses lies in `[addr, addr + len)` (see the module's "Soundness"): the
/// range's old contents are discarded. The other placements never replace
/// memory and carry no obligation.
///
/// # Errors
/// `EACCES` if `prot` has `write` but `fd` is not open read-write (see
/// [`reopen_read_only`]) or `fd` is not open for reading; `EEXIST` with
/// [`Placement::FixedNoReplace`] over an existing mapping (also on a kernel
/// older than 4.17, which ignores the flag and places the mapping elsewhere:
/// that mapping is removed); `EINVAL` for a zero or too large `len`, or an
/// address that is not page-aligned; `EPERM` for `exec` on a `noexec` file;
/// `ENOMEM` if the address space is exhausted or the range lies outside it;
/// `ENODEV`, `EBADF`.
///
/// # References
///  - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
#[doc(alias = "mmap")]
pub unsafe fn map_shared(fd: BorrowedFd<'_>, len: u64, prot: Prot, at: Placement) -> Result<u64, Errno> {
    let len = to_usize(len)?;
    let (want, flags) = match at {
        Placement::Anywhere => (None, MapFlags::SHARED),
        Placement::Aside => (Some(aside(u64::try_from(len).map_err(|_| Errno::EINVAL)?)), MapFlags::SHARED),
        Placement::Fixed(a) => (Some(a), MapFlags::SHARED | MapFlags::FIXED),
        Placement::FixedNoReplace(a) => (Some(a), MapFlags::SHARED | MapFlags::FIXED_NOREPLACE),
    };
    let hint = match want {
        Some(a) => to_ptr(a)?,
        None => std::ptr::null_mut(),
    };
    // SAFETY: Anywhere, Aside and FixedNoReplace only use address space
    // that holds no mapping, so they cannot touch memory anyone uses; for Fixed, the
    // caller guarantees nothing Rust uses lies in the range (this fn's
    // contract). The new mapping is reached only through raw addresses.
    let p = unsafe { rustix::mm::mmap(hint, len, prot_flags(prot), flags, fd, 0) }.map_err(errno)?;
    let got = u64::try_from(p as usize).map_err(|_| Errno::EINVAL)?;
    if matches!(at, Placement::FixedNoReplace(_)) && want != Some(got) {
        // A kernel before 4.17 took MAP_FIXED_NOREPLACE as a mere hint and
        // mapped elsewhere because the range was taken.
        // SAFETY: `p..p+len` is the mapping just created, which nobody uses.
        unsafe { rustix::mm::munmap(p, len) }.map_err(errno)?;
        return Err(Errno::EEXIST);
    }
    Ok(got)
}

/// `munmap(addr, len)` — removes every mapping in `[addr, addr + len)`
/// (unmapped parts are no error).
///
/// # Safety
/// The caller guarantees that nothing Rust code uses lies in the range (see
/// the module's "Soundness").
///
/// # Errors
/// `EINVAL` if `addr` is not page-aligned or `len` is zero or the range
/// leaves the address space; `ENOMEM` if unmapping the middle of a mapping
/// would exceed the process's mapping count.
///
/// # References
///  - [munmap(2)](https://man7.org/linux/man-pages/man2/munmap.2.html)
#[doc(alias = "munmap")]
pub unsafe fn unmap(addr: u64, len: u64) -> Result<(), Errno> {
    let (p, len) = (to_ptr(addr)?, to_usize(len)?);
    // SAFETY: the caller guarantees nothing Rust uses lies in the range
    // (this fn's contract); munmap checks the range itself.
    unsafe { rustix::mm::munmap(p, len) }.map_err(errno)
}

/// `mprotect(addr, len, prot)` — changes the access of the pages in
/// `[addr, addr + len)`.
///
/// # Safety
/// The caller guarantees that nothing Rust code uses lies in the range (see
/// the module's "Soundness"): taking access away from memory that Rust
/// references or executes is undefined behaviour.
///
/// # Errors
/// `EACCES` when adding `write` to a shared mapping of a file not open
/// read-write (or `exec` on a `noexec` file); `EINVAL` if `addr` is not
/// page-aligned; `ENOMEM` if part of the range is not mapped.
///
/// # References
///  - [mprotect(2)](https://man7.org/linux/man-pages/man2/mprotect.2.html)
#[doc(alias = "mprotect")]
pub unsafe fn protect(addr: u64, len: u64, prot: Prot) -> Result<(), Errno> {
    let (p, len) = (to_ptr(addr)?, to_usize(len)?);
    // SAFETY: the caller guarantees nothing Rust uses lies in the range
    // (this fn's contract); mprotect checks the range itself.
    unsafe { rustix::mm::mprotect(p, len, mprotect_flags(prot)) }.map_err(errno)
}

/// `mprotect(addr, len, prot)` with the caller's raw `PROT_*` bits, passed
/// to the kernel unchecked (for the shim's `mprotect`, whose caller may use
/// any bit the kernel accepts or rejects).
///
/// # Safety
/// As [`protect`].
///
/// # Errors
/// As [`protect`], and `EINVAL` for bits the kernel rejects.
#[doc(alias = "mprotect")]
pub unsafe fn protect_bits(addr: u64, len: u64, prot: i32) -> Result<(), Errno> {
    let (p, len) = (to_ptr(addr)?, to_usize(len)?);
    let flags = MprotectFlags::from_bits_retain(prot.cast_unsigned());
    // SAFETY: the caller guarantees nothing Rust uses loses access it needs
    // (this fn's contract); mprotect checks the range and bits itself.
    unsafe { rustix::mm::mprotect(p, len, flags) }.map_err(errno)
}

fn own_pid() -> libc::pid_t {
    rustix::process::getpid().as_raw_nonzero().get()
}

thread_local! {
    /// The calling thread's stack, `[low, high)`, once asked for.
    static STACK: std::cell::Cell<Option<(u64, u64)>> = const { std::cell::Cell::new(None) };
}

/// The calling thread's stack as `[low, high)` (`pthread_getattr_np`).
fn thread_stack() -> Option<(u64, u64)> {
    if let Some(s) = STACK.with(std::cell::Cell::get) {
        return Some(s);
    }
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: `attr` is initialised by pthread_getattr_np before any use
    // and destroyed after; the out-pointers are live locals.
    let s = unsafe {
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return None;
        }
        let (mut base, mut size) = (std::ptr::null_mut(), 0usize);
        let r = libc::pthread_attr_getstack(attr.as_ptr(), &mut base, &mut size);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        if r != 0 {
            return None;
        }
        let low = base as usize as u64;
        (low, low.checked_add(u64::try_from(size).ok()?)?)
    };
    STACK.with(|c| c.set(Some(s)));
    Some(s)
}

/// Whether `[addr, addr + len)` lies on the calling thread's stack above
/// `sp` (an address in the current frame): in the callers' frames, mapped
/// while the current call runs.
#[inline]
fn above_frame(sp: u64, addr: u64, len: u64) -> bool {
    thread_stack().is_some_and(|(low, high)| {
        (low..high).contains(&sp) && addr > sp && addr.checked_add(len).is_some_and(|end| end <= high)
    })
}

/// Copies `bytes` to `addr` of this process as [`write_at`] does, without
/// a system call when the range lies on the calling thread's stack above
/// the current frame: that memory is the callers' frames (a C caller's
/// `struct shmid_ds ds;`), mapped and writable for as long as this call
/// runs. Anything else (the heap, another thread's stack, an alternate
/// signal stack) goes through [`write_at`].
///
/// A C caller that passes a dangling pointer into its own dead frames
/// (below its stack pointer, where this call's frames now are) is not
/// told apart: the kernel would write that dead memory harmlessly, this
/// writes over the live frames of the call — undefined behaviour of the
/// caller either way, but a crash here.
///
/// # Safety
/// As [`write_at`]: nothing Rust uses may lie in the range.
///
/// # Errors
/// As [`write_at`].
pub unsafe fn write_to_caller(addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    let here = 0u8;
    let len = u64::try_from(bytes.len()).map_err(|_| Errno::EFAULT)?;
    let on_stack = above_frame(std::ptr::addr_of!(here) as usize as u64, addr, len);
    if !on_stack {
        // SAFETY: this function's contract.
        return unsafe { write_at(addr, bytes) };
    }
    // SAFETY: [addr, addr + len) lies between this frame and the top of
    // the calling thread's stack: its callers' frames, mapped read-write
    // while this call runs; nothing of Rust's lies there (the contract).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), to_ptr(addr)?.cast::<u8>(), bytes.len()) };
    Ok(())
}

/// Copies `out.len()` bytes at `addr` of this process as [`read_at`]
/// does, without a system call when the range lies on the calling
/// thread's stack above the current frame (the callers' frames: a C
/// caller's `struct sembuf sops[2];`), mapped and readable while this call
/// runs. Anything else goes through [`read_at`].
///
/// # Errors
/// As [`read_at`].
pub fn read_from_caller(addr: u64, out: &mut [u8]) -> Result<(), Errno> {
    let here = 0u8;
    let len = u64::try_from(out.len()).map_err(|_| Errno::EFAULT)?;
    let on_stack = above_frame(std::ptr::addr_of!(here) as usize as u64, addr, len);
    if !on_stack {
        let bytes = read_at(addr, out.len())?;
        out.copy_from_slice(&bytes);
        return Ok(());
    }
    // SAFETY: [addr, addr + len) lies between this frame and the top of
    // the calling thread's stack: its callers' frames, mapped readable
    // while this call runs; `out` is ours and does not overlap them.
    unsafe { std::ptr::copy_nonoverlapping(to_ptr(addr)?.cast::<u8>().cast_const(), out.as_mut_ptr(), out.len()) };
    Ok(())
}

/// The `N` bytes at `addr` of this process, as an array, if they lie on
/// the calling thread's stack above the current frame (as
/// [`read_from_caller`] reads them without a system call); `None`
/// elsewhere. A copy of a constant size (a C `struct sembuf` of 6 bytes),
/// which the compiler makes as a few exact moves: one of a length known
/// only at run time goes through `memcpy`, whose overlapping stores for
/// such lengths stall the loads of the fields that follow.
#[inline]
pub fn read_array_on_stack<const N: usize>(addr: u64) -> Option<[u8; N]> {
    let here = 0u8;
    let on_stack = above_frame(std::ptr::addr_of!(here) as usize as u64, addr, u64::try_from(N).ok()?);
    if !on_stack {
        return None;
    }
    let mut out = [0u8; N];
    // SAFETY: as in read_from_caller: [addr, addr + N) lies in the
    // callers' frames of this thread's stack, mapped readable while this
    // call runs; `out` is ours.
    unsafe { std::ptr::copy_nonoverlapping(to_ptr(addr).ok()?.cast::<u8>().cast_const(), out.as_mut_ptr(), N) };
    Some(out)
}

/// `process_vm_readv(getpid(), ...)` — copies `len` bytes at `addr` of this
/// process, failing with `EFAULT` where a load would raise `SIGSEGV`.
///
/// # Errors
/// `EFAULT` if any byte of the range is not mapped readable; `ENOMEM`;
/// `EPERM` or `ENOSYS` if a seccomp filter forbids the call.
///
/// # References
///  - [process_vm_readv(2)](https://man7.org/linux/man-pages/man2/process_vm_readv.2.html)
#[doc(alias = "process_vm_readv")]
pub fn read_at(addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut out = vec![0u8; len];
    if len == 0 {
        return Ok(out);
    }
    let local = libc::iovec { iov_base: out.as_mut_ptr().cast(), iov_len: len };
    let remote = libc::iovec { iov_base: to_ptr(addr)?, iov_len: len };
    // SAFETY: `local` describes `out`, which we own exclusively and which
    // is `len` bytes long; the kernel reads the remote range by address,
    // checking it (EFAULT, never a fault), and writes only into `out`.
    let n = unsafe { libc::process_vm_readv(own_pid(), &local, 1, &remote, 1, 0) };
    match usize::try_from(n) {
        Ok(n) if n == len => Ok(out),
        // A partial copy stops at the first unreadable page.
        Ok(_) => Err(Errno::EFAULT),
        Err(_) => Err(last_errno()),
    }
}

/// `process_vm_writev(getpid(), ...)` — stores `bytes` at `addr` of this
/// process, failing with `EFAULT` where a store would raise `SIGSEGV`.
/// Page protection is respected: a read-only mapping gives `EFAULT`.
///
/// A failed write may have stored a prefix of `bytes`.
///
/// # Safety
/// The caller guarantees that nothing Rust code uses lies in
/// `[addr, addr + bytes.len())` (see the module's "Soundness"): the kernel
/// would write it behind the compiler's back.
///
/// # Errors
/// `EFAULT` if any byte of the range is not mapped writable; `ENOMEM`;
/// `EPERM` or `ENOSYS` if a seccomp filter forbids the call.
///
/// # References
///  - [process_vm_writev(2)](https://man7.org/linux/man-pages/man2/process_vm_writev.2.html)
#[doc(alias = "process_vm_writev")]
pub unsafe fn write_at(addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    if bytes.is_empty() {
        return Ok(());
    }
    let local = libc::iovec { iov_base: bytes.as_ptr().cast_mut().cast(), iov_len: bytes.len() };
    let remote = libc::iovec { iov_base: to_ptr(addr)?, iov_len: bytes.len() };
    // SAFETY: `local` describes `bytes`, which the kernel only reads; the
    // remote range holds nothing Rust uses (this fn's contract) and is
    // checked by the kernel (EFAULT, never a fault).
    let n = unsafe { libc::process_vm_writev(own_pid(), &local, 1, &remote, 1, 0) };
    match usize::try_from(n) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(_) => Err(Errno::EFAULT),
        Err(_) => Err(last_errno()),
    }
}
