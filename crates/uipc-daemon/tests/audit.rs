//! The audit log (`Daemon::with_audit`): a permission denial suffered by a
//! real uid-1000 process is recorded with uid 1000 and that process's pid,
//! as the kernel reported them; creations, IPC_SET, removals, namespace
//! changes and sysctl writes are recorded with their outcome; lookups that
//! succeed are not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use uipc_abi::{Errno, IPC_CREAT};
use uipc_daemon::audit::Audit;
use uipc_daemon::Embedded;

const ENTRY: &str = "probe_entry_audit";

/// Probe entry point: acts only when re-executed with `UIPC_PROBE`.
#[test]
fn probe_entry_audit() {
    if let Some(socket) = probe_socket("denied") {
        let _w = watchdog("probe denied", 60);
        assert_eq!(rustix::process::getuid().as_raw(), 1000);
        let key = i32::try_from(probe_arg("KEY")).unwrap();
        let c = uipc_client::Client::connect_to(&socket, "default").unwrap();
        assert_eq!(c.shmget(key, 0, 0o600).err(), Some(Errno::EACCES));
        let id = c.shmget(key, 0, 0).unwrap();
        assert_eq!(c.shm_remove(id).err(), Some(Errno::EPERM));
        assert_eq!(uipc_client::Client::connect_to(&socket, "private").err(), Some(Errno::EACCES));
        println!("PROBE OK {}", std::process::id());
    }
}

/// A daemon in a thread, auditing to `log`; stopped on drop.
struct AuditedDaemon {
    socket: PathBuf,
    _daemon: Embedded,
    _dir: TempDir,
}

impl AuditedDaemon {
    fn start(dir: TempDir, log: &Path) -> AuditedDaemon {
        let socket = dir.0.join("d.sock");
        let file = std::fs::File::create(log).unwrap();
        let daemon = Embedded::spawn(socket.clone(), move |d| d.with_audit(Audit::new(Box::new(file)))).unwrap();
        AuditedDaemon { socket, _daemon: daemon, _dir: dir }
    }
}

fn records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_denial_is_recorded_with_the_real_uid_of_the_caller() {
    if skip_unless_root("a_denial_is_recorded_with_the_real_uid_of_the_caller") {
        return;
    }
    let _w = watchdog("a_denial_is_recorded_with_the_real_uid_of_the_caller", 120);
    let dir = TempDir::new("audit");
    let log = dir.0.join("audit.jsonl");
    let d = AuditedDaemon::start(dir, &log);
    let root = uipc_client::Client::connect_to(&d.socket, "default").unwrap();
    let key = unique_key();
    let id = root.shmget(key, 4096, IPC_CREAT | 0o600).unwrap();
    root.shmget(key, 0, 0).unwrap(); // a lookup: not recorded
    root.shm_set(id, 0, 0, 0o640).unwrap();
    let mut admin = uipc_client::Admin::connect(&d.socket).unwrap();
    admin.ns_create("private", 0o700, &[], false).unwrap();

    let mut cmd = probe_command(ENTRY, "denied", &d.socket);
    cmd.env("UIPC_ARG_KEY", key.to_string());
    as_user(&mut cmd, 1000, 1000, vec![]);
    let out = run_probe(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: u64 = stdout.lines().find_map(|l| l.strip_prefix("PROBE OK ")).expect("the probe ran").parse().unwrap();

    root.shm_remove(id).unwrap();
    admin.ns_remove("private").unwrap();
    // Each record is written before the reply it goes with.

    let recs = records(&log);
    let find = |op: &str, outcome: &str, uid: u64| {
        recs.iter().find(|r| r["operation"] == op && r["outcome"] == outcome && r["uid"] == uid).cloned()
    };
    // The probe's three denials, with its uid and pid from the kernel.
    let denied = find("shmget", "EACCES", 1000).expect("shmget denial recorded");
    assert_eq!((denied["pid"].as_u64(), denied["namespace"].as_str()), (Some(pid), Some("default")));
    assert_eq!(denied["ruid"].as_u64(), Some(1000), "the real uid, read from the kernel");
    assert_eq!(denied["object"], serde_json::json!({ "kind": "shm", "key": key }));
    let rmid = find("remove", "EPERM", 1000).expect("IPC_RMID denial recorded");
    assert_eq!(rmid["object"], serde_json::json!({ "kind": "shm", "id": id.0 }));
    assert_eq!(rmid["pid"].as_u64(), Some(pid));
    let enter = find("enter", "EACCES", 1000).expect("namespace entry denial recorded");
    assert_eq!(enter["namespace"], "private");
    // Root's changes, each with its outcome.
    let created = find("create", "ok", 0).expect("creation recorded");
    assert_eq!(created["object"], serde_json::json!({ "kind": "shm", "key": key, "id": id.0 }));
    assert!(find("set", "ok", 0).is_some(), "IPC_SET recorded");
    assert!(find("remove", "ok", 0).is_some(), "IPC_RMID recorded");
    assert!(find("ns_create", "ok", 0).is_some() && find("ns_remove", "ok", 0).is_some(), "namespace changes recorded");
    // Successful lookups are not: one create and nothing else for shmget.
    assert_eq!(recs.iter().filter(|r| r["operation"] == "shmget" && r["uid"] == 0).count(), 0);
    for r in &recs {
        assert!(r["time"].as_f64().is_some_and(|t| t > 1.0e9), "time in Unix seconds: {r}");
    }
}
