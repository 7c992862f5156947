//! The core backend: the same operations on `uipc-core`, with the testkit
//! playing the part of the processes (credentials, address choice, loads
//! and stores through the model's mappings).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use uipc_abi::{Errno, PAGE_SIZE};
use uipc_core::cred::{Cap, CapSet, Cred, Gid, Pid, Uid, RLIM_INFINITY};
use uipc_core::perm::PermUpdate;
use uipc_core::posix::mqueue::{Deadline, MqCreateAttr, MqDescId, NotifyHow};
use uipc_core::sysv::msg::{MsgCmd, MsgCtlOut, MsgSet, MsgText};
use uipc_core::sysv::sem::{self, SemCmd, SemCtlOut};
use uipc_core::sysv::shm::{ShmCmd, ShmCtlOut};
use uipc_core::wait::{Interrupt, Outcome, WaiterId};
use uipc_core::{HeapMemory, IpcNamespace, Time};

use crate::backend::Backend;
use crate::op::{
    mq_op, CtlBuf, Data, Identity, MsgCtlBuf, MsgDsView, Op, Reply, SemArg, SemDsView, ShmDsView, ShmInfoView,
    ShminfoView, Started, Timeout,
};
use crate::sandbox;

/// Where the simulated processes' mappings start.
const FIRST_ADDR: u64 = 0x7000_0000_0000;
/// `vm.mmap_min_addr`'s usual value: fixed mappings below need CAP_SYS_RAWIO.
const MMAP_MIN_ADDR: u64 = 65536;
/// `TASK_SIZE` of x86_64 with 4-level page tables: the end of user space.
const TASK_SIZE: u64 = 0x7fff_ffff_f000;
/// The bad pointer the kernel agent passes for a faulting argument.
const FAULT_ADDR: usize = 8;

/// Runs operations on one [`IpcNamespace`] of `uipc-core`.
pub struct CoreBackend {
    ns: IpcNamespace<HeapMemory>,
    procs: BTreeMap<u32, Cred>,
    next_pid: u32,
    /// Next free simulated address (shared by all processes, so addresses
    /// inherited over fork stay unique).
    next_addr: u64,
    /// Processes asleep in a semop: the waiter, and whether it has a timeout.
    asleep: BTreeMap<u32, (WaiterId, bool)>,
    /// Replies of sleepers that finished, waiting to be collected.
    finished: BTreeMap<u32, Reply>,
    /// Processes asleep in a msgrcv whose buffer is unwritable.
    faulting: BTreeSet<u32>,
    /// Processes asleep in an `mq_timedreceive` (their message is a [`Data::MqMsg`]).
    mq_receivers: BTreeSet<u32>,
}

impl Default for CoreBackend {
    fn default() -> Self {
        Self::new()
    }
}

fn now() -> Time {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Time(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `RLIMIT_MEMLOCK` of this process (what the kernel backend's workers inherit).
fn memlock_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned));
    match soft.as_deref() {
        Some("unlimited") | None => RLIM_INFINITY,
        Some(v) => v.parse().unwrap_or(RLIM_INFINITY),
    }
}

fn cred_of(who: &Identity, pid: u32) -> Cred {
    let caps = if who.uid == 0 {
        who.drop_caps.iter().fold(CapSet(sandbox::effective_caps()), |set, &c| CapSet(set.0 & !(1u64 << c)))
    } else {
        CapSet::EMPTY
    };
    Cred {
        pid: Pid(pid),
        euid: Uid(who.uid),
        egid: Gid(who.gid),
        groups: who.groups.iter().map(|&g| Gid(g)).collect(),
        caps,
        memlock_limit: memlock_limit(),
        posix: uipc_core::PosixIds::from_effective(Uid(who.uid), Gid(who.gid)),
    }
}

fn reply(r: Result<i64, Errno>) -> Reply {
    match r {
        Ok(v) => Reply::ok(v),
        Err(e) => Reply::err(e.raw()),
    }
}

impl CoreBackend {
    /// A fresh namespace.
    pub fn new() -> CoreBackend {
        CoreBackend {
            ns: IpcNamespace::new(HeapMemory),
            procs: BTreeMap::new(),
            next_pid: 1000,
            next_addr: FIRST_ADDR,
            asleep: BTreeMap::new(),
            finished: BTreeMap::new(),
            faulting: BTreeSet::new(),
            mq_receivers: BTreeSet::new(),
        }
    }

    fn alloc_addr(&mut self, len: u64) -> u64 {
        let a = self.next_addr;
        // Leave a guard page so that separate mappings are never adjacent.
        self.next_addr += len.div_ceil(PAGE_SIZE) * PAGE_SIZE + PAGE_SIZE;
        a
    }

    fn new_pid(&mut self) -> u32 {
        self.next_pid += 1;
        self.next_pid
    }

    /// `shmat` with the testkit as the mapper: the address and the mapping's length.
    fn shmat(&mut self, cred: &Cred, id: i32, addr: u64, flags: i32) -> Result<(i64, u64), Errno> {
        let t = now();
        let pending = self.ns.shmat_prepare(cred, id, addr, flags)?;
        let at = match pending.addr {
            Some(a) if a < MMAP_MIN_ADDR && !cred.caps.has(Cap::SYS_RAWIO) => {
                // The mapper's mmap() refuses addresses below mmap_min_addr.
                self.ns.shmat_abort(t, pending);
                return Err(Errno::EPERM);
            }
            Some(a) if a.checked_add(pending.map_len()).is_none_or(|end| end > TASK_SIZE) => {
                // mmap(MAP_FIXED) beyond the user address space.
                self.ns.shmat_abort(t, pending);
                return Err(Errno::ENOMEM);
            }
            Some(a) => a,
            None => self.alloc_addr(pending.map_len()),
        };
        let len = pending.map_len();
        let a = self.ns.shmat_commit(cred, t, pending, at)?;
        Ok((i64::try_from(a).map_err(|_| Errno::EINVAL)?, len))
    }

    fn shmctl(&mut self, cred: &Cred, id: i32, cmd: i32, buf: &CtlBuf) -> Reply {
        let decoded = match ShmCmd::decode(id, cmd) {
            Ok(c) => c,
            Err(e) => return Reply::err(e.raw()),
        };
        let set = match (decoded, buf) {
            (ShmCmd::IpcSet, CtlBuf::Set { uid, gid, mode }) => Some(PermUpdate { uid: *uid, gid: *gid, mode: *mode }),
            (ShmCmd::IpcSet, CtlBuf::Out) => Some(PermUpdate { uid: 0, gid: 0, mode: 0 }),
            // COM-OWN-4: the IPC_SET buffer is copied in before the lookup.
            (ShmCmd::IpcSet, CtlBuf::Null | CtlBuf::Fault) => return Reply::err(Errno::EFAULT.raw()),
            _ => None,
        };
        let (ret, out) = match self.ns.shmctl(cred, now(), id, decoded, set) {
            Ok(r) => r,
            Err(e) => return Reply::err(e.raw()),
        };
        // COM-CTL-4: the copy-out fails after the command's effect.
        if decoded.writes_buffer() && !matches!(buf, CtlBuf::Out) {
            return Reply::err(Errno::EFAULT.raw());
        }
        let data = match out {
            ShmCtlOut::None => Data::None,
            ShmCtlOut::Ds(ds) => Data::ShmDs(ShmDsView::from_abi(&ds)),
            ShmCtlOut::Info(i) => Data::Shminfo(ShminfoView::from_abi(&i)),
            ShmCtlOut::ShmInfo(i) => Data::ShmInfo(ShmInfoView::from_abi(&i)),
        };
        Reply { ret: Ok(i64::from(ret)), data }
    }

    /// A load or store of `len` bytes at `addr` through the model's mappings.
    fn access(&mut self, cred: &Cred, addr: u64, len: u64, store: Option<&[u8]>) -> Reply {
        let Some((vma, region)) = self.ns.shm_mapping_at(cred.pid, addr) else {
            return Reply::err(Errno::EFAULT.raw());
        };
        let allowed = if store.is_some() { vma.prot.write } else { vma.prot.read };
        if !allowed || addr.saturating_add(len) > vma.end {
            return Reply::err(Errno::EFAULT.raw());
        }
        let off = vma.offset_of(addr);
        let mut pages = region.lock().unwrap_or_else(|e| e.into_inner());
        match store {
            Some(bytes) => match pages.write(off, bytes) {
                Some(()) => Reply::ok(0),
                None => Reply::err(Errno::EFAULT.raw()),
            },
            None => match pages.read(off, len) {
                Some(b) => Reply { ret: Ok(0), data: Data::Bytes(b) },
                None => Reply::err(Errno::EFAULT.raw()),
            },
        }
    }
}

impl CoreBackend {
    /// `mprotect` of memory the core knows (System V mappings only): the
    /// kernel's argument and range checks, then the model's splits.
    /// Unmodelled: a hole after the first mapping fails here before any
    /// change, where the kernel changes the mappings before the hole.
    fn mprotect(&mut self, cred: &Cred, addr: u64, len: u64, prot: i32) -> Result<(), Errno> {
        let page = uipc_abi::PAGE_SIZE;
        // The order of mm/mprotect.c:do_mprotect_pkey(): alignment
        // ("EINVAL addr is not a valid pointer, or not a multiple of the
        // system page size"), an empty range (success), a wrapping range
        // (ENOMEM), then arch_validate_prot() (EINVAL).
        if !addr.is_multiple_of(page) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len.div_ceil(page) * page).ok_or(Errno::ENOMEM)?;
        let prot = u32::try_from(prot).ok().and_then(uipc_core::mm::Prot::from_bits).ok_or(Errno::EINVAL)?;
        // "ENOMEM Addresses in the range [addr, addr+len-1] are invalid for
        // the address space of the process, or specify one or more pages
        // that are not mapped."
        let mut at = addr;
        while at < end {
            let (vma, _) = self.ns.shm_mapping_at(cred.pid, at).ok_or(Errno::ENOMEM)?;
            at = vma.end;
        }
        self.ns.mprotect(cred, now(), addr, len, prot)
    }

    /// Delivers the wakeups the last core call produced to the sleepers.
    fn deliver_wakeups(&mut self) {
        for w in self.ns.take_wakeups() {
            let pid = self.asleep.iter().find(|(_, (x, _))| *x == w.waiter).map(|(p, _)| *p);
            if let Some(pid) = pid {
                self.asleep.remove(&pid);
                let fault = self.faulting.remove(&pid);
                let mq = self.mq_receivers.remove(&pid);
                let r = match (w.result, w.message) {
                    (Ok(n), Some(m)) if mq => Reply {
                        ret: Ok(n),
                        data: Data::MqMsg { prio: u32::try_from(m.mtype).unwrap_or(u32::MAX), text: m.data },
                    },
                    // MSG-RCV-5: the copy-out fails after the hand-off.
                    (Ok(_), Some(_)) if fault => Reply::err(Errno::EFAULT.raw()),
                    (Ok(n), Some(m)) => Reply { ret: Ok(n), data: Data::Msg { mtype: m.mtype, text: m.data } },
                    (r, _) => reply(r),
                };
                self.finished.insert(pid, r);
            }
        }
    }

    /// `semop`/`semtimedop` with the testkit as the calling process.
    fn semop(&mut self, cred: &Cred, id: i32, sops: &[crate::op::SemBuf], timeout: Option<Timeout>) -> Started {
        let timeout = match timeout {
            // The timeout is copied in before anything else (SEM-OP-1).
            Some(Timeout::Fault) => return Started::Done(Reply::err(Errno::EFAULT.raw())),
            Some(Timeout::Val { sec, nsec }) => Some(sem::Timeout { sec, nsec }),
            None => None,
        };
        let sops: Vec<uipc_abi::Sembuf> = sops.iter().map(|s| s.to_abi()).collect();
        let r = self.ns.semtimedop(cred, now(), id, sops.len(), Some(&sops), timeout);
        self.deliver_wakeups();
        match r {
            Ok(Outcome::Done(v)) => Started::Done(Reply::ok(v)),
            Err(e) => Started::Done(Reply::err(e.raw())),
            Ok(Outcome::Blocked(w)) => {
                self.asleep.insert(cred.pid.0, (w, timeout.is_some()));
                Started::Blocked
            }
        }
    }

    /// A sleeper's wait ends without a completion (signal, timeout).
    fn interrupt(&mut self, pid: u32, why: Interrupt) {
        if let Some((w, _)) = self.asleep.remove(&pid) {
            self.faulting.remove(&pid);
            self.mq_receivers.remove(&pid);
            if let Some(r) = self.ns.interrupt(w, why) {
                self.finished.insert(pid, reply(r));
            }
        }
    }

    /// `msgsnd` with the testkit as the calling process.
    fn msgsnd(&mut self, cred: &Cred, id: i32, mtype: i64, text: &[u8], flags: i32, fault: bool) -> Started {
        let len = i64::try_from(text.len()).unwrap_or(i64::MAX);
        let text = if fault { MsgText::Unreadable } else { MsgText::Read(mtype, text) };
        let r = self.ns.msgsnd(cred, now(), id, text, len, flags);
        self.deliver_wakeups();
        match r {
            Ok(Outcome::Done(v)) => Started::Done(Reply::ok(v)),
            Err(e) => Started::Done(Reply::err(e.raw())),
            Ok(Outcome::Blocked(w)) => {
                self.asleep.insert(cred.pid.0, (w, false));
                Started::Blocked
            }
        }
    }

    /// `msgrcv` with the testkit as the calling process.
    fn msgrcv(&mut self, cred: &Cred, id: i32, size: u64, msgtyp: i64, flags: i32, fault: bool) -> Started {
        // The kernel takes msgsz as size_t and checks `(long) msgsz < 0`.
        let size = i64::from_ne_bytes(size.to_ne_bytes());
        let r = self.ns.msgrcv(cred, now(), id, size, msgtyp, flags, !fault);
        self.deliver_wakeups();
        match r {
            // MSG-RCV-5: the copy-out fails after the dequeue.
            Ok(Outcome::Done(_)) if fault => Started::Done(Reply::err(Errno::EFAULT.raw())),
            Ok(Outcome::Done(m)) => Started::Done(Reply {
                ret: Ok(i64::try_from(m.data.len()).unwrap_or(-1)),
                data: Data::Msg { mtype: m.mtype, text: m.data },
            }),
            Err(e) => Started::Done(Reply::err(e.raw())),
            Ok(Outcome::Blocked(w)) => {
                self.asleep.insert(cred.pid.0, (w, false));
                if fault {
                    self.faulting.insert(cred.pid.0);
                }
                Started::Blocked
            }
        }
    }

    fn msgctl(&mut self, cred: &Cred, id: i32, cmd: i32, buf: &MsgCtlBuf) -> Reply {
        let decoded = match MsgCmd::decode(id, cmd) {
            Ok(c) => c,
            Err(e) => return Reply::err(e.raw()),
        };
        let set = match buf {
            MsgCtlBuf::Set { uid, gid, mode, qbytes } => {
                Some(MsgSet { perm: PermUpdate { uid: *uid, gid: *gid, mode: *mode }, qbytes: *qbytes })
            }
            MsgCtlBuf::Out => Some(MsgSet { perm: PermUpdate { uid: 0, gid: 0, mode: 0 }, qbytes: 0 }),
            MsgCtlBuf::Null | MsgCtlBuf::Fault => None,
        };
        let r = self.ns.msgctl(cred, now(), id, decoded, set);
        self.deliver_wakeups();
        let (ret, out) = match r {
            Ok(r) => r,
            Err(e) => return Reply::err(e.raw()),
        };
        let data = match out {
            MsgCtlOut::None => return Reply::ok(ret),
            MsgCtlOut::Ds(ds) => Data::MsgDs(MsgDsView::from_abi(&ds)),
            MsgCtlOut::Info(i) => Data::Msginfo(i),
        };
        // COM-CTL-4: the copy-out fails after the command's effect.
        if !matches!(buf, MsgCtlBuf::Out) {
            return Reply::err(Errno::EFAULT.raw());
        }
        Reply { ret: Ok(ret), data }
    }

    /// The description's `O_NONBLOCK` (false for one the model does not know).
    fn mq_nonblock(&self, mqd: i64) -> bool {
        self.ns.mq_desc(MqDescId(u64::try_from(mqd).unwrap_or(u64::MAX))).is_some_and(|d| d.nonblock())
    }

    /// A call that would sleep: started ([`Backend::start`]), the process
    /// is asleep (`Ok(None)`); called, only a timed one, which a test gives a
    /// past deadline, ends (`ETIMEDOUT` at once, as the kernel's).
    fn mq_outcome<T>(
        &mut self,
        cred: &Cred,
        r: Result<Outcome<T>, Errno>,
        timed: bool,
        may_sleep: bool,
    ) -> Result<Option<Result<T, Errno>>, String> {
        match r {
            Ok(Outcome::Done(v)) => Ok(Some(Ok(v))),
            Err(e) => Ok(Some(Err(e))),
            Ok(Outcome::Blocked(w)) if may_sleep => {
                self.asleep.insert(cred.pid.0, (w, timed));
                Ok(None)
            }
            Ok(Outcome::Blocked(w)) if timed => match self.ns.mq_interrupt(w, Interrupt::Timeout) {
                Some(Err(e)) => Ok(Some(Err(e))),
                other => Err(format!("P{}: a timed-out mq call ended with {other:?}", cred.pid.0)),
            },
            Ok(Outcome::Blocked(_)) => Err(format!("process {} blocked in an mq call (use start/finish)", cred.pid.0)),
        }
    }

    /// The POSIX message-queue operations, with glibc's part (the `/` of
    /// the name, MQ-NAME-1; `attr` passed only with `O_CREAT`, MQ-OPEN-2).
    fn mq(&mut self, cred: &Cred, op: &Op) -> Result<Reply, String> {
        match self.mq_start(cred, op, false)? {
            Started::Done(r) => Ok(r),
            Started::Blocked => Err(format!("{op:?}: blocked")),
        }
    }

    /// [`CoreBackend::mq`], or (`may_sleep`) the start of a call that sleeps.
    fn mq_start(&mut self, cred: &Cred, op: &Op, may_sleep: bool) -> Result<Started, String> {
        let t = now();
        let desc = |mqd: i64| MqDescId(u64::try_from(mqd).unwrap_or(u64::MAX));
        let name_of = |name: &[u8]| name.strip_prefix(b"/").map(<[u8]>::to_vec).ok_or(Errno::EINVAL);
        Ok(Started::Done(match op {
            Op::MqOpen { name, oflag, mode, attr } => {
                let attr = if oflag & uipc_core::posix::mqueue::O_CREAT != 0 { *attr } else { None };
                let attr = attr.map(|(maxmsg, msgsize)| MqCreateAttr { maxmsg, msgsize });
                let r = name_of(name).and_then(|n| self.ns.mq_open(cred, t, &n, *oflag, *mode, attr));
                reply(r.map(|o| i64::try_from(o.desc.0).unwrap_or(-1)))
            }
            Op::MqSend { mqd, text, prio, deadline } => {
                let nb = self.mq_nonblock(*mqd);
                let dl = deadline.map(|(sec, nsec)| Deadline { sec, nsec });
                let r = self.ns.mq_timedsend(cred, t, desc(*mqd), nb, text.clone(), *prio, dl);
                let r = self.mq_outcome(cred, r, deadline.is_some(), may_sleep)?;
                self.deliver_wakeups();
                let Some(r) = r else { return Ok(Started::Blocked) };
                reply(r.map(|()| 0))
            }
            Op::MqReceive { mqd, len, deadline } => {
                let nb = self.mq_nonblock(*mqd);
                let dl = deadline.map(|(sec, nsec)| Deadline { sec, nsec });
                let r = self.ns.mq_timedreceive(cred, t, desc(*mqd), nb, *len, dl);
                let r = self.mq_outcome(cred, r, deadline.is_some(), may_sleep)?;
                self.deliver_wakeups();
                let Some(r) = r else {
                    self.mq_receivers.insert(cred.pid.0);
                    return Ok(Started::Blocked);
                };
                match r {
                    Ok(m) => Reply {
                        ret: Ok(i64::try_from(m.data.len()).unwrap_or(-1)),
                        data: Data::MqMsg { prio: m.prio, text: m.data },
                    },
                    Err(e) => Reply::err(e.raw()),
                }
            }
            Op::MqGetSetAttr { mqd, new_flags } => {
                let nb = self.mq_nonblock(*mqd);
                match self.ns.mq_getsetattr(cred, t, desc(*mqd), nb, *new_flags) {
                    Ok(a) => Reply {
                        ret: Ok(0),
                        data: Data::MqAttr { flags: a.flags, maxmsg: a.maxmsg, msgsize: a.msgsize, curmsgs: a.curmsgs },
                    },
                    Err(e) => Reply::err(e.raw()),
                }
            }
            Op::MqNotify { mqd, how } => {
                let how = how.map(|(notify, signo)| NotifyHow::decode(notify, signo, 0)).transpose();
                reply(how.and_then(|h| self.ns.mq_notify(cred, t, desc(*mqd), h)).map(|()| 0))
            }
            Op::MqUnlink { name } => {
                let r = name_of(name).and_then(|n| self.ns.mq_unlink(cred, &n));
                // glibc reports the kernel's EPERM as EACCES (MQ-UNL-1).
                reply(r.map(|()| 0).map_err(|e| if e == Errno::EPERM { Errno::EACCES } else { e }))
            }
            Op::MqClose { mqd } => reply(self.ns.mq_close(cred, desc(*mqd)).map(|()| 0)),
            Op::MqRead { mqd } => match self.ns.mq_read_status(cred, t, desc(*mqd)) {
                Ok(t) => Reply { ret: Ok(i64::try_from(t.len()).unwrap_or(-1)), data: Data::Bytes(t.into_bytes()) },
                Err(e) => Reply::err(e.raw()),
            },
            _ => return Err(format!("{op:?} is not an mq operation")),
        }))
    }

    fn semctl(&mut self, cred: &Cred, id: i32, semnum: i32, cmd: i32, arg: &SemArg) -> Reply {
        let decoded = match SemCmd::decode(id, cmd) {
            Ok(c) => c,
            Err(e) => return Reply::err(e.raw()),
        };
        let zeros;
        let core_arg = match (decoded, arg) {
            (SemCmd::SetVal, SemArg::Val(v)) => sem::SemArg::Val(*v),
            // The union's value is the argument's low 32 bits: the bad pointer's.
            (SemCmd::SetVal, SemArg::Fault) => sem::SemArg::Val(i32::try_from(FAULT_ADDR).unwrap_or(0)),
            (SemCmd::SetVal, _) => sem::SemArg::Val(0),
            (SemCmd::SetAll, SemArg::Array(_) | SemArg::Out) => {
                // The kernel reads nsems values: a short array reads as zeros past its end.
                let n = self.ns.semctl(cred, now(), id % 32768, 0, SemCmd::SemStatAny, sem::SemArg::None);
                let nsems = n.map_or(0, |(_, out)| match out {
                    SemCtlOut::Ds(ds) => usize::try_from(ds.sem_nsems).unwrap_or(0),
                    _ => 0,
                });
                let mut v = match arg {
                    SemArg::Array(v) => v.clone(),
                    _ => Vec::new(),
                };
                v.resize(nsems, 0);
                zeros = v;
                sem::SemArg::Array(Some(&zeros))
            }
            (SemCmd::SetAll, _) => sem::SemArg::Array(None),
            (SemCmd::IpcSet, SemArg::Set { uid, gid, mode }) => {
                sem::SemArg::Set(PermUpdate { uid: *uid, gid: *gid, mode: *mode })
            }
            (SemCmd::IpcSet, SemArg::Out) => sem::SemArg::Set(PermUpdate { uid: 0, gid: 0, mode: 0 }),
            // COM-OWN-4: the IPC_SET buffer is copied in before the lookup.
            (SemCmd::IpcSet, _) => return Reply::err(Errno::EFAULT.raw()),
            _ => sem::SemArg::None,
        };
        let r = self.ns.semctl(cred, now(), id, semnum, decoded, core_arg);
        self.deliver_wakeups();
        let (ret, out) = match r {
            Ok(r) => r,
            Err(e) => return Reply::err(e.raw()),
        };
        // COM-CTL-4: the copy-out fails after the command's effect.
        if decoded.writes_buffer() && !matches!(arg, SemArg::Out) {
            return Reply::err(Errno::EFAULT.raw());
        }
        let data = match out {
            SemCtlOut::None => Data::None,
            SemCtlOut::Ds(ds) => Data::SemDs(SemDsView::from_abi(&ds)),
            SemCtlOut::Info(i) => Data::Seminfo(i),
            SemCtlOut::Values(v) => Data::Values(v),
        };
        Reply { ret: Ok(ret), data }
    }
}

impl Backend for CoreBackend {
    fn name(&self) -> &'static str {
        "core"
    }

    fn spawn(&mut self, who: &Identity) -> Result<u32, String> {
        let pid = self.new_pid();
        self.procs.insert(pid, cred_of(who, pid));
        Ok(pid)
    }

    fn call(&mut self, pid: u32, op: &Op) -> Result<Reply, String> {
        let cred = self.procs.get(&pid).cloned().ok_or_else(|| format!("no process {pid}"))?;
        let t = now();
        Ok(match op {
            Op::ShmGet { key, size, flags } => {
                reply(self.ns.shmget(&cred, t, *key, *size, *flags).map(|id| i64::from(id.0)))
            }
            Op::ShmAt { id, addr, flags } => match self.shmat(&cred, *id, *addr, *flags) {
                Ok((a, len)) => Reply { ret: Ok(a), data: Data::Attached { len } },
                Err(e) => Reply::err(e.raw()),
            },
            Op::ShmDt { addr } => reply(self.ns.shmdt(&cred, t, *addr).map(|_| 0)),
            Op::ShmCtl { id, cmd, buf } => self.shmctl(&cred, *id, *cmd, buf),
            Op::Munmap { addr, len } => reply(self.ns.munmap(&cred, t, *addr, *len).map(|()| 0)),
            Op::Mprotect { addr, len, prot } => reply(self.mprotect(&cred, *addr, *len, *prot).map(|()| 0)),
            Op::Write { addr, bytes } => {
                self.access(&cred, *addr, u64::try_from(bytes.len()).unwrap_or(u64::MAX), Some(bytes))
            }
            Op::Read { addr, len } => self.access(&cred, *addr, *len, None),
            Op::FindFree { len } => Reply::ok(i64::try_from(self.alloc_addr(*len)).unwrap_or(0)),
            Op::Fork => {
                let child = self.new_pid();
                self.ns.fork(&cred, t, Pid(child));
                self.procs.insert(child, Cred { pid: Pid(child), ..cred });
                Reply::ok(i64::from(child))
            }
            Op::Exec => {
                self.ns.exec(cred.pid, t);
                Reply::ok(0)
            }
            Op::Exit | Op::Kill => {
                self.asleep.remove(&pid);
                self.ns.exit(cred.pid, t);
                self.deliver_wakeups();
                self.procs.remove(&pid);
                Reply::ok(0)
            }
            Op::SemGet { key, nsems, flags } => {
                reply(self.ns.semget(&cred, t, *key, *nsems, *flags).map(|id| i64::from(id.0)))
            }
            Op::SemOp { id, sops, timeout } => match self.semop(&cred, *id, sops, *timeout) {
                Started::Done(r) => r,
                // semtimedop sleeps until its timeout at most.
                Started::Blocked if matches!(timeout, Some(Timeout::Val { .. })) => {
                    self.interrupt(pid, Interrupt::Timeout);
                    self.finished.remove(&pid).unwrap_or_else(|| Reply::err(Errno::EAGAIN.raw()))
                }
                Started::Blocked => return Err(format!("{op:?}: process {pid} blocked (use start/finish)")),
            },
            Op::SemCtl { id, semnum, cmd, arg } => self.semctl(&cred, *id, *semnum, *cmd, arg),
            Op::MsgGet { key, flags } => reply(self.ns.msgget(&cred, t, *key, *flags).map(|id| i64::from(id.0))),
            Op::MsgSnd { id, mtype, text, flags, fault } => {
                match self.msgsnd(&cred, *id, *mtype, text, *flags, *fault) {
                    Started::Done(r) => r,
                    Started::Blocked => return Err(format!("{op:?}: process {pid} blocked (use start/finish)")),
                }
            }
            Op::MsgRcv { id, size, msgtyp, flags, fault } => {
                match self.msgrcv(&cred, *id, *size, *msgtyp, *flags, *fault) {
                    Started::Done(r) => r,
                    Started::Blocked => return Err(format!("{op:?}: process {pid} blocked (use start/finish)")),
                }
            }
            Op::MsgCtl { id, cmd, buf } => self.msgctl(&cred, *id, *cmd, buf),
            mq_op!() => self.mq(&cred, op)?,
            Op::Signal => {
                self.interrupt(pid, Interrupt::Signal);
                Reply::ok(0)
            }
        })
    }

    fn start(&mut self, pid: u32, op: &Op) -> Result<Started, String> {
        let cred = self.procs.get(&pid).cloned().ok_or_else(|| format!("no process {pid}"))?;
        match op {
            Op::SemOp { id, sops, timeout } => Ok(self.semop(&cred, *id, sops, *timeout)),
            Op::MsgSnd { id, mtype, text, flags, fault } => Ok(self.msgsnd(&cred, *id, *mtype, text, *flags, *fault)),
            Op::MsgRcv { id, size, msgtyp, flags, fault } => {
                Ok(self.msgrcv(&cred, *id, *size, *msgtyp, *flags, *fault))
            }
            Op::MqSend { .. } | Op::MqReceive { .. } => self.mq_start(&cred, op, true),
            other => self.call(pid, other).map(Started::Done),
        }
    }

    fn finish(&mut self, pid: u32) -> Result<Reply, String> {
        if let Some(r) = self.finished.remove(&pid) {
            return Ok(r);
        }
        match self.asleep.get(&pid) {
            // Waiting for the reply of a timed sleeper means its timeout expires.
            Some((_, true)) => {
                self.interrupt(pid, Interrupt::Timeout);
                self.finished.remove(&pid).ok_or_else(|| format!("process {pid}: no reply"))
            }
            Some((_, false)) => Err(format!("process {pid} is still asleep: nothing woke it")),
            None => Err(format!("process {pid} has no call in flight")),
        }
    }

    fn sysctl_set(&mut self, name: &str, value: &str) -> Result<Result<(), i32>, String> {
        let root = cred_of(&Identity::root(), 1);
        Ok(self.ns.sysctl_write(&root, name, value).map_err(Errno::raw))
    }

    fn sysctl_get(&mut self, name: &str) -> Result<Result<String, i32>, String> {
        Ok(self.ns.sysctl_read(name).map_err(Errno::raw))
    }
}
