//! Attached segments: the client's only `unsafe` code (STYLE rule 10).
#![allow(unsafe_code)]

use std::ops::{Deref, DerefMut};

use uipc_abi::{Errno, PAGE_SIZE};
use uipc_proto::{Request, Response};
use uipc_sys::map::{self, Placement, Prot};

use crate::Client;

/// An attached segment, readable. Detaches (`shmdt`) when dropped.
///
/// It derefs to the segment's `segsz` bytes. The memory is shared with
/// other processes, which may write it at any time: treat the bytes as a
/// snapshot, and use atomics (through [`as_ptr`](Self::as_ptr)) to
/// synchronise.
#[derive(Debug)]
pub struct Mapping {
    client: Client,
    addr: u64,
    /// Bytes of the segment (`segsz`).
    size: usize,
    writable: bool,
}

/// An attached segment, readable and writable; derefs mutably.
#[derive(Debug)]
pub struct MappingMut(pub(crate) Mapping);

impl Mapping {
    /// The address the segment is attached at.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The first byte, for atomic access.
    pub fn as_ptr(&self) -> *const u8 {
        self.addr as *const u8
    }

    /// Length of the mapping: `segsz` rounded up to whole pages (SHM-AT-8).
    pub fn map_len(&self) -> u64 {
        u64::try_from(self.size).unwrap_or(u64::MAX).div_ceil(PAGE_SIZE) * PAGE_SIZE
    }

    /// Gives up the handle without detaching: the attach stays, named by
    /// its address (for callers that detach by address).
    pub fn into_raw(self) -> u64 {
        let addr = self.addr;
        std::mem::forget(self);
        addr
    }

    /// Whether the mapping is writable.
    pub fn is_writable(&self) -> bool {
        self.writable
    }
}

impl MappingMut {
    /// The address the segment is attached at.
    pub fn addr(&self) -> u64 {
        self.0.addr
    }

    /// The first byte, for atomic access.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.0.addr as *mut u8
    }

    /// Length of the mapping: `segsz` rounded up to whole pages (SHM-AT-8).
    pub fn map_len(&self) -> u64 {
        self.0.map_len()
    }
}

impl Deref for Mapping {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: [addr, addr + size) is mapped readable for as long as
        // `self` lives (only Drop unmaps it), and size ≤ the mapping length.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.size) }
    }
}

impl Deref for MappingMut {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for MappingMut {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is writable (MappingMut is only made from
        // read-write attaches), alive while `self` is, and `&mut self`
        // gives this process exclusive use of the slice.
        unsafe { std::slice::from_raw_parts_mut(self.0.addr as *mut u8, self.0.size) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let gone = detach(&self.client, self.addr);
        if gone.is_err() && gone != Err(Errno::EINVAL) {
            // The daemon is gone: at least give the memory back. (EINVAL
            // means it was detached by address already: nothing to do.)
            // SAFETY: this mapping is ours and nothing borrows it any more.
            let _ = unsafe { map::unmap(self.addr, self.map_len()) };
        }
    }
}

/// `shmat`: the daemon checks and hands over the memory, we map it, and
/// report where (or why not) — or, for a segment whose descriptor this
/// process kept from an earlier attach, in one round trip
/// ([`attach_cached`]).
pub(crate) fn attach(client: &Client, id: i32, addr: u64, flags: i32) -> Result<Mapping, Errno> {
    // A daemon that died between the two steps was restarted without the
    // first (a pending attach is the connection's; the restart released
    // its hold): the attach starts again, as if the first step had not
    // been made.
    let mut tries = 0;
    loop {
        match attach_steps(client, id, addr, flags) {
            Ok(m) => return Ok(m),
            Err(Some(e)) => return Err(e),
            Err(None) if tries < 8 => tries += 1,
            Err(None) => return Err(Errno::ECONNRESET),
        }
    }
}

/// The steps of [`attach`]; `Err(None)`: the daemon changed between them.
fn attach_steps(client: &Client, id: i32, addr: u64, flags: i32) -> Result<Mapping, Option<Errno>> {
    let mut fast = client.shm_fast();
    if let Some(done) = attach_cached(client, &mut fast, id, addr, flags) {
        return done.map_err(Some);
    }
    if fast.has_attaches() {
        // A fixed address is checked against, or replaces, this process's
        // mappings: the daemon must know them all.
        record(client, fast.take_attaches(|_| true));
    }
    let mut conn = client.conn().lock().unwrap_or_else(|e| e.into_inner());
    let (resp, mut fds) = conn.call(&Request::ShmAt { id, addr, flags }, 1)?;
    let (token, size, fixed, write, exec, remap) = match resp {
        Response::Attach { token, size, addr, write, exec, remap } => (token, size, addr, write, exec, remap),
        Response::Error(e) => return Err(Some(Errno::from_raw(e))),
        _ => return Err(Some(Errno::EPROTO)),
    };
    let daemon = conn.reopened;
    let len = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let placement = match (fixed, remap) {
        (None, _) => Placement::Anywhere,
        (Some(a), true) => Placement::Fixed(a),
        (Some(a), false) => Placement::FixedNoReplace(a),
    };
    let fd = fds.pop();
    let mapped = match &fd {
        // SAFETY: SHM_REMAP (Placement::Fixed) replaces what the caller asked
        // to replace, as shmat(2) does; the other placements replace nothing.
        Some(fd) => unsafe {
            map::map_shared(std::os::fd::AsFd::as_fd(fd), len, Prot { read: true, write, exec }, placement)
        },
        None => Err(Errno::EPROTO),
    };
    // shmat reports an occupied fixed range as EINVAL.
    let mapped = mapped.map_err(|e| if e == Errno::EEXIST { Errno::EINVAL } else { e });
    let done = conn.call(&Request::ShmAtDone { token, result: mapped.map_err(Errno::raw) }, 0)?.0;
    if conn.reopened != daemon && done == Response::Error(Errno::EINVAL.raw()) {
        if let Ok(at) = mapped {
            // SAFETY: we just made this mapping and nothing uses it.
            let _ = unsafe { map::unmap(at, len) };
        }
        return Err(None);
    }
    if let (Response::Value(_), Some(fd)) = (&done, fd) {
        // The next attach of this segment maps it before asking.
        fast.keep_fd(id, fd, write, size);
    }
    match (done, mapped) {
        (Response::Value(_), Ok(at)) => Ok(Mapping {
            client: client.clone(),
            addr: at,
            size: usize::try_from(size).map_err(|_| Errno::ENOMEM)?,
            writable: write,
        }),
        (Response::Error(e), Ok(at)) => {
            // SAFETY: we just made this mapping and nothing uses it.
            let _ = unsafe { map::unmap(at, len) };
            Err(Some(Errno::from_raw(e)))
        }
        (Response::Error(e), Err(_)) => Err(Some(Errno::from_raw(e))),
        (_, Err(e)) => Err(Some(e)),
        (_, Ok(at)) => {
            // SAFETY: as above.
            let _ = unsafe { map::unmap(at, len) };
            Err(Some(Errno::EPROTO))
        }
    }
}

/// `shmat(id, NULL, flags)` of a segment whose descriptor this process
/// kept, in one round trip: maps it where the kernel finds room, then asks
/// the daemon to check and record the attach there (`ShmAttach`); unmaps
/// again if it refuses. `None` when the case is not one for it (a fixed
/// address, `SHM_REMAP`, no descriptor kept with the access needed).
///
/// Nobody sees the difference: the permission check and every count are
/// the daemon's, made before the call returns, and the mapping exists
/// before the daemon counts it (as the kernel's `do_mmap()` runs inside
/// `do_shmat()`'s hold). A refused attach leaves nothing behind; the
/// descriptor was this process's already.
fn attach_cached(
    client: &Client,
    fast: &mut crate::shm_fast::ShmFast,
    id: i32,
    addr: u64,
    flags: i32,
) -> Option<Result<Mapping, Errno>> {
    if addr != 0 || flags & uipc_abi::SHM_REMAP != 0 {
        return None;
    }
    let write = flags & uipc_abi::SHM_RDONLY == 0;
    let exec = flags & uipc_abi::SHM_EXEC != 0;
    let cached = fast.cached_fd(id, write)?;
    let size = usize::try_from(cached.size).ok()?;
    let len = cached.size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&cached.fd);
    let map_it = |raw: std::os::fd::RawFd| {
        // SAFETY: `raw` is the kept descriptor, owned by `fast`, which this
        // thread holds locked and which closes no descriptor meanwhile.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
        // SAFETY: Placement::Anywhere replaces no existing mapping.
        unsafe { map::map_shared(fd, len, Prot { read: true, write, exec }, Placement::Anywhere) }
    };
    let unmap_it = |at: u64, len: u64| {
        // SAFETY: the mapping was just made here and nothing uses it.
        let _ = unsafe { map::unmap(at, len) };
    };
    // With the segment's attach page: no round trip at all.
    if let Some(at) = fast.attach_fast(id, flags, || map_it(raw).ok().map(|at| (at, len)), unmap_it) {
        return Some(Ok(Mapping { client: client.clone(), addr: at, size, writable: write }));
    }
    let at = match map_it(raw) {
        Ok(at) => at,
        // Let the two-step path decide (its errors are the kernel's order).
        Err(_) => return None,
    };
    let key = crate::creds::CredKey::now();
    let answer = {
        let mut conn = client.conn().lock().unwrap_or_else(|e| e.into_inner());
        conn.call(&Request::ShmAttachGrant { id, flags, at }, 1)
    };
    match answer {
        Ok((Response::ShmGranted { perm_version, slot, access, .. }, fds)) => {
            if let Some(page) = fds.into_iter().next() {
                fast.keep_page(id, page, perm_version, slot, access, key);
            }
            Some(Ok(Mapping { client: client.clone(), addr: at, size, writable: write }))
        }
        Ok((Response::Value(_), _)) => Some(Ok(Mapping { client: client.clone(), addr: at, size, writable: write })),
        other => {
            // SAFETY: we just made this mapping and nothing uses it.
            let _ = unsafe { map::unmap(at, len) };
            let e = match other {
                Ok((Response::Error(e), _)) => Errno::from_raw(e),
                Ok(_) => Errno::EPROTO,
                Err(e) => e,
            };
            if e == Errno::EINVAL || e == Errno::EIDRM {
                // The id names nothing any more (or this namespace is gone).
                fast.drop_fd(id, write);
            }
            Some(Err(e))
        }
    }
}

/// Has the daemon record `attaches`, made in this process's own address
/// space, as mappings (`Request::ShmRecord`), before a call that acts on
/// mappings. A daemon that is gone has nothing left to count.
pub(crate) fn record(client: &Client, attaches: Vec<crate::shm_fast::FastAttach>) {
    if attaches.is_empty() {
        return;
    }
    let attaches = attaches.into_iter().map(|a| (a.id, a.addr, a.flags)).collect();
    let mut conn = client.conn().lock().unwrap_or_else(|e| e.into_inner());
    let _ = conn.call(&Request::ShmRecord { attaches }, 0);
}

/// `shmdt`: an attachment made in this process's own address space is
/// taken off its slot and unmapped, with no round trip; otherwise the
/// daemon decides which ranges go, and we unmap them.
pub(crate) fn detach(client: &Client, addr: u64) -> Result<(), Errno> {
    {
        let mut fast = client.shm_fast();
        match fast.detach_fast(addr) {
            Some(Ok((start, len))) => {
                // SAFETY: this process's own attachment, just taken off its
                // count; its Mapping handle (if any) is being dropped or was
                // given up for detaching by address.
                let _ = unsafe { map::unmap(start, len) };
                return Ok(());
            }
            Some(Err(a)) => record(client, vec![a]),
            None => {}
        }
    }
    let mut conn = client.conn().lock().unwrap_or_else(|e| e.into_inner());
    match conn.call(&Request::ShmDt { addr }, 0)?.0 {
        Response::Unmap(ranges) => {
            for (start, end) in ranges {
                // SAFETY: these are System V mappings the daemon recorded for
                // this process; their Mapping handles (if any) are being
                // dropped or were detached by address on purpose.
                let _ = unsafe { map::unmap(start, end - start) };
            }
            Ok(())
        }
        Response::Error(e) => Err(Errno::from_raw(e)),
        _ => Err(Errno::EPROTO),
    }
}

/// A mapped named semaphore (`sem_open`): a `sem_t` in shared memory,
/// operated by glibc's own `sem_post`/`sem_wait`. Unmapped when dropped
/// (`sem_close`).
#[derive(Debug)]
pub struct NamedSemaphore {
    addr: u64,
}

// SAFETY: a sem_t is designed for concurrent use from any thread and
// process; the handle only owns the mapping.
unsafe impl Send for NamedSemaphore {}
// SAFETY: as above: every operation is one of glibc's thread-safe sem_* calls.
unsafe impl Sync for NamedSemaphore {}

/// Maps the `sem_t` of a semaphore object read-write.
pub(crate) fn map_semaphore(fd: &std::os::fd::OwnedFd) -> Result<NamedSemaphore, Errno> {
    use std::os::fd::AsFd;
    let len = u64::try_from(uipc_abi::pshm::SEM_T_SIZE).unwrap_or(32);
    // SAFETY: Placement::Anywhere never replaces an existing mapping.
    let addr = unsafe {
        map::map_shared(fd.as_fd(), len, Prot { read: true, write: true, exec: false }, Placement::Anywhere)?
    };
    Ok(NamedSemaphore { addr })
}

impl NamedSemaphore {
    /// The `sem_t`, for C code.
    pub fn as_ptr(&self) -> *mut libc::sem_t {
        self.addr as *mut libc::sem_t
    }

    /// `sem_post`.
    ///
    /// # Errors
    /// `EOVERFLOW` at `SEM_VALUE_MAX`.
    pub fn post(&self) -> Result<(), Errno> {
        // SAFETY: the mapping is a live sem_t for the handle's lifetime.
        Self::check(unsafe { libc::sem_post(self.as_ptr()) })
    }

    /// `sem_wait` (restarted after a signal handler's `EINTR`).
    ///
    /// # Errors
    /// None in practice (`EINVAL` for a corrupt semaphore).
    pub fn wait(&self) -> Result<(), Errno> {
        loop {
            // SAFETY: the mapping is a live sem_t for the handle's lifetime.
            match Self::check(unsafe { libc::sem_wait(self.as_ptr()) }) {
                Err(Errno::EINTR) => {}
                r => return r,
            }
        }
    }

    /// `sem_trywait`.
    ///
    /// # Errors
    /// `EAGAIN` when the value is 0.
    pub fn try_wait(&self) -> Result<(), Errno> {
        // SAFETY: the mapping is a live sem_t for the handle's lifetime.
        Self::check(unsafe { libc::sem_trywait(self.as_ptr()) })
    }

    /// `sem_getvalue`.
    ///
    /// # Errors
    /// None in practice.
    pub fn value(&self) -> Result<i32, Errno> {
        let mut v = 0;
        // SAFETY: the mapping is a live sem_t; `v` is a live int.
        Self::check(unsafe { libc::sem_getvalue(self.as_ptr(), &mut v) })?;
        Ok(v)
    }

    fn check(r: i32) -> Result<(), Errno> {
        if r == 0 {
            Ok(())
        } else {
            Err(Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(Errno::EIO.raw())))
        }
    }
}

impl Drop for NamedSemaphore {
    fn drop(&mut self) {
        let len = u64::try_from(uipc_abi::pshm::SEM_T_SIZE).unwrap_or(32);
        // SAFETY: the handle owns the mapping; nothing refers to it once
        // the handle is gone (sem_close).
        let _ = unsafe { map::unmap(self.addr, len) };
    }
}
