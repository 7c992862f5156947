//! Shared by the `uipc-cli` tests that run programs under the shim.

use std::path::PathBuf;

/// `libuipc_preload.so` of this build profile, if it was built: `deps/`
/// first (what this `cargo test` built — a dev-dependency of this crate,
/// and nothing copies it beside the binaries), else beside the binaries
/// (left there by a `cargo build`, possibly older).
pub fn preload_library() -> Option<PathBuf> {
    // target/<profile>/deps/<test>-… → target/<profile>
    let exe = std::env::current_exe().ok()?;
    let profile = exe.parent()?.parent()?;
    [profile.join("deps").join("libuipc_preload.so"), profile.join("libuipc_preload.so")]
        .into_iter()
        .find(|p| p.exists())
}
