//! System V message queues: `msgget`, `msgsnd`, `msgrcv`, `msgctl`
//! (SPEC section 4).
//!
//! Sleeping is model state ([`crate::wait`]), as `ipc/msg.c` keeps it: a
//! queue has a FIFO list of sleeping receivers (type filter, search mode,
//! buffer size) and one of sleeping senders (the message they hold). A send
//! first offers its message to the sleeping receivers in order
//! (`pipelined_send()`: the first whose filter accepts it takes it, one
//! whose buffer is too small is woken with `E2BIG` and skipped); a receive
//! that removes a message, and an `IPC_SET`, wake the senders whose message
//! now fits (`ss_wakeup()`), which retry at once in FIFO order; `IPC_SET`
//! also makes every sleeping receiver re-check its permission
//! (`expunge_all(-EAGAIN)`); `IPC_RMID` wakes every sleeper with `EIDRM`.
//!
//! # State layout
//!
//! A queue's message bytes live in a [`Memory`] region (its arena), never
//! on the host's heap: the message index is plain data — `(mtype, offset,
//! length)` per message, in queue order — and the arena is bump-allocated
//! and compacted (into a new region, twice as big when the live text
//! would fill more than half of it) when its end is reached; an empty queue starts again at offset 0. Each compaction or
//! growth advances the arena's version, each observable change the queue's
//! version. This is what a data plane needs: the index, counters and arena
//! can be mapped by the processes allowed to use the queue and changed
//! under a robust lock, and a restarted host can rebuild from them.
//!
//! # Known missing features
//! - `lrpid` of a hand-off is the receiving process, not its thread
//!   (MSG-RCV-14): the model knows processes, not threads.
//!
//! # References
//! - <https://elixir.bootlin.com/linux/v6.12/source/ipc/msg.c>,
//!   <https://elixir.bootlin.com/linux/v6.12/source/ipc/msgutil.c>
//! - msgget(2), msgop(2), msgctl(2)

use std::collections::{BTreeMap, VecDeque};

use uipc_abi::{
    Errno, Msginfo, Msqid64Ds, IPC_INFO, IPC_NOWAIT, IPC_RMID, IPC_SET, IPC_STAT, MSG_COPY, MSG_EXCEPT, MSG_INFO,
    MSG_NOERROR, MSG_STAT, MSG_STAT_ANY, PAGE_SIZE,
};

use crate::cred::{Cap, Cred, Pid};
use crate::ids::{ipcget, IpcId, IpcIds, IpcKey, IpcObject, IpcOps};
use crate::limits::Limits;
use crate::memory::Memory;
use crate::namespace::IpcNamespace;
use crate::perm::{ipc_update_perm, ipcctl_obtain_check, ipcperms, Access, IpcPerm, PermUpdate};
use crate::time::Time;
use crate::wait::{Interrupt, Outcome, WaiterId, Wakeup};

use super::msg_page::{self, MsgGeometry, MsgPage, PageBytes};

/// `MSGSSZ`: message segment size `IPC_INFO` reports.
const MSGSSZ: i32 = 16;
/// `MSGSEG` as `IPC_INFO` reports it (a `u16`, clamped).
const MSGSEG: u16 = 0xffff;
/// `MSGPOOL`.
const MSGPOOL: i32 = 512_000;
/// `MSGMAP`.
const MSGMAP: i32 = 16384;
/// `MSGTQL`.
const MSGTQL: i32 = 16384;

/// A received message: its type and the text the caller gets (already cut
/// to its buffer under `MSG_NOERROR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `mtype`.
    pub mtype: i64,
    /// `mtext`: `min(msgsz, size)` bytes.
    pub data: Vec<u8>,
}

/// How `msgrcv` selects (`SEARCH_*` of `ipc/msg.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// `SEARCH_ANY`: `msgtyp` 0.
    Any,
    /// `SEARCH_EQUAL`: the first of type `msgtyp`.
    Equal,
    /// `SEARCH_NOTEQUAL`: `MSG_EXCEPT`.
    NotEqual,
    /// `SEARCH_LESSEQUAL`: the lowest type ≤ |`msgtyp`|.
    LessEqual,
    /// `SEARCH_NUMBER`: `MSG_COPY`'s position.
    Number,
}

/// `convert_mode()`: the search mode for `msgtyp` and the flags; a
/// negative type becomes its magnitude (`LONG_MIN` becomes `LONG_MAX`).
fn convert_mode(msgtyp: &mut i64, flags: i32) -> Search {
    if flags & MSG_COPY != 0 {
        return Search::Number;
    }
    // MSG-TYPE-1: 0 is "any", MSG_EXCEPT or not.
    if *msgtyp == 0 {
        return Search::Any;
    }
    // MSG-TYPE-3: the lowest type ≤ |msgtyp|; LONG_MIN counts as LONG_MAX.
    if *msgtyp < 0 {
        *msgtyp = if *msgtyp == i64::MIN { i64::MAX } else { -*msgtyp };
        return Search::LessEqual;
    }
    if flags & MSG_EXCEPT != 0 {
        return Search::NotEqual;
    }
    Search::Equal
}

/// `testmsg()`: does a message of type `mtype` pass the filter?
fn testmsg(mtype: i64, msgtyp: i64, mode: Search) -> bool {
    match mode {
        Search::Any | Search::Number => true,
        Search::LessEqual => mtype <= msgtyp,
        Search::Equal => mtype == msgtyp,
        Search::NotEqual => mtype != msgtyp,
    }
}

/// `msg_fits_inqueue()` (MSG-CAP-1): the bytes and the message count are
/// both bounded by `qbytes`.
fn fits_inqueue(cbytes: u64, qnum: u64, qbytes: u64, len: u64) -> bool {
    len.saturating_add(cbytes) <= qbytes && qnum.saturating_add(1) <= qbytes
}

/// Where a queue's messages and counters are: the model's index and arena
/// ([`MsgQueue`]) or a queue's state page ([`msg_page::MsgPage`], the fast
/// path). The send and receive rules below run on either, so the model
/// and the fast path share one definition of the semantics.
pub trait MsgStore {
    /// `msg_qnum`.
    fn qnum(&self) -> u64;
    /// `msg_cbytes`.
    fn cbytes(&self) -> u64;
    /// `msg_qbytes`.
    fn qbytes(&self) -> u64;
    /// Type and text length of message `i` (0: the head).
    ///
    /// # Errors
    /// The storage's (`EUCLEAN`: a damaged page).
    fn entry(&self, i: u64) -> Result<(i64, u64), Errno>;
    /// Copies the first `out.len()` bytes of message `i`'s text.
    ///
    /// # Errors
    /// The storage's.
    fn read_text(&self, i: u64, out: &mut [u8]) -> Result<(), Errno>;
    /// Appends a message.
    ///
    /// # Errors
    /// `ENOMEM`: no memory for the text.
    fn push(&mut self, mtype: i64, data: &[u8]) -> Result<(), Errno>;
    /// Removes message `i`.
    ///
    /// # Errors
    /// The storage's.
    fn remove(&mut self, i: u64) -> Result<(), Errno>;
    /// A send finished: `msg_lspid`, `msg_stime`, the version.
    fn sent(&mut self, pid: Pid, now: Time);
    /// A receive finished: `msg_lrpid`, `msg_rtime`, the version.
    fn received(&mut self, pid: Pid, now: Time);
}

/// `msg_fits_inqueue()` (MSG-CAP-1) on any storage.
pub fn msg_fits_inqueue<S: MsgStore + ?Sized>(s: &S, len: u64) -> bool {
    fits_inqueue(s.cbytes(), s.qnum(), s.qbytes(), len)
}

/// `find_msg()`: the position of the message the filter selects.
///
/// # Errors
/// The storage's.
fn find_msg<S: MsgStore + ?Sized>(s: &S, mut msgtyp: i64, mode: Search) -> Result<Option<u64>, Errno> {
    let mut found = None;
    let mut count = 0i64;
    for i in 0..s.qnum() {
        let (mtype, _) = s.entry(i)?;
        if !testmsg(mtype, msgtyp, mode) {
            continue;
        }
        match mode {
            // Keep looking for a lower type; type 1 cannot be beaten.
            Search::LessEqual if mtype != 1 => {
                msgtyp = mtype - 1;
                found = Some(i);
            }
            Search::Number => {
                if msgtyp == count {
                    return Ok(Some(i));
                }
            }
            _ => return Ok(Some(i)),
        }
        count += 1;
    }
    Ok(found)
}

/// A `msgrcv`'s selection, decoded from its arguments (`convert_mode()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvSel {
    /// The type after `convert_mode()` (a negative one as its magnitude).
    pub msgtyp: i64,
    /// The search mode.
    pub mode: Search,
    /// The caller's buffer size.
    pub bufsz: u64,
    /// `msgflg`.
    pub flags: i32,
}

impl RecvSel {
    /// Decodes `msgrcv(…, msgsz, msgtyp, msgflg)`'s selection (the
    /// argument checks are [`msgrcv_args`]'s).
    pub fn new(bufsz: u64, msgtyp: i64, flags: i32) -> RecvSel {
        let mut msgtyp = msgtyp;
        let mode = convert_mode(&mut msgtyp, flags);
        RecvSel { msgtyp, mode, bufsz, flags }
    }
}

/// The message a receive selected: where it is, its type, the bytes the
/// caller gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvPick {
    /// Its position.
    pub index: u64,
    /// `mtype`.
    pub mtype: i64,
    /// `min(bufsz, length)`: the bytes copied out.
    pub keep: u64,
    /// `MSG_COPY`: the message stays.
    pub copy: bool,
}

/// The decision of one pass of `do_msgrcv()`'s loop after the permission
/// check: the message it takes, `None` when nothing matches (sleep or
/// `ENOMSG`).
///
/// # Errors
/// `E2BIG` (MSG-RCV-4: the message stays), `EINVAL` (`MSG_COPY`'s
/// scratch of `min(msgsz, msgmax)` bytes too small); the storage's.
pub fn msg_recv_pick<S: MsgStore + ?Sized>(s: &S, sel: &RecvSel, msgmax: u64) -> Result<Option<RecvPick>, Errno> {
    let Some(index) = find_msg(s, sel.msgtyp, sel.mode)? else { return Ok(None) };
    let (mtype, len) = s.entry(index)?;
    // MSG-RCV-4: "msgsz is less than the message and MSG_NOERROR is not set" — it stays queued.
    if sel.bufsz < len && sel.flags & MSG_NOERROR == 0 {
        return Err(Errno::E2BIG);
    }
    let copy = sel.flags & MSG_COPY != 0;
    // copy_msg(): the scratch buffer holds min(msgsz, msgmax) bytes.
    if copy && sel.bufsz.min(msgmax) < len {
        return Err(Errno::EINVAL);
    }
    Ok(Some(RecvPick { index, mtype, keep: sel.bufsz.min(len), copy }))
}

/// Completes a receive [`msg_recv_pick`] chose: copies the text kept
/// (`out` holds `pick.keep` bytes) and, unless `MSG_COPY`, dequeues it
/// (`msg_lrpid`, `msg_rtime`).
///
/// # Errors
/// The storage's.
pub fn msg_recv_take<S: MsgStore + ?Sized>(
    s: &mut S,
    pick: &RecvPick,
    pid: Pid,
    now: Time,
    out: &mut [u8],
) -> Result<(), Errno> {
    s.read_text(pick.index, out)?;
    if !pick.copy {
        s.remove(pick.index)?;
        s.received(pid, now);
    }
    Ok(())
}

/// A send that nobody sleeps for (no receiver to hand it to): queues the
/// message if it fits (`msg_fits_inqueue()`), else [`SendStep::Full`].
///
/// # Errors
/// The storage's (`ENOMEM`).
pub fn msg_send_queue<S: MsgStore + ?Sized>(
    s: &mut S,
    pid: Pid,
    now: Time,
    mtype: i64,
    data: &[u8],
) -> Result<SendStep, Errno> {
    if !msg_fits_inqueue(s, data.len() as u64) {
        return Ok(SendStep::Full);
    }
    s.push(mtype, data)?;
    s.sent(pid, now);
    Ok(SendStep::Sent)
}

/// `msgsnd`'s checks before the queue is looked up (SPEC 4.2, in the
/// kernel's order): the type and the text.
///
/// # Errors
/// `EFAULT` (type unreadable), `EINVAL` (`msgsz` above `msgmax` or
/// negative, `msqid` < 0, `mtype` < 1), `EFAULT` (text unreadable).
pub fn msgsnd_args<'a>(id: i32, text: MsgText<'a>, msgsz: i64, msgmax: i64) -> Result<(i64, &'a [u8]), Errno> {
    // MSG-SND-1: get_user(mtype) comes first.
    let mtype = match text {
        MsgText::Unreadable => return Err(Errno::EFAULT),
        MsgText::TypeOnly(t) | MsgText::Read(t, _) => t,
    };
    // MSG-SND-2: "msgsz is greater than the system limit (MSGMAX)", or negative, or msqid < 0.
    if msgsz < 0 || msgsz > msgmax || id < 0 {
        return Err(Errno::EINVAL);
    }
    // MSG-SND-3: "mtype is less than 1".
    if mtype < 1 {
        return Err(Errno::EINVAL);
    }
    // MSG-SND-4: load_msg() of the text, before the lookup.
    match text {
        MsgText::Read(_, d) if i64::try_from(d.len()).ok() == Some(msgsz) => Ok((mtype, d)),
        _ => Err(Errno::EFAULT),
    }
}

/// `msgrcv`'s checks before the queue is looked up (SPEC 4.3): returns
/// the buffer size.
///
/// # Errors
/// `EINVAL` (`msqid` or `msgsz` negative; `MSG_COPY` with `MSG_EXCEPT`
/// or without `IPC_NOWAIT`), `EFAULT` (`MSG_COPY`'s buffer unreadable).
pub fn msgrcv_args(id: i32, msgsz: i64, flags: i32, buf_readable: bool) -> Result<u64, Errno> {
    // MSG-RCV-1.
    if id < 0 || msgsz < 0 {
        return Err(Errno::EINVAL);
    }
    let bufsz = u64::try_from(msgsz).map_err(|_| Errno::EINVAL)?;
    if flags & MSG_COPY != 0 {
        // MSG-RCV-2: "MSG_COPY ... with MSG_EXCEPT" or "without IPC_NOWAIT".
        if flags & MSG_EXCEPT != 0 || flags & IPC_NOWAIT == 0 {
            return Err(Errno::EINVAL);
        }
        // prepare_copy() reads the caller's buffer.
        if !buf_readable {
            return Err(Errno::EFAULT);
        }
    }
    Ok(bufsz)
}

/// One queued message in the index: its type and where its text lies in
/// the queue's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct MsgEntry {
    mtype: i64,
    off: u64,
    len: u64,
}

/// The region holding a queue's message text (see the module's State layout).
#[derive(Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Arena<R> {
    region: Option<R>,
    /// Bytes in `region`.
    size: u64,
    /// First free byte (bump allocation).
    end: u64,
    /// Advanced by every compaction or growth (offsets changed).
    version: u64,
}

/// A message queue (`struct msg_queue`).
#[derive(Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MsgQueue<R> {
    perm: IpcPerm,
    stime: Time,
    rtime: Time,
    ctime: Time,
    cbytes: u64,
    qbytes: u64,
    lspid: Pid,
    lrpid: Pid,
    messages: VecDeque<MsgEntry>,
    arena: Arena<R>,
    /// Sleeping receivers (`q_receivers`), in arrival order.
    #[cfg_attr(feature = "serde", serde(skip))]
    receivers: VecDeque<WaiterId>,
    /// Sleeping senders (`q_senders`).
    #[cfg_attr(feature = "serde", serde(skip))]
    senders: VecDeque<WaiterId>,
    /// Generation of the observable state (messages, counters, times,
    /// permissions): advanced by every change, never by a read.
    version: u64,
    /// Advanced by every `IPC_SET` (who may do what changed): grants of
    /// the queue's state page made before are stale.
    perm_version: u32,
}

impl<R> IpcObject for MsgQueue<R> {
    fn perm(&self) -> &IpcPerm {
        &self.perm
    }
    fn perm_mut(&mut self) -> &mut IpcPerm {
        &mut self.perm
    }
}

impl<R> MsgQueue<R> {
    fn qnum(&self) -> u64 {
        u64::try_from(self.messages.len()).unwrap_or(u64::MAX)
    }

    /// `msg_fits_inqueue()` on the model's storage.
    fn fits(&self, len: u64) -> bool {
        fits_inqueue(self.cbytes, self.qnum(), self.qbytes, len)
    }

    fn changed(&mut self) {
        self.version = self.version.wrapping_add(1);
    }

    fn to_abi(&self) -> Msqid64Ds {
        Msqid64Ds {
            msg_perm: self.perm.to_abi(),
            msg_stime: self.stime.0,
            msg_rtime: self.rtime.0,
            msg_ctime: self.ctime.0,
            msg_cbytes: self.cbytes,
            msg_qnum: self.qnum(),
            msg_qbytes: self.qbytes,
            msg_lspid: i32::try_from(self.lspid.0).unwrap_or(0),
            msg_lrpid: i32::try_from(self.lrpid.0).unwrap_or(0),
            ..Msqid64Ds::default()
        }
    }
}

/// Rounds up to whole pages.
fn page_round(n: u64) -> u64 {
    n.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE)
}

impl<R: Clone> MsgQueue<R> {
    /// Space for `len` bytes in the arena: bump allocation; at the end,
    /// the live messages are copied, in order, into a fresh region (twice
    /// as big when they and `len` would fill more than half of it) and the
    /// arena's version advances.
    fn arena_alloc<M: Memory<Region = R>>(&mut self, mem: &mut M, len: u64) -> Result<u64, Errno> {
        if self.messages.is_empty() {
            self.arena.end = 0;
        }
        if len == 0 {
            return Ok(self.arena.end);
        }
        let fits_at_end = self.arena.end.checked_add(len).is_some_and(|e| e <= self.arena.size);
        if !fits_at_end || self.arena.region.is_none() {
            let need = self.cbytes.checked_add(len).ok_or(Errno::ENOMEM)?;
            // Kept when the live text fills at most half of it (so a full
            // queue does not compact at every send), else doubled.
            let size = if need <= self.arena.size / 2 && self.arena.region.is_some() {
                self.arena.size
            } else {
                page_round(need.max(self.arena.size.saturating_mul(2)))
            };
            let region = mem.allocate(size)?;
            let mut end = 0;
            for m in &mut self.messages {
                if m.len > 0 {
                    let old = self.arena.region.as_ref().ok_or(Errno::EFAULT)?;
                    let bytes = mem.read(old, m.off, m.len)?;
                    mem.write_at(&region, end, &bytes)?;
                }
                m.off = end;
                end += m.len;
            }
            self.arena = Arena { region: Some(region), size, end, version: self.arena.version.wrapping_add(1) };
        }
        let off = self.arena.end;
        self.arena.end += len;
        Ok(off)
    }

    /// The text of message `m`.
    fn load<M: Memory<Region = R>>(&self, mem: &M, m: &MsgEntry) -> Result<Vec<u8>, Errno> {
        if m.len == 0 {
            return Ok(Vec::new());
        }
        mem.read(self.arena.region.as_ref().ok_or(Errno::EFAULT)?, m.off, m.len)
    }
}

/// A sleeping `msgrcv` (`struct msg_receiver`).
#[derive(Debug)]
struct MsgReceiver {
    queue: IpcId,
    cred: Cred,
    /// The filter, after `convert_mode()`.
    msgtyp: i64,
    mode: Search,
    bufsz: u64,
    noerror: bool,
}

/// A sleeping `msgsnd` (`struct msg_sender`) and the message it holds.
#[derive(Debug)]
struct MsgSender {
    queue: IpcId,
    cred: Cred,
    mtype: i64,
    data: Vec<u8>,
}

/// The message-queue state of a namespace.
#[derive(Debug)]
pub struct MsgState<R> {
    pub(crate) ids: IpcIds<MsgQueue<R>>,
    receivers: BTreeMap<WaiterId, MsgReceiver>,
    senders: BTreeMap<WaiterId, MsgSender>,
    /// `percpu_msg_hdrs`: messages queued in the namespace.
    pub(crate) total_msgs: u64,
    /// `percpu_msg_bytes`: bytes queued in the namespace.
    pub(crate) total_bytes: u64,
    /// Sleepers finished since the host last looked.
    pub(crate) wakeups: Vec<Wakeup>,
    /// The last permission version drawn: every queue's is unique in the
    /// namespace (a new queue under an old one's full id never matches a
    /// grant on the old one).
    pub(crate) perm_versions: u32,
}

impl<R> Default for MsgState<R> {
    fn default() -> Self {
        MsgState {
            ids: IpcIds::default(),
            receivers: BTreeMap::new(),
            senders: BTreeMap::new(),
            total_msgs: 0,
            total_bytes: 0,
            wakeups: Vec::new(),
            perm_versions: 0,
        }
    }
}

impl<R> MsgState<R> {
    /// A permission version no queue had before.
    fn next_perm_version(&mut self) -> u32 {
        self.perm_versions = self.perm_versions.wrapping_add(1);
        self.perm_versions
    }
}

/// What `msgctl(IPC_INFO)` copies out for the limits `msgmax`, `msgmnb`,
/// `msgmni`, and `MSG_INFO` with `usage`: `(queues, messages, bytes)` in
/// use (`ipc/msg.c:msgctl_info()`). Also what a client answers from the
/// status region.
pub fn msginfo(msgmax: i32, msgmnb: i32, msgmni: i32, usage: Option<(u32, u64, u64)>) -> Msginfo {
    let clamp = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
    let mut info = Msginfo {
        msgpool: MSGPOOL,
        msgmap: MSGMAP,
        msgmax,
        msgmnb,
        msgmni,
        msgssz: MSGSSZ,
        msgtql: MSGTQL,
        msgseg: MSGSEG,
        pad: 0,
    };
    if let Some((queues, msgs, bytes)) = usage {
        info.msgpool = clamp(u64::from(queues));
        info.msgmap = clamp(msgs);
        info.msgtql = clamp(bytes);
    }
    info
}

/// What a host shows of one queue in a status region
/// ([`IpcNamespace::msg_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgStatus {
    /// The queue's full id.
    pub id: IpcId,
    /// Its permission version: unique in the namespace, changed by `IPC_SET`.
    pub perm_version: u32,
    /// What `IPC_STAT` reports.
    pub ds: Msqid64Ds,
}

/// What one pass of `do_msgsnd()`'s loop came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendStep {
    /// Sent (queued or handed over).
    Sent,
    /// The queue is full: sleep (or `EAGAIN`).
    Full,
}

/// The model's storage of one queue as a [`MsgStore`]: its index, its
/// arena in `mem`, and the namespace's totals.
struct ModelStore<'a, R, M> {
    q: &'a mut MsgQueue<R>,
    mem: &'a mut M,
    total_msgs: &'a mut u64,
    total_bytes: &'a mut u64,
}

impl<R: Clone, M: Memory<Region = R>> MsgStore for ModelStore<'_, R, M> {
    fn qnum(&self) -> u64 {
        self.q.qnum()
    }
    fn cbytes(&self) -> u64 {
        self.q.cbytes
    }
    fn qbytes(&self) -> u64 {
        self.q.qbytes
    }
    fn entry(&self, i: u64) -> Result<(i64, u64), Errno> {
        let m = usize::try_from(i).ok().and_then(|i| self.q.messages.get(i)).ok_or(Errno::EINVAL)?;
        Ok((m.mtype, m.len))
    }
    fn read_text(&self, i: u64, out: &mut [u8]) -> Result<(), Errno> {
        let m = *usize::try_from(i).ok().and_then(|i| self.q.messages.get(i)).ok_or(Errno::EINVAL)?;
        let keep = MsgEntry { len: out.len() as u64, ..m };
        out.copy_from_slice(&self.q.load(self.mem, &keep)?);
        Ok(())
    }
    fn push(&mut self, mtype: i64, data: &[u8]) -> Result<(), Errno> {
        let len = data.len() as u64;
        let off = self.q.arena_alloc(self.mem, len)?;
        if len > 0 {
            let region = self.q.arena.region.as_ref().ok_or(Errno::ENOMEM)?;
            self.mem.write_at(region, off, data)?;
        }
        self.q.messages.push_back(MsgEntry { mtype, off, len });
        self.q.cbytes += len;
        *self.total_msgs += 1;
        *self.total_bytes += len;
        Ok(())
    }
    fn remove(&mut self, i: u64) -> Result<(), Errno> {
        let m = usize::try_from(i).ok().and_then(|i| self.q.messages.remove(i)).ok_or(Errno::EINVAL)?;
        self.q.cbytes -= m.len;
        if self.q.messages.is_empty() {
            self.q.arena.end = 0;
        }
        *self.total_msgs -= 1;
        *self.total_bytes -= m.len;
        Ok(())
    }
    fn sent(&mut self, pid: Pid, now: Time) {
        self.q.lspid = pid;
        self.q.stime = now;
        self.q.changed();
    }
    fn received(&mut self, pid: Pid, now: Time) {
        self.q.lrpid = pid;
        self.q.rtime = now;
        self.q.changed();
    }
}

impl<R> MsgState<R> {
    /// Queue `id`'s storage as a [`MsgStore`].
    fn store<'a, M>(&'a mut self, mem: &'a mut M, id: IpcId) -> Result<ModelStore<'a, R, M>, Errno> {
        let MsgState { ids, total_msgs, total_bytes, .. } = self;
        Ok(ModelStore { q: ids.obtain_check_mut(id.0)?, mem, total_msgs, total_bytes })
    }
}

impl<R: Clone> MsgState<R> {
    /// `pipelined_send()`: offers a message to the sleeping receivers in
    /// order. Returns the message back if nobody took it.
    fn pipelined_send(&mut self, id: IpcId, now: Time, mtype: i64, data: Vec<u8>) -> Option<Vec<u8>> {
        let Ok(q) = self.ids.obtain_check_mut(id.0) else { return Some(data) };
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let mut i = 0;
        while i < q.receivers.len() {
            let w = q.receivers[i];
            let Some(r) = self.receivers.get(&w) else {
                i += 1;
                continue;
            };
            if !testmsg(mtype, r.msgtyp, r.mode) {
                i += 1;
                continue;
            }
            q.receivers.remove(i);
            let Some(r) = self.receivers.remove(&w) else { continue };
            if !r.noerror && r.bufsz < len {
                // MSG-PIPE-1: too small a buffer: E2BIG, and the scan goes on.
                self.wakeups.push(Wakeup::new(w, Err(Errno::E2BIG)));
                continue;
            }
            // MSG-PIPE-2: handed over; rtime and lrpid are the receiver's.
            q.lrpid = r.cred.pid;
            q.rtime = now;
            q.changed();
            let mut data = data;
            data.truncate(usize::try_from(r.bufsz).unwrap_or(usize::MAX));
            let n = i64::try_from(data.len()).unwrap_or(i64::MAX);
            self.wakeups.push(Wakeup { waiter: w, result: Ok(n), message: Some(Message { mtype, data }) });
            return None;
        }
        Some(data)
    }

    /// One pass of `do_msgsnd()`'s loop from the permission check: sends
    /// if the message fits (MSG-SND-6, MSG-SND-7).
    fn send_step<M: Memory<Region = R>>(
        &mut self,
        mem: &mut M,
        cred: &Cred,
        now: Time,
        id: IpcId,
        mtype: i64,
        data: &[u8],
    ) -> Result<SendStep, Errno> {
        let q = self.ids.obtain_check_mut(id.0)?;
        // "The calling process does not have write permission on the message queue."
        ipcperms(cred, &q.perm, Access(0o222))?;
        let len = u64::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        // MSG-PIPE-4: the capacity check comes before any hand-off.
        if !q.fits(len) {
            return Ok(SendStep::Full);
        }
        // Whom a hand-off would reach, before anything changes: queue only
        // if nobody takes it.
        if let Some(data) = self.pipelined_send(id, now, mtype, data.to_vec()) {
            return msg_send_queue(&mut self.store(mem, id)?, cred.pid, now, mtype, &data);
        }
        self.store(mem, id)?.sent(cred.pid, now);
        Ok(SendStep::Sent)
    }

    /// One pass of `do_msgrcv()`'s loop from the permission check: the
    /// selected message, or `None` when none matches.
    #[allow(clippy::too_many_arguments)]
    fn recv_step<M: Memory<Region = R>>(
        &mut self,
        mem: &mut M,
        cred: &Cred,
        now: Time,
        id: IpcId,
        sel: &RecvSel,
        msgmax: u64,
    ) -> Result<Option<Message>, Errno> {
        let q = self.ids.obtain_check_mut(id.0)?;
        // "The calling process does not have read permission on the message queue."
        ipcperms(cred, &q.perm, Access::READ)?;
        let mut st = self.store(mem, id)?;
        let Some(pick) = msg_recv_pick(&st, sel, msgmax)? else { return Ok(None) };
        let mut data = vec![0; usize::try_from(pick.keep).map_err(|_| Errno::ENOMEM)?];
        msg_recv_take(&mut st, &pick, cred.pid, now, &mut data)?;
        if !pick.copy {
            self.ss_wakeup(mem, id, now);
        }
        Ok(Some(Message { mtype: pick.mtype, data }))
    }

    /// `ss_wakeup(kill = false)` (MSG-CAP-3): every sleeping sender whose
    /// message fits now is woken, the others move to the tail; the woken
    /// ones retry in order (each may find the space gone again, and sleep
    /// again at the tail).
    fn ss_wakeup<M: Memory<Region = R>>(&mut self, mem: &mut M, id: IpcId, now: Time) {
        let Ok(q) = self.ids.obtain_check_mut(id.0) else { return };
        let (mut woken, mut rest) = (Vec::new(), VecDeque::new());
        for w in std::mem::take(&mut q.senders) {
            let len = self.senders.get(&w).map_or(0, |s| u64::try_from(s.data.len()).unwrap_or(u64::MAX));
            if q.fits(len) {
                woken.push(w);
            } else {
                rest.push_back(w);
            }
        }
        q.senders = rest;
        for w in woken {
            let Some(s) = self.senders.remove(&w) else { continue };
            match self.send_step(mem, &s.cred, now, id, s.mtype, &s.data) {
                Ok(SendStep::Sent) => self.wakeups.push(Wakeup::new(w, Ok(0))),
                Ok(SendStep::Full) => {
                    if let Ok(q) = self.ids.obtain_check_mut(id.0) {
                        q.senders.push_back(w);
                    }
                    self.senders.insert(w, s);
                }
                Err(e) => self.wakeups.push(Wakeup::new(w, Err(e))),
            }
        }
    }

    /// `expunge_all(-EAGAIN)` as `IPC_SET` does it: every sleeping
    /// receiver runs its loop again — the permission check (MSG-CTL-2:
    /// may now fail `EACCES`), the search — and sleeps again at the tail.
    fn recheck_receivers<M: Memory<Region = R>>(&mut self, mem: &mut M, id: IpcId, now: Time, msgmax: u64) {
        let Ok(q) = self.ids.obtain_check_mut(id.0) else { return };
        let waiting: Vec<WaiterId> = q.receivers.drain(..).collect();
        for w in waiting {
            let Some(r) = self.receivers.remove(&w) else { continue };
            let flags = if r.noerror { MSG_NOERROR } else { 0 };
            let sel = RecvSel { msgtyp: r.msgtyp, mode: r.mode, bufsz: r.bufsz, flags };
            match self.recv_step(mem, &r.cred, now, id, &sel, msgmax) {
                Ok(None) => {
                    if let Ok(q) = self.ids.obtain_check_mut(id.0) {
                        q.receivers.push_back(w);
                    }
                    self.receivers.insert(w, r);
                }
                Ok(Some(m)) => {
                    let n = i64::try_from(m.data.len()).unwrap_or(i64::MAX);
                    self.wakeups.push(Wakeup { waiter: w, result: Ok(n), message: Some(m) });
                }
                Err(e) => self.wakeups.push(Wakeup::new(w, Err(e))),
            }
        }
    }

    /// `freeque()`: receivers, then senders, wake with `EIDRM`; the
    /// messages and the slot are freed.
    fn freeque(&mut self, id: IpcId) {
        let Some(q) = self.ids.remove(id) else { return };
        for w in q.receivers.iter().chain(q.senders.iter()) {
            self.receivers.remove(w);
            self.senders.remove(w);
            self.wakeups.push(Wakeup::new(*w, Err(Errno::EIDRM)));
        }
        self.total_msgs -= q.qnum();
        self.total_bytes -= q.cbytes;
    }
}

/// `msgget`'s hooks for [`ipcget`].
struct MsgGetOps<'a, R> {
    msg: &'a mut MsgState<R>,
    limits: &'a Limits,
    now: Time,
}

impl<R> IpcOps for MsgGetOps<'_, R> {
    type Object = MsgQueue<R>;
    type Params = ();

    fn ids(&self) -> &IpcIds<MsgQueue<R>> {
        &self.msg.ids
    }

    /// Mirrors `ipc/msg.c:newque()` (MSG-GET-2).
    fn getnew(&mut self, cred: &Cred, key: IpcKey, flags: i32, (): ()) -> Result<IpcId, Errno> {
        let q = MsgQueue {
            perm: IpcPerm::new(cred, key, flags),
            stime: Time::NEVER,
            rtime: Time::NEVER,
            ctime: self.now,
            cbytes: 0,
            // qbytes is msgmnb at creation time.
            qbytes: u64::try_from(self.limits.msgmnb).unwrap_or(0),
            lspid: Pid(0),
            lrpid: Pid(0),
            messages: VecDeque::new(),
            arena: Arena { region: None, size: 0, end: 0, version: 0 },
            receivers: VecDeque::new(),
            senders: VecDeque::new(),
            version: 0,
            perm_version: self.msg.next_perm_version(),
        };
        // MSG-GET-1: "the maximum number of message queues (MSGMNI) would be exceeded" → ENOSPC.
        self.msg.ids.add(q, u32::try_from(self.limits.msgmni).unwrap_or(0))
    }

    fn more_checks(&self, _: &MsgQueue<R>, (): ()) -> Result<(), Errno> {
        Ok(())
    }
}

/// A decoded `msgctl` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgCmd {
    /// `IPC_STAT`.
    IpcStat,
    /// `MSG_STAT`.
    MsgStat,
    /// `MSG_STAT_ANY`.
    MsgStatAny,
    /// `IPC_SET`.
    IpcSet,
    /// `IPC_RMID`.
    IpcRmid,
    /// `IPC_INFO`.
    IpcInfo,
    /// `MSG_INFO`.
    MsgInfo,
}

impl MsgCmd {
    /// Decodes `msgctl(msqid, cmd, …)`.
    ///
    /// # Errors
    /// `EINVAL` for a negative id or command (first, MSG-CTL), or an
    /// unknown command.
    pub fn decode(id: i32, cmd: i32) -> Result<MsgCmd, Errno> {
        if id < 0 || cmd < 0 {
            return Err(Errno::EINVAL);
        }
        Ok(match cmd {
            IPC_STAT => MsgCmd::IpcStat,
            MSG_STAT => MsgCmd::MsgStat,
            MSG_STAT_ANY => MsgCmd::MsgStatAny,
            IPC_SET => MsgCmd::IpcSet,
            IPC_RMID => MsgCmd::IpcRmid,
            IPC_INFO => MsgCmd::IpcInfo,
            MSG_INFO => MsgCmd::MsgInfo,
            _ => return Err(Errno::EINVAL),
        })
    }

    /// Whether the command writes the caller's buffer (after its effect).
    pub fn writes_buffer(self) -> bool {
        !matches!(self, MsgCmd::IpcSet | MsgCmd::IpcRmid)
    }
}

/// `IPC_SET`'s input: the `msqid_ds` fields it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgSet {
    /// `msg_perm.uid`, `gid`, `mode`.
    pub perm: PermUpdate,
    /// `msg_qbytes`.
    pub qbytes: u64,
}

/// What a `msgctl` leaves in the caller's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MsgCtlOut {
    /// Nothing.
    None,
    /// `struct msqid_ds`.
    Ds(Msqid64Ds),
    /// `struct msginfo`.
    Info(Msginfo),
}

/// The text of a `msgsnd`, as the host could read it from the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgText<'a> {
    /// `msgp->mtype` could not be read (MSG-SND-1: `EFAULT` first).
    Unreadable,
    /// `mtype` was read, the text could not be (`EFAULT` after the
    /// `EINVAL` checks, MSG-SND-4).
    TypeOnly(i64),
    /// Both.
    Read(i64, &'a [u8]),
}

impl<M: Memory> IpcNamespace<M> {
    /// `msgget(key, msgflg)` — gets or creates a System V message queue.
    ///
    /// # Errors
    /// SPEC 1.2 and MSG-GET: `ENOENT`, `EEXIST`, `EACCES`; on creation
    /// `ENOSPC` (msgmni).
    ///
    /// # References
    /// Mirrors `ipc/msg.c:ksys_msgget()`, `newque()`; msgget(2).
    pub fn msgget(&mut self, cred: &Cred, now: Time, key: i32, flags: i32) -> Result<IpcId, Errno> {
        let mut ops = MsgGetOps { msg: &mut self.msg, limits: &self.limits, now };
        ipcget(&mut ops, cred, IpcKey(key), flags, ())
    }

    /// `msgsnd(msqid, msgp, msgsz, msgflg)` — sends a message: handed to
    /// the first sleeping receiver that accepts it, else queued; or the
    /// caller sleeps ([`Outcome::Blocked`]) until space appears
    /// ([`take_wakeups`](Self::take_wakeups)), the queue goes (`EIDRM`) or
    /// a signal ([`msg_interrupt`](Self::msg_interrupt)). `msgsz` is the
    /// caller's size, as a `long`.
    ///
    /// # Errors
    /// In the kernel's order (SPEC 4.2): `EFAULT` (mtype unreadable),
    /// `EINVAL` (msgsz > msgmax or < 0, msqid < 0), `EINVAL` (mtype < 1),
    /// `EFAULT` (text unreadable), `EINVAL` (no such queue), `EACCES`,
    /// `EAGAIN` (full with `IPC_NOWAIT`), `ENOMEM` (no memory for the text).
    ///
    /// # References
    /// Mirrors `ipc/msg.c:ksys_msgsnd()`, `do_msgsnd()`, `pipelined_send()`; msgop(2).
    pub fn msgsnd(
        &mut self,
        cred: &Cred,
        now: Time,
        id: i32,
        text: MsgText<'_>,
        msgsz: i64,
        flags: i32,
    ) -> Result<Outcome<i64>, Errno> {
        let (mtype, data) = msgsnd_args(id, text, msgsz, i64::from(self.limits.msgmax))?;
        let qid = IpcId(id);
        self.msg.ids.obtain_check(id)?;
        match self.msg.send_step(&mut self.memory, cred, now, qid, mtype, data)? {
            SendStep::Sent => Ok(Outcome::Done(0)),
            // "Insufficient space ... and IPC_NOWAIT was specified."
            SendStep::Full if flags & IPC_NOWAIT != 0 => Err(Errno::EAGAIN),
            SendStep::Full => {
                let w = self.new_waiter();
                let q = self.msg.ids.obtain_check_mut(id)?;
                q.senders.push_back(w);
                self.msg.senders.insert(w, MsgSender { queue: qid, cred: cred.clone(), mtype, data: data.to_vec() });
                Ok(Outcome::Blocked(w))
            }
        }
    }

    /// `msgrcv(msqid, msgp, msgsz, msgtyp, msgflg)` — receives (or with
    /// `MSG_COPY` copies) a message, or sleeps until one is handed over
    /// ([`Outcome::Blocked`]). `msgsz` is the caller's size as a `long`;
    /// `buf_readable` says whether the caller's buffer could be read, which
    /// `MSG_COPY` does first (MSG-RCV-2). The host writes `mtype` and the
    /// text to the caller; if that fails the message is lost (`EFAULT`
    /// after the dequeue, MSG-RCV-5).
    ///
    /// # Errors
    /// In the kernel's order (SPEC 4.3): `EINVAL` (msqid < 0, msgsz < 0;
    /// `MSG_COPY` with `MSG_EXCEPT` or without `IPC_NOWAIT`), `EFAULT`
    /// (`MSG_COPY`'s buffer), `EINVAL` (no such queue), `EACCES`, `E2BIG`
    /// (the message stays queued), `EINVAL` (`MSG_COPY` scratch too small),
    /// `ENOMSG` (nothing matches, `IPC_NOWAIT`).
    ///
    /// # References
    /// Mirrors `ipc/msg.c:do_msgrcv()`, `find_msg()`, `convert_mode()`,
    /// `testmsg()`; msgop(2).
    #[allow(clippy::too_many_arguments)]
    pub fn msgrcv(
        &mut self,
        cred: &Cred,
        now: Time,
        id: i32,
        msgsz: i64,
        msgtyp: i64,
        flags: i32,
        buf_readable: bool,
    ) -> Result<Outcome<Message>, Errno> {
        let bufsz = msgrcv_args(id, msgsz, flags, buf_readable)?;
        let sel = RecvSel::new(bufsz, msgtyp, flags);
        let qid = IpcId(id);
        self.msg.ids.obtain_check(id)?;
        let msgmax = u64::try_from(self.limits.msgmax).unwrap_or(0);
        if let Some(m) = self.msg.recv_step(&mut self.memory, cred, now, qid, &sel, msgmax)? {
            return Ok(Outcome::Done(m));
        }
        // "IPC_NOWAIT was specified and no message of the requested type existed."
        if flags & IPC_NOWAIT != 0 {
            return Err(Errno::ENOMSG);
        }
        let w = self.new_waiter();
        let q = self.msg.ids.obtain_check_mut(id)?;
        q.receivers.push_back(w);
        let r = MsgReceiver {
            queue: qid,
            cred: cred.clone(),
            msgtyp: sel.msgtyp,
            mode: sel.mode,
            bufsz,
            noerror: flags & MSG_NOERROR != 0,
        };
        self.msg.receivers.insert(w, r);
        Ok(Outcome::Blocked(w))
    }

    /// A parked `msgsnd`/`msgrcv` stops waiting (a signal: `EINTR`).
    /// Returns its result if it was still waiting; `None` if it had
    /// already finished (its [`Wakeup`] stands: a message sent or received
    /// is never reported as interrupted).
    pub fn msg_interrupt(&mut self, waiter: WaiterId, why: Interrupt) -> Option<Result<i64, Errno>> {
        let queue = if let Some(r) = self.msg.receivers.remove(&waiter) {
            r.queue
        } else {
            self.msg.senders.remove(&waiter)?.queue
        };
        if let Ok(q) = self.msg.ids.obtain_check_mut(queue.0) {
            q.receivers.retain(|w| *w != waiter);
            q.senders.retain(|w| *w != waiter);
        }
        Some(Err(why.errno()))
    }

    /// `msgctl(msqid, cmd, buf)` — controls a message queue. `set` is
    /// `IPC_SET`'s buffer as read (`None`: unreadable, `EFAULT` before the
    /// lookup).
    ///
    /// # Errors
    /// SPEC 4.7: `EINVAL` (no such queue; bad uid/gid), `EACCES`
    /// (`IPC_STAT`, `MSG_STAT`), `EPERM` (not the owner; qbytes above
    /// msgmnb without `CAP_SYS_RESOURCE`), `EFAULT`.
    ///
    /// # References
    /// Mirrors `ipc/msg.c:ksys_msgctl()`, `msgctl_info()`, `msgctl_stat()`,
    /// `msgctl_down()`, `freeque()`, `expunge_all()`, `ss_wakeup()`; msgctl(2).
    pub fn msgctl(
        &mut self,
        cred: &Cred,
        now: Time,
        id: i32,
        cmd: MsgCmd,
        set: Option<MsgSet>,
    ) -> Result<(i64, MsgCtlOut), Errno> {
        if id < 0 {
            return Err(Errno::EINVAL);
        }
        let qid = IpcId(id);
        match cmd {
            MsgCmd::IpcInfo | MsgCmd::MsgInfo => {
                let l = &self.limits;
                let usage = (cmd == MsgCmd::MsgInfo).then(|| self.msg_usage());
                let info = msginfo(l.msgmax, l.msgmnb, l.msgmni, usage);
                Ok((i64::from(self.msg.ids.max_idx().max(0)), MsgCtlOut::Info(info)))
            }
            MsgCmd::IpcStat | MsgCmd::MsgStat | MsgCmd::MsgStatAny => {
                let (full, q) = if cmd == MsgCmd::IpcStat {
                    (qid, self.msg.ids.obtain_check(id)?)
                } else {
                    self.msg.ids.obtain_idx(id)?
                };
                if cmd != MsgCmd::MsgStatAny {
                    ipcperms(cred, &q.perm, Access::READ)?;
                }
                Ok((if cmd == MsgCmd::IpcStat { 0 } else { i64::from(full.0) }, MsgCtlOut::Ds(q.to_abi())))
            }
            MsgCmd::IpcRmid => {
                let q = self.msg.ids.obtain_check(id)?;
                ipcctl_obtain_check(cred, &q.perm)?;
                self.msg.freeque(qid);
                Ok((0, MsgCtlOut::None))
            }
            MsgCmd::IpcSet => {
                // COM-OWN-4: the buffer is copied in before the lookup.
                let set = set.ok_or(Errno::EFAULT)?;
                let msgmnb = u64::try_from(self.limits.msgmnb).unwrap_or(0);
                let version = self.msg.next_perm_version();
                let q = self.msg.ids.obtain_check_mut(id)?;
                ipcctl_obtain_check(cred, &q.perm)?;
                // MSG-CTL-2: "msg_qbytes greater than MSGMNB without CAP_SYS_RESOURCE" → EPERM.
                if set.qbytes > msgmnb && !cred.capable(Cap::SYS_RESOURCE) {
                    return Err(Errno::EPERM);
                }
                ipc_update_perm(&set.perm, &mut q.perm)?;
                q.perm_version = version;
                q.qbytes = set.qbytes;
                q.ctime = now;
                q.changed();
                let msgmax = u64::try_from(self.limits.msgmax).unwrap_or(0);
                self.msg.recheck_receivers(&mut self.memory, qid, now, msgmax);
                self.msg.ss_wakeup(&mut self.memory, qid, now);
                Ok((0, MsgCtlOut::None))
            }
        }
    }

    /// The version of queue `msqid`'s observable state and of its arena's
    /// layout: the first advances with every change and stays put across
    /// reads, the second with every compaction or growth.
    ///
    /// # Errors
    /// `EINVAL` if no queue has that identifier.
    pub fn msg_version(&self, msqid: i32) -> Result<(u64, u64), Errno> {
        let q = self.msg.ids.obtain_check(msqid)?;
        Ok((q.version, q.arena.version))
    }

    /// What `cred` may do with queue `msqid` without the host (the
    /// kernel's `ipcperms()` for each), and the permission version that
    /// holds for.
    ///
    /// # Errors
    /// `EINVAL` if no queue has that identifier.
    pub fn msg_access(&self, cred: &Cred, msqid: i32) -> Result<MsgAccess, Errno> {
        let q = self.msg.ids.obtain_check(msqid)?;
        Ok(MsgAccess {
            send: ipcperms(cred, &q.perm, Access(0o222)).is_ok(),
            receive: ipcperms(cred, &q.perm, Access::READ).is_ok(),
            perm_version: q.perm_version,
        })
    }

    /// `(queues, messages, bytes)` in use: `MSG_INFO`'s `msgpool`,
    /// `msgmap`, `msgtql` (the model's: a queue's page may hold newer
    /// counts until the host adopts it).
    pub fn msg_usage(&self) -> (u32, u64, u64) {
        (self.msg.ids.in_use(), self.msg.total_msgs, self.msg.total_bytes)
    }

    /// The highest index in use, `-1` if none (`ipc_get_maxidx()`).
    pub fn msg_max_idx(&self) -> i32 {
        self.msg.ids.max_idx()
    }

    /// What slot `idx` holds, for a status region; `None` if empty.
    pub fn msg_status(&self, idx: u32) -> Option<MsgStatus> {
        let (id, q) = self.msg.ids.obtain_idx(i32::try_from(idx).ok()?).ok()?;
        Some(MsgStatus { id, perm_version: q.perm_version, ds: q.to_abi() })
    }

    /// The permission version of queue `msqid` (see [`MsgStatus`]).
    ///
    /// # Errors
    /// `EINVAL` for no such id.
    pub fn msg_perm_version(&self, msqid: i32) -> Result<u32, Errno> {
        Ok(self.msg.ids.obtain_check(msqid)?.perm_version)
    }

    /// The queues' identifiers, in slot order.
    pub fn msg_ids(&self) -> Vec<IpcId> {
        self.msg.ids.iter().map(|(id, _)| id).collect()
    }

    /// Whether callers sleep on queue `msqid` (every change must then go
    /// through the host, which keeps the kernel's hand-off order), and its
    /// permission version.
    ///
    /// # Errors
    /// `EINVAL` if no queue has that identifier.
    pub fn msg_page_flags(&self, msqid: i32) -> Result<(bool, u32), Errno> {
        let q = self.msg.ids.obtain_check(msqid)?;
        Ok((!q.receivers.is_empty() || !q.senders.is_empty(), q.perm_version))
    }

    /// The geometry a state page of queue `msqid` needs now (`None`: the
    /// queue is too big for a page and lives in the host only).
    ///
    /// # Errors
    /// `EINVAL` if no queue has that identifier.
    pub fn msg_page_geometry(&self, msqid: i32) -> Result<Option<MsgGeometry>, Errno> {
        let q = self.msg.ids.obtain_check(msqid)?;
        Ok(MsgGeometry::for_queue(q.qbytes, q.qnum(), q.cbytes))
    }

    /// Takes the state of queue `msqid`'s page (locked by the host, after
    /// [`msg_page::recover`] if its last holder died) into the model: what
    /// fast paths changed (messages, `cbytes`, `qnum`, pids, times, the
    /// version). Everything is validated first; the model is untouched
    /// unless all of it is sound. Nothing is read when the page's version
    /// is the model's (nothing happened since the last publish).
    ///
    /// # Errors
    /// `EUCLEAN`: the page is damaged (bad header or record, counters that
    /// disagree, a field the fast path never changes changed); `EINVAL`:
    /// no such queue; `ENOMEM`.
    pub fn msg_adopt<B: PageBytes + ?Sized>(&mut self, msqid: i32, page: &mut B) -> Result<(), Errno> {
        let q = self.msg.ids.obtain_check(msqid)?;
        let p = MsgPage::open(page)?;
        let c = *p.ctrl();
        if c.qbytes != q.qbytes || c.ctime != q.ctime.0 {
            return Err(Errno::EUCLEAN);
        }
        if c.version == q.version {
            return Ok(());
        }
        let pid = |v: u64| u32::try_from(v).map(Pid).map_err(|_| Errno::EUCLEAN);
        let (lspid, lrpid) = (pid(c.lspid)?, pid(c.lrpid)?);
        let mut msgs = Vec::new();
        let mut total = 0u64;
        for i in 0..c.qnum {
            let r = p.record(i)?;
            let mut data = vec![0; usize::try_from(r.len).map_err(|_| Errno::EUCLEAN)?];
            p.text(&r, &mut data)?;
            total += r.len;
            msgs.push((r.mtype, data));
        }
        if total != c.cbytes {
            return Err(Errno::EUCLEAN);
        }
        let mut st = self.msg.store(&mut self.memory, IpcId(msqid))?;
        while st.qnum() > 0 {
            st.remove(st.qnum() - 1)?;
        }
        for (mtype, data) in &msgs {
            st.push(*mtype, data)?;
        }
        let q = st.q;
        (q.lspid, q.lrpid, q.stime, q.rtime, q.version) = (lspid, lrpid, Time(c.stime), Time(c.rtime), c.version);
        Ok(())
    }

    /// Formats `page` (at least the geometry's [`body_len`]
    /// (MsgGeometry::body_len) bytes, [`msg_page_geometry`]
    /// (Self::msg_page_geometry)) as queue `msqid`'s state page and
    /// publishes the queue into it: a new page, or a bigger one after
    /// `IPC_SET` raised `qbytes`.
    ///
    /// # Errors
    /// `EFBIG`: the queue is too big for a page; `EUCLEAN`: `page` is too
    /// short; `EINVAL`: no such queue.
    pub fn msg_page_init<B: PageBytes + ?Sized>(&mut self, msqid: i32, page: &mut B) -> Result<(), Errno> {
        let geo = self.msg_page_geometry(msqid)?.ok_or(Errno::EFBIG)?;
        let version = self.msg.ids.obtain_check(msqid)?.version;
        // A version the model does not have, so the publish writes everything.
        msg_page::format(page, geo, msg_page::MsgCtrl { version: !version, ..Default::default() })?;
        self.msg_publish(msqid, page)
    }

    /// Writes queue `msqid`'s model state into its page (locked by the
    /// host; its geometry must hold the queue, [`msg_page_geometry`]
    /// (Self::msg_page_geometry)), with the namespace's `msgmax`. Only
    /// `msgmax` is written when the page's version is the model's.
    ///
    /// # Errors
    /// `EUCLEAN`: the page is damaged; `ENOMEM`: it is too small;
    /// `EINVAL`: no such queue.
    pub fn msg_publish<B: PageBytes + ?Sized>(&mut self, msqid: i32, page: &mut B) -> Result<(), Errno> {
        let q = self.msg.ids.obtain_check(msqid)?;
        let msgmax = u64::try_from(self.limits.msgmax).unwrap_or(0);
        let mut p = MsgPage::open(page)?;
        if p.ctrl().version != q.version {
            p.clear();
            for m in &q.messages {
                let data = q.load(&self.memory, m)?;
                p.push(m.mtype, &data)?;
            }
            let c = p.ctrl_mut();
            c.qbytes = q.qbytes;
            c.lspid = u64::from(q.lspid.0);
            c.lrpid = u64::from(q.lrpid.0);
            c.stime = q.stime.0;
            c.rtime = q.rtime.0;
            c.ctime = q.ctime.0;
            c.version = q.version;
        }
        p.ctrl_mut().msgmax = msgmax;
        p.commit()
    }

    /// The bytes of queue `msqid`'s arena region (0 before the first
    /// queued message): bounded by the live text, doubled at most.
    ///
    /// # Errors
    /// `EINVAL` if no queue has that identifier.
    pub fn msg_arena_size(&self, msqid: i32) -> Result<u64, Errno> {
        Ok(self.msg.ids.obtain_check(msqid)?.arena.size)
    }

    /// Exit: the process's sleeping sends and receives vanish with it.
    pub(crate) fn msg_exit(&mut self, pid: Pid) {
        let mine: Vec<WaiterId> = self
            .msg
            .receivers
            .iter()
            .filter(|(_, r)| r.cred.pid == pid)
            .map(|(w, _)| *w)
            .chain(self.msg.senders.iter().filter(|(_, s)| s.cred.pid == pid).map(|(w, _)| *w))
            .collect();
        for w in mine {
            self.msg_interrupt(w, Interrupt::Signal);
        }
    }

    /// Every queue is freed (`msg_exit_ns()`); sleepers get `EIDRM`.
    pub(crate) fn msg_free_all(&mut self) {
        for id in self.msg.ids.ids() {
            self.msg.freeque(id);
        }
    }

    /// Number of queues.
    pub(crate) fn msg_count(&self) -> u32 {
        self.msg.ids.in_use()
    }

    /// `/proc/sysvipc/msg` of this namespace (SPEC 8.4), in slot order.
    pub fn proc_sysvipc_msg(&self) -> String {
        let mut out = String::from(
            "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n",
        );
        for (id, q) in self.msg.ids.iter() {
            let p = &q.perm;
            out += &format!(
                "{:10} {:10}  {:4o}  {:10} {:10} {:5} {:5} {:5} {:5} {:5} {:5} {:10} {:10} {:10}\n",
                p.key.0,
                id.0,
                p.mode,
                q.cbytes,
                q.qnum(),
                q.lspid.0,
                q.lrpid.0,
                p.uid.0,
                p.gid.0,
                p.cuid.0,
                p.cgid.0,
                q.stime.0,
                q.rtime.0,
                q.ctime.0
            );
        }
        out
    }
}

/// What a caller may do with a queue in its own address space
/// ([`IpcNamespace::msg_access`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgAccess {
    /// Write permission: `msgsnd`.
    pub send: bool,
    /// Read permission: `msgrcv`.
    pub receive: bool,
    /// The permission version.
    pub perm_version: u32,
}

/// What a fast-path call came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fast<T> {
    /// Finished in the caller: the result stands.
    Done(T),
    /// Not decidable here (it would sleep, its arguments are for the host
    /// to judge, the page is damaged): ask the host, which re-evaluates.
    Host,
}

/// A `msgsnd` that does not sleep, on queue `msqid`'s state page (locked
/// by the caller, who holds a write grant and saw no flag that sends
/// everything to the host): the same rules as [`IpcNamespace::msgsnd`],
/// committed to the page.
///
/// # Errors
/// `EAGAIN`: full, with `IPC_NOWAIT`.
pub fn msgsnd_fast<B: PageBytes + ?Sized>(
    page: &mut B,
    pid: Pid,
    now: Time,
    msqid: i32,
    text: MsgText<'_>,
    msgsz: i64,
    flags: i32,
) -> Result<Fast<()>, Errno> {
    let Ok(mut p) = MsgPage::open(page) else { return Ok(Fast::Host) };
    let msgmax = i64::try_from(p.ctrl().msgmax).unwrap_or(0);
    let Ok((mtype, data)) = msgsnd_args(msqid, text, msgsz, msgmax) else { return Ok(Fast::Host) };
    match msg_send_queue(&mut p, pid, now, mtype, data) {
        Ok(SendStep::Sent) => match p.commit() {
            Ok(()) => Ok(Fast::Done(())),
            Err(_) => Ok(Fast::Host),
        },
        // "Insufficient space ... and IPC_NOWAIT was specified."
        Ok(SendStep::Full) if flags & IPC_NOWAIT != 0 => Err(Errno::EAGAIN),
        Ok(SendStep::Full) | Err(_) => Ok(Fast::Host),
    }
}

/// A `msgrcv` that does not sleep, on queue `msqid`'s state page (locked
/// by the caller, who holds a read grant): the same rules as
/// [`IpcNamespace::msgrcv`]; the text goes to `out` (at least `msgsz`
/// bytes, writable). Returns `mtype` and the bytes received. `MSG_COPY`
/// is left to the host.
///
/// # Errors
/// `E2BIG` (the message stays), `ENOMSG` (nothing matches, `IPC_NOWAIT`).
#[allow(clippy::too_many_arguments)]
pub fn msgrcv_fast<B: PageBytes + ?Sized>(
    page: &mut B,
    pid: Pid,
    now: Time,
    msqid: i32,
    msgsz: i64,
    msgtyp: i64,
    flags: i32,
    out: &mut [u8],
) -> Result<Fast<(i64, usize)>, Errno> {
    if flags & MSG_COPY != 0 {
        return Ok(Fast::Host);
    }
    let Ok(mut p) = MsgPage::open(page) else { return Ok(Fast::Host) };
    let Ok(bufsz) = msgrcv_args(msqid, msgsz, flags, true) else { return Ok(Fast::Host) };
    let sel = RecvSel::new(bufsz, msgtyp, flags);
    let pick = match msg_recv_pick(&p, &sel, p.ctrl().msgmax) {
        Ok(Some(pick)) => pick,
        // "IPC_NOWAIT was specified and no message of the requested type existed."
        Ok(None) if flags & IPC_NOWAIT != 0 => return Err(Errno::ENOMSG),
        Err(Errno::E2BIG) => return Err(Errno::E2BIG),
        Ok(None) | Err(_) => return Ok(Fast::Host),
    };
    let Some(dst) = usize::try_from(pick.keep).ok().and_then(|k| out.get_mut(..k)) else { return Ok(Fast::Host) };
    if msg_recv_take(&mut p, &pick, pid, now, dst).is_err() || p.commit().is_err() {
        return Ok(Fast::Host);
    }
    Ok(Fast::Done((pick.mtype, dst.len())))
}

#[cfg(feature = "serde")]
impl<R> MsgQueue<R> {
    /// The same queue with its arena's region converted by `f` (no
    /// sleepers: a restored queue has none).
    ///
    /// # Errors
    /// `f`'s.
    pub(crate) fn try_map_region<U, E>(self, f: impl FnOnce(R) -> Result<U, E>) -> Result<MsgQueue<U>, E> {
        Ok(MsgQueue {
            perm: self.perm,
            stime: self.stime,
            rtime: self.rtime,
            ctime: self.ctime,
            cbytes: self.cbytes,
            qbytes: self.qbytes,
            lspid: self.lspid,
            lrpid: self.lrpid,
            messages: self.messages,
            arena: Arena {
                region: self.arena.region.map(f).transpose()?,
                size: self.arena.size,
                end: self.arena.end,
                version: self.arena.version,
            },
            receivers: VecDeque::new(),
            senders: VecDeque::new(),
            version: self.version,
            perm_version: self.perm_version,
        })
    }
}
