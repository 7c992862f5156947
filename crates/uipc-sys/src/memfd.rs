//! Segment memory as real kernel memory objects: anonymous memfds, or named
//! files in a directory (the daemon's tmpfs state directory, so a restarted
//! daemon finds every segment's bytes again).
//!
//! Both give regions that are zero-filled when created (ftruncate of a new
//! file), page granular, and shareable by descriptor (SCM_RIGHTS), so every
//! process that maps one sees the same pages.

use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustix::fs::{ftruncate, MemfdFlags};
use uipc_abi::{Errno, PAGE_SIZE};
use uipc_core::perm::FilePerm;
use uipc_core::{Gid, Memory, Uid};

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO.raw()))
}

/// One region: a descriptor of a file of `len` bytes; the file is unlinked
/// (if named) when the last clone is dropped.
#[derive(Debug)]
pub struct FileRegion {
    fd: OwnedFd,
    len: u64,
    /// The file's path, for regions of a [`DirMemory`] (`None` once a POSIX
    /// shm object's name is unlinked and its file removed).
    path: Mutex<Option<PathBuf>>,
    /// Where the path goes when the file must be removed, if its removal
    /// waits for the owner's say ([`Unlinks`]).
    unlinks: Option<Unlinks>,
}

/// Removals of state files waiting until the change that removes them is
/// recorded (a durable daemon: the metadata journal is written first, so a
/// crash between the two never leaves a record naming a removed file).
/// Dropping the list without [`flush`](Unlinks::flush)ing keeps the files
/// (a daemon stopping keeps its state).
#[derive(Clone, Debug, Default)]
pub struct Unlinks(Arc<Mutex<Vec<PathBuf>>>);

impl Unlinks {
    /// Removes the file at `path` at the next [`flush`](Self::flush).
    pub fn push(&self, path: PathBuf) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(path);
    }

    /// Removes every file whose removal waited.
    pub fn flush(&self) {
        let paths = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        for path in paths {
            // Already gone leaves nothing to clean.
            let _ = fs::remove_file(path);
        }
    }

    /// Forgets the waiting removals: the files stay (the daemon stops and
    /// keeps its state).
    pub fn keep_all(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl FileRegion {
    /// The descriptor (read-write), to map or to pass to a client.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Length in bytes (whole pages).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the region is empty (never, for a segment).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Path of the backing file, if it has one.
    pub fn path(&self) -> Option<PathBuf> {
        self.path.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Removes the backing file now (the memory lives on in descriptors and
    /// mappings, and `fstat` shows `st_nlink` 0).
    fn remove_file(&self) {
        if let Some(path) = self.path.lock().unwrap_or_else(|e| e.into_inner()).take() {
            match &self.unlinks {
                Some(u) => u.push(path),
                // Already gone leaves nothing to clean.
                None => {
                    let _ = fs::remove_file(path);
                }
            }
        }
    }

    /// The backing file's name in its directory, if it has one.
    pub fn file_name(&self) -> Option<String> {
        self.path()?.file_name()?.to_str().map(str::to_owned)
    }

    /// The file's owner, group and mode (`fstat`).
    pub fn file_perm(&self) -> Option<FilePerm> {
        let st = rustix::fs::fstat(&self.fd).ok()?;
        Some(FilePerm { uid: Uid(st.st_uid), gid: Gid(st.st_gid), mode: st.st_mode & 0o7777 })
    }

    /// Gives the file an owner, group and mode (`fchown`, then `fchmod`,
    /// since a `chown` clears set-id bits).
    ///
    /// # Errors
    /// `EPERM` without `CAP_CHOWN` for another owner.
    pub fn set_file_perm(&self, perm: FilePerm) -> Result<(), Errno> {
        // SAFETY: fchown reads no memory of ours; the descriptor is live
        // for the call (borrowed from self).
        if unsafe { libc::fchown(self.fd.as_raw_fd(), perm.uid.0, perm.gid.0) } != 0 {
            return Err(Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(Errno::EIO.raw())));
        }
        rustix::fs::fchmod(&self.fd, rustix::fs::Mode::from_raw_mode(perm.mode)).map_err(errno)
    }

    /// A new open file description of the file with `flags` (an access
    /// mode and status flags), close-on-exec: what each `shm_open` gets
    /// ([`map::reopen`](crate::map::reopen)). A daemon without
    /// `CAP_DAC_OVERRIDE` that owns the file and is refused by its mode
    /// (an object created `0400`) lends itself the owner's read and write
    /// bits for the moment of the open, as the creator of a file already
    /// holds its descriptor.
    ///
    /// # Errors
    /// As `open(2)`.
    pub fn reopen(&self, flags: u32) -> Result<OwnedFd, Errno> {
        match crate::map::reopen(self.fd.as_fd(), flags) {
            Err(Errno::EACCES) => {}
            other => return other,
        }
        let st = rustix::fs::fstat(&self.fd).map_err(errno)?;
        if st.st_uid != rustix::process::geteuid().as_raw() {
            return Err(Errno::EACCES);
        }
        let mode = st.st_mode & 0o7777;
        rustix::fs::fchmod(&self.fd, rustix::fs::Mode::from_raw_mode(mode | 0o600)).map_err(errno)?;
        let fd = crate::map::reopen(self.fd.as_fd(), flags);
        rustix::fs::fchmod(&self.fd, rustix::fs::Mode::from_raw_mode(mode)).map_err(errno)?;
        fd
    }

    /// Size, modification and status-change times (seconds) of the file.
    pub fn stat(&self) -> Option<(u64, i64, i64)> {
        let st = rustix::fs::fstat(&self.fd).ok()?;
        Some((
            u64::try_from(st.st_size).unwrap_or(0),
            i64::try_from(st.st_mtime).unwrap_or(0),
            i64::try_from(st.st_ctime).unwrap_or(0),
        ))
    }

    /// `ftruncate` to `len` bytes.
    ///
    /// # Errors
    /// As `ftruncate(2)`.
    pub fn truncate(&self, len: u64) -> Result<(), Errno> {
        ftruncate(&self.fd, len).map_err(errno)
    }

    /// `pwrite` of all of `data` at `off`.
    ///
    /// # Errors
    /// As `pwrite(2)`; `EIO` for a short write.
    pub fn write_at(&self, off: u64, data: &[u8]) -> Result<(), Errno> {
        let n = rustix::io::pwrite(&self.fd, data, off).map_err(errno)?;
        if n == data.len() {
            Ok(())
        } else {
            Err(Errno::EIO)
        }
    }

    /// Reads `len` bytes at byte `off` (`pread(2)`, whole).
    ///
    /// # Errors
    /// `EFAULT` past the end, else the system call's errno.
    pub fn read_at(&self, off: u64, len: u64) -> Result<Vec<u8>, Errno> {
        let end = off.checked_add(len).ok_or(Errno::EFAULT)?;
        if end > self.len() {
            return Err(Errno::EFAULT);
        }
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| Errno::EFAULT)?];
        let mut done = 0;
        while done < buf.len() {
            let at = off + u64::try_from(done).map_err(|_| Errno::EFAULT)?;
            match rustix::io::pread(&self.fd, &mut buf[done..], at) {
                Ok(0) => return Err(Errno::EIO),
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(errno(e)),
            }
        }
        Ok(buf)
    }

    /// Pages that hold memory: the file's allocated blocks (`st_blocks` is
    /// in 512-byte units), what tmpfs counts as resident.
    pub fn resident_pages(&self) -> u64 {
        rustix::fs::fstat(&self.fd).map_or(0, |st| u64::try_from(st.st_blocks).unwrap_or(0) * 512 / PAGE_SIZE)
    }
}

impl Drop for FileRegion {
    fn drop(&mut self) {
        // The segment is destroyed: its file goes with it.
        self.remove_file();
    }
}

/// The POSIX shm hooks of [`Memory`], the same for every file region.
macro_rules! file_region_hooks {
    () => {
        fn file_perm(&self, region: &SharedRegion) -> Option<FilePerm> {
            region.file_perm()
        }

        fn set_file_perm(&mut self, region: &SharedRegion, perm: FilePerm) -> Result<(), Errno> {
            region.set_file_perm(perm)
        }

        fn truncate(&mut self, region: &SharedRegion, len: u64) -> Result<(), Errno> {
            region.truncate(len)
        }

        fn write_at(&mut self, region: &SharedRegion, off: u64, data: &[u8]) -> Result<(), Errno> {
            region.write_at(off, data)
        }

        fn unlinked(&mut self, region: &SharedRegion) {
            region.remove_file();
        }
    };
}

/// A shared [`FileRegion`].
pub type SharedRegion = Arc<FileRegion>;

/// `memfd_create(name, MFD_CLOEXEC)` with permission bits `mode`: an
/// anonymous shared memory object (FreeBSD's `SHM_ANON`).
///
/// # Errors
/// memfd_create(2)'s, fchmod(2)'s.
pub fn anonymous(name: &str, mode: u32) -> Result<OwnedFd, Errno> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC).map_err(errno)?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(mode)).map_err(errno)?;
    Ok(fd)
}

/// Anonymous memfds (`memfd_create(2)`), freed by the kernel with the last
/// descriptor and mapping.
#[derive(Debug, Default)]
pub struct MemfdMemory;

impl Memory for MemfdMemory {
    type Region = SharedRegion;

    fn allocate(&mut self, len: u64) -> Result<SharedRegion, Errno> {
        let fd = rustix::fs::memfd_create("uipc-sysv-shm", MemfdFlags::CLOEXEC).map_err(errno)?;
        // memfds are born 0777: anyone holding a read-only descriptor could
        // reopen /proc/self/fd/N for writing. 0600 leaves that to the owner
        // (the daemon) alone, so SHM_RDONLY attaches stay read-only.
        rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o600)).map_err(errno)?;
        // A new file of `len` bytes reads as zeros (ZERO-1).
        ftruncate(&fd, len).map_err(errno)?;
        Ok(Arc::new(FileRegion { fd, len, path: Mutex::new(None), unlinks: None }))
    }

    fn resident_pages(&self, region: &SharedRegion) -> u64 {
        region.resident_pages()
    }

    file_region_hooks!();

    fn read(&self, region: &SharedRegion, off: u64, len: u64) -> Result<Vec<u8>, Errno> {
        region.read_at(off, len)
    }
}

/// A memfd of `len` zero bytes (mode 0600) whose size is sealed
/// (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`): a state page handed to
/// clients read-write, which no client can truncate under the daemon's
/// mapping (a shrunk file would raise `SIGBUS` in the daemon).
///
/// # Errors
/// memfd_create(2)'s, ftruncate(2)'s, fcntl(2)'s.
///
/// # References
///  - [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html) ("File sealing")
pub fn sealed(name: &str, len: u64) -> Result<SharedRegion, Errno> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).map_err(errno)?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o600)).map_err(errno)?;
    ftruncate(&fd, len).map_err(errno)?;
    let seals = rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW | rustix::fs::SealFlags::SEAL;
    rustix::fs::fcntl_add_seals(&fd, seals).map_err(errno)?;
    Ok(Arc::new(FileRegion { fd, len, path: Mutex::new(None), unlinks: None }))
}

/// A state page in a file at `path` (created, or emptied, with `len` zero
/// bytes, mode 0600): with a state directory, a page outlives the daemon.
/// A file cannot be sealed as a memfd is, so a client holding it
/// read-write could truncate it (`docs/deviations.md`).
///
/// # Errors
/// open(2)'s, ftruncate(2)'s.
pub fn page_file(path: PathBuf, len: u64, unlinks: Option<Unlinks>) -> Result<SharedRegion, Errno> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).mode(0o600).open(&path);
    let file = file.map_err(|e| io_errno(&e))?;
    ftruncate(&file, len).map_err(errno)?;
    Ok(Arc::new(FileRegion { fd: file.into(), len, path: Mutex::new(Some(path)), unlinks }))
}

/// An existing file at `path` as a region (a restarted daemon re-adopting
/// its state directory): its length is the file's.
///
/// # Errors
/// open(2)'s, fstat(2)'s.
pub fn open_file(path: PathBuf, unlinks: Option<Unlinks>) -> Result<SharedRegion, Errno> {
    let file = OpenOptions::new().read(true).write(true).open(&path).map_err(|e| io_errno(&e))?;
    let st = rustix::fs::fstat(&file).map_err(errno)?;
    let len = u64::try_from(st.st_size).unwrap_or(0);
    Ok(Arc::new(FileRegion { fd: file.into(), len, path: Mutex::new(Some(path)), unlinks }))
}

/// A region with no file: an anonymous memfd of `len` bytes, mode 0600.
///
/// # Errors
/// memfd_create(2)'s, ftruncate(2)'s.
pub fn anonymous_region(len: u64) -> Result<SharedRegion, Errno> {
    MemfdMemory.allocate(len)
}

/// Files in a directory (a tmpfs state directory), named `shm-N`, removed
/// when their segment is destroyed.
#[derive(Debug)]
pub struct DirMemory {
    dir: PathBuf,
    next: u64,
    unlinks: Option<Unlinks>,
}

impl DirMemory {
    /// Memory in `dir`, which must exist.
    pub fn new(dir: impl Into<PathBuf>) -> DirMemory {
        DirMemory { dir: dir.into(), next: 0, unlinks: None }
    }

    /// Memory in `dir` whose files' removals wait in `unlinks`.
    pub fn deferred(dir: impl Into<PathBuf>, unlinks: Unlinks) -> DirMemory {
        DirMemory { dir: dir.into(), next: 0, unlinks: Some(unlinks) }
    }

    /// The directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The existing file `name` of the directory as a region.
    ///
    /// # Errors
    /// `EINVAL` for a name that is not a plain file name; open(2)'s.
    pub fn open_existing(&self, name: &str) -> Result<SharedRegion, Errno> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Errno::EINVAL);
        }
        open_file(self.dir.join(name), self.unlinks.clone())
    }
}

impl Memory for DirMemory {
    type Region = SharedRegion;

    fn allocate(&mut self, len: u64) -> Result<SharedRegion, Errno> {
        loop {
            let path = self.dir.join(format!("shm-{}", self.next));
            self.next += 1;
            let file = OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path);
            let file: File = match file {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_errno(&e)),
            };
            let region =
                FileRegion { fd: file.into(), len, path: Mutex::new(Some(path)), unlinks: self.unlinks.clone() };
            ftruncate(&region.fd, len).map_err(errno)?;
            return Ok(Arc::new(region));
        }
    }

    fn resident_pages(&self, region: &SharedRegion) -> u64 {
        region.resident_pages()
    }

    file_region_hooks!();

    fn read(&self, region: &SharedRegion, off: u64, len: u64) -> Result<Vec<u8>, Errno> {
        region.read_at(off, len)
    }
}

/// A region is recorded as its file's name (`None`: no file — a memfd, or
/// a POSIX shm object whose name was unlinked) and its length.
impl serde::Serialize for FileRegion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.file_name(), self.len).serialize(s)
    }
}
