//! End to end: an unmodified C program (examples/c/shm_pingpong.c: a parent
//! and a forked child sharing a System V segment) run natively on the kernel
//! and under `uipc run --deny-kernel-ipc` with the preload library; the two
//! outputs must be the same once pids are named by role.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn compile(dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/c/shm_pingpong.c");
    let out = dir.join("shm_pingpong");
    let ok = Command::new("cc").arg("-O2").arg("-o").arg(&out).arg(&src).status().is_ok_and(|s| s.success());
    ok.then_some(out)
}

/// Replaces the parent's and the child's pids by their roles.
fn normalise(text: &str) -> String {
    let word_after = |marker: &str| {
        text.split(marker).nth(1).and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()).map(str::to_owned)
    };
    let mut out = text.to_owned();
    if let Some(p) = word_after("parent ") {
        out = out.replace(&p, "PARENT");
    }
    if let Some(c) = word_after("child ") {
        out = out.replace(&c, "CHILD");
    }
    out
}

#[test]
fn an_unmodified_program_behaves_under_uipc_as_on_the_kernel() {
    let Some(lib) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built (run the whole workspace's tests)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("uipc-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some(prog) = compile(&dir) else {
        eprintln!("SKIP: no C compiler");
        return;
    };
    let native = Command::new(&prog).output().unwrap();
    assert!(native.status.success(), "native run: {native:?}");
    let uipc = Command::new(env!("CARGO_BIN_EXE_uipc"))
        .args(["run", "--deny-kernel-ipc", "--preload"])
        .arg(&lib)
        .arg("--")
        .arg(&prog)
        .env_remove("UIPC_SOCKET")
        .env("XDG_RUNTIME_DIR", &dir)
        .output()
        .unwrap();
    let (native, under) =
        (normalise(&String::from_utf8_lossy(&native.stdout)), normalise(&String::from_utf8_lossy(&uipc.stdout)));
    assert!(uipc.status.success(), "under uipc: {uipc:?}");
    // The kernel namespace here may hold other segments: compare all but the id.
    let strip_id = |s: &str| {
        s.lines().map(|l| l.split_once(": size").map_or(l.to_owned(), |(_, r)| r.to_owned())).collect::<Vec<_>>()
    };
    assert_eq!(strip_id(&native), strip_id(&under), "native:\n{native}\nuipc:\n{under}");
    assert!(under.contains("hello from child CHILD (it saw nattch=2)"), "{under}");
    let _ = std::fs::remove_dir_all(&dir);
}
