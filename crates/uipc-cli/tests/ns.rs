//! `uipc ns`: namespaces isolate objects and limits, their mode decides
//! who enters (real uids), `uipc ns rm` and the end of an ephemeral
//! namespace free everything (blocked callers get EIDRM; the daemon's
//! descriptors and segment memory return to their baseline, measured in
//! /proc), and every mistake is one line with a non-zero status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod nsutil;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use nsutil::*;
use uipc_client::{Errno, Sembuf};

const IPC_CREAT: i32 = 0o1000;
const IPC_PRIVATE: i32 = 0;
const ENTRY: &str = "probe_entry_ns";

/// Probe entry point, not a test on its own: acts only when re-executed
/// with `UIPC_PROBE` set.
#[test]
fn probe_entry_ns() {
    let Ok(probe) = std::env::var("UIPC_PROBE") else { return };
    let _w = watchdog("ns probe", 60);
    let socket = std::path::PathBuf::from(std::env::var("UIPC_SOCKET").unwrap());
    match probe.as_str() {
        // Tries to enter $NS: prints the errno name or "ok".
        "enter" => {
            let ns = std::env::var("NS").unwrap();
            let r = uipc_client::Client::connect_to(&socket, &ns).map(|_| ());
            println!("ENTER {}", r.err().map_or("ok".to_owned(), |e| format!("{e:?}")));
        }
        // The program of an ephemeral namespace: creates a segment and a
        // set there, starts a descendant that joins too and outlives it.
        #[allow(clippy::zombie_processes)]
        "ephemeral_main" => {
            let ns = std::env::var("UIPC_NAMESPACE").unwrap();
            let c = uipc_client::Client::connect_to(&socket, &ns).unwrap();
            c.shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0o600).unwrap();
            c.semget(IPC_PRIVATE, 3, IPC_CREAT | 0o600).unwrap();
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", ENTRY, "--nocapture", "--test-threads=1", "-q"])
                .env("UIPC_PROBE", "ephemeral_descendant")
                // Nothing of ours may keep the test's pipes open.
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            assert!(lines.any(|l| l.unwrap().trim() == "JOINED"), "the descendant did not join");
            println!("NS {ns}");
            // Exits without waiting: the descendant lives on (reparented).
            std::mem::forget(child);
        }
        // Joins, says so, then lives until $FIFO reaches end of file.
        "ephemeral_descendant" => {
            let ns = std::env::var("UIPC_NAMESPACE").unwrap();
            let c = uipc_client::Client::connect_to(&socket, &ns).unwrap();
            c.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
            println!("JOINED");
            let mut f = std::fs::File::open(std::env::var("FIFO").unwrap()).unwrap();
            let mut sink = Vec::new();
            let _ = f.read_to_end(&mut sink);
            drop(c);
        }
        other => panic!("unknown probe {other}"),
    }
}

fn probe(d: &DaemonProc, uid: Option<u32>, name: &str, env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match uid {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([format!("--reuid={u}"), format!("--regid={u}"), "--clear-groups".into()]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(["--exact", ENTRY, "--nocapture", "--test-threads=1", "-q"])
        .env("UIPC_PROBE", name)
        .env("UIPC_SOCKET", &d.socket)
        .env_remove("RUST_TEST_THREADS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "probe {name}: {}{}", stdout(&out), stderr(&out));
    // Only the probe's own lines (the harness prints its own around them).
    stdout(&out).lines().filter(|l| l.starts_with("ENTER ")).collect::<Vec<_>>().join("\n")
}

#[test]
fn objects_keys_and_limits_are_per_namespace() {
    let _w = watchdog("objects_keys_and_limits_are_per_namespace", 120);
    let d = DaemonProc::start("iso", &[]);
    ok(&d.uipc(&["ns", "create", "a"]));
    ok(&d.uipc(&["ns", "create", "b", "--shmmni", "2"]));
    let (a, b) = (d.client("a"), d.client("b"));
    let key = 0x5eed_0001;
    // The same key names a different object in each namespace.
    let ia = a.shmget(key, 4096, IPC_CREAT | 0o600).unwrap();
    assert_eq!(b.shmget(key, 0, 0).err(), Some(Errno::ENOENT), "a's segment is visible from b");
    let ib = b.shmget(key, 8192, IPC_CREAT | 0o600).unwrap();
    assert_eq!(a.shm_stat(ia).unwrap().shm_segsz, 4096);
    assert_eq!(b.shm_stat(ib).unwrap().shm_segsz, 8192);
    {
        let mut ma = a.attach(ia, 0).unwrap();
        let mut mb = b.attach(ib, 0).unwrap();
        ma[0] = b'A';
        mb[0] = b'B';
        assert_eq!((ma[0], mb[0]), (b'A', b'B'));
    }
    let sa = a.semget(key, 1, IPC_CREAT | 0o600).unwrap();
    assert_eq!(b.semget(key, 0, 0).err(), Some(Errno::ENOENT));
    a.sem_setval(sa, 0, 7).unwrap();
    // Limits are independent: b's shmmni of 2 stops b, not a.
    b.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
    assert_eq!(b.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).err(), Some(Errno::ENOSPC));
    for _ in 0..3 {
        a.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
    }
    assert_eq!(ok(&d.uipc(&["sysctl", "--ns", "a", "-n", "kernel.shmmni"])), "4096\n");
    assert_eq!(ok(&d.uipc(&["sysctl", "--ns", "b", "-n", "kernel.shmmni"])), "2\n");
    ok(&d.uipc(&["sysctl", "--ns", "a", "kernel.shmmax=100000"]));
    assert_eq!(ok(&d.uipc(&["sysctl", "--ns", "b", "-n", "kernel.shmmax"])), "18446744073692774399\n");
    // What `ns list` and `ns show` count.
    let list: serde_json::Value = serde_json::from_str(&ok(&d.uipc(&["ns", "list", "--json"]))).unwrap();
    let count = |name: &str, what: &str| {
        list["namespaces"].as_array().unwrap().iter().find(|n| n["name"] == name).unwrap()[what].as_u64().unwrap()
    };
    assert_eq!((count("a", "shm"), count("a", "sem"), count("b", "shm"), count("b", "sem")), (4, 1, 2, 0));
    let show: serde_json::Value = serde_json::from_str(&ok(&d.uipc(&["ns", "show", "b", "--json"]))).unwrap();
    assert_eq!(show["shm_bytes"], 8192 + 4096);
    assert_eq!(show["sysctls"]["kernel.shmmni"], "2");
}

#[test]
fn a_non_owner_cannot_enter_a_0700_namespace() {
    if skip_unless_root("a_non_owner_cannot_enter_a_0700_namespace") {
        return;
    }
    let _w = watchdog("a_non_owner_cannot_enter_a_0700_namespace", 120);
    let d = DaemonProc::start("perm", &[]);
    // uid 1000 creates its own private namespace; its owner is the
    // caller's real identity as the kernel reports it.
    ok(&d.uipc_as(Some(1000), &["ns", "create", "mine", "--mode", "0700"]));
    let show: serde_json::Value = serde_json::from_str(&ok(&d.uipc(&["ns", "show", "mine", "--json"]))).unwrap();
    assert_eq!(
        (show["uid"].as_u64(), show["gid"].as_u64(), show["mode"].as_str()),
        (Some(1000), Some(1000), Some("0700"))
    );
    assert_eq!(probe(&d, Some(1000), "enter", &[("NS", "mine")]).trim(), "ENTER ok");
    assert_eq!(probe(&d, Some(1001), "enter", &[("NS", "mine")]).trim(), "ENTER EACCES");
    // A group- and other-accessible one admits uid 1001.
    ok(&d.uipc_as(Some(1000), &["ns", "create", "open", "--mode", "0711"]));
    assert_eq!(probe(&d, Some(1001), "enter", &[("NS", "open")]).trim(), "ENTER ok");
    // The tools go through the same door, in one line.
    let e = one_line_failure(&d.uipc_as(Some(1001), &["sysctl", "--ns", "mine", "kernel.shmmni"]));
    assert_eq!(e, "uipc sysctl: namespace 'mine': permission denied");
    let e = one_line_failure(&d.uipc_as(Some(1001), &["ns", "show", "mine"]));
    assert_eq!(e, "uipc ns: namespace 'mine': permission denied");
    // List shows only what the caller may enter.
    let names = |uid| {
        let v: serde_json::Value = serde_json::from_str(&ok(&d.uipc_as(uid, &["ns", "list", "--json"]))).unwrap();
        v["namespaces"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(names(Some(1001)), ["default", "open"]);
    assert_eq!(names(Some(1000)), ["default", "mine", "open"]);
    // Only the owner (or CAP_SYS_ADMIN) removes.
    let e = one_line_failure(&d.uipc_as(Some(1001), &["ns", "rm", "open"]));
    assert_eq!(e, "uipc ns: namespace 'open': operation not permitted (not the owner)");
    ok(&d.uipc_as(Some(1000), &["ns", "rm", "open"]));
    ok(&d.uipc(&["ns", "rm", "mine"]));
    // The owner is root of its namespace's sysctls; others are not.
    ok(&d.uipc_as(Some(1000), &["ns", "create", "lim"]));
    ok(&d.uipc_as(Some(1000), &["sysctl", "--ns", "lim", "kernel.shmmni=9"]));
    let e = one_line_failure(&d.uipc_as(Some(1001), &["sysctl", "--ns", "lim", "kernel.shmmni=10"]));
    assert_eq!(e, "uipc sysctl: permission denied on key \"kernel.shmmni\"");
}

#[test]
fn rm_wakes_blocked_callers_with_eidrm_and_frees_everything() {
    let _w = watchdog("rm_wakes_blocked_callers_with_eidrm_and_frees_everything", 120);
    let d = DaemonProc::start("rm", &[]);
    let observer = d.client("default");
    observer.sync().unwrap();
    let baseline = d.resources();
    assert_eq!(baseline.1, 0, "segment memory before anything was created");

    ok(&d.uipc(&["ns", "create", "doomed"]));
    let c = d.client("doomed");
    let set = c.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600).unwrap();
    let shm = c.shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0o600).unwrap();
    for _ in 0..4 {
        c.shmget(IPC_PRIVATE, 64 << 10, IPC_CREAT | 0o600).unwrap();
    }
    let mut map = c.attach(shm, 0).unwrap();
    map[..5].copy_from_slice(b"alive");
    let sleeper = {
        let c = c.clone();
        std::thread::spawn(move || c.semop(set, &[Sembuf { sem_num: 0, sem_op: -1, sem_flg: 0 }]))
    };
    // The sleeper is parked in the daemon before the removal.
    while c.waiters().unwrap().is_empty() {
        std::thread::yield_now();
    }
    let during = d.resources();
    assert!(during.1 >= (1 << 20) + 4 * (64 << 10), "segment memory while in use: {during:?}");

    ok(&d.uipc(&["ns", "rm", "doomed"]));
    assert_eq!(sleeper.join().unwrap(), Err(Errno::EIDRM), "the blocked semop's result");
    // Later calls on a connection whose namespace is gone: EIDRM.
    assert_eq!(c.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600).err(), Some(Errno::EIDRM));
    // The mapping stays valid until unmapped, as after Linux's teardown.
    assert_eq!(&map[..5], b"alive");
    map[..5].copy_from_slice(b"still");
    assert_eq!(&map[..5], b"still");
    drop(map);
    drop(c);
    let e = one_line_failure(&d.uipc(&["ns", "show", "doomed"]));
    assert_eq!(e, "uipc ns: namespace 'doomed': no such namespace");

    let after = d.settle_to(&observer, baseline);
    assert_eq!(after, baseline, "daemon (descriptors, memfd bytes) before and after the removal");
}

#[test]
fn an_ephemeral_namespace_ends_with_its_last_process() {
    let _w = watchdog("an_ephemeral_namespace_ends_with_its_last_process", 120);
    let d = DaemonProc::start("eph", &[]);
    let observer = d.client("default");
    observer.sync().unwrap();
    let baseline = d.resources();

    let fifo = d.dir.join("release");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(uipc_bin())
        .args(["run", "--preload", "/nonexistent/libuipc_preload.so", "--ns", "new", "--"])
        .arg(&exe)
        .args(["--exact", ENTRY, "--nocapture", "--test-threads=1", "-q"])
        .env("UIPC_SOCKET", &d.socket)
        .env("UIPC_PROBE", "ephemeral_main")
        .env("FIFO", &fifo)
        .env_remove("RUST_TEST_THREADS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = ok(&out);
    let name = text.lines().find_map(|l| l.strip_prefix("NS ")).expect("the program's namespace").to_owned();
    assert!(name.starts_with("new-"), "{name}");
    // The program is gone; its descendant still holds the namespace.
    let show: serde_json::Value = serde_json::from_str(&ok(&d.uipc(&["ns", "show", &name, "--json"]))).unwrap();
    assert_eq!(show["ephemeral"], true);
    assert_eq!((show["shm"].as_u64(), show["sem"].as_u64()), (Some(2), Some(1)));
    assert!(d.resources().1 >= (1 << 20) + 4096);

    // Release the descendant: the last process of the namespace exits.
    drop(std::fs::OpenOptions::new().write(true).open(&fifo).unwrap());
    let mut gone = false;
    for _ in 0..500 {
        observer.sync().unwrap();
        let o = d.uipc(&["ns", "show", &name]);
        if !o.status.success() {
            assert_eq!(one_line_failure(&o), format!("uipc ns: namespace '{name}': no such namespace"));
            gone = true;
            break;
        }
    }
    assert!(gone, "the ephemeral namespace outlived its last process");
    let after = d.settle_to(&observer, baseline);
    assert_eq!(after, baseline, "daemon (descriptors, memfd bytes) before and after the ephemeral namespace");
}

#[test]
fn mistakes_are_one_line_and_a_non_zero_status() {
    let _w = watchdog("mistakes_are_one_line_and_a_non_zero_status", 120);
    let d = DaemonProc::start("err", &[]);
    let none = d.dir.join("nobody.sock");
    let none = none.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["ns", "list", "--socket", none], "uipc ns: no daemon answers at"),
        (&["sysctl", "--socket", none, "kernel.shmmni"], "uipc sysctl: no daemon answers at"),
        (&["ns", "show", "nosuch"], "uipc ns: namespace 'nosuch': no such namespace"),
        (&["ns", "rm", "nosuch"], "uipc ns: namespace 'nosuch': no such namespace"),
        (&["sysctl", "--ns", "nosuch", "-a"], "uipc sysctl: namespace 'nosuch': no such namespace"),
        (&["ns", "create", "x", "--mode", "999"], "uipc: invalid value '999' for '--mode <MODE>'"),
        (&["ns", "create", "x", "--bogus"], "uipc: unexpected argument '--bogus' found"),
        (&["ns", "create", "a/b"], "uipc ns: cannot create namespace 'a/b': invalid name"),
        (
            &["ns", "create", "x", "--shmmni", "40000"],
            "uipc ns: cannot create namespace 'x': kernel.shmmni = 40000: Invalid argument",
        ),
        (
            &["ns", "create", "x", "--sysctl", "kernel.nosuch=1"],
            "uipc ns: cannot create namespace 'x': kernel.nosuch = 1: unknown sysctl",
        ),
        (&["ns", "rm", "default"], "uipc ns: namespace 'default': the default namespace cannot be removed"),
        (&["ns"], "uipc: a subcommand is required"),
        (&["sysctl"], "uipc sysctl: no variables specified"),
    ];
    for (args, want) in cases {
        let line = one_line_failure(&d.uipc(args));
        assert!(line.starts_with(want), "uipc {args:?}: {line:?} does not start with {want:?}");
    }
    ok(&d.uipc(&["ns", "create", "twice"]));
    let line = one_line_failure(&d.uipc(&["ns", "create", "twice"]));
    assert_eq!(line, "uipc ns: cannot create namespace 'twice': namespace exists");
    // A refused creation leaves nothing behind.
    assert!(!d.uipc(&["ns", "show", "x"]).status.success());
}
