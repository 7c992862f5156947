//! The differential test kit: one test body, run against every backend.
//!
//! A test body drives a [`Session`]: it spawns processes with real identities
//! and performs IPC calls in them. The session forwards each call to a
//! [`Backend`] — the Linux kernel (the oracle, in a fresh IPC namespace) or
//! uipc's core — and records a normalised transcript: return values and errno
//! exactly, every `*_ds` field, with pids turned into process names, times into
//! facts ("never", "now") and addresses into attach-relative names. The
//! [`runner`] compares the transcripts of the backends.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod agent;
pub mod backend;
pub mod core_backend;
pub mod daemon_backend;
pub mod deviations;
pub mod kernel;
pub mod op;
pub mod preload_backend;
pub mod runner;
pub mod sandbox;
pub mod session;

pub use backend::Backend;
pub use kernel::KernelBackend;
pub use op::{CtlBuf, Data, Identity, MsgCtlBuf, MsgDsView, Op, Reply, ShmDsView, ShmInfoView, ShminfoView};
pub use runner::transcript_of;
pub use session::{Mqd, Proc, Session};

/// `conformance!(rule, body)`: the differential test of SPEC rule `rule`
/// (see [`runner::conformance_with`]), with the kernel oracle run by the
/// calling crate's `uipc-kernel-agent` binary. For integration tests of
/// `uipc-conformance`:
///
/// ```ignore
/// uipc_testkit::conformance!("SHM-GET-1", |s| {
///     let p = s.root();
///     s.shmget(p, 0, 4096, 0o1600).unwrap();
/// });
/// ```
#[macro_export]
macro_rules! conformance {
    ($rule:expr, $body:expr) => {
        $crate::runner::conformance_with(env!("CARGO_BIN_EXE_uipc-kernel-agent"), $rule, $body)
    };
}
