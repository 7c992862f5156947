//! uipc-core: the Unix IPC model, with no I/O.
//!
//! An [`IpcNamespace`] holds the objects of every mechanism and their limits.
//! Every operation takes the caller's [`Cred`] and the time ([`Time`])
//! explicitly and returns `Result<_, Errno>` with Linux's errno, checked in
//! Linux's order. The core owns no thread, socket, clock or memory: memory
//! comes through the [`Memory`] trait. This makes it a deterministic state
//! machine that tests can drive exhaustively and that an embedder can host.
//!
//! The layout mirrors Linux's `ipc/`: [`ids`] is `util.c`'s generic registry
//! (`ipc_ids`, `ipcget`), [`perm`] its three permission functions, and
//! [`sysv::shm`] is `shm.c`. [`mm`] records each process's System V
//! mappings so `nattch` counts mappings as Linux does.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cred;
pub mod ids;
#[cfg(feature = "serde")]
pub mod image;
pub mod limits;
pub mod memory;
pub mod mm;
pub mod namespace;
pub mod perm;
pub mod posix;
pub mod sysv;
pub mod time;
mod tracked;
pub mod wait;

pub use cred::{Cap, CapSet, Cred, Gid, Pid, PosixIds, Uid};
pub use ids::{IpcId, IpcKey};
pub use memory::{HeapMemory, Memory};
pub use namespace::IpcNamespace;
pub use time::Time;
pub use uipc_abi::Errno;
