//! State pages: an object's state in memory that the processes allowed to
//! use it map, changed under a robust cross-process lock and read under a
//! sequence count (`docs/architecture.md`, "The data plane").
//!
//! A page is a file (a memfd, or a file in the daemon's state directory)
//! laid out as a fixed header followed by the mechanism's body. Every field
//! is plain data at a fixed offset and is reached through atomics, never
//! through a Rust reference into the mapping: other processes change it,
//! and a process that may write the page may also scribble on it, so every
//! value read here is data to validate, not an invariant.
//!
//! Header (bytes):
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `UIPC` |
//! | 4 | layout version ([`LAYOUT`]) |
//! | 8 | kind ([`Kind`]) |
//! | 12 | journal capacity (bytes) |
//! | 16 | length of the page (bytes, u64) |
//! | 24 | sequence count: odd while a writer changes the page |
//! | 28 | flags ([`REMOVED`], [`SLEEPERS`], [`DAMAGED`]) |
//! | 32 | permission version |
//! | 36 | in-flight bytes of the journal (0: no change in flight) |
//! | 40 | the daemon's stamp of its last publish (u64; see [`Guard::stamp`]) |
//! | 64 | the lock: a process-shared robust `pthread_mutex_t` |
//! | 128 | the body, then the journal at its end |
//!
//! **Lock.** glibc's robust mutexes are on the kernel's robust-futex list
//! of the thread holding them: when that thread dies (SIGKILL included)
//! the kernel marks the lock, and the next locker gets `EOWNERDEAD`.
//! **Journal.** Before a writer changes a range it saves the range's old
//! bytes ([`Guard::save`]); [`Guard`]'s commit (its drop) clears the
//! journal. A locker that inherits a dead owner's lock rolls the journal
//! back, so an interrupted change did not happen, and marks the lock
//! consistent.
//!
//! **Fast words.** A body word may be changed without the lock, by one
//! compare-and-swap, while no lock holder holds it ([`WORD_HELD`]): its
//! low 16 bits are the data ([`WORD_DATA`]), bit 16 says a lock holder
//! holds it, the bits above count the holds ended (a generation). A lock
//! holder that reads or writes such words holds them first
//! ([`Guard::hold_words`]): a swap prepared before fails, and later ones
//! see the bit and take the lock. The hold ends after the commit, with the
//! generation advanced if the holder changed anything, so a swap prepared
//! before the hold can never succeed after it (whatever the holder
//! changed, the flags and the permission version included). A holder that
//! dies keeps its words held until the next holder of them (the daemon
//! holds all of a page's) ends its hold. A kind may swap an 8-byte word
//! whose low half is a fast word (a semaphore's value and pid): the
//! holder's 4-byte accesses to that half are atomic against the swap on
//! the machines this runs on (x86-64, aarch64), as the kernel's are.
//!
//! # References
//!  - pthread_mutexattr_setrobust(3), pthread_mutex_consistent(3),
//!    get_robust_list(2), `Documentation/locking/robust-futexes.rst`
//!  - `include/linux/seqlock.h` (the sequence-count protocol)

use std::cell::Cell;
use std::ops::Deref;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uipc_abi::Errno;

use crate::map::{map_shared, unmap, Placement, Prot};
use crate::seqlock;

/// `"UIPC"`, little-endian.
pub const MAGIC: u32 = u32::from_le_bytes(*b"UIPC");
/// The header's layout version; a page of another version is refused.
pub const LAYOUT: u32 = 1;
/// Where the mechanism's body starts.
pub const BODY: usize = 128;

/// The object was removed: callers go to the daemon, which answers for it.
pub const REMOVED: u32 = 1;
/// The daemon has callers asleep on the object: every change goes through
/// the daemon, which keeps the kernel's hand-off order.
pub const SLEEPERS: u32 = 2;
/// The page failed validation or its lock could not be had: the daemon
/// reports the object and answers for it.
pub const DAMAGED: u32 = 4;

/// A fast word's data bits.
pub const WORD_DATA: u32 = 0xffff;
/// A fast word's bit set while a lock holder holds it.
pub const WORD_HELD: u32 = 1 << 16;
/// A fast word's generation unit: added at the end of each hold.
const WORD_GENERATION: u32 = 1 << 17;

const OFF_MAGIC: usize = 0;
const OFF_LAYOUT: usize = 4;
const OFF_KIND: usize = 8;
const OFF_JOURNAL_CAP: usize = 12;
const OFF_LEN: usize = 16;
const OFF_SEQ: usize = 24;
const OFF_FLAGS: usize = 28;
const OFF_PERM_VERSION: usize = 32;
const OFF_INFLIGHT: usize = 36;
const OFF_STAMP: usize = 40;
const OFF_LOCK: usize = 64;
/// Bytes a journal entry's header takes (offset, length).
const ENTRY_HEADER: usize = 8;

/// What a page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// A System V semaphore set.
    SemSet = 1,
    /// A System V message queue.
    MsgQueue = 2,
    /// A POSIX message queue.
    MqQueue = 3,
    /// A namespace's segment status region (`shm_status`; 4 was its
    /// layout without a header).
    ShmStatus = 5,
    /// A namespace's semaphore status region (`sem_status`).
    SemStatus = 6,
    /// A namespace's message queue status region (`msg_status`).
    MsgStatus = 7,
    /// A System V segment's attach page (`shm_attach`).
    ShmAttach = 8,
}

/// How a lock was had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locked {
    /// From a live owner, or free.
    Clean,
    /// From an owner that died holding it: its change was rolled back.
    Repaired,
}

/// A page mapped into this process.
#[derive(Debug)]
pub struct StatePage {
    base: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is shared memory reached only through atomics; it
// stays mapped as long as the value lives (unmapped on drop) and holds no
// thread-bound state, so it may move between and be shared by threads.
unsafe impl Send for StatePage {}
// SAFETY: as for Send: every access is an atomic operation.
unsafe impl Sync for StatePage {}

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// The page length for a body of `body` bytes and a journal of `journal`
/// bytes, in whole pages.
pub fn page_len(body: usize, journal: usize) -> u64 {
    let bytes = BODY + round8(body) + round8(journal);
    let page = usize::try_from(uipc_abi::PAGE_SIZE).unwrap_or(4096);
    u64::try_from(bytes.div_ceil(page) * page).unwrap_or(u64::MAX)
}

impl StatePage {
    /// Maps the page file `fd` (`len` bytes), read-write or read-only.
    fn map(fd: BorrowedFd<'_>, len: u64, writable: bool) -> Result<StatePage, Errno> {
        let prot = Prot { read: true, write: writable, exec: false };
        // SAFETY: Aside replaces no memory (map_shared's contract).
        let addr = unsafe { map_shared(fd, len, prot, Placement::Aside) }?;
        let base = NonNull::new(usize::try_from(addr).map_err(|_| Errno::EINVAL)? as *mut u8).ok_or(Errno::EINVAL)?;
        Ok(StatePage { base, len: usize::try_from(len).map_err(|_| Errno::EINVAL)?, writable })
    }

    /// The daemon's side: lays out a new page in the zero-filled file
    /// `fd` of `len` bytes ([`page_len`]) for an object of `kind` with a
    /// journal of `journal` bytes at its end, and initialises its lock.
    ///
    /// # Errors
    /// `EINVAL` if the journal does not fit; `mmap`'s errors.
    pub fn create(fd: BorrowedFd<'_>, len: u64, kind: Kind, journal: usize) -> Result<StatePage, Errno> {
        let page = StatePage::map(fd, len, true)?;
        if BODY + round8(journal) > page.len {
            return Err(Errno::EINVAL);
        }
        page.u32_at(OFF_LAYOUT).store(LAYOUT, Ordering::Relaxed);
        page.u32_at(OFF_KIND).store(kind as u32, Ordering::Relaxed);
        page.u32_at(OFF_JOURNAL_CAP)
            .store(u32::try_from(round8(journal)).map_err(|_| Errno::EINVAL)?, Ordering::Relaxed);
        page.u64_at(OFF_LEN).store(len, Ordering::Relaxed);
        page.init_lock()?;
        page.u32_at(OFF_MAGIC).store(MAGIC, Ordering::Release);
        Ok(page)
    }

    /// A client's side: maps a page the daemon granted (read-write only
    /// if `writable`) and checks its header.
    ///
    /// # Errors
    /// `EPROTO` for a file that is not a page of this layout and `kind`;
    /// `mmap`'s and `fstat`'s errors.
    pub fn open(fd: BorrowedFd<'_>, kind: Kind, writable: bool) -> Result<StatePage, Errno> {
        let len = rustix::fs::fstat(fd).map_err(|e| Errno::from_raw(e.raw_os_error()))?.st_size;
        let len = u64::try_from(len).map_err(|_| Errno::EPROTO)?;
        if len < page_len(0, 0) {
            return Err(Errno::EPROTO);
        }
        let page = StatePage::map(fd, len, writable)?;
        let ok = page.u32_at(OFF_MAGIC).load(Ordering::Acquire) == MAGIC
            && page.u32_at(OFF_LAYOUT).load(Ordering::Relaxed) == LAYOUT
            && page.u32_at(OFF_KIND).load(Ordering::Relaxed) == kind as u32
            && page.u64_at(OFF_LEN).load(Ordering::Relaxed) == len;
        if ok {
            Ok(page)
        } else {
            Err(Errno::EPROTO)
        }
    }

    /// The body's length in bytes (what lies between the header and the journal).
    #[inline]
    pub fn body_len(&self) -> usize {
        let cap = usize::try_from(self.u32_at(OFF_JOURNAL_CAP).load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        self.len.saturating_sub(BODY).saturating_sub(cap)
    }

    #[inline]
    fn journal_range(&self) -> (usize, usize) {
        let cap = usize::try_from(self.u32_at(OFF_JOURNAL_CAP).load(Ordering::Relaxed)).unwrap_or(0);
        let cap = cap.min(self.len.saturating_sub(BODY));
        (self.len - cap, cap)
    }

    /// Whether this mapping may write.
    #[inline]
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// A pointer into the page, `None` unless `off..off + size` lies in it
    /// and is `align`-aligned.
    #[inline]
    fn at(&self, off: usize, size: usize) -> Option<*mut u8> {
        (off.checked_add(size)? <= self.len && off.is_multiple_of(size.min(8)))
            // SAFETY: off + size <= len: the pointer stays inside the mapping.
            .then(|| unsafe { self.base.as_ptr().add(off) })
    }

    /// The atomic `u32` at `off` (a header field, or a body field whose
    /// offset the mechanism checked against [`body_len`](Self::body_len)).
    /// Out of range (a layout bug), a dummy word that reads 0.
    #[inline]
    pub fn u32_at(&self, off: usize) -> &AtomicU32 {
        static DUMMY: AtomicU32 = AtomicU32::new(0);
        match self.at(off, 4) {
            // SAFETY: in bounds and 4-aligned (`at`); the mapping lives as
            // long as `self`, and every access is atomic.
            Some(p) => unsafe { AtomicU32::from_ptr(p.cast()) },
            None => &DUMMY,
        }
    }

    /// The atomic `i32` at `off` (see [`u32_at`](Self::u32_at)).
    #[inline]
    pub fn i32_at(&self, off: usize) -> &AtomicI32 {
        static DUMMY: AtomicI32 = AtomicI32::new(0);
        match self.at(off, 4) {
            // SAFETY: as in u32_at.
            Some(p) => unsafe { AtomicI32::from_ptr(p.cast()) },
            None => &DUMMY,
        }
    }

    /// The atomic `u64` at `off`, 8-aligned (see [`u32_at`](Self::u32_at)).
    #[inline]
    pub fn u64_at(&self, off: usize) -> &AtomicU64 {
        static DUMMY: AtomicU64 = AtomicU64::new(0);
        match self.at(off, 8) {
            // SAFETY: as in u32_at, 8-aligned.
            Some(p) => unsafe { AtomicU64::from_ptr(p.cast()) },
            None => &DUMMY,
        }
    }

    /// The atomic `i64` at `off`, 8-aligned (see [`u32_at`](Self::u32_at)).
    #[inline]
    pub fn i64_at(&self, off: usize) -> &AtomicI64 {
        static DUMMY: AtomicI64 = AtomicI64::new(0);
        match self.at(off, 8) {
            // SAFETY: as in u32_at, 8-aligned.
            Some(p) => unsafe { AtomicI64::from_ptr(p.cast()) },
            None => &DUMMY,
        }
    }

    /// Copies `out.len()` bytes at `off` out of the page, in bulk (a
    /// message's text, under the page's lock); `false` out of range.
    pub fn copy_out(&self, off: usize, out: &mut [u8]) -> bool {
        if off.checked_add(out.len()).is_none_or(|e| e > self.len) {
            return false;
        }
        // SAFETY: off + len <= self.len: the source lies in the mapping,
        // which lives as long as self; `out` is our own buffer. The bytes
        // are plain data: a process that writes them without the lock can
        // only make them wrong, which the reader's validation covers.
        unsafe { std::ptr::copy_nonoverlapping(self.base.as_ptr().add(off), out.as_mut_ptr(), out.len()) };
        true
    }

    /// Copies `data` into the page at `off`, in bulk (under the page's
    /// lock, on a writable mapping); `false` out of range or read-only.
    pub fn copy_in(&self, off: usize, data: &[u8]) -> bool {
        if !self.writable || off.checked_add(data.len()).is_none_or(|e| e > self.len) {
            return false;
        }
        // SAFETY: in range of a writable mapping that lives as long as
        // self, reached by no Rust reference; see copy_out for the bytes.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.as_ptr().add(off), data.len()) };
        true
    }

    /// The flags ([`REMOVED`], [`SLEEPERS`], [`DAMAGED`]).
    #[inline]
    pub fn flags(&self) -> u32 {
        self.u32_at(OFF_FLAGS).load(Ordering::Acquire)
    }

    /// The permission version: advanced by every change of who may do what.
    #[inline]
    pub fn perm_version(&self) -> u32 {
        self.u32_at(OFF_PERM_VERSION).load(Ordering::Acquire)
    }

    /// The sequence count: it moves with every change of the page, so a
    /// caller waiting for a change can watch it.
    #[inline]
    pub fn seq(&self) -> u32 {
        self.u32_at(OFF_SEQ).load(Ordering::Acquire)
    }

    /// The daemon's side: marks the object [`DAMAGED`] (no lock needed:
    /// a flag is one atomic word).
    pub fn mark_damaged(&self) {
        self.u32_at(OFF_FLAGS).fetch_or(DAMAGED, Ordering::AcqRel);
    }

    /// Reads consistently: runs `read` until no writer was active during
    /// it. `None` if a writer stays active through many tries (it may have
    /// died mid-change: the daemon repairs that) — ask the daemon then.
    pub fn read<T>(&self, mut read: impl FnMut(&StatePage) -> T) -> Option<T> {
        seqlock::read(self.u32_at(OFF_SEQ), 1000, || read(self))
    }

    /// Runs `read` once, with the result only if no writer was active
    /// during it (`None` otherwise: the caller asks the daemon). For a read
    /// too costly to repeat, or made of several steps (system calls among
    /// them) that must see one state.
    pub fn read_once<T>(&self, read: impl FnOnce() -> T) -> Option<T> {
        let mut read = Some(read);
        seqlock::read(self.u32_at(OFF_SEQ), 1, || read.take().map(|f| f()))?
    }

    fn lock_ptr(&self) -> Option<*mut libc::pthread_mutex_t> {
        const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= BODY - OFF_LOCK);
        self.at(OFF_LOCK, std::mem::size_of::<libc::pthread_mutex_t>()).map(|p| p.cast())
    }

    fn init_lock(&self) -> Result<(), Errno> {
        let m = self.lock_ptr().ok_or(Errno::EINVAL)?;
        // SAFETY: attr is a local that is initialised before use and
        // destroyed after; `m` points at the page's lock field, which no
        // other process uses yet (the magic is not written).
        unsafe {
            let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let r = check(libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED))
                .and_then(|()| check(libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST)))
                .and_then(|()| check(libc::pthread_mutex_init(m, attr.as_ptr())));
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            r
        }
    }

    /// Takes the page's lock to change it; waits at most `bound` (`None`:
    /// as long as it takes). A lock whose owner died is taken over: the
    /// owner's change is rolled back ([`Locked::Repaired`]).
    ///
    /// # Errors
    /// `EBADF` on a read-only mapping; `ETIMEDOUT` when `bound` passed;
    /// `ENOTRECOVERABLE` or `EINVAL` for a lock that is broken (a page
    /// scribbled on): the object is damaged.
    pub fn lock(&self, bound: Option<Duration>) -> Result<(Guard<&StatePage>, Locked), Errno> {
        lock_with(self, bound)
    }

    /// [`lock`](Self::lock), with a guard that owns a reference to the page.
    ///
    /// # Errors
    /// As [`lock`](Self::lock).
    pub fn lock_shared(
        this: &Arc<StatePage>,
        bound: Option<Duration>,
    ) -> Result<(Guard<Arc<StatePage>>, Locked), Errno> {
        lock_with(Arc::clone(this), bound)
    }

    #[inline]
    fn seq_odd(&self) -> bool {
        seqlock::writing(self.u32_at(OFF_SEQ))
    }
}

impl Drop for StatePage {
    fn drop(&mut self) {
        let addr = self.base.as_ptr() as usize as u64;
        // SAFETY: the range is this value's own mapping, reached by no
        // reference (every access went through atomics borrowed from self).
        let _ = unsafe { unmap(addr, self.len as u64) };
    }
}

/// How many pause instructions a caller spends on a held lock, trying it
/// every sixteenth, before it sleeps on the lock's futex (a few
/// microseconds).
const LOCK_SPINS: u32 = 256;

fn lock_with<P: Deref<Target = StatePage>>(page: P, bound: Option<Duration>) -> Result<(Guard<P>, Locked), Errno> {
    if !page.writable {
        return Err(Errno::EBADF);
    }
    let m = page.lock_ptr().ok_or(Errno::EINVAL)?;
    // SAFETY: `m` points at the page's lock field, initialised by the
    // daemon before the magic was written (checked by `open`); a
    // scribbled lock makes glibc fail or wait, never write elsewhere.
    let mut r = unsafe { libc::pthread_mutex_trylock(m) };
    // Held sections are a few hundred nanoseconds, and a holder on another
    // CPU wakes a futex sleeper only through the scheduler (tens of
    // microseconds on a VM): spin a little first, as glibc's adaptive
    // mutexes do (robust ones do not).
    let mut spins = 0;
    while r == libc::EBUSY && spins < LOCK_SPINS {
        std::hint::spin_loop();
        spins += 1;
        if spins.is_multiple_of(16) {
            // SAFETY: as above.
            r = unsafe { libc::pthread_mutex_trylock(m) };
        }
    }
    if r == libc::EBUSY {
        r = match bound {
            // SAFETY: as above.
            None => unsafe { libc::pthread_mutex_lock(m) },
            Some(d) => {
                let deadline = deadline_after(d);
                // SAFETY: as above; `deadline` is a valid timespec.
                unsafe { libc::pthread_mutex_timedlock(m, &deadline) }
            }
        };
    }
    match r {
        0 => {
            let dirty = page.u32_at(OFF_INFLIGHT).load(Ordering::Acquire) != 0 || page.seq_odd();
            let guard = Guard { page, used: 0, writing: false, flagged: Cell::new(false), held: Held::default() };
            if dirty {
                // A writer left a change in flight with the lock free:
                // only a scribble does that.
                guard.rollback();
                return Ok((guard, Locked::Repaired));
            }
            Ok((guard, Locked::Clean))
        }
        libc::EOWNERDEAD => {
            let guard = Guard { page, used: 0, writing: false, flagged: Cell::new(false), held: Held::default() };
            guard.rollback();
            // SAFETY: this thread holds the lock (EOWNERDEAD hands it over).
            check(unsafe { libc::pthread_mutex_consistent(m) })?;
            Ok((guard, Locked::Repaired))
        }
        e => Err(Errno::from_raw(e)),
    }
}

fn check(r: libc::c_int) -> Result<(), Errno> {
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw(r))
    }
}

fn deadline_after(d: Duration) -> libc::timespec {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default() + d;
    libc::timespec {
        tv_sec: libc::time_t::try_from(now.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(i32::try_from(now.subsec_nanos()).unwrap_or(0)),
    }
}

/// The stamp in the header of the page file `fd` ([`Guard::stamp`]), read
/// without mapping it (a restart choosing between a page and the recorded
/// state); 0 for a file too short to have one.
///
/// # Errors
/// `pread`'s.
pub fn stamp_of(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    let n = rustix::io::pread(fd, &mut b, OFF_STAMP as u64).map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    // The word was stored through an atomic: in native byte order.
    Ok(if n == b.len() { u64::from_ne_bytes(b) } else { 0 })
}

/// A kind's state page as the daemon gives it up (its object removed, its
/// namespace gone, or a new page made for it): every holder finds it
/// `REMOVED` and asks the daemon from then on.
pub trait Retire {
    /// The page's lock, with its kind's repair after a holder died.
    ///
    /// # Errors
    /// As the kind's own `lock`.
    fn lock_page(&self, bound: Duration) -> Result<(Guard<Arc<StatePage>>, Locked), Errno>;

    /// Marks the page `REMOVED` under its lock; a lock not had within
    /// `bound` leaves it as it is (its object is then damaged, which
    /// holders also read).
    fn retire(&self, bound: Duration) {
        if let Ok((guard, _)) = self.lock_page(bound) {
            guard.set_flags(REMOVED, 0);
        }
    }
}

/// The page's lock, held: changes go through it. Dropping it commits
/// (clears the journal, makes the sequence count even) and unlocks.
#[derive(Debug)]
pub struct Guard<P: Deref<Target = StatePage>> {
    page: P,
    /// Journal bytes used by this change.
    used: usize,
    /// Whether this change made the sequence count odd.
    writing: bool,
    /// Whether the flags or the permission version were set, or a dead
    /// writer's change rolled back.
    flagged: Cell<bool>,
    /// The fast words this guard holds.
    held: Held,
}

/// Ranges of fast words held, as `(first offset, stride, count)`: the
/// first inline (a whole set's, or a caller's one operation), more in a
/// vector.
#[derive(Debug, Default)]
struct Held {
    first: (usize, usize, usize),
    more: Vec<(usize, usize, usize)>,
}

impl Held {
    fn push(&mut self, range: (usize, usize, usize)) {
        if self.first.2 == 0 {
            self.first = range;
        } else {
            self.more.push(range);
        }
    }

    fn ranges(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        std::iter::once(self.first).chain(self.more.iter().copied())
    }
}

impl<P: Deref<Target = StatePage>> Guard<P> {
    /// The page.
    #[inline]
    pub fn page(&self) -> &StatePage {
        &self.page
    }

    /// Saves bytes `off..off + len` of the body before they change, so a
    /// death before the commit rolls them back; the first save makes the
    /// sequence count odd (readers retry until the commit).
    ///
    /// # Errors
    /// `ENOSPC` when the journal is full (nothing was changed by this
    /// call; the caller gives up its change before making any), `EINVAL`
    /// for a range outside the body.
    #[inline]
    pub fn save(&mut self, off: usize, len: usize) -> Result<(), Errno> {
        if off < BODY || off.checked_add(len).is_none_or(|end| end > BODY + self.page.body_len()) {
            return Err(Errno::EINVAL);
        }
        let (jstart, cap) = self.page.journal_range();
        let need = ENTRY_HEADER + round8(len);
        if self.used + need > cap {
            return Err(Errno::ENOSPC);
        }
        self.begin();
        let e = jstart + self.used;
        self.page.u32_at(e).store(u32::try_from(off).map_err(|_| Errno::EINVAL)?, Ordering::Relaxed);
        self.page.u32_at(e + 4).store(u32::try_from(len).map_err(|_| Errno::EINVAL)?, Ordering::Relaxed);
        copy_bytes(&self.page, off, e + ENTRY_HEADER, len);
        self.used += need;
        // The entry is complete before it counts.
        self.page.u32_at(OFF_INFLIGHT).store(u32::try_from(self.used).map_err(|_| Errno::EINVAL)?, Ordering::Release);
        Ok(())
    }

    /// Starts a change that needs no rollback (the daemon publishing its
    /// model: a death mid-way is the daemon's own crash): makes the
    /// sequence count odd until the commit.
    #[inline]
    pub fn begin(&mut self) {
        if !self.writing {
            seqlock::write_begin(self.page.u32_at(OFF_SEQ));
            self.writing = true;
        }
    }

    /// Holds `count` fast words, the first at `off`, `stride` bytes
    /// apart (in the body): no compare-and-swap changes them until this
    /// guard is dropped.
    pub fn hold_words(&mut self, off: usize, stride: usize, count: usize) {
        if count == 0 {
            return;
        }
        for i in 0..count {
            self.page.u32_at(off + i * stride).fetch_or(WORD_HELD, Ordering::Acquire);
        }
        self.held.push((off, stride, count));
    }

    /// Sets or clears flags.
    pub fn set_flags(&self, set: u32, clear: u32) {
        self.flagged.set(true);
        let f = self.page.u32_at(OFF_FLAGS);
        let v = (f.load(Ordering::Relaxed) | set) & !clear;
        f.store(v, Ordering::Release);
    }

    /// The daemon's side, at the end of a publish: the stamp of the state
    /// directory's record that holds what was published (a restart that
    /// finds a smaller stamp than the record's knows the daemon died
    /// between the two, and restores the recorded state).
    pub fn stamp(&self, v: u64) {
        self.page.u64_at(OFF_STAMP).store(v, Ordering::Release);
    }

    /// Sets the permission version.
    pub fn set_perm_version(&self, v: u32) {
        self.flagged.set(true);
        self.page.u32_at(OFF_PERM_VERSION).store(v, Ordering::Release);
    }

    /// Undoes a dead writer's change: the journal's ranges are restored,
    /// newest first, and the sequence count made even.
    fn rollback(&self) {
        self.flagged.set(true);
        let (jstart, cap) = self.page.journal_range();
        let used = usize::try_from(self.page.u32_at(OFF_INFLIGHT).load(Ordering::Acquire)).unwrap_or(0).min(cap);
        let mut entries = Vec::new();
        let mut at = 0;
        while at + ENTRY_HEADER <= used {
            let e = jstart + at;
            let off = usize::try_from(self.page.u32_at(e).load(Ordering::Relaxed)).unwrap_or(0);
            let len = usize::try_from(self.page.u32_at(e + 4).load(Ordering::Relaxed)).unwrap_or(0);
            let need = ENTRY_HEADER + round8(len);
            if at + need > used || off < BODY || off.saturating_add(len) > BODY + self.page.body_len() {
                break;
            }
            entries.push((off, e + ENTRY_HEADER, len));
            at += need;
        }
        for &(off, saved, len) in entries.iter().rev() {
            copy_bytes(&self.page, saved, off, len);
        }
        self.page.u32_at(OFF_INFLIGHT).store(0, Ordering::Release);
        if self.page.seq_odd() {
            self.page.u32_at(OFF_SEQ).fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl<P: Deref<Target = StatePage>> Drop for Guard<P> {
    fn drop(&mut self) {
        if self.writing {
            self.page.u32_at(OFF_INFLIGHT).store(0, Ordering::Release);
            seqlock::write_end(self.page.u32_at(OFF_SEQ));
        }
        // After the commit (a death from here on rolls nothing back, so no
        // change made without the lock can be undone), before the unlock
        // (the next holder's bits are its own). A hold that changed nothing
        // leaves the generation: a swap prepared before it is as good as
        // one made before it (and a caller watching the words for a change
        // does not see its own attempt as one).
        let next = if self.writing || self.flagged.get() { WORD_GENERATION } else { 0 };
        for (off, stride, count) in self.held.ranges() {
            for i in 0..count {
                let word = self.page.u32_at(off + i * stride);
                let w = word.load(Ordering::Relaxed);
                if w & WORD_HELD != 0 {
                    word.store((w & !WORD_HELD).wrapping_add(next), Ordering::Release);
                }
            }
        }
        if let Some(m) = self.page.lock_ptr() {
            // SAFETY: this guard holds the lock (made only by `lock`).
            unsafe { libc::pthread_mutex_unlock(m) };
        }
    }
}

/// Copies `len` bytes within the page through atomics: by words when both
/// ends and the length allow (every field is word-aligned), else by bytes
/// (the ranges are inside the page: callers checked them).
#[inline]
fn copy_bytes(page: &StatePage, from: usize, to: usize, len: usize) {
    if from.is_multiple_of(4) && to.is_multiple_of(4) && len.is_multiple_of(4) {
        for i in (0..len).step_by(4) {
            let v = page.u32_at(from + i).load(Ordering::Relaxed);
            page.u32_at(to + i).store(v, Ordering::Relaxed);
        }
        return;
    }
    for i in 0..len {
        let (Some(s), Some(d)) = (page.at(from + i, 1), page.at(to + i, 1)) else { return };
        // SAFETY: both in bounds (`at`); byte atomics need no alignment.
        let v = unsafe { std::sync::atomic::AtomicU8::from_ptr(s) }.load(Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::sync::atomic::AtomicU8::from_ptr(d) }.store(v, Ordering::Relaxed);
    }
}
