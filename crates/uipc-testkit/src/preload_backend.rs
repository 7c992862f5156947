//! The preload backend: the same agent, its workers calling the C
//! library's `shmget`, `shmat`, `semop`… as an unmodified C program does,
//! with `LD_PRELOAD=libuipc_preload.so` (so the shim serves every call)
//! and a seccomp filter that makes the kernel's IPC system calls fail
//! (`uipc_sys::seccomp::deny_kernel_ipc`, as `uipc run --deny-kernel-ipc`).
//! The daemon is the one the daemon backend shares; each test gets a
//! namespace of its own.
//!
//! The shim is `libuipc_preload.so` beside the agent binary (cargo builds
//! it there: `uipc-conformance` has `uipc-preload` as a dependency), or
//! `$UIPC_PRELOAD`. Selecting this backend without the shim fails the
//! test: it never silently skips.

use std::path::PathBuf;
use std::process::Command;

use crate::daemon_backend;
use crate::kernel::KernelBackend;

/// Where the shim is: `$UIPC_PRELOAD`, else `libuipc_preload.so` in the
/// agent's `deps/` (where cargo builds it, also as a dependency) or, failing
/// that, the agent's directory (where cargo copies it only when
/// `uipc-preload` itself is built: there it can be older).
///
/// # Errors
/// The places looked at, when none holds the shim.
pub fn shim_path(agent: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("UIPC_PRELOAD").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("UIPC_PRELOAD={} does not exist", p.display())) };
    }
    let dir = std::path::Path::new(agent).parent().ok_or("the agent path has no directory")?;
    let candidates = [dir.join("deps").join("libuipc_preload.so"), dir.join("libuipc_preload.so")];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| format!("libuipc_preload.so not built: looked for {candidates:?} (build uipc-preload)"))
}

/// Starts a preload-backed session: the agent in `--libc` mode under the
/// shim and the filter, on a fresh namespace of the shared daemon.
///
/// # Errors
/// A missing shim, a daemon that did not start, an agent that refused
/// (`shmget` not the shim's).
pub fn start(agent: &str) -> Result<KernelBackend, String> {
    let shim = shim_path(agent)?;
    let (socket, ns) = daemon_backend::fresh_namespace(agent)?;
    let mut cmd = Command::new(agent);
    cmd.args(["--libc", &socket, &ns]).env("LD_PRELOAD", &shim).env("UIPC_SOCKET", &socket).env("UIPC_NAMESPACE", &ns);
    uipc_sys::seccomp::deny_kernel_ipc(&mut cmd).map_err(|e| format!("seccomp filter: {e:?}"))?;
    KernelBackend::start_command(cmd, "preload")
}
