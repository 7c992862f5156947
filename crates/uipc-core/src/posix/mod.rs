//! The POSIX mechanisms. Their objects are named, not keyed: they share one
//! name table ([`names::NameTable`]), the directory of a filesystem instance
//! (the mqueue filesystem of an IPC namespace; `/dev/shm` for shared memory
//! and named semaphores).

pub mod mq_page;
pub mod mqueue;
pub mod names;
pub mod shm;
