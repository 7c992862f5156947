//! Golden test of uipc's own `ipcmk` and `ipcrm` (the `uipc` binary invoked
//! through links named after them, as on a system without util-linux): the
//! sequence `tests/ipctools/mk_rm.sh` — creations with every size and mode
//! form, bad sizes, modes and options, removals by id and by key, of
//! existing, removed and malformed ids, `-a`, `-v`, the old `shm ID` form —
//! prints the same lines and exit statuses as util-linux 2.38 running the
//! same script in a fresh kernel IPC namespace (`unshare --ipc`). Only the
//! random keys `ipcmk` picks are masked.
//!
//! Needs root (for `unshare --ipc`) and util-linux; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const UIPC: &str = env!("CARGO_BIN_EXE_uipc");

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ipctools/mk_rm.sh")
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    for tool in ["ipcs", "ipcmk", "ipcrm", "unshare", "awk"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status();
        if !found.is_ok_and(|s| s.success()) {
            return Some(format!("{tool} not found"));
        }
    }
    let unshare = Command::new("unshare").args(["--ipc", "true"]).stderr(Stdio::null()).status();
    if !unshare.is_ok_and(|s| s.success()) {
        return Some("unshare --ipc fails (not root?)".into());
    }
    None
}

/// Runs `cmd` to completion, aborting the test if it hangs.
fn output(mut cmd: Command) -> Output {
    let (tx, rx) = mpsc::channel();
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the sequence did not finish within 120 s");
        }
    }
}

/// Standard output then standard error, with every `0x%08x` key masked.
fn transcript(out: &Output) -> String {
    let text =
        format!("{}\n--- stderr ---\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut masked = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("0x") {
        masked.push_str(&rest[..i]);
        let hex = rest[i + 2..].bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex == 8 {
            masked.push_str("0xKEY");
            rest = &rest[i + 10..];
        } else {
            masked.push_str("0x");
            rest = &rest[i + 2..];
        }
    }
    masked.push_str(rest);
    masked
}

#[test]
fn ipcmk_and_ipcrm_match_util_linux() {
    if let Some(why) = missing() {
        eprintln!("SKIP ipcmk_and_ipcrm_match_util_linux: {why}");
        return;
    }
    let dir = tempdir();
    let links = dir.join("bin");
    std::fs::create_dir(&links).unwrap();
    for tool in ["ipcmk", "ipcrm", "ipcs"] {
        std::os::unix::fs::symlink(UIPC, links.join(tool)).unwrap();
    }
    let path = format!("{}:{}", links.display(), std::env::var("PATH").unwrap_or_default());

    let mut native = Command::new("unshare");
    native.arg("--ipc").arg("sh").arg(script()).env("LC_ALL", "C");
    let native = output(native);

    // A fresh namespace on a private daemon; the links find it through
    // UIPC_SOCKET and UIPC_NAMESPACE, which `uipc run` sets.
    let mut uipc = Command::new(UIPC);
    uipc.args(["run", "--ns", "new", "--socket"])
        .arg(dir.join("uipc.sock"))
        .args(["--", "sh"])
        .arg(script())
        .env("PATH", &path)
        .env("LC_ALL", "C");
    // `cargo test` leaves the shim in deps/ only (nothing copies it beside
    // `uipc`, where `uipc run` looks): name it, or `uipc run` warns.
    if let Some(shim) = support::preload_library() {
        uipc.env("UIPC_PRELOAD", shim);
    }
    let uipc = output(uipc);

    let (k, u) = (transcript(&native), transcript(&uipc));
    assert!(k.contains("Shared memory id: 0"), "the native run did not work:\n{k}");
    if k != u {
        let diff: Vec<String> = k
            .lines()
            .zip(u.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("  util-linux: {a}\n  uipc:       {b}"))
            .collect();
        panic!(
            "uipc's ipcmk/ipcrm differ from util-linux:\n{}\n--- util-linux ---\n{k}\n--- uipc ---\n{u}",
            diff.join("\n")
        );
    }
    assert_eq!(native.status.code(), uipc.status.code());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh private directory for the links and the socket.
fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uipc-mkrm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
