//! System V semaphores through the shim, against the kernel: each C
//! program in `tests/c/sem_*.c` runs natively in a fresh IPC namespace
//! (`unshare --ipc`, root only) and with `LD_PRELOAD=libuipc_preload.so`
//! against an in-process daemon, under a seccomp filter that kills it on
//! any of the kernel's System V IPC calls; the two standard outputs must be
//! the same line for line. Then unmodified util-linux `ipcmk -S`, `ipcs -s`
//! and `ipcrm -s` under `uipc run --deny-kernel-ipc` against the same
//! commands in `unshare --ipc`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

mod common;

use common::*;

#[test]
fn errnos_match_the_kernel() {
    differential("sem_errno");
}

#[test]
fn values_and_info_match_the_kernel() {
    differential("sem_values");
}

#[test]
fn ping_pong_across_fork() {
    differential("sem_pingpong");
}

#[test]
fn sem_undo_applies_at_exit_and_kill() {
    differential("sem_undo");
}

#[test]
fn a_handler_interrupts_a_sleeping_semop_even_with_sa_restart() {
    differential("sem_eintr");
}

#[test]
fn threads_contend_and_fork_while_one_sleeps() {
    differential("sem_threads");
}

#[test]
fn unshare_applies_undo_and_leaves_the_namespace_keeping_mappings() {
    differential("sem_unshare");
}

/// The `uipc` executable built with the workspace (next to the shim), if any.
fn uipc_exe() -> Option<PathBuf> {
    let so = shim();
    let profile = so.parent()?;
    let profile = if profile.ends_with("deps") { profile.parent()? } else { profile };
    let exe = profile.join("uipc");
    exe.exists().then_some(exe)
}

/// Replaces the times `ipcs -s -i`/`-t` print (`Wed Jan  1 12:00:00 2025`)
/// by `TIME`, and keys (`ipcmk` picks a random one) by `KEY`, so that two
/// runs compare.
fn mask(s: &str) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    s.lines()
        .map(|l| {
            let mut out = l.to_owned();
            for day in DAYS {
                while let Some(i) = out.find(&format!("{day} ")) {
                    // "Www Mmm dd hh:mm:ss yyyy" is 24 characters.
                    let end = (i + 24).min(out.len());
                    out.replace_range(i..end, "TIME");
                }
            }
            // `ipcs -s -t` prints times as "Jan 01 12:00:00" (or "Not set").
            let words: Vec<&str> = out.split_whitespace().collect();
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let mut masked = Vec::new();
            let mut k = 0;
            while k < words.len() {
                if months.contains(&words[k]) && k + 2 < words.len() && words[k + 2].matches(':').count() == 2 {
                    masked.push("TIME");
                    k += 3;
                } else if words[k].len() == 10 && words[k].starts_with("0x") {
                    masked.push("KEY");
                    k += 1;
                } else {
                    masked.push(words[k]);
                    k += 1;
                }
            }
            masked.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The session run by both sides: make a set of 3, show it every way
/// `ipcs` can, remove it, show the table again.
const TOOLS: &str = r#"set -e
made=$(ipcmk -S 3 -p 0640)
echo "$made"
id=${made##* }
ipcs -s
ipcs -s -i "$id"
ipcs -s -c
ipcs -s -t
ipcs -s -u
ipcs -s -l
ipcrm -s "$id"
ipcs -s
echo ok
"#;

/// Unmodified `ipcmk -S 3`, `ipcs -s` (plain, `-i`, `-c`, `-t`, `-u`,
/// `-l`) and `ipcrm -s` under `uipc run --deny-kernel-ipc` print what they
/// print in a fresh kernel IPC namespace (times masked).
#[test]
fn ipcmk_ipcs_ipcrm_sem_match_the_kernel() {
    let _w = watchdog("ipcmk/ipcs/ipcrm -s", 180);
    for tool in ["ipcmk", "ipcs", "ipcrm"] {
        if !Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()) {
            eprintln!("SKIP: no {tool}");
            return;
        }
    }
    let dir = TempDir::new("semtools");
    let ours = match uipc_exe() {
        Some(uipc) => Command::new(uipc)
            .args(["run", "--deny-kernel-ipc", "--preload"])
            .arg(shim())
            .args(["--", "sh", "-c", TOOLS])
            .env_remove("UIPC_SOCKET")
            .env("XDG_RUNTIME_DIR", &dir.0)
            .output()
            .unwrap(),
        None => {
            // `cargo test -p uipc-preload` alone does not build `uipc`: the
            // same session with the shim and an in-process daemon.
            eprintln!("NOTE: uipc not built next to the shim; running with LD_PRELOAD and a test daemon");
            let d = TestDaemon::start("semtools");
            let out = Command::new("sh")
                .args(["-c", TOOLS])
                .env("LD_PRELOAD", shim())
                .env("UIPC_SOCKET", &d.socket)
                .env("UIPC_NAMESPACE", "default")
                .output()
                .unwrap();
            drop(d);
            out
        }
    };
    let ours = text("ipc tools (uipc)", &ours);
    assert!(ours.contains("Semaphore id: 0"), "{ours}");
    if !can_unshare() {
        return;
    }
    let native =
        text("ipc tools (kernel)", &Command::new("unshare").args(["--ipc", "sh", "-c", TOOLS]).output().unwrap());
    assert_eq!(mask(&ours), mask(&native), "uipc (left) and the kernel (right) differ");
}

/// The exported C entry points bind for programs linked against any of
/// glibc's versions of them: the shim defines each unversioned.
#[test]
fn the_shim_exports_the_semaphore_calls_unversioned() {
    let out = Command::new("nm").args(["-D", "--defined-only"]).arg(shim()).output();
    let Ok(out) = out else {
        eprintln!("SKIP: no nm");
        return;
    };
    let syms = String::from_utf8_lossy(&out.stdout);
    for f in ["semget", "semop", "semtimedop", "semctl"] {
        let line = syms.lines().find(|l| l.split_whitespace().nth(2) == Some(f));
        let line = line.unwrap_or_else(|| panic!("{f} not exported:\n{syms}"));
        assert_eq!(line.split_whitespace().nth(1), Some("T"), "{line}");
    }
}

/// A sleeper's connection opened before `setuid` is not reused after it:
/// the thread's next semop is judged as the new uid (as root only).
#[test]
fn a_sleeping_thread_sees_a_setuid_of_its_process() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.strip_prefix("Uid:").and_then(|s| s.split_whitespace().nth(1)) == Some("0"));
    if !root {
        eprintln!("SKIP sem_creds: not root");
        return;
    }
    differential("sem_creds");
}

/// `tests/c/sem_stat.c`: `IPC_STAT`/`SEM_STAT`/`SEM_STAT_ANY` (each asked
/// twice: under the shim the second may come from the status region or
/// the set's page) as root and uid 1000, after semop, `IPC_SET`,
/// `IPC_RMID` and a slot's reuse, from a forked child, across
/// `unshare(CLONE_NEWIPC)`, and while another process runs semop in a
/// loop (every answer a consistent snapshot): every field as the kernel's.
#[test]
fn sem_stat_from_the_status_region_matches_the_kernel() {
    differential("sem_stat");
}
