//! Golden test of `uipc ipcmk` and `uipc ipcrm` on POSIX shared memory and
//! semaphores, with util-linux 2.41's options, messages and exit statuses
//! (`sys-utils/ipcmk.c`, `ipcrm.c` of v2.41: this machine's util-linux is
//! 2.38, which has none of them, so the expected lines are 2.41's strings;
//! `-a` says "removing …" twice per POSIX object, as 2.41's `remove_all()`
//! and `remove_name()` both print it). The objects made are checked through
//! the daemon (`Client::pshm_list`): size, mode less the umask.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn run(socket: &Path, args: &[&str]) -> String {
    let out = Command::new("sh")
        .args(["-c", "umask 022; exec \"$@\"", "sh", env!("CARGO_BIN_EXE_uipc")])
        .args(args)
        .env("UIPC_SOCKET", socket)
        .env("UIPC_NAMESPACE", "posix-tools")
        .output()
        .unwrap();
    format!(
        "$ {}\n{}{}[{}]\n",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code().unwrap_or(-1)
    )
}

#[test]
fn posix_ipcmk_and_ipcrm_as_util_linux_2_41() {
    let _w = uipc_testsupport::watchdog("posix ipcmk/ipcrm", 120);
    let dir = uipc_testsupport::TempDir::new("posix-tools");
    let socket = dir.0.join("d.sock");
    let daemon = uipc_daemon::Embedded::spawn(socket.clone(), |d| d).unwrap();
    let long256 = "n".repeat(256);
    let long300 = "n".repeat(300);
    let mut got = String::new();
    for args in [
        &["ipcmk", "--posix-shmem", "5000", "--name", "/pshm-a", "-p", "0666"][..],
        &["ipcmk", "-s", "-n", "/psem-a", "-p", "0640"],
        &["ipcmk", "-m", "1K"],
        &["ipcmk", "-s"],
        &["ipcmk", "-m", "1X", "-n", "x"],
        &["ipcmk", "-m", "8K", "-n", "/pshm-a"],
        &["ipcmk", "-M", "4096", "-m", "8K", "-n", "both"],
    ] {
        got += &run(&socket, args);
    }
    let client = uipc_client::Client::connect_to(&socket, "posix-tools").unwrap();
    for o in client.pshm_list().unwrap() {
        got += &format!("object {} mode {:04o} size {}\n", String::from_utf8_lossy(&o.name), o.mode, o.size);
    }
    for args in [
        &["ipcrm", "--posix-shmem", "/nope"][..],
        &["ipcrm", "-v", "--posix-semaphore", "/psem-a"],
        &["ipcrm", "--posix-semaphore", "psem-a"],
        &["ipcrm", "--posix-shmem", &long256],
        &["ipcrm", "--posix-shmem", &long300],
        &["ipcmk", "-s", "-n", "s2"],
        &["ipcrm", "--all=pshm", "-v"],
        &["ipcmk", "-m", "1", "-n", "again"],
        &["ipcrm", "-v", "-a"],
        &["ipcrm", "-apsem"],
    ] {
        got += &run(&socket, args);
    }
    got += &format!("left: {}\n", client.pshm_list().unwrap().len());
    drop(client);
    daemon.stop().unwrap();
    let expected = format!(
        "\
$ ipcmk --posix-shmem 5000 --name /pshm-a -p 0666
POSIX shared memory name: /pshm-a
[0]
$ ipcmk -s -n /psem-a -p 0640
POSIX semaphore name: /psem-a
[0]
$ ipcmk -m 1K
uipc ipcmk: name is required for POSIX IPC
Try 'uipc ipcmk --help' for more information.
[1]
$ ipcmk -s
uipc ipcmk: name is required for POSIX IPC
Try 'uipc ipcmk --help' for more information.
[1]
$ ipcmk -m 1X -n x
uipc ipcmk: failed to parse size: '1X': Invalid argument
[1]
$ ipcmk -m 8K -n /pshm-a
POSIX shared memory name: /pshm-a
[0]
$ ipcmk -M 4096 -m 8K -n both
Shared memory id: 0
POSIX shared memory name: both
[0]
object both mode 0644 size 8192
object pshm-a mode 0644 size 8192
object sem.psem-a mode 0640 size 32
$ ipcrm --posix-shmem /nope
uipc ipcrm: name `/nope' not found
[1]
$ ipcrm -v --posix-semaphore /psem-a
removing POSIX semaphore `/psem-a'
[0]
$ ipcrm --posix-semaphore psem-a
uipc ipcrm: name `psem-a' not found
[1]
$ ipcrm --posix-shmem {long256}
uipc ipcrm: name `{long256}' too long
[1]
$ ipcrm --posix-shmem {long300}
uipc ipcrm: name `{long300}' not found
[1]
$ ipcmk -s -n s2
POSIX semaphore name: s2
[0]
$ ipcrm --all=pshm -v
removing POSIX shared memory `both'
removing POSIX shared memory `both'
removing POSIX shared memory `pshm-a'
removing POSIX shared memory `pshm-a'
[0]
$ ipcmk -m 1 -n again
POSIX shared memory name: again
[0]
$ ipcrm -v -a
removing shared memory segment id `0'
removing POSIX shared memory `again'
removing POSIX shared memory `again'
removing POSIX semaphore `s2'
removing POSIX semaphore `s2'
[0]
$ ipcrm -apsem
[0]
left: 0
"
    );
    assert_eq!(got, expected, "got:\n{got}");
}

/// POSIX objects are scoped by the uipc namespace (docs/deviations.md: Linux
/// scopes them by the mount namespace of /dev/shm): a name made in one
/// namespace does not exist in another, and the same name can be made
/// there independently.
#[test]
fn posix_objects_belong_to_their_namespace() {
    let _w = uipc_testsupport::watchdog("posix namespaces", 120);
    let dir = uipc_testsupport::TempDir::new("posix-ns");
    let socket = dir.0.join("d.sock");
    let daemon = uipc_daemon::Embedded::spawn(socket.clone(), |d| d).unwrap();
    let a = uipc_client::Client::connect_to(&socket, "pns-a").unwrap();
    let b = uipc_client::Client::connect_to(&socket, "pns-b").unwrap();
    let o_creat_excl = uipc_abi::pshm::O_CREAT | uipc_abi::pshm::O_EXCL | uipc_abi::pshm::O_RDWR;
    let fa = std::fs::File::from(a.shm_open("/shared-name", o_creat_excl, 0o600).unwrap());
    fa.set_len(100).unwrap();
    assert_eq!(b.shm_open("/shared-name", uipc_abi::pshm::O_RDWR, 0).unwrap_err(), uipc_client::Errno::ENOENT);
    assert_eq!(b.shm_unlink("/shared-name").unwrap_err(), uipc_client::Errno::ENOENT);
    let fb = std::fs::File::from(b.shm_open("/shared-name", o_creat_excl, 0o600).unwrap());
    assert_eq!(fb.metadata().unwrap().len(), 0);
    let again = std::fs::File::from(a.shm_open("/shared-name", uipc_abi::pshm::O_RDWR, 0).unwrap());
    assert_eq!(again.metadata().unwrap().len(), 100);
    let sa = a.sem_open("/sem", uipc_abi::pshm::O_CREAT, 0o600, 3).unwrap();
    assert_eq!(b.sem_open("/sem", 0, 0, 0).unwrap_err(), uipc_client::Errno::ENOENT);
    assert_eq!(sa.value().unwrap(), 3);
    assert_eq!(a.pshm_list().unwrap().len(), 2);
    assert_eq!(b.pshm_list().unwrap().len(), 1);
    drop((a, b, sa));
    daemon.stop().unwrap();
}

/// The same for POSIX message queues: util-linux 2.41's `ipcmk -q -n NAME`
/// (`mq_open(NAME, O_RDWR | O_CREAT, mode, NULL)`: glibc's leading `/`
/// rule, the mode less the umask) and `ipcrm --posix-mqueue NAME`,
/// `-a=pmsg`, `-a` (the queues last, after System V message queues).
#[test]
fn posix_mqueue_ipcmk_and_ipcrm_as_util_linux_2_41() {
    let _w = uipc_testsupport::watchdog("posix mqueue ipcmk/ipcrm", 120);
    let dir = uipc_testsupport::TempDir::new("posix-mq-tools");
    let socket = dir.0.join("d.sock");
    let daemon = uipc_daemon::Embedded::spawn(socket.clone(), |d| d).unwrap();
    let mut got = String::new();
    for args in [
        &["ipcmk", "-q", "-n", "/mq-a", "-p", "0666"][..],
        &["ipcmk", "--posix-mqueue", "--name", "/mq-b"],
        &["ipcmk", "-q"],
        &["ipcmk", "-q", "-n", "noslash"],
        &["ipcmk", "-q", "-n", "/mq-a", "-p", "0600"],
    ] {
        got += &run(&socket, args);
    }
    let client = uipc_client::Client::connect_to(&socket, "posix-tools").unwrap();
    for q in client.mq_list().unwrap() {
        got += &format!(
            "queue {} mode {:04o} maxmsg {} msgsize {}\n",
            String::from_utf8_lossy(&q.name),
            q.mode,
            q.maxmsg,
            q.msgsize
        );
    }
    for args in [
        &["ipcrm", "--posix-mqueue", "/nope"][..],
        &["ipcrm", "--posix-mqueue", "mq-a"],
        &["ipcrm", "-v", "--posix-mqueue", "/mq-a"],
        &["ipcmk", "-q", "-n", "/mq-c"],
        &["ipcrm", "-v", "--all=pmsg"],
        &["ipcmk", "-q", "-n", "/mq-d"],
        &["ipcrm", "-a"],
    ] {
        got += &run(&socket, args);
    }
    got += &format!("left: {}\n", client.mq_list().unwrap().len());
    drop(client);
    daemon.stop().unwrap();
    let expected = "\
$ ipcmk -q -n /mq-a -p 0666
POSIX message queue name: /mq-a
[0]
$ ipcmk --posix-mqueue --name /mq-b
POSIX message queue name: /mq-b
[0]
$ ipcmk -q
uipc ipcmk: name is required for POSIX IPC
Try 'uipc ipcmk --help' for more information.
[1]
$ ipcmk -q -n noslash
uipc ipcmk: create POSIX message queue failed: Invalid argument
[1]
$ ipcmk -q -n /mq-a -p 0600
POSIX message queue name: /mq-a
[0]
queue mq-a mode 0644 maxmsg 10 msgsize 8192
queue mq-b mode 0644 maxmsg 10 msgsize 8192
$ ipcrm --posix-mqueue /nope
uipc ipcrm: name `/nope' not found
[1]
$ ipcrm --posix-mqueue mq-a
uipc ipcrm: name failed: Invalid argument
[1]
$ ipcrm -v --posix-mqueue /mq-a
removing POSIX message queue `/mq-a'
[0]
$ ipcmk -q -n /mq-c
POSIX message queue name: /mq-c
[0]
$ ipcrm -v --all=pmsg
removing POSIX message queue `/mq-b'
removing POSIX message queue `/mq-b'
removing POSIX message queue `/mq-c'
removing POSIX message queue `/mq-c'
[0]
$ ipcmk -q -n /mq-d
POSIX message queue name: /mq-d
[0]
$ ipcrm -a
[0]
left: 0
";
    assert_eq!(got, expected);
}

/// With `--state-dir`, an object is a file there: `st_nlink` is 1 while it
/// has its name and 0 after `shm_unlink`, as on tmpfs (with memfds it is
/// always 0: docs/deviations.md).
#[test]
fn with_a_state_dir_st_nlink_follows_the_name() {
    use std::os::unix::fs::MetadataExt;
    let _w = uipc_testsupport::watchdog("posix state dir", 120);
    let dir = uipc_testsupport::TempDir::new("posix-state");
    let socket = dir.0.join("d.sock");
    let state = dir.0.join("state");
    /// Stops the daemon (SIGTERM) even when an assertion fails.
    struct Stop(Option<std::process::Child>);
    impl Stop {
        fn stop(&mut self) -> Option<std::process::ExitStatus> {
            let mut child = self.0.take()?;
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            child.wait().ok()
        }
    }
    impl Drop for Stop {
        fn drop(&mut self) {
            self.stop();
        }
    }
    let mut daemon = Stop(Some(
        Command::new(env!("CARGO_BIN_EXE_uipc"))
            .args(["daemon", "--socket"])
            .arg(&socket)
            .arg("--state-dir")
            .arg(&state)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    ));
    // Until it accepts connections (the watchdog bounds the wait).
    let c = loop {
        match uipc_client::Client::connect_to(&socket, "default") {
            Ok(c) => break c,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    };
    let flags = uipc_abi::pshm::O_CREAT | uipc_abi::pshm::O_RDWR;
    let f = std::fs::File::from(c.shm_open("/named", flags, 0o640).unwrap());
    f.set_len(10).unwrap();
    let before = f.metadata().unwrap();
    assert_eq!((before.nlink(), before.len()), (1, 10));
    // The namespace's files: STATE/ns/default/.
    let files = || std::fs::read_dir(state.join("ns").join("default")).unwrap().count();
    let with_name = files();
    assert!(with_name >= 1, "no file in the state directory");
    c.shm_unlink("/named").unwrap();
    assert_eq!(f.metadata().unwrap().nlink(), 0);
    assert_eq!(files(), with_name - 1);
    // The file went with the name; the memory stays usable.
    f.set_len(20).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 20);
    drop((c, f));
    assert!(daemon.stop().is_some_and(|s| s.success()), "the daemon did not stop cleanly");
}

/// `lsipc -M`, `-S`, `-Q`, `-N`, `-g -Q` after util-linux 2.41's
/// `do_posix_shm()`, `do_posix_sem()`, `do_posix_msg()` and
/// `do_posix_msg_global()` (this machine's util-linux is 2.38, so the
/// expected tables are 2.41's columns and strings): default columns with
/// the time column masked, `-o`, `--json`, the pretty `-N` listing, the
/// warnings, and the options 2.41 refuses.
#[test]
fn posix_lsipc_as_util_linux_2_41() {
    let _w = uipc_testsupport::watchdog("posix lsipc", 120);
    let dir = uipc_testsupport::TempDir::new("posix-lsipc");
    let socket = dir.0.join("d.sock");
    let daemon = uipc_daemon::Embedded::spawn(socket.clone(), |d| d).unwrap();
    use uipc_abi::pshm::{O_CREAT, O_RDWR};
    let client = uipc_client::Client::connect_to(&socket, "posix-tools").unwrap();
    let fd = client.shm_open_umask(b"pshm-a", O_CREAT | O_RDWR, 0o640, 0o022).unwrap();
    std::fs::File::from(fd).set_len(5000).unwrap();
    drop(client.sem_open_fd(b"psem-a", O_CREAT, 0o600, 0o022, 3).unwrap());
    let (q, _fd) = client.mq_open(b"mq-a", O_CREAT | O_RDWR, 0o644, Some((10, 100))).unwrap();
    let mut sleeper = client.sleeper().unwrap();
    sleeper.mq_send(q, b"hello", 1, None).unwrap();
    sleeper.mq_send(q, b"hi", 2, None).unwrap();
    client.give_back(sleeper);
    let mut got = String::new();
    for args in [
        &["lsipc", "-M", "-b", "-o", "NAME,PERMS,OWNER,CUID,CGID"][..],
        &["lsipc", "-S", "-r"],
        &["lsipc", "-Q", "-r", "-b"],
        &["lsipc", "-Q", "-c", "-r"],
        &["lsipc", "-S", "--json", "-o", "NAME,PERMS,CUID"],
        &["lsipc", "-M", "-N", "pshm-a"],
        &["lsipc", "-Q", "-N", "mq-a"],
        &["lsipc", "-Q", "-N", "/nope"],
        &["lsipc", "-M", "-N", "nope"],
        &["lsipc", "-S", "-N", "nope"],
        &["lsipc", "-M", "-o", "SIZE"],
        &["lsipc", "-M", "-q"],
        &["lsipc", "-N", "x"],
        &["lsipc", "-g", "-Q", "-o", "RESOURCE,LIMIT,USED"],
    ] {
        // Mask the MTIME cells (raw mode: the field before the last
        // one(s)), and the pretty "Last action" line.
        let out = run(&socket, args);
        let masked: Vec<String> = out
            .lines()
            .map(|l| {
                if l.starts_with("Last action:") {
                    return "Last action: T".to_owned();
                }
                if args.contains(&"-r") && !l.starts_with('$') && !l.starts_with('[') && !l.starts_with("NAME") {
                    let mut f: Vec<&str> = l.split(' ').collect();
                    if f.len() > 3 {
                        f[3] = "T";
                    }
                    return f.join(" ");
                }
                l.to_owned()
            })
            .collect();
        got += &masked.join("\n");
        got.push('\n');
    }
    // As nobody, lsipc -S lists only what it may sem_open (read-write, as
    // util-linux's sem_open(name, 0) asks): root's 0600 semaphore is skipped.
    if uipc_testsupport::is_root() {
        drop(client.sem_open_fd(b"psem-b", O_CREAT, 0o666, 0, 9).unwrap());
        let out = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", env!("CARGO_BIN_EXE_uipc")])
            .args(["lsipc", "-S", "-r", "--noheadings"])
            .env("UIPC_SOCKET", &socket)
            .env("UIPC_NAMESPACE", "posix-tools")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        let rows: Vec<String> = text
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(' ').collect();
                if f.len() > 3 {
                    f[3] = "T";
                }
                f.join(" ")
            })
            .collect();
        assert_eq!(rows.join("\n"), "psem-b rw-rw-rw- root T 9");
    } else {
        eprintln!("SKIP posix_lsipc_as_util_linux_2_41 as nobody: needs root for setpriv");
    }
    drop(client);
    daemon.stop().unwrap();
    let expected = r#"$ lsipc -M -b -o NAME,PERMS,OWNER,CUID,CGID
NAME       PERMS OWNER CUID CGID
pshm-a rw-r-----  root    0    0
[0]
$ lsipc -S -r
NAME PERMS OWNER MTIME SVAL
psem-a rw------- root T 3
[0]
$ lsipc -Q -r -b
NAME PERMS OWNER MTIME USEDBYTES MSGS
/mq-a rw-r--r-- root T 7 2
[0]
$ lsipc -Q -c -r
NAME PERMS OWNER MTIME USEDBYTES MSGS CUID CGID
/mq-a rw-r--r-- root T 7B 2 0 0
[0]
$ lsipc -S --json -o NAME,PERMS,CUID
{
   "posix-semaphores": [
      {
         "name": "psem-a",
         "perms": "rw-------",
         "cuid": "0"
      }
   ]
}
[0]
$ lsipc -M -N pshm-a
Owner:                              root                                
Permissions:                        rw-r-----                           
Creator UID:                        0                                   
Creator user:                       root                                
Creator GID:                        0                                   
Creator group:                      root                                
Name:                               pshm-a                              
Last action: T
Segment size:                       4.9K                                
[0]
$ lsipc -Q -N mq-a
uipc lsipc: message queue name must start with '/': mq-a
[0]
$ lsipc -Q -N /nope
uipc lsipc: message queue /nope not found
[0]
$ lsipc -M -N nope
uipc lsipc: shared memory segment nope not found
[0]
$ lsipc -S -N nope
uipc lsipc: message queue nope not found
[0]
$ lsipc -M -o SIZE
uipc lsipc: column SIZE does not apply to the specified IPC
[1]
$ lsipc -M -q
uipc lsipc: mutually exclusive arguments: --posix-shmems --posix-mqueues --posix-semaphores --shmems --queues --semaphores
[1]
$ lsipc -N x
uipc lsipc: --global is mutually exclusive with --creator, --id, --name and --time
[1]
$ lsipc -g -Q -o RESOURCE,LIMIT,USED
RESOURCE LIMIT USED
MQUMNI     256    1
MQUMAX      8K    -
MQUMNB      10    -
[0]
"#;
    assert_eq!(got, expected, "\n--- got ---\n{got}");
}
