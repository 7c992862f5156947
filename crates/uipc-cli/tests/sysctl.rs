//! `uipc sysctl` against the kernel: every IPC sysctl of SPEC section 7 is
//! written with valid and out-of-range values in a fresh uipc namespace and,
//! by the same sequence, to `/proc/sys` in a fresh `unshare --ipc`
//! namespace; the error each write gets (in sysctl(8)'s words) and the
//! value read back after it must be the same. Also `-a` against the
//! kernel's defaults, and EACCES for a non-root writer on both sides.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod nsutil;

use std::process::{Command, Stdio};

use nsutil::*;

const ENTRY: &str = "probe_entry_sysctl";

/// Every IPC sysctl (SPEC 7) with values in range, at and beyond each bound,
/// and malformed; applied in this order.
const CASES: &[(&str, &[&str])] = &[
    ("kernel.shmmax", &["4096", "0", "18446744073709551615", "18446744073709551616", "-1", "abc", "12 13", ""]),
    ("kernel.shmall", &["2097152", "0", "18446744073709551615", "18446744073709551616", "-1", "x"]),
    ("kernel.shmmni", &["100", "0", "32768", "32769", "-1", "4096"]),
    ("kernel.shm_rmid_forced", &["1", "2", "-1", "0"]),
    ("kernel.msgmax", &["100", "0", "2147483647", "2147483648", "-1", "8192"]),
    ("kernel.msgmnb", &["100", "0", "2147483647", "2147483648", "-1", "16384"]),
    ("kernel.msgmni", &["100", "0", "32768", "32769", "-1", "32000"]),
    ("kernel.auto_msgmni", &["0", "1", "2", "-1"]),
    ("kernel.sem", &["250 32000 32 128", "1 2 3 32768", "1 2 3 32769", "5 6 7 -1", "9 10", "1 2 3 4 5", "a b c d"]),
    ("kernel.shm_next_id", &["5", "0", "2147483647", "2147483648", "-1", "-2"]),
    ("kernel.sem_next_id", &["7", "0", "-1", "-2"]),
    ("kernel.msg_next_id", &["9", "0", "-1", "-2"]),
    ("fs.mqueue.queues_max", &["1000", "0", "-1", "2147483647", "256"]),
    ("fs.mqueue.msg_max", &["1", "0", "65536", "65537", "10"]),
    ("fs.mqueue.msgsize_max", &["128", "127", "16777216", "16777217", "8192"]),
    ("fs.mqueue.msg_default", &["1", "0", "65536", "65537", "10"]),
    ("fs.mqueue.msgsize_default", &["128", "127", "16777216", "16777217", "8192"]),
    ("kernel.nosuch_ipc_knob", &["1"]),
];

fn proc_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Probe entry point (re-executed inside `unshare --ipc`): applies every
/// case to /proc/sys and prints `W key value -> OK|errno` and `R key -> value`.
#[test]
fn probe_entry_sysctl() {
    let Ok(probe) = std::env::var("UIPC_PROBE") else { return };
    let _w = watchdog("sysctl probe", 60);
    match probe.as_str() {
        "kernel_cases" => {
            for (key, values) in CASES {
                for v in *values {
                    // One write(2) of what sysctl(8) writes: the value and a newline.
                    let r = std::fs::write(proc_path(key), format!("{v}\n"));
                    let outcome = r.err().map_or(0, |e| e.raw_os_error().unwrap());
                    println!("W\t{key}\t{v}\t{outcome}");
                    let back = std::fs::read_to_string(proc_path(key)).unwrap_or_default();
                    println!("R\t{key}\t{}", back.trim_end_matches('\n'));
                }
            }
        }
        "kernel_eacces" => {
            let r = std::fs::write(proc_path("kernel.shmmni"), "5");
            println!("W\t{}", r.err().map_or(0, |e| e.raw_os_error().unwrap()));
        }
        other => panic!("unknown probe {other}"),
    }
}

/// Runs a probe of this binary inside a fresh IPC namespace (as `uid`).
fn kernel_probe(name: &str, uid: Option<u32>) -> Vec<String> {
    let mut cmd = Command::new("unshare");
    cmd.arg("--ipc");
    if let Some(u) = uid {
        cmd.args(["setpriv", &format!("--reuid={u}"), &format!("--regid={u}"), "--clear-groups"]);
    }
    cmd.arg(std::env::current_exe().unwrap())
        .args(["--exact", ENTRY, "--nocapture", "--test-threads=1", "-q"])
        .env("UIPC_PROBE", name)
        .env_remove("RUST_TEST_THREADS")
        .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "kernel probe {name}: {}", stderr(&out));
    stdout(&out).lines().filter(|l| l.starts_with("W\t") || l.starts_with("R\t")).map(str::to_owned).collect()
}

/// strerror(3) text, as sysctl(8) prints it.
fn strerror(errno: i32) -> String {
    let t = std::io::Error::from_raw_os_error(errno).to_string();
    t[..t.rfind(" (os error ").unwrap_or(t.len())].to_owned()
}

/// What `uipc sysctl KEY=VALUE` must say for the kernel's outcome of the
/// same write: sysctl(8)'s line, with "uipc sysctl" for "sysctl".
fn expected_line(key: &str, value: &str, errno: i32) -> String {
    match errno {
        0 => format!("{key} = {}", value.trim()),
        2 => format!("uipc sysctl: cannot stat {}: {}", proc_path(key), strerror(2)),
        13 => format!("uipc sysctl: permission denied on key \"{key}\""),
        e => format!("uipc sysctl: setting key \"{key}\": {}", strerror(e)),
    }
}

#[test]
fn every_limit_reads_writes_and_refuses_as_the_kernel_does() {
    if skip_unless_root("every_limit_reads_writes_and_refuses_as_the_kernel_does") {
        return;
    }
    let _w = watchdog("every_limit_reads_writes_and_refuses_as_the_kernel_does", 300);
    let kernel = kernel_probe("kernel_cases", None);
    let d = DaemonProc::start("sysctl", &[]);
    ok(&d.uipc(&["ns", "create", "lim"]));
    let mut mismatches = Vec::new();
    let mut lines = kernel.iter();
    let mut checked = 0;
    for (key, values) in CASES {
        for v in *values {
            let w: Vec<&str> = lines.next().unwrap().split('\t').collect();
            assert_eq!((w[0], w[1], w[2]), ("W", *key, *v), "kernel transcript out of step");
            let errno: i32 = w[3].parse().unwrap();
            let setting = format!("{key}={v}");
            let out = d.uipc(&["sysctl", "--ns", "lim", &setting]);
            let said = if out.status.success() { stdout(&out) } else { stderr(&out) };
            let want = expected_line(key, v, errno);
            if said.trim_end() != want || out.status.success() != (errno == 0) {
                mismatches
                    .push(format!("write {setting:?}: kernel {want:?} (errno {errno}), uipc {:?}", said.trim_end()));
            }
            let r: Vec<&str> = lines.next().unwrap().splitn(3, '\t').collect();
            if errno != 2 {
                let back = d.uipc(&["sysctl", "--ns", "lim", "-n", key]);
                if stdout(&back).trim_end_matches('\n') != r[2] {
                    mismatches.push(format!("read {key} after {v:?}: kernel {:?}, uipc {:?}", r[2], stdout(&back)));
                }
            }
            checked += 1;
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {checked} writes differ from the kernel:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn all_shows_the_kernels_defaults() {
    if skip_unless_root("all_shows_the_kernels_defaults") {
        return;
    }
    let _w = watchdog("all_shows_the_kernels_defaults", 120);
    let out = Command::new("unshare").args(["--ipc", "sysctl", "-a"]).stderr(Stdio::null()).output().unwrap();
    let ours = |l: &&str| {
        ["kernel.shm", "kernel.msg", "kernel.sem", "kernel.auto_msgmni", "fs.mqueue."].iter().any(|p| l.starts_with(p))
    };
    let mut kernel: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().filter(ours).collect();
    kernel.sort_unstable();
    let d = DaemonProc::start("sysctl-a", &[]);
    ok(&d.uipc(&["ns", "create", "fresh"]));
    let all = ok(&d.uipc(&["sysctl", "--ns", "fresh", "-a"]));
    let uipc: Vec<&str> = all.lines().collect();
    assert_eq!(uipc, kernel, "uipc sysctl -a vs sysctl -a in a fresh IPC namespace");
}

#[test]
fn a_non_root_writer_gets_eacces_as_from_the_kernel() {
    if skip_unless_root("a_non_root_writer_gets_eacces_as_from_the_kernel") {
        return;
    }
    let _w = watchdog("a_non_root_writer_gets_eacces_as_from_the_kernel", 120);
    let kernel = kernel_probe("kernel_eacces", Some(1000));
    let errno: i32 = kernel[0].split('\t').nth(1).unwrap().parse().unwrap();
    assert_eq!(errno, 13, "the kernel's answer to a uid-1000 write");
    let d = DaemonProc::start("sysctl-acc", &[]);
    // `default` is root's: uid 1000 is not root of it.
    let out = d.uipc_as(Some(1000), &["sysctl", "kernel.shmmni=5"]);
    assert_eq!(one_line_failure(&out), expected_line("kernel.shmmni", "5", errno));
    assert_eq!(ok(&d.uipc(&["sysctl", "-n", "kernel.shmmni"])), "4096\n");
}
