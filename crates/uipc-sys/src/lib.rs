//! uipc-sys: the only crate that names Linux system calls.
#![deny(missing_docs)]
