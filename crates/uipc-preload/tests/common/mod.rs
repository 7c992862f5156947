//! Shared harness of the preload tests: a watchdog, temporary directories,
//! an in-process daemon, the shim's path and the C compiler.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use uipc_daemon::Embedded;

pub use uipc_testsupport::{watchdog, TempDir};

/// A daemon serving in a thread ([`Embedded`]); shut down through its
/// lifeline on drop.
pub struct TestDaemon {
    pub socket: PathBuf,
    daemon: Option<Embedded>,
    pub _dir: TempDir,
}

impl TestDaemon {
    pub fn start(tag: &str) -> TestDaemon {
        let dir = TempDir::new(tag);
        let socket = dir.0.join("d.sock");
        let daemon = Embedded::spawn(socket.clone(), |d| d).unwrap();
        TestDaemon { socket, daemon: Some(daemon), _dir: dir }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            let r = d.stop();
            if !std::thread::panicking() {
                assert!(r.is_ok(), "daemon failed: {r:?}");
            }
        }
    }
}

/// The shim, built with this package: `target/<profile>/deps/` (where
/// `cargo test` leaves it, next to this test binary) or `target/<profile>/`.
pub fn shim() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let candidates = [deps.join("libuipc_preload.so"), deps.parent().unwrap().join("libuipc_preload.so")];
    let so = candidates.iter().find(|p| p.exists());
    so.unwrap_or_else(|| panic!("libuipc_preload.so not built: looked for {candidates:?}")).clone()
}

/// Compiles `tests/c/<name>.c`; `None` (with a message) when there is no `cc`.
pub fn compile(name: &str, dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{name}.c"));
    let out = dir.join(name);
    let r = Command::new("cc").args(["-O1", "-Wall", "-Werror", "-pthread", "-o"]).arg(&out).arg(&src).output();
    match r {
        Err(e) => {
            eprintln!("SKIP {name}: no C compiler (cc: {e})");
            None
        }
        Ok(o) => {
            assert!(o.status.success(), "cc {name} failed:\n{}", String::from_utf8_lossy(&o.stderr));
            Some(out)
        }
    }
}

/// Whether `unshare --ipc` works here (root, or a permitted user namespace).
pub fn can_unshare() -> bool {
    let ok = Command::new("unshare").args(["--ipc", "true"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP native comparison: unshare --ipc not permitted");
    }
    ok
}

pub fn text(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{what}: {}\n{stdout}{stderr}", out.status);
    assert!(out.status.success() && stdout.ends_with("ok\n"), "{what} failed: {}\n{stdout}{stderr}", out.status);
    stdout
}

/// Runs `tests/c/<name>.c` under the shim (with the kernel's IPC calls
/// denied) and natively in a fresh IPC namespace; asserts both pass and
/// print the same.
pub fn differential(name: &str) {
    differential_with(name, |_| {});
}

/// [`differential`] with the uipc namespace prepared by `setup` first (as
/// the native run prepares its fresh namespace itself, e.g. sysctls).
pub fn differential_with(name: &str, setup: impl FnOnce(&uipc_client::Client)) {
    let _w = watchdog("a C program", 180);
    let dir = TempDir::new(name);
    let Some(bin) = compile(name, &dir.0) else { return };
    let d = TestDaemon::start(name);
    setup(&uipc_client::Client::connect_to(&d.socket, "default").unwrap());
    let shim_out = Command::new(&bin)
        .arg("deny")
        .env("LD_PRELOAD", shim())
        .env("UIPC_SOCKET", &d.socket)
        .env("UIPC_NAMESPACE", "default")
        .output()
        .unwrap();
    let ours = text(&format!("{name} (uipc)"), &shim_out);
    if !can_unshare() {
        return;
    }
    let native = text(&format!("{name} (kernel)"), &Command::new("unshare").arg("--ipc").arg(&bin).output().unwrap());
    assert_eq!(ours, native, "{name}: uipc (left) and the kernel (right) differ");
}

/// `sh -c` script: a private mount namespace whose `/dev/shm` is a fresh
/// tmpfs (`mode=1777`, as Debian mounts it), then `exec "$@"`.
pub const PRIVATE_DEV_SHM: &str =
    "mount --make-rprivate / && mount -t tmpfs -o mode=1777 uipc-test /dev/shm && exec \"$@\"";

/// `sh -c` script: a private mount namespace whose `/dev/shm` is an empty
/// read-only tmpfs, so nothing can be created or found there, then
/// `exec "$@"`.
pub const DEAD_DEV_SHM: &str =
    "mount --make-rprivate / && mount -t tmpfs -o ro,mode=0 uipc-test /dev/shm && exec \"$@\"";

/// Whether `unshare --mount` works here (root).
pub fn can_unshare_mount() -> bool {
    let ok = Command::new("unshare").args(["--mount", "true"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: unshare --mount not permitted (not root)");
    }
    ok
}

/// Runs `tests/c/<name>.c` natively over a private tmpfs at `/dev/shm`
/// (glibc's POSIX shm and semaphores are files there), and under the shim
/// (the kernel's System V calls killed, `/dev/shm` an empty read-only
/// tmpfs); asserts both pass and print the same.
pub fn differential_posix(name: &str) {
    let _w = watchdog("a C program", 300);
    if !can_unshare_mount() {
        return;
    }
    let dir = TempDir::new(name);
    let Some(bin) = compile(name, &dir.0) else { return };
    let d = TestDaemon::start(name);
    let shim_out = Command::new("unshare")
        .args(["--mount", "sh", "-c", DEAD_DEV_SHM, "sh"])
        .arg(&bin)
        .arg("deny")
        .env("LD_PRELOAD", shim())
        .env("UIPC_SOCKET", &d.socket)
        .env("UIPC_NAMESPACE", "default")
        .output()
        .unwrap();
    let ours = text(&format!("{name} (uipc)"), &shim_out);
    let native =
        Command::new("unshare").args(["--mount", "sh", "-c", PRIVATE_DEV_SHM, "sh"]).arg(&bin).output().unwrap();
    let native = text(&format!("{name} (kernel)"), &native);
    assert_eq!(ours, native, "{name}: uipc (left) and the kernel (right) differ");
}
