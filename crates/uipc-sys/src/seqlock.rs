//! A sequence count over a word in shared memory (a seqlock without its
//! lock): one writer at a time changes the data it guards — the writers
//! exclude each other by other means (the daemon's single thread, a page's
//! robust mutex) — and any number of readers in any process copy the data
//! without writing anything, retrying while a change was under way.
//!
//! The protocol (`include/linux/seqlock.h`'s `raw_write_seqcount_begin()`,
//! `read_seqcount_begin()`, `read_seqcount_retry()`): the count is odd
//! while a writer changes the data; a reader notes an even count before it
//! copies and checks afterwards that the count did not move. The data
//! itself must be read and written through atomics (the words are shared
//! with other processes, and a reader may see a torn copy before it
//! retries): this module orders those accesses, it does not make them.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
//! use uipc_sys::seqlock;
//!
//! let (seq, a, b) = (AtomicU32::new(0), AtomicU64::new(0), AtomicU64::new(0));
//! seqlock::write_begin(&seq);
//! a.store(1, Ordering::Relaxed);
//! b.store(1, Ordering::Relaxed);
//! seqlock::write_end(&seq);
//! let copy = seqlock::read(&seq, 100, || (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed)));
//! assert_eq!(copy, Some((1, 1)));
//! ```
//!
//! Nothing here is `unsafe`: the caller gets its `&AtomicU32` from the
//! mapping's own accessors (`state_page`, `shm_status`), which carry the
//! `// SAFETY:` reasoning for pointing into shared memory.

use std::sync::atomic::{fence, AtomicU32, Ordering};

/// Starts a read: the count to hand to [`read_retry`], or `None` while a
/// writer is active (odd count: try again later).
#[inline]
pub fn read_begin(seq: &AtomicU32) -> Option<u32> {
    let s = seq.load(Ordering::Acquire);
    s.is_multiple_of(2).then_some(s)
}

/// Ends a read begun at `begin`: `true` if a writer ran meanwhile and the
/// copy must be thrown away.
#[inline]
pub fn read_retry(seq: &AtomicU32, begin: u32) -> bool {
    // The data loads above may not move below the count's reload.
    fence(Ordering::Acquire);
    seq.load(Ordering::Relaxed) != begin
}

/// Starts a change: the count turns odd before any guarded word changes.
/// The caller must be the only writer (writers exclude each other by
/// other means).
#[inline]
pub fn write_begin(seq: &AtomicU32) {
    // The only writer: a plain store, not a locked read-modify-write
    // (which cost a few nanoseconds of each fast-path semop).
    seq.store(seq.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    // The guarded stores that follow may not move above the odd count.
    fence(Ordering::Release);
}

/// Ends a change: the count turns even after every guarded word changed.
#[inline]
pub fn write_end(seq: &AtomicU32) {
    seq.store(seq.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
}

/// Whether a change is under way (the count is odd): after its writer
/// died, for the one who repairs.
#[inline]
pub fn writing(seq: &AtomicU32) -> bool {
    seq.load(Ordering::Relaxed) % 2 == 1
}

/// Copies consistently: runs `copy` until no writer was active during it,
/// at most `tries` times. `None` if a writer stayed active throughout (it
/// may have died mid-change): ask whoever repairs then.
pub fn read<T>(seq: &AtomicU32, tries: u32, mut copy: impl FnMut() -> T) -> Option<T> {
    for _ in 0..tries {
        if let Some(begin) = read_begin(seq) {
            let v = copy();
            if !read_retry(seq, begin) {
                return Some(v);
            }
        }
        std::hint::spin_loop();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    #[test]
    fn an_odd_count_is_no_read() {
        let seq = AtomicU32::new(0);
        write_begin(&seq);
        assert!(writing(&seq));
        assert_eq!(read_begin(&seq), None);
        assert_eq!(read(&seq, 10, || 1), None);
        write_end(&seq);
        assert!(!writing(&seq));
        assert_eq!(read(&seq, 10, || 1), Some(1));
    }

    #[test]
    fn a_write_during_a_read_forces_a_retry() {
        let seq = AtomicU32::new(0);
        let begin = read_begin(&seq).unwrap();
        write_begin(&seq);
        write_end(&seq);
        assert!(read_retry(&seq, begin));
        let again = read_begin(&seq).unwrap();
        assert!(!read_retry(&seq, again));
    }

    /// Two words written together are never read apart.
    #[test]
    fn readers_never_see_a_torn_pair() {
        let shared = Arc::new((AtomicU32::new(0), AtomicU64::new(0), AtomicU64::new(0)));
        let writer = {
            let s = Arc::clone(&shared);
            std::thread::spawn(move || {
                for i in 1..=20_000u64 {
                    write_begin(&s.0);
                    s.1.store(i, Ordering::Relaxed);
                    s.2.store(i, Ordering::Relaxed);
                    write_end(&s.0);
                }
            })
        };
        let mut seen = 0;
        while seen < 20_000 {
            if let Some((a, b)) =
                read(&shared.0, 1000, || (shared.1.load(Ordering::Relaxed), shared.2.load(Ordering::Relaxed)))
            {
                assert_eq!(a, b);
                seen = a;
            }
        }
        writer.join().unwrap();
    }
}
