//! uipc-core: the Unix IPC model with no I/O.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod memory;
pub use uipc_abi::Errno;
