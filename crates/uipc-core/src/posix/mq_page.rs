//! The state page of a POSIX message queue (docs/architecture.md, "The
//! data plane" and "POSIX message queue descriptors"): its body layout and
//! the storage operations the core's send and receive rules
//! ([`super::mqueue::MqStore`]) run on, in the caller (the fast path) and
//! in the daemon (adopt and publish).
//!
//! # Layout (body version [`BODY_VERSION`])
//!
//! Plain little-endian words at fixed offsets from the body's start, no
//! pointers, bounded by the queue's attributes (`mq_maxmsg`, `mq_msgsize`,
//! fixed when the queue is created) and by [`PAGE_BODY_MAX`]:
//!
//! | offset | what |
//! |---|---|
//! | 0 | magic `UIPCPMQQ`, body version, `maxmsg`, `msgsize` |
//! | 32 | the control block ([`MqCtrl`], 11 words): `curmsgs`, `qsize`, the inode's times, where the live index lies, the free-slot count, the notification and readiness words, the queue's version |
//! | 120 | the in-flight record: a valid word and the control block's pre-image |
//! | 256 | two index halves of `maxmsg` records `(prio: u32, slot: u32, len: u64)`, in delivery order |
//! | … | the free-slot stack: `maxmsg` `u32` slot numbers (the first `nfree` live) |
//! | … | `maxmsg` text slots of `msgsize` bytes (8-aligned) |
//!
//! The index holds the queued messages in the order `mq_receive` takes
//! them (`msg_get()`: priority descending, FIFO within a priority): a
//! receive takes the head record. A send whose priority is not above the
//! last record's appends past the live records; any other send (or one
//! that reaches the half's end) rebuilds the index into the other half
//! with the new record in place (at most `maxmsg` records).
//!
//! A change writes text and records only where nothing live is (a free
//! slot, past the live records, the other half, past the free stack's
//! top) and commits by rewriting the control block under its pre-image:
//! the writer stores the old block and sets the valid word, writes the new
//! block, clears the valid word. A writer that dies between leaves the
//! valid word set; the next locker ([`recover`]) puts the pre-image back,
//! so the interrupted operation did not happen.
//!
//! Every value read from a page is checked before it is used: a page a
//! client scribbled over yields [`Errno::EUCLEAN`] (damaged), never a
//! panic or an access out of bounds.

use uipc_abi::Errno;

use super::mqueue::{
    mq_receive_admit, mq_send_admit, mq_send_args, mq_store_receive, mq_store_send, Deadline, MqStep, MqStore,
    HARD_MSGMAX, HARD_MSGSIZEMAX, MQ_PRIO_MAX,
};
use crate::sysv::msg::Fast;
use crate::sysv::msg_page::{load_block, store_block, Journal, PageBytes};
use crate::time::Time;

/// `"UIPCPMQQ"`.
pub const BODY_MAGIC: u64 = u64::from_le_bytes(*b"UIPCPMQQ");
/// The body layout's version; a page of another version is not read.
pub const BODY_VERSION: u64 = 1;
/// The largest body a queue may have and keep a page: a bigger queue
/// lives in the daemon only (every call a round trip, docs/deviations.md).
pub const PAGE_BODY_MAX: u64 = 1 << 20;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_MAXMSG: usize = 16;
/// Where `msgsize` lies (fixed when the page is made: a caller sizes its
/// receive buffer by it without the lock).
pub const OFF_MSGSIZE: usize = 24;
const OFF_CTRL: usize = 32;
const CTRL_WORDS: usize = 11;
const CTRL_LEN: usize = CTRL_WORDS * 8;
/// Where the control block's `version` word lies (a caller waiting for
/// the queue to change watches it without the lock).
pub const OFF_CTRL_VERSION: usize = OFF_CTRL + 10 * 8;
/// Where the control block's `curmsgs` word lies (`mq_getattr` reads it
/// under the page's sequence count).
pub const OFF_CTRL_CURMSGS: usize = OFF_CTRL;
const OFF_PRE_VALID: usize = OFF_CTRL + CTRL_LEN;
const OFF_PRE: usize = OFF_PRE_VALID + 8;
const OFF_INDEX: usize = 256;
const REC: usize = 16;
const JOURNAL: Journal = Journal { ctrl: OFF_CTRL, pre_valid: OFF_PRE_VALID, pre: OFF_PRE };

/// The queue's readiness as `mqueue_poll_file()` reports it, as a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MqLevel {
    /// No message: writable only.
    Empty = 0,
    /// Messages and room: readable and writable.
    Some = 1,
    /// `curmsgs == maxmsg`: readable only.
    Full = 2,
}

impl MqLevel {
    /// The level of a queue holding `curmsgs` of at most `maxmsg` messages.
    pub fn of(curmsgs: u64, maxmsg: u64) -> MqLevel {
        if curmsgs == 0 {
            MqLevel::Empty
        } else if curmsgs >= maxmsg {
            MqLevel::Full
        } else {
            MqLevel::Some
        }
    }

    /// From its word.
    ///
    /// # Errors
    /// `EUCLEAN` for anything else.
    pub fn from_word(w: u64) -> Result<MqLevel, Errno> {
        match w {
            0 => Ok(MqLevel::Empty),
            1 => Ok(MqLevel::Some),
            2 => Ok(MqLevel::Full),
            _ => Err(Errno::EUCLEAN),
        }
    }
}

/// The queue's control block: what a commit changes at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MqCtrl {
    /// `mq_curmsgs`.
    pub curmsgs: u64,
    /// Bytes of text queued (the status line's QSIZE).
    pub qsize: u64,
    /// The inode's access time.
    pub atime: i64,
    /// The inode's modification time.
    pub mtime: i64,
    /// The inode's change time.
    pub ctime: i64,
    /// The live index half (0 or 1).
    pub idx_half: u64,
    /// First live record in it.
    pub idx_head: u64,
    /// Live entries of the free-slot stack (`maxmsg - curmsgs`).
    pub nfree: u64,
    /// 1 while a process is registered with `mq_notify` (a send to the
    /// empty queue must then fire it: the daemon's job).
    pub notify: u64,
    /// The readiness level the queue's descriptors show ([`MqLevel`]).
    pub level: u64,
    /// The queue's version: advanced by every change.
    pub version: u64,
}

impl MqCtrl {
    fn words(&self) -> [u64; CTRL_WORDS] {
        [
            self.curmsgs,
            self.qsize,
            self.atime.cast_unsigned(),
            self.mtime.cast_unsigned(),
            self.ctime.cast_unsigned(),
            self.idx_half,
            self.idx_head,
            self.nfree,
            self.notify,
            self.level,
            self.version,
        ]
    }

    fn from_words(w: [u64; CTRL_WORDS]) -> MqCtrl {
        MqCtrl {
            curmsgs: w[0],
            qsize: w[1],
            atime: w[2].cast_signed(),
            mtime: w[3].cast_signed(),
            ctime: w[4].cast_signed(),
            idx_half: w[5],
            idx_head: w[6],
            nfree: w[7],
            notify: w[8],
            level: w[9],
            version: w[10],
        }
    }

    fn load<B: PageBytes + ?Sized>(b: &B, off: usize) -> Result<MqCtrl, Errno> {
        Ok(MqCtrl::from_words(load_block(b, off)?))
    }
}

/// A page's fixed shape: the queue's attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqGeometry {
    /// `mq_maxmsg`: records per index half, slots.
    pub maxmsg: u64,
    /// `mq_msgsize`: bytes per slot.
    pub msgsize: u64,
}

impl MqGeometry {
    /// The geometry of a queue with these attributes; `None` when its body
    /// would exceed [`PAGE_BODY_MAX`] (or the attributes are out of range).
    pub fn for_queue(maxmsg: i64, msgsize: i64) -> Option<MqGeometry> {
        if !(1..=HARD_MSGMAX).contains(&maxmsg) || !(1..=HARD_MSGSIZEMAX).contains(&msgsize) {
            return None;
        }
        let geo = MqGeometry { maxmsg: maxmsg.unsigned_abs(), msgsize: msgsize.unsigned_abs() };
        (geo.body_len() <= PAGE_BODY_MAX).then_some(geo)
    }

    fn off_free(&self) -> u64 {
        OFF_INDEX as u64 + 2 * self.maxmsg * REC as u64
    }

    fn off_text(&self) -> u64 {
        (self.off_free() + 4 * self.maxmsg).next_multiple_of(8)
    }

    /// Bytes of the body (the attributes are bounded by `HARD_MSGMAX` and
    /// `HARD_MSGSIZEMAX`: no overflow).
    pub fn body_len(&self) -> u64 {
        self.off_text() + self.maxmsg * self.msgsize
    }

    fn index_at(&self, half: u64, i: u64) -> Result<usize, Errno> {
        usize::try_from(OFF_INDEX as u64 + (half * self.maxmsg + i) * REC as u64).map_err(|_| Errno::EUCLEAN)
    }

    fn free_at(&self, i: u64) -> Result<usize, Errno> {
        usize::try_from(self.off_free() + 4 * i).map_err(|_| Errno::EUCLEAN)
    }

    fn slot_at(&self, slot: u64) -> Result<usize, Errno> {
        usize::try_from(self.off_text() + slot * self.msgsize).map_err(|_| Errno::EUCLEAN)
    }
}

/// One index record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqRecord {
    /// The priority.
    pub prio: u32,
    /// The text slot.
    pub slot: u64,
    /// Text length.
    pub len: u64,
}

/// Writes an empty queue's body: attributes, control block, every slot
/// free.
///
/// # Errors
/// `EUCLEAN` if `b` is shorter than the geometry's body.
pub fn format<B: PageBytes + ?Sized>(b: &mut B, geo: MqGeometry, ctrl: MqCtrl) -> Result<(), Errno> {
    if (b.size() as u64) < geo.body_len() {
        return Err(Errno::EUCLEAN);
    }
    b.set_u64(OFF_PRE_VALID, 0)?;
    b.set_u64(OFF_MAXMSG, geo.maxmsg)?;
    b.set_u64(OFF_MSGSIZE, geo.msgsize)?;
    for i in 0..geo.maxmsg {
        b.write(geo.free_at(i)?, &u32::try_from(i).map_err(|_| Errno::EUCLEAN)?.to_le_bytes())?;
    }
    let ctrl = MqCtrl { curmsgs: 0, qsize: 0, idx_half: 0, idx_head: 0, nfree: geo.maxmsg, level: 0, ..ctrl };
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
pub struct MqPage<'a, B: PageBytes + ?Sized> {
    b: &'a mut B,
    geo: MqGeometry,
    orig: MqCtrl,
    ctrl: MqCtrl,
}

impl<'a, B: PageBytes + ?Sized> MqPage<'a, B> {
    /// Opens a page: magic, version and geometry against its length, and
    /// the control block against the geometry (constant time; records and
    /// free slots are checked as they are read).
    ///
    /// # Errors
    /// `EUCLEAN` for anything out of place, including a commit in flight
    /// (a writer that died: call [`recover`] first).
    pub fn open(b: &'a mut B) -> Result<Self, Errno> {
        if b.u64_at(OFF_MAGIC)? != BODY_MAGIC || b.u64_at(OFF_VERSION)? != BODY_VERSION {
            return Err(Errno::EUCLEAN);
        }
        let (maxmsg, msgsize) = (b.u64_at(OFF_MAXMSG)?, b.u64_at(OFF_MSGSIZE)?);
        let geo = i64::try_from(maxmsg)
            .ok()
            .zip(i64::try_from(msgsize).ok())
            .and_then(|(m, s)| MqGeometry::for_queue(m, s))
            .ok_or(Errno::EUCLEAN)?;
        if geo.body_len() > b.size() as u64 || b.u64_at(OFF_PRE_VALID)? != 0 {
            return Err(Errno::EUCLEAN);
        }
        let ctrl = MqCtrl::load(b, OFF_CTRL)?;
        let ok = ctrl.idx_half <= 1
            && ctrl.curmsgs <= geo.maxmsg
            && ctrl.idx_head <= geo.maxmsg - ctrl.curmsgs
            && ctrl.nfree == geo.maxmsg - ctrl.curmsgs
            && ctrl.qsize <= ctrl.curmsgs * geo.msgsize
            && ctrl.notify <= 1
            && ctrl.level <= 2;
        if !ok {
            return Err(Errno::EUCLEAN);
        }
        Ok(MqPage { b, geo, orig: ctrl, ctrl })
    }

    /// The geometry.
    pub fn geometry(&self) -> MqGeometry {
        self.geo
    }

    /// The control block with this operation's changes.
    pub fn ctrl(&self) -> &MqCtrl {
        &self.ctrl
    }

    /// Sets fields of the control block (the daemon's publish).
    pub fn ctrl_mut(&mut self) -> &mut MqCtrl {
        &mut self.ctrl
    }

    /// The level the queue has now.
    pub fn level_now(&self) -> MqLevel {
        MqLevel::of(self.ctrl.curmsgs, self.geo.maxmsg)
    }

    /// Record `i` (0 = the next message received), checked: priority,
    /// slot and length in range.
    ///
    /// # Errors
    /// `EUCLEAN` for a bad record; `EINVAL` past the queue's end.
    pub fn record(&self, i: u64) -> Result<MqRecord, Errno> {
        if i >= self.ctrl.curmsgs {
            return Err(Errno::EINVAL);
        }
        self.raw_record(self.ctrl.idx_half, self.ctrl.idx_head + i)
    }

    fn raw_record(&self, half: u64, at: u64) -> Result<MqRecord, Errno> {
        let off = self.geo.index_at(half, at)?;
        let w0 = self.b.u64_at(off)?;
        let len = self.b.u64_at(off + 8)?;
        let prio = u32::try_from(w0 >> 32).map_err(|_| Errno::EUCLEAN)?;
        let slot = w0 & 0xffff_ffff;
        if prio >= MQ_PRIO_MAX || slot >= self.geo.maxmsg || len > self.geo.msgsize {
            return Err(Errno::EUCLEAN);
        }
        Ok(MqRecord { prio, slot, len })
    }

    fn put_record(&mut self, half: u64, at: u64, r: MqRecord) -> Result<(), Errno> {
        let off = self.geo.index_at(half, at)?;
        self.b.set_u64(off, (u64::from(r.prio) << 32) | r.slot)?;
        self.b.set_u64(off + 8, r.len)
    }

    fn free_entry(&self, i: u64) -> Result<u64, Errno> {
        let mut raw = [0u8; 4];
        self.b.read(self.geo.free_at(i)?, &mut raw)?;
        let slot = u64::from(u32::from_le_bytes(raw));
        if slot >= self.geo.maxmsg {
            return Err(Errno::EUCLEAN);
        }
        Ok(slot)
    }

    fn set_free_entry(&mut self, i: u64, slot: u64) -> Result<(), Errno> {
        let v = u32::try_from(slot).map_err(|_| Errno::EUCLEAN)?;
        self.b.write(self.geo.free_at(i)?, &v.to_le_bytes())
    }

    /// Copies the first `out.len()` bytes of record `r`'s text out.
    ///
    /// # Errors
    /// `EUCLEAN` if `out` is longer than the text or the page is short.
    pub fn text(&self, r: &MqRecord, out: &mut [u8]) -> Result<(), Errno> {
        if out.len() as u64 > r.len {
            return Err(Errno::EUCLEAN);
        }
        self.b.read(self.geo.slot_at(r.slot)?, out)
    }

    /// Queues a message in delivery order; counters follow (the caller
    /// checked that there is room, `curmsgs < maxmsg`).
    ///
    /// # Errors
    /// `EMSGSIZE` for text longer than a slot, `ENOSPC` when the queue is
    /// full; `EUCLEAN` for a damaged page.
    pub fn insert(&mut self, prio: u32, data: &[u8]) -> Result<(), Errno> {
        let len = data.len() as u64;
        if len > self.geo.msgsize {
            return Err(Errno::EMSGSIZE);
        }
        if self.ctrl.curmsgs >= self.geo.maxmsg || self.ctrl.nfree == 0 || prio >= MQ_PRIO_MAX {
            return Err(Errno::ENOSPC);
        }
        let slot = self.free_entry(self.ctrl.nfree - 1)?;
        self.b.write(self.geo.slot_at(slot)?, data)?;
        let rec = MqRecord { prio, slot, len };
        let n = self.ctrl.curmsgs;
        // After every record of priority prio or above: scanning from the tail.
        let mut pos = n;
        while pos > 0 && self.record(pos - 1)?.prio < prio {
            pos -= 1;
        }
        if n == 0 {
            self.ctrl.idx_head = 0;
        }
        if pos == n && self.ctrl.idx_head + n < self.geo.maxmsg {
            self.put_record(self.ctrl.idx_half, self.ctrl.idx_head + n, rec)?;
        } else {
            let other = 1 - self.ctrl.idx_half;
            let mut to = 0;
            for i in 0..n {
                if i == pos {
                    self.put_record(other, to, rec)?;
                    to += 1;
                }
                let r = self.record(i)?;
                self.put_record(other, to, r)?;
                to += 1;
            }
            if pos == n {
                self.put_record(other, to, rec)?;
            }
            self.ctrl.idx_half = other;
            self.ctrl.idx_head = 0;
        }
        self.ctrl.nfree -= 1;
        self.ctrl.curmsgs += 1;
        self.ctrl.qsize += len;
        Ok(())
    }

    /// Dequeues the head message (its slot goes back on the free stack);
    /// counters follow.
    ///
    /// # Errors
    /// `EUCLEAN` for a damaged page, `EINVAL` if the queue is empty.
    pub fn pop(&mut self) -> Result<(), Errno> {
        let r = self.record(0)?;
        if self.ctrl.nfree >= self.geo.maxmsg {
            return Err(Errno::EUCLEAN);
        }
        self.set_free_entry(self.ctrl.nfree, r.slot)?;
        self.ctrl.nfree += 1;
        self.ctrl.idx_head += 1;
        self.ctrl.curmsgs -= 1;
        self.ctrl.qsize = self.ctrl.qsize.checked_sub(r.len).ok_or(Errno::EUCLEAN)?;
        if self.ctrl.curmsgs == 0 {
            self.ctrl.idx_head = 0;
        }
        Ok(())
    }

    /// Empties the queue and makes every slot free (the daemon's publish
    /// starts from here). The other index half becomes live; the slots are
    /// rewritten in place (only the daemon clears, and a daemon that dies
    /// takes every queue with it).
    ///
    /// # Errors
    /// `EUCLEAN` if the page is short.
    pub fn clear(&mut self) -> Result<(), Errno> {
        for i in 0..self.geo.maxmsg {
            self.set_free_entry(i, self.geo.maxmsg - 1 - i)?;
        }
        self.ctrl.idx_half = 1 - self.ctrl.idx_half;
        self.ctrl.idx_head = 0;
        self.ctrl.curmsgs = 0;
        self.ctrl.qsize = 0;
        self.ctrl.nfree = self.geo.maxmsg;
        Ok(())
    }

    /// Checks what [`open`](Self::open) does not: every live record and
    /// every free slot is sound, the slots named are a permutation of all
    /// of them, and `qsize` is the texts' total (the daemon's adopt;
    /// O(`maxmsg`)).
    ///
    /// # Errors
    /// `EUCLEAN`.
    pub fn check(&self) -> Result<(), Errno> {
        let mut seen = vec![false; usize::try_from(self.geo.maxmsg).map_err(|_| Errno::EUCLEAN)?];
        let mut mark = |slot: u64| -> Result<(), Errno> {
            let s = seen.get_mut(usize::try_from(slot).map_err(|_| Errno::EUCLEAN)?).ok_or(Errno::EUCLEAN)?;
            if std::mem::replace(s, true) {
                return Err(Errno::EUCLEAN);
            }
            Ok(())
        };
        let mut total = 0u64;
        let mut last = u32::MAX;
        for i in 0..self.ctrl.curmsgs {
            let r = self.record(i)?;
            if r.prio > last {
                return Err(Errno::EUCLEAN);
            }
            last = r.prio;
            total += r.len;
            mark(r.slot)?;
        }
        for i in 0..self.ctrl.nfree {
            mark(self.free_entry(i)?)?;
        }
        if total != self.ctrl.qsize {
            return Err(Errno::EUCLEAN);
        }
        Ok(())
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

impl<B: PageBytes + ?Sized> MqStore for MqPage<'_, B> {
    fn maxmsg(&self) -> u64 {
        self.geo.maxmsg
    }
    fn msgsize(&self) -> u64 {
        self.geo.msgsize
    }
    fn curmsgs(&self) -> u64 {
        self.ctrl.curmsgs
    }
    fn head(&self) -> Result<Option<(u32, u64)>, Errno> {
        if self.ctrl.curmsgs == 0 {
            return Ok(None);
        }
        let r = self.record(0)?;
        Ok(Some((r.prio, r.len)))
    }
    fn take_head(&mut self, out: &mut [u8]) -> Result<(), Errno> {
        let r = self.record(0)?;
        self.text(&r, out)?;
        self.pop()
    }
    fn insert(&mut self, prio: u32, data: &[u8]) -> Result<(), Errno> {
        MqPage::insert(self, prio, data)
    }
    fn touch(&mut self, now: Time) {
        self.ctrl.atime = now.0;
        self.ctrl.mtime = now.0;
        self.ctrl.ctime = now.0;
        self.ctrl.version = self.ctrl.version.wrapping_add(1);
    }
}

/// What a grant lets a fast-path caller do, as its description has it:
/// the access mode and `O_NONBLOCK` as they are now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqAccess {
    /// `FMODE_READ`.
    pub read: bool,
    /// `FMODE_WRITE`.
    pub write: bool,
    /// The description's `O_NONBLOCK`.
    pub nonblock: bool,
    /// Whether the caller may move the readiness level its queue's
    /// descriptors show (it must then set the new level before it lets
    /// the page's lock go); otherwise a call that would move it is the
    /// host's.
    pub move_level: bool,
}

/// The level before and after a fast call: the caller moves the
/// descriptors' level when they differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelMove {
    /// The level before.
    pub from: MqLevel,
    /// The level after.
    pub to: MqLevel,
}

/// The level word of an opened page, and the level after the change;
/// `None` when the change is the host's.
fn level_move<B: PageBytes + ?Sized>(p: &MqPage<'_, B>, after: u64, move_level: bool) -> Option<LevelMove> {
    let from = MqLevel::from_word(p.ctrl().level).ok()?;
    let to = MqLevel::of(after, p.geometry().maxmsg);
    (from == to || move_level).then_some(LevelMove { from, to })
}

/// An `mq_timedsend` that does not sleep, on the queue's state page
/// (locked by the caller, who holds a grant of the queue's description
/// and saw no flag that sends everything to the host): the same rules as
/// [`IpcNamespace::mq_timedsend`](crate::IpcNamespace::mq_timedsend),
/// committed to the page.
///
/// [`Fast::Host`] when the host must decide: the queue is full and the
/// description blocks (sleep), a send to the empty queue while a process
/// is registered with `mq_notify` (the notification fires in the host),
/// a change of the readiness level the caller may not move, a damaged
/// page.
///
/// # Errors
/// `EINVAL` (deadline, priority), `EBADF` (not open for writing),
/// `EMSGSIZE`, `EAGAIN`.
///
/// # References
/// Mirrors `ipc/mqueue.c:do_mq_timedsend()` (Linux 6.12).
pub fn mq_send_fast<B: PageBytes + ?Sized>(
    page: &mut B,
    access: MqAccess,
    now: Time,
    prio: u32,
    data: &[u8],
    deadline: Option<Deadline>,
) -> Result<Fast<LevelMove>, Errno> {
    mq_send_args(deadline, prio)?;
    if !access.write {
        return Err(Errno::EBADF);
    }
    let Ok(mut p) = MqPage::open(page) else { return Ok(Fast::Host) };
    if mq_send_admit(&p, data.len() as u64, access.nonblock)? == MqStep::Sleep {
        return Ok(Fast::Host);
    }
    if p.ctrl().curmsgs == 0 && p.ctrl().notify != 0 {
        return Ok(Fast::Host);
    }
    let Some(mv) = level_move(&p, p.ctrl().curmsgs + 1, access.move_level) else { return Ok(Fast::Host) };
    if mq_store_send(&mut p, now, prio, data).is_err() {
        return Ok(Fast::Host);
    }
    p.ctrl_mut().level = mv.to as u64;
    if p.commit().is_err() {
        return Ok(Fast::Host);
    }
    Ok(Fast::Done(mv))
}

/// An `mq_timedreceive` that does not sleep, on the queue's state page
/// (see [`mq_send_fast`]): the message's text goes to `out` (the caller's
/// buffer, `len` bytes, at least `mq_msgsize`). Returns the priority, the
/// length and the level move.
///
/// # Errors
/// `EINVAL` (deadline), `EBADF` (not open for reading), `EMSGSIZE`
/// (`out` shorter than `mq_msgsize`), `EAGAIN`.
///
/// # References
/// Mirrors `ipc/mqueue.c:do_mq_timedreceive()` (Linux 6.12).
pub fn mq_receive_fast<B: PageBytes + ?Sized>(
    page: &mut B,
    access: MqAccess,
    now: Time,
    out: &mut [u8],
    deadline: Option<Deadline>,
) -> Result<Fast<(u32, usize, LevelMove)>, Errno> {
    if let Some(d) = deadline {
        d.validate()?;
    }
    if !access.read {
        return Err(Errno::EBADF);
    }
    let Ok(mut p) = MqPage::open(page) else { return Ok(Fast::Host) };
    let (prio, len) = match mq_receive_admit(&p, out.len() as u64, access.nonblock) {
        Ok(MqStep::Go(h)) => h,
        Ok(MqStep::Sleep) => return Ok(Fast::Host),
        Err(e @ (Errno::EMSGSIZE | Errno::EAGAIN)) => return Err(e),
        Err(_) => return Ok(Fast::Host),
    };
    let Some(mv) = level_move(&p, p.ctrl().curmsgs - 1, access.move_level) else { return Ok(Fast::Host) };
    let Some(dst) = usize::try_from(len).ok().and_then(|n| out.get_mut(..n)) else { return Ok(Fast::Host) };
    if mq_store_receive(&mut p, now, dst).is_err() {
        return Ok(Fast::Host);
    }
    let n = dst.len();
    p.ctrl_mut().level = mv.to as u64;
    if p.commit().is_err() {
        return Ok(Fast::Host);
    }
    Ok(Fast::Done((prio, n, mv)))
}
