//! POSIX shared memory and named semaphores through the daemon
//! (SPEC section 6): `shm_open` gives a real descriptor, on which
//! `ftruncate`, `fstat`, `fchmod`, `fchown` and `mmap` are the kernel's.

use std::os::fd::OwnedFd;

use uipc_abi::Errno;
use uipc_proto::{PshmInfo, Request, Response};

use crate::{unexpected, Client};

/// The calling process's umask (`Umask:` of `/proc/self/status`).
fn umask_now() -> u32 {
    uipc_sys::proc::proc_ids(std::process::id()).map_or(0o022, |ids| ids.umask)
}

impl Client {
    fn call_fd(&self, req: &Request) -> Result<OwnedFd, Errno> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let answer = conn.call(req, 1);
        let reopened = conn.reopened;
        drop(conn);
        self.settle_reopen(reopened);
        let (resp, mut fds) = answer?;
        match resp {
            Response::Error(e) => Err(Errno::from_raw(e)),
            Response::Fd => fds.pop().ok_or(Errno::EIO),
            r => Err(unexpected(&r)),
        }
    }

    /// `shm_open(name, oflag, mode)` — opens or creates a POSIX shared
    /// memory object; the descriptor is close-on-exec, a new open file
    /// description with the access mode of `oflag`.
    ///
    /// # Errors
    /// shm_open(3)'s: `EINVAL` (name, access mode), `ENAMETOOLONG`,
    /// `EEXIST`, `ENOENT`, `EACCES` (SPEC PSHM-NAME-*, PSHM-OPEN-*).
    pub fn shm_open(&self, name: impl AsRef<[u8]>, oflag: i32, mode: u32) -> Result<OwnedFd, Errno> {
        self.shm_open_umask(name, oflag, mode, umask_now())
    }

    /// [`shm_open`](Self::shm_open) with the umask given (the shim keeps it).
    ///
    /// # Errors
    /// As [`shm_open`](Self::shm_open).
    pub fn shm_open_umask(&self, name: impl AsRef<[u8]>, oflag: i32, mode: u32, umask: u32) -> Result<OwnedFd, Errno> {
        self.call_fd(&Request::PshmOpen { name: name.as_ref().to_vec(), oflag, mode, umask })
    }

    /// `shm_unlink(name)` — removes the name; the object lives while open
    /// or mapped.
    ///
    /// # Errors
    /// `ENOENT` (also for a bad name, as glibc), `EACCES` (sticky rule).
    pub fn shm_unlink(&self, name: impl AsRef<[u8]>) -> Result<(), Errno> {
        self.call_value(&Request::PshmUnlink { name: name.as_ref().to_vec(), sem: false }).map(drop)
    }

    /// `memfd_create` as FreeBSD's `shm_open(SHM_ANON, …)`: an anonymous
    /// object, nobody else can open it by name; the daemon is not involved.
    /// Its mode is `mode & ~umask`.
    ///
    /// # Errors
    /// memfd_create(2)'s (`EMFILE`, `ENOMEM`).
    pub fn shm_anon(&self, mode: u32) -> Result<OwnedFd, Errno> {
        uipc_sys::memfd::anonymous("uipc-shm-anon", mode & 0o7777 & !umask_now())
    }

    /// The object of named semaphore `name` (`sem.NAME`), read-write, as
    /// glibc's `sem_open` opens it; a new one holds a `sem_t` of `value`.
    /// [`sem_open`](Self::sem_open) maps it.
    ///
    /// # Errors
    /// sem_open(3)'s: `EINVAL`, `ENAMETOOLONG`, `EEXIST`, `ENOENT`, `EACCES`.
    pub fn sem_open_fd(
        &self,
        name: impl AsRef<[u8]>,
        oflag: i32,
        mode: u32,
        umask: u32,
        value: u32,
    ) -> Result<OwnedFd, Errno> {
        self.call_fd(&Request::SemOpen { name: name.as_ref().to_vec(), oflag, mode, umask, value })
    }

    /// `sem_open(name, oflag, mode, value)` — opens or creates a named
    /// semaphore and maps it: glibc's `sem_wait`/`sem_post` work on it
    /// across processes ([`NamedSemaphore`](crate::NamedSemaphore)).
    ///
    /// # Errors
    /// As [`sem_open_fd`](Self::sem_open_fd); `mmap`'s.
    pub fn sem_open(
        &self,
        name: impl AsRef<[u8]>,
        oflag: i32,
        mode: u32,
        value: u32,
    ) -> Result<crate::NamedSemaphore, Errno> {
        let fd = self.sem_open_fd(name, oflag, mode, umask_now(), value)?;
        crate::mapping::map_semaphore(&fd)
    }

    /// `sem_unlink(name)`.
    ///
    /// # Errors
    /// `ENOENT` (also for a bad name, as glibc), `EACCES` (sticky rule).
    pub fn sem_unlink(&self, name: impl AsRef<[u8]>) -> Result<(), Errno> {
        self.call_value(&Request::PshmUnlink { name: name.as_ref().to_vec(), sem: true }).map(drop)
    }

    /// The namespace's POSIX shared memory objects and semaphores.
    ///
    /// # Errors
    /// `EIDRM` if the namespace was removed.
    pub fn pshm_list(&self) -> Result<Vec<PshmInfo>, Errno> {
        match self.call(&Request::PshmList)? {
            Response::PshmObjects(v) => Ok(v),
            r => Err(unexpected(&r)),
        }
    }
}
