//! `struct kern_ipc_perm` and the three permission functions of
//! `ipc/util.c`: [`ipcperms`], [`ipcctl_obtain_check`] (the ownership half;
//! the lookup half is [`IpcIds::obtain_check`](crate::ids::IpcIds::obtain_check)) and
//! [`ipc_update_perm`]; and uipc's own rule for entering a namespace,
//! [`ns_may_enter`]. Nobody else compares uids (STYLE rule 2).
//!
//! # References
//! - <https://elixir.bootlin.com/linux/v6.12/source/ipc/util.c>

use uipc_abi::{Errno, Ipc64Perm};

use crate::cred::{Cap, Cred, Gid, Uid};
use crate::ids::IpcKey;

/// `S_IRWXUGO`: the permission bits of a mode.
pub const S_IRWXUGO: u32 = 0o777;

/// Ownership and mode of one System V object (`struct kern_ipc_perm`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IpcPerm {
    /// The key (`IPC_PRIVATE` once an attached segment is removed).
    pub key: IpcKey,
    /// Owner.
    pub uid: Uid,
    /// Owner's group.
    pub gid: Gid,
    /// Creator (immutable).
    pub cuid: Uid,
    /// Creator's group (immutable).
    pub cgid: Gid,
    /// Mode: the low 9 bits plus mechanism flags (SHM_DEST, SHM_LOCKED).
    pub mode: u32,
    /// Sequence number, set by the registry at insertion.
    pub seq: u16,
}

impl IpcPerm {
    /// The permissions of a new object: owner and creator are the caller,
    /// mode is `flags & 0777` — no umask (SPEC 1.2 step 3).
    pub fn new(cred: &Cred, key: IpcKey, flags: i32) -> IpcPerm {
        IpcPerm {
            key,
            uid: cred.euid,
            gid: cred.egid,
            cuid: cred.euid,
            cgid: cred.egid,
            mode: u32::try_from(flags & 0o777).unwrap_or(0),
            seq: 0,
        }
    }

    /// The user-visible `ipc64_perm` (padding zero, ZERO-5).
    pub fn to_abi(&self) -> Ipc64Perm {
        Ipc64Perm {
            key: self.key.0,
            uid: self.uid.0,
            gid: self.gid.0,
            cuid: self.cuid.0,
            cgid: self.cgid.0,
            mode: self.mode,
            seq: self.seq,
            ..Ipc64Perm::default()
        }
    }

    /// Whether `cred` is an owner: its euid is the owner or the creator.
    fn owned_by(&self, cred: &Cred) -> bool {
        cred.euid == self.cuid || cred.euid == self.uid
    }
}

/// The access a call needs, as a mode (`S_IRUGO`, `S_IWUGO`…) or the low
/// bits of a `*get` flag: only the rwx triads matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access(pub u32);

impl Access {
    /// Read (`S_IRUGO`).
    pub const READ: Access = Access(0o444);
    /// Read and write (`S_IRUGO | S_IWUGO`).
    pub const READ_WRITE: Access = Access(0o666);
    /// Nothing: always granted.
    pub const NONE: Access = Access(0);

    /// The access a `*get` flag requests: its low 9 bits (COM-PERM-1).
    pub fn from_get_flags(flags: i32) -> Access {
        Access(u32::try_from(flags & 0o777).unwrap_or(0))
    }

    /// This access plus execute (`S_IXUGO`).
    pub fn with_exec(self) -> Access {
        Access(self.0 | 0o111)
    }
}

/// `ipcperms(ns, ipcp, flag)` — checks `requested` access against the
/// object's mode for the caller.
///
/// The requested triads are folded into one rwx mask; the class is owner
/// (euid is uid or cuid), else group (caller in gid or cgid), else other.
///
/// # Errors
/// `EACCES` when a requested bit is missing in the caller's class and the
/// caller lacks `CAP_IPC_OWNER` (SPEC COM-PERM-1..3).
///
/// # References
/// Mirrors `ipc/util.c:ipcperms()`.
pub fn ipcperms(cred: &Cred, perm: &IpcPerm, requested: Access) -> Result<(), Errno> {
    let requested = ((requested.0 >> 6) | (requested.0 >> 3) | requested.0) & 0o7;
    let granted = if perm.owned_by(cred) {
        perm.mode >> 6
    } else if cred.in_group(perm.cgid) || cred.in_group(perm.gid) {
        perm.mode >> 3
    } else {
        perm.mode
    };
    // COM-PERM-3: denied iff a requested bit is missing and no CAP_IPC_OWNER.
    if requested & !granted & 0o7 != 0 && !cred.capable(Cap::IPC_OWNER) {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// The ownership check of `ipcctl_obtain_check()` — may the caller
/// `IPC_SET` or `IPC_RMID` this object?
///
/// # Errors
/// `EPERM` unless the caller's euid is the owner or the creator, or it has
/// `CAP_SYS_ADMIN` (COM-OWN-1; `CAP_IPC_OWNER` does not help).
///
/// # References
/// Mirrors `ipc/util.c:ipcctl_obtain_check()`.
pub fn ipcctl_obtain_check(cred: &Cred, perm: &IpcPerm) -> Result<(), Errno> {
    if perm.owned_by(cred) || cred.capable(Cap::SYS_ADMIN) {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// What `IPC_SET` asks to change: the `uid`, `gid` and `mode` of the
/// caller's `ipc64_perm` buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermUpdate {
    /// New owner.
    pub uid: u32,
    /// New group.
    pub gid: u32,
    /// New mode (only the low 9 bits are taken).
    pub mode: u32,
}

/// `ipc_update_perm(in, out)` — applies an `IPC_SET`: the owner, the group
/// and the low 9 mode bits; every other mode bit is kept (COM-OWN-2).
///
/// # Errors
/// `EINVAL` when uid or gid is not a valid id (`(uid_t)-1`), nothing changed.
///
/// # References
/// Mirrors `ipc/util.c:ipc_update_perm()`.
pub fn ipc_update_perm(update: &PermUpdate, perm: &mut IpcPerm) -> Result<(), Errno> {
    // make_kuid() of the invalid id gives INVALID_UID → EINVAL.
    if update.uid == u32::MAX || update.gid == u32::MAX {
        return Err(Errno::EINVAL);
    }
    perm.uid = Uid(update.uid);
    perm.gid = Gid(update.gid);
    perm.mode = (perm.mode & !S_IRWXUGO) | (update.mode & S_IRWXUGO);
    Ok(())
}

/// Ownership and mode of a POSIX IPC object, as a file's inode has them
/// (`i_uid`, `i_gid`, `i_mode`): a message queue in the mqueue filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FilePerm {
    /// Owner (the creator's fsuid).
    pub uid: Uid,
    /// Group (the creator's fsgid).
    pub gid: Gid,
    /// Permission bits, setuid/setgid/sticky included (`07777`).
    pub mode: u32,
}

/// `MAY_READ`/`MAY_WRITE` asked of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MayAccess {
    /// `MAY_READ`.
    pub read: bool,
    /// `MAY_WRITE`.
    pub write: bool,
}

/// `inode_permission(inode, mask)` for a regular file — may `cred` open
/// it for `want`?
///
/// The class is owner if the caller's fsuid is the file's uid, else group
/// if its fsgid or a supplementary group is the file's gid, else other;
/// every wanted bit must be in the class. `CAP_DAC_OVERRIDE` grants read
/// and write, `CAP_DAC_READ_SEARCH` read.
///
/// # Errors
/// `EACCES`.
///
/// # References
/// Mirrors `fs/namei.c:generic_permission()`, `acl_permission_check()`,
/// `capable_wrt_inode_uidgid()` (Linux 6.12); SPEC MQ-OPEN-5.
pub fn file_permission(cred: &Cred, file: &FilePerm, want: MayAccess) -> Result<(), Errno> {
    let class = if cred.posix.fsuid == file.uid {
        file.mode >> 6
    } else if cred.in_fs_group(file.gid) {
        file.mode >> 3
    } else {
        file.mode
    };
    let read_ok = class & 0o4 != 0;
    let write_ok = class & 0o2 != 0;
    if (!want.read || read_ok) && (!want.write || write_ok) {
        return Ok(());
    }
    // generic_permission(): CAP_DAC_OVERRIDE for read/write of a non-directory…
    if cred.capable(Cap::DAC_OVERRIDE) {
        return Ok(());
    }
    // …and CAP_DAC_READ_SEARCH for a read.
    if !want.write && cred.capable(Cap::DAC_READ_SEARCH) {
        return Ok(());
    }
    Err(Errno::EACCES)
}

/// `check_sticky(dir, inode)` — may `cred` unlink `file` from a sticky
/// directory owned by `dir_uid` (the mqueue root is 1777)?
///
/// # Errors
/// `EPERM` unless the caller's fsuid owns the file or the directory, or it
/// has `CAP_FOWNER` (`vfs_unlink()` → `may_delete()`; glibc turns it into
/// `EACCES`, SPEC MQ-UNL-1/2).
///
/// # References
/// Mirrors `fs/namei.c:__check_sticky()` (Linux 6.12).
pub fn check_sticky(cred: &Cred, dir_uid: Uid, file: &FilePerm) -> Result<(), Errno> {
    if cred.posix.fsuid == file.uid || cred.posix.fsuid == dir_uid || cred.capable(Cap::FOWNER) {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// Who owns an IPC namespace and who may enter it: its owner, group and a
/// mode read like a directory's (`x` = may enter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NamespaceOwner {
    /// Owner (the creator).
    pub uid: Uid,
    /// Group.
    pub gid: Gid,
    /// Permission bits (low 9).
    pub mode: u32,
}

/// May `cred` enter (join) a namespace owned as `owner`?
///
/// Linux needs `CAP_SYS_ADMIN` for `setns(CLONE_NEWIPC)` at all; uipc lets
/// anyone in whom the namespace's mode admits: the owner class if the euid
/// is the owner, else the group class if the caller is in the group, else
/// the other class must have `x`. `CAP_SYS_ADMIN` (what `setns` needs)
/// always may.
///
/// # Errors
/// `EACCES` when the class lacks `x` and the caller lacks `CAP_SYS_ADMIN`.
pub fn ns_may_enter(cred: &Cred, owner: &NamespaceOwner) -> Result<(), Errno> {
    let class = if cred.euid == owner.uid {
        owner.mode >> 6
    } else if cred.in_group(owner.gid) {
        owner.mode >> 3
    } else {
        owner.mode
    };
    if class & 0o1 != 0 || cred.capable(Cap::SYS_ADMIN) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// Is `cred` root of the namespace owned as `owner` — may it write the
/// namespace's sysctls (`/proc/sys/kernel/*`, mode 0644 root)?
///
/// Linux lets root of the user namespace that owns the IPC namespace write
/// them (SPEC 7, NS-8). uipc's namespaces have no user namespace: the
/// creator of a namespace plays the part of its user namespace's root (as a
/// process that ran `unshare --user --map-root-user --ipc` would be), and
/// uid 0 is root everywhere.
///
/// # Errors
/// `EACCES`, as `open(2)` of a 0644 root-owned `/proc/sys` file gives.
pub fn ns_may_write_sysctl(cred: &Cred, owner: &NamespaceOwner) -> Result<(), Errno> {
    if cred.euid.0 == 0 || cred.euid == owner.uid {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// May `cred` remove the namespace owned as `owner`?
///
/// The owner may, and so may a caller with `CAP_SYS_ADMIN` (the capability
/// Linux's namespace operations need) — the ownership rule of
/// `ipcctl_obtain_check()` applied to a namespace.
///
/// # Errors
/// `EPERM` otherwise.
pub fn ns_may_remove(cred: &Cred, owner: &NamespaceOwner) -> Result<(), Errno> {
    if cred.euid == owner.uid || cred.capable(Cap::SYS_ADMIN) {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cred::{CapSet, Pid, PosixIds};

    fn cred(uid: u32, gid: u32, groups: &[u32], caps: u64) -> Cred {
        Cred {
            pid: Pid(1),
            euid: Uid(uid),
            egid: Gid(gid),
            groups: groups.iter().map(|&g| Gid(g)).collect(),
            caps: CapSet(caps),
            memlock_limit: 0,
            posix: PosixIds::from_effective(Uid(uid), Gid(gid)),
        }
    }

    #[test]
    fn entering_a_namespace_reads_its_mode_like_a_directory() {
        let private = NamespaceOwner { uid: Uid(1000), gid: Gid(1000), mode: 0o700 };
        assert_eq!(ns_may_enter(&cred(1000, 1000, &[], 0), &private), Ok(()));
        assert_eq!(ns_may_enter(&cred(1001, 1001, &[], 0), &private), Err(Errno::EACCES));
        // CAP_SYS_ADMIN (bit 21), what setns(CLONE_NEWIPC) needs, always may.
        assert_eq!(ns_may_enter(&cred(0, 0, &[], 1 << 21), &private), Ok(()));
        assert_eq!(ns_may_enter(&cred(0, 0, &[], 0), &private), Err(Errno::EACCES));
        let group = NamespaceOwner { uid: Uid(1000), gid: Gid(2000), mode: 0o710 };
        assert_eq!(ns_may_enter(&cred(1001, 1001, &[2000], 0), &group), Ok(()));
        assert_eq!(ns_may_enter(&cred(1001, 1001, &[], 0), &group), Err(Errno::EACCES));
        // The owner class decides for the owner, even if "other" would admit.
        let odd = NamespaceOwner { uid: Uid(1000), gid: Gid(1000), mode: 0o071 };
        assert_eq!(ns_may_enter(&cred(1000, 1000, &[], 0), &odd), Err(Errno::EACCES));
        assert_eq!(ns_may_enter(&cred(1002, 1002, &[], 0), &odd), Ok(()));
    }

    #[test]
    fn the_owner_is_root_of_its_namespace() {
        let ns = NamespaceOwner { uid: Uid(1000), gid: Gid(1000), mode: 0o755 };
        assert_eq!(ns_may_write_sysctl(&cred(1000, 1000, &[], 0), &ns), Ok(()));
        assert_eq!(ns_may_write_sysctl(&cred(0, 0, &[], 0), &ns), Ok(()));
        assert_eq!(ns_may_write_sysctl(&cred(1001, 1000, &[1000], 0), &ns), Err(Errno::EACCES));
        assert_eq!(ns_may_remove(&cred(1000, 1000, &[], 0), &ns), Ok(()));
        assert_eq!(ns_may_remove(&cred(1001, 1001, &[], 0), &ns), Err(Errno::EPERM));
        // uid 0 without CAP_SYS_ADMIN is not the owner.
        assert_eq!(ns_may_remove(&cred(0, 0, &[], 0), &ns), Err(Errno::EPERM));
        assert_eq!(ns_may_remove(&cred(0, 0, &[], 1 << 21), &ns), Ok(()));
    }
}
