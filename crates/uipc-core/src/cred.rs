//! Who is calling: the credentials every operation takes explicitly.
//!
//! The daemon fills these from the kernel (`SO_PEERCRED`, `SO_PEERGROUPS`,
//! the peer's capability set), never from what a client says.

/// A process id (TGID), as the kernel reports it in `cpid`/`lpid`; 0 = none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Pid(pub u32);

/// A user id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Uid(pub u32);

/// A group id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Gid(pub u32);

/// A capability, by its number in `linux/capability.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap(u32);

impl Cap {
    /// `CAP_DAC_OVERRIDE`: bypass file read, write and execute checks.
    pub const DAC_OVERRIDE: Cap = Cap(1);
    /// `CAP_DAC_READ_SEARCH`: bypass file read checks.
    pub const DAC_READ_SEARCH: Cap = Cap(2);
    /// `CAP_FOWNER`: act as a file's owner (unlink in a sticky directory).
    pub const FOWNER: Cap = Cap(3);
    /// `CAP_SYS_RAWIO`: map below `vm.mmap_min_addr` (the mapper's concern).
    pub const SYS_RAWIO: Cap = Cap(17);
    /// `CAP_IPC_LOCK`: lock shared memory, hugetlb segments.
    pub const IPC_LOCK: Cap = Cap(14);
    /// `CAP_IPC_OWNER`: bypass IPC permission checks (ipcperms).
    pub const IPC_OWNER: Cap = Cap(15);
    /// `CAP_SYS_ADMIN`: act as owner for IPC_SET/IPC_RMID.
    pub const SYS_ADMIN: Cap = Cap(21);
    /// `CAP_SYS_RESOURCE`: exceed msgmnb, mqueue limits.
    pub const SYS_RESOURCE: Cap = Cap(24);
    /// `CAP_CHECKPOINT_RESTORE`: write the `*_next_id` sysctls.
    pub const CHECKPOINT_RESTORE: Cap = Cap(40);

    /// The capability's number.
    pub const fn number(self) -> u32 {
        self.0
    }
}

/// A set of capabilities: the effective set, as the bit mask of `capget(2)`
/// (`CapEff` in `/proc/PID/status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    /// No capabilities.
    pub const EMPTY: CapSet = CapSet(0);

    /// Whether `cap` is in the set.
    pub fn has(self, cap: Cap) -> bool {
        cap.0 < 64 && self.0 & (1u64 << cap.0) != 0
    }

    /// The set without `cap`.
    pub fn without(self, cap: Cap) -> CapSet {
        if cap.0 < 64 {
            CapSet(self.0 & !(1u64 << cap.0))
        } else {
            self
        }
    }
}

/// `RLIMIT_MEMLOCK` value meaning "no limit".
pub const RLIM_INFINITY: u64 = u64::MAX;

/// The credentials of the calling process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cred {
    /// The caller's process (TGID).
    pub pid: Pid,
    /// Effective user id (System V checks use the effective ids).
    pub euid: Uid,
    /// Effective group id.
    pub egid: Gid,
    /// Supplementary groups.
    pub groups: Vec<Gid>,
    /// Effective capabilities, in the user namespace owning the IPC namespace.
    pub caps: CapSet,
    /// `RLIMIT_MEMLOCK` soft limit in bytes ([`RLIM_INFINITY`] for none): `SHM_LOCK` needs it.
    pub memlock_limit: u64,
    /// The POSIX (file-like) identity: real uid, filesystem ids, umask and
    /// `RLIMIT_MSGQUEUE`. [`PosixIds::from_effective`] for a caller whose
    /// filesystem ids follow its effective ones (the usual case).
    pub posix: PosixIds,
}

/// What POSIX IPC objects (files of the mqueue filesystem) need of a
/// caller beyond System V's effective ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PosixIds {
    /// Real user id: `RLIMIT_MSGQUEUE` is charged to it (`current_ucounts()`),
    /// and a notification signal reports it as `si_uid`.
    pub ruid: Uid,
    /// Filesystem user id: owner of new queues, owner class in file checks.
    pub fsuid: Uid,
    /// Filesystem group id.
    pub fsgid: Gid,
    /// The process's umask (`current_umask()`), applied to a new queue's mode.
    pub umask: u32,
    /// `RLIMIT_MSGQUEUE` soft limit in bytes ([`RLIM_INFINITY`] for none).
    pub msgqueue_limit: u64,
}

impl PosixIds {
    /// `RLIMIT_MSGQUEUE`'s default: 819200 bytes (`MQ_BYTES_MAX`).
    pub const DEFAULT_MSGQUEUE_LIMIT: u64 = 819_200;

    /// The ids of a caller whose real and filesystem ids are its effective
    /// ones, with umask 022 and the default `RLIMIT_MSGQUEUE`.
    pub fn from_effective(euid: Uid, egid: Gid) -> PosixIds {
        PosixIds { ruid: euid, fsuid: euid, fsgid: egid, umask: 0o022, msgqueue_limit: Self::DEFAULT_MSGQUEUE_LIMIT }
    }
}

impl Cred {
    /// Whether the caller is in group `gid`: its egid or a supplementary group.
    ///
    /// Mirrors `kernel/groups.c:in_group_p()`.
    pub fn in_group(&self, gid: Gid) -> bool {
        self.egid == gid || self.groups.contains(&gid)
    }

    /// Whether the caller is in group `gid` as file checks see it: its
    /// fsgid or a supplementary group (`in_group_p()` reads `cred->fsgid`).
    pub fn in_fs_group(&self, gid: Gid) -> bool {
        self.posix.fsgid == gid || self.groups.contains(&gid)
    }

    /// Whether the caller has `cap` (`ns_capable()` on the owning user namespace).
    pub fn capable(&self, cap: Cap) -> bool {
        self.caps.has(cap)
    }
}
