//! POSIX message queues (`mq_overview(7)`): the queues of one IPC
//! namespace's mqueue filesystem, their open descriptions, sleeping senders
//! and receivers, and notification registrations.
//!
//! A queue is an inode: a number, a [`FilePerm`], its attributes, its
//! messages (priority 0..32767, FIFO within a priority) and its sleepers.
//! Its name lives in the namespace's [`NameTable`]; unlinked while open, it
//! lives on, still counted against `queues_max`, until its last open
//! description goes. An open description ([`MqDescId`]) is what an `mqd_t`
//! refers to: the queue, the access mode and `O_NONBLOCK`, and which
//! processes hold descriptors to it (a host counts each process's
//! descriptors; `dup` and `fork` share the description).
//!
//! Sleeping is model state (STYLE rule 6): a send to a full queue or a
//! receive from an empty one returns [`Outcome::Blocked`]; a later receive
//! or send completes it (the kernel's pipelined send and receive: a sender
//! hands its message straight to the longest-waiting receiver, a receiver
//! moves the longest-waiting sender's message into the queue) and queues a
//! [`Wakeup`]; a woken receiver's [`Wakeup::message`] carries the message
//! (its `mtype` is the priority). Deadlines are absolute
//! `CLOCK_REALTIME` times the host watches; on expiry or a signal the host
//! calls [`IpcNamespace::mq_interrupt`].
//!
//! # Known differences
//! - Sleepers are served FIFO; Linux orders them by scheduling priority
//!   first (MQ-WAIT-1).
//! - `RLIMIT_MSGQUEUE` charges are counted per namespace (Linux counts them
//!   per user across all namespaces); the host may add what a user holds
//!   elsewhere (see [`IpcNamespace::mq_charged`]).
//!
//! # Data plane
//! A queue's messages can live on a state page its users map
//! ([`mq_page`](super::mq_page): `maxmsg` slots of `msgsize` bytes and an
//! index in delivery order). The send and receive rules are written once
//! over [`MqStore`], which the model's storage and the page both
//! implement; [`IpcNamespace::mq_adopt`] and [`IpcNamespace::mq_publish`]
//! move the state between them. See `docs/architecture.md`.
//!
//! # References
//! - <https://elixir.bootlin.com/linux/v6.12/source/ipc/mqueue.c>
//! - SPEC section 5 (MQ-*), section 7 (`fs.mqueue.*`, `RLIMIT_MSGQUEUE`)

use std::collections::{BTreeMap, VecDeque};

use uipc_abi::Errno;

use crate::cred::{Cap, Cred, Pid, Uid};
use crate::memory::Memory;
use crate::namespace::IpcNamespace;
use crate::perm::{self, FilePerm, MayAccess};
use crate::posix::mq_page::{self, MqCtrl, MqGeometry, MqPage};
use crate::posix::names::{NameTable, PosixName};
use crate::sysv::msg::Message;
use crate::sysv::msg_page::PageBytes;
use crate::time::Time;
use crate::wait::{Interrupt, Outcome, WaiterId, Wakeup};

/// `O_ACCMODE`.
pub const O_ACCMODE: i32 = 0o3;
/// `O_CREAT`.
pub const O_CREAT: i32 = 0o100;
/// `O_EXCL`.
pub const O_EXCL: i32 = 0o200;
/// `O_NONBLOCK`.
pub const O_NONBLOCK: i32 = 0o4000;
/// `O_APPEND` (a status flag the queue's file keeps, as any file).
pub const O_APPEND: i32 = 0o2000;
/// `MQ_PRIO_MAX`: priorities are below this.
pub const MQ_PRIO_MAX: u32 = 32768;
/// `HARD_MSGMAX`: the most messages even `CAP_SYS_RESOURCE` may ask for.
pub const HARD_MSGMAX: i64 = 65536;
/// `HARD_MSGSIZEMAX`: the largest message even `CAP_SYS_RESOURCE` may ask for.
pub const HARD_MSGSIZEMAX: i64 = 16 * 1024 * 1024;
/// `sizeof(struct msg_msg)` on x86_64: charged per message slot.
const MSG_MSG_SIZE: u64 = 48;
/// `sizeof(struct posix_msg_tree_node)` on x86_64: charged per priority node.
const TREE_NODE_SIZE: u64 = 48;
/// `SIGEV_SIGNAL`.
pub const SIGEV_SIGNAL: i32 = 0;
/// `SIGEV_NONE`.
pub const SIGEV_NONE: i32 = 1;
/// `SIGEV_THREAD`.
pub const SIGEV_THREAD: i32 = 2;
/// `_NSIG`: the highest valid signal number.
const NSIG: i32 = 64;

/// An open description of a queue (what an `mqd_t` refers to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MqDescId(pub u64);

/// The attributes a queue is created with (`mq_maxmsg`, `mq_msgsize` of
/// `struct mq_attr`; its `mq_flags` and `mq_curmsgs` are ignored, MQ-ATTR-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqCreateAttr {
    /// `mq_maxmsg`.
    pub maxmsg: i64,
    /// `mq_msgsize`.
    pub msgsize: i64,
}

/// What `mq_getattr` reports (`struct mq_attr`, reserved fields zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MqAttrs {
    /// `mq_flags`: the description's `O_NONBLOCK` (0 or 04000).
    pub flags: i64,
    /// `mq_maxmsg`.
    pub maxmsg: i64,
    /// `mq_msgsize`.
    pub msgsize: i64,
    /// `mq_curmsgs`.
    pub curmsgs: i64,
}

/// An absolute `CLOCK_REALTIME` deadline as the caller gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    /// `tv_sec`.
    pub sec: i64,
    /// `tv_nsec`.
    pub nsec: i64,
}

impl Deadline {
    /// `timespec64_valid()`: `tv_sec >= 0` and `0 <= tv_nsec < 1e9`.
    ///
    /// # Errors
    /// `EINVAL` otherwise (MQ-SND-1, MQ-RCV-1: checked even when the call
    /// would not sleep).
    pub fn validate(self) -> Result<Deadline, Errno> {
        if self.sec < 0 || !(0..1_000_000_000).contains(&self.nsec) {
            return Err(Errno::EINVAL);
        }
        Ok(self)
    }
}

/// How a registered process is told (`struct sigevent`, checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum NotifyHow {
    /// `SIGEV_NONE`: the registration is consumed, nothing is sent.
    None,
    /// `SIGEV_SIGNAL`: `signo` (0: nothing is sent) with `value`.
    Signal {
        /// `sigev_signo`.
        signo: i32,
        /// `sigev_value`.
        value: u64,
    },
    /// `SIGEV_THREAD` (glibc's: run a function in a new thread); the host
    /// keeps what to run, the model who is registered.
    Thread {
        /// `sigev_value`, passed to the function.
        value: u64,
    },
}

impl NotifyHow {
    /// Decodes a `struct sigevent`'s `sigev_notify`, `sigev_signo` and
    /// `sigev_value` as `do_mq_notify()` checks them.
    ///
    /// # Errors
    /// `EINVAL`: an unknown `sigev_notify`, or `SIGEV_SIGNAL` with a signal
    /// outside `0..=64` (MQ-NOT-2; signal 0 is accepted).
    pub fn decode(notify: i32, signo: i32, value: u64) -> Result<NotifyHow, Errno> {
        match notify {
            SIGEV_NONE => Ok(NotifyHow::None),
            // valid_signal(): 0..=_NSIG, compared unsigned.
            SIGEV_SIGNAL if (0..=NSIG).contains(&signo) => Ok(NotifyHow::Signal { signo, value }),
            SIGEV_THREAD => Ok(NotifyHow::Thread { value }),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The `sigev_notify` value (the status line's `NOTIFY:`).
    pub fn code(self) -> i32 {
        match self {
            NotifyHow::None => SIGEV_NONE,
            NotifyHow::Signal { .. } => SIGEV_SIGNAL,
            NotifyHow::Thread { .. } => SIGEV_THREAD,
        }
    }
}

/// A notification that fired: the host tells `owner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqNotification {
    /// The queue.
    pub queue: u64,
    /// The registered process.
    pub owner: Pid,
    /// How (never [`NotifyHow::None`], and never signal 0: those are consumed silently).
    pub how: NotifyHow,
    /// The sender's process (`si_pid`).
    pub sender: Pid,
    /// The sender's real uid (`si_uid`).
    pub sender_uid: Uid,
}

/// A registration dropped without firing (`remove_notification()`): a host
/// running `SIGEV_THREAD` callbacks ends its wait for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqNotifyRemoved {
    /// The queue.
    pub queue: u64,
    /// The process that was registered.
    pub owner: Pid,
}

/// A received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Its bytes.
    pub data: Vec<u8>,
    /// Its priority.
    pub prio: u32,
}

/// One queue's registration (`notify_owner`, `notify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Registration {
    owner: Pid,
    how: NotifyHow,
}

/// A sleeping sender and the message it brings.
#[derive(Clone, Debug)]
struct SleepingSender {
    waiter: WaiterId,
    msg: Vec<u8>,
    prio: u32,
}

/// One queue (`struct mqueue_inode_info` and its inode).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MqQueue {
    perm: FilePerm,
    maxmsg: i64,
    msgsize: i64,
    /// Messages by priority (highest served first), FIFO within one.
    messages: BTreeMap<u32, VecDeque<Vec<u8>>>,
    curmsgs: i64,
    /// Bytes of payload queued (the status line's QSIZE).
    qsize: u64,
    notify: Option<Registration>,
    #[cfg_attr(feature = "serde", serde(skip))]
    senders: VecDeque<SleepingSender>,
    #[cfg_attr(feature = "serde", serde(skip))]
    receivers: VecDeque<WaiterId>,
    /// Open descriptions.
    opens: u32,
    /// Whether a name still links it.
    linked: bool,
    /// Who was charged, and how much (`info->ucounts`, the `mq_bytes`).
    charge: (Uid, u64),
    atime: Time,
    mtime: Time,
    ctime: Time,
    /// Advanced by every change a state page shows (messages, times, the
    /// registration): the daemon publishes only when it moved, and adopts
    /// a page whose version is not its own.
    version: u64,
}

impl MqQueue {
    /// Owner, group and mode.
    pub fn perm(&self) -> FilePerm {
        self.perm
    }

    /// `mq_maxmsg`.
    pub fn maxmsg(&self) -> i64 {
        self.maxmsg
    }

    /// `mq_msgsize`.
    pub fn msgsize(&self) -> i64 {
        self.msgsize
    }

    /// `mq_curmsgs`.
    pub fn curmsgs(&self) -> i64 {
        self.curmsgs
    }

    /// Bytes queued (QSIZE).
    pub fn qsize(&self) -> u64 {
        self.qsize
    }

    /// Whether a name still links it.
    pub fn linked(&self) -> bool {
        self.linked
    }

    /// The registered process and `sigev_notify` code, if any.
    pub fn notify_owner(&self) -> Option<(Pid, NotifyHow)> {
        self.notify.map(|r| (r.owner, r.how))
    }

    /// Inode times: access, modification, change.
    pub fn times(&self) -> (Time, Time, Time) {
        (self.atime, self.mtime, self.ctime)
    }

    /// Readiness as `mqueue_poll_file()` reports it: (readable, writable)
    /// (MQ-FD-1).
    pub fn readiness(&self) -> (bool, bool) {
        (self.curmsgs > 0, self.curmsgs < self.maxmsg)
    }

    /// Sleeping senders and receivers, in service order.
    pub fn sleepers(&self) -> (Vec<WaiterId>, Vec<WaiterId>) {
        (self.senders.iter().map(|s| s.waiter).collect(), self.receivers.iter().copied().collect())
    }

    /// The status line a `read()` of the queue's file gives (MQ-FS-3);
    /// `pid_of` maps the owner into the reader's view (0 if invisible).
    ///
    /// # References
    /// Mirrors `ipc/mqueue.c:mqueue_read_file()`.
    pub fn status_line(&self) -> String {
        let (notify, signo, pid) = match self.notify {
            None => (0, 0, 0),
            Some(r) => {
                let signo = if let NotifyHow::Signal { signo, .. } = r.how { signo } else { 0 };
                (r.how.code(), signo, r.owner.0)
            }
        };
        format!("QSIZE:{:<10} NOTIFY:{:<5} SIGNO:{:<5} NOTIFY_PID:{:<6}\n", self.qsize, notify, signo, pid)
    }

    /// The version a state page of the queue carries ([`mq_page`](super::mq_page)).
    pub fn version(&self) -> u64 {
        self.version
    }

    fn changed(&mut self) {
        self.version = self.version.wrapping_add(1);
    }

    /// `msg_insert()`: after older messages of the same priority.
    fn insert(&mut self, msg: Vec<u8>, prio: u32) {
        self.qsize += u64::try_from(msg.len()).unwrap_or(u64::MAX);
        self.curmsgs += 1;
        self.messages.entry(prio).or_default().push_back(msg);
        self.changed();
    }

    /// `msg_get()`: the oldest message of the highest priority.
    fn take(&mut self) -> Option<Received> {
        let mut entry = self.messages.last_entry()?;
        let prio = *entry.key();
        let data = entry.get_mut().pop_front()?;
        if entry.get().is_empty() {
            entry.remove();
        }
        self.curmsgs -= 1;
        self.qsize -= u64::try_from(data.len()).unwrap_or(0);
        self.changed();
        Some(Received { data, prio })
    }

    /// Sets access and change times (`mq_notify`, `mq_getsetattr`, a read).
    fn accessed(&mut self, now: Time) {
        self.atime = now;
        self.ctime = now;
        self.changed();
    }

    /// Messages in receive order, as `(priority, bytes)`.
    pub fn messages(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.messages.iter().rev().flat_map(|(p, q)| q.iter().map(move |m| (*p, m.as_slice())))
    }
}

/// A queue's messages as the send and receive rules see them: the
/// model's ([`MqQueue`]) or a queue's state page
/// ([`mq_page::MqPage`](super::mq_page::MqPage), the fast path). The
/// rules ([`mq_send_args`], [`mq_send_admit`], [`mq_store_send`],
/// [`mq_receive_admit`], [`mq_store_receive`]) are written once over it.
pub trait MqStore {
    /// `mq_maxmsg`.
    fn maxmsg(&self) -> u64;
    /// `mq_msgsize`.
    fn msgsize(&self) -> u64;
    /// `mq_curmsgs`.
    fn curmsgs(&self) -> u64;
    /// Priority and length of the message a receive takes next
    /// (`msg_get()`: the oldest of the highest priority), `None` if empty.
    ///
    /// # Errors
    /// The storage's (`EUCLEAN`: a damaged page).
    fn head(&self) -> Result<Option<(u32, u64)>, Errno>;
    /// Copies the head message's text (`out` holds exactly its length) and
    /// dequeues it.
    ///
    /// # Errors
    /// The storage's.
    fn take_head(&mut self, out: &mut [u8]) -> Result<(), Errno>;
    /// Queues a message after every message of its priority or above
    /// (`msg_insert()`); the caller checked there is room.
    ///
    /// # Errors
    /// The storage's.
    fn insert(&mut self, prio: u32, data: &[u8]) -> Result<(), Errno>;
    /// `simple_inode_init_ts()`: access, modification and change times.
    fn touch(&mut self, now: Time);
}

/// What a send or receive that passed its checks does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MqStep<T> {
    /// Go on, with this.
    Go(T),
    /// The queue is full (a send) or empty (a receive) and the description
    /// blocks: sleep.
    Sleep,
}

/// `do_mq_timedsend()`'s checks before the descriptor is looked at: the
/// deadline (checked even when the call would not sleep, MQ-SND-1), then
/// the priority (MQ-SND-2).
///
/// # Errors
/// `EINVAL`.
pub fn mq_send_args(deadline: Option<Deadline>, prio: u32) -> Result<(), Errno> {
    if let Some(d) = deadline {
        d.validate()?;
    }
    if prio >= MQ_PRIO_MAX {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `do_mq_timedsend()` after the descriptor (open for writing): the
/// length against `mq_msgsize`, then room.
///
/// # Errors
/// `EMSGSIZE` (MQ-SND-3), `EAGAIN` (full, `O_NONBLOCK`).
pub fn mq_send_admit<S: MqStore + ?Sized>(s: &S, len: u64, nonblock: bool) -> Result<MqStep<()>, Errno> {
    if len > s.msgsize() {
        return Err(Errno::EMSGSIZE);
    }
    if s.curmsgs() >= s.maxmsg() {
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        return Ok(MqStep::Sleep);
    }
    Ok(MqStep::Go(()))
}

/// A send [`mq_send_admit`] let through, that no sleeping receiver takes:
/// the inode's times, then the message queued.
///
/// # Errors
/// The storage's.
pub fn mq_store_send<S: MqStore + ?Sized>(s: &mut S, now: Time, prio: u32, data: &[u8]) -> Result<(), Errno> {
    s.touch(now);
    s.insert(prio, data)
}

/// `do_mq_timedreceive()` after the descriptor (open for reading): the
/// buffer against `mq_msgsize`, then a message: its priority and length.
///
/// # Errors
/// `EMSGSIZE` (`len < mq_msgsize`, MQ-RCV-3), `EAGAIN` (empty,
/// `O_NONBLOCK`); the storage's.
pub fn mq_receive_admit<S: MqStore + ?Sized>(s: &S, len: u64, nonblock: bool) -> Result<MqStep<(u32, u64)>, Errno> {
    if len < s.msgsize() {
        return Err(Errno::EMSGSIZE);
    }
    match s.head()? {
        Some(h) => Ok(MqStep::Go(h)),
        None if nonblock => Err(Errno::EAGAIN),
        None => Ok(MqStep::Sleep),
    }
}

/// A receive [`mq_receive_admit`] let through: the head message's text to
/// `out` (its length), dequeued, then the inode's times.
///
/// # Errors
/// The storage's.
pub fn mq_store_receive<S: MqStore + ?Sized>(s: &mut S, now: Time, out: &mut [u8]) -> Result<(), Errno> {
    s.take_head(out)?;
    s.touch(now);
    Ok(())
}

impl MqStore for MqQueue {
    fn maxmsg(&self) -> u64 {
        self.maxmsg.unsigned_abs()
    }
    fn msgsize(&self) -> u64 {
        self.msgsize.unsigned_abs()
    }
    fn curmsgs(&self) -> u64 {
        self.curmsgs.unsigned_abs()
    }
    fn head(&self) -> Result<Option<(u32, u64)>, Errno> {
        Ok(self.messages.last_key_value().and_then(|(p, q)| Some((*p, q.front()?.len() as u64))))
    }
    fn take_head(&mut self, out: &mut [u8]) -> Result<(), Errno> {
        let got = self.take().ok_or(Errno::EINVAL)?;
        out.get_mut(..got.data.len()).ok_or(Errno::EINVAL)?.copy_from_slice(&got.data);
        Ok(())
    }
    fn insert(&mut self, prio: u32, data: &[u8]) -> Result<(), Errno> {
        MqQueue::insert(self, data.to_vec(), prio);
        Ok(())
    }
    fn touch(&mut self, now: Time) {
        self.atime = now;
        self.mtime = now;
        self.ctime = now;
        self.changed();
    }
}

/// One open description (`struct file` of an mqueue inode).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MqDesc {
    queue: u64,
    read: bool,
    write: bool,
    nonblock: bool,
    /// Processes holding descriptors to it, with how many.
    holders: BTreeMap<Pid, u32>,
}

impl MqDesc {
    /// The queue (its inode number).
    pub fn queue(&self) -> u64 {
        self.queue
    }

    /// `O_NONBLOCK` of the description.
    pub fn nonblock(&self) -> bool {
        self.nonblock
    }

    /// (`FMODE_READ`, `FMODE_WRITE`).
    pub fn access(&self) -> (bool, bool) {
        (self.read, self.write)
    }

    /// Which processes hold descriptors to it, with how many.
    pub fn holders(&self) -> &BTreeMap<Pid, u32> {
        &self.holders
    }
}

/// Where a sleeper sleeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Send,
    Receive,
}

/// The POSIX message queues of one namespace (its mqueue filesystem).
#[derive(Clone, Debug, Default)]
pub struct MqState {
    pub(crate) names: NameTable,
    pub(crate) queues: crate::tracked::Tracked<u64, MqQueue>,
    pub(crate) descs: crate::tracked::Tracked<MqDescId, MqDesc>,
    pub(crate) next_inode: u64,
    pub(crate) next_desc: u64,
    /// `mq_queues_count`: queues alive, unlinked-but-open ones included.
    pub(crate) count: i64,
    /// `RLIMIT_MSGQUEUE` bytes charged per real uid.
    pub(crate) charged: BTreeMap<Uid, u64>,
    /// Which queue and side each sleeper is on.
    sleepers: BTreeMap<WaiterId, (u64, Side)>,
    pub(crate) wakeups: Vec<Wakeup>,
    notifications: Vec<MqNotification>,
    removed: Vec<MqNotifyRemoved>,
}

/// What `mq_open` made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqOpened {
    /// The new open description.
    pub desc: MqDescId,
    /// Its queue.
    pub queue: u64,
    /// Whether the queue was created.
    pub created: bool,
}

/// `mq_bytes` charged for a queue (`mqueue_get_inode()`), or `EOVERFLOW`.
fn mq_bytes(maxmsg: i64, msgsize: i64) -> Result<u64, Errno> {
    let maxmsg = u64::try_from(maxmsg).map_err(|_| Errno::EINVAL)?;
    let msgsize = u64::try_from(msgsize).map_err(|_| Errno::EINVAL)?;
    // "if (info->attr.mq_msgsize > ULONG_MAX/info->attr.mq_maxmsg)".
    let bytes = maxmsg.checked_mul(msgsize).ok_or(Errno::EOVERFLOW)?;
    let tree = maxmsg * MSG_MSG_SIZE + maxmsg.min(u64::from(MQ_PRIO_MAX)) * TREE_NODE_SIZE;
    bytes.checked_add(tree).ok_or(Errno::EOVERFLOW)
}

impl MqState {
    fn desc(&self, cred: &Cred, desc: MqDescId) -> Result<&MqDesc, Errno> {
        // A description the caller holds no descriptor to is a bad descriptor.
        self.descs.get(&desc).filter(|d| d.holders.contains_key(&cred.pid)).ok_or(Errno::EBADF)
    }

    fn destroy(&mut self, queue: u64) {
        let Some(q) = self.queues.remove(&queue) else { return };
        if let Some(r) = q.notify {
            self.removed.push(MqNotifyRemoved { queue, owner: r.owner });
        }
        if let Some(c) = self.charged.get_mut(&q.charge.0) {
            *c = c.saturating_sub(q.charge.1);
            if *c == 0 {
                self.charged.remove(&q.charge.0);
            }
        }
        self.count -= 1;
    }

    /// Drops the description if nobody holds it; the queue if unlinked and
    /// no description is left (`mqueue_evict_inode()`).
    fn release_if_unheld(&mut self, desc: MqDescId) {
        let Some(d) = self.descs.get(&desc) else { return };
        if !d.holders.is_empty() {
            return;
        }
        let queue = d.queue;
        self.descs.remove(&desc);
        let Some(q) = self.queues.get_mut(&queue) else { return };
        q.opens = q.opens.saturating_sub(1);
        if q.opens == 0 && !q.linked {
            self.destroy(queue);
        }
    }

    /// `mqueue_flush_file()`: a close by the owner drops its registration.
    fn flush(&mut self, queue: u64, pid: Pid) {
        if let Some(q) = self.queues.get_mut(&queue) {
            if q.notify.is_some_and(|r| r.owner == pid) {
                q.notify = None;
                q.changed();
                self.removed.push(MqNotifyRemoved { queue, owner: pid });
            }
        }
    }

    fn wake(&mut self, waiter: WaiterId, result: Result<i64, Errno>, message: Option<Message>) {
        self.sleepers.remove(&waiter);
        self.wakeups.push(Wakeup { waiter, result, message });
    }
}

impl<M: Memory> IpcNamespace<M> {
    /// `mq_open(name, oflag, mode, attr)` — opens, or creates, a POSIX
    /// message queue; returns a new open description.
    ///
    /// `name` is the kernel's (glibc stripped the leading `/`); `attr` is
    /// used only when creating. The caller's umask and ids come from
    /// [`Cred::posix`].
    ///
    /// # Errors
    /// In the kernel's order (SPEC 5.2): name errors (`ENOENT`,
    /// `ENAMETOOLONG`, `EACCES`, [`PosixName::check`]); absent queue:
    /// `ENOENT` without `O_CREAT`, `ENOSPC` at `queues_max` without
    /// `CAP_SYS_RESOURCE`, `EINVAL` for bad attributes, `EOVERFLOW`,
    /// `EMFILE` over `RLIMIT_MSGQUEUE`; present queue: `EEXIST` with
    /// `O_CREAT|O_EXCL`, `EINVAL` for `O_ACCMODE == 3`, `EACCES`.
    ///
    /// # References
    /// Mirrors `ipc/mqueue.c:do_mq_open()`, `prepare_open()`,
    /// `mqueue_create_attr()`, `mqueue_get_inode()` (Linux 6.12);
    /// [mq_open(3)](https://man7.org/linux/man-pages/man3/mq_open.3.html).
    pub fn mq_open(
        &mut self,
        cred: &Cred,
        now: Time,
        name: &[u8],
        oflag: i32,
        mode: u32,
        attr: Option<MqCreateAttr>,
    ) -> Result<MqOpened, Errno> {
        let name = PosixName::check(name)?;
        let acc = oflag & O_ACCMODE;
        // OPEN_FMODE(): O_RDONLY reads, O_WRONLY writes, O_RDWR both, 3 neither.
        let (read, write) = match acc {
            0 => (true, false),
            1 => (false, true),
            2 => (true, true),
            _ => (false, false),
        };
        let (queue, created) = match self.mq.names.lookup(&name) {
            None => {
                // prepare_open(): a negative dentry without O_CREAT.
                if oflag & O_CREAT == 0 {
                    return Err(Errno::ENOENT);
                }
                (self.mq_create(cred, now, name, mode, attr)?, true)
            }
            Some(queue) => {
                if oflag & (O_CREAT | O_EXCL) == (O_CREAT | O_EXCL) {
                    return Err(Errno::EEXIST);
                }
                // "(oflag & O_ACCMODE) == (O_RDWR | O_WRONLY)" → EINVAL (MQ-OPEN-5).
                if acc == 3 {
                    return Err(Errno::EINVAL);
                }
                let q = self.mq.queues.get(&queue).ok_or(Errno::ENOENT)?;
                perm::file_permission(cred, &q.perm, MayAccess { read, write })?;
                (queue, false)
            }
        };
        let desc = MqDescId(self.mq.next_desc);
        self.mq.next_desc += 1;
        let holders = BTreeMap::from([(cred.pid, 1)]);
        self.mq.descs.insert(desc, MqDesc { queue, read, write, nonblock: oflag & O_NONBLOCK != 0, holders });
        if let Some(q) = self.mq.queues.get_mut(&queue) {
            q.opens += 1;
        }
        Ok(MqOpened { desc, queue, created })
    }

    /// `mqueue_create_attr()` + `mqueue_get_inode()`: the limits, the
    /// attribute checks and the `RLIMIT_MSGQUEUE` charge, in that order.
    fn mq_create(
        &mut self,
        cred: &Cred,
        now: Time,
        name: PosixName,
        mode: u32,
        attr: Option<MqCreateAttr>,
    ) -> Result<u64, Errno> {
        let limits = &self.limits;
        // "mq_queues_count >= mq_queues_max && !capable(CAP_SYS_RESOURCE)" → ENOSPC.
        if self.mq.count >= i64::from(limits.mq_queues_max) && !cred.capable(Cap::SYS_RESOURCE) {
            return Err(Errno::ENOSPC);
        }
        let (maxmsg, msgsize) = match attr {
            Some(a) => (a.maxmsg, a.msgsize),
            None => (
                i64::from(limits.mq_msg_max.min(limits.mq_msg_default)),
                i64::from(limits.mq_msgsize_max.min(limits.mq_msgsize_default)),
            ),
        };
        // MQ-ATTR-2/3: non-positive, or above the namespace's (or the hard) maxima.
        if maxmsg <= 0 || msgsize <= 0 {
            return Err(Errno::EINVAL);
        }
        if cred.capable(Cap::SYS_RESOURCE) {
            if maxmsg > HARD_MSGMAX || msgsize > HARD_MSGSIZEMAX {
                return Err(Errno::EINVAL);
            }
        } else if maxmsg > i64::from(limits.mq_msg_max) || msgsize > i64::from(limits.mq_msgsize_max) {
            return Err(Errno::EINVAL);
        }
        // MQ-ATTR-4, then MQ-ATTR-5: the charge against the real user's limit → EMFILE.
        let bytes = mq_bytes(maxmsg, msgsize)?;
        let user = cred.posix.ruid;
        let held = self.mq.charged.get(&user).copied().unwrap_or(0);
        let total = held.checked_add(bytes).ok_or(Errno::EMFILE)?;
        if total > cred.posix.msgqueue_limit || total > i64::MAX.unsigned_abs() {
            return Err(Errno::EMFILE);
        }
        self.mq.charged.insert(user, total);
        self.mq.count += 1;
        let inode = self.mq.next_inode;
        self.mq.next_inode += 1;
        // MQ-OPEN-6: mode & ~umask, setuid/setgid/sticky kept; owner fsuid/fsgid.
        let perm = FilePerm { uid: cred.posix.fsuid, gid: cred.posix.fsgid, mode: mode & !cred.posix.umask & 0o7777 };
        self.mq.queues.insert(
            inode,
            MqQueue {
                perm,
                maxmsg,
                msgsize,
                messages: BTreeMap::new(),
                curmsgs: 0,
                qsize: 0,
                notify: None,
                senders: VecDeque::new(),
                receivers: VecDeque::new(),
                opens: 0,
                linked: true,
                charge: (user, bytes),
                atime: now,
                mtime: now,
                ctime: now,
                version: 0,
            },
        );
        self.mq.names.link(name, inode)?;
        Ok(inode)
    }

    /// `mq_unlink(name)` — removes a queue's name; the queue lives on
    /// while descriptions are open (MQ-UNL-3).
    ///
    /// # Errors
    /// Name errors as [`PosixName::check`]; `ENOENT` if absent; `EPERM`
    /// unless the caller owns the queue or the mqueue root (the namespace's
    /// owner) or has `CAP_FOWNER` (the root is sticky; glibc reports
    /// `EACCES`).
    ///
    /// # References
    /// Mirrors `ipc/mqueue.c:mq_unlink()` → `vfs_unlink()` (Linux 6.12).
    pub fn mq_unlink(&mut self, cred: &Cred, name: &[u8]) -> Result<(), Errno> {
        let name = PosixName::check(name)?;
        let queue = self.mq.names.lookup(&name).ok_or(Errno::ENOENT)?;
        let q = self.mq.queues.get(&queue).ok_or(Errno::ENOENT)?;
        perm::check_sticky(cred, self.owner.uid, &q.perm)?;
        self.mq.names.unlink(&name);
        let opens = match self.mq.queues.get_mut(&queue) {
            Some(q) => {
                q.linked = false;
                q.opens
            }
            None => return Ok(()),
        };
        if opens == 0 {
            self.mq.destroy(queue);
        }
        Ok(())
    }

    /// `close()` of one descriptor of `desc` by `cred.pid`: the owner's
    /// notification is dropped (any descriptor of the queue, MQ-NOT-10);
    /// the description goes with its last descriptor, an unlinked queue
    /// with its last description.
    ///
    /// # Errors
    /// `EBADF` if the caller holds no descriptor to `desc`.
    ///
    /// # References
    /// Mirrors `filp_close()` → `mqueue_flush_file()`, then `fput()` →
    /// `mqueue_evict_inode()` (Linux 6.12); SPEC MQ-CLOSE-1.
    pub fn mq_close(&mut self, cred: &Cred, desc: MqDescId) -> Result<(), Errno> {
        let queue = self.mq.desc(cred, desc)?.queue;
        self.mq.flush(queue, cred.pid);
        if let Some(d) = self.mq.descs.get_mut(&desc) {
            if let Some(n) = d.holders.get_mut(&cred.pid) {
                *n -= 1;
                if *n == 0 {
                    d.holders.remove(&cred.pid);
                }
            }
        }
        self.mq.release_if_unheld(desc);
        Ok(())
    }

    /// `dup()` of a descriptor of `desc` by `cred.pid`: one more
    /// descriptor on the same description.
    ///
    /// # Errors
    /// `EBADF` if the caller holds none.
    pub fn mq_dup(&mut self, cred: &Cred, desc: MqDescId) -> Result<(), Errno> {
        self.mq.desc(cred, desc)?;
        if let Some(d) = self.mq.descs.get_mut(&desc) {
            *d.holders.entry(cred.pid).or_insert(0) += 1;
        }
        Ok(())
    }

    /// `mq_timedsend(mqdes, msg, len, prio, abs_timeout)` — queues `msg`,
    /// hands it to a sleeping receiver, or sleeps while the queue is full.
    ///
    /// `nonblock` is the description's `O_NONBLOCK` as the caller's
    /// descriptor has it now (see [`MqDesc::nonblock`]; a host whose
    /// descriptors carry the flag themselves passes theirs).
    ///
    /// # Errors
    /// In the kernel's order: `EINVAL` (bad deadline, then `prio >=
    /// 32768`), `EBADF` (not held, not open for writing), `EMSGSIZE`,
    /// `EAGAIN` (full and non-blocking). A sleeper later ends with 0,
    /// `ETIMEDOUT` or `EINTR`.
    ///
    /// # References
    /// Mirrors `ipc/mqueue.c:do_mq_timedsend()`, `pipelined_send()`,
    /// `__do_notify()` (Linux 6.12); SPEC 5.4, MQ-NOT-8.
    #[doc(alias = "mq_send")]
    #[allow(clippy::too_many_arguments)]
    pub fn mq_timedsend(
        &mut self,
        cred: &Cred,
        now: Time,
        desc: MqDescId,
        nonblock: bool,
        msg: Vec<u8>,
        prio: u32,
        deadline: Option<Deadline>,
    ) -> Result<Outcome<()>, Errno> {
        // MQ-SND-2: the priority before the descriptor.
        mq_send_args(deadline, prio)?;
        let d = self.mq.desc(cred, desc)?;
        if !d.write {
            return Err(Errno::EBADF);
        }
        let queue = d.queue;
        let q = self.mq.queues.get_mut(&queue).ok_or(Errno::EBADF)?;
        if mq_send_admit(q, msg.len() as u64, nonblock)? == MqStep::Sleep {
            let waiter = self.new_waiter();
            let q = self.mq.queues.get_mut(&queue).ok_or(Errno::EBADF)?;
            q.senders.push_back(SleepingSender { waiter, msg, prio });
            self.mq.sleepers.insert(waiter, (queue, Side::Send));
            return Ok(Outcome::Blocked(waiter));
        }
        if let Some(receiver) = q.receivers.pop_front() {
            MqStore::touch(q, now);
            // pipelined_send(): straight to the receiver; no notification.
            let len = i64::try_from(msg.len()).unwrap_or(i64::MAX);
            self.mq.wake(receiver, Ok(len), Some(Message { mtype: i64::from(prio), data: msg }));
            return Ok(Outcome::Done(()));
        }
        mq_store_send(q, now, prio, &msg)?;
        // __do_notify(): only for the empty → one-message transition.
        if q.curmsgs == 1 {
            if let Some(r) = q.notify.take() {
                q.changed();
                let fire = match r.how {
                    NotifyHow::None | NotifyHow::Signal { signo: 0, .. } => false,
                    NotifyHow::Signal { .. } => true,
                    NotifyHow::Thread { .. } => true,
                };
                if fire {
                    self.mq.notifications.push(MqNotification {
                        queue,
                        owner: r.owner,
                        how: r.how,
                        sender: cred.pid,
                        sender_uid: cred.posix.ruid,
                    });
                }
            }
        }
        Ok(Outcome::Done(()))
    }

    /// `mq_timedreceive(mqdes, buf, len, prio, abs_timeout)` — takes the
    /// oldest message of the highest priority, or sleeps while the queue
    /// is empty. A woken receiver's [`Wakeup::message`] carries its
    /// message, the priority as `mtype`.
    ///
    /// # Errors
    /// In the kernel's order: `EINVAL` (bad deadline), `EBADF` (not held,
    /// not open for reading), `EMSGSIZE` (`len < mq_msgsize`, MQ-RCV-3),
    /// `EAGAIN` (empty and non-blocking).
    ///
    /// # References
    /// Mirrors `ipc/mqueue.c:do_mq_timedreceive()`, `pipelined_receive()`
    /// (Linux 6.12); SPEC 5.5.
    #[doc(alias = "mq_receive")]
    pub fn mq_timedreceive(
        &mut self,
        cred: &Cred,
        now: Time,
        desc: MqDescId,
        nonblock: bool,
        len: u64,
        deadline: Option<Deadline>,
    ) -> Result<Outcome<Received>, Errno> {
        if let Some(d) = deadline {
            d.validate()?;
        }
        let d = self.mq.desc(cred, desc)?;
        if !d.read {
            return Err(Errno::EBADF);
        }
        let queue = d.queue;
        let q = self.mq.queues.get_mut(&queue).ok_or(Errno::EBADF)?;
        let MqStep::Go((prio, n)) = mq_receive_admit(q, len, nonblock)? else {
            let waiter = self.new_waiter();
            let q = self.mq.queues.get_mut(&queue).ok_or(Errno::EBADF)?;
            q.receivers.push_back(waiter);
            self.mq.sleepers.insert(waiter, (queue, Side::Receive));
            return Ok(Outcome::Blocked(waiter));
        };
        let mut data = vec![0; usize::try_from(n).map_err(|_| Errno::EMSGSIZE)?];
        mq_store_receive(q, now, &mut data)?;
        let got = Received { data, prio };
        // pipelined_receive(): the first sleeping sender's message fills the room.
        if let Some(s) = q.senders.pop_front() {
            q.insert(s.msg, s.prio);
            self.mq.wake(s.waiter, Ok(0), None);
        }
        Ok(Outcome::Done(got))
    }

    /// Ends a sleeping send or receive that nobody completed: `ETIMEDOUT`
    /// for the deadline, `EINTR` for a signal. `None` if `waiter` is not
    /// (or no longer) a sleeper here: an operation that happened is never
    /// reported as interrupted (`wq_sleep()` checks `STATE_READY` first).
    ///
    /// # References
    /// Mirrors `ipc/mqueue.c:wq_sleep()` (Linux 6.12).
    pub fn mq_interrupt(&mut self, waiter: WaiterId, why: Interrupt) -> Option<Result<i64, Errno>> {
        let (queue, side) = self.mq.sleepers.remove(&waiter)?;
        if let Some(q) = self.mq.queues.get_mut(&queue) {
            match side {
                Side::Send => q.senders.retain(|s| s.waiter != waiter),
                Side::Receive => q.receivers.retain(|w| *w != waiter),
            }
        }
        Some(Err(match why {
            Interrupt::Signal => Errno::EINTR,
            Interrupt::Timeout => Errno::ETIMEDOUT,
        }))
    }

    /// Whether `waiter` sleeps in a message queue operation.
    pub fn mq_is_sleeper(&self, waiter: WaiterId) -> bool {
        self.mq.sleepers.contains_key(&waiter)
    }

    /// `mq_notify(mqdes, sevp)` — registers the calling process for one
    /// notification of the queue's empty → non-empty change, or (`None`)
    /// removes its registration.
    ///
    /// The caller decodes the sigevent first ([`NotifyHow::decode`]:
    /// `EINVAL` comes before `EBADF`, MQ-NOT-2).
    ///
    /// # Errors
    /// `EBADF` if the caller holds no descriptor to `desc`; `EBUSY` if
    /// anybody (the caller included) is registered (MQ-NOT-6). `None` from
    /// a process that is not the owner succeeds and changes nothing.
    ///
    /// # References
    /// Mirrors `ipc/mqueue.c:do_mq_notify()` (Linux 6.12); SPEC 5.7.
    pub fn mq_notify(&mut self, cred: &Cred, now: Time, desc: MqDescId, how: Option<NotifyHow>) -> Result<(), Errno> {
        let queue = self.mq.desc(cred, desc)?.queue;
        let q = self.mq.queues.get_mut(&queue).ok_or(Errno::EBADF)?;
        match how {
            None => {
                if q.notify.is_some_and(|r| r.owner == cred.pid) {
                    q.notify = None;
                    q.accessed(now);
                    self.mq.removed.push(MqNotifyRemoved { queue, owner: cred.pid });
                }
            }
            Some(_) if q.notify.is_some() => return Err(Errno::EBUSY),
            Some(how) => {
                q.notify = Some(Registration { owner: cred.pid, how });
                q.accessed(now);
            }
        }
        Ok(())
    }

    /// `mq_getsetattr(mqdes, new, old)` — reports the queue's attributes
    /// with the description's `O_NONBLOCK` (before the change), and with
    /// `new` sets that flag.
    ///
    /// `nonblock` is the description's current flag as the caller's
    /// descriptor has it (see [`mq_timedsend`](Self::mq_timedsend)).
    ///
    /// # Errors
    /// `EINVAL` if `new`'s flags have bits other than `O_NONBLOCK` (before
    /// the descriptor, MQ-ATTR-G-1); `EBADF`.
    ///
    /// # References
    /// Mirrors `ipc/mqueue.c:do_mq_getsetattr()` (Linux 6.12); SPEC 5.8.
    #[doc(alias = "mq_getattr")]
    #[doc(alias = "mq_setattr")]
    pub fn mq_getsetattr(
        &mut self,
        cred: &Cred,
        now: Time,
        desc: MqDescId,
        nonblock: bool,
        new_flags: Option<i64>,
    ) -> Result<MqAttrs, Errno> {
        if new_flags.is_some_and(|f| f & !i64::from(O_NONBLOCK) != 0) {
            return Err(Errno::EINVAL);
        }
        let queue = self.mq.desc(cred, desc)?.queue;
        let q = self.mq.queues.get_mut(&queue).ok_or(Errno::EBADF)?;
        let old = MqAttrs {
            flags: if nonblock { i64::from(O_NONBLOCK) } else { 0 },
            maxmsg: q.maxmsg,
            msgsize: q.msgsize,
            curmsgs: q.curmsgs,
        };
        if let Some(f) = new_flags {
            q.accessed(now);
            if let Some(d) = self.mq.descs.get_mut(&desc) {
                d.nonblock = f & i64::from(O_NONBLOCK) != 0;
            }
        }
        Ok(old)
    }

    /// The status line of `desc`'s queue, as a `read()` of the descriptor
    /// gives it (MQ-FS-3); the read updates atime and ctime (MQ-FS-4).
    ///
    /// # Errors
    /// `EBADF`.
    pub fn mq_read_status(&mut self, cred: &Cred, now: Time, desc: MqDescId) -> Result<String, Errno> {
        let queue = self.mq.desc(cred, desc)?.queue;
        let q = self.mq.queues.get_mut(&queue).ok_or(Errno::EBADF)?;
        q.accessed(now);
        Ok(q.status_line())
    }

    /// The description `desc`, whoever holds it.
    pub fn mq_desc(&self, desc: MqDescId) -> Option<&MqDesc> {
        self.mq.descs.get(&desc)
    }

    /// Queue `inode`.
    pub fn mq_queue(&self, inode: u64) -> Option<&MqQueue> {
        self.mq.queues.get(&inode)
    }

    /// The queues a process is registered on with `SIGEV_THREAD` (whose
    /// waiting thread the host tells, not the model).
    pub fn mq_thread_registrations(&self) -> Vec<u64> {
        let thread = |q: &MqQueue| q.notify.as_ref().is_some_and(|r| matches!(r.how, NotifyHow::Thread { .. }));
        self.mq.queues.iter().filter(|(_, q)| thread(q)).map(|(&inode, _)| inode).collect()
    }

    /// Removes queue `inode`'s `SIGEV_THREAD` registration, which the host
    /// can no longer tell (a restarted daemon whose registered process
    /// is gone): the queue is free for a new registration, as after the
    /// owner's `mq_notify(NULL)`.
    pub fn mq_drop_thread_registration(&mut self, inode: u64) {
        if let Some(q) = self.mq.queues.get_mut(&inode) {
            if q.notify.as_ref().is_some_and(|r| matches!(r.how, NotifyHow::Thread { .. })) {
                q.notify = None;
                q.version += 1;
            }
        }
    }

    /// Every named queue, as `(name, queue)`, in name order (the mqueue
    /// filesystem's directory).
    pub fn mq_list(&self) -> Vec<(Vec<u8>, &MqQueue)> {
        self.mq.names.iter().filter_map(|(n, i)| Some((n.as_bytes().to_vec(), self.mq.queues.get(&i)?))).collect()
    }

    /// The geometry a state page of queue `inode` has (`None`: its body
    /// would exceed [`mq_page::PAGE_BODY_MAX`]; the queue lives in the host
    /// only).
    ///
    /// # Errors
    /// `EBADF` if there is no such queue.
    pub fn mq_page_geometry(&self, inode: u64) -> Result<Option<MqGeometry>, Errno> {
        let q = self.mq.queues.get(&inode).ok_or(Errno::EBADF)?;
        Ok(MqGeometry::for_queue(q.maxmsg, q.msgsize))
    }

    /// Whether callers sleep on queue `inode` (every change must then go
    /// through the host, which keeps the kernel's hand-off order).
    ///
    /// # Errors
    /// `EBADF` if there is no such queue.
    pub fn mq_page_sleepers(&self, inode: u64) -> Result<bool, Errno> {
        let q = self.mq.queues.get(&inode).ok_or(Errno::EBADF)?;
        Ok(!q.senders.is_empty() || !q.receivers.is_empty())
    }

    /// Takes the state of queue `inode`'s page (locked by the host, after
    /// [`mq_page::recover`] if its last holder died) into the model: the
    /// messages, `curmsgs`, `qsize`, the times and the version fast paths
    /// changed. Everything is validated first; the model is untouched
    /// unless all of it is sound. Nothing is read when the page's version
    /// is the model's.
    ///
    /// # Errors
    /// `EUCLEAN`: the page is damaged (bad header, record or free slot,
    /// counters that disagree, a word the fast path never changes
    /// changed); `EBADF`: no such queue.
    pub fn mq_adopt<B: PageBytes + ?Sized>(&mut self, inode: u64, page: &mut B) -> Result<(), Errno> {
        let q = self.mq.queues.get(&inode).ok_or(Errno::EBADF)?;
        let p = MqPage::open(page)?;
        let c = *p.ctrl();
        let geo = p.geometry();
        if geo.maxmsg != q.maxmsg.unsigned_abs()
            || geo.msgsize != q.msgsize.unsigned_abs()
            || c.notify != u64::from(q.notify.is_some())
        {
            return Err(Errno::EUCLEAN);
        }
        if c.version == q.version {
            return Ok(());
        }
        p.check()?;
        let mut messages: BTreeMap<u32, VecDeque<Vec<u8>>> = BTreeMap::new();
        for i in 0..c.curmsgs {
            let r = p.record(i)?;
            let mut data = vec![0; usize::try_from(r.len).map_err(|_| Errno::EUCLEAN)?];
            p.text(&r, &mut data)?;
            messages.entry(r.prio).or_default().push_back(data);
        }
        let q = self.mq.queues.get_mut(&inode).ok_or(Errno::EBADF)?;
        q.messages = messages;
        q.curmsgs = i64::try_from(c.curmsgs).map_err(|_| Errno::EUCLEAN)?;
        q.qsize = c.qsize;
        (q.atime, q.mtime, q.ctime) = (Time(c.atime), Time(c.mtime), Time(c.ctime));
        q.version = c.version;
        Ok(())
    }

    /// Formats `page` (at least the geometry's [`body_len`]
    /// (MqGeometry::body_len) bytes) as queue `inode`'s state page and
    /// publishes the queue into it.
    ///
    /// # Errors
    /// `EFBIG`: the queue is too big for a page; `EUCLEAN`: `page` is too
    /// short; `EBADF`: no such queue.
    pub fn mq_page_init<B: PageBytes + ?Sized>(&mut self, inode: u64, page: &mut B) -> Result<(), Errno> {
        let geo = self.mq_page_geometry(inode)?.ok_or(Errno::EFBIG)?;
        let version = self.mq.queues.get(&inode).ok_or(Errno::EBADF)?.version;
        // A version the model does not have, so the publish writes everything.
        mq_page::format(page, geo, MqCtrl { version: !version, ..MqCtrl::default() })?;
        self.mq_publish(inode, page)
    }

    /// Writes queue `inode`'s model state into its page (locked by the
    /// host): the messages when the page's version is not the model's,
    /// and always the registration word and the readiness level (which
    /// the host then gives the queue's descriptors).
    ///
    /// # Errors
    /// `EUCLEAN`: the page is damaged or of another geometry; `EBADF`: no
    /// such queue.
    pub fn mq_publish<B: PageBytes + ?Sized>(&mut self, inode: u64, page: &mut B) -> Result<(), Errno> {
        let q = self.mq.queues.get(&inode).ok_or(Errno::EBADF)?;
        let mut p = MqPage::open(page)?;
        if p.geometry().maxmsg != q.maxmsg.unsigned_abs() || p.geometry().msgsize != q.msgsize.unsigned_abs() {
            return Err(Errno::EUCLEAN);
        }
        if p.ctrl().version != q.version {
            p.clear()?;
            for (prio, data) in q.messages() {
                p.insert(prio, data)?;
            }
            let c = p.ctrl_mut();
            (c.atime, c.mtime, c.ctime) = (q.atime.0, q.mtime.0, q.ctime.0);
            c.version = q.version;
        }
        let level = p.level_now() as u64;
        let c = p.ctrl_mut();
        c.notify = u64::from(q.notify.is_some());
        c.level = level;
        p.commit()
    }

    /// `mq_queues_count`: queues alive, unlinked-but-open ones included.
    pub fn mq_queue_count(&self) -> i64 {
        self.mq.count
    }

    /// Bytes of `RLIMIT_MSGQUEUE` charged to real user `uid` here.
    pub fn mq_charged(&self, uid: Uid) -> u64 {
        self.mq.charged.get(&uid).copied().unwrap_or(0)
    }

    /// Notifications fired since the last call, in firing order; the host
    /// delivers them.
    pub fn mq_take_notifications(&mut self) -> Vec<MqNotification> {
        std::mem::take(&mut self.mq.notifications)
    }

    /// Registrations dropped without firing since the last call.
    pub fn mq_take_removed(&mut self) -> Vec<MqNotifyRemoved> {
        std::mem::take(&mut self.mq.removed)
    }

    /// The open descriptions process `pid` holds descriptors to, with how many.
    pub fn mq_held_by(&self, pid: Pid) -> Vec<(MqDescId, u32)> {
        self.mq.descs.iter().filter_map(|(id, d)| Some((*id, *d.holders.get(&pid)?))).collect()
    }

    /// `fork()`: the child holds every descriptor the parent holds (same
    /// descriptions); registrations are not inherited (SPEC 9).
    pub(crate) fn mq_fork(&mut self, parent: Pid, child: Pid) {
        for d in self.mq.descs.values_mut() {
            if let Some(n) = d.holders.get(&parent).copied() {
                d.holders.insert(child, n);
            }
        }
    }

    /// Every descriptor of `pid` closes: at exit, and at exec (mq
    /// descriptors are close-on-exec, MQ-OPEN-7), each close dropping the
    /// process's registrations (MQ-NOT-10).
    pub(crate) fn mq_exit(&mut self, pid: Pid) {
        let held: Vec<MqDescId> =
            self.mq.descs.iter().filter(|(_, d)| d.holders.contains_key(&pid)).map(|(id, _)| *id).collect();
        for desc in held {
            if let Some(queue) = self.mq.descs.get(&desc).map(|d| d.queue) {
                self.mq.flush(queue, pid);
            }
            if let Some(d) = self.mq.descs.get_mut(&desc) {
                d.holders.remove(&pid);
            }
            self.mq.release_if_unheld(desc);
        }
    }

    /// Namespace teardown: every queue's registration is dropped and every
    /// name removed; queues held open live on until closed (NS-9).
    pub(crate) fn mq_free_names(&mut self) {
        let names: Vec<PosixName> = self.mq.names.iter().map(|(n, _)| n.clone()).collect();
        for n in names {
            if let Some(queue) = self.mq.names.unlink(&n) {
                let opens = match self.mq.queues.get_mut(&queue) {
                    Some(q) => {
                        q.linked = false;
                        q.opens
                    }
                    None => continue,
                };
                if opens == 0 {
                    self.mq.destroy(queue);
                }
            }
        }
    }
}
