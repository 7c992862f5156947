//! [`Admin`]: the operator's connection — namespace management and
//! sysctls, for tools such as `uipc ns` and `uipc sysctl`.
//!
//! It carries no mappings and no sleeping calls, so it is a plain
//! blocking exchange of frames on one socket. It starts without a session
//! (namespace management needs none) and may [`join`](Admin::join) one
//! existing namespace for sysctls.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use uipc_abi::Errno;
pub use uipc_proto::NsInfo;
use uipc_proto::{Request, Response, HEADER, MAX_FRAME, VERSION};

/// An operator's connection to a daemon.
#[derive(Debug)]
pub struct Admin {
    stream: UnixStream,
}

fn io(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO.raw()))
}

impl Admin {
    /// Connects to the daemon at `socket`, joining no namespace.
    ///
    /// # Errors
    /// `connect(2)`'s: `ENOENT` (no socket), `ECONNREFUSED` (no daemon), `EACCES`.
    pub fn connect(socket: &Path) -> Result<Admin, Errno> {
        Ok(Admin { stream: UnixStream::connect(socket).map_err(|e| io(&e))? })
    }

    fn call(&mut self, req: &Request) -> Result<Response, Errno> {
        let bytes = uipc_proto::encode(req).map_err(|_| Errno::EINVAL)?;
        self.stream.write_all(&bytes).map_err(|e| io(&e))?;
        let mut header = [0u8; HEADER];
        self.stream.read_exact(&mut header).map_err(|e| io(&e))?;
        let len = usize::try_from(u32::from_le_bytes(header)).map_err(|_| Errno::EPROTO)?;
        if len > MAX_FRAME {
            return Err(Errno::EPROTO);
        }
        let mut frame = header.to_vec();
        frame.resize(HEADER + len, 0);
        self.stream.read_exact(&mut frame[HEADER..]).map_err(|e| io(&e))?;
        match uipc_proto::decode::<Response>(&frame) {
            Ok(Some((Response::Error(e), _))) => Err(Errno::from_raw(e)),
            Ok(Some((r, _))) => Ok(r),
            _ => Err(Errno::EPROTO),
        }
    }

    /// Joins the existing namespace `name` (for [`sysctl_read`](Self::sysctl_read)
    /// and [`sysctl_write`](Self::sysctl_write)); never creates it.
    ///
    /// # Errors
    /// `ENOENT` (no such namespace), `EACCES` (its mode refuses the
    /// caller), `EINVAL` (bad name, or already joined), `EPROTO` (version).
    pub fn join(&mut self, name: &str) -> Result<(), Errno> {
        match self.call(&Request::Join { version: VERSION, namespace: name.to_owned() })? {
            Response::Welcome { .. } => Ok(()),
            _ => Err(Errno::EPROTO),
        }
    }

    /// Creates namespace `name` owned by the caller, with permission bits
    /// `mode` and the sysctls `(name, value)` written first; with
    /// `ephemeral`, a fresh name is chosen and the namespace ends with the
    /// last process that joined it (the caller counts). Returns the name.
    ///
    /// # Errors
    /// `EEXIST` (taken), `EINVAL` (bad name or mode, or a sysctl value),
    /// `ERANGE` (`kernel.sem` SEMMNI), `ENOENT` (unknown sysctl),
    /// `EACCES` (a `*_next_id` without `CAP_CHECKPOINT_RESTORE`).
    pub fn ns_create(
        &mut self,
        name: &str,
        mode: u32,
        sysctls: &[(String, String)],
        ephemeral: bool,
    ) -> Result<String, Errno> {
        let req = Request::NsCreate { name: name.to_owned(), mode, sysctls: sysctls.to_vec(), ephemeral };
        match self.call(&req)? {
            Response::Text(name) => Ok(name),
            _ => Err(Errno::EPROTO),
        }
    }

    /// The namespaces the caller may enter.
    ///
    /// # Errors
    /// Transport errors only.
    pub fn ns_list(&mut self) -> Result<Vec<NsInfo>, Errno> {
        match self.call(&Request::NsList)? {
            Response::Namespaces(v) => Ok(v),
            _ => Err(Errno::EPROTO),
        }
    }

    /// Namespace `name`, with its sysctls.
    ///
    /// # Errors
    /// `ENOENT` (no such namespace), `EACCES` (may not enter it).
    pub fn ns_show(&mut self, name: &str) -> Result<NsInfo, Errno> {
        match self.call(&Request::NsShow { name: name.to_owned() })? {
            Response::Namespace(i) => Ok(i),
            _ => Err(Errno::EPROTO),
        }
    }

    /// Removes namespace `name` and everything in it.
    ///
    /// # Errors
    /// `ENOENT` (no such namespace), `EPERM` (not the owner, no
    /// `CAP_SYS_ADMIN`), `EBUSY` (`default`).
    pub fn ns_remove(&mut self, name: &str) -> Result<(), Errno> {
        self.call(&Request::NsRemove { name: name.to_owned() }).map(|_| ())
    }

    /// Reads a sysctl of the joined namespace, as `/proc/sys` shows it.
    ///
    /// # Errors
    /// `ENOENT` (unknown name), `EPERM` (no namespace joined).
    pub fn sysctl_read(&mut self, name: &str) -> Result<String, Errno> {
        match self.call(&Request::SysctlRead { name: name.to_owned() })? {
            Response::Text(v) => Ok(v),
            _ => Err(Errno::EPROTO),
        }
    }

    /// Writes a sysctl of the joined namespace.
    ///
    /// # Errors
    /// `ENOENT`, `EACCES`, `EINVAL`, `ERANGE` as writing `/proc/sys` gives them.
    pub fn sysctl_write(&mut self, name: &str, value: &str) -> Result<(), Errno> {
        self.call(&Request::SysctlWrite { name: name.to_owned(), value: value.to_owned() }).map(|_| ())
    }
}
