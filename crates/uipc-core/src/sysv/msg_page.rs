//! The state page of a System V message queue (docs/architecture.md, "The
//! data plane"): its body layout and the storage operations the core's
//! send and receive rules ([`super::msg`]) run on, in the caller (the fast
//! path) and in the daemon (adopt and publish).
//!
//! # Layout (body version [`BODY_VERSION`])
//!
//! Plain little-endian `u64`s at fixed offsets from the body's start, no
//! pointers, bounded by the geometry fixed when the page is formatted
//! (from `qbytes`, [`MsgGeometry::for_queue`]):
//!
//! | offset | what |
//! |---|---|
//! | 0 | magic `UIPCMSGQ`, body version, `idx_cap`, `arena_cap` |
//! | 32 | the control block ([`MsgCtrl`], 14 words): counters, pids, times, where the live index and text lie, the queue's version |
//! | 144 | the in-flight record: a valid word and the control block's pre-image |
//! | 320 | two index halves of `idx_cap` records `(mtype: i64, offset: u32, length: u32)` |
//! | … | two text arenas of `arena_cap` bytes |
//!
//! Only one index half and one arena half are live (the control block
//! says which). A change writes text and records where nothing live is
//! (past the live records, past the arena's end, or into the other half
//! when it compacts) and then commits by rewriting the control block under
//! its pre-image: the writer stores the old block and sets the valid word,
//! writes the new block, clears the valid word. A writer that dies
//! between leaves the valid word set; the next locker ([`recover`]) puts
//! the pre-image back, so the interrupted operation did not happen.
//!
//! Every value read from a page is checked against the geometry before it
//! is used: a page a client scribbled over yields [`Errno::EUCLEAN`]
//! (damaged), never a panic or an access out of bounds.

use uipc_abi::Errno;

use super::msg::MsgStore;
use crate::cred::Pid;
use crate::time::Time;

/// Bytes of shared memory a page lives in: bounds-checked copies.
/// Implemented by `[u8]` (tests, the heap) and by a mapping.
pub trait PageBytes {
    /// Length in bytes.
    fn size(&self) -> usize;
    /// Copies `out.len()` bytes at `off` out.
    ///
    /// # Errors
    /// `EUCLEAN` past the end.
    fn read(&self, off: usize, out: &mut [u8]) -> Result<(), Errno>;
    /// Copies `data` in at `off`.
    ///
    /// # Errors
    /// `EUCLEAN` past the end.
    fn write(&mut self, off: usize, data: &[u8]) -> Result<(), Errno>;
    /// Orders the writes before it before the writes after it, as other
    /// processes (and a locker after this one's death) see them.
    fn fence(&self) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
    /// Reads a `u64` at `off`.
    ///
    /// # Errors
    /// `EUCLEAN` past the end.
    fn u64_at(&self, off: usize) -> Result<u64, Errno> {
        let mut b = [0u8; 8];
        self.read(off, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Writes a `u64` at `off`.
    ///
    /// # Errors
    /// `EUCLEAN` past the end.
    fn set_u64(&mut self, off: usize, v: u64) -> Result<(), Errno> {
        self.write(off, &v.to_le_bytes())
    }
}

impl PageBytes for [u8] {
    fn size(&self) -> usize {
        self.len()
    }
    fn read(&self, off: usize, out: &mut [u8]) -> Result<(), Errno> {
        let end = off.checked_add(out.len()).ok_or(Errno::EUCLEAN)?;
        out.copy_from_slice(self.get(off..end).ok_or(Errno::EUCLEAN)?);
        Ok(())
    }
    fn write(&mut self, off: usize, data: &[u8]) -> Result<(), Errno> {
        let end = off.checked_add(data.len()).ok_or(Errno::EUCLEAN)?;
        self.get_mut(off..end).ok_or(Errno::EUCLEAN)?.copy_from_slice(data);
        Ok(())
    }
}

/// A control block of `N` words (at most 16) at `off`.
///
/// # Errors
/// `EUCLEAN` past the end.
pub fn load_block<B: PageBytes + ?Sized, const N: usize>(b: &B, off: usize) -> Result<[u64; N], Errno> {
    // One bulk copy (a mapping's `read` is a call per copy), at most 16 words.
    let mut raw = [0u8; 128];
    let raw = raw.get_mut(..8 * N).ok_or(Errno::EUCLEAN)?;
    b.read(off, raw)?;
    let mut w = [0u64; N];
    for (x, c) in w.iter_mut().zip(raw.chunks_exact(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(c);
        *x = u64::from_le_bytes(le);
    }
    Ok(w)
}

/// Writes a control block of `N` words (at most 16) at `off`, in one copy.
///
/// # Errors
/// `EUCLEAN` past the end.
pub fn store_block<B: PageBytes + ?Sized, const N: usize>(b: &mut B, off: usize, w: &[u64; N]) -> Result<(), Errno> {
    let mut raw = [0u8; 128];
    let raw = raw.get_mut(..8 * N).ok_or(Errno::EUCLEAN)?;
    for (c, x) in raw.chunks_exact_mut(8).zip(w) {
        c.copy_from_slice(&x.to_le_bytes());
    }
    b.write(off, raw)
}

/// Where a body keeps its control block and the block's pre-image: the
/// block at `ctrl`, the valid word at `pre_valid`, the pre-image at `pre`.
#[derive(Clone, Copy, Debug)]
pub struct Journal {
    /// The control block.
    pub ctrl: usize,
    /// The pre-image's valid word.
    pub pre_valid: usize,
    /// The pre-image.
    pub pre: usize,
}

impl Journal {
    /// Commits a control block: the pre-image `orig` stored and flagged
    /// valid, the new block `new` written, the flag cleared (each step
    /// ordered before the next). A writer that dies between leaves the
    /// flag set for [`recover`](Self::recover).
    ///
    /// # Errors
    /// `EUCLEAN` if the page is short.
    pub fn commit<B: PageBytes + ?Sized, const N: usize>(
        self,
        b: &mut B,
        orig: &[u64; N],
        new: &[u64; N],
    ) -> Result<(), Errno> {
        store_block(b, self.pre, orig)?;
        b.fence();
        b.set_u64(self.pre_valid, 1)?;
        b.fence();
        store_block(b, self.ctrl, new)?;
        b.fence();
        b.set_u64(self.pre_valid, 0)
    }

    /// After a holder's death: puts a flagged pre-image of `N` words back.
    /// Returns whether it did.
    ///
    /// # Errors
    /// `EUCLEAN` if the page is short.
    pub fn recover<B: PageBytes + ?Sized, const N: usize>(self, b: &mut B) -> Result<bool, Errno> {
        if b.u64_at(self.pre_valid)? == 0 {
            return Ok(false);
        }
        let pre: [u64; N] = load_block(b, self.pre)?;
        store_block(b, self.ctrl, &pre)?;
        b.fence();
        b.set_u64(self.pre_valid, 0)?;
        Ok(true)
    }
}

/// `"UIPCMSGQ"`.
pub const BODY_MAGIC: u64 = u64::from_le_bytes(*b"UIPCMSGQ");
/// The body layout's version; a page of another version is not read.
pub const BODY_VERSION: u64 = 1;
/// The most `qbytes` a queue may have and keep a page: above it the queue
/// lives in the daemon only (every call a round trip).
pub const PAGE_QBYTES_MAX: u64 = 1 << 18;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_IDX_CAP: usize = 16;
const OFF_ARENA_CAP: usize = 24;
const OFF_CTRL: usize = 32;
const CTRL_WORDS: usize = 14;
const CTRL_LEN: usize = CTRL_WORDS * 8;
/// Where the control block's `version` word lies (a caller waiting for
/// the queue to change watches it without the lock).
pub const OFF_CTRL_VERSION: usize = OFF_CTRL + 13 * 8;
const OFF_PRE_VALID: usize = OFF_CTRL + CTRL_LEN;
const OFF_PRE: usize = OFF_PRE_VALID + 8;
const OFF_INDEX: usize = 320;
const JOURNAL: Journal = Journal { ctrl: OFF_CTRL, pre_valid: OFF_PRE_VALID, pre: OFF_PRE };
const REC: usize = 16;

/// The queue's control block: what a commit changes at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgCtrl {
    /// `msg_qbytes`.
    pub qbytes: u64,
    /// `msg_cbytes`.
    pub cbytes: u64,
    /// `msg_qnum`.
    pub qnum: u64,
    /// `msg_lspid`.
    pub lspid: u64,
    /// `msg_lrpid`.
    pub lrpid: u64,
    /// `msg_stime`.
    pub stime: i64,
    /// `msg_rtime`.
    pub rtime: i64,
    /// `msg_ctime`.
    pub ctime: i64,
    /// The namespace's `msgmax` as the daemon last published it.
    pub msgmax: u64,
    /// The live index half (0 or 1).
    pub idx_half: u64,
    /// First live record in it.
    pub idx_head: u64,
    /// The live arena half (0 or 1).
    pub arena_half: u64,
    /// First free byte of the live arena.
    pub arena_end: u64,
    /// The queue's version (`msg_version`): advanced by every change.
    pub version: u64,
}

impl MsgCtrl {
    fn words(&self) -> [u64; CTRL_WORDS] {
        [
            self.qbytes,
            self.cbytes,
            self.qnum,
            self.lspid,
            self.lrpid,
            self.stime.cast_unsigned(),
            self.rtime.cast_unsigned(),
            self.ctime.cast_unsigned(),
            self.msgmax,
            self.idx_half,
            self.idx_head,
            self.arena_half,
            self.arena_end,
            self.version,
        ]
    }

    fn from_words(w: [u64; CTRL_WORDS]) -> MsgCtrl {
        MsgCtrl {
            qbytes: w[0],
            cbytes: w[1],
            qnum: w[2],
            lspid: w[3],
            lrpid: w[4],
            stime: w[5].cast_signed(),
            rtime: w[6].cast_signed(),
            ctime: w[7].cast_signed(),
            msgmax: w[8],
            idx_half: w[9],
            idx_head: w[10],
            arena_half: w[11],
            arena_end: w[12],
            version: w[13],
        }
    }

    fn load<B: PageBytes + ?Sized>(b: &B, off: usize) -> Result<MsgCtrl, Errno> {
        Ok(MsgCtrl::from_words(load_block(b, off)?))
    }
}

/// A page's fixed capacities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgGeometry {
    /// Records per index half.
    pub idx_cap: u64,
    /// Bytes per arena half.
    pub arena_cap: u64,
}

impl MsgGeometry {
    /// The geometry for a queue holding `qnum` messages of `cbytes` bytes
    /// with room `qbytes`: `msg_fits_inqueue()` bounds both counts by
    /// `qbytes`, and a queue whose `qbytes` was lowered may hold more.
    /// `None` above [`PAGE_QBYTES_MAX`].
    pub fn for_queue(qbytes: u64, qnum: u64, cbytes: u64) -> Option<MsgGeometry> {
        let idx_cap = qbytes.max(qnum).max(1);
        let text = qbytes.max(cbytes);
        if idx_cap > PAGE_QBYTES_MAX || text > PAGE_QBYTES_MAX {
            return None;
        }
        // Twice the text a queue may hold, so a full queue does not compact at every send.
        Some(MsgGeometry { idx_cap, arena_cap: text.saturating_mul(2).max(64) })
    }

    /// Whether a queue with these counts fits.
    pub fn holds(&self, qbytes: u64, qnum: u64, cbytes: u64) -> bool {
        MsgGeometry::for_queue(qbytes, qnum, cbytes)
            .is_some_and(|g| g.idx_cap <= self.idx_cap && g.arena_cap <= self.arena_cap)
    }

    /// Bytes of the body.
    pub fn body_len(&self) -> u64 {
        OFF_INDEX as u64 + 2 * self.idx_cap * REC as u64 + 2 * self.arena_cap
    }

    fn index_at(&self, half: u64, i: u64) -> Result<usize, Errno> {
        usize::try_from(OFF_INDEX as u64 + (half * self.idx_cap + i) * REC as u64).map_err(|_| Errno::EUCLEAN)
    }

    fn arena_at(&self, half: u64, off: u64) -> Result<usize, Errno> {
        usize::try_from(OFF_INDEX as u64 + 2 * self.idx_cap * REC as u64 + half * self.arena_cap + off)
            .map_err(|_| Errno::EUCLEAN)
    }
}

/// One index record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgRecord {
    /// `mtype`.
    pub mtype: i64,
    /// Offset of the text in the live arena.
    pub off: u64,
    /// Text length.
    pub len: u64,
}

/// Writes an empty queue's body: geometry, control block, no record.
///
/// # Errors
/// `EUCLEAN` if `b` is shorter than the geometry's body.
pub fn format<B: PageBytes + ?Sized>(b: &mut B, geo: MsgGeometry, ctrl: MsgCtrl) -> Result<(), Errno> {
    if (b.size() as u64) < geo.body_len() {
        return Err(Errno::EUCLEAN);
    }
    b.set_u64(OFF_PRE_VALID, 0)?;
    b.set_u64(OFF_IDX_CAP, geo.idx_cap)?;
    b.set_u64(OFF_ARENA_CAP, geo.arena_cap)?;
    let ctrl = MsgCtrl { idx_half: 0, idx_head: 0, arena_half: 0, arena_end: 0, qnum: 0, cbytes: 0, ..ctrl };
    store_block(b, OFF_CTRL, &ctrl.words())?;
    b.set_u64(OFF_VERSION, BODY_VERSION)?;
    b.fence();
    b.set_u64(OFF_MAGIC, BODY_MAGIC)
}

/// After the previous holder of the page's lock died: if it was inside a
/// commit, puts the control block's pre-image back (its operation did not
/// happen). Returns whether it rolled back.
///
/// # Errors
/// `EUCLEAN` if the page is too short to hold a body.
pub fn recover<B: PageBytes + ?Sized>(b: &mut B) -> Result<bool, Errno> {
    JOURNAL.recover::<B, CTRL_WORDS>(b)
}

/// A queue's page, opened under its lock: the control block as read, and
/// the changes of one operation until [`commit`](Self::commit).
#[derive(Debug)]
pub struct MsgPage<'a, B: PageBytes + ?Sized> {
    b: &'a mut B,
    geo: MsgGeometry,
    orig: MsgCtrl,
    ctrl: MsgCtrl,
}

impl<'a, B: PageBytes + ?Sized> MsgPage<'a, B> {
    /// Opens a page: magic, version and geometry against its length, and
    /// the control block against the geometry (constant time; records are
    /// checked as they are read).
    ///
    /// # Errors
    /// `EUCLEAN` for anything out of place, including a commit in flight
    /// (a writer that died: call [`recover`] first).
    pub fn open(b: &'a mut B) -> Result<Self, Errno> {
        if b.u64_at(OFF_MAGIC)? != BODY_MAGIC || b.u64_at(OFF_VERSION)? != BODY_VERSION {
            return Err(Errno::EUCLEAN);
        }
        let geo = MsgGeometry { idx_cap: b.u64_at(OFF_IDX_CAP)?, arena_cap: b.u64_at(OFF_ARENA_CAP)? };
        let sane = geo.idx_cap >= 1
            && geo.idx_cap <= PAGE_QBYTES_MAX
            && geo.arena_cap <= 2 * PAGE_QBYTES_MAX.max(64)
            && geo.body_len() <= b.size() as u64;
        if !sane || b.u64_at(OFF_PRE_VALID)? != 0 {
            return Err(Errno::EUCLEAN);
        }
        let ctrl = MsgCtrl::load(b, OFF_CTRL)?;
        let ok = ctrl.idx_half <= 1
            && ctrl.arena_half <= 1
            && ctrl.qnum <= geo.idx_cap
            && ctrl.idx_head <= geo.idx_cap - ctrl.qnum
            && ctrl.arena_end <= geo.arena_cap
            && ctrl.cbytes <= ctrl.arena_end
            && ctrl.lspid <= u64::from(u32::MAX)
            && ctrl.lrpid <= u64::from(u32::MAX);
        if !ok {
            return Err(Errno::EUCLEAN);
        }
        Ok(MsgPage { b, geo, orig: ctrl, ctrl })
    }

    /// The geometry.
    pub fn geometry(&self) -> MsgGeometry {
        self.geo
    }

    /// The control block with this operation's changes.
    pub fn ctrl(&self) -> &MsgCtrl {
        &self.ctrl
    }

    /// Sets fields of the control block (the daemon's publish).
    pub fn ctrl_mut(&mut self) -> &mut MsgCtrl {
        &mut self.ctrl
    }

    /// Record `i` (0 = the queue's head), checked: `mtype` ≥ 1 and the
    /// text inside the live arena.
    ///
    /// # Errors
    /// `EUCLEAN` for a bad record; `EINVAL` past the queue's end.
    pub fn record(&self, i: u64) -> Result<MsgRecord, Errno> {
        if i >= self.ctrl.qnum {
            return Err(Errno::EINVAL);
        }
        let at = self.geo.index_at(self.ctrl.idx_half, self.ctrl.idx_head + i)?;
        let mut raw = [0u8; REC];
        self.b.read(at, &mut raw)?;
        let (t, o) = raw.split_at(8);
        let mtype = i64::from_le_bytes(t.try_into().map_err(|_| Errno::EUCLEAN)?);
        let (o, l) = o.split_at(4);
        let off = u64::from(u32::from_le_bytes(o.try_into().map_err(|_| Errno::EUCLEAN)?));
        let len = u64::from(u32::from_le_bytes(l.try_into().map_err(|_| Errno::EUCLEAN)?));
        if mtype < 1 || off.checked_add(len).is_none_or(|e| e > self.ctrl.arena_end) {
            return Err(Errno::EUCLEAN);
        }
        Ok(MsgRecord { mtype, off, len })
    }

    fn put_record(&mut self, half: u64, slot: u64, r: MsgRecord) -> Result<(), Errno> {
        let mut raw = [0u8; REC];
        raw[..8].copy_from_slice(&r.mtype.to_le_bytes());
        raw[8..12].copy_from_slice(&u32::try_from(r.off).map_err(|_| Errno::EUCLEAN)?.to_le_bytes());
        raw[12..].copy_from_slice(&u32::try_from(r.len).map_err(|_| Errno::EUCLEAN)?.to_le_bytes());
        self.b.write(self.geo.index_at(half, slot)?, &raw)
    }

    /// Copies the first `out.len()` bytes of record `r`'s text out.
    ///
    /// # Errors
    /// `EUCLEAN` if `out` is longer than the text or the page is short.
    pub fn text(&self, r: &MsgRecord, out: &mut [u8]) -> Result<(), Errno> {
        if out.len() as u64 > r.len {
            return Err(Errno::EUCLEAN);
        }
        self.b.read(self.geo.arena_at(self.ctrl.arena_half, r.off)?, out)
    }

    /// Copies the live records (and, with `texts`, their text) into the
    /// other halves, packed from 0, and makes those live.
    fn compact(&mut self, texts: bool, skip: Option<u64>) -> Result<(), Errno> {
        let (ih, ah) = (1 - self.ctrl.idx_half, if texts { 1 - self.ctrl.arena_half } else { self.ctrl.arena_half });
        let mut end = 0u64;
        let mut slot = 0u64;
        let mut buf = Vec::new();
        for i in 0..self.ctrl.qnum {
            if Some(i) == skip {
                continue;
            }
            let mut r = self.record(i)?;
            if texts {
                buf.resize(usize::try_from(r.len).map_err(|_| Errno::EUCLEAN)?, 0);
                self.text(&r, &mut buf)?;
                self.b.write(self.geo.arena_at(ah, end)?, &buf)?;
                r.off = end;
                end += r.len;
            }
            self.put_record(ih, slot, r)?;
            slot += 1;
        }
        self.ctrl.idx_half = ih;
        self.ctrl.idx_head = 0;
        self.ctrl.qnum = slot;
        if texts {
            self.ctrl.arena_half = ah;
            self.ctrl.arena_end = end;
        }
        Ok(())
    }

    /// Appends a message (text and record); counters follow.
    ///
    /// # Errors
    /// `ENOMEM` if the page cannot hold it (the daemon re-formats a bigger
    /// one); `EUCLEAN` for a damaged page.
    pub fn push(&mut self, mtype: i64, data: &[u8]) -> Result<(), Errno> {
        let len = data.len() as u64;
        if self.ctrl.qnum >= self.geo.idx_cap || self.ctrl.cbytes.saturating_add(len) > self.geo.arena_cap {
            return Err(Errno::ENOMEM);
        }
        if self.ctrl.qnum == 0 {
            self.ctrl.idx_head = 0;
            self.ctrl.arena_end = 0;
        }
        if self.ctrl.arena_end + len > self.geo.arena_cap {
            self.compact(true, None)?;
        } else if self.ctrl.idx_head + self.ctrl.qnum >= self.geo.idx_cap {
            self.compact(false, None)?;
        }
        let off = self.ctrl.arena_end;
        self.b.write(self.geo.arena_at(self.ctrl.arena_half, off)?, data)?;
        self.put_record(self.ctrl.idx_half, self.ctrl.idx_head + self.ctrl.qnum, MsgRecord { mtype, off, len })?;
        self.ctrl.qnum += 1;
        self.ctrl.cbytes += len;
        self.ctrl.arena_end += len;
        Ok(())
    }

    /// Removes record `i`; counters follow.
    ///
    /// # Errors
    /// `EUCLEAN` for a damaged page, `EINVAL` past the end.
    pub fn remove(&mut self, i: u64) -> Result<(), Errno> {
        let r = self.record(i)?;
        if i == 0 {
            self.ctrl.idx_head += 1;
            self.ctrl.qnum -= 1;
        } else {
            self.compact(false, Some(i))?;
        }
        self.ctrl.cbytes = self.ctrl.cbytes.checked_sub(r.len).ok_or(Errno::EUCLEAN)?;
        if self.ctrl.qnum == 0 {
            self.ctrl.idx_head = 0;
            self.ctrl.arena_end = 0;
        }
        Ok(())
    }

    /// Empties the queue (the daemon's publish starts from here): the
    /// other halves become live, so what the pre-image names stays intact.
    pub fn clear(&mut self) {
        self.ctrl.idx_half = 1 - self.ctrl.idx_half;
        self.ctrl.arena_half = 1 - self.ctrl.arena_half;
        self.ctrl.qnum = 0;
        self.ctrl.cbytes = 0;
        self.ctrl.idx_head = 0;
        self.ctrl.arena_end = 0;
    }

    /// Makes this operation's changes the page's state: the pre-image, the
    /// new control block, the pre-image dropped. Nothing is written if
    /// nothing changed.
    ///
    /// # Errors
    /// `EUCLEAN` if the page is short.
    pub fn commit(&mut self) -> Result<(), Errno> {
        if self.ctrl == self.orig {
            return Ok(());
        }
        JOURNAL.commit(self.b, &self.orig.words(), &self.ctrl.words())?;
        self.orig = self.ctrl;
        Ok(())
    }
}

impl<B: PageBytes + ?Sized> MsgStore for MsgPage<'_, B> {
    fn qnum(&self) -> u64 {
        self.ctrl.qnum
    }
    fn cbytes(&self) -> u64 {
        self.ctrl.cbytes
    }
    fn qbytes(&self) -> u64 {
        self.ctrl.qbytes
    }
    fn entry(&self, i: u64) -> Result<(i64, u64), Errno> {
        let r = self.record(i)?;
        Ok((r.mtype, r.len))
    }
    fn read_text(&self, i: u64, out: &mut [u8]) -> Result<(), Errno> {
        let r = self.record(i)?;
        self.text(&r, out)
    }
    fn push(&mut self, mtype: i64, data: &[u8]) -> Result<(), Errno> {
        MsgPage::push(self, mtype, data)
    }
    fn remove(&mut self, i: u64) -> Result<(), Errno> {
        MsgPage::remove(self, i)
    }
    fn sent(&mut self, pid: Pid, now: Time) {
        self.ctrl.lspid = u64::from(pid.0);
        self.ctrl.stime = now.0;
        self.ctrl.version = self.ctrl.version.wrapping_add(1);
    }
    fn received(&mut self, pid: Pid, now: Time) {
        self.ctrl.lrpid = u64::from(pid.0);
        self.ctrl.rtime = now.0;
        self.ctrl.version = self.ctrl.version.wrapping_add(1);
    }
}
