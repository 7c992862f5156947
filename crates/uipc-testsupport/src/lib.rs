//! What the integration tests of several uipc crates share: a watchdog
//! (nothing in a test may hang), scratch directories, and the check that
//! decides whether a test that needs root runs or skips with a message.
//! Only the standard library: any crate can take it as a dev-dependency.
#![forbid(unsafe_code)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Whether the test runs as root (effective uid 0: the owner of
/// `/proc/self`).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Prints `SKIP <test>: <why>` and returns `true` when not root.
pub fn skip_unless_root(test: &str, why: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIP {test}: needs root ({why})");
    true
}

/// Aborts the whole test process if not dropped within its time.
#[must_use = "the watchdog is disarmed when dropped"]
pub struct Watchdog(Option<mpsc::Sender<()>>);

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// Starts a [`Watchdog`] for `what`, `secs` seconds.
pub fn watchdog(what: &'static str, secs: u64) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("WATCHDOG: {what} did not finish within {secs} s; aborting");
            std::process::abort();
        }
    });
    Watchdog(Some(tx))
}

/// A fresh directory in the temporary directory, searchable by everyone
/// (0755, so processes that tests run as other users reach what is in it),
/// removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `uipc-<tag>-<pid>-<n>`.
    ///
    /// # Panics
    /// If the directory cannot be made (a test cannot go on without it).
    #[allow(clippy::unwrap_used)]
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("uipc-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
