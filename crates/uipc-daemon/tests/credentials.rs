//! Credentials come from the kernel (`SO_PEERCRED`, `SO_PEERGROUPS`), never
//! from the client: a uid-1000 process cannot reach a root-only segment,
//! through the client library or through hand-made frames, and a
//! supplementary group grants group access.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use uipc_abi::{Errno, IPC_CREAT};
use uipc_proto::{Request, Response};

const ENTRY: &str = "probe_entry_credentials";

/// Probe entry point, not a test on its own: does its work only when a
/// test of this file re-executes the binary with `UIPC_PROBE` set.
#[test]
fn probe_entry_credentials() {
    if let Some(socket) = probe_socket("unprivileged") {
        let _w = watchdog("probe unprivileged", 60);
        probe_unprivileged(&socket);
    } else if let Some(socket) = probe_socket("group") {
        let _w = watchdog("probe group", 60);
        probe_group(&socket);
    } else if let Some(socket) = probe_socket("no_group") {
        let _w = watchdog("probe no_group", 60);
        probe_no_group(&socket);
    } else if let Some(socket) = probe_socket("drops_root") {
        let _w = watchdog("probe drops_root", 60);
        probe_drops_root(&socket);
    } else if let Some(socket) = probe_socket("outsider") {
        let _w = watchdog("probe outsider", 60);
        let ns = format!("private-{}", probe_arg("NS"));
        let c = uipc_client::Client::connect_to(&socket, &ns);
        assert_eq!(c.err(), Some(Errno::EACCES), "uid 1000 entered a root 0700 namespace");
        println!("PROBE OK");
    }
}

/// As root in the 0700 root namespace `private-<NS>`: drops to uid 1000
/// (every thread, as glibc's setuid does) and connects again, as the shim
/// does after a credential change. The process is still in the namespace
/// (Linux never moves it out), so the new connection enters; its calls are
/// judged as uid 1000.
fn probe_drops_root(socket: &std::path::Path) {
    let ns = format!("private-{}", probe_arg("NS"));
    let key = i32::try_from(probe_arg("KEY")).unwrap();
    let before = uipc_client::Client::connect_to(socket, &ns).unwrap();
    assert!(before.shmget(key, 0, 0o600).is_ok(), "root reaches its own segment");
    // SAFETY: plain system calls; glibc applies them to every thread.
    let dropped =
        unsafe { libc::setgroups(0, std::ptr::null()) == 0 && libc::setgid(1000) == 0 && libc::setuid(1000) == 0 };
    assert!(dropped, "setuid(1000): {}", std::io::Error::last_os_error());
    let after = uipc_client::Client::connect_to(socket, &ns).expect("a process in the namespace stays in it");
    assert_eq!(after.shmget(key, 0, 0o600), Err(Errno::EACCES), "the new connection still had root's rights");
    drop(before);
    println!("PROBE OK");
}

/// As uid 1000/gid 1000 against a root-owned 0600 segment.
fn probe_unprivileged(socket: &std::path::Path) {
    assert_eq!(rustix::process::geteuid().as_raw(), 1000);
    let key = i32::try_from(probe_arg("KEY")).unwrap();
    let c = uipc_client::Client::connect_to(socket, "default").unwrap();
    assert_eq!(c.shmget(key, 0, 0o600), Err(Errno::EACCES), "read-write get of a 0600 root segment");
    assert_eq!(c.shmget(key, 0, 0o400), Err(Errno::EACCES), "read get of a 0600 root segment");
    // Flag 0 requests no access: the kernel grants the id.
    let id = c.shmget(key, 0, 0).unwrap();
    assert_eq!(c.attach(id, 0).err(), Some(Errno::EACCES));
    assert_eq!(c.attach_read_only(id, 0).err(), Some(Errno::EACCES));
    assert_eq!(c.shm_stat(id).err(), Some(Errno::EACCES));
    assert_eq!(c.shm_set(id, 1000, 1000, 0o666).err(), Some(Errno::EPERM));
    assert_eq!(c.shm_remove(id).err(), Some(Errno::EPERM));

    // The protocol carries no identity: hand-made frames fare no better.
    let mut raw = Raw::connect(socket);
    raw.hello("default");
    assert_eq!(raw.call(&Request::ShmGet { key, size: 0, flags: 0o600 }), Response::Error(Errno::EACCES.raw()));
    assert_eq!(raw.call(&Request::ShmGet { key, size: 0, flags: 0 }), Response::Value(i64::from(id.0)));
    assert_eq!(raw.call(&Request::ShmAt { id: id.0, addr: 0, flags: 0 }), Response::Error(Errno::EACCES.raw()));
    assert_eq!(
        raw.call(&Request::ShmCtl { id: id.0, cmd: uipc_abi::IPC_STAT, set: None }),
        Response::Error(Errno::EACCES.raw())
    );
    println!("PROBE OK");
}

/// As uid 1000/gid 1000 with supplementary group 2000, against a root-owned
/// segment of group 2000, mode 0060.
fn probe_group(socket: &std::path::Path) {
    let key = i32::try_from(probe_arg("KEY")).unwrap();
    let c = uipc_client::Client::connect_to(socket, "default").unwrap();
    let id = c.shmget(key, 0, 0o060).unwrap();
    let ds = c.shm_stat(id).unwrap();
    assert_eq!((ds.shm_perm.uid, ds.shm_perm.gid, ds.shm_perm.mode & 0o777), (0, 2000, 0o060));
    let mut m = c.attach(id, 0).unwrap();
    assert_eq!(&m[..4], b"root");
    m[..5].copy_from_slice(b"group");
    drop(m);
    println!("PROBE OK");
}

/// As uid 1000/gid 1000 without group 2000: the control case of `probe_group`.
fn probe_no_group(socket: &std::path::Path) {
    let key = i32::try_from(probe_arg("KEY")).unwrap();
    let c = uipc_client::Client::connect_to(socket, "default").unwrap();
    assert_eq!(c.shmget(key, 0, 0o060), Err(Errno::EACCES));
    assert_eq!(c.shmget(key, 0, 0o040), Err(Errno::EACCES));
    let id = c.shmget(key, 0, 0).unwrap();
    assert_eq!(c.shm_stat(id).err(), Some(Errno::EACCES));
    assert_eq!(c.attach(id, 0).err(), Some(Errno::EACCES));
    println!("PROBE OK");
}

#[test]
fn unprivileged_peer_cannot_reach_a_root_only_segment() {
    if skip_unless_root("unprivileged_peer_cannot_reach_a_root_only_segment") {
        return;
    }
    let _w = watchdog("unprivileged_peer_cannot_reach_a_root_only_segment", 120);
    let d = TestDaemon::start("cred");
    let root = d.client();
    let key = unique_key();
    let id = root.shmget(key, 4096, IPC_CREAT | 0o600).unwrap();
    let mut cmd = probe_command(ENTRY, "unprivileged", &d.socket);
    cmd.env("UIPC_ARG_KEY", key.to_string());
    as_user(&mut cmd, 1000, 1000, vec![]);
    let out = run_probe(cmd);
    assert!(String::from_utf8_lossy(&out.stdout).contains("PROBE OK"), "the probe did not run");
    // Nothing changed.
    let ds = root.shm_stat(id).unwrap();
    assert_eq!((ds.shm_perm.uid, ds.shm_perm.mode & 0o777, ds.shm_nattch), (0, 0o600, 0));
}

#[test]
fn supplementary_groups_come_from_the_kernel() {
    if skip_unless_root("supplementary_groups_come_from_the_kernel") {
        return;
    }
    let _w = watchdog("supplementary_groups_come_from_the_kernel", 120);
    let d = TestDaemon::start("groups");
    let root = d.client();
    let key = unique_key();
    let id = root.shmget(key, 4096, IPC_CREAT | 0o600).unwrap();
    root.shm_set(id, 0, 2000, 0o060).unwrap();
    {
        let mut m = root.attach(id, 0).unwrap();
        m[..4].copy_from_slice(b"root");
    }

    // Control: the same user without group 2000 is refused.
    let mut cmd = probe_command(ENTRY, "no_group", &d.socket);
    cmd.env("UIPC_ARG_KEY", key.to_string());
    as_user(&mut cmd, 1000, 1000, vec![]);
    let out = run_probe(cmd);
    assert!(String::from_utf8_lossy(&out.stdout).contains("PROBE OK"), "the probe did not run");

    let mut cmd = probe_command(ENTRY, "group", &d.socket);
    cmd.env("UIPC_ARG_KEY", key.to_string());
    as_user(&mut cmd, 1000, 1000, vec![2000]);
    let out = run_probe(cmd);
    assert!(String::from_utf8_lossy(&out.stdout).contains("PROBE OK"), "the probe did not run");

    let m = root.attach_read_only(id, 0).unwrap();
    assert_eq!(&m[..5], b"group", "the group member's write is not visible");
    drop(m);
    root.sync().unwrap();
    let ds = root.shm_stat(id).unwrap();
    assert_eq!(ds.shm_nattch, 0);
}

/// A root process in a root-owned 0700 namespace that drops to uid 1000
/// reconnects (what the shim does after `setuid`) into the same namespace
/// and is judged as uid 1000; before, the join was refused (`EACCES`) and
/// the shim kept the root connection, so the process kept root's rights
/// (`uipc run --ns new` + Python's `os.setuid`, scripts/e2e/python-sysv-ipc.sh).
/// Control: another process as uid 1000 may not enter.
#[test]
fn a_member_that_drops_root_stays_in_its_0700_namespace() {
    if skip_unless_root("a_member_that_drops_root_stays_in_its_0700_namespace") {
        return;
    }
    let _w = watchdog("a_member_that_drops_root_stays_in_its_0700_namespace", 120);
    let d = TestDaemon::start("dropns");
    let tag = i64::from(std::process::id());
    let ns = format!("private-{tag}");
    let mut admin = uipc_client::Admin::connect(&d.socket).unwrap();
    assert_eq!(admin.ns_create(&ns, 0o700, &[], false).unwrap(), ns);
    let root = uipc_client::Client::connect_to(&d.socket, &ns).unwrap();
    let key = unique_key();
    root.shmget(key, 4096, IPC_CREAT | 0o600).unwrap();

    let mut cmd = probe_command(ENTRY, "outsider", &d.socket);
    cmd.env("UIPC_ARG_NS", tag.to_string());
    as_user(&mut cmd, 1000, 1000, vec![]);
    let out = run_probe(cmd);
    assert!(String::from_utf8_lossy(&out.stdout).contains("PROBE OK"), "the outsider probe did not run");

    let mut cmd = probe_command(ENTRY, "drops_root", &d.socket);
    cmd.env("UIPC_ARG_NS", tag.to_string()).env("UIPC_ARG_KEY", key.to_string());
    let out = run_probe(cmd);
    assert!(String::from_utf8_lossy(&out.stdout).contains("PROBE OK"), "the drops_root probe did not run");
}
