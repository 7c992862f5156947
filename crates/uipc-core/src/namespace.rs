//! [`IpcNamespace`]: one world of IPC objects and its limits.

use uipc_abi::Errno;

use crate::cred::{Cap, Cred, Pid};
use crate::limits::{self, Limits, Parsed};
use crate::memory::Memory;
use crate::mm::Mm;
use crate::perm::NamespaceOwner;
use crate::posix::mqueue::MqState;
use crate::posix::shm::PshmState;
use crate::sysv::msg::MsgState;
use crate::sysv::sem::SemState;
use crate::sysv::shm::ShmState;
use crate::time::Time;
use crate::wait::{Interrupt, WaiterId};

/// Object counts of a namespace ([`IpcNamespace::object_counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectCounts {
    /// Shared memory segments.
    pub shm: u32,
    /// Bytes in all segments (sum of `shm_segsz`).
    pub shm_bytes: u64,
    /// Semaphore sets.
    pub sem: u32,
    /// Message queues.
    pub msg: u32,
}

/// An IPC namespace (`struct ipc_namespace`): the registries of every
/// mechanism, their limits, and the System V mappings of the processes that
/// use it.
///
/// It owns no thread, socket or clock: every operation takes the caller's
/// [`Cred`] and the time, and returns at once.
pub struct IpcNamespace<M: Memory> {
    /// Who owns the namespace and who may enter it.
    pub owner: NamespaceOwner,
    pub(crate) limits: Limits,
    pub(crate) memory: M,
    pub(crate) shm: ShmState<M::Region>,
    pub(crate) sem: SemState,
    /// The POSIX message queues (the namespace's mqueue filesystem).
    pub(crate) mq: MqState,
    /// The POSIX shared memory objects (the namespace's `/dev/shm`).
    pub(crate) pshm: PshmState<M::Region>,
    /// The System V message queues.
    pub(crate) msg: MsgState<M::Region>,
    /// Each process's System V shm mappings.
    pub(crate) mms: crate::tracked::Tracked<Pid, Mm>,
    /// The next [`AttachId`](crate::mm::AttachId).
    pub(crate) next_attach: u64,
}

impl<M: Memory> IpcNamespace<M> {
    /// A fresh namespace with the default limits, taking memory from
    /// `memory`, owned by root and open to everyone (mode 0777).
    pub fn new(memory: M) -> IpcNamespace<M> {
        IpcNamespace {
            owner: NamespaceOwner { uid: crate::cred::Uid(0), gid: crate::cred::Gid(0), mode: 0o777 },
            limits: Limits::default(),
            memory,
            shm: ShmState::default(),
            sem: SemState::default(),
            mq: MqState::default(),
            pshm: PshmState::default(),
            msg: MsgState::default(),
            mms: crate::tracked::Tracked::default(),
            next_attach: 0,
        }
    }

    /// A new [`WaiterId`], unique among every mechanism's sleepers here.
    pub(crate) fn new_waiter(&mut self) -> WaiterId {
        let w = WaiterId(self.sem.next_waiter);
        self.sem.next_waiter += 1;
        w
    }

    /// Ends a sleeper that nobody completed, whichever mechanism it sleeps
    /// in (see [`sem_interrupt`](Self::sem_interrupt),
    /// [`mq_interrupt`](Self::mq_interrupt), [`msg_interrupt`](Self::msg_interrupt));
    /// `None` if it had already
    /// finished.
    pub fn interrupt(&mut self, waiter: WaiterId, why: Interrupt) -> Option<Result<i64, Errno>> {
        if self.mq_is_sleeper(waiter) {
            return self.mq_interrupt(waiter, why);
        }
        self.sem_interrupt(waiter, why).or_else(|| self.msg_interrupt(waiter, why))
    }

    /// The current limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The memory provider.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// The System V shm mappings of process `pid`.
    pub fn mm(&self, pid: Pid) -> Option<&Mm> {
        self.mms.get(&pid)
    }

    /// Writes the sysctl `name` (dotted: `kernel.shmmni`), as writing
    /// `/proc/sys/kernel/shmmni` in this namespace would.
    ///
    /// # Errors
    /// - `ENOENT`: no such IPC sysctl.
    /// - `EACCES`: the caller is not the namespace's root (files are 0644
    ///   root; see [`ns_may_write_sysctl`](crate::perm::ns_may_write_sysctl)), or for `*_next_id` lacks `CAP_CHECKPOINT_RESTORE` (0444 otherwise).
    /// - `EINVAL`: malformed or out of range; `ERANGE`: SEMMNI out of range.
    ///
    /// # References
    /// `ipc/ipc_sysctl.c`, `ipc/mq_sysctl.c`; SPEC section 7, COM-ID-6.
    pub fn sysctl_write(&mut self, cred: &Cred, name: &str, value: &str) -> Result<(), Errno> {
        // As open(2) of /proc/sys/... decides before any write is parsed:
        // an unknown file is ENOENT, then a caller who may not write is EACCES.
        if !limits::sysctl_names().any(|n| n == name) {
            return Err(Errno::ENOENT);
        }
        if limits::is_next_id(name) {
            if !cred.capable(Cap::CHECKPOINT_RESTORE) {
                return Err(Errno::EACCES);
            }
        } else {
            crate::perm::ns_may_write_sysctl(cred, &self.owner)?;
        }
        // proc_sys_call_handler() → the handler with *lenp == 0: a write of
        // no bytes succeeds and changes nothing (sysctl(8) writes "VALUE\n",
        // so an empty value from it is "\n": EINVAL from the parser).
        if value.is_empty() {
            return Ok(());
        }
        let parsed = limits::parse_write(name, value)?;
        match (name, parsed) {
            ("kernel.shm_next_id", Parsed::One(v)) => self.shm.ids.next_id = i32::try_from(v).unwrap_or(-1),
            ("kernel.sem_next_id", Parsed::One(v)) => self.sem.ids.next_id = i32::try_from(v).unwrap_or(-1),
            ("kernel.msg_next_id", Parsed::One(v)) => self.msg.ids.next_id = i32::try_from(v).unwrap_or(-1),
            (_, parsed) => {
                self.limits.apply(name, parsed)?;
                if name == "kernel.shm_rmid_forced" {
                    // Whose exit can destroy a segment changed.
                    self.shm.touch_all();
                    if self.limits.shm_rmid_forced {
                        self.shm_destroy_orphaned();
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the sysctl `name`, as `/proc/sys/...` shows it (no newline).
    ///
    /// # Errors
    /// `ENOENT`: no such IPC sysctl.
    pub fn sysctl_read(&self, name: &str) -> Result<String, Errno> {
        match name {
            "kernel.shm_next_id" => Ok(self.shm.ids.next_id.to_string()),
            "kernel.sem_next_id" => Ok(self.sem.ids.next_id.to_string()),
            "kernel.msg_next_id" => Ok(self.msg.ids.next_id.to_string()),
            _ => self.limits.render(name),
        }
    }

    /// How many objects of each kind live in the namespace.
    pub fn object_counts(&self) -> ObjectCounts {
        ObjectCounts {
            shm: self.shm.ids.in_use(),
            shm_bytes: self.shm.ids.iter().map(|(_, s)| s.segsz()).sum(),
            sem: self.sem.ids.in_use(),
            msg: self.msg_count(),
        }
    }

    /// Every IPC sysctl of the namespace as `(name, value)`, in
    /// [`limits::sysctl_names`] order.
    pub fn sysctls(&self) -> Vec<(String, String)> {
        limits::sysctl_names().filter_map(|n| Some((n.to_owned(), self.sysctl_read(n).ok()?))).collect()
    }

    /// Tears the namespace down: every semaphore set is removed (each
    /// sleeper gets `EIDRM`, undo records die), every segment destroyed
    /// (its memory freed with the last reference the host holds), every
    /// process's mapping record dropped. Processes keep the memory they
    /// mapped, as after Linux's teardown a mapping stays valid until it is
    /// unmapped. The host delivers the wakeups ([`take_wakeups`](Self::take_wakeups)).
    ///
    /// # References
    /// Mirrors `ipc/namespace.c:free_ipcs()` as called from `free_ipc_ns()`
    /// through `sem_exit_ns()`, `msg_exit_ns()`, `shm_exit_ns()` (Linux
    /// 6.12); SPEC NS-9.
    pub fn free_ipcs(&mut self) {
        for id in self.sem.ids.ids() {
            self.sem.freeary(id);
        }
        self.msg_free_all();
        for id in self.shm.ids.ids() {
            self.shm_destroy(id);
        }
        self.mq_free_names();
        self.pshm_free_names();
        self.mms.clear();
    }

    /// `fork()`: the child inherits every System V mapping of the parent;
    /// each inherited mapping adds one to `nattch` and sets `atime` and
    /// `lpid` = the parent (SPEC SHM-LIFE-2).
    pub fn fork(&mut self, parent: &Cred, now: Time, child: Pid) {
        let mm = self.mms.get(&parent.pid).cloned().unwrap_or_default();
        for vma in mm.vmas() {
            self.shm_open(vma.id, parent.pid, now);
        }
        self.mms.insert(child, mm);
        self.mq_fork(parent.pid, child);
    }

    /// `execve()`: every System V mapping is detached as by `shmdt`
    /// (SPEC SHM-LIFE-3).
    pub fn exec(&mut self, pid: Pid, now: Time) {
        self.shm_exit_mm(pid, now);
        // Message queue descriptors are always close-on-exec (MQ-OPEN-7).
        self.mq_exit(pid);
    }

    /// Exit of the process's last thread: every mapping is detached, its
    /// sleeping semops vanish, its semaphore undo records are applied, then
    /// segments it created are orphaned (and destroyed if `shm_rmid_forced`
    /// and unattached), as `do_exit()` orders `exit_mm()`, `exit_sem()`,
    /// `exit_shm()` (SPEC SHM-LIFE-3, SEM-UNDO-3, 2.6). The host delivers
    /// the wakeups it caused ([`take_wakeups`](Self::take_wakeups)).
    pub fn exit(&mut self, pid: Pid, now: Time) {
        self.shm_exit_mm(pid, now);
        self.mms.remove(&pid);
        self.sem_exit(pid, now);
        self.msg_exit(pid);
        self.exit_shm(pid);
        self.mq_exit(pid);
    }

    /// `unshare(2)` by `pid` of `CLONE_SYSVSEM` (`newipc` false) or of
    /// `CLONE_NEWIPC` (`newipc` true), as `ksys_unshare()` treats this, the
    /// namespace being left: the process's semaphore undo records are
    /// applied and dropped (`exit_sem()`), and on leaving the namespace the
    /// segments it created are orphaned — destroyed now if
    /// `shm_rmid_forced` and unattached (`exit_shm()`). Its mappings stay,
    /// and go on counting in `nattch` until unmapped, exec or exit. The
    /// host delivers the wakeups the undo caused.
    pub fn unshare(&mut self, pid: Pid, now: Time, newipc: bool) {
        self.sem_undo_release(pid, now);
        if newipc {
            self.exit_shm(pid);
        }
    }
}
