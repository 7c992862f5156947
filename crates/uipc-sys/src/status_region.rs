//! A namespace's *status region* for one kind of System V object: what
//! the `*_STAT` and `*_INFO` commands report, in memory every client of the
//! namespace may map read-only, so that a caller whose answer cannot have
//! changed since the daemon last published reads it without a round trip
//! (`docs/architecture.md`, "Queries without a round trip").
//!
//! The region is a state page ([`state_page`](crate::state_page)) of the
//! layout's kind. Its body is a *header* (what `IPC_INFO` and the like
//! report for the whole namespace) followed by one fixed-size *entry* per
//! registry slot (32768, `IPCMNI`: the file is sparse, only entries ever
//! written take memory). Only the daemon writes, from its one thread, so
//! the page lock is not used; the header and each entry have a sequence
//! count of their own ([`seqlock`]), odd while the daemon rewrites them.
//!
//! What an entry or header holds is the mechanism's: a [`Layout`] names
//! the page kind and two [`Words`] encoders, which turn the mechanism's
//! record into 32-bit words and back. This module knows nothing of the
//! fields; `shm_status` is the segments' layout.
//!
//! Body (bytes from its start):
//!
//! | offset | field |
//! |---|---|
//! | 0 | header: sequence count, then [`HEADER_WORDS`] words |
//! | 256 + 128 × idx | entry `idx`: sequence count, 1 if an object occupies the slot (else 0), then [`ENTRY_WORDS`] words |
//!
//! Layout version: the page header's ([`state_page::LAYOUT`]) plus the
//! kind; a change of this table or of a layout's encoders needs a new kind
//! number.

use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use uipc_abi::{Errno, Ipc64Perm, IPCMNI};

use crate::seqlock;
use crate::state_page::{self, Kind, StatePage, BODY, REMOVED};

/// Entries in a region: one per registry slot.
pub const ENTRIES: u32 = IPCMNI;
/// Bytes per entry.
pub const ENTRY: usize = 128;
/// Bytes of the header block.
pub const HEADER: usize = 256;
/// Payload words of an entry (after its count and presence word).
pub const ENTRY_WORDS: usize = ENTRY / 4 - 2;
/// Payload words of the header (after its count).
pub const HEADER_WORDS: usize = HEADER / 4 - 1;

/// A record stored as 32-bit words (an entry's or the header's payload).
pub trait Words: Sized {
    /// How many words it takes (at most [`ENTRY_WORDS`] for an entry,
    /// [`HEADER_WORDS`] for a header).
    const WORDS: usize;
    /// Writes the record into `w` (`WORDS` long).
    fn encode(&self, w: &mut Put<'_>);
    /// Reads a record back from `r` (`WORDS` long); any bit pattern must
    /// decode to something (a reader may see garbage it then discards).
    fn decode(r: &mut Take<'_>) -> Self;
}

/// What a region of one kind holds.
pub trait Layout {
    /// The state page kind.
    const KIND: Kind;
    /// One object's entry.
    type Entry: Words + Copy + PartialEq + std::fmt::Debug;
    /// The namespace's header.
    type Header: Words + Copy + PartialEq + std::fmt::Debug;
}

/// Writes words in order.
#[derive(Debug)]
pub struct Put<'a> {
    w: &'a mut [u32],
    at: usize,
}

impl Put<'_> {
    /// Appends one word (beyond the record's length: dropped).
    pub fn u32(&mut self, v: u32) {
        if let Some(slot) = self.w.get_mut(self.at) {
            *slot = v;
        }
        self.at += 1;
    }
    /// Appends a signed word.
    pub fn i32(&mut self, v: i32) {
        self.u32(v.cast_unsigned());
    }
    /// Appends two words, low first.
    pub fn u64(&mut self, v: u64) {
        let lo = u32::try_from(v & u64::from(u32::MAX)).unwrap_or(0);
        let hi = u32::try_from(v >> 32).unwrap_or(0);
        self.u32(lo);
        self.u32(hi);
    }
    /// Appends a signed 64-bit value.
    pub fn i64(&mut self, v: i64) {
        self.u64(v.cast_unsigned());
    }
}

/// Reads words in order.
#[derive(Debug)]
pub struct Take<'a> {
    w: &'a [u32],
    at: usize,
}

impl Take<'_> {
    /// The next word (beyond the record: 0).
    pub fn u32(&mut self) -> u32 {
        let v = self.w.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v
    }
    /// The next word, signed.
    pub fn i32(&mut self) -> i32 {
        self.u32().cast_signed()
    }
    /// The next two words, low first.
    pub fn u64(&mut self) -> u64 {
        let lo = u64::from(self.u32());
        lo | u64::from(self.u32()) << 32
    }
    /// The next two words, signed.
    pub fn i64(&mut self) -> i64 {
        self.u64().cast_signed()
    }
}

/// Writes an `ipc64_perm`'s key, uid, gid, cuid, cgid, mode and `__seq`
/// (7 words; every layout's entry carries one).
pub fn put_perm(w: &mut Put<'_>, perm: &Ipc64Perm) {
    w.i32(perm.key);
    for v in [perm.uid, perm.gid, perm.cuid, perm.cgid, perm.mode] {
        w.u32(v);
    }
    w.u32(u32::from(perm.seq));
}

/// Reads what [`put_perm`] wrote.
pub fn take_perm(r: &mut Take<'_>) -> Ipc64Perm {
    Ipc64Perm {
        key: r.i32(),
        uid: r.u32(),
        gid: r.u32(),
        cuid: r.u32(),
        cgid: r.u32(),
        mode: r.u32(),
        seq: u16::try_from(r.u32()).unwrap_or(u16::MAX),
        ..Ipc64Perm::default()
    }
}

/// Pids an entry lists; an object with more is answered by the daemon.
pub const MAX_PIDS: usize = 7;

/// Written as the count when there are more than [`MAX_PIDS`] pids.
const TOO_MANY: u32 = u32::MAX;

/// The processes whose death would change an entry (the daemon learns of a
/// death through a pidfd, a little after the kernel made it visible —
/// `wait()` returned — so a reader checks that none of them has died
/// before it trusts the entry). [`WORDS`](Pids::WORDS) words: the count,
/// then the pids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pids {
    pids: [u32; MAX_PIDS],
    /// How many of `pids` count; `None`: more than [`MAX_PIDS`].
    n: Option<usize>,
}

impl Pids {
    /// Words it takes.
    pub const WORDS: usize = 1 + MAX_PIDS;

    /// The list `pids`.
    pub fn new(pids: &[u32]) -> Pids {
        let mut fixed = [0; MAX_PIDS];
        let n = (pids.len() <= MAX_PIDS).then(|| {
            fixed[..pids.len()].copy_from_slice(pids);
            pids.len()
        });
        Pids { pids: fixed, n }
    }

    /// The pids; `None`: too many to list (ask the daemon).
    pub fn get(&self) -> Option<&[u32]> {
        self.n.map(|n| &self.pids[..n.min(MAX_PIDS)])
    }

    /// Writes the list.
    pub fn put(&self, w: &mut Put<'_>) {
        let pids = self.get();
        w.u32(pids.map_or(TOO_MANY, |p| u32::try_from(p.len()).unwrap_or(TOO_MANY)));
        for i in 0..MAX_PIDS {
            w.u32(pids.and_then(|p| p.get(i)).copied().unwrap_or(0));
        }
    }

    /// Reads what [`put`](Self::put) wrote.
    pub fn take(r: &mut Take<'_>) -> Pids {
        let n = usize::try_from(r.u32()).ok().filter(|n| *n <= MAX_PIDS);
        let mut pids = [0; MAX_PIDS];
        for pid in &mut pids {
            *pid = r.u32();
        }
        Pids { pids, n }
    }
}

/// A namespace's status region of layout `L`, mapped.
#[derive(Debug)]
pub struct StatusRegion<L: Layout> {
    page: StatePage,
    _layout: PhantomData<L>,
}

impl<L: Layout> StatusRegion<L> {
    /// The region's file length.
    pub fn len() -> u64 {
        state_page::page_len(HEADER + ENTRY * ENTRIES as usize, 0)
    }

    /// The daemon's side: lays out a region in the zero-filled file `fd`
    /// of [`len`](Self::len) bytes (every slot vacant, the header zero).
    ///
    /// # Errors
    /// `mmap`'s.
    pub fn create(fd: BorrowedFd<'_>) -> Result<Self, Errno> {
        const { assert!(L::Entry::WORDS <= ENTRY_WORDS && L::Header::WORDS <= HEADER_WORDS) };
        Ok(StatusRegion { page: StatePage::create(fd, Self::len(), L::KIND, 0)?, _layout: PhantomData })
    }

    /// A client's side: maps the region the daemon handed out, read-only.
    ///
    /// # Errors
    /// `EPROTO` for a file that is not a region of this layout; `mmap`'s.
    pub fn open(fd: BorrowedFd<'_>) -> Result<Self, Errno> {
        let page = StatePage::open(fd, L::KIND, false)?;
        if page.body_len() < HEADER + ENTRY * ENTRIES as usize {
            return Err(Errno::EPROTO);
        }
        Ok(StatusRegion { page, _layout: PhantomData })
    }

    /// Whether the daemon gave the region up (its namespace was removed):
    /// nothing in it is current.
    pub fn is_dead(&self) -> bool {
        self.page.flags() & REMOVED != 0
    }

    /// The daemon's side: gives the region up (see [`is_dead`](Self::is_dead)).
    pub fn mark_dead(&self) {
        // Only the daemon maps the region writable and it never holds the
        // lock otherwise, so it is had at once.
        if let Ok((guard, _)) = self.page.lock(Some(Duration::from_millis(100))) {
            guard.set_flags(REMOVED, 0);
        } else {
            self.page.mark_damaged();
        }
    }

    /// Byte offset of word `word` of the block at body offset `block`.
    fn word(block: usize, word: usize) -> usize {
        BODY + block + 4 * word
    }

    fn entry_block(idx: u32) -> usize {
        HEADER + ENTRY * (idx % ENTRIES) as usize
    }

    /// Rewrites the block at `block` (count at word 0) under its count:
    /// `present` (if `Some`) at word 1, then `payload` from word `first`.
    fn write_block(&self, block: usize, present: Option<u32>, first: usize, payload: &[u32]) {
        let p = &self.page;
        let seq = p.u32_at(Self::word(block, 0));
        seqlock::write_begin(seq);
        if let Some(v) = present {
            p.u32_at(Self::word(block, 1)).store(v, Ordering::Relaxed);
        }
        for (i, v) in payload.iter().enumerate() {
            p.u32_at(Self::word(block, first + i)).store(*v, Ordering::Relaxed);
        }
        seqlock::write_end(seq);
    }

    /// The daemon's side: shows slot `idx` as holding `entry` (`None`:
    /// vacant). The daemon is the only writer (one thread).
    pub fn publish(&self, idx: u32, entry: Option<&L::Entry>) {
        let block = Self::entry_block(idx);
        match entry {
            None => self.write_block(block, Some(0), 2, &[]),
            Some(e) => {
                let mut w = [0u32; ENTRY_WORDS];
                e.encode(&mut Put { w: &mut w, at: 0 });
                self.write_block(block, Some(1), 2, &w[..L::Entry::WORDS]);
            }
        }
    }

    /// The daemon's side: rewrites the header.
    pub fn publish_header(&self, header: &L::Header) {
        let mut w = [0u32; HEADER_WORDS];
        header.encode(&mut Put { w: &mut w, at: 0 });
        self.write_block(0, None, 1, &w[..L::Header::WORDS]);
    }

    /// Copies `n` words from word `first` of the block at `block` under
    /// its count, with the presence word; `None` if the daemon stayed in
    /// the middle of rewriting it.
    fn read_block<const N: usize>(&self, block: usize, first: usize, n: usize) -> Option<(u32, [u32; N])> {
        let p = &self.page;
        seqlock::read(p.u32_at(Self::word(block, 0)), 1000, || {
            let present = p.u32_at(Self::word(block, 1)).load(Ordering::Relaxed);
            let mut w = [0u32; N];
            for (i, v) in w.iter_mut().enumerate().take(n) {
                *v = p.u32_at(Self::word(block, first + i)).load(Ordering::Relaxed);
            }
            (present, w)
        })
    }

    /// Reads slot `idx` (`id % 32768`) consistently: `Some(None)` if it is
    /// vacant; `None` if the daemon stayed in the middle of rewriting it
    /// (ask the daemon then).
    pub fn read(&self, idx: u32) -> Option<Option<L::Entry>> {
        let (present, w) = self.read_block::<ENTRY_WORDS>(Self::entry_block(idx), 2, L::Entry::WORDS)?;
        Some((present == 1).then(|| L::Entry::decode(&mut Take { w: &w[..L::Entry::WORDS], at: 0 })))
    }

    /// Reads the header consistently; `None` as for [`read`](Self::read).
    pub fn header(&self) -> Option<L::Header> {
        let (_, w) = self.read_block::<HEADER_WORDS>(0, 1, L::Header::WORDS)?;
        Some(L::Header::decode(&mut Take { w: &w[..L::Header::WORDS], at: 0 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Pair(u64, i32);

    impl Words for Pair {
        const WORDS: usize = 3;
        fn encode(&self, w: &mut Put<'_>) {
            w.u64(self.0);
            w.i32(self.1);
        }
        fn decode(r: &mut Take<'_>) -> Self {
            Pair(r.u64(), r.i32())
        }
    }

    struct Test;
    impl Layout for Test {
        const KIND: Kind = Kind::ShmStatus;
        type Entry = Pair;
        type Header = Pair;
    }

    #[test]
    fn entries_and_header_round_trip() {
        let file = crate::memfd::sealed("status-test", StatusRegion::<Test>::len()).unwrap();
        let region = StatusRegion::<Test>::create(file.fd()).unwrap();
        assert_eq!(region.read(5), Some(None));
        region.publish(5, Some(&Pair(u64::MAX - 1, -3)));
        region.publish_header(&Pair(1 << 40, 7));
        let client = StatusRegion::<Test>::open(file.fd()).unwrap();
        assert_eq!(client.read(5), Some(Some(Pair(u64::MAX - 1, -3))));
        assert_eq!(client.read(5 + ENTRIES), Some(Some(Pair(u64::MAX - 1, -3))));
        assert_eq!(client.read(6), Some(None));
        assert_eq!(client.header(), Some(Pair(1 << 40, 7)));
        region.publish(5, None);
        assert_eq!(client.read(5), Some(None));
        assert!(!client.is_dead());
        region.mark_dead();
        assert!(client.is_dead());
    }
}
