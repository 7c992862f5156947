//! The `/proc` views served by the shim: C programs and unmodified
//! util-linux `ipcs`/`lsipc` run with `LD_PRELOAD=libuipc_preload.so`
//! against an in-process daemon; `ipcs -m` is compared with the same
//! creation run natively in a fresh IPC namespace (`unshare --ipc`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use uipc_client::Client;

mod common;

use common::*;

/// Runs `cmd` with the shim against `socket`, in uipc's namespace `default`.
fn preloaded(cmd: &mut Command, socket: &Path) -> Output {
    cmd.env("LD_PRELOAD", shim()).env("UIPC_SOCKET", socket).env("UIPC_NAMESPACE", "default").output().unwrap()
}

/// Stdout of a run that must have succeeded.
fn ok_stdout(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{what}: {}\n{stdout}{stderr}", out.status);
    assert!(out.status.success(), "{what} failed: {}\n{stdout}{stderr}", out.status);
    stdout
}

/// Whether util-linux's `tool` can run here.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: no {tool}");
    }
    ok
}

/// Creates the test segment (key 0x75697063, 4096 bytes, mode 0600)
/// through the shim; returns its id.
fn make_segment(dir: &Path, socket: &Path) -> Option<i32> {
    let bin = compile("mkseg", dir)?;
    let out = ok_stdout("mkseg", &preloaded(&mut Command::new(bin), socket));
    Some(out.trim().parse().unwrap())
}

#[test]
fn c_program_reads_the_served_files() {
    let _w = watchdog("procfs.c", 120);
    let d = TestDaemon::start("procfs-c");
    Client::connect_to(&d.socket, "default").unwrap().sysctl_write("kernel.shmmni", "1234").unwrap();
    let dir = TempDir::new("procfs-c");
    let Some(bin) = compile("procfs", &dir.0) else { return };
    let out = ok_stdout("procfs", &preloaded(&mut Command::new(bin), &d.socket));
    assert!(out.contains("ok"));
}

#[test]
fn without_a_daemon_the_kernel_files_are_read() {
    let _w = watchdog("nodaemon_procfs.c", 120);
    let dir = TempDir::new("procfs-nodaemon");
    let Some(bin) = compile("nodaemon_procfs", &dir.0) else { return };
    let out = ok_stdout("nodaemon_procfs", &preloaded(&mut Command::new(bin), &dir.0.join("nobody.sock")));
    assert!(out.contains("ok"));
}

/// `ipcs -m`'s row for `id`, split into columns.
fn ipcs_row(out: &str, id: i32) -> Vec<String> {
    let row =
        out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|c| c.get(1) == Some(&&*id.to_string()));
    row.unwrap_or_else(|| panic!("no row for shmid {id} in:\n{out}")).into_iter().map(String::from).collect()
}

#[test]
fn ipcs_m_lists_uipc_segments_as_the_kernel_would() {
    let _w = watchdog("ipcs -m", 120);
    if !have("ipcs") {
        return;
    }
    let d = TestDaemon::start("procfs-ipcs");
    let dir = TempDir::new("procfs-ipcs");
    let Some(id) = make_segment(&dir.0, &d.socket) else { return };
    let ours = ok_stdout("ipcs -m (uipc)", &preloaded(Command::new("ipcs").arg("-m"), &d.socket));
    let row = ipcs_row(&ours, id);
    // key shmid owner perms bytes nattch
    let user = ok_stdout("id -un", &Command::new("id").arg("-un").output().unwrap());
    assert_eq!(row, ["0x75697063", &id.to_string(), user.trim(), "600", "4096", "0"], "{ours}");

    // The same creation natively, in a fresh IPC namespace (root only).
    let probe = Command::new("unshare").args(["--ipc", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP native comparison: unshare --ipc not permitted");
        return;
    }
    let mkseg = dir.0.join("mkseg");
    let script = r#""$0" && ipcs -m"#;
    let native = ok_stdout(
        "ipcs -m (kernel)",
        &Command::new("unshare").args(["--ipc", "sh", "-c", script]).arg(&mkseg).output().unwrap(),
    );
    let (native_id, native_ipcs) = native.split_once('\n').unwrap();
    let native_id: i32 = native_id.trim().parse().unwrap();
    assert_eq!(native_id, id, "a fresh namespace's first id");
    assert_eq!(ipcs_row(native_ipcs, native_id), row);
    assert_eq!(native_ipcs, ours, "ipcs -m output differs");
}

#[test]
fn ipcs_l_shows_uipc_limits() {
    let _w = watchdog("ipcs -l", 120);
    if !have("ipcs") {
        return;
    }
    let d = TestDaemon::start("procfs-limits");
    let c = Client::connect_to(&d.socket, "default").unwrap();
    c.sysctl_write("kernel.shmmni", "1234").unwrap();
    c.sysctl_write("kernel.shmmax", "8388608").unwrap();
    c.sysctl_write("kernel.shmall", "5000").unwrap();
    c.sysctl_write("kernel.sem", "251 32001 33 129").unwrap();
    let out = ok_stdout("ipcs -l", &preloaded(Command::new("ipcs").arg("-l"), &d.socket));
    let page = 4096u64; // shmall is in pages; ipcs multiplies by the page size
    for want in [
        "max number of segments = 1234".to_owned(),
        "max seg size (kbytes) = 8192".to_owned(),
        format!("max total shared memory (kbytes) = {}", 5000 * page / 1024),
        "max semaphores per array = 251".to_owned(),
        "max semaphores system wide = 32001".to_owned(),
        "max ops per semop call = 33".to_owned(),
        "max number of arrays = 129".to_owned(),
    ] {
        assert!(out.contains(&want), "no '{want}' in:\n{out}");
    }
}

#[test]
fn lsipc_json_lists_the_segment() {
    let _w = watchdog("lsipc -m --json", 120);
    if !have("lsipc") {
        return;
    }
    let d = TestDaemon::start("procfs-lsipc");
    let dir = TempDir::new("procfs-lsipc");
    let Some(id) = make_segment(&dir.0, &d.socket) else { return };
    let out = ok_stdout("lsipc -m --json", &preloaded(Command::new("lsipc").args(["-m", "--json"]), &d.socket));
    // One segment: its fields are the `"name": value` lines of the one
    // object in "sharedmemory" (util-linux prints one field per line).
    assert!(out.trim_start().starts_with('{') && out.contains("\"sharedmemory\": ["), "{out}");
    let fields: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').split_once(": "))
        .map(|(k, v)| (k.trim_matches('"'), v.trim_matches('"')))
        .collect();
    let field = |name: &str| -> Vec<&str> { fields.iter().filter(|(k, _)| *k == name).map(|&(_, v)| v).collect() };
    assert_eq!(field("id"), [id.to_string().as_str()], "{out}");
    assert_eq!(field("key"), ["0x75697063"], "{out}");
    assert_eq!(field("perms"), ["rw-------"], "{out}");
    assert_eq!(field("size"), ["4K"], "{out}");
    assert_eq!(field("nattch"), ["0"], "{out}");
}

#[test]
fn ipcmk_and_ipcrm_act_on_uipc_segments() {
    let _w = watchdog("ipcmk/ipcrm", 120);
    if !have("ipcmk") || !have("ipcrm") || !have("ipcs") {
        return;
    }
    let d = TestDaemon::start("procfs-ipcmk");
    let made = ok_stdout("ipcmk -M", &preloaded(Command::new("ipcmk").args(["-M", "8192", "-p", "0640"]), &d.socket));
    // "Shared memory id: N"
    let id: i32 = made.trim().rsplit(' ').next().unwrap().parse().unwrap();
    let listed = ok_stdout("ipcs -m", &preloaded(Command::new("ipcs").arg("-m"), &d.socket));
    let row = ipcs_row(&listed, id);
    assert_eq!((row[3].as_str(), row[4].as_str()), ("640", "8192"), "{listed}");
    ok_stdout("ipcrm -m", &preloaded(Command::new("ipcrm").args(["-m", &id.to_string()]), &d.socket));
    let after = ok_stdout("ipcs -m", &preloaded(Command::new("ipcs").arg("-m"), &d.socket));
    assert!(!after.lines().any(|l| l.split_whitespace().nth(1) == Some(&*id.to_string())), "{after}");
}

/// `/proc/sysvipc/sem` as uipc renders it (uipc-core's `proc_sysvipc_sem`)
/// against the kernel's: a set of 3 semaphores, mode 0600, key 0x75697064,
/// created through uipc and, natively, in a fresh IPC namespace; unmodified
/// `ipcs -s` must print the same table.
#[test]
fn ipcs_s_lists_uipc_sets_as_the_kernel_would() {
    let _w = watchdog("ipcs -s", 120);
    if !have("ipcs") || !have("python3") {
        return;
    }
    let d = TestDaemon::start("procfs-ipcs-s");
    let client = uipc_client::Client::connect_to(&d.socket, "default").unwrap();
    let id = client.semget(0x7569_7064, 3, 0o1600).unwrap().0;
    let ours = ok_stdout("ipcs -s (uipc)", &preloaded(Command::new("ipcs").arg("-s"), &d.socket));
    let user = ok_stdout("id -un", &Command::new("id").arg("-un").output().unwrap());
    // key semid owner perms nsems
    assert_eq!(ipcs_row(&ours, id), ["0x75697064", &id.to_string(), user.trim(), "600", "3"], "{ours}");

    let probe = Command::new("unshare").args(["--ipc", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP native comparison: unshare --ipc not permitted");
        return;
    }
    let script = r#"python3 -c 'import ctypes; ctypes.CDLL(None).semget(0x75697064, 3, 0o1600)' && ipcs -s"#;
    let native =
        ok_stdout("ipcs -s (kernel)", &Command::new("unshare").args(["--ipc", "sh", "-c", script]).output().unwrap());
    assert_eq!(native, ours, "ipcs -s output differs");
}
