//! uipc-sys: the only crate that names Linux system calls.
#![deny(missing_docs)]

#[cfg(feature = "oracle")]
pub mod libc_ipc;
#[cfg(feature = "oracle")]
pub mod oracle;

pub mod account;
pub mod body_page;
pub mod fd;
pub mod map;
pub mod memfd;
pub mod mq_page;
pub mod mqfd;
pub mod msg_page;
pub mod msg_status;
pub mod net;
pub mod poll;
pub mod proc;
pub mod seccomp;
pub mod sem_page;
pub mod sem_status;
pub mod seqlock;
pub mod shm_attach;
pub mod shm_status;
pub mod state_page;
pub mod status_region;
