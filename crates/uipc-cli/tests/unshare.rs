//! `unshare --ipc` under `uipc run`: unmodified util-linux `unshare` calls
//! `unshare(CLONE_NEWIPC)`, which the shim serves by moving the process to
//! a fresh ephemeral uipc namespace (`ksys_unshare()`'s semantics: empty,
//! keys unknown; the outer namespace's objects untouched and visible again
//! afterwards). Run as `nobody`, who needs no `CAP_SYS_ADMIN` for it under
//! uipc, and compared with the same script run natively as root (for whom
//! the kernel allows it) in a fresh IPC namespace.
//!
//! Needs root (for `unshare --ipc` and `setpriv`), util-linux and the shim
//! built beside the test (the workspace's tests build it); skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const NOBODY: &str = "65534";

const SCRIPT: &str = r#"
count() { ipcs "$1" | grep -c '^0x'; }
ipcmk -M 100 >/dev/null && ipcmk -S 2 >/dev/null
echo "outer: $(count -m) segments, $(count -s) sets"
unshare --ipc sh -c '
    count() { ipcs "$1" | grep -c "^0x"; }
    echo "inner: $(count -m) segments, $(count -s) sets"
    ipcmk -S 1
    echo "inner after ipcmk: $(count -s) sets"
'
echo "unshare exit status $?"
echo "outer again: $(count -m) segments, $(count -s) sets"
"#;

fn works(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn run_watched(mut cmd: Command) -> Output {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("the script (pid {pid}) did not finish within 120 s");
        }
    }
}

/// Copies `from` into `dir` with mode 0755, so `nobody` may use it.
fn install(from: &Path, dir: &Path) -> PathBuf {
    let to = dir.join(from.file_name().unwrap());
    std::fs::copy(from, &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    to
}

#[test]
fn unshare_ipc_without_root_gives_a_fresh_namespace_like_the_kernel() {
    let Some(shim) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built beside the test");
        return;
    };
    let ready = ["ipcs", "ipcmk", "unshare", "setpriv"]
        .iter()
        .all(|t| works(Command::new("sh").args(["-c", &format!("command -v {t}")])));
    if !ready || !works(Command::new("unshare").args(["--ipc", "true"])) {
        eprintln!("SKIP: needs root and util-linux (ipcs, ipcmk, unshare, setpriv)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("uipc-unshare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let uipc = install(Path::new(env!("CARGO_BIN_EXE_uipc")), &dir);
    let shim = install(&shim, &dir);

    let mut native = Command::new("unshare");
    native.args(["--ipc", "sh", "-c", SCRIPT]);
    let native = run_watched(native);

    // The kernel refuses nobody: uipc's namespaces need no privilege.
    let mut refused = Command::new("setpriv");
    refused.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "unshare", "--ipc", "true"]);
    assert!(!works(&mut refused), "the kernel let nobody unshare(CLONE_NEWIPC)");

    let mut ours = Command::new("setpriv");
    ours.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg(&uipc)
        .args(["run", "--deny-kernel-ipc", "--preload"])
        .arg(&shim)
        .arg("--socket")
        .arg(dir.join("uipc.sock"))
        .args(["--", "sh", "-c", SCRIPT])
        .env("XDG_RUNTIME_DIR", &dir);
    let ours = run_watched(ours);
    let _ = std::fs::remove_dir_all(&dir);

    let text = |o: &Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let (k, u) = (text(&native), text(&ours));
    assert!(k.contains("inner: 0 segments, 0 sets") && k.contains("outer again: 1 segments, 1 sets"), "native:\n{k}");
    assert_eq!(u, k, "uipc as nobody (left) vs the kernel as root (right)");
    assert_eq!(ours.status.code(), native.status.code());
}
