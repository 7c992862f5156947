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
enum Search {
    Any,
    Equal,
    NotEqual,
    LessEqual,
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

/// One queued message in the index: its type and where its text lies in
/// the queue's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MsgEntry {
    mtype: i64,
    off: u64,
    len: u64,
}

/// The region holding a queue's message text (see the module's State layout).
#[derive(Debug)]
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
    receivers: VecDeque<WaiterId>,
    /// Sleeping senders (`q_senders`).
    senders: VecDeque<WaiterId>,
    /// Generation of the observable state (messages, counters, times,
    /// permissions): advanced by every change, never by a read.
    version: u64,
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

    /// `msg_fits_inqueue()` (MSG-CAP-1): the bytes and the message count
    /// are both bounded by `qbytes`.
    fn fits(&self, len: u64) -> bool {
        len.saturating_add(self.cbytes) <= self.qbytes && self.qnum().saturating_add(1) <= self.qbytes
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

    /// `find_msg()`: the index of the message the filter selects.
    fn find_msg(&self, mut msgtyp: i64, mode: Search) -> Option<usize> {
        let mut found = None;
        let mut count = 0i64;
        for (i, m) in self.messages.iter().enumerate() {
            if !testmsg(m.mtype, msgtyp, mode) {
                continue;
            }
            match mode {
                // Keep looking for a lower type; type 1 cannot be beaten.
                Search::LessEqual if m.mtype != 1 => {
                    msgtyp = m.mtype - 1;
                    found = Some(i);
                }
                Search::Number => {
                    if msgtyp == count {
                        return Some(i);
                    }
                }
                _ => return Some(i),
            }
            count += 1;
        }
        found
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
    total_msgs: u64,
    /// `percpu_msg_bytes`: bytes queued in the namespace.
    total_bytes: u64,
    /// Sleepers finished since the host last looked.
    pub(crate) wakeups: Vec<Wakeup>,
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
        }
    }
}

/// What one pass of `do_msgsnd()`'s loop came to.
enum SendStep {
    /// Sent (queued or handed over).
    Sent,
    /// The queue is full: sleep (or `EAGAIN`).
    Full,
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
            let q = self.ids.obtain_check_mut(id.0)?;
            let off = q.arena_alloc(mem, len)?;
            if len > 0 {
                let region = q.arena.region.as_ref().ok_or(Errno::ENOMEM)?;
                mem.write_at(region, off, &data)?;
            }
            q.messages.push_back(MsgEntry { mtype, off, len });
            q.cbytes += len;
            self.total_msgs += 1;
            self.total_bytes += len;
        }
        let q = self.ids.obtain_check_mut(id.0)?;
        q.lspid = cred.pid;
        q.stime = now;
        q.changed();
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
        msgtyp: i64,
        mode: Search,
        bufsz: u64,
        flags: i32,
        msgmax: u64,
    ) -> Result<Option<Message>, Errno> {
        let q = self.ids.obtain_check_mut(id.0)?;
        // "The calling process does not have read permission on the message queue."
        ipcperms(cred, &q.perm, Access::READ)?;
        let Some(i) = q.find_msg(msgtyp, mode) else { return Ok(None) };
        let m = q.messages[i];
        // MSG-RCV-4: "msgsz is less than the message and MSG_NOERROR is not set" — it stays queued.
        if bufsz < m.len && flags & MSG_NOERROR == 0 {
            return Err(Errno::E2BIG);
        }
        let keep = usize::try_from(bufsz.min(m.len)).unwrap_or(usize::MAX);
        if flags & MSG_COPY != 0 {
            // copy_msg(): the scratch buffer holds min(msgsz, msgmax) bytes.
            if bufsz.min(msgmax) < m.len {
                return Err(Errno::EINVAL);
            }
            let mut data = q.load(mem, &m)?;
            data.truncate(keep);
            return Ok(Some(Message { mtype: m.mtype, data }));
        }
        let mut data = q.load(mem, &m)?;
        data.truncate(keep);
        q.messages.remove(i);
        q.cbytes -= m.len;
        q.rtime = now;
        q.lrpid = cred.pid;
        q.changed();
        if q.messages.is_empty() {
            q.arena.end = 0;
        }
        self.total_msgs -= 1;
        self.total_bytes -= m.len;
        self.ss_wakeup(mem, id, now);
        Ok(Some(Message { mtype: m.mtype, data }))
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
            match self.recv_step(mem, &r.cred, now, id, r.msgtyp, r.mode, r.bufsz, flags, msgmax) {
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
        // MSG-SND-1: get_user(mtype) comes first.
        let mtype = match text {
            MsgText::Unreadable => return Err(Errno::EFAULT),
            MsgText::TypeOnly(t) | MsgText::Read(t, _) => t,
        };
        // MSG-SND-2: "msgsz is greater than the system limit (MSGMAX)", or negative, or msqid < 0.
        if msgsz < 0 || msgsz > i64::from(self.limits.msgmax) || id < 0 {
            return Err(Errno::EINVAL);
        }
        // MSG-SND-3: "mtype is less than 1".
        if mtype < 1 {
            return Err(Errno::EINVAL);
        }
        // MSG-SND-4: load_msg() of the text, before the lookup.
        let data = match text {
            MsgText::Read(_, d) if i64::try_from(d.len()).ok() == Some(msgsz) => d,
            _ => return Err(Errno::EFAULT),
        };
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
        let mut msgtyp = msgtyp;
        let mode = convert_mode(&mut msgtyp, flags);
        let qid = IpcId(id);
        self.msg.ids.obtain_check(id)?;
        let msgmax = u64::try_from(self.limits.msgmax).unwrap_or(0);
        if let Some(m) = self.msg.recv_step(&mut self.memory, cred, now, qid, msgtyp, mode, bufsz, flags, msgmax)? {
            return Ok(Outcome::Done(m));
        }
        // "IPC_NOWAIT was specified and no message of the requested type existed."
        if flags & IPC_NOWAIT != 0 {
            return Err(Errno::ENOMSG);
        }
        let w = self.new_waiter();
        let q = self.msg.ids.obtain_check_mut(id)?;
        q.receivers.push_back(w);
        let r = MsgReceiver { queue: qid, cred: cred.clone(), msgtyp, mode, bufsz, noerror: flags & MSG_NOERROR != 0 };
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
                let clamp = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
                let mut info = Msginfo {
                    msgpool: MSGPOOL,
                    msgmap: MSGMAP,
                    msgmax: l.msgmax,
                    msgmnb: l.msgmnb,
                    msgmni: l.msgmni,
                    msgssz: MSGSSZ,
                    msgtql: MSGTQL,
                    msgseg: MSGSEG,
                    pad: 0,
                };
                if cmd == MsgCmd::MsgInfo {
                    info.msgpool = clamp(u64::from(self.msg.ids.in_use()));
                    info.msgmap = clamp(self.msg.total_msgs);
                    info.msgtql = clamp(self.msg.total_bytes);
                }
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
                let q = self.msg.ids.obtain_check_mut(id)?;
                ipcctl_obtain_check(cred, &q.perm)?;
                // MSG-CTL-2: "msg_qbytes greater than MSGMNB without CAP_SYS_RESOURCE" → EPERM.
                if set.qbytes > msgmnb && !cred.capable(Cap::SYS_RESOURCE) {
                    return Err(Errno::EPERM);
                }
                ipc_update_perm(&set.perm, &mut q.perm)?;
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
