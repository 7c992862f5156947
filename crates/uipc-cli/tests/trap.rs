//! `uipc run --trap`: a program that makes its IPC calls with the `syscall`
//! instruction itself (inline assembly) runs as it does natively in a fresh
//! IPC namespace; without `--trap` those calls escape the shim (and fail
//! with `ENOSYS` under `--deny-kernel-ipc`). And `uipc run` refuses a
//! statically linked program, with or without `--trap`, in one line.
//!
//! Needs a C compiler (and root for the native comparison); skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use uipc_testsupport::{watchdog, TempDir};

/// Compiles `tests/c/<name>.c` into `dir` with `extra` options; `None`
/// (with a message) without a C compiler.
fn compile(name: &str, dir: &Path, extra: &[&str]) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{name}.c"));
    let out = dir.join(name);
    match Command::new("cc")
        .args(["-O1", "-Wall", "-Werror", "-pthread"])
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
    {
        Err(e) => {
            eprintln!("SKIP {name}: no C compiler ({e})");
            None
        }
        Ok(o) if !o.status.success() => {
            eprintln!("SKIP {name}: cc {extra:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
            None
        }
        Ok(_) => Some(out),
    }
}

/// `uipc run OPTS -- PROGRAM ARGS` with a private daemon and the shim.
fn uipc_run(dir: &Path, shim: &Path, opts: &[&str], program: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uipc"))
        .arg("run")
        .args(opts)
        .arg("--preload")
        .arg(shim)
        .arg("--socket")
        .arg(dir.join("nobody-answers.sock"))
        .arg("--")
        .arg(program)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn inline_assembly_ipc_calls_run_under_trap_as_natively() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("SKIP: trap mode is x86-64 only");
        return;
    }
    let Some(shim) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built beside the test");
        return;
    };
    let _w = watchdog("raw_asm under uipc run --trap", 120);
    let dir = TempDir::new("trap");
    let Some(prog) = compile("raw_asm", &dir.0, &[]) else { return };
    let ours = uipc_run(&dir.0, &shim, &["--trap", "--ns", "new"], &prog, &["uipc"]);
    let u = text(&ours);
    assert!(ours.status.success() && u.ends_with("ok\n"), "under --trap: {}\n{u}", ours.status);
    // Without the trap, the same calls reach the kernel, which denies them.
    let denied = uipc_run(&dir.0, &shim, &["--deny-kernel-ipc"], &prog, &[]);
    assert!(text(&denied).starts_with("shmget >= 0 -> 0\n"), "under --deny-kernel-ipc:\n{}", text(&denied));
    if !Command::new("unshare").args(["--ipc", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("SKIP native comparison: unshare --ipc not permitted");
        return;
    }
    let native = Command::new("unshare").arg("--ipc").arg(&prog).output().unwrap();
    let k = text(&native);
    assert!(native.status.success(), "natively: {}\n{k}", native.status);
    assert_eq!(u, k, "uipc run --trap (left) vs the kernel (right)");
}

#[test]
fn a_static_program_is_refused_in_one_line() {
    let Some(shim) = support::preload_library() else {
        eprintln!("SKIP: libuipc_preload.so not built beside the test");
        return;
    };
    let _w = watchdog("uipc run of a static program", 120);
    let dir = TempDir::new("static");
    std::fs::write(dir.0.join("tiny.c"), "int main(void) { return 0; }\n").unwrap();
    let mut built = Vec::new();
    for (name, flag) in [("static", "-static"), ("static-pie", "-static-pie"), ("dynamic", "-pie")] {
        let out = dir.0.join(name);
        let ok = Command::new("cc").arg(flag).arg("-o").arg(&out).arg(dir.0.join("tiny.c")).status();
        if !ok.is_ok_and(|s| s.success()) {
            eprintln!("SKIP {name}: cc {flag} failed (no static libc?)");
            continue;
        }
        built.push((name, out));
    }
    for (name, prog) in &built {
        for opts in [&[][..], &["--trap"][..], &["--deny-kernel-ipc"][..]] {
            let o = uipc_run(&dir.0, &shim, opts, prog, &[]);
            let stderr = String::from_utf8_lossy(&o.stderr);
            if *name == "dynamic" {
                assert!(o.status.success(), "{name} {opts:?}: {}\n{stderr}", o.status);
                continue;
            }
            assert_eq!(o.status.code(), Some(126), "{name} {opts:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{name} {opts:?}: one line: {stderr}");
            assert!(stderr.contains("statically linked"), "{name} {opts:?}: {stderr}");
        }
    }
}
