//! POSIX shared memory and glibc's named semaphores: `shm_open`,
//! `shm_unlink`, `sem_open`, `sem_unlink` (SPEC section 6).
//!
//! On Linux these are glibc over files of the tmpfs at `/dev/shm`: an
//! object is a regular file in a sticky, world-writable (1777) directory
//! owned by root, and every rule is either glibc's (names) or the kernel's
//! for such a file (creation, permission at open, `O_TRUNC`, the sticky
//! rule at unlink). Here the directory is a [`NameTable`] of the namespace
//! and a file is a [`Memory`] region, which the host hands out as a real
//! descriptor: `ftruncate`, `fstat`, `fchmod`, `fchown` and `mmap` on it are
//! the kernel's, so a provider that keeps the identity with the memory
//! ([`Memory::set_file_perm`]) makes the next open check what those calls
//! changed.
//!
//! # Known missing features
//! - Objects are scoped by the uipc namespace, where Linux scopes them by
//!   the mount namespace of `/dev/shm` (`docs/deviations.md`).
//! - `shm_open(".")`/`("..")` are `EINVAL` (glibc opens the directory, or
//!   fails with `EINVAL` from its `EISDIR`), `shm_unlink` of them `EISDIR`.
//! - No default ACLs, no setgid directory: the group is the caller's fsgid.
//!
//! # References
//! - glibc `posix/shm-directory.c:__shm_get_name()`, `rt/shm_open.c`,
//!   `rt/shm_unlink.c`, `sysdeps/pthread/sem_open.c`, `sem_unlink.c`
//! - Linux 6.12 `fs/namei.c:may_open()`, `may_delete()`, `fs/inode.c:inode_init_owner()`
//! - shm_open(3), sem_open(3), sem_unlink(3), shm_overview(7), sem_overview(7)

use uipc_abi::pshm::{
    sem_t_bytes, O_ACCMODE, O_CREAT, O_DIRECTORY, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, SEM_VALUE_MAX,
};
use uipc_abi::Errno;

use crate::cred::{Cred, Uid};
use crate::memory::Memory;
use crate::namespace::IpcNamespace;
use crate::perm::{check_sticky, file_permission, FilePerm, MayAccess};
use crate::posix::names::{NameTable, PosixName, NAME_MAX};

/// Which object a name designates: a shared memory object `NAME`, or the
/// named semaphore whose object glibc calls `sem.NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PshmKind {
    /// `shm_open`/`shm_unlink`.
    Shm,
    /// `sem_open`/`sem_unlink`: the object is `sem.` + the name.
    Sem,
}

/// The access a descriptor of the object is opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenAccess {
    /// `O_RDONLY`.
    Read,
    /// `O_WRONLY` (accepted by Linux; `mmap` of it fails with `EACCES`).
    Write,
    /// `O_RDWR`.
    ReadWrite,
    /// Access mode 3 (`O_ACCMODE`): Linux checks read and write permission
    /// and gives a descriptor that can do neither (only `ioctl`s).
    Neither,
}

impl OpenAccess {
    /// The `O_ACCMODE` bits.
    pub fn flags(self) -> i32 {
        match self {
            OpenAccess::Read => O_RDONLY,
            OpenAccess::Write => O_WRONLY,
            OpenAccess::ReadWrite => O_RDWR,
            OpenAccess::Neither => O_ACCMODE,
        }
    }
}

/// `shm_open`'s `oflag`, decoded once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFlags {
    /// The access mode.
    pub access: OpenAccess,
    /// `O_CREAT`.
    pub create: bool,
    /// `O_EXCL` (only meaningful with `O_CREAT`).
    pub exclusive: bool,
    /// `O_TRUNC`.
    pub truncate: bool,
}

impl OpenFlags {
    /// Decodes `oflag`. Flags other than the access mode, `O_CREAT`,
    /// `O_EXCL`, `O_TRUNC` and `O_DIRECTORY` are the descriptor's business
    /// (the host applies `O_APPEND`, `O_NONBLOCK`…).
    ///
    pub fn decode(oflag: i32) -> OpenFlags {
        let access = match oflag & O_ACCMODE {
            O_RDONLY => OpenAccess::Read,
            O_WRONLY => OpenAccess::Write,
            O_RDWR => OpenAccess::ReadWrite,
            _ => OpenAccess::Neither,
        };
        OpenFlags {
            access,
            create: oflag & O_CREAT != 0,
            exclusive: oflag & O_EXCL != 0,
            truncate: oflag & O_TRUNC != 0,
        }
    }

    /// What `may_open()` checks: the access mode's read/write, plus write
    /// for `O_TRUNC` (`build_open_flags()`), SPEC PSHM-OPEN-4.
    fn may(self) -> MayAccess {
        MayAccess {
            read: matches!(self.access, OpenAccess::Read | OpenAccess::ReadWrite | OpenAccess::Neither),
            write: matches!(self.access, OpenAccess::Write | OpenAccess::ReadWrite | OpenAccess::Neither)
                || self.truncate,
        }
    }
}

/// One object: a file of `/dev/shm`.
#[derive(Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PshmObject<R> {
    region: R,
    /// The identity the core keeps when the memory cannot.
    perm: FilePerm,
    /// Whether the memory keeps the identity ([`Memory::set_file_perm`]
    /// succeeded): then it, not `perm`, is current.
    in_memory: bool,
}

impl<R> PshmObject<R> {
    /// The object's memory.
    pub fn region(&self) -> &R {
        &self.region
    }
}

/// The POSIX shared memory objects of a namespace: the `/dev/shm` directory.
#[derive(Debug)]
pub struct PshmState<R> {
    pub(crate) names: NameTable,
    pub(crate) objects: crate::tracked::Tracked<u64, PshmObject<R>>,
    pub(crate) next: u64,
}

impl<R> Default for PshmState<R> {
    fn default() -> Self {
        PshmState { names: NameTable::default(), objects: crate::tracked::Tracked::default(), next: 1 }
    }
}

/// A successful open: the memory, and how to open a descriptor of it.
#[derive(Debug)]
pub struct PshmOpened<R> {
    /// The object's memory (a clone: the host keeps it only as long as it
    /// takes to hand out a descriptor).
    pub region: R,
    /// The access of the descriptor to open.
    pub access: OpenAccess,
    /// Whether this call created the object.
    pub created: bool,
}

/// One object as `ipcs`/`lsipc` list it.
#[derive(Debug)]
pub struct PshmEntry<R> {
    /// The object's name in the directory (`sem.N` for a semaphore).
    pub name: Vec<u8>,
    /// Owner, group, mode.
    pub perm: FilePerm,
    /// The memory.
    pub region: R,
}

/// The directory's owner: `/dev/shm` is root's (`1777`), so the sticky
/// rule lets root unlink anything.
const DIR_UID: Uid = Uid(0);

/// glibc's buffer for `"/dev/shm/" [+ "sem."] + name + NUL`:
/// `sizeof (SHMDIR) + 4 + NAME_MAX` bytes (glibc 2.34–2.36,
/// `include/shm-directory.h`), so a name may have 259 bytes (255 for a
/// semaphore) before glibc refuses it; the kernel refuses a component
/// over `NAME_MAX` before that.
const GLIBC_NAME_BUF: usize = "/dev/shm/".len() + 1 + 4 + NAME_MAX;

/// `__shm_get_name(name, sem_prefix)` — glibc's name rules, then the
/// kernel's for one path component: all leading `/` are stripped
/// (PSHM-NAME-1); empty, an inner `/`, or too long for glibc's buffer is
/// glibc's failure, which `shm_open`/`sem_open` report as `EINVAL`
/// (PSHM-NAME-2); a component (with `sem.` for a semaphore) longer than
/// `NAME_MAX` is the kernel's `ENAMETOOLONG` (PSHM-NAME-2, PSEM-NAME-1).
/// `.` and `..` are `EINVAL` (PSHM-NAME-3: glibc reaches the directory
/// itself).
///
/// # Errors
/// `EINVAL` (glibc's refusal), `ENAMETOOLONG` (the kernel's).
///
/// # Compatibility
/// glibc 2.36 (this machine's) as described; glibc 2.37 and later answer
/// `ENAMETOOLONG` for a name too long for the buffer.
pub fn shm_name(raw: &[u8], kind: PshmKind) -> Result<PosixName, Errno> {
    let name = without_leading_slashes(raw);
    let prefix: &[u8] = if kind == PshmKind::Sem { b"sem." } else { b"" };
    // __shm_get_name(): "namelen == 0 || memchr (name, '/', namelen) != NULL
    // || alloc_buffer_has_failed (&buffer)" → -1, which the callers turn
    // into EINVAL.
    let fits = "/dev/shm/".len() + prefix.len() + name.len() < GLIBC_NAME_BUF;
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) || !fits {
        return Err(Errno::EINVAL);
    }
    let mut full = Vec::with_capacity(prefix.len() + name.len());
    full.extend_from_slice(prefix);
    full.extend_from_slice(name);
    // The kernel's lookup of a component longer than NAME_MAX.
    if full.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if full == b"." || full == b".." {
        return Err(Errno::EINVAL);
    }
    PosixName::check(&full)
}

impl<M: Memory> IpcNamespace<M> {
    /// The current identity of object `ino`.
    fn pshm_perm(&self, ino: u64) -> Option<FilePerm> {
        let obj = self.pshm.objects.get(&ino)?;
        if obj.in_memory {
            if let Some(p) = self.memory.file_perm(&obj.region) {
                return Some(p);
            }
        }
        Some(obj.perm)
    }

    /// `shm_open(name, oflag, mode)` — opens or creates a POSIX shared
    /// memory object; the host opens a new descriptor of the returned
    /// region with the returned access (as `open("/dev/shm/NAME", oflag |
    /// O_NOFOLLOW | O_CLOEXEC, mode)`, PSHM-OPEN-1).
    ///
    /// The umask is the caller's (`cred.posix.umask`), the owner its fsuid
    /// and fsgid (PSHM-OPEN-3).
    ///
    /// # Errors
    /// - `EINVAL`, `ENAMETOOLONG`: the name ([`shm_name`]); `ENOTDIR` for
    ///   `O_DIRECTORY` (an object is a regular file).
    /// - `EEXIST`: `O_CREAT|O_EXCL` and the name exists (PSHM-OPEN-2).
    /// - `ENOENT`: no `O_CREAT` and no such object (PSHM-OPEN-2).
    /// - `EACCES`: the mode denies the access, or write for `O_TRUNC`
    ///   (PSHM-OPEN-2/4).
    /// - what the memory provider returns for allocation or truncation.
    ///
    /// # References
    /// glibc `rt/shm_open.c`; Linux 6.12 `fs/namei.c:open_last_lookups()`,
    /// `do_open()`, `may_open()`, `handle_truncate()`.
    #[doc(alias = "shm_open")]
    pub fn pshm_open(
        &mut self,
        cred: &Cred,
        name: &[u8],
        oflag: i32,
        mode: u32,
    ) -> Result<PshmOpened<M::Region>, Errno> {
        let name = shm_name(name, PshmKind::Shm)?;
        self.pshm_open_name(cred, name, oflag, mode, None)
    }

    /// `sem_open(name, oflag, mode, value)` — opens or creates the object
    /// of a named semaphore: `sem.NAME`, read-write. A new one holds a
    /// `sem_t` of `value` before its name appears (glibc links a complete
    /// temporary file), so nobody opens a half-made semaphore (PSEM-OPEN-2).
    /// Mapping it and counting repeated opens is the caller's (PSEM-OPEN-3).
    ///
    /// # Errors
    /// - `EINVAL`, `ENAMETOOLONG`: the name (PSEM-NAME-1).
    /// - `ENOENT`: no `O_CREAT` and no such semaphore; `EACCES`: read and
    ///   write are not both granted (PSEM-OPEN-1).
    /// - `EEXIST`: `O_CREAT|O_EXCL` and it exists; `EINVAL`: creating with
    ///   `value > SEM_VALUE_MAX` (PSEM-OPEN-2) — only when it would create.
    ///
    /// # References
    /// glibc `sysdeps/pthread/sem_open.c`.
    pub fn sem_open(
        &mut self,
        cred: &Cred,
        name: &[u8],
        oflag: i32,
        mode: u32,
        value: u32,
    ) -> Result<PshmOpened<M::Region>, Errno> {
        let name = shm_name(name, PshmKind::Sem)?;
        // glibc opens with O_RDWR plus the caller's O_CREAT/O_EXCL only.
        let oflag = (oflag & (O_CREAT | O_EXCL)) | O_RDWR;
        self.pshm_open_name(cred, name, oflag, mode, Some(value))
    }

    fn pshm_open_name(
        &mut self,
        cred: &Cred,
        name: PosixName,
        oflag: i32,
        mode: u32,
        sem_value: Option<u32>,
    ) -> Result<PshmOpened<M::Region>, Errno> {
        // do_open(): O_DIRECTORY on a regular file (or a new one) is ENOTDIR.
        if oflag & O_DIRECTORY != 0 {
            return Err(Errno::ENOTDIR);
        }
        let flags = OpenFlags::decode(oflag);
        if let Some(ino) = self.pshm.names.lookup(&name) {
            // open_last_lookups(): O_CREAT|O_EXCL on an existing name.
            if flags.create && flags.exclusive {
                return Err(Errno::EEXIST);
            }
            let perm = self.pshm_perm(ino).ok_or(Errno::ENOENT)?;
            // may_open() → inode_permission(): the access mode, and write
            // for O_TRUNC (PSHM-OPEN-2/4).
            file_permission(cred, &perm, flags.may())?;
            let region = self.pshm.objects.get(&ino).map(|o| o.region.clone()).ok_or(Errno::ENOENT)?;
            if flags.truncate {
                // handle_truncate(): an existing file, even with O_RDONLY.
                self.memory.truncate(&region, 0)?;
            }
            return Ok(PshmOpened { region, access: flags.access, created: false });
        }
        // open_last_lookups(): a missing name without O_CREAT.
        if !flags.create {
            return Err(Errno::ENOENT);
        }
        // sem_open.c: the value is checked only on the way to creating.
        if let Some(value) = sem_value {
            if value > SEM_VALUE_MAX {
                return Err(Errno::EINVAL);
            }
        }
        // inode_init_owner(): fsuid, fsgid (/dev/shm is not setgid), and
        // the mode less the umask (no default ACL on /dev/shm).
        let perm = FilePerm { uid: cred.posix.fsuid, gid: cred.posix.fsgid, mode: mode & 0o7777 & !cred.posix.umask };
        let region = self.memory.allocate(0)?;
        if let Some(value) = sem_value {
            self.memory.write_at(&region, 0, &sem_t_bytes(value))?;
        }
        let in_memory = self.memory.set_file_perm(&region, perm).is_ok();
        let ino = self.pshm.next;
        self.pshm.next += 1;
        self.pshm.names.link(name, ino)?;
        self.pshm.objects.insert(ino, PshmObject { region: region.clone(), perm, in_memory });
        // A new file is not checked against its mode (do_open(): FMODE_CREATED).
        Ok(PshmOpened { region, access: flags.access, created: true })
    }

    /// `shm_unlink(name)` or `sem_unlink(name)` — removes the name; the
    /// object lives on in its descriptors and mappings (PSHM-UNL-2).
    ///
    /// # Errors
    /// - `ENOENT`: a name glibc refuses (it reports them all as `ENOENT`
    ///   here), or no such object (PSHM-UNL-1, PSEM-UNL-1).
    /// - `ENAMETOOLONG`: a component over `NAME_MAX` (the kernel's).
    /// - `EISDIR`: `.` or `..` (the kernel's `do_unlinkat()`).
    /// - `EACCES`: the sticky rule — neither the object's owner, nor the
    ///   directory's (root), nor `CAP_FOWNER`; the kernel's `EPERM`, which
    ///   glibc turns into `EACCES`.
    ///
    /// # References
    /// glibc `rt/shm_unlink.c`, `sysdeps/pthread/sem_unlink.c`; Linux 6.12
    /// `fs/namei.c:may_delete()`, `__check_sticky()`.
    #[doc(alias = "shm_unlink")]
    #[doc(alias = "sem_unlink")]
    pub fn pshm_unlink(&mut self, cred: &Cred, name: &[u8], kind: PshmKind) -> Result<(), Errno> {
        let name = match shm_name(name, kind) {
            Ok(n) => n,
            // do_unlinkat(): the last component "." or ".." is EISDIR.
            Err(Errno::EINVAL) if is_dot(name, kind) => return Err(Errno::EISDIR),
            // shm_unlink.c: "if (__shm_get_name (...) != 0) errno = ENOENT".
            Err(Errno::EINVAL) => return Err(Errno::ENOENT),
            // The kernel's unlink of an overlong component.
            Err(e) => return Err(e),
        };
        let ino = self.pshm.names.lookup(&name).ok_or(Errno::ENOENT)?;
        let perm = self.pshm_perm(ino).ok_or(Errno::ENOENT)?;
        // may_delete(): /dev/shm is 1777, so only the sticky rule can refuse;
        // glibc converts its EPERM to EACCES.
        check_sticky(cred, DIR_UID, &perm).map_err(|_| Errno::EACCES)?;
        self.pshm.names.unlink(&name);
        if let Some(obj) = self.pshm.objects.remove(&ino) {
            self.memory.unlinked(&obj.region);
        }
        Ok(())
    }

    /// How many objects this namespace ever created (an audit log tells a
    /// creating open from its count changing).
    pub fn pshm_created(&self) -> u64 {
        self.pshm.next - 1
    }

    /// Every object with a name, in name order (the directory listing).
    pub fn pshm_list(&self) -> Vec<PshmEntry<M::Region>> {
        self.pshm
            .names
            .iter()
            .filter_map(|(name, ino)| {
                let obj = self.pshm.objects.get(&ino)?;
                Some(PshmEntry {
                    name: name.as_bytes().to_vec(),
                    perm: self.pshm_perm(ino)?,
                    region: obj.region.clone(),
                })
            })
            .collect()
    }

    /// Drops every name (namespace teardown): objects live on in their
    /// descriptors and mappings.
    pub(crate) fn pshm_free_names(&mut self) {
        let objects = std::mem::take(&mut self.pshm.objects);
        for obj in objects.values() {
            self.memory.unlinked(&obj.region);
        }
        self.pshm.names = NameTable::default();
    }
}

/// Whether `raw` names `.` or `..` once glibc strips its leading slashes.
fn is_dot(raw: &[u8], kind: PshmKind) -> bool {
    kind == PshmKind::Shm && matches!(without_leading_slashes(raw), b"." | b"..")
}

/// `raw` after the leading slashes glibc skips (`__shm_get_name()`).
fn without_leading_slashes(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|&c| c != b'/').unwrap_or(raw.len());
    &raw[start..]
}

#[cfg(feature = "serde")]
impl<R> PshmObject<R> {
    /// The same object with its region converted by `f`.
    ///
    /// # Errors
    /// `f`'s.
    pub(crate) fn try_map_region<U, E>(self, f: impl FnOnce(R) -> Result<U, E>) -> Result<PshmObject<U>, E> {
        Ok(PshmObject { region: f(self.region)?, perm: self.perm, in_memory: self.in_memory })
    }
}
